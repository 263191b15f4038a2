"""Structure transfer: copying encoder weights across modalities and comparing starts."""

import keras
import numpy as np
import pytest

from mmlearn_helpers.data import load_dataset
from mmlearn_helpers.models import classifier, conv_encoder, count_params, mlp_encoder
from mmlearn_helpers.structure import (
    compare_starts,
    conv_layer_names,
    matched_mlp_units,
    start_from,
)

AUDIO = (32, 40, 1)


def _conv(shape, seed):
    keras.utils.set_random_seed(seed)
    return classifier(conv_encoder(shape, (4, 8)))


def test_image_conv_kernels_copy_into_an_audio_model_and_nothing_else():
    image, audio = _conv((8, 8, 1), 0), _conv(AUDIO, 1)
    bn_before = audio.get_layer("encoder").get_layer("block0_bn").get_weights()
    copied = start_from(audio, image, conv_layer_names(image))
    assert copied == ["block0_conv", "block1_conv"]
    src, dst = image.get_layer("encoder"), audio.get_layer("encoder")
    for name in copied:
        np.testing.assert_array_equal(src.get_layer(name).get_weights()[0],
                                      dst.get_layer(name).get_weights()[0])
    for a, b in zip(bn_before, dst.get_layer("block0_bn").get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # BatchNorm not in the list: untouched
    assert not np.allclose(audio.get_layer("head").get_weights()[0],
                           image.get_layer("head").get_weights()[0])


def test_start_from_refuses_mismatched_filters():
    with pytest.raises(ValueError, match="shapes"):
        start_from(_conv(AUDIO, 0), classifier(conv_encoder((8, 8, 1), (8, 8))))


def test_matched_mlp_has_about_the_conv_models_parameter_count():
    target = count_params(classifier(conv_encoder(AUDIO)))
    units = matched_mlp_units(AUDIO, target)
    got = count_params(classifier(mlp_encoder(AUDIO, (units,))))
    assert abs(got - target) / target < 0.05, (units, got, target)
    with pytest.raises(ValueError, match="n_params=0"):
        matched_mlp_units(AUDIO, 0)


def test_compare_starts_trains_each_start_on_the_same_subsets():
    train, test = load_dataset("digits", split="train"), load_dataset("digits", split="test")
    starts = {"conv": lambda s: _conv((8, 8, 1), s),
              "mlp": lambda s: classifier(mlp_encoder((8, 8, 1), (16,)))}
    rows, summary = compare_starts(starts, train.x["image"], train.y, test.x["image"], test.y,
                                   k=5, seeds=(0, 1), epochs=30, verbose=False)
    assert [(r["start"], r["seed"]) for r in rows] == [
        ("conv", 0), ("mlp", 0), ("conv", 1), ("mlp", 1)]
    assert [s["start"] for s in summary] == ["conv", "mlp"]
    assert all(s["n"] == 2 and s["accuracy"] > 0.3 for s in summary), summary


def test_compare_starts_refuses_bad_arguments():
    train = load_dataset("digits", split="train")
    x, y = train.x["image"], train.y
    good = {"conv": lambda s: _conv((8, 8, 1), s)}
    with pytest.raises(ValueError, match="k=200 is larger"):
        compare_starts(good, x, y, x, y, k=200, verbose=False)
    with pytest.raises(TypeError, match="callable"):
        compare_starts({"conv": 3}, x, y, x, y, verbose=False)
    with pytest.raises(ValueError, match="reading"):
        compare_starts({"audio": lambda s: _conv(AUDIO, s)}, x, y, x, y, k=1, seeds=(0,),
                       epochs=1, verbose=False)
    with pytest.raises(ValueError, match="non-empty"):
        compare_starts({}, x, y, x, y, verbose=False)
