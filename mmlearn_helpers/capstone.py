"""The capstone experiment: every method of notebooks 01-05 on one split, one labelled set per seed.

The pairs carry three modalities of the same digit: an image, a spoken clip and the digit
written as text (`load_dataset(..., text=True)`, with writing noise). For each seed, `run_seed`
draws `labels_per_class` labelled training pairs per class and runs every method on them, one
small function per method below (the cross-modal student learns from the audio of the other,
unlabelled, training pairs; the zero-shot methods use no target label at all). Anything a
method chooses (a late-fusion weight, the student's teacher) is chosen on the validation split
only. Each method returns its test and validation probabilities, training seconds, batches and
trainable weights. The methods are those of the helpers reused here: `transfer` (zero-shot and
parameter transfer), `features` (probe), `crossmodal` (student), `fusion` (early and late
fusion, and the encoder of the scratch networks of notebook 04), `finetune` (the multimodal
model on pretrained encoders), `chars2vec` (a real pretrained English word encoder, frozen) and
`simplex` (the weights of three-modality late fusion).

Equal effort: every network trained by gradient descent gets the same budget, `steps` batches
of `batch_size`, whether it starts from random weights (the scratch models, early fusion, the
student) or from pretrained ones (fine-tuning after a convex head fit). Budgets count batches,
not epochs, because the labelled set (e.g. 200 pairs) and the student's unlabelled set (e.g. 878
pairs) differ in size.

Same architecture: "transfer vs scratch" compares `transfer_frozen` / `transfer_finetuned` with
`audio_scratch_same_arch`, the speech source's own architecture with fresh weights, so the
comparison changes the starting weights only; `text_scratch` is the text source's architecture
with fresh weights, for the same reason. `audio_scratch` is notebook 04's pooled encoder, the
audio expert of the scratch fusions (early, late) and the student's architecture.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import keras
import numpy as np

from . import chars2vec, crossmodal, features, fusion, metrics, simplex, transfer
from . import finetune as ft
from .checks import check_float, check_int, check_rate
from .data import Dataset
from .data.dataset import N_CLASSES
from .data.text import MAX_LEN, check_strings, with_ids
from .metrics import evaluate, summarize
from .models import HEAD, classifier, count_params
from .training import check_inputs, fit_steps, predict_proba

MODALITIES = ("image", "audio", "text")
IMAGE_AUDIO = ("image", "audio")
# Every method, in the order of the notebooks that introduce them: image and audio, then text
# and the three-modality methods.
METHODS = ("zero_shot_image", "zero_shot_audio", "image_scratch", "audio_scratch",
           "audio_scratch_same_arch", "image_transfer_frozen", "transfer_frozen",
           "transfer_finetuned", "probe", "crossmodal_student", "early", "late_equal",
           "late_tuned", "zero_shot_late", "late_pretrained_equal", "late_pretrained_tuned",
           "finetuned_multimodal", "zero_shot_text", "text_scratch", "text_transfer_frozen",
           "chars2vec_probe", "probe3", "early3", "late3_equal", "late3_tuned",
           "late3_pretrained_equal", "late3_pretrained_tuned")
# The methods that read one modality at test time: the candidates for "the best single
# modality", a reference that is chosen on validation.
SINGLE = ("zero_shot_image", "zero_shot_audio", "image_scratch", "audio_scratch",
          "audio_scratch_same_arch", "image_transfer_frozen", "transfer_frozen",
          "transfer_finetuned", "crossmodal_student", "zero_shot_text", "text_scratch",
          "text_transfer_frozen", "chars2vec_probe")
# What each network trained on labels (or distilled) reads: a modality or a tuple of them.
_INPUT = {"image_scratch": "image", "audio_scratch": "audio", "audio_scratch_same_arch": "audio",
          "text_scratch": "text", "early": IMAGE_AUDIO, "early3": MODALITIES,
          "crossmodal_student": "audio"}
# Parameter transfer with a logistic head on a frozen source encoder (notebook 01): method ->
# (its model's key, the modality it reads).
_FROZEN = {"image_transfer_frozen": ("image_transfer", "image"),
           "transfer_frozen": ("transfer_frozen", "audio"),
           "text_transfer_frozen": ("text_transfer_frozen", "text")}
# Late fusions: experts -> (the equal-weight method, the method tuned on validation).
_LATE = {("image_scratch", "audio_scratch"): ("late_equal", "late_tuned"),
         ("image_transfer_frozen", "transfer_finetuned"): ("late_pretrained_equal",
                                                           "late_pretrained_tuned"),
         ("zero_shot_image", "zero_shot_audio"): ("zero_shot_late",),
         ("image_scratch", "audio_scratch", "text_scratch"): ("late3_equal", "late3_tuned"),
         ("image_transfer_frozen", "transfer_finetuned", "text_transfer_frozen"): (
             "late3_pretrained_equal", "late3_pretrained_tuned")}
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
           "crossmodal_student", "text_scratch", "early3")
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
    """The train, val and test Datasets, each with image, audio and text (strings) per pair."""
    if not isinstance(data, Mapping) or not {"train", "val", "test"} <= set(data):
        got = sorted(data) if isinstance(data, Mapping) else type(data).__name__
        raise ValueError(f"data={got!r}; expected a dict with the Datasets 'train', 'val' and "
                         "'test'")
    first = None
    for split in ("train", "val", "test"):
        d = data[split]
        if not isinstance(d, Dataset):
            raise TypeError(f"data[{split!r}] is a {type(d).__name__}; expected a Dataset")
        if set(d.x) != set(MODALITIES):
            raise ValueError(f"data[{split!r}] has modalities {sorted(d.x)}; expected "
                             f"{sorted(MODALITIES)} (load_dataset(..., text=True))")
        check_strings(d.x["text"], f"data[{split!r}].x['text']")
        shapes = {m: tuple(v.shape[1:]) for m, v in d.x.items()}
        first = first or shapes
        if shapes != first:
            raise ValueError(f"data[{split!r}] has input shapes {shapes} but data['train'] has "
                             f"{first}; expected the same shapes in every split")
    return {split: data[split] for split in ("train", "val", "test")}


def _check_sources(sources: object) -> dict[str, keras.Model]:
    """The pretrained classifiers {"image": ..., "audio": ..., "text": ...}."""
    if not isinstance(sources, Mapping) or set(sources) != set(MODALITIES):
        raise ValueError(f"sources={sources!r}; expected a dict {{'image': ..., 'audio': ..., "
                         "'text': ...}} of pretrained classifiers (transfer.pretrained_source)")
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

    def same_arch(m: str) -> Callable[[int], keras.Model]:  # the source's, fresh weights
        return lambda seed: transfer.transfer_model("scratch", sources[m], input_shape=shapes[m],
                                                    seed=seed)

    def early(modalities: tuple[str, ...]) -> Callable[[int], keras.Model]:
        return lambda seed: fusion.early_fusion_model({m: shapes[m] for m in modalities},
                                                      pool=SCRATCH_POOL, seed=seed)

    return {"image_scratch": single("image"), "audio_scratch": single("audio"),
            "audio_scratch_same_arch": same_arch("audio"), "crossmodal_student": single("audio"),
            "early": early(IMAGE_AUDIO), "text_scratch": same_arch("text"),
            "early3": early(MODALITIES)}


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
    on two CPU cores). Keys: the networks trained from scratch (SCRATCH), the frozen transferred
    models of `_FROZEN` ("image_transfer" is also a candidate teacher and the image expert of
    the pretrained late fusions), "transfer_finetuned", "multimodal" (image and audio
    encoders, every layer but BatchNorm trainable), "zero_shot_<modality>" (the sources as
    they are), the pretrained starting weights "<name>_start", and "shapes".
    """
    sources = _check_sources(sources)
    if not isinstance(shapes, Mapping) or set(shapes) != set(MODALITIES):
        raise ValueError(f"shapes={shapes!r}; expected {{'image': shape, 'audio': shape, "
                         "'text': shape}}")
    shapes = {m: tuple(int(d) for d in s) for m, s in shapes.items()}
    models: dict[str, object] = {name: build(0)
                                 for name, build in _scratch_builders(shapes, sources).items()}
    for key, m in _FROZEN.values():
        models[key] = transfer.transfer_model("frozen", sources[m], input_shape=shapes[m])
    models["transfer_finetuned"] = transfer.transfer_model("finetuned", sources["audio"],
                                                           input_shape=shapes["audio"])
    pair = {m: sources[m] for m in IMAGE_AUDIO}
    models["multimodal"] = ft.set_schedule(ft.pretrained_fusion_model(
        pair, {m: shapes[m] for m in IMAGE_AUDIO}), "all")
    for name in ("transfer_finetuned", "multimodal"):
        models[f"{name}_start"] = models[name].get_weights()
    for m in MODALITIES:
        models[f"zero_shot_{m}"] = _zero_shot_reader(sources[m], shapes[m])
    models["shapes"] = shapes
    return models


def _text_inputs(data: dict) -> dict:
    """The text as the methods read it: character ids in every split ("inputs"), and chars2vec's
    embeddings of the val and test strings, each front-padded to the longest string of the
    data ("pad_to"), as chars2vec pads a list."""
    pad_to = max(len(t) for d in data.values() for t in d.x["text"])
    return {"inputs": {split: with_ids(d) for split, d in data.items()}, "pad_to": pad_to,
            "chars2vec": {split: chars2vec.embed(list(data[split].x["text"]), pad_to=pad_to)
                          for split in ("val", "test")}}


def _cached_models(cache: dict | None, data: dict, sources: dict) -> dict:
    """The models of `cache` and the text inputs of `data`, built on first use; refuse a cache
    built for other data or sources."""
    if cache is not None and not isinstance(cache, dict):
        raise TypeError(f"cache is a {type(cache).__name__}; expected a dict or None")
    models = cache if cache is not None else {}
    shapes = {m: tuple(data["train"].x[m].shape[1:]) for m in IMAGE_AUDIO} | {"text": (MAX_LEN,)}
    key = (tuple(shapes.items()), *(id(sources[m]) for m in MODALITIES),
           *(id(d) for d in data.values()))
    if not models:
        models.update(build_models(shapes, sources), key=key, **_text_inputs(data))
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


def _reads(x: dict, reads: str | tuple[str, ...]) -> object:
    """The input of a model that reads one modality (its array) or several (a dict of them)."""
    return x[reads] if isinstance(reads, str) else {m: x[m] for m in reads}


@dataclass
class _Draw:
    """One seed's labelled draw, the models, and what the methods have produced so far."""

    train: Dataset  # text as character ids, as val and test
    val: Dataset
    test: Dataset
    strings: np.ndarray  # the training pairs' text as written (chars2vec reads strings)
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

    def predict(self, model: keras.Model, reads: str | tuple[str, ...]) -> tuple:
        """(test, validation) probabilities of `model` reading one modality or a tuple of them."""
        return tuple(predict_proba(model, _reads(s.x, reads)) for s in (self.test, self.val))

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
    models = _cached_models(cache, data, sources)
    train, val, test = (models["inputs"][s] for s in ("train", "val", "test"))
    idx = transfer.few_shot_indices(train.y, labels_per_class, seed=seed)
    unlabelled = np.setdiff1d(np.arange(train.n), idx)
    if len(unlabelled) == 0:
        raise ValueError(f"labels_per_class={labels_per_class} labels every training pair; the "
                         "cross-modal student needs unlabelled pairs, choose fewer labels")
    return _Draw(train, val, test, data["train"].x["text"], sources, models,
                 _scratch_builders(models["shapes"], sources), budget, seed, idx, unlabelled)


def _zero_shot(d: _Draw) -> None:
    """Zero-shot (notebook 01): the source classifiers as they are, no target label at all."""
    for m in MODALITIES:
        d.record(f"zero_shot_{m}", d.predict(d.models[f"zero_shot_{m}"], m), 0.0, 0, 0)


def _train_scratch(d: _Draw, name: str, steps: int) -> int:
    """Train network `name` from its fresh weights for `steps` batches of the labelled pairs."""
    model = d.models[name]
    model.set_weights(d.builders[name](d.seed).get_weights())
    fit_steps(model, _reads(d.x, _INPUT[name]), d.y, steps=steps, lr=d.budget["lr"],
              seed=d.seed, batch_size=d.budget["batch_size"])
    return steps


def _scratch(d: _Draw, name: str) -> None:
    """A network from random weights on the labelled pairs (notebooks 01 and 04)."""
    t = time.perf_counter()
    steps = _train_scratch(d, name, d.budget["steps"])
    seconds = time.perf_counter() - t
    model, reads = d.models[name], _INPUT[name]
    d.trainers[name] = functools.partial(_train_scratch, d, name)
    d.fitted[name] = evaluate(d.y, predict_proba(model, _reads(d.x, reads)))["accuracy"]
    d.record(name, d.predict(model, reads), seconds, steps, count_params(model))


def _late(d: _Draw, experts: tuple[str, ...]) -> list[float]:
    """Late fusion of one expert per modality (notebook 04); returns the tuned weights.

    The methods `_LATE[experts]`: the first weighs every expert equally, the second (when
    there is one) uses the weights on the simplex best on validation (`simplex.best_weights`,
    the w of `fusion.best_weight` for two experts). Costs are the experts' together.
    """
    outs = [d.out[e] for e in experts]
    names = _LATE[experts]
    equal = [1 / len(outs)] * len(outs)
    tuned = (simplex.best_weights([o["val_probs"] for o in outs], d.val.y).tolist()
             if len(names) > 1 else equal)
    for name, weights in zip(names, (equal, tuned), strict=False):
        probs = tuple(fusion.late_fusion([o[k] for o in outs], weights)
                      for k in ("probs", "val_probs"))
        d.record(name, probs, *(sum(o[k] for o in outs) for k in ("seconds", "steps", "params")))
    return tuned


def _transfer(d: _Draw, frozen: tuple[str, ...]) -> None:
    """Parameter transfer (notebook 01): the methods `frozen`, each a frozen source encoder with
    a logistic head (see _FROZEN)."""
    for name in frozen:
        key, m = _FROZEN[name]
        t = time.perf_counter()
        transfer.fit_linear_head(d.models[key], d.x[m], d.y)
        seconds = time.perf_counter() - t
        d.record(name, d.predict(d.models[key], m), seconds, 0, count_params(d.models[key]))


def _finetune(d: _Draw) -> None:
    """`transfer_finetuned` (notebook 01): a logistic head on the frozen audio encoder, then
    every layer but BatchNorm for the budget at the fine-tuning rate."""
    name, m = "transfer_finetuned", "audio"
    model, x, y = d.models[name], d.x[m], d.y
    model.set_weights(d.models[f"{name}_start"])
    t = time.perf_counter()
    transfer.fit_linear_head(model, x, y)
    fit_steps(model, x, y, steps=d.budget["steps"], lr=d.budget["tune_lr"], seed=d.seed,
              batch_size=d.budget["batch_size"])
    seconds = time.perf_counter() - t
    d.fitted[name] = evaluate(y, predict_proba(model, x))["accuracy"]
    d.record(name, d.predict(model, m), seconds, d.budget["steps"], count_params(model))


def _probe_features(sources: dict, x: dict, modalities: tuple[str, ...]) -> np.ndarray:
    """The frozen source encoders' features of `modalities`, concatenated."""
    return np.concatenate([features.encode(sources[m], x[m]) for m in modalities], 1)


def _probe(d: _Draw, name: str, modalities: tuple[str, ...]) -> None:
    """Probe (notebook 02): logistic regression on the frozen encoders' features."""
    t = time.perf_counter()
    feats = _probe_features(d.sources, d.x, modalities)
    probe = features.make_probe("logistic").fit(feats, d.y)
    seconds = time.perf_counter() - t
    probs = tuple(probe.predict_proba(_probe_features(d.sources, s.x, modalities))
                  for s in (d.test, d.val))
    d.record(name, probs, seconds, 0, feats.shape[1] * 10 + 10)


def _chars2vec_probe(d: _Draw) -> None:
    """Probe on chars2vec's frozen eng_50 embeddings of the strings (notebook 02): a real
    pretrained English word encoder. Every string is front-padded to the longest of the data,
    as chars2vec pads a list, so its vector does not depend on the other strings embedded with
    it; the val and test embeddings are computed once (cache)."""
    t = time.perf_counter()
    feats = chars2vec.embed(list(d.strings[d.idx]), pad_to=d.models["pad_to"])
    probe = features.make_probe("logistic").fit(feats, d.y)
    seconds = time.perf_counter() - t
    probs = tuple(probe.predict_proba(d.models["chars2vec"][s]) for s in ("test", "val"))
    d.record("chars2vec_probe", probs, seconds, 0, feats.shape[1] * 10 + 10)


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
    model, x, y = d.models["multimodal"], _reads(d.x, IMAGE_AUDIO), d.y
    model.set_weights(d.models["multimodal_start"])
    t = time.perf_counter()
    _fused_head(model, x, y)
    fit_steps(model, x, y, steps=d.budget["steps"], lr=d.budget["tune_lr"], seed=d.seed,
              batch_size=d.budget["batch_size"])
    seconds = time.perf_counter() - t
    d.fitted["finetuned_multimodal"] = evaluate(y, predict_proba(model, x))["accuracy"]
    d.record("finetuned_multimodal", d.predict(model, IMAGE_AUDIO), seconds, d.budget["steps"],
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

    `data`: Datasets "train", "val", "test" with "image", "audio" and "text" (the strings of
    `load_dataset(..., text=True)`); `sources`: pretrained classifiers {"image": ..., "audio":
    ..., "text": ...}; `budget`: see BUDGETS. `cache`: a dict that holds the models and the
    text inputs between seeds (filled on the first call, see `build_models`). Returns {"seed",
    "methods": name -> {"probs" (test, n x 10), "val_probs" (validation), "seconds", "steps",
    "params"}, "weights" (per late fusion, its last method's weights, one per expert in the
    order of `_LATE`: tuned on validation, or equal for `zero_shot_late`), "teacher" (which
    image model taught the student and how good it was), "fit" (each trained network's
    accuracy on its own training targets), "val" (validation accuracy of each network trained
    from scratch), "budget_check"}. With `check_factors` (e.g. (0.5, 2)) the networks of
    SCRATCH are trained again, from the same start, for each factor times the budget, and
    "budget_check" lists their validation accuracy per budget (the labels of the validation
    split are used for this report only).
    """
    factors = _check_factors(check_factors)
    d = _draw(data, sources, seed, labels_per_class, budget, cache)
    _zero_shot(d)
    for name in ("image_scratch", "audio_scratch", "audio_scratch_same_arch", "early"):
        _scratch(d, name)
    _transfer(d, ("image_transfer_frozen", "transfer_frozen"))
    _finetune(d)
    _probe(d, "probe", IMAGE_AUDIO)
    teacher = _student(d)
    _multimodal(d)
    for name in ("text_scratch", "early3"):
        _scratch(d, name)
    _transfer(d, ("text_transfer_frozen",))
    _chars2vec_probe(d)
    _probe(d, "probe3", MODALITIES)
    weights = {_LATE[experts][-1]: _late(d, experts) for experts in _LATE}
    val_scores, check = _budget_check(d, factors)
    return {"seed": d.seed, "methods": {name: d.out[name] for name in METHODS},
            "weights": weights, "teacher": teacher, "fit": d.fitted, "val": val_scores,
            "budget_check": check}


def _check_runs(runs: object) -> list[dict]:
    """The run_seed results as a list; refuse anything else."""
    if isinstance(runs, (str, bytes)) or not isinstance(runs, Sequence) or not runs or not all(
        isinstance(r, Mapping) and {"seed", "methods", "teacher", "weights"} <= set(r)
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
    late-fusion weights (`<method>_w_<modality>`, mean over seeds), budget.

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
    for names in _LATE.values():
        if len(names) > 1:  # tuned: the mean weight of each expert's modality
            mean = np.mean([r["weights"][names[1]] for r in runs], axis=0)
            for m, w in zip(MODALITIES, mean, strict=False):
                out[f"{names[1]}_w_{m}"] = float(w)
    if runs[0].get("budget_check") and len({r["factor"] for r in runs[0]["budget_check"]}) > 1:
        for network, gains in budget_gains(runs[0]).items():
            for factor, gain in gains.items():
                out[f"budget_x{factor:g}_gain_{network}"] = float(gain)
    return out
