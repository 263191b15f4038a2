"""The capstone experiment: every method of notebooks 01-05 on one split, one labelled set per seed.

For each seed, `run_seed` draws `labels_per_class` labelled training pairs per class and trains
every method on them (the cross-modal student on the audio of the other, unlabelled, training
pairs), choosing the late-fusion weight and the student's teacher on the validation split only,
and returns each method's test probabilities, training seconds, batches and trainable weights.
The methods are those of the helpers reused here: `transfer` (parameter transfer), `features`
(probe), `crossmodal` (student), `fusion` (early and late fusion, and the encoder of every audio
network trained from scratch) and `finetune` (the multimodal model on pretrained encoders).

Equal effort: every network trained by gradient descent gets the same budget, `steps` batches
of `batch_size`, whether it starts from random weights (the scratch models, early fusion, the
student) or from pretrained ones (fine-tuning after a convex head fit). Budgets count batches,
not epochs, because the labelled set (e.g. 200 pairs) and the student's unlabelled set (e.g. 878
pairs) differ in size.
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable, Mapping, Sequence

import keras
import numpy as np

from . import crossmodal, features, fusion, metrics, transfer
from . import finetune as ft
from .data import Dataset
from .metrics import evaluate, summarize
from .models import HEAD, classifier, count_params
from .training import check_inputs, fit_steps, predict_proba

# Every method, in the order of the notebooks that introduce them.
METHODS = ("image_scratch", "audio_scratch", "transfer_frozen", "transfer_finetuned", "probe",
           "crossmodal_student", "early", "late_equal", "late_tuned", "finetuned_multimodal")
# Input pooling of every audio network trained from scratch (notebook 04's encoder): averaging
# 4 x 4 patches of a noisy spectrogram smooths white noise and makes each batch cheaper.
SCRATCH_POOL = {"audio": 4}
# Per profile: seeds; the budget of every network (batches of batch_size); Adam learning rates
# for training from scratch on labels (notebook 01's), for distillation and for fine-tuning
# pretrained layers (notebook 05's stage 2).
BUDGETS = {
    "fast": {"seeds": 3, "steps": 140, "batch_size": 32, "lr": 1e-2, "distill_lr": 1e-3,
             "tune_lr": 1e-3},
    "full": {"seeds": 5, "steps": 280, "batch_size": 32, "lr": 1e-2, "distill_lr": 1e-3,
             "tune_lr": 1e-3},
}
# The networks trained from random weights, which `run_seed(check_factors=...)` retrains with
# other budgets to show whether theirs was enough.
SCRATCH = ("image_scratch", "audio_scratch", "early", "crossmodal_student")
_INTS = ("seeds", "steps", "batch_size")
_RATES = ("lr", "distill_lr", "tune_lr")
SUMMARY_METRICS = ("accuracy", "macro_recall", "macro_f1")
# Saved per method as `<method>_<key>`.
SAVED = ("accuracy", "accuracy_std", "macro_recall", "macro_recall_std", "macro_f1",
         "macro_f1_std", "seconds", "params", "steps")


def _check_int(value: object, name: str, low: int) -> int:
    """`value` as an int >= low; a bool or anything else raises ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name}={value!r} should be an int >= {low}")
    return int(value)


def check_budget(budget: object) -> dict:
    """A copy of `budget` (see BUDGETS) with every key present and each value in range."""
    if not isinstance(budget, Mapping):
        raise TypeError(f"budget is a {type(budget).__name__}; expected a dict like "
                        "BUDGETS['fast']")
    want = set(_INTS) | set(_RATES)
    if set(budget) != want:
        raise ValueError(f"budget has keys {sorted(budget)}; expected exactly {sorted(want)} "
                         "(see capstone.BUDGETS)")
    out: dict = {key: _check_int(budget[key], f"budget[{key!r}]", 1) for key in _INTS}
    for key in _RATES:
        value = budget[key]
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < 1:
            raise ValueError(f"budget[{key!r}]={value!r} should be a learning rate in (0, 1)")
        out[key] = float(value)
    return out


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Batches in one pass over n examples, the last one topped up to a full batch."""
    n, batch_size = _check_int(n, "n", 1), _check_int(batch_size, "batch_size", 1)
    return math.ceil(n / min(batch_size, n))


def epochs_for(steps: int, n: int, batch_size: int) -> int:
    """Whole passes over n examples closest to `steps` batches (at least one)."""
    steps = _check_int(steps, "steps", 1)
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


def _scratch_builders(shapes: dict) -> dict[str, Callable[[int], keras.Model]]:
    """Name -> function(seed) building a network trained from scratch, with fresh weights."""
    def single(m: str) -> Callable[[int], keras.Model]:
        def build(seed: int) -> keras.Model:
            keras.utils.set_random_seed(seed)
            encoder = fusion.modality_encoder(shapes[m], pool=SCRATCH_POOL.get(m, 1))
            return classifier(encoder, 10)
        return build

    return {"image_scratch": single("image"), "audio_scratch": single("audio"),
            "crossmodal_student": single("audio"),
            "early": lambda seed: fusion.early_fusion_model(shapes, pool=SCRATCH_POOL, seed=seed)}


def build_models(
    shapes: Mapping[str, Sequence[int]], sources: Mapping[str, keras.Model]
) -> dict[str, object]:
    """The Keras models of every method, built once; `run_seed` resets their weights per seed.

    Reusing them across seeds skips Keras' tracing of a new train step (about 1-3 s per model
    on two CPU cores). Keys: "image_scratch", "audio_scratch", "early", "crossmodal_student",
    "image_transfer" (the transferred image model, a candidate teacher), "transfer_frozen",
    "transfer_finetuned", "multimodal" (every layer but BatchNorm trainable), the pretrained
    starting weights "<name>_start", and "shapes".
    """
    sources = _check_sources(sources)
    if not isinstance(shapes, Mapping) or set(shapes) != {"image", "audio"}:
        raise ValueError(f"shapes={shapes!r}; expected {{'image': shape, 'audio': shape}}")
    shapes = {m: tuple(int(d) for d in s) for m, s in shapes.items()}
    models: dict[str, object] = {name: build(0)
                                 for name, build in _scratch_builders(shapes).items()}
    models["image_transfer"] = transfer.transfer_model("frozen", sources["image"],
                                                       input_shape=shapes["image"])
    for method in ("frozen", "finetuned"):
        models[f"transfer_{method}"] = transfer.transfer_model(method, sources["audio"],
                                                               input_shape=shapes["audio"])
    models["multimodal"] = ft.set_schedule(ft.pretrained_fusion_model(sources, shapes), "all")
    for name in ("transfer_finetuned", "multimodal"):
        models[f"{name}_start"] = models[name].get_weights()
    models["shapes"] = shapes
    return models


def _fused_head(model: keras.Model, x: dict, y: np.ndarray) -> None:
    """Fit a multimodal model's head as a logistic regression on its fused encoder features."""
    fused = np.concatenate(list(fusion.modality_features(model, x).values()), axis=1)
    model.get_layer(HEAD).set_weights(list(transfer.logistic_head(fused, y, 10, 1.0)))


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
    """Train every method of METHODS on one labelled draw; test probabilities and costs.

    `data`: Datasets "train", "val", "test" with "image" and "audio"; `sources`: pretrained
    classifiers {"image": ..., "audio": ...}; `budget`: see BUDGETS. `cache`: a dict that holds
    the models between seeds (filled on the first call, see `build_models`). Returns {"seed",
    "methods": name -> {"probs" (test, n x 10), "seconds", "steps", "params"}, "late_w",
    "teacher" (which image model taught the student and how good it was), "fit" (each trained
    network's accuracy on its own training targets), "val" (validation accuracy of each
    network trained from scratch), "budget_check"}. With `check_factors` (e.g. (0.5, 2)) the
    networks of SCRATCH are trained again, from the same start, for each factor times the
    budget, and "budget_check" lists their validation accuracy per budget (the labels of the
    validation split are used for this report only, never to choose anything).
    """
    data = _check_data(data)
    sources = _check_sources(sources)
    seed = _check_int(seed, "seed", 0)
    labels_per_class = _check_int(labels_per_class, "labels_per_class", 1)
    budget = check_budget(budget)
    if cache is not None and not isinstance(cache, dict):
        raise TypeError(f"cache is a {type(cache).__name__}; expected a dict or None")
    if isinstance(check_factors, (str, bytes)) or not isinstance(check_factors, Sequence) or any(
        isinstance(f, bool) or not isinstance(f, numbers.Real) or not f > 0
        for f in check_factors
    ):
        raise ValueError(f"check_factors={check_factors!r}; expected a list of positive numbers "
                         "(multiples of the budget), e.g. (0.5, 2)")
    train, val, test = data["train"], data["val"], data["test"]
    shapes = {m: tuple(v.shape[1:]) for m, v in train.x.items()}
    models = cache if cache is not None else {}
    key = (shapes, id(sources["image"]), id(sources["audio"]))
    if not models:
        models.update(build_models(shapes, sources), key=key)
    elif models.get("key") != key:
        raise ValueError(f"cache holds models built for other data or sources (shapes "
                         f"{models.get('shapes')}); the data has shapes {shapes}: use a new "
                         "cache (e.g. {}) for other data or sources")
    idx = transfer.few_shot_indices(train.y, labels_per_class, seed=seed)
    unlabelled = np.setdiff1d(np.arange(train.n), idx)
    if len(unlabelled) == 0:
        raise ValueError(f"labels_per_class={labels_per_class} labels every training pair; the "
                         "cross-modal student needs unlabelled pairs, choose fewer labels")
    x, y = {m: v[idx] for m, v in train.x.items()}, train.y[idx]
    builders = _scratch_builders(shapes)
    out: dict[str, dict] = {}
    fitted: dict[str, float] = {}
    trainers: dict[str, Callable[[int], int]] = {}  # network -> train(steps) from fresh weights
    inputs = {"image_scratch": "image", "audio_scratch": "audio", "early": None,
              "crossmodal_student": "audio"}

    def pick(name: str, d: dict) -> np.ndarray | dict:
        return d if inputs[name] is None else d[inputs[name]]

    def val_accuracy(name: str) -> float:
        return evaluate(val.y, predict_proba(models[name], pick(name, val.x)))["accuracy"]

    def record(name: str, seconds: float, probs: np.ndarray, steps: int, params: int) -> None:
        out[name] = {"probs": probs, "seconds": float(seconds), "steps": int(steps),
                     "params": int(params)}

    # 1. from scratch: one model per modality and early fusion (notebooks 01 and 04)
    for name in ("image_scratch", "audio_scratch", "early"):
        model = models[name]

        def train_labels(steps: int, name=name, model=model) -> int:
            model.set_weights(builders[name](seed).get_weights())
            fit_steps(model, pick(name, x), y, steps=steps, lr=budget["lr"], seed=seed,
                      batch_size=budget["batch_size"])
            return steps

        trainers[name] = train_labels
        t = time.perf_counter()
        steps = train_labels(budget["steps"])
        seconds = time.perf_counter() - t
        fitted[name] = evaluate(y, predict_proba(model, pick(name, x)))["accuracy"]
        record(name, seconds, predict_proba(model, pick(name, test.x)), steps,
               count_params(model))

    # 2. late fusion of the two scratch models, w = 0.5 or tuned on validation (notebook 04)
    img, aud = models["image_scratch"], models["audio_scratch"]
    w = fusion.best_weight(predict_proba(img, val.x["image"]), predict_proba(aud, val.x["audio"]),
                           val.y)
    pair = [out["image_scratch"]["probs"], out["audio_scratch"]["probs"]]
    for name, weight in (("late_equal", 0.5), ("late_tuned", w)):
        record(name, out["image_scratch"]["seconds"] + out["audio_scratch"]["seconds"],
               fusion.late_fusion(pair, weight),
               out["image_scratch"]["steps"] + out["audio_scratch"]["steps"],
               out["image_scratch"]["params"] + out["audio_scratch"]["params"])

    # 3. parameter transfer on audio: frozen encoder + logistic head, then fine-tuned (nb 01)
    model = models["transfer_frozen"]
    t = time.perf_counter()
    transfer.fit_linear_head(model, x["audio"], y)
    record("transfer_frozen", time.perf_counter() - t, predict_proba(model, test.x["audio"]), 0,
           count_params(model))
    model = models["transfer_finetuned"]
    model.set_weights(models["transfer_finetuned_start"])
    t = time.perf_counter()
    transfer.fit_linear_head(model, x["audio"], y)
    steps = budget["steps"]
    fit_steps(model, x["audio"], y, steps=steps, lr=budget["tune_lr"], seed=seed,
              batch_size=budget["batch_size"])
    seconds = time.perf_counter() - t
    fitted["transfer_finetuned"] = evaluate(y, predict_proba(model, x["audio"]))["accuracy"]
    record("transfer_finetuned", seconds, predict_proba(model, test.x["audio"]), steps,
           count_params(model))

    # 4. probe: logistic regression on both frozen encoders' features (notebook 02)
    t = time.perf_counter()
    feats = np.concatenate([features.encode(sources[m], x[m]) for m in ("image", "audio")], 1)
    probe = features.make_probe("logistic").fit(feats, y)
    seconds = time.perf_counter() - t
    test_feats = np.concatenate([features.encode(sources[m], test.x[m])
                                 for m in ("image", "audio")], axis=1)
    record("probe", seconds, probe.predict_proba(test_feats), 0, feats.shape[1] * 10 + 10)

    # 5. cross-modal student (notebook 02): the image model that is better on validation (the
    # scratch one, or the transferred one with a logistic head) teaches an audio network on
    # the unlabelled pairs; the student sees no audio label, only the teacher's soft targets
    t = time.perf_counter()
    transfer.fit_linear_head(models["image_transfer"], x["image"], y)
    candidates = {"image_scratch": img, "image_transfer": models["image_transfer"]}
    teacher_val = {name: evaluate(val.y, predict_proba(m, val.x["image"]))["accuracy"]
                   for name, m in candidates.items()}
    chosen = max(teacher_val, key=teacher_val.get)
    teacher = candidates[chosen]
    teacher_probs = predict_proba(teacher, train.x["image"][unlabelled])
    targets = crossmodal.soft_targets(teacher_probs)
    student, audio_u = models["crossmodal_student"], train.x["audio"][unlabelled]

    def train_student(steps: int) -> int:
        student.set_weights(builders["crossmodal_student"](seed).get_weights())
        epochs = epochs_for(steps, len(unlabelled), budget["batch_size"])
        crossmodal.distill(student, audio_u, targets, epochs=epochs, lr=budget["distill_lr"],
                           seed=seed, batch_size=budget["batch_size"])
        return math.ceil(len(unlabelled) * epochs / min(budget["batch_size"], len(unlabelled)))

    trainers["crossmodal_student"] = train_student
    steps = train_student(budget["steps"])
    seconds = time.perf_counter() - t
    fitted["crossmodal_student"] = crossmodal.agreement(predict_proba(student, audio_u),
                                                        teacher_probs.argmax(axis=1))
    record("crossmodal_student", seconds, predict_proba(student, test.x["audio"]), steps,
           count_params(student))
    teacher_info = {
        "name": chosen, "val_accuracy": teacher_val[chosen], "candidates_val": teacher_val,
        "test_accuracy": evaluate(test.y, predict_proba(teacher, test.x["image"]))["accuracy"],
        "agreement_unlabelled": crossmodal.agreement(teacher_probs, train.y[unlabelled]),
        "unlabelled_pairs": int(len(unlabelled)),
    }

    # 6. multimodal fine-tuning (notebook 05): a new head on the frozen pretrained encoders,
    # fitted as a logistic regression like transfer.fit_linear_head, then every layer but
    # BatchNorm at a low learning rate
    model = models["multimodal"]
    model.set_weights(models["multimodal_start"])
    t = time.perf_counter()
    _fused_head(model, x, y)
    steps = budget["steps"]
    fit_steps(model, x, y, steps=steps, lr=budget["tune_lr"], seed=seed,
              batch_size=budget["batch_size"])
    seconds = time.perf_counter() - t
    fitted["finetuned_multimodal"] = evaluate(y, predict_proba(model, x))["accuracy"]
    record("finetuned_multimodal", seconds, predict_proba(model, test.x), steps,
           count_params(model))

    # 7. report only: would another budget have changed the networks trained from scratch?
    # (last, because retraining overwrites the weights that steps 2 and 5 used)
    val_scores = {name: val_accuracy(name) for name in SCRATCH}
    check = [{"network": name, "factor": 1.0, "steps": out[name]["steps"],
              "val_accuracy": val_scores[name]} for name in SCRATCH]
    for factor in check_factors:
        for name in SCRATCH:
            steps = trainers[name](max(1, round(factor * budget["steps"])))
            check.append({"network": name, "factor": float(factor), "steps": steps,
                          "val_accuracy": val_accuracy(name)})
    return {"seed": seed, "methods": {name: out[name] for name in METHODS}, "late_w": float(w),
            "teacher": teacher_info, "fit": fitted, "val": val_scores,
            "budget_check": sorted(check, key=lambda r: (SCRATCH.index(r["network"]),
                                                         r["factor"]))}


def _check_runs(runs: object) -> list[dict]:
    """The run_seed results as a list; refuse anything else."""
    if isinstance(runs, (str, bytes)) or not isinstance(runs, Sequence) or not runs or not all(
        isinstance(r, Mapping) and {"seed", "methods", "teacher", "late_w"} <= set(r)
        for r in runs
    ):
        raise ValueError(f"runs={type(runs).__name__}; expected a non-empty list of run_seed "
                         "results")
    return list(runs)


def result_rows(runs: Sequence[dict], y_test: np.ndarray) -> list[dict]:
    """One row per method and seed: test metrics (`metrics.evaluate`), seconds, steps, params."""
    runs = _check_runs(runs)
    rows = []
    for run in runs:
        for name, r in run["methods"].items():
            probs, n = check_inputs(r["probs"], f"probs of {name}")
            if n != len(y_test):
                raise ValueError(f"probs of {name} (seed {run['seed']}) have {n} rows but y_test "
                                 f"has {len(y_test)} labels; expected the same test split")
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
    """The numbers to save: `<method>_<key>` per key of SAVED, best_method, teacher, budget.

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
    if runs[0].get("budget_check") and len({r["factor"] for r in runs[0]["budget_check"]}) > 1:
        for network, gains in budget_gains(runs[0]).items():
            for factor, gain in gains.items():
                out[f"budget_x{factor:g}_gain_{network}"] = float(gain)
    return out
