"""Models and training: shapes, layer names, parameter counts, fit/predict behaviour and errors."""

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits

from mmlearn_helpers.models import classifier, conv_encoder, count_params, encoder_of, mlp_encoder
from mmlearn_helpers.training import fit, predict_proba


@pytest.fixture(scope="module")
def digits():
    """scikit-learn's 8x8 digits as (n, 8, 8, 1) float32 in [0, 1] and int labels."""
    data = load_digits()
    return (data.images / 16.0).astype(np.float32)[..., None], data.target.astype(np.int64)


def small_model(seed=0):
    keras.utils.set_random_seed(seed)
    return classifier(conv_encoder((8, 8, 1), (4, 8)))


def test_conv_encoder_shapes_and_names_for_images_and_spectrograms():
    flat = {(8, 8, 1): 32, (28, 28, 1): 3 * 3 * 32, (32, 40, 1): 4 * 5 * 32}  # last map, flattened
    for shape, n_features in flat.items():
        enc = conv_encoder(shape)
        assert enc.outputs[0].shape[1:] == (32,)  # global average pooling: filters[-1]
        assert conv_encoder(shape, pooling="flatten").outputs[0].shape[1:] == (n_features,)
        names = [layer.name for layer in enc.layers]
        for i in range(3):
            assert f"block{i}_conv" in names and f"block{i}_bn" in names
    image, audio = conv_encoder((8, 8, 1)), conv_encoder((32, 40, 1))
    for i in range(3):
        a, b = image.get_layer(f"block{i}_conv"), audio.get_layer(f"block{i}_conv")
        assert [w.shape for w in a.weights] == [w.shape for w in b.weights]


def test_conv_encoder_pools_only_while_the_map_allows():
    enc = conv_encoder((4, 4, 1), (2, 2, 2, 2))
    pools = [layer.name for layer in enc.layers if layer.name.endswith("_pool")]
    assert pools == ["block0_pool", "block1_pool"]  # 4x4 -> 2x2 -> 1x1, then no more pooling


@pytest.mark.parametrize("shape", [(8, 8), (8, 0, 1), "8x8", (8.0, 8, 1)])
def test_conv_encoder_refuses_bad_shapes(shape):
    with pytest.raises(ValueError, match="input_shape"):
        conv_encoder(shape)


def test_bad_filters_pooling_units_classes_and_dropout_raise():
    with pytest.raises(ValueError, match="filters"):
        conv_encoder((8, 8, 1), ())
    with pytest.raises(ValueError, match="pooling='max'"):
        conv_encoder((8, 8, 1), pooling="max")
    with pytest.raises(ValueError, match="units"):
        mlp_encoder((8, 8, 1), (0,))
    enc = conv_encoder((8, 8, 1))
    with pytest.raises(ValueError, match="n_classes"):
        classifier(enc, 1)
    with pytest.raises(ValueError, match="dropout"):
        classifier(enc, dropout=1.5)
    with pytest.raises(TypeError, match="encoder"):
        classifier("encoder")


def test_classifier_head_and_encoder_access():
    enc = conv_encoder((8, 8, 1))
    model = classifier(enc, 7, dropout=0.2)
    assert model.get_layer("head").units == 7
    assert model.outputs[0].shape[1:] == (7,)
    assert encoder_of(model) is enc
    with pytest.raises(ValueError, match="nested models"):
        encoder_of(enc)


def test_count_params_counts_trainable_and_all_weights():
    enc = conv_encoder((8, 8, 1), (4, 8))
    conv = 3 * 3 * 1 * 4 + 3 * 3 * 4 * 8
    bn_trainable, bn_moving = 2 * (4 + 8), 2 * (4 + 8)
    assert count_params(enc) == conv + bn_trainable
    assert count_params(enc, trainable_only=False) == conv + bn_trainable + bn_moving
    mlp = mlp_encoder((8, 8, 1), (16, 8))
    assert count_params(mlp) == 64 * 16 + 16 * 8 + 2 * (16 + 8)


def test_fit_learns_and_predict_proba_matches_predict(digits):
    x, y = digits
    model = small_model()
    history = fit(model, x[:600], y[:600], epochs=15, lr=1e-2, seed=0, batch_size=64)
    assert len(history.history["loss"]) == 15 and history.history["loss"][-1] < 1.0
    probs = predict_proba(model, x[1000:1300])
    assert probs.shape == (300, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(probs, model.predict(x[1000:1300], verbose=0), atol=1e-5)
    assert (probs.argmax(1) == y[1000:1300]).mean() > 0.8


def test_fit_with_validation_keeps_epochs(digits):
    x, y = digits
    history = fit(small_model(), x[:200], y[:200], epochs=3, lr=1e-2, seed=0,
                  x_val=x[200:300], y_val=y[200:300])
    assert len(history.history["val_loss"]) == 3


def test_validation_data_do_not_change_training(digits):
    x, y = digits
    plain, watched = small_model(seed=4), small_model(seed=4)
    fit(plain, x[:150], y[:150], epochs=3, lr=1e-2, seed=1, batch_size=32)
    history = fit(watched, x[:150], y[:150], epochs=3, lr=1e-2, seed=1, batch_size=32,
                  x_val=x[200:300], y_val=y[200:300])
    for a, b in zip(plain.get_weights(), watched.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert history.history["val_accuracy"][-1] == pytest.approx(
        float(np.mean(predict_proba(watched, x[200:300]).argmax(1) == y[200:300])), abs=1e-6)


def test_fit_is_deterministic_under_a_seed(digits):
    x, y = digits
    weights = []
    for _ in range(2):
        model = small_model(seed=3)
        fit(model, x[:300], y[:300], epochs=3, lr=1e-2, seed=5)
        weights.append(model.get_weights())
    for a, b in zip(*weights, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_second_fit_equals_a_fresh_compile(digits):
    """Reusing the compiled model (optimizer reset) gives the same result as compiling anew."""
    x, y = digits
    reused = small_model(seed=1)
    start = reused.get_weights()
    fit(reused, x[:100], y[:100], epochs=2, lr=1e-2, seed=0)  # compiles
    reused.set_weights(start)
    fit(reused, x[:300], y[:300], epochs=2, lr=3e-3, seed=7)  # reuses, resets Adam, new lr
    fresh = small_model(seed=1)
    fit(fresh, x[:300], y[:300], epochs=2, lr=3e-3, seed=7)
    for a, b in zip(reused.get_weights(), fresh.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_fit_recompiles_after_freezing(digits):
    x, y = digits
    model = small_model()
    fit(model, x[:100], y[:100], epochs=1, lr=1e-2, seed=0)
    encoder = encoder_of(model)
    encoder.trainable = False
    before = encoder.get_weights()
    fit(model, x[:100], y[:100], epochs=2, lr=1e-2, seed=0)
    for a, b in zip(before, encoder.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_fit_and_predict_refuse_bad_arguments(digits):
    x, y = digits
    model = small_model()
    with pytest.raises(ValueError, match="lr"):
        fit(model, x[:10], y[:10], epochs=1, lr=0.0, seed=0)
    with pytest.raises(ValueError, match="epochs"):
        fit(model, x[:10], y[:10], epochs=0, lr=1e-3, seed=0)
    with pytest.raises(ValueError, match="seed"):
        fit(model, x[:10], y[:10], epochs=1, lr=1e-3, seed=-1)
    with pytest.raises(ValueError, match="10 labels but x has 11"):
        fit(model, x[:11], y[:10], epochs=1, lr=1e-3, seed=0)
    with pytest.raises(ValueError, match=r"expected class indices 0\.\.9"):
        fit(model, x[:10], y[:10] + 5, epochs=1, lr=1e-3, seed=0)
    bad = x[:10].copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fit(model, bad, y[:10], epochs=1, lr=1e-3, seed=0)
    with pytest.raises(ValueError, match="x_val and y_val"):
        fit(model, x[:10], y[:10], epochs=1, lr=1e-3, seed=0, x_val=x[:5])
    with pytest.raises(TypeError, match="NumPy array"):
        predict_proba(model, x[:10].tolist())
