"""Small Keras models: conv blocks for images and spectrograms, a character encoder, an MLP, a head.

Every layer that holds weights has a fixed name (`block{i}_conv`, `block{i}_bn`, `dense{i}`,
`head`), so weights can be copied between two models by name (see `transfer.copy_weights`), even
between an image model and an audio model built from the same blueprint.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import keras
from keras import layers

from .checks import check_float, check_int
from .data.dataset import N_CLASSES
from .device import in_scope

ENCODER = "encoder"
HEAD = "head"
# Keras' default BatchNormalization momentum (0.99) needs thousands of steps before its moving
# statistics fit the data; few-shot runs take 20-200 steps, so the statistics move faster here.
BN_MOMENTUM = 0.9


def _check_input_shape(input_shape: object, ndim: int | None = None) -> tuple[int, ...]:
    """A tuple of positive ints (no batch axis); `ndim` fixes its length when given."""
    ok = isinstance(input_shape, (tuple, list)) and all(
        isinstance(d, numbers.Integral) and not isinstance(d, bool) and d > 0 for d in input_shape
    )
    if not ok or (ndim is not None and len(input_shape) != ndim) or not input_shape:
        want = f"{ndim} positive ints" if ndim else "positive ints"
        raise ValueError(
            f"input_shape={input_shape!r} is not a shape; expected a tuple of {want} without the "
            "batch axis, e.g. (8, 8, 1) for images or (32, 40, 1) for spectrograms"
        )
    return tuple(int(d) for d in input_shape)


def _check_sizes(values: object, name: str) -> tuple[int, ...]:
    """A non-empty sequence of positive ints (filters or units)."""
    ok = isinstance(values, Sequence) and not isinstance(values, str) and len(values) > 0
    ok = ok and all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0 for v in values
    )
    if not ok:
        raise ValueError(f"{name}={values!r} should be a non-empty sequence of positive ints")
    return tuple(int(v) for v in values)


@in_scope
def conv_encoder(
    input_shape: Sequence[int],
    filters: Sequence[int] = (16, 32, 32),
    *,
    pooling: str = "average",
    name: str = ENCODER,
) -> keras.Model:
    """Conv blocks (3x3 conv, BatchNorm, ReLU, 2x2 max-pool while the map allows) -> feature vector.

    Works for any (height, width, channels) input: 8x8 digits, 28x28 MNIST or 32x40 log-mel
    spectrograms. Layers are named `block{i}_conv` / `block{i}_bn`; the conv kernels' shapes depend
    only on `filters` and the channel count, so weights move between modalities by name.
    The last map becomes the feature vector by `pooling`: "average" (global average pooling,
    default) gives `filters[-1]` features whatever the input size; "flatten" keeps where each
    feature is - on a spectrogram, which frequency band (640 features for 32x40 spectrograms; the
    same 32 as "average" for 8x8 digits, whose last map is 1x1). Which suits a task is a choice
    to make on validation data. Neither layer has weights, so the choice never blocks a transfer.
    """
    shape = _check_input_shape(input_shape, ndim=3)
    filters = _check_sizes(filters, "filters")
    if pooling not in ("average", "flatten"):
        raise ValueError(f"pooling={pooling!r} is not known; expected 'average' or 'flatten'")
    inputs = keras.Input(shape, name=f"{name}_input")
    h = inputs
    height, width = shape[0], shape[1]
    for i, n_filters in enumerate(filters):
        h = layers.Conv2D(n_filters, 3, padding="same", use_bias=False, name=f"block{i}_conv")(h)
        h = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"block{i}_bn")(h)
        h = layers.ReLU(name=f"block{i}_relu")(h)
        if height >= 2 and width >= 2:
            h = layers.MaxPooling2D(2, name=f"block{i}_pool")(h)
            height, width = height // 2, width // 2
    if pooling == "average":
        features = layers.GlobalAveragePooling2D(name="features")(h)
    else:
        features = layers.Flatten(name="features")(h)
    return keras.Model(inputs, features, name=name)


@in_scope
def mlp_encoder(
    input_shape: Sequence[int], units: Sequence[int] = (64, 32), *, name: str = ENCODER
) -> keras.Model:
    """Flatten + dense blocks (Dense, BatchNorm, ReLU): a model that ignores where pixels are.

    The baseline for "does the conv structure matter?": it sees the same inputs as `conv_encoder`
    but treats them as an unordered vector. Pick `units` so `count_params` is close to the conv
    encoder's. Layers are named `dense{i}` / `dense{i}_bn`.
    """
    shape = _check_input_shape(input_shape)
    units = _check_sizes(units, "units")
    inputs = keras.Input(shape, name=f"{name}_input")
    h = layers.Flatten(name="flatten")(inputs)
    for i, n_units in enumerate(units):
        h = layers.Dense(n_units, use_bias=False, name=f"dense{i}")(h)
        h = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"dense{i}_bn")(h)
        h = layers.ReLU(name=f"dense{i}_relu")(h)
    return keras.Model(inputs, h, name=name)


@in_scope
def text_encoder(
    max_len: int,
    vocab_size: int,
    filters: Sequence[int] = (32, 64),
    *,
    embed_dim: int = 16,
    kernel_size: int = 3,
    pooling: str = "average",
    name: str = ENCODER,
) -> keras.Model:
    """Character ids (max_len,) -> embedding -> conv blocks (1-D conv, BatchNorm, ReLU, 2-pool).

    Reads the int ids of `data.text.encode` (given as floats too: the embedding casts them back
    to ints, exactly for any vocabulary below 2**24). Layers are named `char_embedding`,
    `block{i}_conv` / `block{i}_bn`, as in `conv_encoder`. `pooling` "average" (default) or "max"
    (is a character pattern anywhere in the string?) turns the last map into `filters[-1]`
    features, wherever in its frame the word stands. Max pooling also takes the padding's
    positions, whose value is the same for every short string: such a feature can be almost
    constant on a few labels, and the logistic head's standardization then blows it up.
    "flatten" keeps where each feature is (`max_len // 2**(len(filters) - 1)` positions x
    `filters[-1]`): the stem of an early-fusion model (`fusion.feature_fusion_model`).
    """
    max_len = check_int(max_len, "max_len", low=1)
    vocab_size = check_int(vocab_size, "vocab_size", low=2)
    filters = _check_sizes(filters, "filters")
    embed_dim = check_int(embed_dim, "embed_dim", low=1)
    kernel_size = check_int(kernel_size, "kernel_size", low=1)
    if pooling not in ("max", "average", "flatten"):
        raise ValueError(f"pooling={pooling!r} is not known; expected 'max', 'average' or "
                         "'flatten'")
    inputs = keras.Input((max_len,), name=f"{name}_input")
    h = layers.Embedding(vocab_size, embed_dim, name="char_embedding")(inputs)
    length = max_len
    for i, n_filters in enumerate(filters):
        h = layers.Conv1D(n_filters, kernel_size, padding="same", use_bias=False,
                          name=f"block{i}_conv")(h)
        h = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"block{i}_bn")(h)
        h = layers.ReLU(name=f"block{i}_relu")(h)
        if length >= 2 and i < len(filters) - 1:
            h = layers.MaxPooling1D(2, name=f"block{i}_pool")(h)
            length //= 2
    pool = {"max": layers.GlobalMaxPooling1D, "average": layers.GlobalAveragePooling1D,
            "flatten": layers.Flatten}[pooling]
    return keras.Model(inputs, pool(name="features")(h), name=name)


@in_scope
def classifier(
    encoder: keras.Model, n_classes: int = N_CLASSES, *, dropout: float = 0.0,
    name: str = "classifier",
) -> keras.Model:
    """Encoder -> dropout -> softmax Dense named "head"; the encoder stays one nested layer.

    `model.get_layer("encoder")` (or the encoder's own name) returns the encoder, to freeze it or
    to read features; the head's kernel has shape (features, n_classes).
    """
    if not isinstance(encoder, keras.Model):
        raise TypeError(f"encoder is a {type(encoder).__name__}; expected a keras.Model")
    check_int(n_classes, "n_classes", low=2)
    check_float(dropout, "dropout", low=0, high=1, high_open=True)
    if len(encoder.outputs) != 1 or len(encoder.outputs[0].shape) != 2:
        raise ValueError(
            f"encoder {encoder.name!r} outputs {[o.shape for o in encoder.outputs]}; expected one "
            "feature vector per sample, shape (None, features)"
        )
    inputs = keras.Input(encoder.inputs[0].shape[1:], name="input")
    h = encoder(inputs)
    if dropout > 0:
        h = layers.Dropout(float(dropout), name="dropout")(h)
    # float32 softmax even under mixed precision (same config as the default under float32)
    outputs = layers.Dense(int(n_classes), activation="softmax", dtype="float32", name=HEAD)(h)
    return keras.Model(inputs, outputs, name=name)


def encoder_of(model: keras.Model) -> keras.Model:
    """The nested encoder of a `classifier` model (its only layer that is itself a Model)."""
    if not isinstance(model, keras.Model):
        raise TypeError(f"model is a {type(model).__name__}; expected a keras.Model")
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if len(nested) != 1:
        raise ValueError(
            f"model {model.name!r} holds {len(nested)} nested models; expected exactly one "
            "encoder, as built by classifier(encoder)"
        )
    return nested[0]


def count_params(model: keras.Model, trainable_only: bool = True) -> int:
    """Number of scalar weights in `model` (only the trainable ones by default)."""
    if not isinstance(model, keras.Model):
        raise TypeError(f"model is a {type(model).__name__}; expected a keras.Model")
    weights = model.trainable_weights if trainable_only else model.weights
    total = 0
    for w in weights:
        size = 1
        for d in w.shape:
            size *= int(d)
        total += size
    return total
