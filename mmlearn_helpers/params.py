"""Validation of the parameters every notebook takes, before any training starts."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .checks import check_seed

PROFILES = ("fast", "full")


def check_profile(profile: str) -> str:
    """Return `profile` if it is "fast" or "full"; raise ValueError otherwise."""
    if profile not in PROFILES:
        raise ValueError(f"profile={profile!r} is not a profile; expected one of {PROFILES}")
    return profile


def check_results_dir(results_dir: str | os.PathLike) -> Path:
    """Create `results_dir` if needed and prove it is writable; return it as an absolute Path."""
    if not isinstance(results_dir, (str, os.PathLike)):
        raise TypeError(f"results_dir={results_dir!r} should be a path (str or Path)")
    path = Path(results_dir).expanduser().resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise ValueError(
            f"results_dir={str(results_dir)!r} cannot be written ({exc.strerror or exc}); "
            "choose a folder you can write to"
        ) from None
    return path


def check_parameters(
    profile: str,
    seed: int,
    dataset: str,
    data_dir: str | os.PathLike | None,
    results_dir: str | os.PathLike,
) -> dict:
    """Validate a notebook's parameters, seed every generator, and return them as a dict."""
    from .data import DATASETS

    check_profile(profile)
    check_seed(seed)
    if dataset not in DATASETS:
        raise ValueError(f"dataset={dataset!r} is unknown; expected one of {tuple(DATASETS)}")
    if data_dir is not None:
        if not isinstance(data_dir, (str, os.PathLike)):
            raise TypeError(f"data_dir={data_dir!r} should be a path or None")
        if not Path(data_dir).expanduser().is_dir():
            raise ValueError(
                f"data_dir={str(data_dir)!r} is not a folder; give the folder that holds your "
                "local copies, or None to use the download cache"
            )
    results = check_results_dir(results_dir)

    import keras

    keras.utils.set_random_seed(int(seed))
    return {
        "profile": profile,
        "seed": int(seed),
        "dataset": dataset,
        "data_dir": None if data_dir is None else str(Path(data_dir).expanduser().resolve()),
        "results_dir": str(results),
    }
