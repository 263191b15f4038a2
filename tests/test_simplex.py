"""Three-modality late fusion: the weight grid on the simplex, its sweep and the tuned weights."""

from __future__ import annotations

import numpy as np
import pytest

from mmlearn_helpers import simplex
from mmlearn_helpers.fusion import late_fusion


def _probs(y: np.ndarray, right: float, seed: int) -> np.ndarray:
    """Softmax-like rows that put `right` on the true class for a random share of samples."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(10), size=len(y))
    hit = rng.random(len(y)) < right
    p[hit] = 0.02
    p[hit, y[hit]] = 0.82
    return p / p.sum(1, keepdims=True)


def test_grid_covers_the_simplex_once():
    g = simplex.grid(3, 0.05)
    assert g.shape == (231, 3)  # (20 + 2 choose 2)
    np.testing.assert_allclose(g.sum(1), 1)
    assert (g >= 0).all() and len({tuple(np.round(r, 6)) for r in g}) == 231
    assert {tuple(r) for r in np.eye(3)} <= {tuple(r) for r in g}
    assert simplex.grid(2, 0.25).tolist() == [[0, 1], [0.25, 0.75], [0.5, 0.5], [0.75, 0.25],
                                              [1, 0]]


def test_sweep_is_late_fusion_at_every_point():
    y = np.arange(200) % 10
    probs = [_probs(y, r, s) for s, r in enumerate((0.6, 0.4, 0.3))]
    g = simplex.grid(3, 0.25)
    acc = simplex.sweep(probs, y, g)
    for row, a in zip(g, acc, strict=True):
        assert a == np.mean(late_fusion(probs, row.tolist()).argmax(1) == y)


def test_best_weights_follow_the_better_modality_and_tie_to_equal_weights():
    y = np.arange(300) % 10
    probs = [_probs(y, 0.2, 0), _probs(y, 0.9, 1), _probs(y, 0.3, 2)]
    w = simplex.best_weights(probs, y)
    assert w.shape == (3,) and abs(w.sum() - 1) < 1e-9 and w.argmax() == 1
    same = [_probs(y, 0.5, 3)] * 3  # every point scores the same: equal weights win the tie
    np.testing.assert_allclose(simplex.best_weights(same, y, simplex.grid(3, 1 / 3)), [1 / 3] * 3)


def test_ternary_corners():
    x, y = simplex.ternary_xy(np.eye(3))
    np.testing.assert_allclose(x, [0, 1, 0.5])
    np.testing.assert_allclose(y, [0, 0, np.sqrt(3) / 2])


@pytest.mark.parametrize("call, error, words", [
    (lambda p, y: simplex.grid(3, 0.3), ValueError, "step=0.3 does not divide 1"),
    (lambda p, y: simplex.grid(1), ValueError, "k=1"),
    (lambda p, y: simplex.sweep(p, y, [[0.5, 0.5, 0.5]]), ValueError, "sums to 1.5"),
    (lambda p, y: simplex.sweep(p, y, [[0.5, 0.5]]), ValueError, "2 weights for 3"),
    (lambda p, y: simplex.sweep(p, y, [[1.2, -0.1, -0.1]]), ValueError, "outside [0, 1]"),
    (lambda p, y: simplex.sweep(p, y, [0.2, 0.3, 0.5]), ValueError, "expected (points, 3)"),
    (lambda p, y: simplex.sweep(p, y[:5]), ValueError, "y has 5"),
    (lambda p, y: simplex.sweep(p, y, rule="max"), ValueError, "rule='max'"),
    (lambda p, y: simplex.ternary_xy([0.2, 0.2, 0.2]), ValueError, "sums to 0.6"),
])
def test_weights_off_the_simplex_are_refused(call, error, words):
    y = np.arange(20) % 10
    probs = [_probs(y, 0.5, s) for s in range(3)]
    with pytest.raises(error) as info:
        call(probs, y)
    assert words in str(info.value)
