"""Tests of the text digits: the shipped table, splits, writing noise, tokenizer, av_digits text."""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
from collections import Counter

import numpy as np
import pytest

from mmlearn_helpers.data import SPLITS, languages, load_dataset, text_vectorizer
from mmlearn_helpers.data import text as tx
from mmlearn_helpers.data.spoken import DATA_DIR

MANIFEST = DATA_DIR / "manifest.json"


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: insertions, deletions and substitutions of one character."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def mean_edits(noise: float, seed: int = 0) -> float:
    d = load_dataset("text_digits", split="val", language="all", noise=noise, seed=seed)
    return float(np.mean([edit_distance(a, b) for a, b in zip(d.x["text"], d.meta["clean"],
                                                              strict=True)]))


# ---------------------------------------------------------------- shipped table


def test_table_matches_manifest_and_records_versions():
    manifest = json.loads(MANIFEST.read_text())
    entry = manifest["files"]["text_digits.json"]
    data = tx.TEXT_FILE.read_bytes()
    assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) == entry["bytes"]
    table = tx.shipped_text()
    build = manifest["text_build"]
    assert build["num2words_version"] == table["num2words_version"]
    assert build["anyascii_version"] == table["anyascii_version"]
    assert build["languages"] == tx.languages()


def test_table_covers_the_spoken_languages_and_several_scripts():
    codes = tx.languages()
    assert codes[0] == "en" and len(codes) >= 8 and set(languages()) <= set(codes)
    entries = tx.shipped_text()["languages"]
    assert len({e["script"] for e in entries.values()}) >= 6
    for code, entry in entries.items():
        forms = entry["forms"]
        assert all(len(strings) == 10 for strings in forms.values()), code
        assert ("ascii" in forms) == (entry["script"] != "LATIN"), code
        for strings in forms.values():  # no string stands for two digits in one language
            assert len(set(strings)) == 10, (code, strings)


def test_build_reproduces_the_shipped_table():
    for module in ("num2words", "anyascii"):
        pytest.importorskip(module)
    table = tx.shipped_text()
    for module in ("num2words", "anyascii"):
        if importlib.metadata.version(module) != table[f"{module}_version"]:
            pytest.skip(f"{module} {importlib.metadata.version(module)} is installed; the table "
                        f"was built with {table[f'{module}_version']}")
    spec = importlib.util.spec_from_file_location("build_text", DATA_DIR / "build_text_digits.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    built = build.build()
    assert build.dumps(built).encode("utf-8") == tx.TEXT_FILE.read_bytes()
    assert build.summary(built) == json.loads(MANIFEST.read_text())["text_build"]


def test_corrupt_or_missing_table_names_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"languages": {"en"')
    with pytest.raises(ValueError, match="bad.json is truncated or corrupt"):
        tx.shipped_text(bad)
    with pytest.raises(FileNotFoundError, match="missing.json does not exist"):
        tx.shipped_text(tmp_path / "missing.json")


# ---------------------------------------------------------------- shapes, splits, determinism


@pytest.mark.parametrize("split", SPLITS)
def test_shapes_dtypes_labels(split):
    d = load_dataset("text_digits", split=split, language="all", noise=0.3)
    x = d.x["text"]
    assert d.name == "text_digits" and d.split == split and d.modalities == ("text",)
    assert x.shape == (d.n,) and x.dtype.kind == "U" and all(isinstance(s, str) for s in x[:5])
    assert d.y.dtype == np.int64 and set(np.bincount(d.y, minlength=10)) == {d.n // 10}
    assert set(d.meta) == {"language", "script", "form", "template", "clean"}
    assert set(d.meta["language"]) == set(tx.languages())
    assert all(len(v) == d.n for v in d.meta.values())


def test_default_is_english_clean_and_options_select():
    d = load_dataset("text_digits", split="test")
    assert set(d.meta["language"]) == {"en"}
    assert np.array_equal(d.x["text"], d.meta["clean"])
    assert "seven" in d.meta["clean"][d.y == 7][0].lower()
    both = load_dataset("text_digits", split="test", language=["fr", "ru"])
    assert set(both.meta["language"]) == {"fr", "ru"}
    assert load_dataset("text_digits", split="test", n=7).n == 7


def test_same_seed_same_strings_other_seed_other_noise():
    a, b, c = (load_dataset("text_digits", split="val", language="all", noise=0.3, seed=s)
               for s in (1, 1, 2))
    assert np.array_equal(a.x["text"], b.x["text"]) and np.array_equal(a.y, b.y)
    assert not np.array_equal(a.x["text"], c.x["text"])
    assert np.array_equal(a.meta["clean"], c.meta["clean"])  # n=None: the same clean strings


def test_splits_share_no_frame_and_no_clean_string():
    parts = {s: load_dataset("text_digits", split=s, language="all") for s in SPLITS}
    for i, one in enumerate(SPLITS):
        for other in SPLITS[i + 1:]:
            for key in ("template", "clean"):
                shared = set(parts[one].meta[key]) & set(parts[other].meta[key])
                assert not shared, (one, other, key, sorted(shared)[:5])
    # val resembles test: one new frame of every kind each, the same languages and forms
    kind_of = {f: k for k, (train, val, test) in tx.FRAMES.items() for f in (*train, val, test)}
    for split in ("val", "test"):
        assert sorted(kind_of[f] for f in set(parts[split].meta["template"])) == sorted(tx.FRAMES)
    for key in ("language", "form"):
        assert Counter(parts["val"].meta[key]) == Counter(parts["test"].meta[key])


def test_n_draws_passes_over_the_split_and_may_exceed_it():
    pool = load_dataset("text_digits", split="test").n
    d = load_dataset("text_digits", split="test", n=5 * pool + 7, seed=4)
    counts = Counter(d.meta["clean"].tolist())
    assert len(counts) == pool and max(counts.values()) - min(counts.values()) <= 1
    assert np.array_equal(
        d.x["text"], load_dataset("text_digits", split="test", n=5 * pool + 7, seed=4).x["text"])


# ---------------------------------------------------------------- writing noise


def test_noise_zero_is_clean_and_more_noise_edits_more():
    edits = {noise: mean_edits(noise) for noise in (0.0, 0.3, 1.0)}
    assert edits[0.0] == 0
    assert 0 < edits[0.3] < edits[1.0], edits
    d = load_dataset("text_digits", split="val", language="all", noise=1.0)
    per_char = np.mean([edit_distance(a, b) / len(b)
                        for a, b in zip(d.x["text"], d.meta["clean"], strict=True)])
    assert per_char > 0.25, f"noise=1 edits only {per_char:.2f} of the characters"
    assert np.array_equal(d.y, load_dataset("text_digits", split="val", language="all").y)


def test_edits_are_the_documented_kinds():
    rng = np.random.default_rng(0)
    assert {tx._edit("keyboard", "s", 0, rng, "x")[0] for _ in range(200)} == set("awedxz")
    assert tx._edit("keyboard", "S", 0, rng, "x")[0] in set("AWEDXZ")
    assert tx._edit("keyboard", "ф", 0, rng, "x")[0] in set("йцыяч")
    assert tx._edit("ocr", "rna", 0, rng, "x") == ("m", 2)
    assert tx._edit("ocr", "o", 0, rng, "x")[0] in {"0", "O"}
    assert tx._edit("ocr", "с", 0, rng, "x") == ("c", 1)  # Cyrillic es read as Latin c
    assert tx._edit("accent", "é", 0, rng, "x") == ("e", 1)
    assert tx._edit("case", "q", 0, rng, "x") == ("Q", 1)
    assert tx._edit("swap", "ab", 0, rng, "x") == ("ba", 2)
    assert tx._edit("drop", "ab", 0, rng, "x") == ("", 1)
    assert tx._edit("double", "ab", 0, rng, "x") == ("aa", 1)
    assert tx._edit("keyboard", "٣", 0, rng, "x") == ("x", 1)  # no key: a random character


def test_random_edits_never_write_another_digit():
    for code, entry in tx.shipped_text()["languages"].items():
        for form, strings in entry["forms"].items():
            assert not set(tx.alphabet(code, form)) & set(strings), (code, form)
    assert tx.alphabet("ar", "numeral") == tx.alphabet("ja", "word") == tx.UNREADABLE


# ---------------------------------------------------------------- tokenizer


def test_text_vectorizer_round_trip_padding_and_unknown_characters():
    train = load_dataset("text_digits", split="train", language="all").x["text"]
    layer = text_vectorizer(train, max_len=12)
    vocab = layer.get_vocabulary()
    assert vocab[:2] == ["", "[UNK]"] and len(vocab) == len(set("".join(train))) + 2
    test = load_dataset("text_digits", split="test", language="all", noise=0.5).x["text"]
    ids = np.asarray(layer(test))
    assert ids.shape == (len(test), 12) and np.issubdtype(ids.dtype, np.integer)
    assert ((ids > 0).sum(axis=1) == np.minimum([len(s) for s in test], 12)).all()  # 0 pads
    known = set(vocab[2:])
    for s, row in zip(test[:300], ids[:300], strict=True):
        if len(s) <= 12 and set(s) <= known:
            assert "".join(vocab[i] for i in row if i) == s
    odd = np.asarray(layer(np.array(["☃x", ""])))
    assert odd[0, 0] == 1 and odd[0, 1] == vocab.index("x") and not odd[1].any()


def test_text_vectorizer_ngrams_and_errors():
    layer = text_vectorizer(["zero", "one"], max_len=20, ngrams=2)
    assert "z e" in layer.get_vocabulary()
    with pytest.raises(ValueError, match="max_len=0"):
        text_vectorizer(["zero"], max_len=0)
    with pytest.raises(TypeError, match="ngrams=1.5"):
        text_vectorizer(["zero"], ngrams=1.5)
    with pytest.raises(ValueError, match="standardize='upper'"):
        text_vectorizer(["zero"], standardize="upper")
    with pytest.raises(ValueError, match="texts has shape"):
        text_vectorizer([])


# ---------------------------------------------------------------- av_digits with text


def test_av_digits_text_is_opt_in_and_matches_each_pair():
    plain = load_dataset("av_digits", split="val", seed=2, language="all")
    both = load_dataset("av_digits", split="val", seed=2, language="all", text=True)
    assert "text" not in plain.x and set(both.x) == {"image", "audio", "text"}
    for key in ("image", "audio"):
        assert np.array_equal(plain.x[key], both.x[key])
    assert np.array_equal(plain.y, both.y)
    assert all(np.array_equal(v, both.meta[k]) for k, v in plain.meta.items())
    assert np.array_equal(both.x["text"], both.meta["text_clean"])
    assert np.array_equal(both.meta["text_language"], both.meta["language"])
    clean, y, meta = tx.clean_texts("val", "all")
    digit_of = dict(zip(zip(meta["language"], clean, strict=True), y, strict=True))
    found = [digit_of[key] for key in zip(both.meta["text_language"], both.x["text"],
                                          strict=True)]
    assert np.array_equal(found, both.y)
    noisy = load_dataset("av_digits", split="val", seed=2, language="all", text=True,
                         text_noise=0.5)
    assert np.array_equal(noisy.meta["text_clean"], both.meta["text_clean"])
    assert (noisy.x["text"] != both.x["text"]).mean() > 0.5


def test_avmnist_text_is_english_and_with_ids_encodes_it(avmnist_dir):
    pairs = load_dataset("avmnist", split="test", data_dir=avmnist_dir, seed=1, text=True,
                         text_noise=0.2)
    assert set(pairs.x) == {"image", "audio", "text"} and set(pairs.meta["text_language"]) == {"en"}
    clean, y, _ = tx.clean_texts("test", "en")
    digit_of = dict(zip(clean, y, strict=True))
    assert [digit_of[t] for t in pairs.meta["text_clean"]] == pairs.y.tolist()
    ids = tx.with_ids(pairs)
    assert ids.x["text"].shape == (pairs.n, tx.MAX_LEN) and ids.x["text"].dtype == np.int32
    assert np.array_equal(ids.x["text"], tx.encode(pairs.x["text"]))
    assert np.array_equal(ids.x["image"], pairs.x["image"]) and np.array_equal(ids.y, pairs.y)
    with pytest.raises(ValueError, match="already encoded"):
        tx.with_ids(ids)
    with pytest.raises(ValueError, match=r"expected a Dataset with x\['text'\]"):
        tx.with_ids(load_dataset("digits"))


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda: load_dataset("text_digits", language="xx"), ValueError, "language='xx'"),
        (lambda: load_dataset("text_digits", language=["en", "zz"]), ValueError,
         "language='zz' is not known"),
        (lambda: load_dataset("text_digits", language=3), TypeError, "language=3"),
        (lambda: load_dataset("text_digits", language=[]), TypeError, "language=[]"),
        (lambda: load_dataset("text_digits", noise=1.5), ValueError, "noise=1.5"),
        (lambda: load_dataset("text_digits", noise=-0.1), ValueError, "noise=-0.1"),
        (lambda: load_dataset("text_digits", noise="lots"), TypeError, "noise='lots'"),
        (lambda: load_dataset("text_digits", split="dev"), ValueError, "split='dev'"),
        (lambda: load_dataset("text_digits", split="source"), ValueError, "split='source'"),
        (lambda: load_dataset("text_digits", n=0), ValueError, "n=0"),
        (lambda: load_dataset("text_digits", n=2.5), TypeError, "n=2.5"),
        (lambda: load_dataset("text_digits", snr_db=3), TypeError, "snr_db"),
        (lambda: load_dataset("av_digits", text="yes"), ValueError, "text='yes'"),
        (lambda: load_dataset("av_digits", text=True, text_noise=2), ValueError, "text_noise=2"),
        (lambda: load_dataset("av_digits", text_noise=0.3), ValueError, "expected text=True"),
    ],
)
def test_errors_name_argument_and_value(call, error, words):
    with pytest.raises(error, match=words.replace("[", r"\[").replace("(", r"\(")):
        call()
