"""The Dataset container returned by every loader."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..checks import check_choice, check_labels

SPLITS = ("train", "val", "test")
# The spoken digits' extra split: the English voices that pretrain the speech source only
SOURCE_SPLIT = "source"
N_CLASSES = 10


def check_split(split: object, splits: tuple[str, ...] = SPLITS) -> str:
    """Return split if it is one of `splits`, else raise naming the argument."""
    return check_choice(split, "split", splits)


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
        object.__setattr__(self, "y", check_labels(self.y, n_classes=N_CLASSES))
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
