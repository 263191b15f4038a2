"""Classification metrics (scikit-learn), mean and spread over seeds, and printable tables."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, recall_score

METRICS = ("accuracy", "macro_recall", "macro_f1")


def to_labels(y_pred_or_probs: np.ndarray) -> np.ndarray:
    """Predicted labels from labels (n,) or class scores/probabilities (n, n_classes)."""
    pred = np.asarray(y_pred_or_probs)
    if pred.ndim == 2:
        return pred.argmax(axis=1)
    if pred.ndim == 1 and np.issubdtype(pred.dtype, np.integer):
        return pred
    raise ValueError(
        f"y_pred_or_probs has shape {pred.shape} and dtype {pred.dtype}; expected integer labels "
        "(n,) or class probabilities (n, n_classes)"
    )


def evaluate(y_true: np.ndarray, y_pred_or_probs: np.ndarray) -> dict[str, float]:
    """Accuracy, macro-averaged recall and macro-averaged F1 (scikit-learn) as plain floats."""
    y_true = np.asarray(y_true)
    if y_true.ndim != 1 or not np.issubdtype(y_true.dtype, np.integer):
        raise ValueError(
            f"y_true has shape {y_true.shape} and dtype {y_true.dtype}; expected (n,) integers"
        )
    y_pred = to_labels(y_pred_or_probs)
    if len(y_pred) != len(y_true) or len(y_true) == 0:
        raise ValueError(
            f"y_true has {len(y_true)} labels and the predictions {len(y_pred)}; expected the "
            "same non-zero count"
        )
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_recall": float(recall_score(y_true, y_pred, average="macro", zero_division=0)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
    }


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and population standard deviation (ddof=0) of a non-empty list of finite numbers."""
    arr = np.asarray(list(values), dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0 or not np.isfinite(arr).all():
        raise ValueError(f"values={arr.tolist()!r} should be a non-empty list of finite numbers")
    return float(arr.mean()), float(arr.std())


def summarize(
    rows: Sequence[dict], by: Sequence[str] = ("method", "k"), metrics: Sequence[str] = METRICS
) -> list[dict]:
    """Group rows by the `by` keys and give each metric's mean and `<metric>_std` plus `n`.

    Groups keep the order in which they first appear in `rows`.
    """
    if not rows:
        raise ValueError("rows is empty; expected at least one result row")
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        missing = [key for key in (*by, *metrics) if key not in row]
        if missing:
            raise ValueError(f"row {row!r} lacks {missing}; expected keys {[*by, *metrics]}")
        groups.setdefault(tuple(row[key] for key in by), []).append(row)
    summary = []
    for key, members in groups.items():
        entry = dict(zip(by, key, strict=True))
        entry["n"] = len(members)
        for metric in metrics:
            entry[metric], entry[f"{metric}_std"] = mean_std(r[metric] for r in members)
        summary.append(entry)
    return summary


def _cell(value: object, digits: int) -> str:
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, numbers.Integral)):
        return "nan" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


class Table(str):
    """Markdown table text that JupyterLab renders as a table (`display(table)`).

    It stays plain text everywhere else: `print(table)`, papermill's text output, summary files.
    """

    def _repr_markdown_(self) -> str:
        return str(self)

    def __repr__(self) -> str:
        return str(self)


def results_table(
    rows: Sequence[dict], columns: Sequence[str] | None = None, *, digits: int = 3
) -> Table:
    """A Markdown table of result rows (e.g. `summarize` output); `metric ± std` where both exist.

    Columns default to the keys of the first row; a column `m` with a companion `m_std` is shown
    as one "m ± std" column. `display()` it to see a rendered table in a notebook.
    """
    if not rows:
        raise ValueError("rows is empty; expected at least one row to print")
    columns = list(columns or rows[0])
    shown = [c for c in columns if not (c.endswith("_std") and c[:-4] in columns)]
    lines = ["| " + " | ".join(shown) + " |", "|" + "|".join("---" for _ in shown) + "|"]
    for row in rows:
        cells = []
        for col in shown:
            if col not in row:
                raise ValueError(f"row {row!r} lacks column {col!r}")
            text = _cell(row[col], digits)
            if f"{col}_std" in row and f"{col}_std" in columns:
                text += f" ± {_cell(row[f'{col}_std'], digits)}"
            cells.append(text)
        lines.append("| " + " | ".join(cells) + " |")
    return Table("\n".join(lines))


def gains(
    rows: Sequence[dict],
    baseline: str = "scratch",
    *,
    metric: str = "accuracy",
    group: str = "k",
) -> list[dict]:
    """Each method's gain over `baseline`, paired by seed, per `group` value; and a verdict.

    `rows` are per-seed results (keys method, seed, group, metric), e.g. from
    `transfer.learning_curve`. For each method and group value the gain is computed seed by seed
    (both methods trained on the same k-shot draw), then summarized: `gain` is its mean,
    `spread` its standard deviation over seeds, `n` the number of seeds. The verdict is
    "better" when the gain is more than twice its spread, "worse" when the loss is, else
    "no clear difference".
    """
    for row in rows:
        missing = [k for k in ("method", "seed", group, metric) if k not in row]
        if missing:
            raise ValueError(f"row {row!r} lacks {missing}; expected per-seed result rows")
    base = {(row[group], row["seed"]): row[metric] for row in rows if row["method"] == baseline}
    if not base:
        raise ValueError(f"baseline={baseline!r} is not a method of the rows; expected one of "
                         f"{sorted({row['method'] for row in rows})}")
    paired: dict[tuple, list[float]] = {}
    for row in rows:
        ref = base.get((row[group], row["seed"]))
        if row["method"] != baseline and ref is not None:
            paired.setdefault((row[group], row["method"]), []).append(row[metric] - ref)
    out = []
    for (value, method), diffs in paired.items():
        gain, spread = mean_std(diffs)
        verdict = ("better" if gain > 2 * spread else "worse" if -gain > 2 * spread
                   else "no clear difference")
        out.append({group: value, "method": method, "gain": gain, "spread": spread,
                    "n": len(diffs), "verdict": verdict})
    return out
