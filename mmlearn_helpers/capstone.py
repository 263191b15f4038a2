"""The capstone experiment: every method of notebooks 01-05 on one split, one labelled set per seed.

For each seed, `run_seed` draws `labels_per_class` labelled training pairs per class and runs
every method on them, one small function per method below (the cross-modal student learns from
the audio of the other, unlabelled, training pairs; the zero-shot methods use no target label at
all). Anything a method chooses (a late-fusion weight, the student's teacher) is chosen on the
validation split only. Each method returns its test and validation probabilities, training
seconds, batches and trainable weights. The methods are those of the helpers reused here:
`transfer` (zero-shot and parameter transfer), `features` (probe), `crossmodal` (student),
`fusion` (early and late fusion, and the encoder of the scratch networks of notebook 04) and
`finetune` (the multimodal model on pretrained encoders).

Equal effort: every network trained by gradient descent gets the same budget, `steps` batches
of `batch_size`, whether it starts from random weights (the scratch models, early fusion, the
student) or from pretrained ones (fine-tuning after a convex head fit). Budgets count batches,
not epochs, because the labelled set (e.g. 200 pairs) and the student's unlabelled set (e.g. 878
pairs) differ in size.

Same architecture: "transfer vs scratch" compares `transfer_frozen` / `transfer_finetuned` with
`audio_scratch_same_arch`, the speech source's own architecture with fresh weights, so the
comparison changes the starting weights only. `audio_scratch` is notebook 04's pooled encoder,
the audio expert of the scratch fusions (early, late) and the student's architecture.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import keras
import numpy as np

from . import crossmodal, features, fusion, metrics, transfer
from . import finetune as ft
from .checks import check_float, check_int, check_rate
from .data import Dataset
from .data.dataset import N_CLASSES
from .metrics import evaluate, summarize
from .models import HEAD, classifier, count_params
from .training import check_inputs, fit_steps, predict_proba

# Every method, in the order of the notebooks that introduce them.
METHODS = ("zero_shot_image", "zero_shot_audio", "image_scratch", "audio_scratch",
           "audio_scratch_same_arch", "image_transfer_frozen", "transfer_frozen",
           "transfer_finetuned", "probe", "crossmodal_student", "early", "late_equal",
           "late_tuned", "zero_shot_late", "late_pretrained_equal", "late_pretrained_tuned",
           "finetuned_multimodal")
# The methods that read one modality at test time: the candidates for "the best single
# modality", a reference that is chosen on validation.
SINGLE = ("zero_shot_image", "zero_shot_audio", "image_scratch", "audio_scratch",
          "audio_scratch_same_arch", "image_transfer_frozen", "transfer_frozen",
          "transfer_finetuned", "crossmodal_student")
# What each network trained on labels (or distilled) reads: a modality, or None for both.
_INPUT = {"image_scratch": "image", "audio_scratch": "audio", "audio_scratch_same_arch": "audio",
          "early": None, "crossmodal_student": "audio"}
# Input pooling of notebook 04's scratch networks (audio_scratch, early, the student): averaging
# 4 x 4 patches of a noisy spectrogram smooths white noise and makes each batch cheaper.
SCRATCH_POOL = {"audio": 4}
# Per profile: seeds; the budget of every network (batches of batch_size); Adam learning rates
# for training from scratch on labels (notebook 01's), for distillation and for fine-tuning
# pretrained layers (notebook 05's stage 2).
BUDGETS = {
    "fast": {"seeds": 3, "steps": 140, "batch_size": 32, "lr": 1e-2, "distill_lr": 1e-3,
             "tune_lr": 1e-3},
    "full": {"seeds": 10, "steps": 280, "batch_size": 32, "lr": 1e-2, "distill_lr": 1e-3,
             "tune_lr": 1e-3},
}
# The networks trained from random weights, which `run_seed(check_factors=...)` retrains with
# other budgets to show whether theirs was enough.
SCRATCH = ("image_scratch", "audio_scratch", "audio_scratch_same_arch", "early",
           "crossmodal_student")
_INTS = ("seeds", "steps", "batch_size")
_RATES = ("lr", "distill_lr", "tune_lr")
SUMMARY_METRICS = ("accuracy", "macro_recall", "macro_f1")
# Saved per method as `<method>_<key>`.
SAVED = ("accuracy", "accuracy_std", "macro_recall", "macro_recall_std", "macro_f1",
         "macro_f1_std", "seconds", "params", "steps")
def check_budget(budget: object) -> dict:
    """A copy of `budget` (see BUDGETS) with every key present and each value in range."""
    if not isinstance(budget, Mapping):
        raise TypeError(f"budget is a {type(budget).__name__}; expected a dict like "
                        "BUDGETS['fast']")
    want = set(_INTS) | set(_RATES)
    if set(budget) != want:
        raise ValueError(f"budget has keys {sorted(budget)}; expected exactly {sorted(want)} "
                         "(see capstone.BUDGETS)")
    out: dict = {key: check_int(budget[key], f"budget[{key!r}]", low=1) for key in _INTS}
    for key in _RATES:
        out[key] = check_rate(budget[key], f"budget[{key!r}]")
    return out


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Batches in one pass over n examples, the last one topped up to a full batch."""
    n, batch_size = check_int(n, "n", low=1), check_int(batch_size, "batch_size", low=1)
    return math.ceil(n / min(batch_size, n))


def epochs_for(steps: int, n: int, batch_size: int) -> int:
    """Whole passes over n examples closest to `steps` batches (at least one)."""
    steps = check_int(steps, "steps", low=1)
    return max(1, round(steps / steps_per_epoch(n, batch_size)))


def _check_data(data: object) -> dict[str, Dataset]:
    """The train, val and test Datasets, each paired image + audio of the same shapes."""
    if not isinstance(data, Mapping) or not {"train", "val", "test"} <= set(data):
        got = sorted(data) if isinstance(data, Mapping) else type(data).__name__
        raise ValueError(f"data={got!r}; expected a dict with the Datasets 'train', 'val' and "
                         "'test'")
    first = None
    for split in ("train", "val", "test"):
        d = data[split]
        if not isinstance(d, Dataset):
            raise TypeError(f"data[{split!r}] is a {type(d).__name__}; expected a Dataset")
        if set(d.x) != {"image", "audio"}:
            raise ValueError(f"data[{split!r}] has modalities {sorted(d.x)}; expected "
                             "['audio', 'image'] (paired audio-visual data)")
        shapes = {m: tuple(v.shape[1:]) for m, v in d.x.items()}
        first = first or shapes
        if shapes != first:
            raise ValueError(f"data[{split!r}] has input shapes {shapes} but data['train'] has "
                             f"{first}; expected the same shapes in every split")
    return {split: data[split] for split in ("train", "val", "test")}


def _check_sources(sources: object) -> dict[str, keras.Model]:
    """The pretrained classifiers {"image": ..., "audio": ...}."""
    if not isinstance(sources, Mapping) or set(sources) != {"image", "audio"}:
        raise ValueError(f"sources={sources!r}; expected a dict {{'image': ..., 'audio': ...}} "
                         "of pretrained classifiers (transfer.pretrained_source)")
    for m, model in sources.items():
        if not isinstance(model, keras.Model):
            raise TypeError(f"sources[{m!r}] is a {type(model).__name__}; expected a keras.Model")
    return dict(sources)


def _scratch_builders(
    shapes: dict, sources: Mapping[str, keras.Model]
) -> dict[str, Callable[[int], keras.Model]]:
    """Name -> function(seed) building a network trained from scratch, with fresh weights."""
    def single(m: str) -> Callable[[int], keras.Model]:
        def build(seed: int) -> keras.Model:
            keras.utils.set_random_seed(seed)
            encoder = fusion.modality_encoder(shapes[m], pool=SCRATCH_POOL.get(m, 1))
            return classifier(encoder, N_CLASSES)
        return build

    def same_arch(seed: int) -> keras.Model:  # the speech source's architecture, fresh weights
        return transfer.transfer_model("scratch", sources["audio"], input_shape=shapes["audio"],
                                       seed=seed)

    return {"image_scratch": single("image"), "audio_scratch": single("audio"),
            "audio_scratch_same_arch": same_arch, "crossmodal_student": single("audio"),
            "early": lambda seed: fusion.early_fusion_model(shapes, pool=SCRATCH_POOL, seed=seed)}


def _zero_shot_reader(source: keras.Model, shape: tuple) -> keras.Model:
    """The source classifier as it is (encoder and head), read at the target's input size."""
    reader = transfer.transfer_model("frozen", source, input_shape=shape)
    transfer.copy_weights(source, reader, [HEAD])
    return reader


def build_models(
    shapes: Mapping[str, Sequence[int]], sources: Mapping[str, keras.Model]
) -> dict[str, object]:
    """The Keras models of every method, built once; `run_seed` resets their weights per seed.

    Reusing them across seeds skips Keras' tracing of a new train step (about 1-3 s per model
    on two CPU cores). Keys: the networks trained from scratch (SCRATCH), "image_transfer"
    (the transferred image model, frozen: `image_transfer_frozen`, a candidate teacher and the
    image expert of `late_pretrained_*`), "transfer_frozen", "transfer_finetuned", "multimodal"
    (every layer but BatchNorm trainable), "zero_shot_image" and "zero_shot_audio" (the
    sources as they are), the pretrained starting weights "<name>_start", and "shapes".
    """
    sources = _check_sources(sources)
    if not isinstance(shapes, Mapping) or set(shapes) != {"image", "audio"}:
        raise ValueError(f"shapes={shapes!r}; expected {{'image': shape, 'audio': shape}}")
    shapes = {m: tuple(int(d) for d in s) for m, s in shapes.items()}
    models: dict[str, object] = {name: build(0)
                                 for name, build in _scratch_builders(shapes, sources).items()}
    models["image_transfer"] = transfer.transfer_model("frozen", sources["image"],
                                                       input_shape=shapes["image"])
    for method in ("frozen", "finetuned"):
        models[f"transfer_{method}"] = transfer.transfer_model(method, sources["audio"],
                                                               input_shape=shapes["audio"])
    models["multimodal"] = ft.set_schedule(ft.pretrained_fusion_model(sources, shapes), "all")
    for name in ("transfer_finetuned", "multimodal"):
        models[f"{name}_start"] = models[name].get_weights()
    for m in ("image", "audio"):
        models[f"zero_shot_{m}"] = _zero_shot_reader(sources[m], shapes[m])
    models["shapes"] = shapes
    return models


def _cached_models(cache: dict | None, shapes: dict, sources: dict) -> dict:
    """The models of `cache`, built on first use; refuse a cache built for other data."""
    if cache is not None and not isinstance(cache, dict):
        raise TypeError(f"cache is a {type(cache).__name__}; expected a dict or None")
    models = cache if cache is not None else {}
    key = (shapes, id(sources["image"]), id(sources["audio"]))
    if not models:
        models.update(build_models(shapes, sources), key=key)
    elif models.get("key") != key:
        raise ValueError(f"cache holds models built for other data or sources (shapes "
                         f"{models.get('shapes')}); the data has shapes {shapes}: use a new "
                         "cache (e.g. {}) for other data or sources")
    return models


def _check_factors(check_factors: object) -> tuple[float, ...]:
    """The budget multiples of the budget check, each a positive number."""
    if isinstance(check_factors, (str, bytes)) or not isinstance(check_factors, Sequence):
        raise TypeError(f"check_factors={check_factors!r}; expected a list of positive numbers "
                        "(multiples of the budget), e.g. (0.5, 2)")
    for i, f in enumerate(check_factors):
        check_float(f, f"check_factors[{i}]", low=0, low_open=True)
    return tuple(float(f) for f in check_factors)


@dataclass
class _Draw:
    """One seed's labelled draw, the models, and what the methods have produced so far."""

    train: Dataset
    val: Dataset
    test: Dataset
    sources: dict
    models: dict
    builders: dict
    budget: dict
    seed: int
    idx: np.ndarray  # the labelled training pairs
    unlabelled: np.ndarray  # the other training pairs (the student's)
    out: dict = field(default_factory=dict)  # method -> probabilities and costs
    fitted: dict = field(default_factory=dict)  # network -> accuracy on its training targets
    trainers: dict = field(default_factory=dict)  # network -> train(steps) from fresh weights

    @property
    def x(self) -> dict:
        return {m: v[self.idx] for m, v in self.train.x.items()}

    @property
    def y(self) -> np.ndarray:
        return self.train.y[self.idx]

    def predict(self, model: keras.Model, modality: str | None) -> tuple:
        """(test, validation) probabilities of `model` reading `modality` (None: both)."""
        return tuple(predict_proba(model, s.x if modality is None else s.x[modality])
                     for s in (self.test, self.val))

    def record(self, name: str, probs: tuple, seconds: float, steps: int, params: int) -> None:
        self.out[name] = {"probs": probs[0], "val_probs": probs[1], "seconds": float(seconds),
                          "steps": int(steps), "params": int(params)}


def _draw(data: object, sources: object, seed: object, labels_per_class: object,
          budget: object, cache: object) -> _Draw:
    """Check run_seed's arguments and draw the seed's labelled pairs."""
    data, sources = _check_data(data), _check_sources(sources)
    seed = check_int(seed, "seed", low=0)
    labels_per_class = check_int(labels_per_class, "labels_per_class", low=1)
    budget = check_budget(budget)
    train = data["train"]
    shapes = {m: tuple(v.shape[1:]) for m, v in train.x.items()}
    models = _cached_models(cache, shapes, sources)
    idx = transfer.few_shot_indices(train.y, labels_per_class, seed=seed)
    unlabelled = np.setdiff1d(np.arange(train.n), idx)
    if len(unlabelled) == 0:
        raise ValueError(f"labels_per_class={labels_per_class} labels every training pair; the "
                         "cross-modal student needs unlabelled pairs, choose fewer labels")
    return _Draw(train, data["val"], data["test"], sources, models,
                 _scratch_builders(shapes, sources), budget, seed, idx, unlabelled)


def _zero_shot(d: _Draw) -> None:
    """Zero-shot (notebook 01): the source classifiers as they are, no target label at all."""
    for m in ("image", "audio"):
        d.record(f"zero_shot_{m}", d.predict(d.models[f"zero_shot_{m}"], m), 0.0, 0, 0)


def _train_scratch(d: _Draw, name: str, steps: int) -> int:
    """Train network `name` from its fresh weights for `steps` batches of the labelled pairs."""
    model, x = d.models[name], d.x
    model.set_weights(d.builders[name](d.seed).get_weights())
    fit_steps(model, x if _INPUT[name] is None else x[_INPUT[name]], d.y, steps=steps,
              lr=d.budget["lr"], seed=d.seed, batch_size=d.budget["batch_size"])
    return steps


def _scratch(d: _Draw, name: str) -> None:
    """A network from random weights on the labelled pairs (notebooks 01 and 04)."""
    t = time.perf_counter()
    steps = _train_scratch(d, name, d.budget["steps"])
    seconds = time.perf_counter() - t
    model, m = d.models[name], _INPUT[name]
    d.trainers[name] = functools.partial(_train_scratch, d, name)
    d.fitted[name] = evaluate(d.y, predict_proba(model, d.x if m is None else d.x[m]))["accuracy"]
    d.record(name, d.predict(model, m), seconds, steps, count_params(model))


def _late(d: _Draw, experts: tuple[str, str], names: tuple[str, ...]) -> float:
    """Late fusion of an image and an audio expert (notebook 04); returns the tuned weight.

    names[0] weighs the image at w = 0.5, names[1] (when given) at the w best on validation.
    Costs are the two experts' together.
    """
    a, b = (d.out[e] for e in experts)
    w = fusion.best_weight(a["val_probs"], b["val_probs"], d.val.y) if len(names) > 1 else 0.5
    for name, weight in zip(names, (0.5, w)[:len(names)], strict=True):
        probs = tuple(fusion.late_fusion([a[k], b[k]], weight) for k in ("probs", "val_probs"))
        d.record(name, probs, a["seconds"] + b["seconds"], a["steps"] + b["steps"],
                 a["params"] + b["params"])
    return float(w)


def _transfer(d: _Draw) -> None:
    """Parameter transfer (notebook 01): a frozen encoder + logistic head, for the image and
    the audio source; then the audio one fine-tuned (every layer but BatchNorm)."""
    x, y = d.x, d.y
    for name, key, m in (("image_transfer_frozen", "image_transfer", "image"),
                         ("transfer_frozen", "transfer_frozen", "audio")):
        t = time.perf_counter()
        transfer.fit_linear_head(d.models[key], x[m], y)
        seconds = time.perf_counter() - t
        d.record(name, d.predict(d.models[key], m), seconds, 0, count_params(d.models[key]))
    model = d.models["transfer_finetuned"]
    model.set_weights(d.models["transfer_finetuned_start"])
    t = time.perf_counter()
    transfer.fit_linear_head(model, x["audio"], y)
    fit_steps(model, x["audio"], y, steps=d.budget["steps"], lr=d.budget["tune_lr"], seed=d.seed,
              batch_size=d.budget["batch_size"])
    seconds = time.perf_counter() - t
    d.fitted["transfer_finetuned"] = evaluate(y, predict_proba(model, x["audio"]))["accuracy"]
    d.record("transfer_finetuned", d.predict(model, "audio"), seconds, d.budget["steps"],
             count_params(model))


def _probe_features(sources: dict, x: dict) -> np.ndarray:
    """Both frozen source encoders' features, concatenated."""
    return np.concatenate([features.encode(sources[m], x[m]) for m in ("image", "audio")], 1)


def _probe(d: _Draw) -> None:
    """Probe (notebook 02): logistic regression on both frozen encoders' features."""
    t = time.perf_counter()
    feats = _probe_features(d.sources, d.x)
    probe = features.make_probe("logistic").fit(feats, d.y)
    seconds = time.perf_counter() - t
    probs = tuple(probe.predict_proba(_probe_features(d.sources, s.x)) for s in (d.test, d.val))
    d.record("probe", probs, seconds, 0, feats.shape[1] * 10 + 10)


def _train_student(d: _Draw, targets: np.ndarray, steps: int) -> int:
    """Distill the teacher's soft targets into the student from fresh weights, about `steps`
    batches (whole passes over the unlabelled pairs); return the batches trained."""
    student, n, batch = d.models["crossmodal_student"], len(d.unlabelled), d.budget["batch_size"]
    student.set_weights(d.builders["crossmodal_student"](d.seed).get_weights())
    epochs = epochs_for(steps, n, batch)
    crossmodal.distill(student, d.train.x["audio"][d.unlabelled], targets, epochs=epochs,
                       lr=d.budget["distill_lr"], seed=d.seed, batch_size=batch)
    return math.ceil(n * epochs / min(batch, n))


def _student(d: _Draw) -> dict:
    """Cross-modal student (notebook 02); returns what its teacher was and how good.

    The image model better on validation (`image_scratch`, or `image_transfer_frozen`) teaches
    an audio network on the unlabelled pairs: the student sees no audio label, only the
    teacher's soft targets.
    """
    t = time.perf_counter()
    candidates = {"image_scratch": "image_scratch", "image_transfer": "image_transfer_frozen"}
    teacher_val = {name: evaluate(d.val.y, d.out[method]["val_probs"])["accuracy"]
                   for name, method in candidates.items()}
    chosen = max(teacher_val, key=teacher_val.get)
    teacher_probs = predict_proba(d.models[chosen], d.train.x["image"][d.unlabelled])
    targets = crossmodal.soft_targets(teacher_probs)
    d.trainers["crossmodal_student"] = functools.partial(_train_student, d, targets)
    steps = _train_student(d, targets, d.budget["steps"])
    seconds = time.perf_counter() - t
    student = d.models["crossmodal_student"]
    d.fitted["crossmodal_student"] = crossmodal.agreement(
        predict_proba(student, d.train.x["audio"][d.unlabelled]), teacher_probs.argmax(axis=1))
    d.record("crossmodal_student", d.predict(student, "audio"), seconds, steps,
             count_params(student))
    return {"name": chosen, "val_accuracy": teacher_val[chosen], "candidates_val": teacher_val,
            "test_accuracy": evaluate(d.test.y, d.out[candidates[chosen]]["probs"])["accuracy"],
            "agreement_unlabelled": crossmodal.agreement(teacher_probs,
                                                         d.train.y[d.unlabelled]),
            "unlabelled_pairs": int(len(d.unlabelled))}


def _fused_head(model: keras.Model, x: dict, y: np.ndarray) -> None:
    """Fit a multimodal model's head as a logistic regression on its fused encoder features."""
    fused = np.concatenate(list(fusion.modality_features(model, x).values()), axis=1)
    model.get_layer(HEAD).set_weights(list(transfer.logistic_head(fused, y, 10, 1.0)))


def _multimodal(d: _Draw) -> None:
    """Multimodal fine-tuning (notebook 05): a new head on the frozen pretrained encoders, fitted
    as a logistic regression like the probe, then every layer but BatchNorm at a low rate."""
    model, x, y = d.models["multimodal"], d.x, d.y
    model.set_weights(d.models["multimodal_start"])
    t = time.perf_counter()
    _fused_head(model, x, y)
    fit_steps(model, x, y, steps=d.budget["steps"], lr=d.budget["tune_lr"], seed=d.seed,
              batch_size=d.budget["batch_size"])
    seconds = time.perf_counter() - t
    d.fitted["finetuned_multimodal"] = evaluate(y, predict_proba(model, x))["accuracy"]
    d.record("finetuned_multimodal", d.predict(model, None), seconds, d.budget["steps"],
             count_params(model))


def _budget_check(d: _Draw, factors: tuple[float, ...]) -> tuple[dict, list[dict]]:
    """Validation accuracy of each SCRATCH network with the budget, then retrained from the same
    start with each factor times the budget (report only: nothing is chosen with it). Last,
    because retraining overwrites the weights that other methods read."""
    val_scores = {name: evaluate(d.val.y, d.out[name]["val_probs"])["accuracy"]
                  for name in SCRATCH}
    check = [{"network": name, "factor": 1.0, "steps": d.out[name]["steps"],
              "val_accuracy": val_scores[name]} for name in SCRATCH]
    for factor in factors:
        for name in SCRATCH:
            steps = d.trainers[name](max(1, round(factor * d.budget["steps"])))
            probs = d.predict(d.models[name], _INPUT[name])[1]
            check.append({"network": name, "factor": factor, "steps": steps,
                          "val_accuracy": evaluate(d.val.y, probs)["accuracy"]})
    return val_scores, sorted(check, key=lambda r: (SCRATCH.index(r["network"]), r["factor"]))


def run_seed(
    data: Mapping[str, Dataset],
    sources: Mapping[str, keras.Model],
    *,
    seed: int,
    labels_per_class: int,
    budget: Mapping,
    cache: dict | None = None,
    check_factors: Sequence[float] = (),
) -> dict:
    """Run every method of METHODS on one labelled draw; test and validation probabilities, costs.

    `data`: Datasets "train", "val", "test" with "image" and "audio"; `sources`: pretrained
    classifiers {"image": ..., "audio": ...}; `budget`: see BUDGETS. `cache`: a dict that holds
    the models between seeds (filled on the first call, see `build_models`). Returns {"seed",
    "methods": name -> {"probs" (test, n x 10), "val_probs" (validation), "seconds", "steps",
    "params"}, "late_w" and "late_pretrained_w" (the tuned image weights of the scratch and of
    the pretrained experts), "teacher" (which image model taught the student and how good it
    was), "fit" (each trained network's accuracy on its own training targets), "val"
    (validation accuracy of each network trained from scratch), "budget_check"}. With
    `check_factors` (e.g. (0.5, 2)) the networks of SCRATCH are trained again, from the same
    start, for each factor times the budget, and "budget_check" lists their validation accuracy
    per budget (the labels of the validation split are used for this report only).
    """
    factors = _check_factors(check_factors)
    d = _draw(data, sources, seed, labels_per_class, budget, cache)
    _zero_shot(d)
    for name in ("image_scratch", "audio_scratch", "audio_scratch_same_arch", "early"):
        _scratch(d, name)
    late_w = _late(d, ("image_scratch", "audio_scratch"), ("late_equal", "late_tuned"))
    _transfer(d)
    _probe(d)
    teacher = _student(d)
    _multimodal(d)
    _late(d, ("zero_shot_image", "zero_shot_audio"), ("zero_shot_late",))
    pretrained_w = _late(d, ("image_transfer_frozen", "transfer_finetuned"),
                         ("late_pretrained_equal", "late_pretrained_tuned"))
    val_scores, check = _budget_check(d, factors)
    return {"seed": d.seed, "methods": {name: d.out[name] for name in METHODS},
            "late_w": late_w, "late_pretrained_w": pretrained_w, "teacher": teacher,
            "fit": d.fitted, "val": val_scores, "budget_check": check}


def _check_runs(runs: object) -> list[dict]:
    """The run_seed results as a list; refuse anything else."""
    if isinstance(runs, (str, bytes)) or not isinstance(runs, Sequence) or not runs or not all(
        isinstance(r, Mapping) and {"seed", "methods", "teacher", "late_w"} <= set(r)
        for r in runs
    ):
        raise ValueError(f"runs={type(runs).__name__}; expected a non-empty list of run_seed "
                         "results")
    return list(runs)


def result_rows(runs: Sequence[dict], y_test: np.ndarray, *, split: str = "test") -> list[dict]:
    """One row per method and seed: metrics (`metrics.evaluate`), seconds, steps, params.

    `split="test"` scores the test probabilities against `y_test`; `split="val"` scores the
    validation probabilities (pass the validation labels), to choose a method without the test
    split. The late fusions tuned on validation (`late_tuned`, `late_pretrained_tuned`) score
    optimistically there.
    """
    runs = _check_runs(runs)
    if split not in ("test", "val"):
        raise ValueError(f"split={split!r}; expected 'test' or 'val'")
    key = "probs" if split == "test" else "val_probs"
    rows = []
    for run in runs:
        for name, r in run["methods"].items():
            probs, n = check_inputs(r[key], f"{key} of {name}")
            if n != len(y_test):
                raise ValueError(f"{key} of {name} (seed {run['seed']}) have {n} rows but the "
                                 f"labels are {len(y_test)}; expected the same {split} split")
            rows.append({"method": name, "seed": run["seed"], **evaluate(y_test, probs),
                         "seconds": r["seconds"], "steps": r["steps"], "params": r["params"]})
    return rows


def summary_rows(rows: Sequence[dict]) -> list[dict]:
    """Mean and spread over seeds per method, best mean macro F1 first.

    `seconds` is the median over seeds (the first seed also pays Keras' one-off tracing),
    `steps` the batches trained per run, `params` the trainable weights.
    """
    summary = summarize(rows, by=("method",), metrics=SUMMARY_METRICS)
    for entry in summary:
        mine = [r for r in rows if r["method"] == entry["method"]]
        entry["seconds"] = float(np.median([r["seconds"] for r in mine]))
        entry["steps"] = int(round(np.mean([r["steps"] for r in mine])))
        entry["params"] = int(mine[0]["params"])
    return sorted(summary, key=lambda r: -r["macro_f1"])


def compare(rows: Sequence[dict], a: str, b: str, metric: str = "macro_f1") -> dict:
    """a vs b in `metric` over the seeds both ran, paired by seed: `metrics.compare`'s result."""
    per: dict[str, dict] = {}
    for row in rows:
        per.setdefault(row["method"], {})[row["seed"]] = row.get(metric)
    for name, value in (("a", a), ("b", b)):
        if value not in per:
            raise ValueError(f"{name}={value!r} is not a method of the rows; expected one of "
                             f"{sorted(per)}")
    if metric not in SUMMARY_METRICS:
        raise ValueError(f"metric={metric!r}; expected one of {SUMMARY_METRICS}")
    seeds = sorted(set(per[a]) & set(per[b]))
    return metrics.compare([per[a][s] for s in seeds], [per[b][s] for s in seeds])


def describe(rows: Sequence[dict], a: str, b: str, metric: str = "macro_f1") -> str:
    """`compare` in words, e.g. "+0.034 (95% CI +0.012 to +0.051, 5 seeds): better"."""
    return metrics.in_words(compare(rows, a, b, metric))


def budget_gains(run: Mapping) -> dict[str, dict[float, float]]:
    """Network -> {factor: validation accuracy with factor x the budget minus with the budget}."""
    check = run.get("budget_check") if isinstance(run, Mapping) else None
    if not check:
        raise ValueError("run has no budget check; expected a run_seed result computed with "
                         "check_factors=(...)")
    base = {r["network"]: r["val_accuracy"] for r in check if r["factor"] == 1.0}
    out: dict[str, dict[float, float]] = {}
    for r in check:
        if r["factor"] != 1.0:
            out.setdefault(r["network"], {})[r["factor"]] = r["val_accuracy"] - base[r["network"]]
    return out


def results(summary: Sequence[dict], runs: Sequence[dict]) -> dict:
    """The numbers to save: `<method>_<key>` per key of SAVED, best_method, teacher, the tuned
    late-fusion weights, budget.

    The budget keys, `budget_x<factor>_gain_<network>`, come from `budget_gains` of the first
    run, when it was computed with check_factors.
    """
    runs = _check_runs(runs)
    if not summary:
        raise ValueError("summary is empty; expected the output of summary_rows")
    out = {f"{r['method']}_{key}": r[key] for r in summary for key in SAVED}
    out["best_method"] = summary[0]["method"]
    out["seeds"] = len(runs)
    for key in ("val_accuracy", "test_accuracy", "agreement_unlabelled"):
        values = [r["teacher"][key] for r in runs]
        out[f"teacher_{key}"] = float(np.mean(values))
        out[f"teacher_{key}_std"] = float(np.std(values))
    out["teacher_is_transfer"] = sum(r["teacher"]["name"] == "image_transfer" for r in runs)
    out["late_tuned_w"] = float(np.mean([r["late_w"] for r in runs]))
    out["late_pretrained_tuned_w"] = float(np.mean([r["late_pretrained_w"] for r in runs]))
    if runs[0].get("budget_check") and len({r["factor"] for r in runs[0]["budget_check"]}) > 1:
        for network, gains in budget_gains(runs[0]).items():
            for factor, gain in gains.items():
                out[f"budget_x{factor:g}_gain_{network}"] = float(gain)
    return out
