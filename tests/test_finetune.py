"""Fine-tuning helpers: freezing schedules, BatchNorm mode, class weights, resampling, masking."""

import numpy as np
import pytest

import mmlearn_helpers  # noqa: F401  (sets quiet TF logging before keras loads)
from mmlearn_helpers import finetune as ft
from mmlearn_helpers.models import classifier, conv_encoder
from mmlearn_helpers.training import fit, fit_steps, predict_proba

SHAPES = {"audio": (8, 10, 1), "image": (8, 8, 1)}


@pytest.fixture(scope="module")
def sources():
    """Two tiny "pretrained" classifiers (random weights stand in for pretraining)."""
    return {m: classifier(conv_encoder(s, (4, 8)), 10, name=f"{m}_src") for m, s in SHAPES.items()}


def _data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = {m: rng.random((n, *s), dtype=np.float32) for m, s in SHAPES.items()}
    return x, np.arange(n) % 10


def _trainable(model):
    return {id(v) for v in model.trainable_variables}


def test_pretrained_fusion_model_copies_source_encoders(sources):
    model = ft.pretrained_fusion_model(sources, seed=0)
    for m, src in sources.items():
        got = model.get_layer(f"{m}_encoder").get_weights()
        want = src.layers[1].get_weights()
        assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))
    assert _trainable(model) == _trainable(model.get_layer("head"))


def test_schedules_freeze_exactly_what_they_say(sources):
    x, y = _data()
    model = ft.pretrained_fusion_model(sources, seed=0)
    ft.set_schedule(model, "top")
    names = {v.path.split("/")[-2] for v in model.trainable_variables}
    assert names == {"block1_conv", "head"}  # BN frozen by default, lower block frozen
    before = [np.array(v) for v in model.weights]
    fit(model, x, y, epochs=2, lr=1e-2, seed=0)
    changed = {v.path for v, old in zip(model.weights, before, strict=True)
               if not np.array_equal(old, np.array(v))}
    assert changed == {"block1_conv/kernel", "head/kernel", "head/bias"}
    ft.set_schedule(model, "all", bn_training=True)
    assert any("block0_bn" in v.path for v in model.trainable_variables)
    ft.set_schedule(model, "frozen")
    assert _trainable(model) == _trainable(model.get_layer("head"))


def test_bn_training_mode_updates_moving_statistics(sources):
    x, y = _data()
    for bn_training, moves in ((False, False), (True, True)):
        model = ft.set_schedule(ft.pretrained_fusion_model(sources, seed=0), "all",
                                bn_training=bn_training)
        bn = model.get_layer("image_encoder").get_layer("block0_bn")
        mean = np.array(bn.moving_mean)
        fit(model, x, y, epochs=1, lr=1e-3, seed=0)
        assert (not np.allclose(mean, np.array(bn.moving_mean))) == moves


def test_staged_model_carries_weights_and_reports_curve(sources):
    x, y = _data()
    runner = ft.StagedModel(lambda: ft.pretrained_fusion_model(sources, seed=0))
    start = ft.pretrained_fusion_model(sources, seed=0).get_weights()
    seen = []
    model, rows = runner.run(start, x, y, stages=[("frozen", 2, 1e-2), ("all", 2, 1e-3)], seed=0,
                             x_val=x, y_val=y, eval_every=1,
                             after_stage=lambda i, s, m: seen.append((i, s)))
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4] and seen == [(1, "frozen"), (2, "all")]
    assert model is runner.model("all")
    frozen = runner.model("frozen").get_layer("audio_encoder").get_weights()
    tuned = model.get_layer("audio_encoder").get_weights()
    assert not all(np.array_equal(a, b) for a, b in zip(frozen, tuned, strict=True))
    with pytest.raises(ValueError, match="stages"):
        runner.run(start, x, y, stages=[], seed=0)
    with pytest.raises(ValueError, match="epochs"):
        runner.run(start, x, y, stages=[("all", 0, 1e-3)], seed=0)


def test_masking_zeroes_missing_modality(sources):
    x, _ = _data(10)
    model = ft.pretrained_fusion_model(sources, masked=True, seed=0)
    gap, present = ft.drop_modality(x, 0.5, seed=0)
    assert (ft.complete(present).sum(), len(present["image"])) == (5, 10)
    missing = present["audio"] == 0
    assert np.all(gap["audio"][missing] == 0)
    a = predict_proba(model, ft.with_presence(gap, present))
    other = {**gap, "audio": np.random.default_rng(1).random(gap["audio"].shape, dtype=np.float32)}
    b = predict_proba(model, ft.with_presence(other, present))
    # a masked modality's content cannot change the prediction
    np.testing.assert_allclose(a[missing], b[missing], atol=1e-6)
    assert not np.allclose(a[~missing & (present["image"] == 1)],
                           b[~missing & (present["image"] == 1)])


def test_class_weights_and_oversample():
    y = np.array([0] * 8 + [1] * 2)
    w = ft.class_weights(y, 2)
    assert w == pytest.approx({0: 10 / 16, 1: 10 / 4})
    x = np.arange(10, dtype=np.float32)[:, None]
    xo, yo = ft.oversample(x, y, seed=0)
    assert np.bincount(yo).tolist() == [8, 8]
    assert np.array_equal(np.sort(xo[yo == 0, 0]), np.arange(8))
    with pytest.raises(ValueError, match=r"no example of classes \[2\]"):
        ft.class_weights(y, 3)


def test_imbalance_indices():
    y = np.repeat(np.arange(3), 5)
    idx = ft.imbalance_indices(y, [1], 2, seed=0)
    assert np.bincount(y[idx]).tolist() == [5, 2, 5]
    with pytest.raises(ValueError, match="keep=6 is larger than the 5 examples of class 1"):
        ft.imbalance_indices(y, [1], 6, seed=0)


def test_source_metrics_unchanged_while_frozen(sources):
    x, y = _data()
    model = ft.pretrained_fusion_model(sources, seed=0)
    before = predict_proba(sources["image"], x["image"])
    fit(model, x, y, epochs=2, lr=1e-2, seed=0)
    got = ft.source_metrics(model, sources["image"], "image", x["image"], y)
    want = float((before.argmax(1) == y).mean())
    assert got["accuracy"] == pytest.approx(want)


def test_bad_arguments(sources):
    model = ft.pretrained_fusion_model(sources, seed=0)
    x, _ = _data()
    with pytest.raises(ValueError, match="schedule='some'"):
        ft.set_schedule(model, "some")
    with pytest.raises(ValueError, match="top_blocks=3 but encoder"):
        ft.set_schedule(model, "top", top_blocks=3)
    with pytest.raises(TypeError, match="bn_training"):
        ft.set_schedule(model, "all", bn_training="yes")
    with pytest.raises(ValueError, match="at least two modalities"):
        ft.pretrained_fusion_model({"image": sources["image"]})
    with pytest.raises(ValueError, match="fraction=1.5"):
        ft.drop_modality(x, 1.5, seed=0)
    with pytest.raises(ValueError, match="modalities"):
        ft.drop_modality(x, 0.5, seed=0, modalities=["video"])
    with pytest.raises(ValueError, match="present\\['image'\\] has shape"):
        ft.with_presence(x, {"image": np.ones(3)})
    with pytest.raises(ValueError, match="modality='video'"):
        ft.source_metrics(model, sources["image"], "video", x["image"], np.zeros(40, int))
    with pytest.raises(TypeError, match="build"):
        ft.StagedModel(None)


def test_fit_steps_counts_steps_not_epochs(sources):
    model = ft.set_schedule(ft.pretrained_fusion_model(sources, seed=0), "all")
    seen = []
    for n in (7, 40):  # the same budget for a tiny and a larger set
        x, y = _data(n)
        seen.clear()
        losses = fit_steps(model, x, y, steps=6, lr=1e-3, seed=0, every=2, callback=seen.append)
        assert len(losses) == 6 and seen == [2, 4, 6]
        assert int(model.optimizer.iterations.numpy()) == 6  # one Adam, not restarted by callback
    with pytest.raises(ValueError, match="steps=0 should be an int >= 1"):
        fit_steps(model, x, y, steps=0, lr=1e-3, seed=0)
    with pytest.raises(ValueError, match="every and callback go together"):
        fit_steps(model, x, y, steps=2, lr=1e-3, seed=0, every=1)
    with pytest.raises(ValueError, match="lr=2"):
        fit_steps(model, x, y, steps=2, lr=2, seed=0)
    with pytest.raises(TypeError, match="callback is a str"):
        fit_steps(model, x, y, steps=2, lr=1e-3, seed=0, every=1, callback="print")


def test_staged_model_runs_in_steps(sources):
    x, y = _data(12)
    runner = ft.StagedModel(lambda: ft.pretrained_fusion_model(sources, seed=0))
    start = ft.pretrained_fusion_model(sources, seed=0).get_weights()
    model, rows = runner.run(start, x, y, stages=[("frozen", 4, 1e-2), ("all", 5, 1e-3)], seed=0,
                             unit="steps", x_val=x, y_val=y, eval_every=2)
    assert [(r["stage"], r["step"]) for r in rows] == [(1, 2), (1, 4), (2, 6), (2, 8), (2, 9)]
    assert int(model.optimizer.iterations.numpy()) == 5
    with pytest.raises(ValueError, match="unit='batches'"):
        runner.run(start, x, y, stages=[("all", 1, 1e-3)], seed=0, unit="batches")
    with pytest.raises(ValueError, match=r"stages\[0\]\[1\] \(steps\)=0 should be an int >= 1"):
        runner.run(start, x, y, stages=[("all", 0, 1e-3)], seed=0, unit="steps")


@pytest.mark.parametrize("masked", [False, True])
def test_frozen_stage_on_features_matches_full_model(sources, masked):
    x, y = _data()
    if masked:
        x = ft.with_presence(x, {"audio": (np.arange(40) % 3 > 0).astype(np.float32)})
    runner = ft.StagedModel(lambda: ft.pretrained_fusion_model(sources, masked=masked))
    start = ft.pretrained_fusion_model(sources, masked=masked, seed=0).get_weights()
    fast, _ = runner.run(start, x, y, stages=[("frozen", 8, 1e-2)], seed=3, unit="steps")
    assert runner.heads["frozen"] is not None  # the shortcut was taken
    full = ft.set_schedule(ft.pretrained_fusion_model(sources, masked=masked), "frozen")
    full.set_weights(start)
    fit_steps(full, x, y, steps=8, lr=1e-2, seed=3)
    for a, b in zip(fast.get_weights(), full.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert not np.allclose(fast.get_layer("head").get_weights()[0], start[-2])


def test_head_model_only_for_known_layouts(sources):
    import keras

    from mmlearn_helpers.fusion import early_fusion_model

    assert ft.head_model(early_fusion_model(SHAPES, filters=(4, 8), dropout=0.2)) is not None
    inputs = {m: keras.Input(s, name=m) for m, s in SHAPES.items()}
    feats = [conv_encoder(s, (4,), name=f"{m}_encoder")(inputs[m]) for m, s in SHAPES.items()]
    h = keras.layers.Dense(5, name="extra")(keras.layers.Concatenate(name="fused_features")(feats))
    odd = keras.Model(inputs, keras.layers.Dense(10, name="head")(h))
    assert ft.head_model(odd) is None
    with pytest.raises(ValueError, match="x lacks the modalities \\['image'\\]"):
        ft.head_inputs(odd, {"audio": np.zeros((2, *SHAPES["audio"]), np.float32)})


def test_subset_scores():
    y_true = np.array([0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 1, 1, 1, 1, 2])
    got = ft.subset_scores(y_true, y_pred, [0, 2])
    assert got["rare_recall"] == pytest.approx(0.5) and got["rare_precision"] == pytest.approx(1.0)
    assert got["rare_f1"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="missing: \\[3\\]"):
        ft.subset_scores(y_true, y_pred, [0, 3])


def test_weight_counts_follow_freezing(sources):
    model = ft.pretrained_fusion_model(sources, seed=0)
    head = model.get_layer("head")
    counts = ft.weight_counts(model)
    assert counts["trainable"] == head.kernel.shape[0] * 10 + 10
    total = sum(counts.values())
    assert total == model.count_params()
    ft.set_schedule(model, "all")
    unfrozen = ft.weight_counts(model)
    assert sum(unfrozen.values()) == total and unfrozen["trainable"] > counts["trainable"]
    # BatchNorm stays frozen by default: its 4 vectors per block are all still frozen
    bns = [layer for e in ft.encoders(model).values() for layer in e.layers
           if "_bn" in layer.name]
    assert unfrozen["frozen"] == sum(layer.count_params() for layer in bns)
    with pytest.raises(TypeError, match="model is a list"):
        ft.weight_counts([])


def test_a_longer_run_repeats_the_shorter_one_first(sources):
    """A "stage 1 continued" control: the same seed gives the same first batches and updates."""
    x, y = _data()
    model = ft.pretrained_fusion_model(sources, seed=0)
    start = model.get_weights()
    short = fit_steps(model, x, y, steps=4, lr=1e-2, seed=3)
    model.set_weights(start)
    longer = fit_steps(model, x, y, steps=6, lr=1e-2, seed=3)
    np.testing.assert_allclose(longer[:4], short, rtol=1e-5)


@pytest.mark.parametrize("masked", [False, True])
def test_frozen_stage_scores_validation_as_the_full_model(sources, masked):
    from mmlearn_helpers.metrics import evaluate

    x, y = _data()
    x_val, y_val = _data(30, seed=1)
    if masked:
        x, x_val = ft.with_presence(x), ft.with_presence(x_val)
    runner = ft.StagedModel(lambda: ft.pretrained_fusion_model(sources, masked=masked))
    start = ft.pretrained_fusion_model(sources, masked=masked, seed=0).get_weights()
    model, rows = runner.run(start, x, y, stages=[("frozen", 6, 1e-2)], seed=0, unit="steps",
                             x_val=x_val, y_val=y_val, eval_every=3)
    assert [r["step"] for r in rows] == [3, 6]
    full = evaluate(y_val, predict_proba(model, x_val))["accuracy"]
    assert rows[-1]["val_accuracy"] == full
