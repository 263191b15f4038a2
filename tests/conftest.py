"""Fixtures shared by the tests: tiny real-data folders written by the tests themselves."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest


def write_wav(path: Path, samples: np.ndarray, rate: int = 8000, channels: int = 1) -> None:
    """A 16-bit PCM wav file of samples in [-1, 1]."""
    data = np.round(np.clip(samples, -1, 1) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(data.tobytes())


def tone(digit: int, index: int, rate: int = 8000) -> np.ndarray:
    """A short tone whose pitch encodes the digit: a stand-in for a spoken digit."""
    t = np.arange(int(0.4 * rate)) / rate
    return 0.4 * np.sin(2 * np.pi * (300 + 80 * digit + index) * t) * np.hanning(len(t))


def write_avmnist(root: Path) -> Path:
    """A tiny AV-MNIST folder: 120/30 random MNIST-shaped images, FSDD-named tone recordings."""
    rng = np.random.default_rng(0)
    y_train, y_test = np.arange(120) % 10, np.arange(30) % 10
    np.savez(
        root / "mnist.npz",
        x_train=rng.integers(0, 256, (120, 28, 28), dtype=np.uint8),
        y_train=y_train.astype(np.uint8),
        x_test=rng.integers(0, 256, (30, 28, 28), dtype=np.uint8),
        y_test=y_test.astype(np.uint8),
    )
    recordings = root / "fsdd" / "free-spoken-digit-dataset-1.0.10" / "recordings"
    recordings.mkdir(parents=True)
    for digit in range(10):
        for index in (0, 1, 5, 6, 10, 11, 12):
            for speaker in ("ana", "bo"):
                write_wav(recordings / f"{digit}_{speaker}_{index}.wav", tone(digit, index))
    (recordings / "README.txt").write_text("not a recording")
    return root


@pytest.fixture
def avmnist_dir(tmp_path):
    """A tiny AV-MNIST folder for one test (see write_avmnist)."""
    return write_avmnist(tmp_path)
