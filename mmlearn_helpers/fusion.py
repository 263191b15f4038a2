"""Combining modalities at three levels, as the field names them, and the late-fusion tools.

- **early (feature-level) fusion**: the modalities' low-level features (here the output of one
  conv block per modality) are concatenated before most of the network, which is joint
  (`feature_fusion_model`);
- **intermediate fusion**: each modality's own encoder learns a representation; the
  representations are concatenated and joint hidden layer(s) and a head classify them
  (`intermediate_fusion_model`);
- **late (decision-level) fusion**: one classifier per modality; their class probabilities are
  combined, `late_fusion([p_image, p_audio], w)` = `w * p_image + (1 - w) * p_audio` (sum rule)
  or `product_fusion` (product rule).

A linear softmax head straight on the concatenated features (no hidden layer) adds per-modality
logits, so it is a product of experts and cannot learn interactions between the modalities;
`early_fusion_model` keeps that model under its historical name for notebooks 05 and 06.
`ModalityDropout` teaches a fused model to cope when one modality is missing, which
`predict_early` simulates at test time. `choose_on_val` picks among methods on validation.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence

import keras
import numpy as np
from keras import layers
from tqdm.auto import tqdm

from . import device
from .checks import check_float, check_int, check_ints, check_labels, check_rate
from .data.dataset import N_CLASSES
from .device import in_scope
from .metrics import accuracy, compare
from .models import BN_MOMENTUM, HEAD, classifier, conv_encoder, text_encoder
from .training import check_inputs, fit, predict_proba

PROB_TOL = 1e-4  # how far a probability row may sum from 1
WEIGHT_TOL = 1e-6  # how far the fusion weights may sum from 1
FILLS = ("zeros", "mean")
FUSED = "fused_features"
_BUNDLE: dict = {}  # the last set of models trained together: their ids and their bundle
# How the notebooks name each method of `run_seed`, and the missing-modality ways
LABELS = {"image_only": "image only", "audio_only": "audio only", "text_only": "text only",
          "early": "early (feature-level)", "intermediate": "intermediate",
          "intermediate_dropout": "intermediate + modality dropout", "late_equal": "late, w = 0.5",
          "late_tuned": "late, w tuned on val", "late_product": "late, product rule"}
# ways to cope with a missing modality: `missing_<modality>_<way>` keys of fusion.missing_probs
MISSING_WAYS = {"late": "late: fall back to the present modality",
                "early": "early: zeros for the missing features",
                "early_mean": "early: training-mean features",
                "early_dropout": "early trained with modality dropout, zeros",
                "intermediate": "intermediate: zeros for the missing features",
                "intermediate_mean": "intermediate: training-mean features",
                "intermediate_dropout": "intermediate trained with modality dropout, zeros"}


def check_probs(
    probs: object, name: str = "probs", labels: Sequence[str] | None = None
) -> list[np.ndarray]:
    """A non-empty list of same-shape (n, classes) arrays whose rows are distributions.

    Errors name each array `name[i]`, or `labels[i]` when given (e.g. "probs_audio").
    """
    if not isinstance(probs, (list, tuple)) or not probs:
        raise TypeError(
            f"{name} is a {type(probs).__name__}; expected a non-empty list of (n, classes) "
            "probability arrays, one per modality"
        )
    out: list[np.ndarray] = []
    for i, p in enumerate(probs):
        label = labels[i] if labels else f"{name}[{i}]"
        if not isinstance(p, np.ndarray) or not np.issubdtype(p.dtype, np.number):
            raise TypeError(f"{label} is a {type(p).__name__}; expected a NumPy array of numbers")
        if p.ndim != 2 or p.shape[0] == 0 or p.shape[1] < 2:
            raise ValueError(
                f"{label} has shape {p.shape}; expected (n, classes) with classes >= 2")
        if out and p.shape != out[0].shape:
            first = labels[0] if labels else f"{name}[0]"
            raise ValueError(f"{label} has shape {p.shape} but {first} has {out[0].shape}; "
                             "expected the same samples and classes in every modality")
        p = p.astype(np.float64)
        if not np.isfinite(p).all():
            raise ValueError(f"{label} holds NaN or infinite values; expected probabilities")
        if (p < 0).any():
            row = int(np.flatnonzero((p < 0).any(axis=1))[0])
            raise ValueError(f"{label} row {row} has negative entries ({p[row].min():.4g}); "
                             "expected probabilities (e.g. softmax outputs)")
        sums = p.sum(axis=1)
        bad = np.flatnonzero(np.abs(sums - 1) > PROB_TOL)
        if bad.size:
            raise ValueError(f"{label} row {int(bad[0])} sums to {sums[bad[0]]:.6f}; expected "
                             f"every row to sum to 1 within {PROB_TOL} (softmax outputs)")
        out.append(p)
    return out


def check_weights(weights: object, k: int, name: str = "weights") -> np.ndarray:
    """One weight in [0, 1] per modality, summing to 1; a float w means [w, 1 - w] for two."""
    if isinstance(weights, numbers.Real) and not isinstance(weights, bool):
        if k != 2:
            raise ValueError(f"{name}={weights!r} is a single weight, which only works for two "
                             f"modalities ([w, 1 - w]); give a list of {k} weights")
        if not np.isfinite(weights) or not 0 <= weights <= 1:
            raise ValueError(f"{name}={weights!r} is outside [0, 1]; expected the weight of the "
                             "first modality, a float in [0, 1]")
        return np.array([float(weights), 1.0 - float(weights)])
    if not isinstance(weights, (Sequence, np.ndarray)) or isinstance(weights, str):
        raise TypeError(f"{name}={weights!r}; expected a float or a list of {k} floats")
    w = np.asarray(weights, dtype=np.float64) if len(weights) else np.zeros(0)
    if w.shape != (k,):
        raise ValueError(f"{name} has {len(weights)} weights for {k} probability arrays; "
                         "expected one weight per modality")
    if not np.isfinite(w).all() or (w < 0).any() or (w > 1).any():
        raise ValueError(
            f"{name}={w.tolist()} has a weight outside [0, 1]; expected each in [0, 1]")
    if abs(w.sum() - 1) > WEIGHT_TOL:
        raise ValueError(f"{name}={w.tolist()} sums to {w.sum():.6g}; expected a sum of 1")
    return w


def late_fusion(probs: list[np.ndarray], weights: list[float] | float) -> np.ndarray:
    """Weighted mean of the modalities' class probabilities (the sum rule), shape (n, classes)."""
    arrays = check_probs(probs)
    w = check_weights(weights, len(arrays))
    return sum(wi * p for wi, p in zip(w, arrays, strict=True))


def product_fusion(probs: list[np.ndarray], weights: list[float] | float) -> np.ndarray:
    """Weighted product of the probabilities (a sum of log-probabilities), renormalized per row.

    The product of experts: one modality that is confident a class is wrong vetoes it, where the
    sum rule only averages. Probabilities are floored at 1e-12 so a zero does not give -inf.
    """
    arrays = check_probs(probs)
    w = check_weights(weights, len(arrays))
    logits = sum(wi * np.log(np.maximum(p, 1e-12)) for wi, p in zip(w, arrays, strict=True))
    logits = logits - logits.max(axis=1, keepdims=True)
    out = np.exp(logits)
    return out / out.sum(axis=1, keepdims=True)


def late_fusion_missing(probs: list[np.ndarray | None], weights: list[float] | float) -> np.ndarray:
    """Late fusion when some modalities are missing (None): weights renormalized over the rest.

    With one modality left this falls back to that modality's own classifier, whatever its
    weight was; present modalities whose weights are all 0 get equal weights.
    """
    if not isinstance(probs, (list, tuple)) or not probs:
        raise TypeError(f"probs is a {type(probs).__name__}; expected a list of arrays or None")
    w = check_weights(weights, len(probs))
    present = [i for i, p in enumerate(probs) if p is not None]
    if not present:
        raise ValueError("probs holds only None; expected at least one modality present")
    kept = w[present] if w[present].sum() > 0 else np.ones(len(present))
    return late_fusion([probs[i] for i in present], (kept / kept.sum()).tolist())


RULES = {"sum": late_fusion, "product": product_fusion}


def check_ws(ws: object) -> np.ndarray:
    """Fusion weights to try, each in [0, 1]; None gives 0, 0.05, ..., 1."""
    ws = np.linspace(0, 1, 21) if ws is None else np.asarray(ws, dtype=np.float64)
    if ws.ndim != 1 or ws.size == 0 or not np.isfinite(ws).all() or ws.min() < 0 or ws.max() > 1:
        raise ValueError(f"ws={ws.tolist()!r}; expected a non-empty list of weights in [0, 1]")
    return ws


def sweep(
    probs_a: np.ndarray,
    probs_b: np.ndarray,
    y: np.ndarray,
    ws: Sequence[float] | np.ndarray | None = None,
    *,
    rule: str = "sum",
) -> np.ndarray:
    """Accuracy of two-modality fusion for each weight w on the first modality (default 0..1)."""
    if rule not in RULES:
        raise ValueError(f"rule={rule!r} is not a fusion rule; expected one of {tuple(RULES)}")
    from . import simplex

    pa, pb = check_probs([probs_a, probs_b], labels=("probs_a", "probs_b"))
    ws = check_ws(ws)
    y = check_labels(y, n=len(pa), n_classes=pa.shape[1], counted="probs_a has")
    return simplex.sweep([pa, pb], y, np.stack([ws, 1 - ws], axis=1), rule=rule)


def best_weight(
    probs_a_val: np.ndarray,
    probs_b_val: np.ndarray,
    y_val: np.ndarray,
    ws: Sequence[float] | np.ndarray | None = None,
    *,
    rule: str = "sum",
) -> float:
    """The w with the best VALIDATION accuracy; ties go to the w closest to 0.5.

    Never pass test probabilities here: a weight tuned on test makes the test score optimistic.
    """
    from . import simplex

    ws = check_ws(ws)
    pa, pb = check_probs([probs_a_val, probs_b_val], labels=("probs_a_val", "probs_b_val"))
    y_val = check_labels(y_val, n=len(pa), n_classes=pa.shape[1], counted="probs_a_val has")
    return float(simplex.best_weights([pa, pb], y_val, np.stack([ws, 1 - ws], axis=1),
                                      rule=rule)[0])


@keras.saving.register_keras_serializable(package="mmlearn")
class ModalityDropout(layers.Layer):
    """In training, blank all features of one random modality for a `rate` share of samples.

    Takes a list of (batch, features) tensors, one per modality; for each sample it draws whether
    to drop (probability `rate`) and which modality (uniformly), and multiplies that modality's
    features by 0. At inference it passes everything through. A model trained this way has seen
    "zero features" mean "modality absent", so it copes when one is missing at test time.
    """

    def __init__(self, rate: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.rate = check_float(rate, "rate", low=0, high=1, high_open=True)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            return list(inputs)
        batch = keras.ops.shape(inputs[0])[0]
        drop = keras.random.uniform((batch, 1), seed=self.seed_generator) < self.rate
        which = keras.random.randint((batch, 1), 0, len(inputs), seed=self.seed_generator)
        out = []
        for i, x in enumerate(inputs):
            blank = keras.ops.logical_and(drop, keras.ops.equal(which, i))
            out.append(x * (1.0 - keras.ops.cast(blank, x.dtype)))
        return out

    def compute_output_shape(self, input_shape):
        return list(input_shape)

    def get_config(self) -> dict:
        return super().get_config() | {"rate": self.rate, "seed": self.seed}


def _check_shapes(input_shapes: object) -> dict[str, tuple[int, ...]]:
    if not isinstance(input_shapes, Mapping) or len(input_shapes) < 2:
        raise ValueError(f"input_shapes={input_shapes!r}; expected a dict modality -> shape "
                         "(no batch axis) with at least two modalities, e.g. "
                         "{'image': (8, 8, 1), 'audio': (32, 40, 1)}")
    return {str(m): tuple(s) for m, s in sorted(input_shapes.items())}


def _check_pool(pool: object, modalities: Sequence[str]) -> dict[str, int]:
    """Modality -> input pooling factor (1 where not given)."""
    pool = {} if pool is None else pool
    if not isinstance(pool, Mapping) or not set(pool) <= set(modalities) or not all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1
        for v in pool.values()
    ):
        raise ValueError(f"pool={pool!r}; expected a dict modality -> int >= 1 with modalities "
                         f"from {sorted(modalities)}, e.g. {{'audio': 2}}")
    return {m: int(pool.get(m, 1)) for m in modalities}


@in_scope
def modality_encoder(
    input_shape: Sequence[int], filters: Sequence[int] = (16, 32, 32), *, pool: int = 1,
    pooling: str = "average", name: str = "encoder",
) -> keras.Model:
    """`models.conv_encoder`, after a `pool` x `pool` average pooling of the input when pool > 1.

    Pooling a 32x40 spectrogram by 2 makes training about twice as fast and, with white noise,
    more accurate (averaging neighbouring mel bins and frames smooths the noise). `pooling` is
    the encoder's last step ("average" or "flatten", see `conv_encoder`). A 1-D `input_shape`
    (max_len,) is text, character ids of `data.text.encode`: `models.text_encoder` with the same
    filters and pooling over the shared vocabulary (no input pooling).
    """
    if len(tuple(input_shape)) == 1:
        from .data.text import vocabulary

        if pool != 1:
            raise ValueError(f"pool={pool!r} for text input {tuple(input_shape)}; expected 1 "
                             "(character ids are not pooled)")
        return text_encoder(input_shape[0], len(vocabulary()), filters, pooling=pooling,
                            name=name)
    if pool == 1:
        return conv_encoder(input_shape, filters, pooling=pooling, name=name)
    shape = tuple(input_shape)
    if len(shape) != 3 or shape[0] < pool or shape[1] < pool:
        raise ValueError(f"input_shape={shape!r} cannot be pooled by pool={pool}; expected "
                         "(height, width, channels) with height and width >= pool")
    inputs = keras.Input(shape, name=f"{name}_input")
    h = layers.AveragePooling2D(pool, name=f"{name}_pool")(inputs)
    pooled = (shape[0] // pool, shape[1] // pool, shape[2])
    conv = conv_encoder(pooled, filters, pooling=pooling, name=f"{name}_conv")
    return keras.Model(inputs, conv(h), name=name)


def _joint(feats: list, n_classes: int, hidden: tuple[int, ...], dropout: float,
           batchnorm: bool = False) -> object:
    """Concatenation `fused_features`, then per hidden size a Dense `joint{i}` and ReLU (with
    BatchNorm `joint{i}_bn` between them when `batchnorm`), dropout, the softmax head."""
    if not isinstance(batchnorm, bool):
        raise TypeError(f"batchnorm={batchnorm!r} should be True or False")
    h = layers.Concatenate(name=FUSED)(feats)
    for i, units in enumerate(hidden):
        if batchnorm:
            h = layers.Dense(units, use_bias=False, name=f"joint{i}")(h)
            h = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"joint{i}_bn")(h)
            h = layers.ReLU(name=f"joint{i}_relu")(h)
        else:
            h = layers.Dense(units, activation="relu", name=f"joint{i}")(h)
    if dropout > 0:
        h = layers.Dropout(dropout, name="dropout")(h)
    return layers.Dense(n_classes, activation="softmax", dtype="float32", name=HEAD)(h)


@in_scope
def intermediate_fusion_model(
    input_shapes: Mapping[str, Sequence[int]],
    n_classes: int = N_CLASSES,
    *,
    filters: Sequence[int] = (16, 32, 32),
    hidden: Sequence[int] = (64,),
    pool: Mapping[str, int] | None = None,
    modality_dropout: float = 0.0,
    dropout: float = 0.0,
    seed: int = 0,
    name: str = "intermediate_fusion",
) -> keras.Model:
    """Intermediate fusion: one conv encoder per modality, their feature vectors concatenated,
    joint hidden layer(s) (Dense + ReLU, `hidden` units) and a softmax head; dict inputs.

    Modalities are taken in sorted name order; encoders are named `<modality>_encoder`, the
    concatenation `fused_features`, the hidden layers `joint0`, `joint1`, ..., the head `head`.
    `pool` gives an input pooling factor per modality (see `modality_encoder`);
    `modality_dropout` > 0 inserts a `ModalityDropout` layer before the concatenation and
    `dropout` > 0 a Dropout before the head (both active in training only). `hidden=()` gives a
    linear head on the concatenation: a product of experts (see the module docstring).
    """
    shapes = _check_shapes(input_shapes)
    pools = _check_pool(pool, list(shapes))
    hidden = check_ints(hidden, "hidden", low=1, allow_empty=True)
    dropout = check_float(dropout, "dropout", low=0, high=1, high_open=True)
    n_classes = check_int(n_classes, "n_classes", low=2)
    keras.utils.set_random_seed(int(seed))
    inputs = {m: keras.Input(s, name=m) for m, s in shapes.items()}
    feats = [modality_encoder(s, filters, pool=pools[m], name=f"{m}_encoder")(inputs[m])
             for m, s in shapes.items()]
    if modality_dropout > 0:
        feats = ModalityDropout(modality_dropout, seed=seed, name="modality_dropout")(feats)
    return keras.Model(inputs, _joint(feats, n_classes, hidden, dropout), name=name)


@in_scope
def feature_fusion_model(
    input_shapes: Mapping[str, Sequence[int]],
    n_classes: int = N_CLASSES,
    *,
    stem_filters: int = 16,
    hidden: Sequence[int] = (64,),
    batchnorm: bool = True,
    pool: Mapping[str, int] | None = None,
    dropout: float = 0.0,
    seed: int = 0,
    name: str = "early_fusion",
) -> keras.Model:
    """Early (feature-level) fusion: low-level features joined before most of the network.

    Each modality goes through one conv block only (3x3 conv, BatchNorm, ReLU, 2x2 max-pool,
    `stem_filters` maps; named `<modality>_encoder`), flattened so each feature keeps where it
    is; the maps are concatenated (`fused_features`) and the rest of the network is joint:
    Dense (`joint{i}`, `hidden` units), BatchNorm, ReLU, optional dropout, the softmax head.
    The joint network here does most of the learning from hundreds of raw-ish features, and
    BatchNorm makes it learn several times faster: without it, on av_digits in the fast
    profile, this model still under-fits its training set when training stops (validation
    accuracy much lower too). `pool` as in `intermediate_fusion_model`.
    """
    shapes = _check_shapes(input_shapes)
    pools = _check_pool(pool, list(shapes))
    hidden = check_ints(hidden, "hidden", low=1, allow_empty=True)
    dropout = check_float(dropout, "dropout", low=0, high=1, high_open=True)
    n_classes = check_int(n_classes, "n_classes", low=2)
    stem_filters = check_int(stem_filters, "stem_filters", low=1)
    keras.utils.set_random_seed(int(seed))
    inputs = {m: keras.Input(s, name=m) for m, s in shapes.items()}
    feats = [modality_encoder(s, (int(stem_filters),), pool=pools[m], pooling="flatten",
                              name=f"{m}_encoder")(inputs[m]) for m, s in shapes.items()]
    return keras.Model(inputs, _joint(feats, n_classes, hidden, dropout, batchnorm), name=name)


@in_scope
def early_fusion_model(
    input_shapes: Mapping[str, Sequence[int]],
    n_classes: int = N_CLASSES,
    *,
    filters: Sequence[int] = (16, 32, 32),
    pool: Mapping[str, int] | None = None,
    modality_dropout: float = 0.0,
    dropout: float = 0.0,
    seed: int = 0,
    name: str = "early_fusion",
) -> keras.Model:
    """Per-modality encoders, features concatenated, one linear softmax head (historical name).

    The model notebooks 05 and 06 build: `intermediate_fusion_model` with `hidden=()`. By the
    field's names it is intermediate fusion with a linear head, which adds per-modality logits
    (a product of experts); for early (feature-level) fusion see `feature_fusion_model`.
    """
    return intermediate_fusion_model(input_shapes, n_classes, filters=filters, hidden=(),
                                     pool=pool, modality_dropout=modality_dropout,
                                     dropout=dropout, seed=seed, name=name)


def nested_encoders(model: keras.Model) -> dict[str, keras.Model]:
    """Modality -> each nested `<modality>_encoder` of `model`, sorted by modality (maybe none)."""
    if not isinstance(model, keras.Model):
        raise TypeError(f"model is a {type(model).__name__}; expected a keras.Model")
    found = {layer.name.removesuffix("_encoder"): layer for layer in model.layers
             if isinstance(layer, keras.Model) and layer.name.endswith("_encoder")}
    return dict(sorted(found.items()))


def _encoders(model: keras.Model) -> dict[str, keras.Model]:
    """Modality -> encoder of a fusion model, in the order the features are joined."""
    found = nested_encoders(model)
    if len(found) < 2:
        raise ValueError(f"model {model.name!r} has encoders {sorted(found)}; expected a fusion "
                         "model (e.g. intermediate_fusion_model) with one `<modality>_encoder` "
                         "per modality")
    return found


def _after_fusion(model: keras.Model) -> list[layers.Layer]:
    """The layers from the concatenation `fused_features` (excluded) to the output, in order."""
    names = [layer.name for layer in model.layers]
    if FUSED not in names:
        raise ValueError(f"model {model.name!r} has no layer {FUSED!r}; expected a fusion model "
                         "whose modalities' features are concatenated")
    return model.layers[names.index(FUSED) + 1:]


def modality_features(model: keras.Model, x: dict, *, batch_size: int = 512) -> dict:
    """Modality -> encoder features (n, features) of a fusion model, in inference mode."""
    encoders = _encoders(model)
    x, _ = check_inputs(x)
    if not isinstance(x, dict) or set(x) != set(encoders):
        got = sorted(x) if isinstance(x, dict) else "an array"
        raise ValueError(f"x has modalities {got}; expected {sorted(encoders)}")
    return {m: predict_proba(enc, x[m], batch_size=batch_size) for m, enc in encoders.items()}


def predict_early(
    model: keras.Model,
    x: dict,
    *,
    missing: str | None = None,
    fill: str = "zeros",
    reference: dict | None = None,
) -> np.ndarray:
    """Class probabilities of a fusion model, optionally with one modality missing.

    Works for every model that concatenates per-modality features (`fused_features`): early,
    intermediate or fine-tuned. The missing modality's features are replaced by zeros
    (`fill="zeros"`, what ModalityDropout trains for) or by their mean over `reference` inputs
    (`fill="mean"`, e.g. the training set); the layers after the concatenation then run in
    inference mode. `x` needs only the modalities that are present.
    """
    encoders = _encoders(model)
    if missing is None:
        return predict_proba(model, x)
    if missing not in encoders:
        raise ValueError(f"missing={missing!r} is not a modality of the model; "
                         f"expected one of {sorted(encoders)} or None")
    if fill not in FILLS:
        raise ValueError(f"fill={fill!r} is not a fill; expected one of {FILLS}")
    if fill == "mean" and (not isinstance(reference, dict) or missing not in reference):
        raise ValueError("fill='mean' needs reference= (e.g. the training inputs, a dict with "
                         f"{missing!r}) to average over")
    present = {m: v for m, v in x.items() if m != missing} if isinstance(x, dict) else None
    if not present or set(present) != set(encoders) - {missing}:
        want = sorted(set(encoders) - {missing})
        raise ValueError(f"x holds {sorted(x) if isinstance(x, dict) else 'an array'}; expected "
                         f"a dict with the present modalities {want}")
    feats = {m: predict_proba(encoders[m], v) for m, v in present.items()}
    n = len(next(iter(feats.values())))
    if fill == "mean":
        mean = predict_proba(encoders[missing], check_inputs(reference[missing])[0]).mean(axis=0)
    else:
        mean = np.zeros(encoders[missing].outputs[0].shape[-1], dtype=np.float32)
    feats[missing] = np.tile(mean.astype(np.float32), (n, 1))
    h = np.concatenate([feats[m] for m in encoders], axis=1)
    for layer in _after_fusion(model):  # e.g. joint0, dropout, head
        h = layer(h, training=False)
    return keras.ops.convert_to_numpy(h).astype(np.float32)


FUSED_MODELS = ("early", "intermediate", "intermediate_dropout")


def build_fusion_models(
    input_shapes: Mapping[str, Sequence[int]],
    *,
    seed: int,
    filters: Sequence[int] = (16, 32, 32),
    hidden: Sequence[int] = (64,),
    dropout: float = 0.0,
    pool: Mapping[str, int] | None = None,
    modality_dropout: float = 0.3,
    n_classes: int = N_CLASSES,
) -> dict[str, keras.Model]:
    """The models the fusion notebook compares, freshly initialized from `seed`.

    Keys: each modality (its own classifier: a baseline and a late-fusion expert), "early"
    (`feature_fusion_model`, its stems with `filters[0]` maps), "intermediate"
    (`intermediate_fusion_model`) and "intermediate_dropout" (the same, trained with
    ModalityDropout). `hidden` and `dropout` set the joint layers of both fused models;
    `hidden=()` turns them into linear heads on the concatenation (a product of experts).
    """
    shapes = _check_shapes(input_shapes)
    pools = _check_pool(pool, list(shapes))
    models: dict[str, keras.Model] = {}
    for m, shape in shapes.items():
        keras.utils.set_random_seed(int(seed))
        encoder = modality_encoder(shape, filters, pool=pools[m])
        models[m] = classifier(encoder, n_classes, name=f"{m}_only")
    models["early"] = feature_fusion_model(shapes, n_classes, stem_filters=filters[0],
                                           hidden=hidden, pool=pools, dropout=dropout,
                                           seed=seed, name="early")
    for key, rate in (("intermediate", 0.0), ("intermediate_dropout", modality_dropout)):
        models[key] = intermediate_fusion_model(
            shapes, n_classes, filters=filters, hidden=hidden, pool=pools, dropout=dropout,
            seed=seed, modality_dropout=rate, name=key)
    return models


def _bundle(models: dict[str, keras.Model], x: dict, lr: float) -> keras.Model:
    """One Keras model whose outputs are all `models`' probabilities, compiled once.

    The last bundle is kept, so training the same models again (`reuse`) neither rebuilds nor
    re-traces it; its Adam state is reset to zeros and `lr` instead.
    """
    key = tuple((k, id(model)) for k, model in models.items())
    if _BUNDLE.get("key") == key:
        bundle = _BUNDLE["bundle"]
        opt = bundle.optimizer
        scale = getattr(opt, "dynamic_scale", None)  # mixed_float16: LossScaleOptimizer
        for variable in opt.variables:
            start = opt.initial_scale if variable is scale else 0
            variable.assign(keras.ops.full(variable.shape, start, variable.dtype))
        opt.learning_rate = lr
        return bundle
    with device.scope():
        inputs = {m: keras.Input(v.shape[1:], name=m) for m, v in x.items()}
        outputs = {k: model(inputs[k] if k in inputs else inputs) for k, model in models.items()}
        bundle = keras.Model(inputs, outputs, name="fusion_models")
        bundle.compile(optimizer=keras.optimizers.Adam(lr),
                       loss={k: "sparse_categorical_crossentropy" for k in models})
    _BUNDLE.update(key=key, bundle=bundle)
    return bundle


def train_fusion_models(
    x: dict,
    y: np.ndarray,
    *,
    seed: int,
    epochs: int,
    lr: float = 3e-3,
    batch_size: int = 64,
    reuse: dict[str, keras.Model] | None = None,
    verbose: bool = False,
    **build_options,
) -> dict[str, keras.Model]:
    """Build (see `build_fusion_models`) and train every model on the same training set and seed.

    All models train in one Keras step per batch (one model whose outputs are theirs, loss =
    the sum of their cross-entropies). Their weights are disjoint, so each model gets exactly
    the gradients of its own loss and its own Adam state: the same training as one `fit` per
    model on the same batches (seeded permutations, full batches as `training.fit` draws
    them), for one traced step instead of one per model. `reuse`: the models of an earlier
    call with the same options; they are re-initialized from `seed` (weights and ModalityDropout's
    random stream) and trained again, with the numbers fresh models give, which skips Keras'
    costly re-tracing of the train step. On the PyTorch backend the joint step
    trains the models worse than one `training.fit` each (the image model of notebook 04 reached
    about half its accuracy), so there each model is trained alone with `training.fit`.
    """
    x, n = check_inputs(x)
    if not isinstance(x, dict) or len(x) < 2:
        raise ValueError("x should be a dict modality -> array with at least two modalities")
    y = check_labels(y, n=n)
    epochs, lr = check_int(epochs, "epochs", low=1), check_rate(lr)
    fresh = build_fusion_models({m: v.shape[1:] for m, v in x.items()}, seed=seed,
                                **build_options)
    if reuse is not None:
        if set(reuse) != set(fresh):
            raise ValueError(f"reuse holds {sorted(reuse)}; expected the models {sorted(fresh)}")
        for key, model in fresh.items():
            reuse[key].set_weights(model.get_weights())
            for mine, theirs in zip(reuse[key].layers, model.layers, strict=True):
                if isinstance(mine, ModalityDropout):  # its random stream is not a weight
                    mine.seed_generator.state.assign(theirs.seed_generator.state)
        fresh = reuse
    if keras.backend.backend() == "torch":  # the joint step misbehaves there (see above)
        for key, model in fresh.items():
            fit(model, x if key not in x else x[key], y, epochs=epochs, lr=lr, seed=seed,
                batch_size=batch_size)
        return fresh
    keras.utils.set_random_seed(int(seed))
    bundle = _bundle(fresh, x, float(lr))
    batch = min(device.scaled_batch(batch_size), n)
    rng = np.random.default_rng(seed)
    for _ in tqdm(range(epochs), desc=f"seed {seed}", disable=not verbose, leave=False):
        order = rng.permutation(n)
        if n % batch:  # top up to full batches: one traced shape
            order = np.concatenate([order, rng.choice(n, batch - n % batch, replace=False)])
        for start in range(0, len(order), batch):
            idx = order[start:start + batch]
            bundle.train_on_batch({m: v[idx] for m, v in x.items()},
                                  {key: y[idx] for key in fresh})
    return fresh


def late_rules(experts: Mapping[str, np.ndarray], w: float | Sequence[float]
               ) -> dict[str, np.ndarray]:
    """The experts (`<modality>_only`) and the late-fusion rules over them: the sum rule with
    equal weights ("late_equal") and with `w` ("late_tuned"), the product rule with equal
    weights ("late_product"). `experts` maps modality -> probabilities in `w`'s order (for two,
    w is the first modality's weight, as in `late_fusion`)."""
    names, probs = list(experts), list(experts.values())
    equal = [1 / len(probs)] * len(probs)
    return {**{f"{m}_only": p for m, p in zip(names, probs, strict=True)},
            "late_equal": late_fusion(probs, equal),
            "late_tuned": late_fusion(probs, w),
            "late_product": product_fusion(probs, equal)}


# The order of the late-fusion weights: the image's first (two modalities: w is the image's)
ORDER = ("image", "audio", "text")


def expert_modalities(models: Mapping[str, object]) -> list[str]:
    """The modalities that have their own classifier in `models`, in the weights' ORDER."""
    found = [m for m in ORDER if m in models] + sorted(
        m for m in models if m not in ORDER and m not in FUSED_MODELS)
    if len(found) < 2:
        raise ValueError(f"models hold {sorted(models)}; expected a classifier for each of two "
                         "or more modalities, as built by build_fusion_models")
    return found


def method_probs(models: dict[str, keras.Model], x: dict, *, w: float | Sequence[float]
                 ) -> dict[str, np.ndarray]:
    """Class probabilities of every method on inputs with every modality of `models`.

    Keys: `<modality>_only` (e.g. "image_only", "audio_only"), each fused model of `models`
    ("early", "intermediate", "intermediate_dropout") and the late rules: "late_tuned" uses
    the weights `w` (one per modality in ORDER; for two, a float: the image's), "late_equal"
    and "late_product" equal weights (the untuned default of each rule).
    """
    probs = _all_probs(models, x)
    names = expert_modalities(models)
    late = late_rules({m: probs[m] for m in names}, w)
    fused = {key: p for key, p in probs.items() if key not in names}
    return {**{f"{m}_only": late[f"{m}_only"] for m in names}, **fused,
            **{k: late[k] for k in ("late_equal", "late_tuned", "late_product")}}


def _all_probs(models: dict[str, keras.Model], x: dict) -> dict[str, np.ndarray]:
    """Every model's class probabilities on `x`, in inference mode.

    Models just trained together by `train_fusion_models` are run as their bundle, in one
    traced call (Keras traces the bundle's predict step once and reuses it for every split);
    other models are called one by one.
    """
    x, _ = check_inputs(x)
    if _BUNDLE.get("key") == tuple((k, id(model)) for k, model in models.items()):
        inputs = {m: x[m] for m in _BUNDLE["bundle"].input}
        out = _BUNDLE["bundle"].predict_on_batch(inputs)
        return {k: np.asarray(out[k], dtype=np.float32) for k in models}
    return {k: predict_proba(model, x[k] if k in x else x) for k, model in models.items()}


def missing_probs(
    models: dict[str, keras.Model], x: dict, *, w: float | Sequence[float], reference: dict,
    experts: Mapping[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Class probabilities when one modality is missing at test time, for each way to cope.

    Keys `missing_<modality>_<way>` for each modality of `models`: "late" (the late-fusion
    weights `w` renormalized over the present modalities' classifiers; with two, the present
    one alone), "early" and "intermediate" (zeros for the missing features),
    "intermediate_mean" (training-mean features) and "intermediate_dropout" (the model trained
    with ModalityDropout, zeros). `experts`: the classifiers' probabilities on `x`
    (`<modality>_only`) when already computed.
    """
    names = expert_modalities(models)
    if experts is None:
        experts = {f"{m}_only": predict_proba(models[m], x[m]) for m in names}
    out = {}
    for missing in names:
        kept = [None if m == missing else experts[f"{m}_only"] for m in names]
        only = {m: x[m] for m in names if m != missing}
        out[f"missing_{missing}_late"] = late_fusion_missing(kept, w)
        for key in FUSED_MODELS:
            out[f"missing_{missing}_{key}"] = predict_early(models[key], only, missing=missing)
        out[f"missing_{missing}_intermediate_mean"] = predict_early(
            models["intermediate"], only, missing=missing, fill="mean", reference=reference)
    return out


def _tuned_weights(val: dict[str, np.ndarray], y_val: np.ndarray, names: list[str],
                   ws: np.ndarray) -> float | np.ndarray:
    """Late-fusion weights with the best validation accuracy: for two modalities the image's w
    from `ws`, for more a point of `simplex.grid`."""
    from . import simplex

    experts = [val[f"{m}_only"] for m in names]
    if len(names) == 2:
        return best_weight(*experts, y_val, ws)
    return simplex.best_weights(experts, y_val)


def run_seed(
    load: Callable[..., object],
    seed: int,
    *,
    image_noise: float,
    snr_db: float,
    epochs: int,
    ws: Sequence[float] | np.ndarray,
    snr_levels: Sequence[float] = (),
    noise_levels: Sequence[float] = (),
    reuse: dict[str, keras.Model] | None = None,
    snr_val: bool = True,
    **train_options,
) -> dict:
    """One seed of the fusion experiment: train every model, then score it on val and test.

    `load(split=..., seed=..., image_noise=..., snr_db=...)` returns a Dataset with "image" and
    "audio" (e.g. `functools.partial(load_dataset, "av_digits")`), and maybe more modalities
    (e.g. "text" as character ids). The late-fusion weight is tuned on validation: the image's
    w among `ws` for two modalities ("best_w"), a point of `simplex.grid` for more
    ("weights"). The trained models are then tested, without retraining, on test sets with
    other audio SNRs (`snr_levels`) and image noise levels (`noise_levels`); snr_db=None means
    clean training audio. `snr_val`: also score validation copies at each SNR level
    (what re-tuning w per SNR needs; the notebook's SNR explorer uses the first seed's). Returns
    probabilities (not scores, so any metric can be computed later) and the trained models
    (pass them as `reuse` to the next seed to save Keras' re-tracing).
    """
    data = {s: load(split=s, seed=seed, image_noise=image_noise, snr_db=snr_db)
            for s in ("train", "val", "test")}
    models = train_fusion_models(data["train"].x, data["train"].y, seed=seed, epochs=epochs,
                                 reuse=reuse, **train_options)
    ws, names = check_ws(ws), expert_modalities(models)
    val = method_probs(models, data["val"].x, w=[1 / len(names)] * len(names))
    w = _tuned_weights(val, data["val"].y, names, ws)
    val["late_tuned"] = late_fusion([val[f"{m}_only"] for m in names], w)
    test = method_probs(models, data["test"].x, w=w)
    test |= missing_probs(models, data["test"].x, w=w, reference=data["train"].x, experts=test)
    shifted = {}
    for kind, levels in (("snr_db", snr_levels), ("image_noise", noise_levels)):
        # validation copies only for the SNR levels: the SNR explorer re-tunes w on them
        splits = ("val", "test") if kind == "snr_db" and snr_val else ("test",)
        for level in levels:
            degr = {"image_noise": image_noise, "snr_db": snr_db, kind: level}
            pair = {s: load(split=s, seed=seed, **degr) for s in splits}
            shifted[(kind, float(level))] = {
                s: method_probs(models, d.x, w=w) | {"y": d.y} for s, d in pair.items()
            }
    tuned = {"best_w": w} if len(names) == 2 else {"weights": dict(zip(names, w, strict=True))}
    return {"seed": seed, "models": models, **tuned, "ws": ws, "val": val, "test": test,
            "defaults": {"snr_db": None if snr_db is None else float(snr_db),
                         "image_noise": float(image_noise)},
            "y_val": data["val"].y, "y_test": data["test"].y, "shifted": shifted}


def seed_scores(run: dict) -> dict[str, float]:
    """Accuracy of every method of one `run_seed` result: on test under the method's own key,
    on validation under `val_<method>`; plus the validation-tuned w under "best_w".

    The validation score of "late_tuned" is slightly optimistic: its w was picked on that split.
    """
    scores = {key: accuracy(run["y_test"], probs) for key, probs in run["test"].items()}
    scores |= {f"val_{key}": accuracy(run["y_val"], probs) for key, probs in run["val"].items()}
    if "weights" in run:  # three or more modalities: each one's tuned weight
        return scores | {f"w_{m}": float(v) for m, v in run["weights"].items()}
    return scores | {"best_w": float(run["best_w"])}


def summarize_runs(runs: Sequence[dict]) -> dict[str, float]:
    """Mean over seeds of `seed_scores`, with the population std under `<key>_std`."""
    if not runs:
        raise ValueError("runs is empty; expected the results of run_seed for at least one seed")
    per_seed = [seed_scores(run) for run in runs]
    out: dict[str, float] = {}
    for key in per_seed[0]:
        values = np.array([s[key] for s in per_seed])
        out[key], out[f"{key}_std"] = float(values.mean()), float(values.std())
    return out


def choose_on_val(summary_or_runs: Mapping[str, float] | Sequence[dict],
                  candidates: Sequence[str]) -> str:
    """The candidate method with the best mean VALIDATION accuracy (ties: the first listed).

    Takes the output of `summarize_runs` (its `val_<method>` keys) or the `run_seed` results
    themselves. Test labels are never read, so the test score of the choice is an honest
    estimate; report that test score, not the best test score among the candidates.
    """
    if isinstance(candidates, str) or not isinstance(candidates, Sequence) or not candidates:
        raise ValueError(f"candidates={candidates!r}; expected a non-empty list of method names")
    if isinstance(summary_or_runs, Mapping):
        val = {key[4:]: v for key, v in summary_or_runs.items()
               if key.startswith("val_") and not key.endswith("_std")}
    elif isinstance(summary_or_runs, Sequence) and summary_or_runs:
        val = {key: float(np.mean([accuracy(r["y_val"], r["val"][key]) for r in summary_or_runs]))
               for key in summary_or_runs[0]["val"]}
    else:
        raise TypeError(f"summary_or_runs is a {type(summary_or_runs).__name__}; expected the "
                        "dict of summarize_runs or a non-empty list of run_seed results")
    unknown = [c for c in candidates if c not in val]
    if unknown:
        raise ValueError(f"candidates {unknown} have no validation accuracy; expected some of "
                         f"{sorted(val)}")
    return max(candidates, key=lambda c: val[c])  # max keeps the first of equal scores


def per_seed(runs: Sequence[dict], method: str, *, split: str = "test",
             shifted: tuple[str, float] | None = None) -> np.ndarray:
    """Accuracy of `method` in each run (seed order) on `split`, or on the test copy at the
    `shifted` = (kind, level) degradation, e.g. ("snr_db", -11.0); for paired comparisons."""
    if split not in ("val", "test"):
        raise ValueError(f"split={split!r}; expected 'val' or 'test'")
    if not runs or method not in runs[0][split]:
        known = sorted(runs[0][split]) if runs else []
        raise ValueError(f"method={method!r} is not in the runs; expected one of {known}")
    out = []
    for run in runs:
        if shifted is None or float(shifted[1]) == run["defaults"].get(shifted[0]):
            out.append(accuracy(run[f"y_{split}"], run[split][method]))
        elif tuple(shifted) in run["shifted"]:
            probs = run["shifted"][tuple(shifted)]["test"]
            out.append(accuracy(probs["y"], probs[method]))
        else:
            raise ValueError(f"shifted={shifted!r} was not tested; expected one of "
                             f"{sorted(run['shifted'])}")
    return np.array(out)


def compare_methods(runs: Sequence[dict], a: str, b: str, *,
                    shifted: tuple[str, float] | None = None) -> dict:
    """`metrics.compare` of the test accuracies of methods `a` and `b`, paired by seed.

    `shifted` = (kind, level) compares them on the test copies at that degradation instead.
    The dict holds a, b, diff, low, high (95% bootstrap interval), n and the verdict.
    """
    return compare(per_seed(runs, a, shifted=shifted), per_seed(runs, b, shifted=shifted),
                   paired=True)


def sweep_curves(runs: Sequence[dict], split: str) -> np.ndarray:
    """Late-fusion accuracy vs w, one row per seed, on `split` ("val" or "test")."""
    if split not in ("val", "test"):
        raise ValueError(f"split={split!r}; expected 'val' or 'test'")
    return np.stack([sweep(run[split]["image_only"], run[split]["audio_only"], run[f"y_{split}"],
                           run["ws"]) for run in runs])


def robustness_rows(runs: Sequence[dict]) -> list[dict]:
    """Test accuracy (mean and std over seeds) of each method at each noise level.

    One row per (kind, level, method); `kind` is "snr_db" or "image_noise"; the training
    level of each kind (the default degradation) is included.
    """
    if not runs:
        raise ValueError("runs is empty; expected the results of run_seed for at least one seed")
    levels = {(kind, level) for kind, level in runs[0]["shifted"]}
    levels |= {(kind, float(level)) for kind, level in runs[0]["defaults"].items()
               if level is not None and any(k == kind for k, _ in levels)}
    rows = []
    for kind, level in sorted(levels):
        for method in runs[0]["val"]:
            values = per_seed(runs, method, shifted=(kind, level))
            rows.append({"kind": kind, "level": level, "method": method,
                         "accuracy": float(np.mean(values)), "accuracy_std": float(np.std(values))})
    return rows
