"""Late-fusion rules, the weight sweep, modality dropout, the three fusion levels' models, and
choosing among methods on validation."""

import numpy as np
import pytest

from mmlearn_helpers.data import Dataset
from mmlearn_helpers.fusion import (
    ModalityDropout,
    best_weight,
    build_fusion_models,
    choose_on_val,
    compare_methods,
    early_fusion_model,
    feature_fusion_model,
    intermediate_fusion_model,
    late_fusion,
    late_fusion_missing,
    per_seed,
    predict_early,
    product_fusion,
    robustness_rows,
    run_seed,
    summarize_runs,
    sweep,
    sweep_curves,
    train_fusion_models,
)

P_IMG = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.4, 0.4, 0.2]])
P_AUD = np.array([[0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.0, 0.1, 0.9]])


def random_probs(n, k=10, seed=0):
    logits = np.random.default_rng(seed).normal(size=(n, k))
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def test_late_fusion_known_values():
    fused = late_fusion([P_IMG, P_AUD], 0.25)
    np.testing.assert_allclose(fused[0], [0.25 * 0.7 + 0.75 * 0.1, 0.25 * 0.2 + 0.75 * 0.8,
                                          0.25 * 0.1 + 0.75 * 0.1])
    np.testing.assert_allclose(fused, 0.25 * P_IMG + 0.75 * P_AUD)
    np.testing.assert_allclose(fused.sum(axis=1), 1)
    np.testing.assert_allclose(late_fusion([P_IMG, P_AUD], [0.25, 0.75]), fused)


@pytest.mark.parametrize("w, expected", [(1.0, P_IMG), (0.0, P_AUD), (1, P_IMG), (0, P_AUD)])
def test_late_fusion_extreme_weights_reduce_to_one_modality(w, expected):
    np.testing.assert_allclose(late_fusion([P_IMG, P_AUD], w), expected)
    np.testing.assert_array_equal(late_fusion([P_IMG, P_AUD], w).argmax(1), expected.argmax(1))


def test_late_fusion_three_modalities():
    third = np.full_like(P_IMG, 1 / 3)
    fused = late_fusion([P_IMG, P_AUD, third], [0.5, 0.3, 0.2])
    np.testing.assert_allclose(fused, 0.5 * P_IMG + 0.3 * P_AUD + 0.2 * third)


def test_late_fusion_accepts_float32_softmax_rows():
    p = random_probs(500, seed=1).astype(np.float32)
    q = random_probs(500, seed=2).astype(np.float32)
    assert late_fusion([p, q], 0.5).shape == (500, 10)


@pytest.mark.parametrize(
    "probs, weights, message",
    [
        ([random_probs(60), random_probs(50)], 0.5,
         r"probs\[1\] has shape \(50, 10\) but probs\[0\] has \(60, 10\)"),
        ([P_IMG, P_AUD[:, :2] / P_AUD[:, :2].sum(1, keepdims=True)], 0.5, r"probs\[1\] has shape"),
        ([P_IMG, P_AUD * 2], 0.5, r"probs\[1\] row 0 sums to 2\.0"),
        ([P_IMG - 0.15, P_AUD], 0.5, r"probs\[0\] row \d has negative entries"),
        ([np.where(P_IMG == 0.7, np.nan, P_IMG), P_AUD], 0.5, r"probs\[0\] holds NaN"),
        ([P_IMG, np.where(P_AUD == 0.8, np.inf, P_AUD)], 0.5, r"probs\[1\] holds NaN or infinite"),
        ([P_IMG, P_AUD], 1.5, r"weights=1\.5 is outside \[0, 1\]"),
        ([P_IMG, P_AUD], -0.1, r"weights=-0\.1 is outside \[0, 1\]"),
        ([P_IMG, P_AUD], float("nan"), r"weights=nan is outside"),
        ([P_IMG, P_AUD], [0.5, 0.6], r"weights=\[0\.5, 0\.6\] sums to 1\.1"),
        ([P_IMG, P_AUD], [1.2, -0.2], r"has a weight outside \[0, 1\]"),
        ([P_IMG, P_AUD], [0.2, 0.3, 0.5], r"weights has 3 weights for 2 probability arrays"),
        ([P_IMG, P_AUD, P_AUD], 0.5, r"single weight, which only works for two modalities"),
        ([P_IMG[0], P_AUD[0]], 0.5, r"probs\[0\] has shape \(3,\); expected \(n, classes\)"),
    ],
)
def test_late_fusion_refuses_bad_inputs(probs, weights, message):
    with pytest.raises(ValueError, match=message):
        late_fusion(probs, weights)
    with pytest.raises(ValueError, match=message):
        product_fusion(probs, weights)


@pytest.mark.parametrize("probs", [P_IMG, [], "probs", [P_IMG.tolist(), P_AUD]])
def test_late_fusion_refuses_non_lists_of_arrays(probs):
    with pytest.raises(TypeError, match="probs"):
        late_fusion(probs, 0.5)


def test_late_fusion_refuses_bool_and_string_weights():
    with pytest.raises(TypeError, match="weights"):
        late_fusion([P_IMG, P_AUD], "0.5")
    with pytest.raises(TypeError, match="weights"):
        late_fusion([P_IMG, P_AUD], True)


def test_product_fusion_is_the_normalized_weighted_geometric_mean():
    fused = product_fusion([P_IMG, P_AUD], 0.5)
    expected = np.sqrt(np.maximum(P_IMG, 1e-12) * np.maximum(P_AUD, 1e-12))
    np.testing.assert_allclose(fused, expected / expected.sum(1, keepdims=True))
    np.testing.assert_allclose(product_fusion([P_IMG, P_AUD], 1.0), P_IMG, atol=1e-9)
    # a zero from one expert vetoes the class: row 2, class 0 (image 0.4, audio 0.0)
    assert fused[2, 0] < 1e-5 < late_fusion([P_IMG, P_AUD], 0.5)[2, 0]


def test_late_fusion_missing_falls_back_to_the_present_modality():
    np.testing.assert_allclose(late_fusion_missing([P_IMG, None], 0.3), P_IMG)
    np.testing.assert_allclose(late_fusion_missing([None, P_AUD], 0.3), P_AUD)
    np.testing.assert_allclose(late_fusion_missing([P_IMG, P_AUD], 0.3),
                               late_fusion([P_IMG, P_AUD], 0.3))
    third = np.full_like(P_IMG, 1 / 3)
    np.testing.assert_allclose(late_fusion_missing([P_IMG, None, third], [0.2, 0.4, 0.4]),
                               late_fusion([P_IMG, third], [1 / 3, 2 / 3]))
    with pytest.raises(ValueError, match="only None"):
        late_fusion_missing([None, None], 0.5)
    np.testing.assert_allclose(late_fusion_missing([P_IMG, None], 0.0), P_IMG)
    np.testing.assert_allclose(late_fusion_missing([P_IMG, P_AUD, None], [0, 0, 1]),
                               late_fusion([P_IMG, P_AUD], 0.5))


def test_sweep_ends_are_the_single_modalities_and_best_weight_uses_the_given_split():
    y = np.array([0, 1, 2])
    acc = sweep(P_IMG, P_AUD, y, [0.0, 0.5, 1.0])
    img_acc = (P_IMG.argmax(1) == y).mean()
    aud_acc = (P_AUD.argmax(1) == y).mean()
    assert acc[0] == pytest.approx(aud_acc) and acc[-1] == pytest.approx(img_acc)
    ws = np.linspace(0, 1, 21)
    full = sweep(P_IMG, P_AUD, y, ws)
    w = best_weight(P_IMG, P_AUD, y, ws)
    assert full[np.argmin(np.abs(ws - w))] == full.max()
    # ties go to the weight closest to 0.5
    same = np.tile([[0.6, 0.4]], (4, 1))
    assert best_weight(same, same, np.zeros(4, dtype=int)) == 0.5


@pytest.mark.parametrize(
    "y, ws, message",
    [
        (np.array([0, 1]), None, r"y has 2 labels but probs_a has 3; expected equal counts"),
        (np.array([0, 1, 5]), None, r"y holds labels \[5\]; expected class indices 0\.\.2"),
        (np.array([0, 1, 2]), [0.5, 1.2], r"ws=\[0\.5, 1\.2\]"),
        (np.array([0, 1, 2]), [], r"ws=\[\]"),
    ],
)
def test_sweep_refuses_bad_labels_and_weights(y, ws, message):
    with pytest.raises(ValueError, match=message):
        sweep(P_IMG, P_AUD, y, ws)


def test_sweep_refuses_labels_that_are_not_integers():
    with pytest.raises(TypeError, match=r"y has shape \(3,\) and dtype float64"):
        sweep(P_IMG, P_AUD, np.array([0.0, 1.0, 2.0]))


def test_sweep_names_its_probability_arguments():
    with pytest.raises(ValueError, match=r"probs_b has shape \(2, 3\) but probs_a has \(3, 3\)"):
        sweep(P_IMG, P_AUD[:2], np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="rule='max'"):
        sweep(P_IMG, P_AUD, np.array([0, 1, 2]), rule="max")


def test_modality_dropout_blanks_one_modality_per_sample_in_training_only():
    import keras

    layer = ModalityDropout(0.4, seed=3)
    a, b = np.ones((4000, 5), "float32"), np.ones((4000, 3), "float32")
    out_a, out_b = (keras.ops.convert_to_numpy(t) for t in layer([a, b], training=True))
    dropped_a, dropped_b = out_a[:, 0] == 0, out_b[:, 0] == 0
    assert not (dropped_a & dropped_b).any(), "both modalities blanked for one sample"
    assert (out_a[dropped_a] == 0).all() and (out_a[~dropped_a] == 1).all()
    assert 0.15 < dropped_a.mean() < 0.25 and 0.15 < dropped_b.mean() < 0.25
    same_a, same_b = (keras.ops.convert_to_numpy(t) for t in layer([a, b], training=False))
    assert (same_a == 1).all() and (same_b == 1).all()
    with pytest.raises(ValueError, match="rate=1.0"):
        ModalityDropout(1.0)


@pytest.fixture(scope="module")
def tiny_mnist_like():
    """AV-MNIST shapes (28x28 images, 32x40 spectrograms), random values, 40 samples."""
    rng = np.random.default_rng(0)
    x = {"image": rng.random((40, 28, 28, 1), dtype=np.float32),
         "audio": rng.normal(size=(40, 32, 40, 1)).astype(np.float32)}
    return x, np.arange(40) % 10


def test_early_fusion_model_is_generic_over_input_shapes(tiny_mnist_like):
    x, _ = tiny_mnist_like
    model = early_fusion_model({"image": (28, 28, 1), "audio": (32, 40, 1)},
                               filters=(4, 8), pool={"audio": 2}, modality_dropout=0.5)
    probs = predict_early(model, x)
    assert probs.shape == (40, 10)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    assert {layer.name for layer in model.layers} >= {"image_encoder", "audio_encoder", "head",
                                                      "modality_dropout", "fused_features"}


def test_predict_early_with_a_missing_modality_fills_its_features(tiny_mnist_like):
    import keras

    x, _ = tiny_mnist_like
    model = early_fusion_model({"image": (28, 28, 1), "audio": (32, 40, 1)}, filters=(4, 8))
    feats_img = keras.ops.convert_to_numpy(model.get_layer("image_encoder")(x["image"]))
    feats_aud = keras.ops.convert_to_numpy(model.get_layer("audio_encoder")(x["audio"]))
    head = model.get_layer("head")
    # features are joined in sorted modality order: audio, then image
    zeros = keras.ops.convert_to_numpy(head(np.concatenate([np.zeros_like(feats_aud), feats_img],
                                                           axis=1)))
    np.testing.assert_allclose(predict_early(model, {"image": x["image"]}, missing="audio"),
                               zeros, atol=1e-5)
    mean = np.tile(feats_img.mean(0), (40, 1))
    expected = keras.ops.convert_to_numpy(head(np.concatenate([feats_aud, mean], axis=1)))
    got = predict_early(model, {"audio": x["audio"]}, missing="image", fill="mean", reference=x)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    with pytest.raises(ValueError, match="missing='video'"):
        predict_early(model, x, missing="video")
    with pytest.raises(ValueError, match="fill='median'"):
        predict_early(model, {"image": x["image"]}, missing="audio", fill="median")
    with pytest.raises(ValueError, match="needs reference"):
        predict_early(model, {"image": x["image"]}, missing="audio", fill="mean")
    with pytest.raises(ValueError, match=r"present modalities \['image'\]"):
        predict_early(model, {"audio": x["audio"]}, missing="audio")


def test_early_fusion_model_refuses_bad_arguments():
    with pytest.raises(ValueError, match="at least two modalities"):
        early_fusion_model({"image": (8, 8, 1)})
    with pytest.raises(ValueError, match="pool="):
        early_fusion_model({"image": (8, 8, 1), "audio": (32, 40, 1)}, pool={"video": 2})
    with pytest.raises(ValueError, match="rate="):
        early_fusion_model({"image": (8, 8, 1), "audio": (32, 40, 1)}, modality_dropout=1.5)


def test_run_seed_on_avmnist_shaped_data_end_to_end(tiny_mnist_like):
    """The notebook's whole path (train, tune w on val, test, missing, shifted) on 28x28 images."""
    x, y = tiny_mnist_like
    calls = []

    def load(split, seed, image_noise, snr_db):
        calls.append((split, seed, image_noise, snr_db))
        rng = np.random.default_rng(seed + len(calls))
        noisy = {"image": np.clip(x["image"] + image_noise * rng.normal(size=x["image"].shape),
                                  0, 1).astype(np.float32),
                 "audio": x["audio"] + np.float32(-snr_db / 10)}
        return Dataset("avmnist", split, noisy, y)

    runs, models = [], None
    for seed in (0, 1):
        run = run_seed(load, seed, image_noise=0.5, snr_db=0.0, epochs=1, ws=[0, 0.5, 1],
                       snr_levels=[-5.0], noise_levels=[0.8], filters=(4, 8),
                       pool={"audio": 2}, reuse=models, batch_size=20, snr_val=seed == 0)
        assert models is None or run["models"] is models  # reused, not rebuilt
        models = run["models"]
        runs.append(run)
    assert ("val", 1, 0.5, 0.0) in calls and ("test", 0, 0.8, 0.0) in calls
    assert ("test", 0, 0.5, -5.0) in calls and ("test", 1, 0.5, -5.0) in calls
    assert ("val", 0, 0.5, -5.0) in calls and ("val", 1, 0.5, -5.0) not in calls  # snr_val
    assert set(runs[1]["shifted"][("snr_db", -5.0)]) == {"test"}
    assert runs[0]["best_w"] in (0, 0.5, 1)
    summary = summarize_runs(runs)
    methods = ("image_only", "audio_only", "early", "intermediate", "intermediate_dropout",
               "late_equal", "late_tuned", "late_product")
    for key in (*methods, *(f"val_{m}" for m in methods), "best_w", "missing_audio_early",
                "missing_audio_late", "missing_image_early", "missing_image_late",
                "missing_image_intermediate", "missing_image_intermediate_mean",
                "missing_image_intermediate_dropout"):
        assert key in summary and f"{key}_std" in summary
        assert 0 <= summary[key] <= 1
    assert summary["missing_audio_late"] == summary["image_only"]
    assert choose_on_val(summary, methods) in methods
    assert compare_methods(runs, "early", "late_tuned")["n"] == 2
    assert sweep_curves(runs, "val").shape == (2, 3)
    rows = robustness_rows(runs)
    assert {(r["kind"], r["level"]) for r in rows} == {("snr_db", -5.0), ("image_noise", 0.8),
                                                        ("snr_db", 0.0), ("image_noise", 0.5)}
    at_default = [r for r in rows if r["level"] == 0.0 and r["method"] == "early"]
    assert at_default[0]["accuracy"] == pytest.approx(summary["early"])


def test_run_seed_with_text_tunes_three_weights_and_drops_each_modality():
    """Three modalities (image, audio, text ids): experts, fused models, simplex weights."""
    from mmlearn_helpers.data import text as tx

    rng = np.random.default_rng(1)
    y = np.arange(40) % 10
    x = {"image": rng.random((40, 8, 8, 1), dtype=np.float32),
         "audio": rng.normal(size=(40, 8, 10, 1)).astype(np.float32),
         "text": tx.encode([["zero", "one", "two", "three", "four", "five", "six", "seven",
                             "eight", "nine"][d] for d in y])}

    def load(split, seed, image_noise, snr_db):
        return Dataset("av_digits", split, x, y)

    def one(seed, reuse=None):
        return run_seed(load, seed, image_noise=0.0, snr_db=None, epochs=1, ws=None,
                        filters=(4, 8), batch_size=20, reuse=reuse)

    run = one(0)
    again = one(0, reuse=run["models"])  # re-initialized from the seed: the same numbers
    assert "best_w" not in run and set(run["weights"]) == {"image", "audio", "text"}
    assert sum(run["weights"].values()) == pytest.approx(1)
    for key in ("text_only", "early", "intermediate_dropout", "late_tuned", "missing_text_late",
                "missing_image_intermediate_mean", "missing_audio_early"):
        assert run["test"][key].shape == (40, 10)
        np.testing.assert_allclose(run["test"][key], again["test"][key], atol=1e-5)  # seeded
    w = [run["weights"][m] for m in ("image", "audio")]
    np.testing.assert_allclose(run["test"]["missing_text_late"], late_fusion(
        [run["test"]["image_only"], run["test"]["audio_only"]], [v / sum(w) for v in w])
        if sum(w) > 0 else late_fusion([run["test"]["image_only"], run["test"]["audio_only"]],
                                       0.5), atol=1e-6)
    summary = summarize_runs([run, again])
    assert {"w_image", "w_audio", "w_text", "val_text_only", "missing_text_early"} <= set(summary)


def test_intermediate_fusion_has_a_joint_hidden_layer_and_a_linear_head_is_a_product_of_experts():
    """With hidden=() the head adds per-modality logits: its softmax is the normalized product
    of one softmax per modality (a product of experts); joint0 is what can mix the modalities."""
    import keras

    shapes = {"image": (8, 8, 1), "audio": (8, 10, 1)}
    model = intermediate_fusion_model(shapes, 4, filters=(4, 8), hidden=(16,), dropout=0.2)
    names = [layer.name for layer in model.layers]
    assert names.index("fused_features") < names.index("joint0") < names.index("head")
    assert model.get_layer("joint0").units == 16 and "dropout" in names
    linear = intermediate_fusion_model(shapes, 4, filters=(4, 8), hidden=())
    assert not any(n.startswith("joint") for n in (layer.name for layer in linear.layers))
    legacy = early_fusion_model(shapes, 4, filters=(4, 8))
    assert [layer.name for layer in legacy.layers] == [layer.name for layer in linear.layers]
    rng = np.random.default_rng(0)
    x = {"image": rng.random((6, 8, 8, 1), "float32"),
         "audio": rng.random((6, 8, 10, 1), "float32")}
    feats = {m: keras.ops.convert_to_numpy(linear.get_layer(f"{m}_encoder")(x[m])) for m in x}
    kernel, bias = (keras.ops.convert_to_numpy(v) for v in linear.get_layer("head").weights)
    logits_audio = feats["audio"] @ kernel[:8]  # features are joined audio first (sorted)
    logits_image = feats["image"] @ kernel[8:] + bias

    def softmax(z):
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    experts = softmax(logits_audio) * softmax(logits_image)
    np.testing.assert_allclose(predict_early(linear, x), experts / experts.sum(1, keepdims=True),
                               atol=1e-5)
    with pytest.raises(ValueError, match=r"hidden\[0\]=0 should be an int >= 1"):
        intermediate_fusion_model(shapes, hidden=(0,))
    with pytest.raises(ValueError, match="dropout="):
        intermediate_fusion_model(shapes, dropout=1.0)


def test_feature_fusion_joins_one_conv_block_per_modality(tiny_mnist_like):
    x, _ = tiny_mnist_like
    model = feature_fusion_model({"image": (28, 28, 1), "audio": (32, 40, 1)}, stem_filters=4,
                                 hidden=(8,), pool={"audio": 2})
    for m, flat in (("image", 14 * 14 * 4), ("audio", 8 * 10 * 4)):
        stem = model.get_layer(f"{m}_encoder")
        convs = [la for la in stem._flatten_layers() if la.__class__.__name__ == "Conv2D"]
        assert len(convs) == 1 and stem.outputs[0].shape[-1] == flat  # one block, maps flattened
    assert {"joint0", "joint0_bn", "head"} <= {layer.name for layer in model.layers}
    probs = predict_early(model, x)
    assert probs.shape == (40, 10)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    with pytest.raises(ValueError, match="stem_filters"):
        feature_fusion_model({"image": (8, 8, 1), "audio": (8, 8, 1)}, stem_filters=0)


def test_fusion_models_read_text_as_character_ids():
    from mmlearn_helpers.data import text as tx
    from mmlearn_helpers.fusion import modality_encoder

    shapes = {"image": (8, 8, 1), "text": (tx.MAX_LEN,)}
    early = feature_fusion_model(shapes, stem_filters=4, hidden=(8,))
    stem = early.get_layer("text_encoder")
    assert stem.get_layer("char_embedding").input_dim == len(tx.vocabulary())
    assert stem.outputs[0].shape[-1] == tx.MAX_LEN * 4  # one block, positions kept
    inter = intermediate_fusion_model(shapes, filters=(4, 8), hidden=(8,))
    assert inter.get_layer("text_encoder").outputs[0].shape[-1] == 8
    x = {"image": np.zeros((3, 8, 8, 1), np.float32), "text": tx.encode(["seven", "acht", "x"])}
    for model in (early, inter):
        np.testing.assert_allclose(predict_early(model, x).sum(1), 1, atol=1e-5)
    with pytest.raises(ValueError, match="pool=2 for text input"):
        modality_encoder((tx.MAX_LEN,), pool=2)


@pytest.mark.parametrize("builder", [intermediate_fusion_model, feature_fusion_model])
def test_predict_early_runs_the_joint_layers_after_the_filled_features(builder):
    import keras

    shapes = {"image": (8, 8, 1), "audio": (8, 10, 1)}
    rng = np.random.default_rng(1)
    x = {"image": rng.random((12, 8, 8, 1), "float32"),
         "audio": rng.random((12, 8, 10, 1), "float32")}
    model = builder(shapes, 3, hidden=(5,), dropout=0.5)
    feats_img = keras.ops.convert_to_numpy(model.get_layer("image_encoder")(x["image"]))
    n_audio = model.get_layer("audio_encoder").outputs[0].shape[-1]
    h = model.get_layer("joint0")(np.concatenate([np.zeros((12, n_audio), "float32"), feats_img],
                                                 axis=1))  # audio first: sorted order
    if builder is feature_fusion_model:  # Dense, BatchNorm (moving statistics), ReLU
        h = model.get_layer("joint0_relu")(model.get_layer("joint0_bn")(h, training=False))
    expected = keras.ops.convert_to_numpy(model.get_layer("head")(h))  # dropout: off in inference
    got = predict_early(model, {"image": x["image"]}, missing="audio")
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_training_together_equals_one_fit_per_model():
    """The bundle step gives each model its own loss's gradients and Adam state, on the batches
    `training.fit` would draw: the same weights as separate fits (models without random layers)."""
    from mmlearn_helpers.training import fit, predict_proba

    rng = np.random.default_rng(2)
    x = {"image": rng.random((50, 8, 8, 1), "float32"),
         "audio": rng.random((50, 8, 10, 1), "float32")}
    y = np.arange(50) % 3
    options = {"filters": (4, 8), "hidden": (6,), "n_classes": 3, "modality_dropout": 0.5}
    together = train_fusion_models(x, y, seed=3, epochs=2, lr=1e-2, batch_size=16, **options)
    apart = build_fusion_models({m: v.shape[1:] for m, v in x.items()}, seed=3, **options)
    for key in ("image", "audio", "early", "intermediate"):
        fit(apart[key], x[key] if key in x else x, y, epochs=2, lr=1e-2, seed=3, batch_size=16)
        inputs = x[key] if key in x else x
        np.testing.assert_allclose(predict_proba(together[key], inputs),
                                   predict_proba(apart[key], inputs), atol=1e-4, err_msg=key)
    # training again (reuse) re-initializes from the seed: the same models come out
    again = train_fusion_models(x, y, seed=3, epochs=2, lr=1e-2, batch_size=16,
                                reuse=together, **options)
    assert again is together
    np.testing.assert_allclose(predict_proba(again["early"], x), predict_proba(apart["early"], x),
                               atol=1e-4)


def fake_runs(val_acc: dict, test_acc: dict, seeds: int = 3, n: int = 200) -> list[dict]:
    """run_seed-like results whose methods reach about the given accuracies on val and test."""
    runs = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        run = {"seed": seed, "best_w": 0.5, "shifted": {},
               "defaults": {"snr_db": 0.0, "image_noise": 0.5}}
        for split, accs in (("val", val_acc), ("test", test_acc)):
            y = rng.integers(0, 10, n)
            run[f"y_{split}"] = y
            run[split] = {}
            for method, acc in accs.items():
                pred = np.where(rng.random(n) < acc, y, (y + 1) % 10)
                run[split][method] = np.eye(10)[pred] * 0.9 + 0.01
        runs.append(run)
    return runs


def test_choose_on_val_never_reads_the_test_labels():
    # "b" is best on validation, "c" on test: the choice is "b", whatever the test labels say
    runs = fake_runs({"a": 0.6, "b": 0.8, "c": 0.7}, {"a": 0.6, "b": 0.65, "c": 0.9})
    summary = summarize_runs(runs)
    assert max(("a", "b", "c"), key=summary.get) == "c"  # what picking on test would do
    assert choose_on_val(summary, ["a", "b", "c"]) == "b" == choose_on_val(runs, ["a", "b", "c"])
    shuffled = fake_runs({"a": 0.6, "b": 0.8, "c": 0.7}, {"a": 0.6, "b": 0.65, "c": 0.9})
    for run in shuffled:
        run["y_test"] = np.random.default_rng(9).permutation(run["y_test"])
    changed = summarize_runs(shuffled)
    assert changed["c"] != summary["c"]  # the test scores moved ...
    assert choose_on_val(changed, ["a", "b", "c"]) == "b"
    assert choose_on_val(shuffled, ["a", "b", "c"]) == "b"
    assert choose_on_val(summary, ["c", "a"]) == "c"  # ... the choice only follows validation
    tied = fake_runs({"a": 0.7, "b": 0.7}, {"a": 0.5, "b": 0.9})
    for run in tied:
        run["val"]["b"] = run["val"]["a"]
    assert choose_on_val(tied, ["a", "b"]) == "a"  # ties: the first listed
    with pytest.raises(ValueError, match=r"candidates \['d'\]"):
        choose_on_val(summary, ["a", "d"])
    with pytest.raises(ValueError, match="candidates="):
        choose_on_val(summary, [])
    with pytest.raises(TypeError, match="summary_or_runs"):
        choose_on_val(42, ["a"])


def test_per_seed_and_compare_methods_pair_the_seeds():
    runs = fake_runs({"a": 0.5, "b": 0.5}, {"a": 0.9, "b": 0.5}, seeds=4)
    a, b = per_seed(runs, "a"), per_seed(runs, "b")
    assert a.shape == (4,) and (a > b).all()
    result = compare_methods(runs, "a", "b")
    assert result["n"] == 4 and result["diff"] == pytest.approx((a - b).mean())
    assert result["verdict"] == "better" and result["low"] > 0
    assert compare_methods(runs, "b", "a")["verdict"] == "worse"
    for run in runs:  # a degraded test copy: "a" loses its lead there
        run["shifted"][("snr_db", -5.0)] = {"test": dict(run["test"], y=run["y_test"],
                                                         a=run["test"]["b"])}
    assert compare_methods(runs, "a", "b", shifted=("snr_db", -5.0))["diff"] == 0
    np.testing.assert_array_equal(per_seed(runs, "a", shifted=("snr_db", 0.0)), a)
    with pytest.raises(ValueError, match="shifted="):
        per_seed(runs, "a", shifted=("snr_db", -9.0))
    with pytest.raises(ValueError, match="method='z'"):
        per_seed(runs, "z")
    with pytest.raises(ValueError, match="split="):
        per_seed(runs, "a", split="train")


@pytest.mark.parametrize("level", ["early", "intermediate", "late"])
def test_fusion_diagram_draws_where_the_paths_join(level):
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgba

    from mmlearn_helpers.plots import fusion_diagram

    fig = fusion_diagram(level)
    ax = fig.axes[0]
    boxes = [t for t in ax.texts if t.get_bbox_patch() is not None]  # not the arrows
    texts = [t.get_text() for t in boxes]
    assert "image input" in texts and "audio input" in texts and "class" in texts
    gold = [t for t in boxes if t.get_bbox_patch().get_facecolor() == to_rgba("gold")]
    assert len(gold) == 1  # one join
    assert ("combine" in gold[0].get_text()) == (level == "late")
    assert level.split()[0] in ax.get_title().lower()
    plt.close(fig)
    with pytest.raises(ValueError, match="level='mid'"):
        fusion_diagram("mid")
