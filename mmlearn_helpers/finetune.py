"""Fine-tuning a two-encoder multimodal model: freezing schedules, BatchNorm mode, imbalance, gaps.

`pretrained_fusion_model` joins the encoders of pretrained single-modality classifiers (e.g. from
`transfer.pretrained_source`) in one early-fusion model; `set_schedule` freezes or unfreezes its
blocks ("frozen" encoders, "top" blocks, "all") and chooses whether BatchNormalization layers run
in inference mode (frozen statistics) or training mode (batch statistics, moving averages updated)
while the rest trains. Imbalance is handled by class weights or resampling, pairs with a missing
modality by feature masking (`masked=True`: a presence input per modality multiplies its features).
`StagedModel.run` trains a list of stages, each for a number of epochs or of gradient steps
(`training.fit_steps`: the same number of updates whatever the size of the training set).
Settings are compared seed by seed with the collection's one rule, `metrics.compare`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence

import keras
import numpy as np
from keras import layers
from keras.layers import Multiply
from sklearn.metrics import f1_score, precision_score, recall_score
from sklearn.utils.class_weight import compute_class_weight

from .checks import check_float, check_int, check_labels, check_seed
from .data.dataset import N_CLASSES
from .device import in_scope, scope
from .fusion import FUSED, ModalityDropout, nested_encoders
from .metrics import evaluate
from .models import HEAD, conv_encoder, encoder_of
from .training import check_inputs, fit, fit_steps, predict_proba, walk_layers
from .transfer import copy_weights

SCHEDULES = ("frozen", "top", "all")
UNITS = ("epochs", "steps")  # what the number in a stage (schedule, number, lr) counts
PRESENT = "_present"  # suffix of the presence inputs of a masked model
_BLOCK = re.compile(r"^block(\d+)_")


def _filters(encoder: keras.Model) -> tuple[int, ...]:
    """Filters of each conv block of a `conv_encoder`, in order."""
    convs = [layer for layer in encoder.layers if isinstance(layer, layers.Conv2D)]
    if not convs:
        raise ValueError(f"encoder {encoder.name!r} has no Conv2D blocks; expected a conv_encoder")
    return tuple(int(layer.filters) for layer in convs)


@in_scope
def pretrained_fusion_model(
    sources: Mapping[str, keras.Model],
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    n_classes: int = N_CLASSES,
    *,
    masked: bool = False,
    modality_dropout: float = 0.0,
    seed: int = 0,
    name: str = "finetuned_fusion",
) -> keras.Model:
    """Early-fusion model whose `<modality>_encoder`s start from the pretrained source encoders.

    `sources` maps a modality ("image", "audio") to a pretrained `classifier`; its encoder's
    weights (BatchNorm statistics included) are copied into a new encoder of the same blueprint
    for `input_shapes[modality]` (default: the source's own input shape). The encoders start
    frozen (stage 1 of the recipe; see `set_schedule`) and the new softmax head is random.
    With `masked=True` the model takes one more input per modality, `<modality>_present` of
    shape (n, 1), that multiplies its features: 0 marks a missing modality (see `with_presence`).
    Layer names follow `fusion.early_fusion_model`, so `fusion.predict_early` works on it.
    """
    if not isinstance(sources, Mapping) or len(sources) < 2:
        raise ValueError(f"sources={sources!r}; expected a dict modality -> pretrained classifier "
                         "with at least two modalities, e.g. {'image': ..., 'audio': ...}")
    if input_shapes is not None and (
        not isinstance(input_shapes, Mapping) or set(input_shapes) != set(sources)
    ):
        raise ValueError(f"input_shapes={input_shapes!r}; expected a dict with the modalities "
                         f"{sorted(sources)} of sources, or None for the sources' own shapes")
    if not isinstance(masked, bool):
        raise TypeError(f"masked={masked!r} should be True or False")
    seed = check_seed(seed)
    keras.utils.set_random_seed(seed)
    inputs, feats = {}, []
    for m in sorted(sources):
        src = encoder_of(sources[m])
        shape = tuple(src.inputs[0].shape[1:]) if input_shapes is None else input_shapes[m]
        encoder = conv_encoder(shape, _filters(src), name=f"{m}_encoder")
        copy_weights(src, encoder)
        encoder.trainable = False
        inputs[m] = keras.Input(encoder.inputs[0].shape[1:], name=m)
        h = encoder(inputs[m])
        if masked:
            inputs[m + PRESENT] = keras.Input((1,), name=m + PRESENT)
            h = layers.Multiply(name=f"{m}_mask")([h, inputs[m + PRESENT]])
        feats.append(h)
    if modality_dropout > 0:
        feats = ModalityDropout(modality_dropout, seed=seed, name="modality_dropout")(feats)
    h = layers.Concatenate(name=FUSED)(feats)
    check_int(n_classes, "n_classes", low=2)
    outputs = layers.Dense(int(n_classes), activation="softmax", dtype="float32", name=HEAD)(h)
    return keras.Model(inputs, outputs, name=name)


def encoders(model: keras.Model) -> dict[str, keras.Model]:
    """Modality -> nested `<modality>_encoder` of a multimodal model, in sorted order."""
    found = nested_encoders(model)
    if not found:
        raise ValueError(f"model {model.name!r} has no nested `<modality>_encoder`; expected a "
                         "model built by pretrained_fusion_model or fusion.early_fusion_model")
    return found


def set_schedule(
    model: keras.Model, schedule: str, *, top_blocks: int = 1, bn_training: bool = False
) -> keras.Model:
    """Freeze or unfreeze the encoders of a multimodal model for one fine-tuning stage.

    "frozen": encoders fixed, only the head (and layers outside the encoders) trains; "top": the
    last `top_blocks` conv blocks of every encoder train too; "all": every layer trains. With
    `bn_training=False` (the Keras recipe) BatchNormalization layers stay frozen, so they run in
    inference mode with their pretrained statistics; with True, those in trainable blocks use
    batch statistics and update their moving averages on the target data. Returns the model;
    `training.fit` recompiles it on the next call.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule={schedule!r} is not a schedule; expected one of {SCHEDULES}")
    if not isinstance(bn_training, bool):
        raise TypeError(f"bn_training={bn_training!r} should be True or False")
    check_int(top_blocks, "top_blocks", low=1)
    model.trainable = True
    for encoder in encoders(model).values():
        blocks = sorted({int(match.group(1)) for layer in encoder.layers
                         if (match := _BLOCK.match(layer.name))})
        if top_blocks > len(blocks):
            raise ValueError(f"top_blocks={top_blocks} but encoder {encoder.name!r} has "
                             f"{len(blocks)} blocks; choose top_blocks <= {len(blocks)}")
        first = {"frozen": len(blocks), "top": len(blocks) - top_blocks, "all": 0}[schedule]
        trainable = {f"block{b}_" for b in blocks[first:]}
        for layer in walk_layers(encoder):
            if layer is encoder:
                continue
            match = _BLOCK.match(layer.name)
            on = match is not None and f"block{match.group(1)}_" in trainable
            if isinstance(layer, layers.BatchNormalization):
                on = on and bn_training
            layer.trainable = on
    return model


def weight_counts(model: keras.layers.Layer) -> dict[str, int]:
    """Numbers of trainable and frozen weights (scalars) of a model: {"trainable", "frozen"}.

    What a freeze or unfreeze step changes, in numbers: print it before and after the step.
    Frozen weights include BatchNorm's moving statistics, which no optimizer ever updates.
    """
    if not isinstance(model, keras.layers.Layer):
        raise TypeError(f"model is a {type(model).__name__}; expected a keras.Model or layer")

    def count(weights) -> int:
        return int(sum(int(np.prod(w.shape)) for w in weights))

    return {"trainable": count(model.trainable_weights),
            "frozen": count(model.non_trainable_weights)}


def with_presence(x: dict, present: Mapping[str, np.ndarray] | None = None) -> dict:
    """Inputs for a masked model: `x` plus `<modality>_present` (n, 1) floats (1 = present)."""
    x, n = check_inputs(x)
    if not isinstance(x, dict):
        raise TypeError("x is an array; expected a dict modality -> array")
    present = {} if present is None else present
    extra = sorted(set(present) - set(x))
    if extra:
        raise ValueError(f"present has modalities {extra} that x lacks; x has {sorted(x)}")
    out = dict(x)
    for m in x:
        mask = np.ones(n, np.float32) if m not in present else np.asarray(present[m], np.float32)
        if mask.shape != (n,) or not np.isin(mask, (0, 1)).all():
            raise ValueError(f"present[{m!r}] has shape {mask.shape}; expected ({n},) of 0/1")
        out[m + PRESENT] = mask[:, None]
    return out


def drop_modality(
    x: dict, fraction: float, *, seed: int, modalities: Sequence[str] | None = None
) -> tuple[dict, dict[str, np.ndarray]]:
    """Make a `fraction` of the pairs lack one modality (chosen uniformly among `modalities`).

    Returns (x with the missing inputs set to 0, present: modality -> (n,) 0/1 floats). A sample
    loses at most one modality, so every pair keeps something to learn from.
    """
    x, n = check_inputs(x)
    if not isinstance(x, dict) or len(x) < 2:
        raise ValueError("x should be a dict modality -> array with at least two modalities")
    check_float(fraction, "fraction", low=0, high=1, high_open=True)
    names = sorted(x) if modalities is None else list(modalities)
    unknown = [m for m in names if m not in x]
    if unknown or not names:
        raise ValueError(f"modalities={modalities!r}; expected a non-empty subset of {sorted(x)}")
    rng = np.random.default_rng(check_seed(seed))
    hit = rng.permutation(n)[: int(round(fraction * n))]
    which = rng.integers(0, len(names), len(hit))
    present = {m: np.ones(n, np.float32) for m in x}
    out = {m: v.copy() for m, v in x.items()}
    for i, m in enumerate(names):
        rows = hit[which == i]
        present[m][rows] = 0.0
        out[m][rows] = 0.0
    return out, present


def complete(present: Mapping[str, np.ndarray]) -> np.ndarray:
    """Boolean (n,) mask of the pairs that have every modality (for the "drop them" baseline)."""
    if not isinstance(present, Mapping) or not present:
        raise ValueError("present should be a non-empty dict modality -> (n,) 0/1 array")
    return np.logical_and.reduce([np.asarray(v) > 0 for v in present.values()])


def imbalance_indices(
    y: np.ndarray, classes: Sequence[int], keep: int, *, seed: int
) -> np.ndarray:
    """Sorted indices of `y` keeping only `keep` examples of each class in `classes`, all others.

    The textbook setting for class imbalance: a few rare classes, many common ones.
    """
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"y has shape {y.shape} and dtype {y.dtype}; expected (n,) integer labels")
    check_int(keep, "keep", low=1)
    classes = list(classes)
    rng = np.random.default_rng(check_seed(seed))
    chosen = [np.flatnonzero(~np.isin(y, classes))]
    for c in classes:
        pool = np.flatnonzero(y == c)
        if keep > len(pool):
            raise ValueError(f"keep={keep} is larger than the {len(pool)} examples of class {c}; "
                             f"choose keep <= {len(pool)}")
        chosen.append(rng.permutation(pool)[:keep])
    return np.sort(np.concatenate(chosen))


def subset_scores(
    y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[int], prefix: str = "rare"
) -> dict[str, float]:
    """Recall, precision and F1 (scikit-learn) macro-averaged over the classes in `labels` only.

    Keys are `<prefix>_recall`, `<prefix>_precision`, `<prefix>_f1`; a class never predicted
    counts as precision 0 (no warning).
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.ndim != 1 or y_true.shape != y_pred.shape or not len(y_true):
        raise ValueError(f"y_true has shape {y_true.shape} and y_pred {y_pred.shape}; expected "
                         "the same non-empty (n,) label arrays")
    labels = list(labels)
    absent = [c for c in labels if c not in set(y_true.tolist())]
    if not labels or absent:
        raise ValueError(f"labels={labels!r}; expected a non-empty list of classes that occur in "
                         f"y_true (missing: {absent})")
    kw = {"labels": labels, "average": "macro", "zero_division": 0}
    return {f"{prefix}_recall": float(recall_score(y_true, y_pred, **kw)),
            f"{prefix}_precision": float(precision_score(y_true, y_pred, **kw)),
            f"{prefix}_f1": float(f1_score(y_true, y_pred, **kw))}


def class_weights(y: np.ndarray, n_classes: int = N_CLASSES) -> dict[int, float]:
    """Class -> weight n / (n_classes * count) (scikit-learn's "balanced"), for `fit`."""
    y = np.asarray(y)
    check_labels(y, n_classes=n_classes)
    missing = sorted(set(range(n_classes)) - set(np.unique(y).tolist()))
    if missing:
        raise ValueError(f"y has no example of classes {missing}; a class weight needs at least "
                         "one example of every class")
    weights = compute_class_weight("balanced", classes=np.arange(n_classes), y=y)
    return {c: float(w) for c, w in enumerate(weights)}


def oversample(x: np.ndarray | dict, y: np.ndarray, *, seed: int) -> tuple:
    """Resample every class (with replacement) up to the largest class count; (x, y) shuffled."""
    x, n = check_inputs(x)
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y has shape {y.shape}; expected ({n},) integer labels, one per sample")
    rng = np.random.default_rng(check_seed(seed))
    classes, counts = np.unique(y, return_counts=True)
    idx = np.concatenate([
        np.concatenate([np.flatnonzero(y == c),
                        rng.choice(np.flatnonzero(y == c), counts.max() - count)])
        for c, count in zip(classes, counts, strict=True)
    ])
    idx = rng.permutation(idx)
    return ({m: v[idx] for m, v in x.items()} if isinstance(x, dict) else x[idx]), y[idx]


_HEAD_PATH = {Multiply: "mask", ModalityDropout: "modality_dropout", layers.Concatenate: FUSED,
              layers.Dropout: "dropout", layers.Dense: HEAD}


@in_scope
def head_model(model: keras.Model) -> keras.Model | None:
    """The layers above the encoders of a fusion model, as a model on the encoders' features.

    Its inputs are `<modality>` (that encoder's features) plus any `<modality>_present` of a
    masked model; its layers are the model's own (shared, so training one trains the other).
    While the encoders are frozen with BatchNorm in inference mode (schedule "frozen"), their
    features do not change, so training this model on features computed once is the same
    computation as training the whole model, without running the encoders at every step.
    Returns None for a model that is not laid out as `pretrained_fusion_model` or
    `fusion.early_fusion_model` (inputs, encoders, optional masks and modality dropout, the
    concatenation, optional dropout, the head).
    """
    enc = encoders(model)
    path = {}
    for layer in model.layers:
        if isinstance(layer, layers.InputLayer) or layer in enc.values():
            continue
        role = next((r for t, r in _HEAD_PATH.items() if type(layer) is t), None)
        if role is None or (role != "mask" and layer.name != role) or (
                role == "mask" and layer.name.removesuffix("_mask") not in enc):
            return None
        path[layer.name] = layer
    names = set(model.input) if isinstance(model.input, dict) else set()
    if FUSED not in path or HEAD not in path or names - set(enc) - {m + PRESENT for m in enc}:
        return None
    inputs, feats = {}, []
    for m, e in enc.items():
        inputs[m] = keras.Input(e.outputs[0].shape[1:], name=m)
        h = inputs[m]
        if m + PRESENT in names:
            if f"{m}_mask" not in path:
                return None
            inputs[m + PRESENT] = keras.Input((1,), name=m + PRESENT)
            h = path[f"{m}_mask"]([h, inputs[m + PRESENT]])
        feats.append(h)
    if "modality_dropout" in path:
        feats = path["modality_dropout"](feats)
    h = path[FUSED](feats)
    if "dropout" in path:
        h = path["dropout"](h)
    return keras.Model(inputs, path[HEAD](h), name=f"{model.name}_head")


def head_inputs(model: keras.Model, x: dict, *, batch_size: int = 512) -> dict:
    """Inputs of `head_model(model)`: encoder features of `x` (inference mode), presence kept."""
    x, _ = check_inputs(x)
    if not isinstance(x, dict):
        raise TypeError("x is an array; expected a dict modality -> array")
    enc = encoders(model)
    missing = sorted(set(enc) - set(x))
    if missing:
        raise ValueError(f"x lacks the modalities {missing}; the model has encoders {sorted(enc)}")
    out = {k: v for k, v in x.items() if k.endswith(PRESENT)}
    for m, e in enc.items():
        out[m] = predict_proba(e, x[m], batch_size=batch_size)
    return out


def _check_stage(stage: object, i: int, unit: str) -> tuple[str, int, float]:
    """stages[i] as (schedule, length, lr); the length a positive int of `unit`."""
    if not isinstance(stage, tuple) or len(stage) != 3:
        raise ValueError(f"stages[{i}]={stage!r}; expected (schedule, {unit}, lr)")
    schedule, length, lr = stage
    return schedule, check_int(length, f"stages[{i}][1] ({unit})", low=1), lr


class StagedModel:
    """One compiled copy of a multimodal model per freezing schedule; weights move between them.

    `training.fit` compiles a model once per trainable layout (a cost `make bench` measures), so
    switching one model between "frozen" and "all" recompiles at every stage. Here each schedule
    has its own copy of the architecture that stays in its layout; `run` carries the weights from
    copy to copy. `build()` must return the same architecture each time (e.g. a
    `pretrained_fusion_model` call); `bn_training` and `top_blocks` go to `set_schedule`.
    A "frozen" stage counted in steps trains `head_model` on features computed once: the same
    updates (up to the random draws of any dropout) at about a third of the time per step on a
    2-core CPU, since the frozen encoders no longer run at every step; its validation scores
    come from the same head on validation features computed once (the same numbers).
    """

    def __init__(self, build, *, bn_training: bool = False, top_blocks: int = 1):
        if not callable(build):
            raise TypeError(f"build is a {type(build).__name__}; expected a function -> model")
        self.build, self.bn_training, self.top_blocks = build, bn_training, top_blocks
        self.models: dict[str, keras.Model] = {}
        self.heads: dict[str, keras.Model | None] = {}

    def model(self, schedule: str) -> keras.Model:
        """The copy kept in `schedule`'s layout (built on first use)."""
        if schedule not in self.models:
            self.models[schedule] = set_schedule(self.build(), schedule, top_blocks=self.top_blocks,
                                                 bn_training=self.bn_training)
        return self.models[schedule]

    def run(
        self,
        weights: list[np.ndarray],
        x: dict,
        y: np.ndarray,
        *,
        stages: Sequence[tuple[str, int, float]],
        seed: int,
        unit: str = "epochs",
        x_val: dict | None = None,
        y_val: np.ndarray | None = None,
        eval_every: int | None = None,
        batch_size: int = 32,
        class_weight: dict | None = None,
        after_stage=None,
    ) -> tuple[keras.Model, list[dict]]:
        """Train stages [(schedule, length, lr), ...] from `weights`; return (model, curve rows).

        The recipe: [("frozen", n1, lr), ("top", n2, lr / 10), ("all", n3, lr / 10)]. `unit`
        says what a stage's length counts: "epochs" (passes over `x`; `training.fit`) or
        "steps" (gradient steps, whatever the size of `x`; `fit_steps`). With validation data
        the validation accuracy is measured every `eval_every` units (in epochs, each chunk is
        one `training.fit` call, which restarts Adam's moment estimates; in steps, measuring
        does not touch the optimizer); rows hold stage, schedule, "epoch" or "step" (counted
        across stages), lr and val_accuracy. `after_stage(stage_index, schedule, model)` is
        called after each stage (e.g. to measure forgetting). Returns the last stage's model,
        holding the trained weights.
        """
        if unit not in UNITS:
            raise ValueError(f"unit={unit!r}; expected one of {UNITS}")
        if not stages:
            raise ValueError(f"stages is empty; expected [(schedule, {unit}, lr), ...]")
        if (x_val is None) != (y_val is None):
            raise ValueError("x_val and y_val go together; give both or neither")
        if eval_every is not None:
            eval_every = check_int(eval_every, "eval_every", low=1)
        key = unit.removesuffix("s")
        rows, done_before, model = [], 0, None
        train = self._train_steps if unit == "steps" else self._train_epochs
        options = {"batch_size": batch_size, "class_weight": class_weight}
        for i, stage in enumerate(stages):
            schedule, length, lr = _check_stage(stage, i, unit)
            model = self.model(schedule)
            model.set_weights(weights)
            measure = None
            if x_val is not None:
                def measure(done, i=i, schedule=schedule, lr=lr, scorer=model, xv=x_val,
                            before=done_before):
                    acc = evaluate(np.asarray(y_val), predict_proba(scorer, xv))["accuracy"]
                    rows.append({"stage": i + 1, "schedule": schedule, key: before + done,
                                 "lr": float(lr), "val_accuracy": acc})

            every = length if measure is None or eval_every is None else min(eval_every, length)
            train(model, schedule, x, y, length=length, lr=lr, seed=seed + 1000 * i,
                  every=every, measure=measure, x_val=x_val, **options)
            done_before += length
            weights = model.get_weights()
            if after_stage is not None:
                after_stage(i + 1, schedule, model)
        return model, rows

    def _train_steps(self, model: keras.Model, schedule: str, x: dict, y: np.ndarray, *,
                     length: int, lr: float, seed: int, every: int, measure, x_val, **options):
        """`length` gradient steps; a frozen stage trains its head on cached features."""
        if schedule == "frozen" and schedule not in self.heads:
            self.heads[schedule] = head_model(model)
        head = self.heads.get(schedule) if schedule == "frozen" else None
        if head is not None and measure is not None:  # val features, computed once
            measure = functools.partial(measure, scorer=head, xv=head_inputs(model, x_val))
        fit_steps(model if head is None else head, x if head is None else head_inputs(model, x), y,
                  steps=length, lr=lr, seed=seed, every=every if measure else None,
                  callback=measure, **options)
        if measure is not None and length % every:
            measure(length)

    @staticmethod
    def _train_epochs(model: keras.Model, schedule: str, x: dict, y: np.ndarray, *,
                      length: int, lr: float, seed: int, every: int, measure, x_val, **options):
        """`length` passes over x, in chunks of `every` passes with a measurement after each."""
        done = 0
        while done < length:
            chunk = min(every, length - done)
            fit(model, x, y, epochs=chunk, lr=lr, seed=seed + done, **options)
            done += chunk
            if measure is not None:
                measure(done)


def source_metrics(
    model: keras.Model, source_model: keras.Model, modality: str, x: np.ndarray, y: np.ndarray
) -> dict[str, float]:
    """Source-task metrics of the multimodal model's `modality` encoder under the source's head.

    Measures forgetting: the fine-tuned encoder is put back under the head it was pretrained
    with (a copy of `source_model`; neither model is changed) and scored on source data.
    """
    enc = encoders(model)
    if modality not in enc:
        raise ValueError(f"modality={modality!r}; the model has encoders {sorted(enc)}")
    with scope():
        probe = keras.models.clone_model(source_model)
    probe.set_weights(source_model.get_weights())
    copy_weights(enc[modality], encoder_of(probe))
    return evaluate(np.asarray(y), predict_proba(probe, x))
