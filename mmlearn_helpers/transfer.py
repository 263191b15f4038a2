"""Parameter transfer: pretrained source models (cached), weight copying, freezing, few-shot runs.

The three ways to use a source model on a target with k labels per class, for any target classes:
- "scratch": the same architecture with fresh random weights, trained on the k-shot set;
- "frozen": the source encoder kept fixed, a new linear head fitted on its features;
- "finetuned": the frozen recipe first, then every layer trained at a low learning rate, with
  BatchNormalization kept in inference mode (the Keras transfer-learning recipe).
Two more when the target has the source's classes (the same labels, meaning the same things):
- "zero_shot": the source model as it is, its own head included; no target label used;
- "source_head": "finetuned", but starting from the source's own head instead of a new one.
The new head is a multinomial logistic regression fitted with scikit-learn on the encoder's
features and written into the Keras head: with 1-20 labels per class a Keras head trained by
gradient descent stayed badly under-fitted, while the convex fit converges every time.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import keras
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from tqdm.auto import tqdm

from .checks import check_choice, check_float, check_int, check_ints, check_labels, check_seed
from .device import scope
from .metrics import evaluate, summarize
from .models import HEAD, classifier, conv_encoder, encoder_of, text_encoder
from .training import check_inputs, fit, predict_proba, walk_layers

NEW_HEAD_METHODS = ("scratch", "frozen", "finetuned")  # any target classes
SOURCE_HEAD_METHODS = ("zero_shot", "source_head")  # only a target with the source's classes
METHODS = NEW_HEAD_METHODS + SOURCE_HEAD_METHODS
# Source data set -> the modality its models read.
SOURCES = {"printed_digits": "image", "spoken_digits": "audio", "text_digits": "text"}
PROFILES = ("fast", "full")
# Pretraining per source and profile: passes over the (augmented) training set, Adam learning
# rate, batch size; seconds on two CPU cores, then cached.
PRETRAIN = {
    "printed_digits": {
        "fast": {"epochs": 3, "lr": 1e-2, "batch_size": 64},
        "full": {"epochs": 10, "lr": 3e-3, "batch_size": 64},
    },
    "spoken_digits": {
        "fast": {"epochs": 12, "lr": 5e-3, "batch_size": 64},
        "full": {"epochs": 20, "lr": 3e-3, "batch_size": 64},
    },
    "text_digits": {
        "fast": {"epochs": 15, "lr": 5e-3, "batch_size": 64},
        "full": {"epochs": 30, "lr": 3e-3, "batch_size": 64},
    },
}
# Augmented copies of the source training set added to the clean one when augment=True: the
# source voices again, each copy with its own seeded pink or babble noise (10-30 dB SNR), speed
# (+-10%) and pitch (+-1 semitone). The targets' conditions lie outside this: white noise, SNR
# 10 dB and lower, larger speed and pitch changes, so robustness must transfer, not be recalled.
SOURCE_AUGMENT = {
    "spoken_digits": {"copies": 2, "options": [
        {"snr_db": (10, 30), "noise": "pink", "speed": 0.1, "pitch": 1.0},
        {"snr_db": (10, 30), "noise": "babble", "speed": 0.1, "pitch": 1.0}]},
    # the English train strings again, each copy with its own seeded writing noise
    "text_digits": {"copies": 4, "options": [{"noise": 0.1}, {"noise": 0.2}, {"noise": 0.3},
                                             {"noise": 0.4}]},
}
# The split each source trains on: the speech source has voices of its own ("source"), which no
# target split shares; printed digits are rendered, so their "train" split is the source's own.
# The text source reads the English strings of the "train" frames; targets are other languages.
SOURCE_SPLITS = {"printed_digits": "train", "spoken_digits": "source", "text_digits": "train"}
# Encoder architecture per modality when `pretrained_source` is given no filters or pooling.
SOURCE_ARCHITECTURE = {"image": ((16, 32, 32), "average"), "audio": ((16, 32, 32), "average"),
                       "text": ((32, 64), "average")}
# Named source recipes: what `pretrained_source(..., recipe=name)` changes from the defaults
# (encoder `filters` and `pooling`, and `augment`, which replaces SOURCE_AUGMENT). An augment
# recipe's "options" may be a list (copy i uses options[i % len]); "mask" blanks one random band
# of up to `mels` mel bands and one of up to `frames` frames in each augmented copy (SpecAugment).
# "sim_to_real" (notebook 01 on FSDD, chosen on FSDD's validation recordings, k=5, 3 seeds, the
# budgets of settings.TABLE["01_parameter_transfer"]["avmnist"]): a fourth conv block
# (32-64-64-128) took the best transferred accuracy from 0.73 to 0.80 and its gain over scratch
# (same architecture) from +0.02 to +0.07; the four varied copies with masks left those
# unchanged but, with two of the six speakers held out of the labels (scored on their own
# clips), lifted transfer from 0.67 to 0.74 and the gain from +0.10 to +0.17. Normalizing each
# clip's log-mel by its own mean per band (0.80 -> 0.80 and 0.74 -> 0.68 held out) and global
# average pooling (0.76 instead of 0.80) did not help.
SOURCE_RECIPES = {
    "sim_to_real": {
        "source": "spoken_digits",
        "filters": (32, 64, 64, 128),
        "pooling": "flatten",
        "augment": {
            "copies": 4,
            "options": [
                {"snr_db": (0, 20), "noise": "white", "speed": 0.15, "pitch": 2.0},
                {"snr_db": (5, 30), "noise": "pink", "speed": 0.2, "pitch": 3.0, "reverb": 0.3,
                 "gain_db": 6.0},
                {"speed": 0.2, "pitch": 3.0, "reverb": 0.5},
                {"snr_db": (10, 30), "noise": "babble", "speed": 0.15, "pitch": 2.0,
                 "gain_db": 6.0},
            ],
            "mask": {"mels": 6, "frames": 8},
        },
    },
}
CACHE_FORMAT = 1


def _check_method(method: object) -> str:
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not a transfer method; expected one of {METHODS}")
    return method


def _weighted_layers(model: keras.Model) -> dict[str, keras.layers.Layer]:
    """Name -> layer for every non-container layer of `model` (nested ones too) that has weights."""
    found: dict[str, keras.layers.Layer] = {}
    for layer in walk_layers(model):
        if isinstance(layer, keras.Model) or not layer.weights:
            continue
        if layer.name in found:
            raise ValueError(
                f"model {model.name!r} holds two layers named {layer.name!r}; pass the sub-model "
                "(e.g. model.get_layer('audio_encoder')) so names are unique"
            )
        found[layer.name] = layer
    return found


def copy_weights(
    src: keras.Model, dst: keras.Model, layers: Sequence[str] | None = None
) -> list[str]:
    """Copy weights from `src` to `dst` layer by layer, matched by name; return the names copied.

    `layers=None` copies every weighted layer whose name exists in both models. A named layer
    missing from either model, or whose weight shapes differ, raises ValueError before anything
    is copied. BatchNormalization moving statistics travel with their layer.
    """
    for name, model in (("src", src), ("dst", dst)):
        if not isinstance(model, keras.Model):
            raise TypeError(f"{name} is a {type(model).__name__}; expected a keras.Model")
    src_layers, dst_layers = _weighted_layers(src), _weighted_layers(dst)
    if layers is None:
        names = [n for n in src_layers if n in dst_layers]
    else:
        if isinstance(layers, str) or not isinstance(layers, Sequence):
            raise TypeError(f"layers={layers!r} should be a list of layer names or None")
        names = list(layers)
        for where, table in (("src", src_layers), ("dst", dst_layers)):
            missing = [n for n in names if n not in table]
            if missing:
                raise ValueError(
                    f"layers {missing} are not weighted layers of {where} model "
                    f"{(src if where == 'src' else dst).name!r}; it has {sorted(table)}"
                )
    for name in names:
        got = [tuple(w.shape) for w in src_layers[name].weights]
        want = [tuple(w.shape) for w in dst_layers[name].weights]
        if got != want:
            raise ValueError(
                f"layer {name!r}: the source weights have shapes {got} but the destination "
                f"expects {want}; copy only layers of the same size (check filters/n_classes)"
            )
    for name in names:
        dst_layers[name].set_weights(src_layers[name].get_weights())
    return names


def freeze(model: keras.Model, *, trainable: bool = False) -> keras.Model:
    """Set `model.trainable` (all nested layers follow) and return the model.

    A frozen BatchNormalization layer runs in inference mode, using its moving statistics even
    while the rest of a model trains (Keras 3 behaviour). `fit` recompiles after a change.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"model is a {type(model).__name__}; expected a keras.Model")
    if not isinstance(trainable, bool):
        raise TypeError(f"trainable={trainable!r} should be True or False")
    model.trainable = trainable
    return model


def few_shot_indices(y: np.ndarray, k: int, *, seed: int) -> np.ndarray:
    """Sorted indices of k examples per class, drawn with `seed`; nested in k for a fixed seed."""
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"y has shape {y.shape} and dtype {y.dtype}; expected (n,) integer labels")
    check_int(k, "k", low=1)
    rng = np.random.default_rng(check_seed(seed))
    classes, counts = np.unique(y, return_counts=True)
    picked = []
    for label, count in zip(classes, counts, strict=True):
        if k > count:
            raise ValueError(
                f"k={k} is larger than the {count} training examples of class {label}; "
                f"choose k <= {counts.min()}"
            )
        picked.append(rng.permutation(np.flatnonzero(y == label))[:k])
    return np.sort(np.concatenate(picked))


def encoder_features(model: keras.Model, x: np.ndarray | dict, *,
                     batch_size: int = 512) -> np.ndarray:
    """Encoder features (n, d) of a `classifier` (or an encoder's outputs), in inference mode."""
    has_head = any(layer.name == HEAD for layer in model.layers)
    encoder = encoder_of(model) if has_head else model
    return predict_proba(encoder, x, batch_size=batch_size)


def logistic_head(feats: np.ndarray, y: np.ndarray, n_classes: int, C: float) -> tuple:
    """Kernel (d, n_classes) and bias of a standardized multinomial logistic regression."""
    present = np.unique(y)
    if len(present) != n_classes:
        raise ValueError(
            f"y holds {len(present)} of the {n_classes} classes; a new head needs at least one "
            "example of every class"
        )
    scaler = StandardScaler().fit(feats)
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    clf = LogisticRegression(C=C, max_iter=2000).fit((feats - scaler.mean_) / scale, y)
    kernel = clf.coef_.T / scale[:, None]
    bias = clf.intercept_ - (scaler.mean_ / scale) @ clf.coef_.T
    return kernel.astype(np.float32), bias.astype(np.float32)


def fit_linear_head(
    model: keras.Model, x: np.ndarray | dict, y: np.ndarray, *, C: float = 1.0
) -> keras.Model:
    """Fit the "head" of a `classifier` as a logistic regression on its encoder's features.

    Features are standardized and the L2-regularized multinomial logistic regression (inverse
    strength `C`) is fitted by scikit-learn, then folded into the head's kernel and bias, so the
    Keras model predicts exactly what the logistic regression predicts. The encoder is unchanged.
    """
    check_float(C, "C", low=0, low_open=True, hint=" (inverse regularization strength)")
    head = model.get_layer(HEAD)
    feats = encoder_features(model, x)
    y = check_labels(y, n=len(feats), n_classes=head.units)
    kernel, bias = logistic_head(feats, y, head.units, float(C))
    head.set_weights([kernel, bias])
    return model


def transfer_model(
    method: str,
    source_model: keras.Model,
    *,
    input_shape: Sequence[int] | None = None,
    n_classes: int | None = None,
    dropout: float = 0.0,
    seed: int = 0,
) -> keras.Model:
    """A new `classifier` with the source's encoder architecture, set up for `method`.

    "scratch": fresh weights (drawn with `seed`); "frozen": the source encoder's weights, not
    trainable; "finetuned": the source encoder's weights with BatchNormalization frozen (inference
    mode) and every other layer trainable - train it at a low learning rate. Their head is new
    (random; see `fit_linear_head`). "zero_shot" and "source_head" are "frozen" and "finetuned"
    with the source's own head copied in; they keep the source's classes, so `n_classes` must be
    None or the source's. `input_shape` may differ from the source's (e.g. 28x28
    MNIST from an 8x8 source): convolution weights do not depend on the image size.
    """
    method = _check_method(method)
    encoder = encoder_of(source_model)
    keras.utils.set_random_seed(check_seed(seed))
    shape = tuple(encoder.inputs[0].shape[1:]) if input_shape is None else tuple(input_shape)
    if shape == tuple(encoder.inputs[0].shape[1:]):
        with scope():
            new_encoder = keras.models.clone_model(encoder)
    else:
        if len(shape) != len(encoder.inputs[0].shape) - 1:
            raise ValueError(
                f"input_shape={input_shape!r} has {len(shape)} axes; the source encoder reads "
                f"{tuple(encoder.inputs[0].shape[1:])}"
            )
        with scope():
            new_encoder = keras.models.clone_model(
                encoder, input_tensors=keras.Input(shape, name=f"{encoder.name}_input")
            )
    source_classes = int(source_model.outputs[0].shape[-1])
    if method in SOURCE_HEAD_METHODS and n_classes not in (None, source_classes):
        raise ValueError(f"n_classes={n_classes!r} with method={method!r}: the source's head "
                         f"predicts {source_classes} classes; leave n_classes=None")
    n_out = source_classes if n_classes is None else n_classes
    model = classifier(new_encoder, n_out, dropout=dropout, name=f"{method}_classifier")
    if method != "scratch":
        copy_weights(encoder, new_encoder)
    if method in SOURCE_HEAD_METHODS:
        copy_weights(source_model, model, [HEAD])
    if method in ("frozen", "zero_shot"):
        freeze(new_encoder)
    if method in ("finetuned", "source_head"):
        for layer in walk_layers(new_encoder):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
    return model


def _check_profile(profile: object) -> str:
    if profile not in PROFILES:
        raise ValueError(f"profile={profile!r} is not a profile; expected one of {PROFILES}")
    return profile


def cache_dir_default() -> Path:
    """Folder for pretrained weights: env MMLEARN_CACHE if set, else ~/.cache/mmlearn/models."""
    env = os.environ.get("MMLEARN_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mmlearn" / "models"


def cached_model(
    key: dict,
    build: Callable[[], keras.Model],
    train: Callable[[keras.Model], None],
    cache_dir: str | os.PathLike | None = None,
) -> keras.Model:
    """`build()` a model and load its weights from the cache, or `train(model)` and store them.

    The file name is a hash of `key` (a JSON-able dict describing the data and training the
    weights depend on), the model's architecture (its JSON config), the Keras version and
    backend. Weights are written to a temporary file and renamed, so an interrupted run never
    leaves a file that looks complete; a file that cannot be read is retrained and replaced.
    """
    if not isinstance(key, dict):
        raise TypeError(f"key is a {type(key).__name__}; expected a JSON-able dict")
    model = build()
    full_key = {**key, "architecture": model.to_json(), "keras": keras.__version__,
                "backend": keras.backend.backend(), "format": CACHE_FORMAT}
    text = json.dumps(full_key, sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode()).hexdigest()[:20]
    folder = Path(cache_dir).expanduser() if cache_dir is not None else cache_dir_default()
    path = folder / f"{key.get('source', 'model')}-{digest}.weights.h5"
    if path.is_file():
        try:
            model.load_weights(path)
            return model
        except (OSError, ValueError):
            model = build()
    train(model)
    folder.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".weights.h5")
    os.close(handle)
    try:
        model.save_weights(tmp, overwrite=True)
        os.replace(tmp, path)
        path.with_name(path.name.replace(".weights.h5", ".key.json")).write_text(text + "\n")
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return model


def data_fingerprint() -> str:
    """Hash of what generated data depend on: the data code, the shipped files, library versions.

    Every data set is a deterministic function of these (plus name, options and seed), so a
    cache keyed by it never serves weights trained on other data, without loading the data.
    """
    import matplotlib
    import scipy

    from . import data
    from .data import spoken, text

    digest = hashlib.sha256(f"{np.__version__} {scipy.__version__} {matplotlib.__version__}"
                            .encode())
    files = sorted(Path(data.__file__).parent.glob("*.py"))
    files += sorted(Path(spoken.DATA_DIR).glob("*.npz")) if Path(spoken.DATA_DIR).is_dir() else []
    files += [text.TEXT_FILE] if text.TEXT_FILE.is_file() else []
    for path in files:
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:20]


def _check_recipe(recipe: object, source: str) -> dict:
    """A recipe name or dict -> its dict of overrides (filters, pooling, augment); None -> {}."""
    if recipe is None:
        return {}
    if isinstance(recipe, str):
        if recipe not in SOURCE_RECIPES:
            raise ValueError(f"recipe={recipe!r} is not a source recipe; expected one of "
                             f"{tuple(SOURCE_RECIPES)}, a dict or None")
        recipe = SOURCE_RECIPES[recipe]
    if not isinstance(recipe, dict):
        raise TypeError(f"recipe={recipe!r}; expected a name of SOURCE_RECIPES, a dict or None")
    unknown = sorted(set(recipe) - {"source", "filters", "pooling", "augment"})
    if unknown or recipe.get("source", source) != source:
        raise ValueError(f"recipe={recipe!r} does not fit source {source!r}; expected keys "
                         "'filters', 'pooling', 'augment' (and 'source' naming this source)")
    return {k: v for k, v in recipe.items() if k != "source"}


def _masked(x: np.ndarray, mask: dict, seed: int) -> np.ndarray:
    """One random band of up to mask["mels"] mel bands and of up to mask["frames"] frames set to
    0 (the training voices' mean) in each clip of (n, mels, frames, 1) features; seeded."""
    rng = np.random.default_rng(seed)
    n, n_mels, n_frames = x.shape[:3]
    hits = []
    for size, width in ((n_mels, mask["mels"]), (n_frames, mask["frames"])):
        widths = rng.integers(0, width + 1, size=n)
        starts = rng.integers(0, size - widths + 1)
        pos = np.arange(size)[None, :]
        hits.append((pos >= starts[:, None]) & (pos < (starts + widths)[:, None]))  # (n, size)
    blank = hits[0][:, :, None] | hits[1][:, None, :]  # (n, mels, frames)
    return np.where(blank[..., None], np.float32(0), x).astype(np.float32)


def _model_input(data: object, modality: str) -> np.ndarray:
    """A Dataset's array of `modality`; text as the shared character ids of `data.text.encode`."""
    from .data.text import encode

    return encode(data.x["text"]) if modality == "text" else data.x[modality]


def _source_training_set(source: str, seed: int, recipe: dict | None,
                         data_options: dict) -> tuple[np.ndarray, np.ndarray]:
    """The source split of `source`, plus the augmented copies `recipe` asks for (if any)."""
    from .data import load_dataset

    modality, split = SOURCES[source], SOURCE_SPLITS[source]
    data = load_dataset(source, split=split, seed=seed, **data_options)
    xs, ys = [_model_input(data, modality)], [data.y]
    for copy in range(recipe["copies"] if recipe else 0):
        options = recipe["options"]
        options = options[copy % len(options)] if isinstance(options, list) else options
        extra = load_dataset(source, split=split, seed=seed * 1000 + copy + 1,
                             **{**data_options, **options})
        x = _model_input(extra, modality)
        if recipe.get("mask"):
            x = _masked(x, recipe["mask"], seed * 1000 + copy + 1)
        xs.append(x)
        ys.append(extra.y)
    return np.concatenate(xs), np.concatenate(ys)


def _source_encoder(modality: str, filters: Sequence[int], pooling: str) -> keras.Model:
    """A fresh encoder for a source of `modality` (8x8 images, log-mel clips or character ids)."""
    from .data import N_FRAMES, N_MELS
    from .data.text import MAX_LEN, vocabulary

    if modality == "text":
        return text_encoder(MAX_LEN, len(vocabulary()), filters, pooling=pooling)
    shape = (8, 8, 1) if modality == "image" else (N_MELS, N_FRAMES, 1)
    return conv_encoder(shape, filters, pooling=pooling)


def pretrained_source(
    source: str,
    *,
    profile: str = "fast",
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    filters: Sequence[int] | None = None,
    pooling: str | None = None,
    augment: bool = True,
    recipe: str | dict | None = None,
    verbose: bool = False,
    **data_options,
) -> keras.Model:
    """A `classifier` trained on a source data set's own split (SOURCE_SPLITS), cached on disk.

    `source` is "printed_digits" (image model), "spoken_digits" (audio model: the English "source"
    voices, which no target split shares) or "text_digits" (text model, `models.text_encoder` on
    `data.text.encode` ids: English strings only, the "train" frames); `data_options` go to
    `load_dataset`. With `augment` the training set also holds the augmented copies of
    SOURCE_AUGMENT (noisy speech or writing). Training follows PRETRAIN[source][profile];
    `filters` and `pooling` (defaults SOURCE_ARCHITECTURE) go to the modality's encoder.
    `recipe` (a name of SOURCE_RECIPES, e.g. "sim_to_real", or a dict of the same keys) replaces
    those defaults and the augmentation; explicit `filters` or `pooling` still win, and
    `augment=False` still trains on the clean clips only. The first call
    trains (seconds) and stores the weights under `cache_dir` (default `cache_dir_default()`); later
    calls with the same source, options, data, profile, seed and architecture load them. The cache
    key includes `data_fingerprint()`, so rebuilt data or a changed data pipeline never reuse stale
    weights.
    """
    if source not in SOURCES:
        raise ValueError(f"source={source!r} is not a source data set; expected one of "
                         f"{tuple(SOURCES)}")
    settings = PRETRAIN[source][_check_profile(profile)]
    seed = check_seed(seed)
    if not isinstance(augment, bool):
        raise TypeError(f"augment={augment!r} should be True or False")
    overrides = _check_recipe(recipe, source)
    modality = SOURCES[source]
    if modality == "text" and data_options.get("language", "en") != "en":
        raise ValueError(f"language={data_options['language']!r}: the text source reads English "
                         "only, so that every other language stays a target")
    default_filters, default_pooling = SOURCE_ARCHITECTURE[modality]
    filters = overrides.get("filters", default_filters) if filters is None else filters
    pooling = overrides.get("pooling", default_pooling) if pooling is None else pooling
    recipe = overrides.get("augment", SOURCE_AUGMENT.get(source)) if augment else None
    key = {"source": source, "options": data_options, "augment": recipe, "profile": profile,
           "seed": seed, "train": settings, "data": data_fingerprint()}

    def build() -> keras.Model:
        keras.utils.set_random_seed(seed)
        return classifier(_source_encoder(modality, filters, pooling), 10,
                          name=f"{source}_classifier")

    def train(model: keras.Model) -> None:
        x, y = _source_training_set(source, seed, recipe, data_options)
        fit(model, x, y, seed=seed, verbose=verbose, **settings)

    return cached_model(key, build, train, cache_dir)


# Keras models reused by `learning_curve`, per (method, encoder config, input shape, classes):
# each is traced once per batch shape and reset before every run.
_RUNNERS: dict[tuple, keras.Model] = {}


def _runner(method: str, source_model: keras.Model, shape: tuple) -> keras.Model:
    """A `transfer_model(method, ...)` for this architecture, built once and then reused."""
    key = (method, encoder_of(source_model).to_json(), tuple(shape),
           int(source_model.outputs[0].shape[-1]))
    if key not in _RUNNERS:
        _RUNNERS[key] = transfer_model(method, source_model, input_shape=shape)
    return _RUNNERS[key]


def _passes(steps: int, batch_size: int, n: int) -> int:
    """Whole passes over n examples that give about `steps` batches (at least one pass)."""
    return max(1, round(steps * min(batch_size, n) / n))


def _per_seed(source_model: object, seeds: tuple[int, ...]) -> dict[int, keras.Model]:
    """One source model for all seeds, or a dict seed -> source model covering every seed."""
    if isinstance(source_model, keras.Model):
        return dict.fromkeys(seeds, source_model)
    if not isinstance(source_model, Mapping) or not all(
            isinstance(m, keras.Model) for m in source_model.values()):
        raise TypeError(f"source_model is a {type(source_model).__name__}; expected a "
                        "keras.Model or a dict seed -> keras.Model")
    missing = [s for s in seeds if s not in source_model]
    if missing:
        raise ValueError(f"source_model has no model for seeds {missing}; expected one per seed")
    return {s: source_model[s] for s in seeds}


def learning_curve(
    source_model: keras.Model | Mapping[int, keras.Model],
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    ks: Sequence[int] = (1, 5, 20),
    seeds: Sequence[int] = (0, 1, 2),
    methods: Sequence[str] = NEW_HEAD_METHODS,
    steps: int = 100,
    epochs: int = 30,
    lr: float = 1e-2,
    finetune_steps: int = 20,
    finetune_lr: float = 1e-3,
    batch_size: int = 32,
    C: float = 1.0,
    verbose: bool = True,
) -> tuple[list[dict], list[dict]]:
    """Test metrics of each method trained on k labels per class, for every k and seed.

    `source_model` is one source for every seed, or a dict seed -> source (e.g. pretrained with that
    seed), so that the seeds vary the source too. For each seed and k the same k-shot subset of
    (x_train, y_train) is used by every method (`few_shot_indices`); each model is evaluated on all
    of (x_test, y_test). "scratch" trains from fresh weights drawn with the seed, at `lr`, for at
    least `steps` batches and at least `epochs` passes over the k-shot set (small sets need many
    steps, larger ones many passes); "frozen" fits a logistic regression head (`C`) on the source
    encoder's features; "finetuned" starts from that frozen model and trains every layer but
    BatchNormalization for about `finetune_steps` batches (at least one pass) at `finetune_lr`.
    Where the target has the source's classes, `methods` may add "zero_shot" (the source's own
    head on the test split: the same for every k) and "source_head" (fine-tuned like "finetuned",
    starting from the source's own head instead of the fitted new one). Models are built once
    per architecture and reset between runs (see `_CurveRun`).
    Returns (rows: one dict per method, k and seed, with `correct`, the per-test-example hits;
    summary: mean and std over seeds per method and k, see `metrics.summarize`).
    """
    methods = tuple(_check_method(m) for m in dict.fromkeys(methods))
    ks = check_ints(ks, "ks", low=1)
    seeds = check_ints(seeds, "seeds", low=0)
    sources = _per_seed(source_model, seeds)
    budget = {"steps": steps, "epochs": epochs, "finetune_steps": finetune_steps}
    budget = {name: check_int(v, name, low=1) for name, v in budget.items()}
    budget |= {"lr": lr, "finetune_lr": finetune_lr, "batch_size": batch_size, "C": C}
    data = _check_curve_data(sources[seeds[0]], x_train, y_train, x_test, y_test)
    y_train, y_test = data[1], data[3]
    few_shot_indices(y_train, max(ks), seed=seeds[0])  # refuse a too-large k before training
    run = _CurveRun(sources, methods, data, budget)
    rows = []
    with tqdm(total=len(ks) * len(seeds) * len(methods), desc="learning curve",
              disable=not verbose) as bar:
        for k, seed in itertools.product(ks, seeds):
            idx = few_shot_indices(y_train, k, seed=seed)
            for method in methods:
                t0 = time.perf_counter()
                scores = run.scores(method, seed, idx)
                rows.append({"method": method, "k": k, "seed": seed, **evaluate(y_test, scores),
                             "correct": scores.argmax(1) == y_test,
                             "seconds": time.perf_counter() - t0})
                bar.update()
    return rows, summarize(rows)


def _check_curve_data(source_model: keras.Model, x_train: np.ndarray, y_train: np.ndarray,
                      x_test: np.ndarray, y_test: np.ndarray) -> tuple:
    """(x_train, y_train, x_test, y_test), each array of the source's input shape or classes."""
    encoder = encoder_of(source_model)
    x_train, n = check_inputs(x_train, "x_train")
    x_test, n_test = check_inputs(x_test, "x_test")
    for name, arr in (("x_train", x_train), ("x_test", x_test)):
        if not isinstance(arr, np.ndarray) or arr.ndim != len(encoder.inputs[0].shape):
            raise ValueError(
                f"{name} has shape {getattr(arr, 'shape', None)}; expected one array of "
                f"(n, {', '.join(str(d) for d in encoder.inputs[0].shape[1:])}) samples"
            )
    n_classes = int(source_model.outputs[0].shape[-1])
    y_train = check_labels(y_train, "y_train", n=n, n_classes=n_classes)
    y_test = check_labels(y_test, "y_test", n=n_test, n_classes=n_classes)
    return x_train, y_train, x_test, y_test


class _CurveRun:
    """The models of one learning curve, built once and reset from each seed's source per run.

    State is real here: the compiled models, each seed's encoder features and fine-tuning start,
    and the logistic head of the current k-shot set, which "frozen" and "finetuned" share.
    """

    def __init__(self, sources: dict, methods: tuple, data: tuple, budget: dict):
        self.sources, self.budget = sources, budget
        self.x_train, self.y_train, self.x_test, _ = data
        first_seed, shape = next(iter(sources)), self.x_train.shape[1:]
        self.first = first = sources[first_seed]
        self.n_classes = int(first.outputs[0].shape[-1])
        self.frozen = transfer_model("frozen", first, input_shape=shape, seed=first_seed)
        if set(SOURCE_HEAD_METHODS) & set(methods):  # the source's head must fit the target
            copy_weights(first, self.frozen, [HEAD])
        self.scratch = _runner("scratch", first, shape) if "scratch" in methods else None
        tuning = {"finetuned", "source_head"} & set(methods)
        self.tuned = _runner("finetuned", first, shape) if tuning else None
        self.from_source: dict[int, tuple] = {}  # seed -> features, tuning start, source head
        self.initial: dict[int, list] = {}  # seed -> fresh "scratch" weights, the same for all k
        self.head: tuple = (None, None)  # (k-shot labels' key, fitted logistic head)

    def source_start(self, seed: int) -> tuple:
        """Train and test features of the seed's encoder, its fine-tuning start, its own head."""
        if seed not in self.from_source:
            source = self.sources[seed]
            copy_weights(encoder_of(source), encoder_of(self.frozen))
            start = None
            if self.tuned is not None:
                copy_weights(encoder_of(source), encoder_of(self.tuned))
                start = self.tuned.get_weights()
            self.from_source[seed] = (encoder_features(self.frozen, self.x_train),
                                      encoder_features(self.frozen, self.x_test), start,
                                      source.get_layer(HEAD).get_weights())
        return self.from_source[seed]

    def new_head(self, seed: int, idx: np.ndarray) -> tuple:
        """The logistic head on the seed's features of the k-shot set `idx` (fitted once)."""
        key = (seed, idx.tobytes())
        if self.head[0] != key:
            feats = self.source_start(seed)[0][idx]
            self.head = (key, logistic_head(feats, self.y_train[idx], self.n_classes,
                                            self.budget["C"]))
        return self.head[1]

    def scores(self, method: str, seed: int, idx: np.ndarray) -> np.ndarray:
        """Class scores on the test split of `method` trained on the k-shot set `idx` at `seed`."""
        b, x_k, y_k = self.budget, self.x_train[idx], self.y_train[idx]
        if method == "scratch":
            if seed not in self.initial:
                self.initial[seed] = transfer_model("scratch", self.first,
                                                    input_shape=x_k.shape[1:],
                                                    seed=seed).get_weights()
            self.scratch.set_weights(self.initial[seed])
            passes = max(_passes(b["steps"], b["batch_size"], len(y_k)), b["epochs"])
            fit(self.scratch, x_k, y_k, epochs=passes, lr=b["lr"], seed=seed,
                batch_size=b["batch_size"])
            return predict_proba(self.scratch, self.x_test)
        _, feats_test, start, source_head = self.source_start(seed)
        if method == "zero_shot":
            return feats_test @ source_head[0] + source_head[1]
        head = self.new_head(seed, idx) if method in ("frozen", "finetuned") else source_head
        if method == "frozen":
            return feats_test @ head[0] + head[1]
        self.tuned.set_weights(start)
        self.tuned.get_layer(HEAD).set_weights(list(head))
        fit(self.tuned, x_k, y_k, epochs=_passes(b["finetune_steps"], b["batch_size"], len(y_k)),
            lr=b["finetune_lr"], seed=seed, batch_size=b["batch_size"])
        return predict_proba(self.tuned, self.x_test)


def _text_targets(seed: int, language: object, eval_split: str, modalities: object,
                  options: dict | None) -> dict[str, tuple]:
    """{"text": `text_target(...)`} of `language`, by default every language but English."""
    from .data.text import languages

    if modalities not in (None, ("text",), ["text"]):
        raise ValueError(f"modalities={modalities!r}; the text digits hold ('text',) only")
    options = dict(options or {})
    unknown = sorted(set(options) - {"noise", "forms", "n"})
    if unknown:
        raise TypeError(f"text_options has {unknown}; expected some of 'noise', 'forms', 'n'")
    codes = [c for c in languages() if c != "en"] if language is None else language
    return {"text": text_target(codes, seed=seed, eval_split=eval_split, **options)}


# Samples drawn from AV-MNIST per split by `transfer_targets`: enough pairs that nearly every FSDD
# recording of the split appears (each is paired with about eight images), few enough to load fast.
AVMNIST_PAIRS = {"train": 20_000, "val": 3_000, "test": 3_000}


def _avmnist(split: str, seed: int, data_dir: object, options: dict):
    """AV-MNIST pairs of a split: AVMNIST_PAIRS[split] of them, or all when there are fewer."""
    from .data import load_dataset

    return load_dataset("avmnist", split=split, seed=seed, data_dir=data_dir,
                        n=AVMNIST_PAIRS[split], **options)


def _target_languages(dataset: str, language: str | Sequence[str] | None) -> list[str] | None:
    """The spoken-digit languages of the speech target: every one but English by default."""
    from .data import languages
    from .data.spoken import check_language

    if dataset == "avmnist":
        if language is not None:
            raise ValueError(f"language={language!r}; the avmnist audio is the Free Spoken Digit "
                             "Dataset (English only): leave language=None")
        return None
    if language is None:
        return [code for code in languages() if code != "en"]
    return list(check_language(language))


def _avmnist_target(split: str, seed: int, data_dir: object, modalities: Sequence[str],
                    options: dict, codes: None) -> tuple[dict, np.ndarray]:
    """AV-MNIST images of a split, and each of its FSDD recordings once, with their speakers."""
    pairs = _avmnist(split, seed, data_dir, {**options["image"], **options["audio"]})
    first = np.sort(np.unique(pairs.meta["file"], return_index=True)[1])
    found = {"image": (pairs.x["image"], pairs.y),
             "audio": (pairs.x["audio"][first], pairs.y[first])}
    return found, pairs.meta["speaker"][first]


def _digits_target(split: str, seed: int, data_dir: object, modalities: Sequence[str],
                   options: dict, codes: list[str]) -> tuple[dict, np.ndarray | None]:
    """scikit-learn's digits and the spoken digits in `codes` of a split (those asked for)."""
    from .data import load_dataset

    found, speakers = {}, None
    if "image" in modalities:
        images = load_dataset("digits", split=split, seed=seed, **options["image"])
        found["image"] = (images.x["image"], images.y)
    if "audio" in modalities:
        speech = load_dataset("spoken_digits", split=split, seed=seed, language=codes,
                              **options["audio"])
        found["audio"] = (speech.x["audio"], speech.y)
        speakers = speech.meta["speaker"]
    return found, speakers


def _text_forms(data: object, forms: object) -> np.ndarray:
    """Mask of the strings of a text Dataset written in one of `forms` (None: every form)."""
    if forms is None:
        return np.ones(len(data.y), dtype=bool)
    if isinstance(forms, str) or not isinstance(forms, (list, tuple)) or not forms:
        raise TypeError(f"forms={forms!r}; expected a list of form names such as ['word'] or None")
    present = sorted(set(data.meta["form"]))
    for form in forms:
        check_choice(form, "forms", present)
    return np.isin(data.meta["form"], forms)


def text_target(
    language: str | Sequence[str],
    *,
    seed: int = 0,
    noise: float = 0.0,
    forms: Sequence[str] | None = None,
    n: int | None = None,
    eval_split: str = "test",
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Text digits of `language` as (x_train, y_train, x_test, y_test), shared character ids.

    The train split's frames give x_train, `eval_split`'s ("test" or "val") x_test, so no clean
    string is in both; each string has its own seeded writing `noise` (see `data.text`). `forms`
    keeps only strings of those forms (e.g. ["word"]: the raw script, no transliteration); `n`
    draws that many strings per split before `forms` is applied (None: each clean string once).
    """
    from .data import load_dataset
    from .data.text import check_language, encode

    codes = list(check_language(language))
    seed = check_seed(seed)
    check_choice(eval_split, "eval_split", ("val", "test"))
    out = []
    for split in ("train", eval_split):
        data = load_dataset("text_digits", split=split, seed=seed, language=codes, noise=noise,
                            n=n)
        keep = _text_forms(data, forms)
        out += [encode(data.x["text"][keep]), data.y[keep]]
    return tuple(out)


def transfer_targets(
    dataset: str,
    *,
    seed: int = 0,
    data_dir: str | os.PathLike | None = None,
    image_options: dict | None = None,
    audio_options: dict | None = None,
    modalities: Sequence[str] | None = None,
    language: str | Sequence[str] | None = None,
    eval_split: str = "test",
    text_options: dict | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Target data of notebook 01: modality -> (x_train, y_train, x_test, y_test).

    "av_digits" (offline): images are scikit-learn's handwritten digits, audio the spoken digits
    in `language` (a code or list of codes; default None: every language but English, the
    source's), split by speaker, so test voices are never in a training split. "avmnist" (real
    data, from `data_dir` or the download cache): images are MNIST digits (28x28), audio the
    Free Spoken Digit Dataset's human recordings, each recording once (FSDD's own test split);
    `language` must stay None there. Options go to
    `load_dataset`: `image_options` (image_noise, occlusion), `audio_options` (snr_db, noise,
    speed, pitch, reverb, gain_db). `modalities` limits what is loaded. `eval_split="val"` returns
    the validation split in place of the test split (FSDD recordings 5-9 on "avmnist"), to make
    choices on without looking at the test split. With audio, the dict also holds "speakers":
    (train, eval) speaker names of the audio clips, e.g. to resample test speakers in
    `metrics.gains(..., clusters=...)`. "text_digits" gives only "text": `text_target` of
    `language` (default every language but English, the text source's) with `text_options`
    (noise, forms, n). `modalities` (default all of the dataset's) limits what is loaded.
    """
    if dataset not in ("av_digits", "avmnist", "text_digits"):
        raise ValueError(f"dataset={dataset!r} has no transfer targets; expected 'av_digits', "
                         "'avmnist' or 'text_digits'")
    seed = check_seed(seed)
    check_choice(eval_split, "eval_split", ("val", "test"))
    if dataset == "text_digits":
        if image_options is not None or audio_options is not None:
            raise ValueError("image_options and audio_options do not act on the text digits; "
                             "pass text_options")
        return _text_targets(seed, language, eval_split, modalities, text_options)
    if text_options is not None:
        raise ValueError(f"text_options={text_options!r} acts on dataset='text_digits' only")
    modalities = ("image", "audio") if modalities is None else modalities
    if isinstance(modalities, str) or not set(modalities) <= {"image", "audio"} or not modalities:
        raise ValueError(f"modalities={modalities!r}; expected a non-empty subset of "
                         "('image', 'audio')")
    codes = _target_languages(dataset, language)
    options = {"image": dict(image_options or {}), "audio": dict(audio_options or {})}
    out: dict[str, list] = {modality: [] for modality in modalities}
    speakers = []
    for offset, split in enumerate(("train", eval_split)):
        split_seed = seed + 7919 * offset  # distinct noise draws for train and test
        load = _avmnist_target if dataset == "avmnist" else _digits_target
        found, split_speakers = load(split, split_seed, data_dir, out, options, codes)
        speakers.append(split_speakers)
        for modality in out:
            out[modality] += found[modality]
    if "audio" in out:
        out["speakers"] = speakers
    return {key: tuple(arrays) for key, arrays in out.items()}
