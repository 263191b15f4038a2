"""Written digits: the words 0-9 in many languages (data/text_digits.json) with writing noise.

Each string is one form of a digit's word (as num2words writes it, Title or UPPER case, an
anyascii transliteration, a native numeral) inside one language-neutral frame such as "({w})".
Frames are the split unit: every frame belongs to exactly one of train / val / test, so no clean
string is shared between splits. Writing noise (typos, OCR confusions) is drawn at load time.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..checks import check_choice, check_float, check_int, check_languages
from .dataset import SPLITS, Dataset, check_split

DATA_DIR = Path(__file__).resolve().parents[2] / "data"
TEXT_FILE = DATA_DIR / "text_digits.json"
_REBUILD = ("rebuild it with `python data/build_text_digits.py` (needs pip install -e '.[data]') "
            "or restore it with `git checkout data/`")
DEFAULT_LANGUAGE = "en"
UNREADABLE = "\ufffd"  # what a decoder or OCR writes for a glyph it cannot read

# Frames around a word ("{w}"), language-neutral, grouped by kind. Per kind: the train frames,
# the val frame, the test frame; so val and test each hold one new frame of every kind.
FRAMES = {
    "suffix": (("{w}", "{w}.", "{w},"), "{w}!", "{w}?"),
    "enclose": (("({w})", "[{w}]"), "<{w}>", "{{w}}"),
    "quote": (('"{w}"', "'{w}'"), "«{w}»", "„{w}“"),
    "sign": (("#{w}", "*{w}*"), "№ {w}", "= {w}"),
    "list": (("- {w}", "• {w}"), "+ {w}", "> {w}"),
    "repeat": (("{w} {w}",), "{w}-{w}", "{w}, {w}"),
}

# Writing noise: at noise=1 each character is edited with probability sum(RATES) (0.41), the
# kind of edit drawn with these weights; the probability scales linearly with `noise`.
RATES = {"keyboard": 0.10, "ocr": 0.08, "drop": 0.06, "double": 0.05, "swap": 0.05,
         "accent": 0.04, "case": 0.03}
_EDITS = tuple(RATES)
_CUMULATIVE = np.cumsum([RATES[k] for k in _EDITS]) / sum(RATES.values())
# Keyboard rows, each shifted half a key right of the one above: QWERTY and Russian JCUKEN
_LAYOUTS = (("1234567890-=", "qwertyuiop[]", "asdfghjkl;'", "zxcvbnm,./"),
            ("йцукенгшщзхъ", "фывапролджэ", "ячсмитьбю."))
# OCR look-alikes: each group's characters are read as one another
_OCR_GROUPS = ("o0O", "l1I|", "ec", "S5", "B8", "Z2", "g9q", "b6", "uv", "nh", ".,")
# ... and one-way: Latin letter pairs read as one letter and back, Cyrillic read as Latin
_OCR_ONE_WAY = {"rn": "m", "cl": "d", "vv": "w", "m": "rn", "d": "cl", "w": "vv"} | dict(
    zip("аеорсхуіАВЕКМНОРСТХ", "aeopcxyiABEKMHOPCTX", strict=True))


def _neighbours() -> dict[str, str]:
    """Each key of the layouts -> the keys touching it (same row, the row above and below)."""
    out: dict[str, str] = {}
    for rows in _LAYOUTS:
        for r, row in enumerate(rows):
            for c, key in enumerate(row):
                near = [row[c - 1] if c else "", row[c + 1:c + 2]]
                if r:
                    near.append(rows[r - 1][c:c + 2])
                if r + 1 < len(rows):
                    near.append(rows[r + 1][max(c - 1, 0):c + 1])
                out[key] = "".join(near)
    return out


def _look_alikes() -> dict[str, tuple[str, ...]]:
    """Each character (or letter pair) -> what OCR may read instead."""
    out: dict[str, list[str]] = {}
    for group in _OCR_GROUPS:
        for ch in group:
            out.setdefault(ch, []).extend(o for o in group if o != ch)
    for src, dst in _OCR_ONE_WAY.items():
        out.setdefault(src, []).append(dst)
    return {k: tuple(v) for k, v in out.items()}


NEIGHBOURS = _neighbours()
LOOK_ALIKES = _look_alikes()


@lru_cache(maxsize=2)
def _table(path: str) -> dict:
    try:
        table = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{path} does not exist; {_REBUILD}") from err
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is truncated or corrupt ({err}); {_REBUILD}") from err
    if not isinstance(table, dict) or not isinstance(table.get("languages"), dict):
        raise ValueError(f"{path} lacks its 'languages' table; {_REBUILD}")
    return table


def shipped_text(path: str | Path | None = None) -> dict:
    """The table of data/text_digits.json (cached per process): versions, forms per language."""
    return _table(str(TEXT_FILE if path is None else path))


def languages() -> list[str]:
    """Language codes of the shipped text digits, English ("en") first."""
    return list(shipped_text()["languages"])


def check_language(language: str | Sequence[str]) -> tuple[str, ...]:
    """A code, a list of codes or "all" -> tuple of known text-digit languages."""
    return check_languages(language, languages())


def frames(split: str) -> tuple[str, ...]:
    """The frames of one split, kind by kind (see FRAMES)."""
    split = check_split(split)
    if split == "train":
        return tuple(f for train, _, _ in FRAMES.values() for f in train)
    return tuple(kind[SPLITS.index(split)] for kind in FRAMES.values())


def alphabet(language: str, form: str) -> str:
    """What a random edit writes in one language and form: the characters of the form's ten
    strings, less any that is a digit's whole string (a random edit must not write another
    digit); UNREADABLE where nothing is left (numerals, kanji, hangul syllables)."""
    strings = shipped_text()["languages"][language]["forms"][form]
    chars = set("".join(strings)) - set(strings)
    return "".join(sorted(chars)) or UNREADABLE


@lru_cache(maxsize=32)
def _clean(split: str, codes: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, dict]:
    table = shipped_text()["languages"]
    rows = [(frame.replace("{w}", word), digit, lang, table[lang]["script"], form, frame)
            for lang in codes for form, words in table[lang]["forms"].items()
            for frame in frames(split) for digit, word in enumerate(words)]
    text, y, lang, script, form, frame = zip(*rows, strict=True)
    meta = {"language": np.array(lang), "script": np.array(script), "form": np.array(form),
            "template": np.array(frame), "clean": np.array(text)}
    return np.array(text), np.array(y, dtype=np.int64), meta


def clean_texts(split: str = "train", language: str | Sequence[str] = DEFAULT_LANGUAGE
                ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(strings, digits, meta) of every clean string of a split: language x form x frame x digit."""
    text, y, meta = _clean(check_split(split), check_language(language))
    return text.copy(), y.copy(), {k: v.copy() for k, v in meta.items()}


def _edit(kind: str, text: str, i: int, rng: np.random.Generator, letters: str
          ) -> tuple[str, int]:
    """One edit of kind `kind` at text[i] -> (what is written instead, characters consumed).

    An edit that cannot apply there (no key, no look-alike, no accent, no case) writes a random
    character of `letters` instead.
    """
    ch = text[i]
    if kind == "drop":
        return "", 1
    if kind == "double":
        return ch + ch, 1
    if kind == "swap" and i + 1 < len(text):
        return text[i + 1] + ch, 2
    if kind == "keyboard" and ch.lower() in NEIGHBOURS:
        near = NEIGHBOURS[ch.lower()]
        key = near[rng.integers(len(near))]
        return (key.upper() if ch.isupper() else key), 1
    if kind == "ocr":
        pair = text[i:i + 2]
        options = LOOK_ALIKES.get(pair, ()) if len(pair) == 2 else ()
        if options:
            return options[rng.integers(len(options))], 2
        if ch in LOOK_ALIKES:
            return LOOK_ALIKES[ch][rng.integers(len(LOOK_ALIKES[ch]))], 1
    if kind == "accent":
        bare = "".join(c for c in unicodedata.normalize("NFD", ch) if not unicodedata.combining(c))
        if bare != ch:
            return bare, 1
    if kind == "case" and len(ch.swapcase()) == 1 and ch.swapcase() != ch:
        return ch.swapcase(), 1
    return letters[rng.integers(len(letters))], 1


def corrupt(text: str, noise: float, rng: np.random.Generator, letters: str) -> str:
    """One string with writing noise: each character edited with probability noise*sum(RATES)."""
    p_edit = noise * sum(RATES.values())
    out, i = [], 0
    while i < len(text):
        u = rng.random()
        if u >= p_edit:
            out.append(text[i])
            i += 1
            continue
        kind = _EDITS[min(int(np.searchsorted(_CUMULATIVE, u / p_edit, side="right")),
                          len(_EDITS) - 1)]
        written, used = _edit(kind, text, i, rng, letters)
        out.append(written)
        i += used
    return "".join(out)


def add_noise(texts: Sequence[str], language: Sequence[str], form: Sequence[str],
              noise: float = 0.0, seed: int | Sequence[int] = 0) -> np.ndarray:
    """Seeded writing noise on each string (keyboard typos, OCR look-alikes, drops, doubles,
    swaps, lost accents, case slips); each string's language and form give its `alphabet`."""
    noise = check_float(noise, "noise", low=0, high=1)
    if noise == 0:
        return np.array(texts, dtype=str)
    if not len(language) == len(form) == len(texts):
        raise ValueError(f"language has {len(language)} entries, form {len(form)}, texts "
                         f"{len(texts)}; expected one language and form per string")
    rng = np.random.default_rng(seed)
    keys = list(zip(language, form, strict=True))
    letters = {key: alphabet(*key) for key in set(keys)}
    return np.array([corrupt(t, noise, rng, letters[key])
                     for t, key in zip(texts, keys, strict=True)], dtype=str)


def _cycle(size: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """n indices into range(size) in shuffled passes, so each is used about as often."""
    passes = -(-n // size)
    return np.concatenate([rng.permutation(size) for _ in range(passes)])[:n]


def text_digits(
    split: str = "train",
    language: str | Sequence[str] = DEFAULT_LANGUAGE,
    noise: float = 0.0,
    n: int | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(strings (n,), digits, meta) of one split, with writing noise drawn from `seed`.

    n=None gives every clean string of the split once, in table order; an int n draws n strings
    in shuffled passes over them (so n may exceed their number), each with its own noise.
    """
    text, y, meta = clean_texts(split, language)
    noise = check_float(noise, "noise", low=0, high=1)
    rng = np.random.default_rng((seed, SPLITS.index(split)))
    if n is not None:
        pick = _cycle(len(text), check_int(n, "n", low=1), rng)
        text, y, meta = text[pick], y[pick], {k: v[pick] for k, v in meta.items()}
    strings = add_noise(text, meta["language"], meta["form"], noise, seed=rng.integers(2**32))
    return strings, y, meta


def pair_texts(y: np.ndarray, language: np.ndarray, split: str, noise: float = 0.0,
               seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """For each label (and its sample's language), a string of the same digit and language from
    the split's clean strings, in shuffled passes, with writing noise -> (strings, meta)."""
    from .paired import pair_by_label

    rng = np.random.default_rng((seed, SPLITS.index(check_split(split)), 1))
    chosen = np.empty(len(y), dtype=np.int64)
    text, y_text, meta = clean_texts(split, check_language(np.unique(language).tolist()))
    for code in np.unique(language):
        where = np.flatnonzero(language == code)
        pool = np.flatnonzero(meta["language"] == code)
        chosen[where] = pool[pair_by_label(y[where], y_text[pool], seed=rng.integers(2**32))]
    meta = {k: v[chosen] for k, v in meta.items()}
    strings = add_noise(text[chosen], meta["language"], meta["form"], noise,
                        seed=rng.integers(2**32))
    return strings, meta


def text_vectorizer(texts: Sequence[str] | np.ndarray, *, max_len: int = 32,
                    ngrams: int | None = None, standardize: str | None = None):
    """A keras.layers.TextVectorization over characters, adapted to `texts`.

    It maps a batch of strings to int64 (n, max_len): 0 pads, 1 is any character (or n-gram of
    characters, with `ngrams`) unseen in `texts`. standardize=None keeps characters as written;
    Keras' "lower" lowercases ASCII letters only.
    """
    import keras

    max_len = check_int(max_len, "max_len", low=1)
    if ngrams is not None:
        ngrams = check_int(ngrams, "ngrams", low=1)
    check_choice(standardize, "standardize",
                 (None, "lower", "strip_punctuation", "lower_and_strip_punctuation"))
    texts = np.asarray(texts)
    if texts.ndim != 1 or texts.size == 0 or texts.dtype.kind not in "UO":
        raise ValueError(f"texts has shape {texts.shape} and dtype {texts.dtype}; expected a "
                         "non-empty list of strings")
    layer = keras.layers.TextVectorization(split="character", ngrams=ngrams,
                                           standardize=standardize, output_mode="int",
                                           output_sequence_length=max_len)
    layer.adapt(texts.astype(str))
    return layer


# Length of the shared encoding: the longest clean string has 20 characters; noise may double some.
MAX_LEN = 32


@lru_cache(maxsize=1)
def _shared_vectorizer():
    """The one character vectorizer of every language (see `encode`), adapted once per process."""
    return text_vectorizer(clean_texts("train", "all")[0], max_len=MAX_LEN)


def vocabulary() -> list[str]:
    """The shared characters, by id: "" (padding, id 0), "[UNK]" (any other character, id 1), ..."""
    return [str(token) for token in _shared_vectorizer().get_vocabulary()]


def encode(texts: Sequence[str] | np.ndarray, *, max_len: int = MAX_LEN) -> np.ndarray:
    """Strings -> int32 (n, max_len) character ids, one encoding for every language.

    The ids come from `text_vectorizer` adapted once on the characters of the clean train strings
    of all languages together (the alphabet only: no label and no val or test string is used),
    so a character has the same id whatever language is encoded; any other character (a val or
    test frame's own punctuation, noise's UNREADABLE) is id 1, and 0 pads. Longer strings are cut.
    """
    max_len = check_int(max_len, "max_len", low=1)
    texts = np.asarray(texts)
    if texts.shape == (0,):
        return np.zeros((0, max_len), np.int32)
    if texts.ndim != 1 or texts.dtype.kind not in "UO":
        raise ValueError(f"texts has shape {texts.shape} and dtype {texts.dtype}; expected a "
                         "list of strings")
    ids = np.asarray(_shared_vectorizer()(texts.astype(str)), dtype=np.int32)
    if max_len <= MAX_LEN:
        return ids[:, :max_len]
    return np.pad(ids, ((0, 0), (0, max_len - MAX_LEN)))


def check_strings(texts: object, name: str) -> np.ndarray:
    """`texts` as an array of strings; character ids (text already encoded) are refused."""
    texts = np.asarray(texts)
    if texts.dtype.kind not in "UO":
        raise ValueError(f"{name} holds {texts.dtype} values; expected the strings of "
                         "load_dataset(..., text=True), not character ids (already encoded)")
    return texts


def with_ids(dataset: Dataset) -> Dataset:
    """The same Dataset with x["text"] as character ids (`encode`), what the models read."""
    if not isinstance(dataset, Dataset) or "text" not in dataset.x:
        raise ValueError(f"dataset={dataset!r}; expected a Dataset with x['text'], e.g. "
                         "load_dataset('av_digits', text=True)")
    texts = check_strings(dataset.x["text"], "dataset.x['text']")
    return Dataset(dataset.name, dataset.split, dataset.x | {"text": encode(texts)}, dataset.y,
                   dataset.meta)
