"""Cross-modal knowledge transfer: a labelled-image teacher trains an audio student.

The teacher (any model trained with image labels) predicts class probabilities for the images of
paired, unlabelled image-audio examples; the student (an audio model) is trained to reproduce
those soft targets from the audio alone (cross-modal distillation). The student never sees an
audio label, but it is not label-free: everything it knows about the classes comes from the
teacher's image labels, through the pairing.
"""

from __future__ import annotations

import keras
import numpy as np

from .checks import check_float, check_int, check_rate, check_seed
from .training import check_inputs, prepare

# Above this many sample visits (n * epochs), `distill` runs ordinary epochs.
PACK_LIMIT = 100_000


def soft_targets(probs: np.ndarray, *, temperature: float = 1.0) -> np.ndarray:
    """Teacher probabilities (n, classes) re-tempered: softmax(log p / T); T > 1 softens them."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise ValueError(f"probs has shape {probs.shape}; expected (n, n_classes) probabilities")
    finite = np.isfinite(probs).all() and probs.min() >= 0
    if not finite or not np.allclose(probs.sum(1), 1, atol=1e-3):
        raise ValueError("probs should hold finite non-negative rows that sum to 1 (softmax)")
    check_float(temperature, "temperature", low=0, low_open=True, hint=", e.g. 1 or 2")
    logits = np.log(np.clip(probs, 1e-12, 1.0)) / float(temperature)
    logits -= logits.max(axis=1, keepdims=True)
    out = np.exp(logits)
    return (out / out.sum(axis=1, keepdims=True)).astype(np.float32)


def distill(
    student: keras.Model,
    x: np.ndarray,
    targets: np.ndarray,
    *,
    epochs: int,
    lr: float,
    seed: int,
    batch_size: int = 32,
    verbose: bool = False,
) -> keras.callbacks.History:
    """Train a softmax `student` on soft `targets` (n, classes) with cross-entropy; return History.

    Minimizing the cross-entropy to the teacher's distribution is minimizing the KL divergence
    from it (they differ by the teacher's entropy, a constant). Each call starts a fresh Adam(lr);
    the `epochs` shuffled passes are handed to Keras as one epoch (less per-epoch overhead).
    """
    if not isinstance(student, keras.Model):
        raise TypeError(f"student is a {type(student).__name__}; expected a keras.Model")
    check_int(epochs, "epochs", low=1), check_int(batch_size, "batch_size", low=1)
    check_rate(lr), check_seed(seed)
    x, n = check_inputs(x)
    targets = np.asarray(targets, dtype=np.float32)
    n_classes = int(student.outputs[0].shape[-1])
    if targets.shape != (n, n_classes):
        raise ValueError(
            f"targets has shape {targets.shape}; expected ({n}, {n_classes}): one probability "
            "row per sample of x, one column per student output"
        )
    if not np.isfinite(targets).all() or targets.min() < 0:
        raise ValueError("targets should be finite, non-negative probabilities")

    keras.utils.set_random_seed(int(seed))
    prepare(student, float(lr), loss="categorical_crossentropy")
    batch_size = min(int(batch_size), n)
    if n * epochs <= PACK_LIMIT:
        rng = np.random.default_rng(seed)
        order = np.concatenate([rng.permutation(n) for _ in range(epochs)])
        x = {k: v[order] for k, v in x.items()} if isinstance(x, dict) else x[order]
        targets, epochs, shuffle = targets[order], 1, False
    else:
        shuffle = True
    return student.fit(x, targets, batch_size=batch_size, epochs=int(epochs), shuffle=shuffle,
                       verbose=2 if verbose else 0)


def agreement(teacher_probs: np.ndarray, y: np.ndarray) -> float:
    """Share of samples where the teacher's top class equals the label (for reporting only)."""
    probs, y = np.asarray(teacher_probs), np.asarray(y)
    if probs.ndim != 2 or y.shape != (len(probs),):
        raise ValueError(
            f"teacher_probs has shape {probs.shape} and y {y.shape}; expected (n, classes) and (n,)"
        )
    return float((probs.argmax(axis=1) == y).mean())
