"""Feature transfer: frozen encoders as feature extractors and scikit-learn probes on them.

A probe is a standardizing scaler followed by a linear classifier fitted by scikit-learn
(multinomial logistic regression, or a linear-kernel SVM). With a handful of labels per class a
convex fit converges every time, where a Keras dense head trained by gradient descent stays
under-fitted.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import keras
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from tqdm.auto import tqdm

from .checks import check_float, check_int, check_labels
from .data.dataset import N_CLASSES
from .metrics import evaluate, summarize
from .models import encoder_of
from .training import check_inputs
from .transfer import encoder_features, few_shot_indices, transfer_model

PROBES = ("logistic", "svm")
ALL = "all"  # the label budget "every training example"


def flatten(x: np.ndarray) -> np.ndarray:
    """Raw inputs (n, ...) as a (n, d) float32 matrix: the "no pretraining" features."""
    x, n = check_inputs(x)
    if isinstance(x, dict):
        raise TypeError("x is a dict; flatten one modality at a time, e.g. flatten(x['image'])")
    return x.reshape(n, -1)


def encode(model: keras.Model, x: np.ndarray) -> np.ndarray:
    """Features (n, d) of `x` from the frozen encoder of a `classifier`, in inference mode.

    When `x` has another spatial size than the encoder was built for (e.g. 28x28 MNIST through an
    encoder pretrained on 8x8 digits) the encoder is rebuilt for that size with the same weights:
    convolution kernels do not depend on the image size.
    """
    encoder = encoder_of(model)
    x, _ = check_inputs(x)
    if isinstance(x, dict):
        raise TypeError("x is a dict; encode one modality at a time, e.g. encode(m, x['image'])")
    want = tuple(encoder.inputs[0].shape[1:])
    if x.shape[1:] == want:
        return encoder_features(model, x)
    if len(x.shape[1:]) != len(want) or x.shape[-1] != want[-1]:
        raise ValueError(
            f"x has samples of shape {x.shape[1:]}; the encoder reads {want} (the spatial size "
            "may differ, the number of axes and channels may not)"
        )
    return encoder_features(transfer_model("frozen", model, input_shape=x.shape[1:]), x)


def make_probe(kind: str = "logistic", *, C: float = 1.0) -> Pipeline:
    """An unfitted scikit-learn pipeline: StandardScaler + LogisticRegression or a linear SVM."""
    if kind not in PROBES:
        raise ValueError(f"kind={kind!r} is not a probe; expected one of {PROBES}")
    C = check_float(C, "C", low=0, low_open=True)
    if kind == "logistic":
        clf = LogisticRegression(C=C, max_iter=2000)
    else:
        clf = SVC(kernel="linear", C=C)  # libsvm: seconds where LinearSVC took minutes here
    return make_pipeline(StandardScaler(), clf)


def _matrix(x: np.ndarray, name: str) -> np.ndarray:
    x, _ = check_inputs(x, name)
    if isinstance(x, dict) or x.ndim != 2:
        raise ValueError(
            f"{name} has shape {getattr(x, 'shape', None)}; expected a (n, d) feature matrix "
            "(use flatten() or encode() first)"
        )
    return x


def probe_score(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    kind: str = "logistic",
    C: float = 1.0,
) -> dict[str, float]:
    """Fit a probe on (x_train, y_train) feature matrices; return its test metrics (`evaluate`)."""
    x_train, x_test = _matrix(x_train, "x_train"), _matrix(x_test, "x_test")
    if x_train.shape[1] != x_test.shape[1]:
        raise ValueError(
            f"x_train has {x_train.shape[1]} features and x_test {x_test.shape[1]}; expected the "
            "same feature count"
        )
    y_train = check_labels(y_train, "y_train", n=len(x_train), n_classes=N_CLASSES)
    y_test = check_labels(y_test, "y_test", n=len(x_test), n_classes=N_CLASSES)
    if len(np.unique(y_train)) < 2:
        raise ValueError("y_train holds a single class; a probe needs at least two")
    probe = make_probe(kind, C=C).fit(x_train, y_train)
    return evaluate(y_test, probe.predict(x_test).astype(np.int64))


def probe_runs(
    feature_sets: Mapping[str, tuple[np.ndarray, np.ndarray]],
    y_train: np.ndarray,
    y_test: np.ndarray,
    *,
    ks: Sequence[int | str] = (5, ALL),
    seeds: Sequence[int] = (0, 1, 2),
    probes: Sequence[str] = PROBES,
    C: float = 1.0,
    verbose: bool = True,
) -> tuple[list[dict], list[dict]]:
    """Every probe on every feature set, for k labels per class ("all" = every label) and seed.

    `feature_sets` maps a name (e.g. "image features", "raw pixels") to (train, test) feature
    matrices of the same samples, so every set is probed on the same k-shot subset for a given
    seed (`few_shot_indices`). With k = "all" the seeds give identical subsets; the probe is
    then fitted once. Returns (rows, summary by features, probe and k; see `metrics.summarize`).
    """
    if not isinstance(feature_sets, Mapping) or not feature_sets:
        raise ValueError("feature_sets should be a non-empty dict name -> (train, test) matrices")
    probes = tuple(dict.fromkeys(probes))
    for kind in probes:
        make_probe(kind)  # refuse an unknown probe before any fitting
    for i, k in enumerate(ks):
        if k != ALL:
            check_int(k, f"ks[{i}]", low=1)
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds is empty; expected at least one seed")
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    for k in ks:
        if k != ALL:
            few_shot_indices(y_train, k, seed=seeds[0])  # refuse a too-large k up front

    rows = []
    total = sum(len(seeds) if k != ALL else 1 for k in ks) * len(feature_sets) * len(probes)
    bar = tqdm(total=total, desc="probes", disable=not verbose)
    for k in ks:
        for seed in seeds if k != ALL else seeds[:1]:
            idx = np.arange(len(y_train)) if k == ALL else few_shot_indices(y_train, k, seed=seed)
            for name, pair in feature_sets.items():
                if not isinstance(pair, tuple) or len(pair) != 2:
                    raise ValueError(f"feature_sets[{name!r}] should be a (train, test) tuple")
                train, test = pair
                for kind in probes:
                    t0 = time.perf_counter()
                    scores = probe_score(train[idx], y_train[idx], test, y_test, kind=kind, C=C)
                    rows.append({"features": name, "probe": kind, "k": k, "seed": seed,
                                 **scores, "seconds": time.perf_counter() - t0})
                    bar.update()
    bar.close()
    return rows, summarize(rows, by=("features", "probe", "k"))

