"""Training and prediction for classifiers, fast on a small CPU.

Three costs dominate small-data training with Keras on a CPU: tracing a new train function each
time a model is compiled, a fixed overhead per `model.fit` epoch (more than the epoch itself with
10-200 examples) and the input pipeline of `model.fit`. `fit` avoids all three: it compiles a
model once and, on later calls, resets the optimizer instead of recompiling, and it feeds full
batches to `train_on_batch`. `make bench` measures what each of these costs on this machine.
"""

from __future__ import annotations

import weakref

import keras
import numpy as np

from . import device
from .checks import check_int, check_labels, check_rate, check_seed

# Models compiled by `prepare`, with the trainable layout and loss they were compiled for.
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

Inputs = np.ndarray | dict


def walk_layers(layer: keras.layers.Layer):
    """The layer and every layer nested in it, depth first."""
    yield layer
    for sub in getattr(layer, "layers", ()):
        yield from walk_layers(sub)


def _layout(model: keras.Model) -> tuple:
    """What a compiled train function depends on: trainable variables and trainable flags."""
    return (
        tuple(id(v) for v in model.trainable_variables),
        tuple(layer.trainable for layer in walk_layers(model)),
    )


def check_inputs(x: Inputs, name: str = "x") -> tuple[Inputs, int]:
    """(x as float32 array or dict of arrays, sample count); refuse NaN/inf and count mismatches."""
    arrays = x if isinstance(x, dict) else {None: x}
    if not arrays:
        raise ValueError(f"{name} is an empty dict; expected modality -> array")
    out, counts = {}, set()
    for key, value in arrays.items():
        label = name if key is None else f"{name}[{key!r}]"
        if not isinstance(value, np.ndarray):
            raise TypeError(f"{label} is a {type(value).__name__}; expected a NumPy array")
        if value.ndim < 2 or not np.issubdtype(value.dtype, np.number):
            raise ValueError(
                f"{label} has shape {value.shape} and dtype {value.dtype}; expected numbers of "
                "shape (n, ...)"
            )
        value = value.astype(np.float32, copy=False)
        if not np.isfinite(value).all():
            raise ValueError(f"{label} holds NaN or infinite values; expected finite numbers")
        out[key] = value
        counts.add(len(value))
    if len(counts) != 1:
        raise ValueError(f"{name} has modalities with different sample counts {sorted(counts)}")
    return (out[None] if None in out else out), counts.pop()


def _take(x: Inputs, idx: np.ndarray) -> Inputs:
    return {k: v[idx] for k, v in x.items()} if isinstance(x, dict) else x[idx]


def _check_fit(model: keras.Model, x: Inputs, y: np.ndarray, lr: object, seed: object) -> tuple:
    """(x, n, y, seed) for a training call, refusing a bad lr, seed, inputs or labels."""
    check_rate(lr)
    seed = check_seed(seed)
    x, n = check_inputs(x)
    return x, n, check_labels(y, n=n, n_classes=int(model.outputs[0].shape[-1])), seed


def prepare(
    model: keras.Model, lr: float, *, loss: str = "sparse_categorical_crossentropy"
) -> None:
    """Compile `model` with Adam(lr) and `loss` once per trainable layout; later, reset Adam.

    Recompiling traces a new train function; a model compiled before
    with the same trainable layout and loss keeps its function and gets a fresh optimizer state
    and learning rate instead. Sparse cross-entropy (integer labels) also tracks accuracy.
    """
    key = (_layout(model), loss)
    if _COMPILED.get(model) == key:
        opt = model.optimizer
        # under mixed_float16 Keras wraps Adam in a LossScaleOptimizer: its scale starts at
        # initial_scale, not 0 (a zero scale would zero every gradient)
        scale = getattr(opt, "dynamic_scale", None)
        for variable in opt.variables:
            start = opt.initial_scale if variable is scale else 0
            variable.assign(keras.ops.full(variable.shape, start, variable.dtype))
        opt.learning_rate = lr
        return
    metrics = ["accuracy"] if loss == "sparse_categorical_crossentropy" else None
    with device.scope():
        model.compile(optimizer=keras.optimizers.Adam(lr), loss=loss, metrics=metrics)
    _COMPILED[model] = key


def fit(
    model: keras.Model,
    x: Inputs,
    y: np.ndarray,
    *,
    epochs: int,
    lr: float,
    seed: int,
    batch_size: int = 32,
    x_val: Inputs | None = None,
    y_val: np.ndarray | None = None,
    class_weight: dict | None = None,
    verbose: bool = False,
) -> keras.callbacks.History:
    """Train a softmax classifier with a fresh Adam(lr) and sparse cross-entropy; return History.

    Each call behaves like `compile` followed by `fit`: the optimizer starts from zero state, so
    calling it again fine-tunes at the new `lr`. Trainable flags are read at each call (a model
    whose layers were frozen or unfrozen is recompiled). Batches of exactly `batch_size` (or n if
    smaller) go through `train_on_batch`, each epoch a seeded permutation topped up with a few
    repeats to fill its last batch. Validation data, when given, are only measured after each
    epoch (`val_loss`, `val_accuracy` in the History): training is the same with or without
    them. `x` may be a dict modality -> array for multi-input models.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"model is a {type(model).__name__}; expected a keras.Model")
    epochs = check_int(epochs, "epochs", low=1)
    batch_size = check_int(batch_size, "batch_size", low=1)
    x, n, y, seed = _check_fit(model, x, y, lr, seed)
    n_classes = int(model.outputs[0].shape[-1])
    if (x_val is None) != (y_val is None):
        raise ValueError("x_val and y_val go together; give both or neither")
    validation = None
    if x_val is not None:
        x_val, n_val = check_inputs(x_val, "x_val")
        y_val = check_labels(y_val, "y_val", n=n_val, n_classes=n_classes, counted="x_val has")
        validation = (x_val, y_val)

    keras.utils.set_random_seed(int(seed))
    prepare(model, float(lr))
    batch_size = min(device.scaled_batch(batch_size), n)
    return _fit_batches(model, x, y, epochs, batch_size, seed, class_weight, verbose, validation)


def fit_steps(
    model: keras.Model,
    x: np.ndarray | dict,
    y: np.ndarray,
    *,
    steps: int,
    lr: float,
    seed: int,
    batch_size: int = 32,
    class_weight: dict | None = None,
    every: int | None = None,
    callback=None,
) -> list[float]:
    """Train exactly `steps` gradient steps with one fresh Adam(lr); return the per-step losses.

    A budget in steps, unlike one in epochs, does not depend on the size of the training set:
    30 and 200 examples get the same number of updates. Every batch holds exactly `batch_size`
    examples (repeats included when the set is smaller), taken in order from seeded permutations
    of the set, so each example is seen equally often (to within one). With `every`,
    `callback(steps_done)` runs after every `every` steps (e.g. to measure validation accuracy);
    it does not restart the optimizer. Compiles as `fit` does (once per layout).
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"model is a {type(model).__name__}; expected a keras.Model")
    steps = check_int(steps, "steps", low=1)
    batch_size = check_int(batch_size, "batch_size", low=1)
    if every is not None:
        every = check_int(every, "every", low=1)
    if (every is None) != (callback is None):
        raise ValueError("every and callback go together; give both or neither")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback is a {type(callback).__name__}; expected a function(steps)")
    x, n, y, seed = _check_fit(model, x, y, lr, seed)
    keras.utils.set_random_seed(seed)
    prepare(model, float(lr))
    batch_size = device.scaled_batch(batch_size)
    rng = np.random.default_rng(seed)
    need = steps * batch_size
    order = np.concatenate([rng.permutation(n) for _ in range(-(-need // n))])[:need]
    model.reset_metrics()
    losses = []
    for step in range(steps):
        idx = order[step * batch_size:(step + 1) * batch_size]
        logs = model.train_on_batch(_take(x, idx), y[idx], class_weight=class_weight,
                                    return_dict=True)
        losses.append(float(logs["loss"]))
        if every is not None and (step + 1) % every == 0:
            callback(step + 1)
    return losses


def _fit_batches(
    model: keras.Model,
    x: Inputs,
    y: np.ndarray,
    epochs: int,
    batch_size: int,
    seed: int,
    class_weight: dict | None,
    verbose: bool,
    validation: tuple | None = None,
) -> keras.callbacks.History:
    """Epochs of full batches through `train_on_batch`; a History with per-epoch loss/accuracy.

    Each epoch is a seeded permutation, topped up with a few random repeats so every batch has
    exactly `batch_size` examples (one traced shape, no retracing for a last partial batch).
    `validation` (x, y) is evaluated after each epoch, without touching the weights.
    """
    rng = np.random.default_rng(seed)
    n = len(y)
    history = keras.callbacks.History()
    history.set_model(model)
    history.history = {"loss": [], "accuracy": []}
    if validation is not None:
        history.history |= {"val_loss": [], "val_accuracy": []}
    for epoch in range(epochs):
        order = rng.permutation(n)
        if n % batch_size:
            extra = rng.choice(n, batch_size - n % batch_size, replace=False)
            order = np.concatenate([order, extra])
        model.reset_metrics()
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            logs = model.train_on_batch(_take(x, idx), y[idx], class_weight=class_weight,
                                        return_dict=True)
        history.history["loss"].append(float(logs["loss"]))
        history.history["accuracy"].append(float(logs["accuracy"]))
        if validation is not None:
            val = model.evaluate(*validation, batch_size=512, verbose=0, return_dict=True)
            history.history["val_loss"].append(float(val["loss"]))
            history.history["val_accuracy"].append(float(val["accuracy"]))
        if verbose:
            print(f"epoch {epoch + 1}/{epochs}: loss {logs['loss']:.4f} "
                  f"accuracy {logs['accuracy']:.4f}")
    return history


def predict_proba(model: keras.Model, x: Inputs, *, batch_size: int = 512) -> np.ndarray:
    """Class probabilities (n, n_classes) in inference mode (dropout off, BatchNorm frozen).

    Calls the model directly in batches rather than `model.predict`, which would trace a new
    function for every new model.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"model is a {type(model).__name__}; expected a keras.Model")
    batch_size = check_int(batch_size, "batch_size", low=1)
    x, n = check_inputs(x)
    chunks = [
        keras.ops.convert_to_numpy(model(_take(x, slice(i, i + batch_size)), training=False))
        for i in range(0, n, batch_size)
    ]
    return np.concatenate(chunks).astype(np.float32)
