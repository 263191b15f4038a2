"""Argument checks shared by every public helper, in the style of scikit-learn's `check_scalar`.

One rule everywhere: a value of the wrong type is a TypeError, a value of the right type outside
its range or choices is a ValueError, and both messages name the argument, what was given and
what is expected, e.g. `seed=-1 should be an int >= 0` or `lr='fast' is a str; expected a
float in (0, 1)`. Booleans are refused where a number is expected (`True` is not a seed).
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence

import numpy as np


def _type_error(value: object, name: str, expected: str) -> TypeError:
    return TypeError(f"{name}={value!r} is a {type(value).__name__}; expected {expected}")


def _bounds(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high:g}"
    return ""


def _in_bounds(value: float, low: float | None, high: float | None, low_open: bool,
               high_open: bool) -> bool:
    above = low is None or (value > low if low_open else value >= low)
    below = high is None or (value < high if high_open else value <= high)
    return above and below


def check_int(value: object, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """`value` as an int within [low, high]; TypeError for a non-integer, ValueError outside."""
    expected = f"an int {_bounds(low, high, False, False)}".rstrip()
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise _type_error(value, name, expected)
    if not _in_bounds(value, low, high, False, False):
        raise ValueError(f"{name}={value!r} should be {expected}")
    return int(value)


def check_seed(value: object, name: str = "seed") -> int:
    """A seed: an int >= 0."""
    return check_int(value, name, low=0)


def check_float(
    value: object,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    hint: str = "",
) -> float:
    """`value` as a finite float within its bounds (open or closed); ints are accepted."""
    expected = f"a float {_bounds(low, high, low_open, high_open)}".rstrip() + hint
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _type_error(value, name, expected)
    if not np.isfinite(value) or not _in_bounds(value, low, high, low_open, high_open):
        raise ValueError(f"{name}={value!r} should be {expected}")
    return float(value)


def check_rate(value: object, name: str = "lr") -> float:
    """A learning rate: a float in (0, 1)."""
    return check_float(value, name, low=0, high=1, low_open=True, high_open=True,
                       hint=", e.g. 1e-3")


def check_ints(values: object, name: str, *, low: int | None = None,
               allow_empty: bool = False) -> tuple[int, ...]:
    """A list or tuple of ints, each >= low, as a tuple; empty only where `allow_empty`."""
    expected = f"a list of ints {_bounds(low, None, False, False)}".rstrip()
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise _type_error(values, name, expected)
    if not values and not allow_empty:
        raise ValueError(f"{name} is empty; expected {expected}")
    return tuple(check_int(v, f"{name}[{i}]", low=low) for i, v in enumerate(values))


def check_choice(value: object, name: str, choices: Iterable[object]) -> object:
    """`value` if it is one of `choices`; a ValueError listing them otherwise."""
    choices = tuple(choices)
    try:
        known = value in choices
    except TypeError:  # an unhashable value against a set-like collection
        known = False
    if not known:
        raise ValueError(f"{name}={value!r} is not known; expected one of {choices}")
    return value


def check_labels(
    y: object, name: str = "y", *, n: int | None = None, n_classes: int | None = None,
    counted: str = "x has",
) -> np.ndarray:
    """Class labels as int64 of shape (n,), each in 0..n_classes-1 where those are given.

    `counted` says what `n` counts in the message, e.g. "x has" or "the probabilities have".
    """
    y = np.asarray(y)
    if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or y.size == 0):
        raise TypeError(f"{name} has shape {y.shape} and dtype {y.dtype}; expected (n,) integers")
    if n is not None and len(y) != n:
        raise ValueError(f"{name} has {len(y)} labels but {counted} {n}; expected equal counts")
    if n_classes is not None and y.size and (y.min() < 0 or y.max() >= n_classes):
        bad = sorted(set(y[(y < 0) | (y >= n_classes)].tolist()))[:5]
        raise ValueError(f"{name} holds labels {bad}; expected class indices 0..{n_classes - 1}")
    return y.astype(np.int64)


def check_languages(language: object, known: Sequence[str]) -> tuple[str, ...]:
    """A code, a list of codes or "all" -> the tuple of codes, each one of `known`."""
    if isinstance(language, str):
        codes = tuple(known) if language == "all" else (language,)
    elif isinstance(language, (list, tuple)) and language:
        codes = tuple(language)
    else:
        raise TypeError(f"language={language!r}; expected a code such as 'en', a list or 'all'")
    for code in codes:
        check_choice(code, "language", known)
    return codes
