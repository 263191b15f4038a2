"""device.setup: one line, policy, strategy scope around every model the helpers build, batches."""

import contextlib
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from mmlearn_helpers import device, finetune, fusion, training, transfer
from mmlearn_helpers.models import classifier, conv_encoder, encoder_of, mlp_encoder

tf = pytest.importorskip("tensorflow")
pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="strategy tests need the tensorflow backend")


@pytest.fixture(autouse=True)
def restore(monkeypatch):
    """Every test leaves the float32 policy and the strategy it found (None) behind."""
    monkeypatch.setitem(device._STATE, "strategy", device._STATE["strategy"])
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.fixture
def mirrored():
    """A one-device MirroredStrategy on the CPU, set up as the current strategy."""
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    device.setup(strategy=strategy)
    return strategy


def data(n=12, shape=(8, 8, 1), seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, *shape)).astype(np.float32), np.arange(n) % 3


def moved(before, model):
    """How far each trainable weight moved from `before`."""
    now = model.trainable_weights
    return [float(np.abs(b - w.numpy()).max()) for b, w in zip(before, now, strict=True)]


def in_scope(strategy, variables):
    variables = list(variables)
    assert variables
    return [strategy.extended.variable_created_in_scope(v.value) for v in variables]


def test_setup_on_cpu_prints_one_line_and_returns_float32(capsys):
    if device.gpus():
        pytest.skip("checks the CPU-only line")
    info = device.setup()
    out = capsys.readouterr().out
    assert out == info["line"] + "\n"
    assert set(info) == {"policy", "strategy", "replicas", "gpus", "line"}
    assert info["policy"] == "float32" == keras.mixed_precision.global_policy().name
    assert info["gpus"] == [] and info["replicas"] == 1 == device.replicas()
    assert "CPU only" in info["line"] and "float32" in info["line"]
    assert "strategy default" in info["line"] and "1 replica" in info["line"]
    assert info["strategy"] is tf.distribute.get_strategy()
    again = device.setup("off")  # a second call is safe and quiet apart from its line
    assert capsys.readouterr().out == again["line"] + "\n" and again["policy"] == "float32"


def test_setup_names_a_given_strategy(capsys):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    info = device.setup(strategy=strategy)
    assert info["strategy"] is strategy and info["replicas"] == 1
    assert "strategy MirroredStrategy" in capsys.readouterr().out


@pytest.mark.parametrize("kwargs, error, match", [
    ({"mixed_precision": 1}, TypeError, r"mixed_precision is a int .*expected a str"),
    ({"mixed_precision": None}, TypeError, r"mixed_precision is a NoneType"),
    ({"mixed_precision": "fast"}, ValueError, r"mixed_precision='fast' is not valid; expected"),
    ({"strategy": "mirrored"}, TypeError, r"strategy is a str; expected a tf.distribute.Strategy"),
])
def test_setup_refuses_bad_arguments(kwargs, error, match):
    before = device._STATE["strategy"]
    with pytest.raises(error, match=match):
        device.setup(**kwargs)
    assert device._STATE["strategy"] is before  # nothing changed


def test_setup_on_without_gpu_is_refused():
    if device.gpus():
        pytest.skip("needs a CPU-only machine")
    with pytest.raises(ValueError, match=r"mixed_precision='on' .*no GPU was found"):
        device.setup("on")
    assert keras.mixed_precision.global_policy().name == "float32"


@pytest.mark.parametrize("value, error", [(0, ValueError), (-4, ValueError), (2.0, TypeError),
                                          (True, TypeError), ("8", TypeError)])
def test_scaled_batch_refuses_bad_sizes(value, error):
    with pytest.raises(error, match="batch_size"):
        device.scaled_batch(value)


class ThreeReplicas:
    """Stands in for a strategy with 3 replicas (the CPU has only one device)."""

    num_replicas_in_sync = 3

    def scope(self):
        return contextlib.nullcontext()


def test_scaled_batch_and_training_batches_follow_the_replicas(monkeypatch):
    assert device.replicas() == 1 and device.scaled_batch(8) == 8  # before setup
    monkeypatch.setitem(device._STATE, "strategy", ThreeReplicas())
    assert device.replicas() == 3 and device.scaled_batch(8) == 24
    model = classifier(conv_encoder((8, 8, 1), (4,)), 3)
    x, y = data(n=30)
    seen = []
    real = model.train_on_batch

    def spy(xb, yb, **kwargs):
        seen.append(len(yb))
        return real(xb, yb, **kwargs)

    monkeypatch.setattr(model, "train_on_batch", spy)
    training.fit_steps(model, x, y, steps=2, lr=1e-2, seed=0, batch_size=4)
    assert seen == [12, 12]  # 4 per replica, 3 replicas
    seen.clear()
    training.fit(model, x, y, epochs=1, lr=1e-2, seed=0, batch_size=4)
    assert seen == [12, 12, 12]  # 30 examples topped up to 36
    seen.clear()
    training.fit(model, x, y, epochs=1, lr=1e-2, seed=0, batch_size=16)
    assert seen == [30]  # the global batch never exceeds the set


def test_scope_is_a_no_op_without_setup():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    model = classifier(conv_encoder((8, 8, 1), (4,)), 3)  # setup not called: not distributed
    assert not any(in_scope(strategy, model.weights))
    with device.scope():
        assert not tf.distribute.has_strategy()


def test_models_are_built_and_trained_under_the_strategy(mirrored):
    with device.scope(), device.scope():  # nested entry works
        assert tf.distribute.get_strategy() is mirrored
    model = classifier(conv_encoder((8, 8, 1), (4,)), 3, dropout=0.1)
    assert all(in_scope(mirrored, model.weights)) and model.distribute_strategy is mirrored
    assert all(in_scope(mirrored, mlp_encoder((8, 8, 1), (4,)).weights))
    x, y = data()
    before = [w.numpy().copy() for w in model.trainable_weights]
    losses = training.fit_steps(model, x, y, steps=3, lr=1e-2, seed=0, batch_size=4)
    assert len(losses) == 3 and np.isfinite(losses).all()
    assert all(in_scope(mirrored, model.optimizer.variables))
    history = training.fit(model, x, y, epochs=2, lr=1e-2, seed=0, batch_size=4)
    assert len(history.history["loss"]) == 2
    assert any(d > 0 for d in moved(before, model))
    probs = training.predict_proba(model, x)
    assert probs.shape == (12, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)


def test_fusion_and_transfer_models_are_built_under_the_strategy(mirrored):
    shapes = {"image": (8, 8, 1), "audio": (8, 10, 1)}
    early = fusion.early_fusion_model(shapes, 3, filters=(4,), pool={"audio": 2})
    assert all(in_scope(mirrored, early.weights)) and early.distribute_strategy is mirrored
    x = {"image": data()[0], "audio": data(shape=(8, 10, 1))[0]}
    y = data()[1]
    losses = training.fit_steps(early, x, y, steps=2, lr=1e-2, seed=0, batch_size=4)
    assert np.isfinite(losses).all() and training.predict_proba(early, x).shape == (12, 3)
    source = classifier(conv_encoder((8, 8, 1), (4,)), 3)
    for method in ("scratch", "finetuned"):
        for shape in (None, (16, 16, 1)):
            model = transfer.transfer_model(method, source, input_shape=shape)
            assert all(in_scope(mirrored, model.weights)), (method, shape)
    sources = {"image": source, "audio": classifier(conv_encoder((8, 10, 1), (4,)), 3)}
    fused = finetune.pretrained_fusion_model(sources, n_classes=3)
    assert all(in_scope(mirrored, fused.weights)) and fused.distribute_strategy is mirrored
    assert finetune.head_model(fused).distribute_strategy is mirrored


def test_mixed_float16_hidden_layers_compute_in_float16_and_softmax_in_float32():
    keras.mixed_precision.set_global_policy("mixed_float16")
    model = classifier(conv_encoder((8, 8, 1), (4,)), 3)
    x, y = data()
    assert encoder_of(model).get_layer("block0_conv").compute_dtype == "float16"
    assert keras.ops.convert_to_numpy(encoder_of(model)(x)).dtype == np.float16
    assert model.get_layer("head").compute_dtype == "float32"
    assert keras.ops.convert_to_numpy(model(x)).dtype == np.float32
    assert all(w.dtype == "float32" for w in model.weights)  # variables stay float32
    early = fusion.early_fusion_model({"a": (8, 8, 1), "b": (8, 8, 1)}, 3, filters=(4,))
    assert early.get_layer("head").compute_dtype == "float32"
    assert keras.ops.convert_to_numpy(early({"a": x, "b": x})).dtype == np.float32
    # Keras wraps Adam in a LossScaleOptimizer; a second call resets it and still trains
    training.fit_steps(model, x, y, steps=2, lr=1e-2, seed=0, batch_size=4)
    assert type(model.optimizer).__name__ == "LossScaleOptimizer"
    before = [w.numpy().copy() for w in model.trainable_weights]
    losses = training.fit_steps(model, x, y, steps=2, lr=1e-2, seed=0, batch_size=4)
    assert np.isfinite(losses).all()
    assert float(model.optimizer.dynamic_scale.numpy()) > 1
    assert all(d > 0 for d in moved(before, model))
    assert training.predict_proba(model, x).dtype == np.float32


def test_float32_head_leaves_the_float32_config_unchanged():
    model = classifier(conv_encoder((8, 8, 1), (4,)), 3)
    plain = keras.layers.Dense(3, activation="softmax", name="head")
    assert model.get_layer("head").get_config() == plain.get_config()  # same cache key


@pytest.mark.skipif(not os.environ.get("MMLEARN_TEST_REPLICAS"),
                    reason="about 10 s in a fresh process; set MMLEARN_TEST_REPLICAS=1 to run")
def test_two_replicas_train_with_a_scaled_batch():
    """A real two-replica MirroredStrategy over two logical CPUs (a fresh process)."""
    code = textwrap.dedent("""
        import numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        two = [tf.config.LogicalDeviceConfiguration()] * 2
        tf.config.set_logical_device_configuration(cpu, two)
        from mmlearn_helpers import device, models, training
        s = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        info = device.setup(strategy=s)
        assert info["replicas"] == 2 == device.replicas() and device.scaled_batch(4) == 8
        m = models.classifier(models.conv_encoder((8, 8, 1), (4,)), 3)
        assert all(s.extended.variable_created_in_scope(v.value) for v in m.weights)
        x = np.random.default_rng(0).normal(size=(16, 8, 8, 1)).astype("float32")
        losses = training.fit_steps(m, x, np.arange(16) % 3, steps=2, lr=1e-2, seed=0, batch_size=4)
        assert np.isfinite(losses).all()
        assert training.predict_proba(m, x).shape == (16, 3)
        print("OK", info["line"])
    """)
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "OK" in done.stdout and "2 replica(s)" in done.stdout
