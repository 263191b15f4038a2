"""Structure transfer: reuse an architecture found on a source, or the weights learned there.

Each is measured against a start that owes nothing to the source. Two questions (both also
asked of text), one recipe per start, the same k-shot subsets for every start of a seed:

- Architecture: `search_structure` trains every candidate of a small search space (`CANDIDATES`:
  conv depth and width, pooling "average" or "flatten") from scratch on the *source* task in the
  target's regime (k labels per class) and scores it on held-out source speakers; `chosen` picks,
  per seed, the best by that source validation score alone. On the target, each candidate is
  trained from scratch (`compare_starts`); `choice_rows` turns those rows into "the structure
  chosen on the source" and "a candidate picked at random" (the mean over candidates), and
  `ranking` shows whether the source's order of the candidates predicts the target's.
- Weights: `compare_starts` trains starts whose weights come from a source (of the same or of
  another modality) with the from-scratch recipe or, for names in `fine_tune`, with a gentle one
  (`prepare_fine_tune`, then a low learning rate), against the same architecture from random
  weights.
- An image CNN on text: `text_start` builds the collection's 1-D character CNN or an image
  structure on the character embedding read as an image (`text_image_encoder`), whose
  `block{i}_conv` names take an image model's kernels (`start_from`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import keras
import numpy as np
from scipy.stats import spearmanr
from tqdm.auto import tqdm

from .checks import check_float, check_int, check_ints, check_labels, check_rate
from .data.dataset import N_CLASSES
from .device import in_scope
from .metrics import METRICS, evaluate, mean_std, summarize
from .models import (
    ENCODER,
    classifier,
    conv_encoder,
    count_params,
    encoder_of,
    mlp_encoder,
    text_encoder,
)
from .settings import cap
from .training import check_inputs, fit, predict_proba, walk_layers
from .transfer import cache_dir_default, copy_weights, few_shot_indices, fit_linear_head

Start = Callable[[int], keras.Model]

# The search space: name -> conv_encoder arguments. Depth and width grow together; "average"
# (global average pooling) keeps what was found but not where, "flatten" keeps both - on a
# spectrogram, which frequency band and which moment a feature came from.
CANDIDATES: dict[str, dict] = {
    "16-32 average": {"filters": (16, 32), "pooling": "average"},
    "16-32 flatten": {"filters": (16, 32), "pooling": "flatten"},
    "16-32-32 average": {"filters": (16, 32, 32), "pooling": "average"},
    "16-32-32 flatten": {"filters": (16, 32, 32), "pooling": "flatten"},
    "16-32-32-64 average": {"filters": (16, 32, 32, 64), "pooling": "average"},
    "16-32-32-64 flatten": {"filters": (16, 32, 32, 64), "pooling": "flatten"},
}
# The collection's default blueprint (`conv_encoder`'s defaults, the source models' encoder).
BLUEPRINT = "16-32-32 average"
CHOSEN, RANDOM = "chosen on the source", "random candidate (expected)"

# Models reused across calls, per (architecture, recipe): each is compiled once (see `make bench`)
# and gets a start's weights before every run.
_MODELS: dict[tuple, keras.Model] = {}
SEARCH_CACHE_FORMAT = 1


def conv_layer_names(model: keras.Model) -> list[str]:
    """Names of the Conv2D layers in the encoder of a `classifier`, in order (block{i}_conv)."""
    return [layer.name for layer in encoder_of(model).layers
            if isinstance(layer, keras.layers.Conv2D)]


def start_from(
    model: keras.Model, source: keras.Model, layers: Sequence[str] | None = None
) -> list[str]:
    """Copy encoder weights of the `source` classifier into `model`'s encoder by layer name.

    `layers=None` copies every encoder layer the two share (conv kernels and BatchNormalization
    with its statistics); a list (e.g. `conv_layer_names(source)`) copies only those. The head is
    left as it is. Returns the names copied (shape mismatches raise, see `copy_weights`).
    """
    return copy_weights(encoder_of(source), encoder_of(model), layers)


def matched_mlp_units(input_shape: Sequence[int], n_params: int, *,
                      n_classes: int = N_CLASSES) -> int:
    """Width of a one-hidden-layer `mlp_encoder` whose classifier has about `n_params` weights."""
    check_int(n_params, "n_params", low=1)
    n_in = int(np.prod(mlp_encoder(input_shape, (1,)).inputs[0].shape[1:]))
    # per hidden unit: n_in weights, 2 trainable BatchNorm weights, n_classes head weights
    return max(1, round((n_params - n_classes) / (n_in + 2 + n_classes)))


def _structure_options(structure: str | Mapping) -> dict:
    """`conv_encoder` arguments of `structure`: a name of CANDIDATES or a dict of them."""
    if isinstance(structure, str):
        if structure not in CANDIDATES:
            raise ValueError(f"structure={structure!r} is not a candidate; expected one of "
                             f"{list(CANDIDATES)} or a dict of conv_encoder arguments")
        structure = CANDIDATES[structure]
    if not isinstance(structure, Mapping):
        raise TypeError(f"structure={structure!r} is a {type(structure).__name__}; expected a "
                        "name of CANDIDATES or a dict such as {'filters': (16, 32)}")
    return dict(structure)


def conv_start(input_shape: Sequence[int], structure: str | Mapping = BLUEPRINT) -> Start:
    """make(seed) -> a `classifier` on a conv encoder of `structure`, fresh weights from seed.

    `structure` is a name of CANDIDATES or a dict of `conv_encoder` arguments.
    """
    options = _structure_options(structure)
    conv_encoder(input_shape, **options)  # refuse bad shapes or arguments now, not at seed 0

    def make(seed: int) -> keras.Model:
        keras.utils.set_random_seed(check_int(seed, "seed", low=0))
        return classifier(conv_encoder(input_shape, **options))

    return make


@in_scope
def text_image_encoder(
    max_len: int, vocab_size: int, structure: str | Mapping = BLUEPRINT, *, embed_dim: int = 16,
    name: str = ENCODER,
) -> keras.Model:
    """Character ids (max_len,) -> embedding read as a (max_len, embed_dim, 1) image -> 2-D convs.

    The image CNN's structure applied to text: `char_embedding` (as in `models.text_encoder`),
    then the layers of `conv_encoder` of `structure` (a name of CANDIDATES or a dict), with its
    names (`block{i}_conv`, `block{i}_bn`), so an image model's kernels copy in by name. Rows
    of the "image" are character positions, columns the embedding's dimensions.
    """
    max_len = check_int(max_len, "max_len", low=1)
    vocab_size = check_int(vocab_size, "vocab_size", low=2)
    embed_dim = check_int(embed_dim, "embed_dim", low=1)
    convs = conv_encoder((max_len, embed_dim, 1), **_structure_options(structure), name=name)
    inputs = keras.Input((max_len,), name=f"{name}_input")
    h = keras.layers.Embedding(vocab_size, embed_dim, name="char_embedding")(inputs)
    h = keras.layers.Reshape((max_len, embed_dim, 1), name="as_image")(h)
    for layer in convs.layers[1:]:  # the blueprint's blocks and pooling, in order
        h = layer(h)
    return keras.Model(inputs, h, name=name)


def text_start(max_len: int, vocab_size: int, structure: str | Mapping | None = None) -> Start:
    """make(seed) -> a `classifier` reading character ids, fresh weights from seed.

    `structure=None` is the collection's text structure (`models.text_encoder` with its
    defaults, the text source's: a 1-D character CNN); a name of CANDIDATES or a dict is that
    image structure on the embedding read as an image (`text_image_encoder`).
    """
    if structure is None:
        build = functools.partial(text_encoder, max_len, vocab_size)
    else:
        build = functools.partial(text_image_encoder, max_len, vocab_size, structure)
    build()  # refuse bad sizes or structures now, not at seed 0

    def make(seed: int) -> keras.Model:
        keras.utils.set_random_seed(check_int(seed, "seed", low=0))
        return classifier(build())

    return make


def candidate_starts(input_shape: Sequence[int], names: Sequence[str]) -> dict[str, Start]:
    """Name -> `conv_start` for each name of CANDIDATES in `names`, in that order."""
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise TypeError(f"names={names!r} is a {type(names).__name__}; expected a list of names "
                        "of CANDIDATES")
    if not names:
        raise ValueError("names is empty; expected at least one name of CANDIDATES")
    return {name: conv_start(input_shape, name) for name in names}


def _batchnorms(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    bn = keras.layers.BatchNormalization
    return [layer for layer in walk_layers(model) if isinstance(layer, bn)]


def refresh_batchnorm(model: keras.Model, x: np.ndarray) -> int:
    """Set every BatchNormalization's moving statistics to those of `x` (no labels needed).

    One forward pass in training mode with momentum 0: each layer's statistics become exactly
    those of its inputs on `x` (layer by layer, as in inference mode later). Weights are
    unchanged. Returns the number of layers refreshed.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"model is a {type(model).__name__}; expected a keras.Model")
    x, _ = check_inputs(x)
    layers = _batchnorms(model)
    saved = [(layer.trainable, layer.momentum) for layer in layers]
    for layer in layers:
        layer.trainable, layer.momentum = True, 0.0
    try:
        model(x, training=True)
    finally:
        for layer, (trainable, momentum) in zip(layers, saved, strict=True):
            layer.trainable, layer.momentum = trainable, momentum
    return len(layers)


def prepare_fine_tune(model: keras.Model, x: np.ndarray, y: np.ndarray) -> keras.Model:
    """The gentle recipe's first stage: BatchNorm refreshed on `x` and frozen, the head fitted.

    BatchNormalization takes the statistics of `x` (`refresh_batchnorm`) and runs in inference
    mode from then on; the head is a logistic regression on the encoder's features
    (`transfer.fit_linear_head`).
    """
    refresh_batchnorm(model, x)
    for layer in _batchnorms(model):
        layer.trainable = False
    return fit_linear_head(model, x, y)


def _reusable(fresh: keras.Model, recipe: str) -> keras.Model:
    """A compiled model of `fresh`'s architecture for `recipe`, holding `fresh`'s weights."""
    key = (fresh.to_json(), recipe)
    model = _MODELS.setdefault(key, fresh)
    if model is not fresh:  # the start's trainable flags (parents first), then its weights
        for mine, theirs in zip(walk_layers(model), walk_layers(fresh), strict=True):
            mine.trainable = theirs.trainable
        model.set_weights(fresh.get_weights())
    return model


def _checked_start(name: str, make: Start, seed: int, shape: tuple) -> keras.Model:
    """make(seed), refused unless it is a keras.Model reading samples of `shape`."""
    fresh = make(seed)
    if not isinstance(fresh, keras.Model):
        raise TypeError(f"starts[{name!r}] returned a {type(fresh).__name__}; expected a "
                        "keras.Model")
    if tuple(fresh.inputs[0].shape[1:]) != shape:
        raise ValueError(f"starts[{name!r}] builds a model reading "
                         f"{tuple(fresh.inputs[0].shape[1:])}; x_train has samples of shape "
                         f"{shape}")
    return fresh


def _check_starts(starts: object, fine_tune: object) -> tuple[str, ...]:
    """Refuse an empty or non-callable `starts` and `fine_tune` names that are not starts."""
    if not isinstance(starts, Mapping) or not starts:
        raise ValueError("starts should be a non-empty dict name -> make(seed) -> keras.Model")
    for name, make in starts.items():
        if not callable(make):
            raise TypeError(f"starts[{name!r}] is a {type(make).__name__}; expected a callable "
                            "make(seed) returning a keras.Model")
    if isinstance(fine_tune, str) or not isinstance(fine_tune, Sequence):
        raise TypeError(f"fine_tune={fine_tune!r}; expected a list of names of starts")
    unknown = [name for name in fine_tune if name not in starts]
    if unknown:
        raise ValueError(f"fine_tune names {unknown} are not starts; expected some of "
                         f"{list(starts)}")
    return tuple(fine_tune)


def compare_starts(
    starts: Mapping[str, Start],
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    k: int = 5,
    seeds: Sequence[int] = (0, 1, 2),
    epochs: int = 60,
    lr: float = 3e-3,
    batch_size: int = 32,
    fine_tune: Sequence[str] = (),
    fine_tune_lr: float = 1e-3,
    fine_tune_epochs: int | None = None,
    verbose: bool = True,
) -> tuple[list[dict], list[dict]]:
    """Train every start on k labels per class; test metrics per start and seed.

    `starts` maps a name to `make(seed) -> classifier` returning a model with its starting
    weights (random ones drawn with `seed`, or copied from a source). The from-scratch recipe
    trains every layer for `epochs` passes at `lr` (BatchNormalization in training mode); starts
    named in `fine_tune` get the gentle one: `prepare_fine_tune`, then every layer but
    BatchNormalization for `fine_tune_epochs` passes (default: `epochs`) at `fine_tune_lr`.
    Every start of a seed trains on the same k-shot subset of (x_train, y_train)
    (`few_shot_indices(y_train, k, seed=seed)`). Returns (rows, summary by start; see
    `metrics.summarize`); rows also hold the recipe, the trainable parameter count and the
    seconds taken.
    """
    gentle = _check_starts(starts, fine_tune)
    k = check_int(k, "k", low=1)
    seeds = list(check_ints(seeds, "seeds", low=0))
    lr, fine_tune_lr = check_rate(lr, "lr"), check_rate(fine_tune_lr, "fine_tune_lr")
    epochs = check_int(epochs, "epochs", low=1)
    gentle_epochs = epochs if fine_tune_epochs is None else check_int(
        fine_tune_epochs, "fine_tune_epochs", low=1)
    x_train, n = check_inputs(x_train, "x_train")
    x_test, n_test = check_inputs(x_test, "x_test")
    y_train = check_labels(y_train, "y_train", n=n, n_classes=N_CLASSES)
    y_test = check_labels(y_test, "y_test", n=n_test, n_classes=N_CLASSES)
    few_shot_indices(y_train, k, seed=seeds[0])  # refuse a too-large k before any training
    rows = []
    bar = tqdm(total=len(starts) * len(seeds), desc="starts", disable=not verbose)
    for seed in seeds:
        idx = few_shot_indices(y_train, k, seed=seed)
        for name, make in starts.items():
            t0 = time.perf_counter()
            recipe = "fine-tune" if name in gentle else "scratch"
            model = _reusable(_checked_start(name, make, seed, x_train.shape[1:]), recipe)
            budget = {"epochs": epochs, "lr": lr}
            if recipe == "fine-tune":
                prepare_fine_tune(model, x_train[idx], y_train[idx])
                budget = {"epochs": gentle_epochs, "lr": fine_tune_lr}
            fit(model, x_train[idx], y_train[idx], seed=seed, batch_size=batch_size, **budget)
            scores = evaluate(y_test, predict_proba(model, x_test))
            rows.append({"start": name, "k": k, "seed": seed, "recipe": recipe, **scores,
                         "params": count_params(model), "seconds": time.perf_counter() - t0})
            bar.update()
    bar.close()
    return rows, summarize(rows, by=("start",))


def split_speakers(
    speakers: np.ndarray, *, val_fraction: float = 0.5, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted indices (fit, val) of the clips: a seeded share of the speakers held out whole."""
    speakers = np.asarray(speakers)
    if speakers.ndim != 1 or len(speakers) == 0:
        raise ValueError(f"speakers has shape {speakers.shape}; expected one speaker id per clip")
    check_float(val_fraction, "val_fraction", low=0, high=1, low_open=True, high_open=True)
    names = np.unique(speakers)
    n_val = round(float(val_fraction) * len(names))
    if not 0 < val_fraction < 1 or not 0 < n_val < len(names):
        raise ValueError(f"val_fraction={val_fraction!r} holds out {n_val} of {len(names)} "
                         "speakers; expected a fraction in (0, 1) that leaves speakers on "
                         "both sides")
    rng = np.random.default_rng(check_int(seed, "seed", low=0))
    held_out = np.isin(speakers, rng.permutation(names)[:n_val])
    return np.flatnonzero(~held_out), np.flatnonzero(held_out)


def _search_key(candidates: Mapping[str, Start], arrays: Sequence[np.ndarray], options: dict
                ) -> str:
    """Hash of a search's inputs: data, each candidate's seed-0 model, settings, Keras."""
    digest = hashlib.sha256()
    for arr in arrays:
        arr = np.ascontiguousarray(arr)
        digest.update(f"{arr.dtype.str}{arr.shape}".encode() + arr.tobytes())
    for name, make in candidates.items():
        model = make(0)
        digest.update(name.encode() + model.to_json().encode())
        for weights in model.get_weights():
            digest.update(np.ascontiguousarray(weights).tobytes())
    text = json.dumps({**options, "keras": keras.__version__, "backend": keras.backend.backend(),
                       "format": SEARCH_CACHE_FORMAT}, sort_keys=True, default=str)
    return hashlib.sha256(digest.hexdigest().encode() + text.encode()).hexdigest()[:20]


def search_structure(
    candidates: Mapping[str, Start],
    x_source: np.ndarray,
    y_source: np.ndarray,
    speakers: np.ndarray,
    *,
    k: int = 5,
    seeds: Sequence[int] = (0, 1, 2),
    val_fraction: float = 0.5,
    cache_dir: str | os.PathLike | None = None,
    cache: bool = True,
    verbose: bool = True,
    **recipe,
) -> list[dict]:
    """Train each candidate on k source labels per class; score it on held-out source speakers.

    Returns rows (start, seed, k, source_val, seconds) for `chosen`. Source data only: per
    seed, `split_speakers` holds out a share of the source speakers, and every candidate trains
    on the same k-shot draw of the rest (`compare_starts`, from-scratch recipe; `recipe` holds
    its epochs, lr and batch_size). `source_val` is the accuracy on the held-out speakers. A k
    larger than the fitting speakers allow is cut to what they hold. Like a pretrained source,
    the rows are cached (`cache=True`) under `cache_dir` (default
    `transfer.cache_dir_default()`), keyed by the data, the candidates and every setting.
    """
    if len(np.asarray(speakers)) != len(np.asarray(y_source)):
        raise ValueError(f"speakers has {len(np.asarray(speakers))} ids but y_source "
                         f"{len(np.asarray(y_source))} labels; expected one id per clip")
    if not isinstance(cache, bool):
        raise TypeError(f"cache={cache!r} is a {type(cache).__name__}; expected True or False")
    k, seeds = check_int(k, "k", low=1), list(check_ints(seeds, "seeds", low=0))
    y_source, path = np.asarray(y_source), None
    if cache:
        options = {"k": k, "seeds": seeds, "val_fraction": val_fraction, "recipe": recipe}
        key = _search_key(candidates, (x_source, y_source, np.asarray(speakers).astype(str)),
                          options)
        folder = Path(cache_dir).expanduser() if cache_dir is not None else cache_dir_default()
        path = folder / f"structure_search-{key}.json"
        if path.is_file():
            try:
                rows = json.loads(path.read_text())["rows"]
                if verbose:
                    print(f"source search loaded from the cache ({path}); delete it to rerun")
                return rows
            except (OSError, ValueError, KeyError):
                pass  # unreadable: search again and replace it
    rows = []
    for seed in seeds:
        fit_idx, val_idx = split_speakers(speakers, val_fraction=val_fraction, seed=seed)
        fewest = int(np.bincount(y_source[fit_idx], minlength=10).min())
        k_seed = cap(k, fewest, "labels per class on the source's fitting speakers")
        found, _ = compare_starts(candidates, x_source[fit_idx], y_source[fit_idx],
                                  x_source[val_idx], y_source[val_idx], k=k_seed, seeds=(seed,),
                                  verbose=verbose, **recipe)
        rows += [{"start": r["start"], "seed": seed, "k": k_seed, "source_val": r["accuracy"],
                  "seconds": r["seconds"]} for r in found]
    if path is not None:
        _write_json(path, {"rows": rows})
    return rows


def _write_json(path: Path, payload: dict) -> None:
    """Write JSON to a temporary file and rename it, so no half-written file looks complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(handle, "w") as out:
            json.dump(payload, out)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def chosen(search_rows: Sequence[Mapping]) -> dict[int, str]:
    """Seed -> the candidate with the best `source_val` (the earlier candidate on a tie)."""
    best: dict[int, tuple[float, str]] = {}
    for row in search_rows:
        missing = [key for key in ("start", "seed", "source_val") if key not in row]
        if missing:
            raise ValueError(f"row {dict(row)!r} lacks {missing}; expected rows of "
                             "search_structure (the choice reads source validation only)")
        if row["seed"] not in best or row["source_val"] > best[row["seed"]][0]:
            best[row["seed"]] = (row["source_val"], row["start"])
    if not best:
        raise ValueError("search_rows is empty; expected the rows of search_structure")
    return {seed: name for seed, (_, name) in best.items()}


def _by_start_and_seed(rows: Sequence[Mapping]) -> dict[tuple, Mapping]:
    return {(row["start"], row["seed"]): row for row in rows}


def choice_rows(target_rows: Sequence[Mapping], search_rows: Sequence[Mapping]) -> list[dict]:
    """Per seed, target rows of CHOSEN (the source's pick) and RANDOM (mean over candidates).

    RANDOM is what a candidate picked without the source scores on average.
    """
    picks = chosen(search_rows)
    names = list(dict.fromkeys(row["start"] for row in search_rows))
    found = _by_start_and_seed(target_rows)
    out = []
    for seed, pick in picks.items():
        missing = [name for name in names if (name, seed) not in found]
        if missing:
            raise ValueError(f"target_rows lack seed {seed} of candidates {missing}; train "
                             "every searched candidate on the target with the same seeds")
        mean = {m: float(np.mean([found[(name, seed)][m] for name in names])) for m in METRICS}
        out.append({**{m: found[(pick, seed)][m] for m in METRICS}, "start": CHOSEN,
                    "seed": seed, "k": found[(pick, seed)]["k"], "picked": pick})
        out.append({**mean, "start": RANDOM, "seed": seed, "k": found[(pick, seed)]["k"],
                    "picked": f"mean of {len(names)}"})
    return out


def ranking(
    search_rows: Sequence[Mapping], target_rows: Sequence[Mapping]
) -> tuple[list[dict], float]:
    """Per candidate source-val and target-test accuracy; and their Spearman rank correlation.

    Table rows hold the means and stds over seeds and how often the candidate was picked; the
    correlation is nan when undefined (fewer than two candidates, or a constant column).
    """
    picks = list(chosen(search_rows).values())
    found = _by_start_and_seed(target_rows)
    table = []
    for name in dict.fromkeys(row["start"] for row in search_rows):
        seeds = [row["seed"] for row in search_rows if row["start"] == name]
        missing = [seed for seed in seeds if (name, seed) not in found]
        if missing:
            raise ValueError(f"target_rows lack candidate {name!r} at seeds {missing}")
        source = mean_std(r["source_val"] for r in search_rows if r["start"] == name)
        target = mean_std(found[(name, seed)]["accuracy"] for seed in seeds)
        table.append({"structure": name, "source_val": source[0], "source_val_std": source[1],
                      "target_test": target[0], "target_test_std": target[1],
                      "picked": picks.count(name)})
    source_means = [t["source_val"] for t in table]
    target_means = [t["target_test"] for t in table]
    if len(set(source_means)) < 2 or len(set(target_means)) < 2:
        return table, float("nan")  # fewer than two candidates, or a constant column
    return table, float(spearmanr(source_means, target_means)[0])


def scores(rows: Sequence[Mapping], start: str, metric: str = "accuracy") -> list[float]:
    """The `metric` of one start per seed, in seed order (to pair two starts in `compare`)."""
    found = sorted((row["seed"], row[metric]) for row in rows if row.get("start") == start)
    if not found:
        raise ValueError(f"start={start!r} is not in the rows; expected one of "
                         f"{list(dict.fromkeys(row.get('start') for row in rows))}")
    return [float(value) for _, value in found]
