"""The Dataset container returned by every loader, and shared argument checks."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

SPLITS = ("train", "val", "test")
# The spoken digits' extra split: the English voices that pretrain the speech source only
SOURCE_SPLIT = "source"
N_CLASSES = 10


def check_split(split: object, splits: tuple[str, ...] = SPLITS) -> str:
    """Return split if it is one of `splits`, else raise naming the argument."""
    if not isinstance(split, str) or split not in splits:
        raise ValueError(f"split={split!r} does not exist; expected one of {splits}")
    return split


def check_choice(value: object, name: str, choices: Iterable[str]) -> str:
    """Return value if it is one of choices, else a ValueError naming argument and choices."""
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}={value!r} is not known; expected one of {choices}")
    return value


def check_fraction(value: object, name: str, high: float = 1.0) -> float:
    """A finite float in [0, high] (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name}={value!r} is not a number; expected a float in [0, {high}]")
    if not np.isfinite(value) or not 0 <= value <= high:
        raise ValueError(f"{name}={value!r} is out of range; expected a float in [0, {high}]")
    return float(value)


def check_labels(y: np.ndarray, name: str = "y") -> np.ndarray:
    """Labels as int64 in 0-9, shape (n,)."""
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"{name} has shape {y.shape} and dtype {y.dtype}; expected (n,) integers")
    if y.size and (y.min() < 0 or y.max() >= N_CLASSES):
        bad = sorted(set(y[(y < 0) | (y >= N_CLASSES)].tolist()))[:5]
        raise ValueError(f"{name} holds labels {bad} outside 0-{N_CLASSES - 1}; expected digits")
    return y.astype(np.int64)


@dataclass(frozen=True)
class Dataset:
    """Modality -> array, labels in 0-9 and per-sample metadata of one split of one data set."""

    name: str
    split: str
    x: dict[str, np.ndarray]
    y: np.ndarray
    meta: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_split(self.split, (SOURCE_SPLIT, *SPLITS))
        if not isinstance(self.x, dict) or not self.x:
            raise TypeError(f"x={type(self.x).__name__}; expected a non-empty dict modality->array")
        object.__setattr__(self, "y", check_labels(self.y))
        n = len(self.y)
        for key, arrays in (("x", self.x), ("meta", self.meta)):
            for modality, value in arrays.items():
                if len(value) != n:
                    raise ValueError(
                        f"{key}[{modality!r}] has {len(value)} samples but y has {n}; "
                        "expected the same sample count in every modality"
                    )

    @property
    def n(self) -> int:
        """Number of samples."""
        return len(self.y)

    @property
    def modalities(self) -> tuple[str, ...]:
        """Names of the modalities in x, e.g. ("image", "audio")."""
        return tuple(self.x)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}: {v.shape}" for k, v in self.x.items())
        return f"Dataset(name={self.name!r}, split={self.split!r}, n={self.n}, x={{{shapes}}})"
