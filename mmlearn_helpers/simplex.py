"""Late fusion of three or more modalities: one weight each, on the simplex (all >= 0, sum 1).

With two modalities one weight w says everything (w on the first, 1 - w on the second, see
`fusion.best_weight`); with three the weights are a point of a triangle. `grid` lists the points
a step apart, `sweep` scores late fusion at each, `best_weights` picks the point with the best
VALIDATION accuracy, and `ternary_xy` places weights in a triangle for plots and widgets.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from .checks import check_float, check_int, check_labels
from .fusion import RULES, check_probs, check_weights
from .metrics import accuracy

STEP = 0.05  # the grid's spacing: 231 points for three modalities


def grid(k: int = 3, step: float = STEP) -> np.ndarray:
    """Every weight vector of `k` multiples of `step` that sums to 1, shape (points, k)."""
    k = check_int(k, "k", low=2)
    step = check_float(step, "step", low=0, high=1, low_open=True)
    n = round(1 / step)
    if abs(n * step - 1) > 1e-9:
        raise ValueError(f"step={step!r} does not divide 1; expected e.g. 0.05, 0.1 or 0.25")
    points = [c + (n - sum(c),) for c in itertools.product(range(n + 1), repeat=k - 1)
              if sum(c) <= n]
    return np.array(points, dtype=np.float64) / n


def _check_grid(weights: object, k: int) -> np.ndarray:
    """Rows of weights for `k` modalities, each on the simplex; None gives `grid(k)`."""
    if weights is None:
        return grid(k)
    rows = np.asarray(weights, dtype=np.float64)
    if rows.ndim != 2 or len(rows) == 0:
        raise ValueError(f"weights has shape {rows.shape}; expected (points, {k}), one row of "
                         "weights per point, e.g. simplex.grid(3)")
    for i, row in enumerate(rows):
        check_weights(row.tolist(), k, name=f"weights[{i}]")
    return rows


def _checked(probs: object, y: object, weights: object, rule: object) -> tuple:
    """(probability arrays, labels, rows of weights) of a sweep, each checked once."""
    if rule not in RULES:
        raise ValueError(f"rule={rule!r} is not a fusion rule; expected one of {tuple(RULES)}")
    arrays = check_probs(probs)
    rows = _check_grid(weights, len(arrays))
    y = check_labels(y, n=len(arrays[0]), n_classes=arrays[0].shape[1], counted="probs[0] has")
    return arrays, y, rows


def _accuracies(arrays: list[np.ndarray], y: np.ndarray, rows: np.ndarray, rule: str
                ) -> np.ndarray:
    return np.array([accuracy(y, RULES[rule](arrays, row.tolist())) for row in rows])


def sweep(probs: Sequence[np.ndarray], y: np.ndarray, weights: object = None, *,
          rule: str = "sum") -> np.ndarray:
    """Accuracy of late fusion of `probs` (one array per modality) at each row of `weights`."""
    arrays, y, rows = _checked(probs, y, weights, rule)
    return _accuracies(arrays, y, rows, rule)


def best_weights(probs_val: Sequence[np.ndarray], y_val: np.ndarray, weights: object = None, *,
                 rule: str = "sum") -> np.ndarray:
    """The weights with the best VALIDATION accuracy; ties go to the point nearest equal weights.

    Never pass test probabilities: weights tuned on test make the test score optimistic.
    """
    arrays, y_val, rows = _checked(probs_val, y_val, weights, rule)
    acc = _accuracies(arrays, y_val, rows, rule)
    best = np.flatnonzero(acc >= acc.max() - 1e-12)
    distance = np.abs(rows[best] - 1 / len(arrays)).sum(axis=1)
    return rows[best[np.argmin(distance)]].copy()


def ternary_xy(weights: object) -> tuple[np.ndarray, np.ndarray]:
    """Plot coordinates of three-modality weights: corners (0, 0), (1, 0) and (0.5, 0.866).

    The first modality's corner is bottom left, the second's bottom right, the third's on top;
    a point sits nearer a corner the more weight that modality gets.
    """
    rows = _check_grid(np.atleast_2d(np.asarray(weights, dtype=np.float64)), 3)
    return rows[:, 1] + rows[:, 2] / 2, rows[:, 2] * np.sqrt(3) / 2
