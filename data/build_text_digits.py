"""Build data/text_digits.json: the digits 0-9 written out by num2words, and its manifest entry.

Run from the repository root: `python data/build_text_digits.py`. Needs the optional extra
`pip install -e '.[data]'` (num2words, anyascii); learners only load the result. Every word comes
from num2words (LGPL-2.1: only its output is shipped), every transliteration from anyascii and
every native numeral from the Unicode character database; nothing is typed by hand but the
language families. The build is deterministic: two builds give byte-identical files.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import sys
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parent
OUT = ROOT / "text_digits.json"
MANIFEST = ROOT / "manifest.json"
REQUIREMENTS = "pip install -e '.[data]' (num2words and anyascii)"

# language -> family, in shipping order: the spoken digits' languages first, English leading
LANGUAGES = {
    "en": "Germanic", "es": "Romance", "fr": "Romance", "de": "Germanic", "it": "Romance",
    "pt": "Romance", "nl": "Germanic", "pl": "Slavic",
    "sv": "Germanic", "da": "Germanic", "ro": "Romance", "cs": "Slavic", "ru": "Slavic",
    "uk": "Slavic", "fi": "Uralic", "hu": "Uralic", "tr": "Turkic", "ar": "Semitic",
    "he": "Semitic", "fa": "Iranian", "bn": "Indo-Aryan", "th": "Tai", "ja": "Japonic",
    "ko": "Koreanic", "id": "Austronesian", "vi": "Austroasiatic",
}
# languages whose script has its own digits: the Unicode name of that script's digit zero
NUMERAL_ZERO = {
    "ar": "ARABIC-INDIC DIGIT ZERO",
    "fa": "EXTENDED ARABIC-INDIC DIGIT ZERO",
    "bn": "BENGALI DIGIT ZERO",
    "th": "THAI DIGIT ZERO",
}
# Japanese: num2words writes kanji (which are the numerals); its reading=True gives the kana
READING = {"ja"}


def nfc(text: str) -> str:
    """Unicode NFC, so one word has one byte sequence."""
    return unicodedata.normalize("NFC", text)


def script_of(word: str) -> str:
    """The script of a word's first letter, from its Unicode name (LATIN, CYRILLIC, CJK...)."""
    return unicodedata.name(word[0]).split()[0]


def upper(word: str, lang: str) -> str:
    """Upper case; Turkish dotted i becomes İ (Python's str.upper knows no locale)."""
    return (word.replace("i", "İ") if lang == "tr" else word).upper()


def title(word: str, lang: str) -> str:
    """First letter upper case, the rest as written (str.title would also capitalise after ')."""
    return upper(word[:1], lang) + word[1:]


def numerals(lang: str) -> list[str]:
    """The digits 0-9 in the script's own digits, read from the Unicode character database."""
    zero = ord(unicodedata.lookup(NUMERAL_ZERO[lang]))
    digits = [chr(zero + d) for d in range(10)]
    if [unicodedata.digit(c) for c in digits] != list(range(10)):
        raise ValueError(f"{NUMERAL_ZERO[lang]} does not start a run of ten digits")
    return digits


def forms(lang: str) -> dict[str, list[str]]:
    """Form name -> the ten strings of that form in one language (the same forms for every digit).

    word: num2words; title, upper: where the script has case; kana: Japanese reading; ascii,
    ascii_title, ascii_upper: anyascii transliteration where the script is not Latin; numeral:
    the script's own digits where it has them.
    """
    from anyascii import anyascii
    from num2words import num2words

    words = [nfc(num2words(d, lang=lang)) for d in range(10)]
    out = {"word": words}
    if any(w.upper() != w for w in words):
        out |= {"title": [title(w, lang) for w in words], "upper": [upper(w, lang) for w in words]}
    if lang in READING:
        out["kana"] = [nfc(num2words(d, lang=lang, reading=True)) for d in range(10)]
    if script_of(words[1]) != "LATIN":
        ascii_words = [anyascii(w).lower() for w in out.get("kana", words)]
        out |= {"ascii": ascii_words, "ascii_title": [w[:1].upper() + w[1:] for w in ascii_words],
                "ascii_upper": [w.upper() for w in ascii_words]}
    if lang in NUMERAL_ZERO:
        out["numeral"] = numerals(lang)
    return out


def check_table(table: dict[str, dict]) -> None:
    """Refuse an empty string, or one string that stands for two digits in the same language."""
    for lang, entry in table.items():
        digit_of: dict[str, int] = {}
        for form, strings in entry["forms"].items():
            for d, s in enumerate(strings):
                if not s.strip() or digit_of.setdefault(s, d) != d:
                    raise ValueError(f"{lang} {form} digit {d}: {s!r} is empty or ambiguous")


def ambiguous(table: dict[str, dict]) -> dict[str, dict[str, int]]:
    """Strings that stand for different digits in different languages: string -> {lang: digit}."""
    seen: dict[str, dict[str, int]] = {}
    for lang, entry in table.items():
        for strings in entry["forms"].values():
            for d, s in enumerate(strings):
                seen.setdefault(s, {})[lang] = d
    return {s: langs for s, langs in sorted(seen.items()) if len(set(langs.values())) > 1}


def build() -> dict:
    """The table: versions, then per language its family, script and forms."""
    table = {}
    for lang, family in LANGUAGES.items():
        entry_forms = forms(lang)
        table[lang] = {"family": family, "script": script_of(entry_forms["word"][1]),
                       "forms": entry_forms}
    check_table(table)
    return {"num2words_version": importlib.metadata.version("num2words"),
            "anyascii_version": importlib.metadata.version("anyascii"),
            "languages": table}


def dumps(table: dict) -> str:
    """The table as JSON, one form (ten strings) per line, UTF-8 characters as they are."""
    def line(value: object) -> str:
        return json.dumps(value, ensure_ascii=False)

    head = [f' {line(k)}: {line(v)},' for k, v in table.items() if k != "languages"]
    langs = []
    for lang, entry in table["languages"].items():
        rows = ",\n".join(f"    {line(f)}: {line(s)}" for f, s in entry["forms"].items())
        langs.append(f'  {line(lang)}: {{"family": {line(entry["family"])}, '
                     f'"script": {line(entry["script"])}, "forms": {{\n{rows}\n  }}}}')
    return "{\n" + "\n".join(head) + '\n "languages": {\n' + ",\n".join(langs) + "\n }\n}\n"


def summary(table: dict) -> dict:
    """What the manifest records of the text build."""
    langs = table["languages"]
    strings = {s for e in langs.values() for ss in e["forms"].values() for s in ss}
    return {"num2words_version": table["num2words_version"],
            "anyascii_version": table["anyascii_version"],
            "languages": list(langs),
            "forms_per_language": {k: " ".join(e["forms"]) for k, e in langs.items()},
            "distinct_strings": len(strings),
            "ambiguous_across_languages": ambiguous(langs)}


def write_manifest(info: dict) -> None:
    """Add (or replace) the text table's sha256, size and build summary in data/manifest.json."""
    manifest = json.loads(MANIFEST.read_text()) if MANIFEST.is_file() else {"files": {}}
    data = OUT.read_bytes()
    manifest["files"][OUT.name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    manifest["files"] = dict(sorted(manifest["files"].items()))
    manifest["text_build"] = info
    MANIFEST.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")


def main() -> None:
    """Build the table, write it and the manifest entry, print the summary."""
    try:
        table = build()
    except ImportError as err:
        sys.exit(f"{err}; the text build needs {REQUIREMENTS}")
    OUT.write_text(dumps(table), encoding="utf-8")
    info = summary(table)
    write_manifest(info)
    print(json.dumps(info, indent=2, ensure_ascii=False))
    print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes) and {MANIFEST}")


if __name__ == "__main__":
    main()
