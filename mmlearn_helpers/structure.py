"""Structure transfer: the same training recipe from different starting weights or architectures.

`compare_starts` answers "is it the architecture or the weights that transfer?": every start
(random weights, weights copied from a source of the same or of another modality, another
architecture) is trained with one recipe on the same k-shot subsets and tested on the same data,
so the only difference between rows is where training started.
"""

from __future__ import annotations

import numbers
import time
from collections.abc import Callable, Mapping, Sequence

import keras
import numpy as np
from tqdm.auto import tqdm

from .metrics import evaluate, summarize
from .models import count_params, encoder_of, mlp_encoder
from .training import check_inputs, check_labels, fit, predict_proba
from .transfer import copy_weights, few_shot_indices

Start = Callable[[int], keras.Model]


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


def matched_mlp_units(input_shape: Sequence[int], n_params: int, *, n_classes: int = 10) -> int:
    """Width of a one-hidden-layer `mlp_encoder` whose classifier has about `n_params` weights."""
    if isinstance(n_params, bool) or not isinstance(n_params, numbers.Integral) or n_params < 1:
        raise ValueError(f"n_params={n_params!r} should be a positive int (a parameter budget)")
    n_in = int(np.prod(mlp_encoder(input_shape, (1,)).inputs[0].shape[1:]))
    # per hidden unit: n_in weights, 2 trainable BatchNorm weights, n_classes head weights
    return max(1, round((n_params - n_classes) / (n_in + 2 + n_classes)))


def _check_int(value: object, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name}={value!r} should be an int >= {low}")
    return int(value)


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
    verbose: bool = True,
) -> tuple[list[dict], list[dict]]:
    """Train every start on k labels per class with one recipe; test metrics per start and seed.

    `starts` maps a name to `make(seed) -> classifier` returning a model with its starting
    weights (random ones drawn with `seed`, or copied from a source). Every layer is trained for
    `epochs` passes at `lr` (BatchNormalization in training mode), on the same k-shot subset of
    (x_train, y_train) for a given seed. One model per start is compiled once and its weights
    reset between seeds (fast on a CPU). Returns (rows, summary by start; see
    `metrics.summarize`); rows also hold each model's trainable parameter count.
    """
    if not isinstance(starts, Mapping) or not starts:
        raise ValueError("starts should be a non-empty dict name -> make(seed) -> keras.Model")
    for name, make in starts.items():
        if not callable(make):
            raise TypeError(f"starts[{name!r}] is a {type(make).__name__}; expected a callable "
                            "make(seed) returning a keras.Model")
    k = _check_int(k, "k", 1)
    seeds = [_check_int(s, "seeds[i]", 0) for s in seeds]
    if not seeds:
        raise ValueError("seeds is empty; expected at least one seed")
    x_train, n = check_inputs(x_train, "x_train")
    x_test, n_test = check_inputs(x_test, "x_test")
    y_train = check_labels(y_train, n, 10, "y_train")
    y_test = check_labels(y_test, n_test, 10, "y_test")
    few_shot_indices(y_train, k, seed=seeds[0])  # refuse a too-large k before any training

    models: dict[str, keras.Model] = {}
    rows = []
    bar = tqdm(total=len(starts) * len(seeds), desc="starts", disable=not verbose)
    for seed in seeds:
        idx = few_shot_indices(y_train, k, seed=seed)
        for name, make in starts.items():
            t0 = time.perf_counter()
            fresh = make(seed)
            if not isinstance(fresh, keras.Model):
                raise TypeError(f"starts[{name!r}] returned a {type(fresh).__name__}; expected "
                                "a keras.Model")
            if tuple(fresh.inputs[0].shape[1:]) != x_train.shape[1:]:
                raise ValueError(
                    f"starts[{name!r}] builds a model reading {tuple(fresh.inputs[0].shape[1:])}"
                    f"; x_train has samples of shape {x_train.shape[1:]}"
                )
            model = models.setdefault(name, fresh)
            if model is not fresh:
                model.set_weights(fresh.get_weights())
            fit(model, x_train[idx], y_train[idx], epochs=epochs, lr=lr, seed=seed,
                batch_size=batch_size)
            scores = evaluate(y_test, predict_proba(model, x_test))
            rows.append({"start": name, "k": k, "seed": seed, **scores,
                         "params": count_params(model), "seconds": time.perf_counter() - t0})
            bar.update()
    bar.close()
    return rows, summarize(rows, by=("start",))
