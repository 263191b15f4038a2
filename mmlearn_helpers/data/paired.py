"""Pairing images with spoken digits of the same class, and image degradations."""

from __future__ import annotations

import numpy as np

from ..checks import check_float, check_labels
from .dataset import N_CLASSES


def pair_by_label(y_image: np.ndarray, y_audio: np.ndarray, seed: int = 0) -> np.ndarray:
    """For each image label, the index of an audio clip with the same label (seeded).

    Clips of a class are used in a shuffled cycle, so each is used about equally often.
    """
    y_image, y_audio = (check_labels(y, name, n_classes=N_CLASSES)
                        for y, name in ((y_image, "y_image"), (y_audio, "y_audio")))
    rng = np.random.default_rng(seed)
    out = np.empty(len(y_image), dtype=np.int64)
    for c in np.unique(y_image):
        pool = np.flatnonzero(y_audio == c)
        if pool.size == 0:
            raise ValueError(f"y_audio has no clip of digit {c}; expected every image class")
        where = np.flatnonzero(y_image == c)
        reps = -(-where.size // pool.size)
        cycle = np.concatenate([rng.permutation(pool) for _ in range(reps)])
        out[rng.permutation(where)] = cycle[: where.size]
    return out


def degrade_images(
    x: np.ndarray, seed: int = 0, image_noise: float = 0.0, occlusion: float = 0.0
) -> np.ndarray:
    """Seeded image degradations on (n, H, W, 1) in [0, 1], result clipped to [0, 1].

    image_noise: Gaussian sigma on [0, 1] pixels; occlusion: fraction of the image area blanked
    (set to 0) by one randomly placed square patch per image.
    """
    sigma = check_float(image_noise, "image_noise", low=0, high=1)
    frac = check_float(occlusion, "occlusion", low=0, high=1)
    x = np.array(x, dtype=np.float32, copy=True)
    rng = np.random.default_rng(seed)
    n, h, w = x.shape[:3]
    side = int(round(np.sqrt(frac * h * w)))
    if side > 0:
        side_h, side_w = min(side, h), min(side, w)
        top = rng.integers(0, h - side_h + 1, n)
        left = rng.integers(0, w - side_w + 1, n)
        rows = np.arange(h)[None, :, None]
        cols = np.arange(w)[None, None, :]
        mask = ((rows >= top[:, None, None]) & (rows < top[:, None, None] + side_h)
                & (cols >= left[:, None, None]) & (cols < left[:, None, None] + side_w))
        x[mask] = 0.0
    if sigma > 0:
        x = x + rng.normal(0.0, sigma, x.shape).astype(np.float32)
    return np.clip(x, 0.0, 1.0)
