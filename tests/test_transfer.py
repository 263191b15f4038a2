"""Parameter transfer: weight copying, freezing, few-shot draws, transfer models, the cache."""

import wave

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from mmlearn_helpers import transfer
from mmlearn_helpers.data import load_dataset
from mmlearn_helpers.models import classifier, conv_encoder, encoder_of
from mmlearn_helpers.training import fit, predict_proba
from mmlearn_helpers.transfer import (
    NEW_HEAD_METHODS,
    cached_model,
    copy_weights,
    encoder_features,
    few_shot_indices,
    fit_linear_head,
    freeze,
    learning_curve,
    transfer_model,
    transfer_targets,
)


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    return (data.images / 16.0).astype(np.float32)[..., None], data.target.astype(np.int64)


@pytest.fixture(scope="module")
def source(digits):
    """A small CNN trained on the first 900 handwritten digits (all classes)."""
    x, y = digits
    keras.utils.set_random_seed(0)
    model = classifier(conv_encoder((8, 8, 1), (8, 16)))
    fit(model, x[:900], y[:900], epochs=10, lr=1e-2, seed=0, batch_size=64)
    return model


def build(filters=(8, 16), seed=1):
    keras.utils.set_random_seed(seed)
    return classifier(conv_encoder((8, 8, 1), filters))


def test_copy_weights_copies_exactly_the_named_layers():
    src, dst = build(seed=1), build(seed=2)
    before = {layer.name: layer.get_weights() for layer in encoder_of(dst).layers}
    copied = copy_weights(src, dst, ["block0_conv", "block0_bn"])
    assert copied == ["block0_conv", "block0_bn"]
    for layer in encoder_of(dst).layers:
        for got, old, new in zip(layer.get_weights(), before[layer.name],
                                 encoder_of(src).get_layer(layer.name).get_weights(), strict=True):
            np.testing.assert_array_equal(got, new if layer.name in copied else old)
    assert not np.array_equal(dst.get_layer("head").get_weights()[0],
                              src.get_layer("head").get_weights()[0])


def test_copy_weights_default_copies_every_shared_layer():
    src, dst = build(seed=1), build(seed=2)
    copied = copy_weights(src, dst)
    assert copied == ["block0_conv", "block0_bn", "block1_conv", "block1_bn", "head"]
    for a, b in zip(src.get_weights(), dst.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_copy_weights_between_image_and_audio_encoders():
    image, audio = conv_encoder((8, 8, 1), (8, 16)), conv_encoder((32, 40, 1), (8, 16))
    assert copy_weights(image, audio) == ["block0_conv", "block0_bn", "block1_conv", "block1_bn"]
    np.testing.assert_array_equal(image.get_layer("block1_conv").get_weights()[0],
                                  audio.get_layer("block1_conv").get_weights()[0])


def test_copy_weights_refuses_mismatched_shapes_and_unknown_layers():
    src, dst = build((8, 16)), build((8, 32))
    before = [w.copy() for w in dst.get_weights()]
    with pytest.raises(ValueError, match="'block1_conv'.*shapes"):
        copy_weights(src, dst)
    for a, b in zip(before, dst.get_weights(), strict=True):  # nothing copied on error
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="not weighted layers"):
        copy_weights(src, dst, ["block7_conv"])
    with pytest.raises(TypeError, match="list of layer names"):
        copy_weights(src, dst, "block0_conv")


def test_freeze_really_freezes_weights_and_batchnorm_statistics(digits):
    x, y = digits
    model = build()
    encoder = freeze(encoder_of(model))
    assert not encoder.trainable and all(not w.trainable for w in encoder.weights)
    enc_before = [w.copy() for w in encoder.get_weights()]
    head_before = model.get_layer("head").get_weights()[0].copy()
    fit(model, x[:200], y[:200], epochs=3, lr=1e-2, seed=0)
    for a, b in zip(enc_before, encoder.get_weights(), strict=True):  # incl. BN moving stats
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(head_before, model.get_layer("head").get_weights()[0])
    freeze(encoder, trainable=True)
    fit(model, x[:200], y[:200], epochs=1, lr=1e-2, seed=0)
    assert not np.allclose(enc_before[0], encoder.get_weights()[0])
    with pytest.raises(TypeError, match="trainable"):
        freeze(encoder, trainable="no")


def test_few_shot_draws_k_per_class_nested_and_seeded(digits):
    x, y = digits
    idx1, idx5 = few_shot_indices(y, 1, seed=3), few_shot_indices(y, 5, seed=3)
    assert np.bincount(y[idx5]).tolist() == [5] * 10
    assert set(idx1) <= set(idx5)
    np.testing.assert_array_equal(idx5, few_shot_indices(y, 5, seed=3))
    assert not np.array_equal(idx5, few_shot_indices(y, 5, seed=4))
    assert np.bincount(y[few_shot_indices(y, 2, seed=0)]).tolist() == [2] * 10


def test_few_shot_refuses_k_larger_than_a_class():
    y = np.array([0] * 12 + [1] * 3 + [2] * 7)
    with pytest.raises(ValueError, match=r"k=5 is larger than the 3 training examples of class 1"):
        few_shot_indices(y, 5, seed=0)
    with pytest.raises(ValueError, match="k=0"):
        few_shot_indices(y, 0, seed=0)


def test_transfer_model_methods(source):
    with pytest.raises(ValueError, match=r"method='frozn'.*\('scratch', 'frozen', 'finetuned', "):
        transfer_model("frozn", source)
    src_enc = encoder_of(source)
    scratch = encoder_of(transfer_model("scratch", source, seed=0))
    frozen = encoder_of(transfer_model("frozen", source))
    tuned = encoder_of(transfer_model("finetuned", source))
    w = src_enc.get_layer("block1_conv").get_weights()[0]
    assert not np.allclose(scratch.get_layer("block1_conv").get_weights()[0], w)
    for enc in (frozen, tuned):
        for a, b in zip(src_enc.get_weights(), enc.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
    assert not frozen.trainable and scratch.trainable
    assert tuned.get_layer("block0_conv").trainable and not tuned.get_layer("block0_bn").trainable
    big = transfer_model("frozen", source, input_shape=(28, 28, 1), n_classes=3)
    assert big.outputs[0].shape[1:] == (3,)
    assert predict_proba(big, np.zeros((2, 28, 28, 1), np.float32)).shape == (2, 3)


def test_source_head_methods_keep_the_source_classifier(source, digits):
    x, _ = digits
    zero_shot, tuned = transfer_model("zero_shot", source), transfer_model("source_head", source)
    np.testing.assert_allclose(predict_proba(zero_shot, x[1500:]), predict_proba(source, x[1500:]),
                               atol=1e-6)
    np.testing.assert_array_equal(tuned.get_layer("head").get_weights()[0],
                                  source.get_layer("head").get_weights()[0])
    assert not encoder_of(zero_shot).trainable
    assert tuned.get_layer("head").trainable
    assert not encoder_of(tuned).get_layer("block0_bn").trainable
    with pytest.raises(ValueError, match="n_classes=3 with method='source_head'.*10 classes"):
        transfer_model("source_head", source, n_classes=3)


def test_learning_curve_fine_tunes_from_the_source_head(source, digits):
    """zero_shot is the source as it is, at every k; source_head starts there and then trains."""
    x, y = digits
    args = (x[900:1400], y[900:1400], x[1400:], y[1400:])
    opts = {"ks": (1, 3), "seeds": (0, 1), "finetune_steps": 10, "verbose": False,
            "methods": ("zero_shot", "source_head")}
    rows, summary = learning_curve(source, *args, **opts)
    again, _ = learning_curve(source, *args, **opts)
    assert [r["accuracy"] for r in rows] == [r["accuracy"] for r in again]
    source_acc = float(np.mean(predict_proba(source, x[1400:]).argmax(1) == y[1400:]))
    assert [r["accuracy"] for r in rows if r["method"] == "zero_shot"] == pytest.approx(
        [source_acc] * 4)
    still, _ = learning_curve(source, *args, **{**opts, "finetune_lr": 1e-12})
    assert all(r["accuracy"] == pytest.approx(source_acc) for r in still)  # the start is the source
    moved = [r["accuracy"] for r in rows if r["method"] == "source_head"]
    assert moved != pytest.approx([source_acc] * 4)  # and the fine-tuning changes it
    assert [(r["method"], r["k"]) for r in summary] == [
        ("zero_shot", 1), ("source_head", 1), ("zero_shot", 3), ("source_head", 3)]


def test_learning_curve_refuses_a_source_head_that_does_not_fit(digits):
    x, y = digits
    keras.utils.set_random_seed(0)
    flat = classifier(conv_encoder((8, 8, 1), (4,), pooling="flatten"))
    big = np.zeros((40, 12, 12, 1), np.float32)
    with pytest.raises(ValueError, match="layer 'head'"):
        learning_curve(flat, big, y[:40], big[:20], y[:20], ks=(1,), methods=("source_head",),
                       verbose=False)


def test_fit_linear_head_matches_scikit_learn(source, digits):
    x, y = digits
    model = transfer_model("frozen", source)
    idx = 900 + few_shot_indices(y[900:], 3, seed=0)
    x_k, y_k = x[idx], y[idx]
    fit_linear_head(model, x_k, y_k, C=0.5)
    feats = encoder_features(model, x_k)
    scaler = StandardScaler().fit(feats)
    clf = LogisticRegression(C=0.5, max_iter=2000).fit(scaler.transform(feats), y_k)
    test = x[1500:]
    expected = clf.predict_proba(scaler.transform(encoder_features(model, test)))
    np.testing.assert_allclose(predict_proba(model, test), expected, atol=1e-4)
    with pytest.raises(ValueError, match="every class"):
        fit_linear_head(model, x_k[y_k < 5], y_k[y_k < 5])


def test_transferred_beats_scratch_on_a_fixed_small_case(source, digits):
    """Source: 900 labelled digits; target: 2 labels per class of other writers' digits."""
    x, y = digits
    rows, summary = learning_curve(source, x[900:1400], y[900:1400], x[1400:], y[1400:],
                                   ks=(2,), seeds=(0, 1), steps=60, finetune_steps=20,
                                   verbose=False)
    assert len(rows) == len(NEW_HEAD_METHODS) * 2
    acc = {row["method"]: row["accuracy"] for row in summary}
    assert acc["frozen"] > acc["scratch"] + 0.15
    assert acc["finetuned"] > acc["scratch"] + 0.15
    assert {"accuracy_std", "macro_f1", "n"} <= set(summary[0])


def test_learning_curve_takes_one_source_per_seed(source, digits):
    x, y = digits
    keras.utils.set_random_seed(5)
    untrained = classifier(conv_encoder((8, 8, 1), (8, 16)))
    args = (x[900:1200], y[900:1200], x[1400:1600], y[1400:1600])
    opts = {"ks": (2,), "seeds": (0, 1), "steps": 10, "finetune_steps": 5, "verbose": False}
    one, _ = learning_curve(source, *args, **opts)
    same, _ = learning_curve({0: source, 1: source}, *args, **opts)
    mixed, _ = learning_curve({0: source, 1: untrained}, *args, **opts)
    acc = {(r["method"], r["seed"]): r["accuracy"] for r in mixed}
    assert [r["accuracy"] for r in one] == [r["accuracy"] for r in same]
    assert acc["frozen", 0] == next(r["accuracy"] for r in one
                                    if r["method"] == "frozen" and r["seed"] == 0)
    assert acc["frozen", 0] > acc["frozen", 1] + 0.2  # seed 1 read an untrained source
    assert all(r["correct"].shape == (200,) and r["correct"].mean() == pytest.approx(r["accuracy"])
               for r in one)
    with pytest.raises(ValueError, match="no model for seeds \\[1\\]"):
        learning_curve({0: source}, *args, **opts)
    with pytest.raises(TypeError, match="expected a keras.Model or a dict"):
        learning_curve([source], *args, **opts)


def test_learning_curve_refuses_bad_arguments_before_training(source, digits):
    x, y = digits
    with pytest.raises(ValueError, match="k=500 is larger than"):
        learning_curve(source, x[:300], y[:300], x[300:400], y[300:400], ks=(1, 500),
                       verbose=False)
    with pytest.raises(ValueError, match="method='linear'"):
        learning_curve(source, x[:300], y[:300], x[300:400], y[300:400], methods=("linear",),
                       verbose=False)
    with pytest.raises(ValueError, match="x_train has shape"):
        learning_curve(source, x[:300, :, :, 0], y[:300], x[300:400], y[300:400], verbose=False)


def test_cached_model_trains_once_then_loads(tmp_path, digits):
    x, y = digits
    calls = []

    def train(model):
        calls.append(1)
        fit(model, x[:100], y[:100], epochs=1, lr=1e-2, seed=0)

    first = cached_model({"source": "toy", "v": 1}, lambda: build(seed=4), train, tmp_path)
    cached_model({"source": "toy", "v": 1}, lambda: build((8, 8), seed=4), train, tmp_path)
    assert len(calls) == 2  # another architecture, another file
    again = cached_model({"source": "toy", "v": 1}, lambda: build(seed=9), train, tmp_path)
    assert len(calls) == 2
    for a, b in zip(first.get_weights(), again.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    cached_model({"source": "toy", "v": 2}, lambda: build(seed=4), train, tmp_path)
    assert len(calls) == 3
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len([f for f in files if f.endswith(".weights.h5")]) == 3
    assert not [f for f in files if f.startswith(".tmp-")]
    for path in tmp_path.glob("*.weights.h5"):  # a corrupt file is retrained and replaced
        path.write_bytes(b"not hdf5")
    cached_model({"source": "toy", "v": 1}, lambda: build(seed=4), train, tmp_path)
    assert len(calls) == 4


def test_pretrained_source_uses_the_cache(tmp_path, monkeypatch):
    monkeypatch.setitem(transfer.PRETRAIN["printed_digits"], "fast",
                        {"epochs": 1, "lr": 3e-3, "batch_size": 64})
    model = transfer.pretrained_source("printed_digits", cache_dir=tmp_path)
    assert model.inputs[0].shape[1:] == (8, 8, 1)
    assert len(list(tmp_path.glob("printed_digits-*.weights.h5"))) == 1
    again = transfer.pretrained_source("printed_digits", cache_dir=tmp_path)
    for a, b in zip(model.get_weights(), again.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="source='digits'"):
        transfer.pretrained_source("digits", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="profile='slow'"):
        transfer.pretrained_source("printed_digits", profile="slow", cache_dir=tmp_path)


def test_transfer_targets_offline_other_languages():
    from mmlearn_helpers.data import languages

    targets = transfer_targets("av_digits", seed=0, audio_options={"snr_db": (0, 10)})
    x_train, y_train, x_test, y_test = targets["image"]
    assert x_train.shape[1:] == (8, 8, 1) and len(x_test) == len(y_test)
    a_train, a_y, a_test, a_y_test = targets["audio"]
    others = [code for code in languages() if code != "en"]
    clean = load_dataset("spoken_digits", split="test", language=others)
    assert a_test.shape == clean.x["audio"].shape and np.array_equal(a_y_test, clean.y)
    assert not np.allclose(a_test, clean.x["audio"])  # the conditions were applied
    only = transfer_targets("av_digits", modalities=("image",))
    assert set(only) == {"image"}
    with pytest.raises(ValueError, match="dataset='digits'"):
        transfer_targets("digits")
    with pytest.raises(ValueError, match="modalities"):
        transfer_targets("av_digits", modalities=("video",))


def test_transfer_targets_language_picks_the_audio_voices():
    targets = transfer_targets("av_digits", modalities=("audio",), language="en")
    _, y_train, x_test, y_test = targets["audio"]
    english = load_dataset("spoken_digits", split="test", language="en")
    assert x_test.shape == english.x["audio"].shape and np.array_equal(y_test, english.y)
    assert len(y_train) == load_dataset("spoken_digits", split="train", language="en").n
    train_speakers, test_speakers = targets["speakers"]
    assert np.array_equal(test_speakers, english.meta["speaker"])
    assert len(train_speakers) == len(y_train) and not set(train_speakers) & set(test_speakers)
    with pytest.raises(ValueError, match="language='xx' is not known"):
        transfer_targets("av_digits", modalities=("audio",), language="xx")
    with pytest.raises(ValueError, match="language='en'; the avmnist audio"):
        transfer_targets("avmnist", language="en")


def _write_wav(path, samples, rate=8000):
    data = np.round(np.clip(samples, -1, 1) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(data.tobytes())


@pytest.fixture
def avmnist_dir(tmp_path):
    """A tiny local AV-MNIST: 120 + 30 random MNIST-like images, FSDD-named tone recordings."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "mnist.npz",
             x_train=rng.integers(0, 256, (120, 28, 28), dtype=np.uint8),
             y_train=(np.arange(120) % 10).astype(np.uint8),
             x_test=rng.integers(0, 256, (30, 28, 28), dtype=np.uint8),
             y_test=(np.arange(30) % 10).astype(np.uint8))
    recordings = tmp_path / "fsdd" / "recordings"
    recordings.mkdir(parents=True)
    t = np.arange(3200) / 8000
    for digit in range(10):
        for index in (0, 1, 5, 10, 11, 12):
            for speaker in ("ana", "bo"):
                tone = 0.4 * np.sin(2 * np.pi * (300 + 80 * digit + 7 * index) * t)
                _write_wav(recordings / f"{digit}_{speaker}_{index}.wav", tone * np.hanning(len(t)))
    return tmp_path


def test_real_speech_path_runs_end_to_end_on_tiny_fixtures(avmnist_dir, source):
    """The notebook's dataset="avmnist" path: MNIST 28x28 from an 8x8 source, FSDD speech."""
    targets = transfer_targets("avmnist", seed=0, data_dir=avmnist_dir,
                               audio_options={"snr_db": (0, 10), "noise": "white"})
    x_train, y_train, x_test, y_test = targets["image"]
    assert x_train.shape == (110, 28, 28, 1) and x_test.shape == (30, 28, 28, 1)
    a_train, a_y, a_test, a_y_test = targets["audio"]
    assert len(a_train) == 10 * 2 * 3  # 110 images cover every train recording, each kept once
    assert np.bincount(a_y).tolist() == [6] * 10
    assert len(a_test) <= 10 * 2 * 2  # 30 test images pair with at most 30 of the 40 recordings
    assert len(np.unique(a_test.reshape(len(a_test), -1), axis=0)) == len(a_test)

    reader = transfer_model("frozen", source, input_shape=(28, 28, 1))
    copy_weights(source, reader, ["head"])  # zero-shot at the target's image size
    assert predict_proba(reader, x_test).shape == (30, 10)
    budget = {"steps": 5, "epochs": 2, "finetune_steps": 3}
    rows, summary = learning_curve(source, x_train, y_train, x_test, y_test, ks=(1, 3),
                                   seeds=(0,), verbose=False, **budget)
    assert len(rows) == 6 and {r["k"] for r in summary} == {1, 3}
    keras.utils.set_random_seed(0)
    audio_source = classifier(conv_encoder(a_train.shape[1:], (4, 8), pooling="flatten"))
    rows, summary = learning_curve(audio_source, a_train, a_y, a_test, a_y_test, ks=(2,),
                                   seeds=(0, 1), verbose=False, **budget)
    assert {r["method"] for r in summary} == set(NEW_HEAD_METHODS)
    assert all(0 <= r["accuracy"] <= 1 for r in rows)


def test_data_fingerprint_is_stable():
    first = transfer.data_fingerprint()
    assert first == transfer.data_fingerprint() and len(first) == 20
    int(first, 16)


def test_source_recipes_are_checked_and_masks_are_seeded():
    assert transfer._check_recipe(None, "spoken_digits") == {}
    recipe = transfer._check_recipe("sim_to_real", "spoken_digits")
    assert recipe["filters"] == (32, 64, 64, 128) and "source" not in recipe
    with pytest.raises(ValueError, match="recipe='deep'"):
        transfer._check_recipe("deep", "spoken_digits")
    with pytest.raises(ValueError, match="does not fit source 'printed_digits'"):
        transfer._check_recipe("sim_to_real", "printed_digits")
    x = np.ones((50, 32, 40, 1), np.float32)
    masked = transfer._masked(x, {"mels": 6, "frames": 8}, seed=3)
    np.testing.assert_array_equal(masked, transfer._masked(x, {"mels": 6, "frames": 8}, seed=3))
    assert x.min() == 1 and 0 < (masked == 0).mean() < 0.4
    full_rows = (masked == 0).all(axis=(2, 3)).sum(axis=1)  # blanked mel bands per clip
    assert full_rows.max() <= 6


def test_transfer_targets_can_return_the_validation_split():
    val = transfer_targets("av_digits", modalities=("audio",), language="en",
                           eval_split="val")["audio"]
    english = load_dataset("spoken_digits", split="val", language="en", seed=7919)
    np.testing.assert_array_equal(val[3], english.y)
    with pytest.raises(ValueError, match="eval_split='dev'"):
        transfer_targets("av_digits", eval_split="dev")
