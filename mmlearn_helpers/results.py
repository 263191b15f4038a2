"""Headline numbers of each notebook, saved as JSON for the runner's summary."""

from __future__ import annotations

import json
import math
import numbers
import os
import re
from datetime import datetime, timezone
from pathlib import Path

from .params import check_results_dir

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def _plain(key: str, value):
    """Turn a metric value into a JSON-safe int, float, str or bool; refuse anything else."""
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"metrics[{key!r}]={value} is not finite; save finite numbers only")
        return value
    raise TypeError(
        f"metrics[{key!r}] is a {type(value).__name__}; expected an int, float, str or bool"
    )


def environment() -> dict:
    """Backend, library versions and device the numbers were measured on."""
    import keras

    from .device import describe

    return {"backend": keras.backend.backend(), "keras": keras.__version__, "device": describe()}


def save_results(
    name: str, metrics: dict, results_dir: str | os.PathLike, params: dict | None = None
) -> Path:
    """Write `<results_dir>/<name>.json` with the metrics, the parameters and the environment."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"name={name!r} should be a file stem such as '04_early_vs_late_fusion'")
    if not isinstance(metrics, dict) or not metrics:
        raise ValueError(f"metrics should be a non-empty dict of numbers; got {metrics!r}")
    plain = {str(k): _plain(str(k), v) for k, v in metrics.items()}
    folder = check_results_dir(results_dir)
    payload = {
        "notebook": name,
        "metrics": plain,
        "params": {k: v if isinstance(v, (int, float, str, bool, type(None))) else str(v)
                   for k, v in (params or {}).items()},
        "environment": environment(),
        "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    path = folder / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(path)
    return path


def load_results(results_dir: str | os.PathLike) -> dict[str, dict]:
    """Read every `<name>.json` under `results_dir` into {name: payload}."""
    folder = Path(results_dir)
    out = {}
    for path in sorted(folder.glob("*.json")):
        try:
            out[path.stem] = json.loads(path.read_text())
        except ValueError as exc:
            raise ValueError(f"{path} is not valid JSON ({exc}); delete it and rerun") from None
    return out
