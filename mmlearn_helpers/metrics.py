"""Classification metrics (scikit-learn), mean and spread over seeds, comparisons, and tables.

One rule decides every "is A better than B?" in the collection (`compare`, and `gains` on top
of it). We train each setting with several seeds, take the mean difference of the scores, and
ask how much that mean could change with other seeds (and, for per-example scores, with other
test groups such as other speakers): a bootstrap draws seeds (and groups) with replacement many
times and gives a 95% confidence interval (CI) for the difference. The verdict then reads:

- "better": the whole CI is above 0 and the difference is at least `MIN_EFFECT` (2 points of
  accuracy), so it is both reliable and large enough to matter;
- "worse": the whole CI is below 0 and the difference is at most -`MIN_EFFECT`;
- "negligible": the whole CI lies between -`MIN_EFFECT` and +`MIN_EFFECT`: whatever the true
  difference is, it is too small to matter;
- "not established": anything else. The CI is too wide for this many seeds to tell; more seeds
  (or a larger test set) would. With fewer than `MIN_SEEDS` seeds this is always the verdict.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import accuracy_score, f1_score, recall_score

from .checks import check_float, check_int, check_labels, check_seed

METRICS = ("accuracy", "macro_recall", "macro_f1")
MIN_EFFECT = 0.02  # smallest accuracy difference a lesson calls real (2 points)
MIN_SEEDS = 3  # fewer seeds never give a verdict other than "not established"
VERDICTS = ("better", "worse", "negligible", "not established")


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


def _checked(y_true: np.ndarray, y_pred_or_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_pred = to_labels(y_pred_or_probs)
    n_classes = np.asarray(y_pred_or_probs).shape[1] if np.ndim(y_pred_or_probs) == 2 else None
    y_true = check_labels(y_true, "y_true", n=len(y_pred), n_classes=n_classes,
                          counted="the predictions have")
    if not len(y_true):
        raise ValueError("y_true is empty; expected at least one label")
    return y_true, y_pred


def accuracy(y_true: np.ndarray, y_pred_or_probs: np.ndarray) -> float:
    """Share of predictions (labels, or each row's most probable class) equal to y_true."""
    y_true, y_pred = _checked(y_true, y_pred_or_probs)
    return float((y_pred == y_true).mean())


def evaluate(y_true: np.ndarray, y_pred_or_probs: np.ndarray) -> dict[str, float]:
    """Accuracy, macro-averaged recall and macro-averaged F1 (scikit-learn) as plain floats."""
    y_true, y_pred = _checked(y_true, y_pred_or_probs)
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


def _scores(values: ArrayLike, name: str) -> np.ndarray:
    """`values` as a finite float array of per-seed (n_seeds,) or per-example (n_seeds, n_test)."""
    try:
        arr = np.asarray(values)
    except ValueError as err:  # ragged nested lists
        raise ValueError(f"{name} has rows of different lengths; expected per-seed scores "
                         "(n_seeds,) or per-example scores (n_seeds, n_test)") from err
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} has dtype {arr.dtype}; expected numbers: per-seed scores "
                        "(n_seeds,) or per-example scores such as 0/1 correctness "
                        "(n_seeds, n_test)")
    if arr.ndim not in (1, 2):
        raise ValueError(f"{name} has shape {arr.shape}; expected per-seed scores (n_seeds,) or "
                         "per-example scores (n_seeds, n_test)")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); expected at least one score per "
                         "seed")
    arr = arr.astype(np.float64)
    bad = int(np.count_nonzero(~np.isfinite(arr)))
    if bad:
        raise ValueError(f"{name} has {bad} non-finite values (nan or inf); expected finite scores")
    return arr


def _cluster_ids(clusters: ArrayLike, n_test: int) -> tuple[np.ndarray, int]:
    """Each test example's cluster index (0 .. n_clusters - 1) and the number of clusters."""
    ids = np.asarray(clusters)
    if ids.dtype.kind not in "biufUSO":
        raise TypeError(f"clusters has dtype {ids.dtype}; expected group ids (integers or strings)")
    if ids.ndim != 1 or len(ids) != n_test:
        raise ValueError(f"clusters has shape {ids.shape}; expected one group id per test "
                         f"example, shape ({n_test},) like the columns of a and b")
    if ids.dtype.kind == "f" and not np.isfinite(ids).all():
        raise ValueError("clusters has non-finite ids (nan or inf); expected one finite group id "
                         "per test example")
    try:
        names, index = np.unique(ids, return_inverse=True)
    except TypeError as err:  # object arrays mixing e.g. strings and numbers
        raise TypeError(f"clusters mixes ids that cannot be ordered ({err}); expected group "
                        "ids of one type") from err
    return index.reshape(-1), len(names)


def _bootstrap(
    a: np.ndarray,
    b: np.ndarray,
    index: np.ndarray,
    n_clusters: int,
    *,
    paired: bool,
    resample_clusters: bool,
    n_boot: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """`n_boot` bootstrap values of mean(a) - mean(b) for (n_seeds, n_test) per-example scores.

    Each draw takes seeds with replacement (the same ones for a and b when `paired`) and, when
    `resample_clusters`, clusters with replacement; the mean runs over the drawn seeds and the
    examples of the drawn clusters, so clusters weigh by their size. Drawn items enter as
    multinomial counts, which keeps every draw a matrix product.
    """
    keys = np.arange(a.shape[0])[:, None] * n_clusters + index
    sums_a = np.bincount(keys.ravel(), weights=a.ravel(), minlength=a.shape[0] * n_clusters)
    keys = np.arange(b.shape[0])[:, None] * n_clusters + index
    sums_b = np.bincount(keys.ravel(), weights=b.ravel(), minlength=b.shape[0] * n_clusters)
    sums_a = sums_a.reshape(a.shape[0], n_clusters)
    sums_b = sums_b.reshape(b.shape[0], n_clusters)
    sizes = np.bincount(index, minlength=n_clusters).astype(np.float64)

    def draw(n: int) -> np.ndarray:
        return rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)

    seeds_a = draw(a.shape[0])
    seeds_b = seeds_a if paired else draw(b.shape[0])
    counts = draw(n_clusters) if resample_clusters else np.ones((n_boot, n_clusters))
    if paired:
        total = np.einsum("bs,sc,bc->b", seeds_a, sums_a - sums_b, counts, optimize=True)
        total /= a.shape[0]
    else:
        total = (np.einsum("bs,sc,bc->b", seeds_a, sums_a, counts, optimize=True) / a.shape[0]
                 - np.einsum("bs,sc,bc->b", seeds_b, sums_b, counts, optimize=True) / b.shape[0])
    return total / (counts @ sizes)


def _verdict(diff: float, low: float, high: float, n: int, min_effect: float) -> str:
    if n < MIN_SEEDS:
        return "not established"
    if low > 0 and diff >= min_effect:
        return "better"
    if high < 0 and diff <= -min_effect:
        return "worse"
    if -min_effect < low and high < min_effect:
        return "negligible"
    return "not established"


def _compared(a: ArrayLike, b: ArrayLike, *, paired: bool, clusters: ArrayLike | None) -> tuple:
    """(a, b) as (n_seeds, n_examples) arrays, each example's cluster index and the count."""
    a_arr, b_arr = _scores(a, "a"), _scores(b, "b")
    if a_arr.ndim != b_arr.ndim:
        raise ValueError(f"a has shape {a_arr.shape} and b {b_arr.shape}; expected both per-seed "
                         "scores (n_seeds,) or both per-example scores (n_seeds, n_test)")
    if paired and len(a_arr) != len(b_arr):
        raise ValueError(f"a has {len(a_arr)} seeds and b has {len(b_arr)}; paired=True expects "
                         "the same seeds in both (a[i] and b[i] from seed i); pass paired=False "
                         "for runs that do not share seeds")
    if a_arr.ndim == 2 and a_arr.shape[1] != b_arr.shape[1]:
        raise ValueError(f"a has {a_arr.shape[1]} test examples per seed and b has "
                         f"{b_arr.shape[1]}; expected scores on the same test examples")
    if clusters is not None and a_arr.ndim == 1:
        raise ValueError(f"clusters is given but a has shape {a_arr.shape}; expected per-example "
                         "scores (n_seeds, n_test) when the test examples are grouped")
    if a_arr.ndim == 1:  # one score per seed: one "example" per seed
        a_arr, b_arr = a_arr[:, None], b_arr[:, None]
    if clusters is None:
        return a_arr, b_arr, np.zeros(a_arr.shape[1], dtype=np.intp), 1
    return a_arr, b_arr, *_cluster_ids(clusters, a_arr.shape[1])


def compare(
    a: ArrayLike,
    b: ArrayLike,
    *,
    paired: bool = True,
    clusters: ArrayLike | None = None,
    min_effect: float = MIN_EFFECT,
    confidence: float = 0.95,
    n_boot: int = 10_000,
    seed: int = 0,
) -> dict:
    """a vs b: mean difference, bootstrap confidence interval over seeds (and clusters), verdict.

    `a` and `b` are per-seed scores (n_seeds,), e.g. accuracies, or per-example scores
    (n_seeds, n_test), e.g. 0/1 correctness on one shared test set. `paired=True` means `a[i]`
    and `b[i]` come from the same seed (same data draw, same start), so both need the same
    number of seeds and each bootstrap draw takes the same seeds for both; `paired=False`
    draws the seeds of `a` and of `b` independently (runs that do not share seeds; their
    numbers of seeds may differ). With per-example scores, `clusters` (n_test,) gives each test
    example's group (e.g. its speaker): each draw then also takes groups with replacement and
    averages over the examples of the drawn groups, so the interval also covers "other
    speakers". Without `clusters`, each seed's examples are just averaged.

    The interval is the percentile bootstrap interval at `confidence` over `n_boot` draws from
    `numpy.random.default_rng(seed)`, so the same inputs always give the same answer.

    Verdict, in words: "better" when the whole interval is above 0 and the difference is at
    least `min_effect`; "worse" when the whole interval is below 0 and the difference is at
    most -`min_effect`; "negligible" when the whole interval lies between -`min_effect` and
    +`min_effect` (any true difference is too small to matter); otherwise "not established"
    (the interval is too wide to tell with this many seeds). Fewer than `MIN_SEEDS` seeds
    always give "not established".

    Returns a dict: `a` and `b` (mean scores), `diff` (mean of a minus mean of b), `low` and
    `high` (interval bounds), `n` (seeds; the smaller count of the two when unpaired),
    `min_effect` and `verdict`.
    """
    if not isinstance(paired, (bool, np.bool_)):
        raise TypeError(f"paired={paired!r} is a {type(paired).__name__}; expected True or False")
    min_effect = check_float(min_effect, "min_effect", low=0,
                             hint=f", e.g. {MIN_EFFECT} (2 accuracy points)")
    confidence = check_float(confidence, "confidence", low=0, high=1, low_open=True,
                             high_open=True, hint=", e.g. 0.95")
    n_boot = check_int(n_boot, "n_boot", low=100)
    seed = check_seed(seed)
    a_arr, b_arr, index, n_clusters = _compared(a, b, paired=bool(paired), clusters=clusters)
    rng = np.random.default_rng(seed)
    stats = _bootstrap(a_arr, b_arr, index, n_clusters, paired=bool(paired),
                       resample_clusters=clusters is not None, n_boot=n_boot, rng=rng)
    alpha = 1 - confidence
    low, high = (float(q) for q in np.quantile(stats, [alpha / 2, 1 - alpha / 2]))
    mean_a, mean_b = float(a_arr.mean()), float(b_arr.mean())
    diff = mean_a - mean_b
    n = min(len(a_arr), len(b_arr))
    return {"a": mean_a, "b": mean_b, "diff": diff, "low": low, "high": high, "n": n,
            "min_effect": min_effect, "confidence": confidence,
            "verdict": _verdict(diff, low, high, n, min_effect)}


def comparison_row(name_a: str, name_b: str, result: Mapping) -> dict:
    """A `results_table` row for a `compare` result: a, b, scores, difference, CI and verdict.

    Keys: a, b (the names), a_score, b_score, difference, ci (the interval as text, e.g.
    "[-0.012, +0.034]") and verdict. `display(results_table([comparison_row(...), ...],
    ["a", "b", "difference", "ci", "verdict"]))` shows a | b | difference | ci | verdict.
    """
    for name, value in (("name_a", name_a), ("name_b", name_b)):
        if not isinstance(value, str):
            raise TypeError(f"{name}={value!r} is a {type(value).__name__}; expected a str")
    if not isinstance(result, Mapping):
        raise TypeError(f"result is a {type(result).__name__}; expected the dict of compare()")
    missing = [k for k in ("a", "b", "diff", "low", "high", "verdict") if k not in result]
    if missing:
        raise ValueError(f"result lacks {missing}; expected the dict of compare()")
    return {"a": name_a, "b": name_b, "a_score": result["a"], "b_score": result["b"],
            "difference": result["diff"], "ci": f"[{result['low']:+.3f}, {result['high']:+.3f}]",
            "verdict": result["verdict"]}


def in_words(result: Mapping) -> str:
    """A `compare` (or `gains`) result as one phrase: "+0.034 (95% CI +0.012 to +0.051, 5 seeds):
    better"."""
    diff = result.get("diff", result.get("gain")) if isinstance(result, Mapping) else None
    missing = [k for k in ("low", "high", "n", "verdict") if k not in result] if diff is not None \
        else ["diff"]
    if missing:
        raise ValueError(f"result lacks {missing}; expected the dict of compare() or gains()")
    level = round(100 * result.get("confidence", 0.95))
    return (f"{diff:+.3f} ({level}% CI {result['low']:+.3f} to {result['high']:+.3f}, "
            f"{result['n']} seeds): {result['verdict']}")


def gains(
    rows: Sequence[dict],
    baseline: str = "scratch",
    *,
    metric: str = "accuracy",
    group: str = "k",
    clusters: ArrayLike | None = None,
) -> list[dict]:
    """Each method's gain over `baseline`, paired by seed, per `group` value; and a verdict.

    `rows` are per-seed results (keys method, seed, group, metric), e.g. from
    `transfer.learning_curve`. For each method and group value the two methods are matched seed
    by seed (both trained on the same k-shot draw) and compared with `compare`: `gain` is the
    mean gain, `low` and `high` its 95% bootstrap interval, `verdict` the collection's rule
    ("better", "worse", "negligible" or "not established"; see the module docstring), `n` the
    number of seeds, and `spread` the standard deviation of the per-seed gains (for plots).
    With `clusters` (one group id per test example, e.g. its speaker), the rows' per-example
    hits `correct` are compared instead, and the interval also resamples the clusters.
    """
    need = ("method", "seed", group, metric) + (("correct",) if clusters is not None else ())
    for row in rows:
        missing = [k for k in need if k not in row]
        if missing:
            raise ValueError(f"row {row!r} lacks {missing}; expected per-seed result rows")
    key = metric if clusters is None else "correct"
    base = {(row[group], row["seed"]): row[key] for row in rows if row["method"] == baseline}
    if not base:
        raise ValueError(f"baseline={baseline!r} is not a method of the rows; expected one of "
                         f"{sorted({row['method'] for row in rows})}")
    pairs: dict[tuple, tuple[list[float], list[float]]] = {}
    for row in rows:
        ref = base.get((row[group], row["seed"]))
        if row["method"] != baseline and ref is not None:
            new, old = pairs.setdefault((row[group], row["method"]), ([], []))
            new.append(row[key])
            old.append(ref)
    out = []
    for (value, method), (new, old) in pairs.items():
        result = compare(new, old, clusters=clusters)
        per_seed = np.subtract(new, old) if clusters is None else np.subtract(
            np.mean(new, axis=1), np.mean(old, axis=1))
        _, spread = mean_std(per_seed)
        out.append({group: value, "method": method, "gain": result["diff"], "low": result["low"],
                    "high": result["high"], "spread": spread, "n": result["n"],
                    "verdict": result["verdict"]})
    return out
