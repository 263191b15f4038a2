"""Feature transfer helpers: raw and encoded features, scikit-learn probes, 2-D embeddings."""

import numpy as np
import pytest

from mmlearn_helpers.data import load_dataset
from mmlearn_helpers.features import (
    ALL,
    encode,
    flatten,
    make_probe,
    probe_runs,
    probe_score,
)
from mmlearn_helpers.models import classifier, conv_encoder


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", split="train"), load_dataset("digits", split="test")


def test_flatten_gives_one_row_per_sample(digits):
    train, _ = digits
    flat = flatten(train.x["image"])
    assert flat.shape == (train.n, 64) and flat.dtype == np.float32
    np.testing.assert_array_equal(flat[3], train.x["image"][3].ravel())
    with pytest.raises(TypeError, match="dict"):
        flatten(train.x)


def test_probe_on_raw_pixels_learns_handwritten_digits(digits):
    train, test = digits
    for kind in ("logistic", "svm"):
        scores = probe_score(flatten(train.x["image"]), train.y, flatten(test.x["image"]),
                             test.y, kind=kind)
        assert scores["accuracy"] > 0.9, (kind, scores)


def test_probe_refuses_bad_arguments(digits):
    train, test = digits
    x, xt = flatten(train.x["image"]), flatten(test.x["image"])
    with pytest.raises(ValueError, match="kind='forest'"):
        make_probe("forest")
    with pytest.raises(ValueError, match="C=0"):
        make_probe("svm", C=0)
    with pytest.raises(ValueError, match="same feature count"):
        probe_score(x, train.y, xt[:, :10], test.y)
    with pytest.raises(ValueError, match="feature matrix"):
        probe_score(train.x["image"], train.y, xt, test.y)
    with pytest.raises(ValueError, match="labels"):
        probe_score(x, train.y[:-1], xt, test.y)


def test_probe_runs_uses_the_same_subsets_for_every_feature_set(digits):
    train, test = digits
    raw = (flatten(train.x["image"]), flatten(test.x["image"]))
    sets = {"raw": raw, "raw again": raw}
    rows, summary = probe_runs(sets, train.y, test.y, ks=(2, ALL), seeds=(0, 1),
                               probes=("logistic",), verbose=False)
    assert len(rows) == (2 + 1) * 2  # k=2 for two seeds, "all" once; two feature sets
    by = {(r["features"], r["k"], r["seed"]): r["accuracy"] for r in rows}
    for k, seed in ((2, 0), (2, 1), (ALL, 0)):
        assert by[("raw", k, seed)] == by[("raw again", k, seed)]
    assert by[("raw", 2, 0)] != by[("raw", 2, 1)]  # different seeds, different subsets
    assert {(s["features"], s["k"]) for s in summary} == {(n, k) for n in sets for k in (2, ALL)}
    full = next(s for s in summary if s["features"] == "raw" and s["k"] == ALL)
    assert full["accuracy"] > next(s for s in summary if s["k"] == 2)["accuracy"]


def test_probe_runs_refuses_too_large_k_and_unknown_probe(digits):
    train, test = digits
    sets = {"raw": (flatten(train.x["image"]), flatten(test.x["image"]))}
    with pytest.raises(ValueError, match="k=500 is larger"):
        probe_runs(sets, train.y, test.y, ks=(500,), verbose=False)
    with pytest.raises(ValueError, match="kind='mlp'"):
        probe_runs(sets, train.y, test.y, probes=("mlp",), verbose=False)
    with pytest.raises(ValueError, match=r"ks\[0\]=0 should be an int >= 1"):
        probe_runs(sets, train.y, test.y, ks=(0,), verbose=False)


def test_encode_reads_other_image_sizes_with_the_same_weights(digits):
    train, _ = digits
    model = classifier(conv_encoder((8, 8, 1), (4, 8)))
    x = train.x["image"][:20]
    feats = encode(model, x)
    assert feats.shape == (20, 8)
    big = np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)  # 16x16 copies of the same digits
    assert encode(model, big).shape == (20, 8)
    with pytest.raises(ValueError, match="channels"):
        encode(model, np.concatenate([x, x], axis=-1))

