"""Matplotlib figures for the notebooks: learning curves, confusion matrices, embeddings, bars,
and block diagrams of the fusion levels.

Every function draws on `ax` when given (to compose panels), else on a new figure, and returns
the Figure without showing it: call `plt.show()` in the notebook.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.metrics import confusion_matrix

from .data.dataset import N_CLASSES
from .fusion import LABELS, MISSING_WAYS, check_ws
from .metrics import to_labels


def _axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    elif not isinstance(ax, Axes):
        raise TypeError(f"ax is a {type(ax).__name__}; expected a matplotlib Axes or None")
    return ax


def learning_curve_plot(
    summary: Sequence[dict],
    *,
    metric: str = "accuracy",
    chance: float | None = None,
    title: str = "Learning curve",
    ax: Axes | None = None,
) -> Figure:
    """Mean `metric` vs labels per class k, one line per method, error bars = std over seeds.

    A "zero_shot" method (no target label, the same at every k) is drawn dashed, as a reference.

    `summary` is the output of `metrics.summarize` (keys method, k, metric and metric_std);
    `chance` draws a dotted line at that level (e.g. 0.1 for ten balanced classes).
    """
    if not summary:
        raise ValueError("summary is empty; expected rows from metrics.summarize")
    for key in ("method", "k", metric, f"{metric}_std"):
        if key not in summary[0]:
            raise ValueError(f"summary rows lack {key!r}; expected the output of summarize()")
    ax = _axes(ax, (5.5, 3.8))
    for method in dict.fromkeys(row["method"] for row in summary):
        rows = sorted((r for r in summary if r["method"] == method), key=lambda r: r["k"])
        style = {"linestyle": "--", "marker": None} if method == "zero_shot" else {"marker": "o"}
        ax.errorbar([r["k"] for r in rows], [r[metric] for r in rows],
                    yerr=[r[f"{metric}_std"] for r in rows], capsize=4, label=method, **style)
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle=":", label="chance")
    ks = sorted({r["k"] for r in summary})
    ax.set_xscale("log")
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.minorticks_off()
    ax.set_xlabel("labelled examples per class (k)")
    ax.set_ylabel(f"test {metric.replace('_', ' ')}")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    return ax.figure


def confusion_matrix_plot(
    y_true: np.ndarray,
    y_pred_or_probs: np.ndarray,
    *,
    n_classes: int = N_CLASSES,
    normalize: bool = True,
    title: str = "Confusion matrix",
    ax: Axes | None = None,
) -> Figure:
    """Confusion matrix (rows: true class, columns: predicted), row-normalized by default."""
    y_pred = to_labels(y_pred_or_probs)
    y_true = np.asarray(y_true)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has shape {y_true.shape} but the predictions {y_pred.shape}")
    cm = confusion_matrix(y_true, y_pred, labels=np.arange(n_classes)).astype(np.float64)
    if normalize:
        cm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    ax = _axes(ax, (4.5, 4))
    image = ax.imshow(cm, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    for i, j in np.ndindex(cm.shape):
        if cm[i, j] > 0:
            text = f"{cm[i, j]:.2f}".lstrip("0") if normalize else f"{int(cm[i, j])}"
            ax.text(j, i, text, ha="center", va="center", fontsize=7,
                    color="white" if cm[i, j] > 0.6 * cm.max() else "black")
    ax.set_xticks(range(n_classes))
    ax.set_yticks(range(n_classes))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    ax.figure.colorbar(image, ax=ax, fraction=0.046)
    return ax.figure


def embedding_plot(
    features: np.ndarray,
    y: np.ndarray,
    *,
    method: str = "pca",
    seed: int = 0,
    title: str = "2-D embedding",
    ax: Axes | None = None,
) -> Figure:
    """Scatter of features projected to 2-D with PCA or t-SNE (scikit-learn), coloured by label."""
    features = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    y = np.asarray(y)
    if len(y) != len(features) or len(y) < 3:
        raise ValueError(f"features has {len(features)} rows and y {len(y)}; expected the same "
                         "count, at least 3")
    if method == "pca":
        points = PCA(n_components=2, random_state=seed).fit_transform(features)
    elif method == "tsne":
        perplexity = min(30.0, (len(y) - 1) / 3)
        points = TSNE(n_components=2, perplexity=perplexity, init="pca",
                      random_state=seed).fit_transform(features)
    else:
        raise ValueError(f"method={method!r} is not a projection; expected 'pca' or 'tsne'")
    ax = _axes(ax, (5, 4.5))
    scatter = ax.scatter(points[:, 0], points[:, 1], c=y, cmap="tab10", s=10,
                         vmin=-0.5, vmax=9.5)
    ax.legend(*scatter.legend_elements(), title="class", fontsize=7, loc="best",
              markerscale=0.8)
    ax.set_xlabel(f"{method.upper()} 1")
    ax.set_ylabel(f"{method.upper()} 2")
    ax.set_title(title)
    return ax.figure


def bar_plot(
    labels: Sequence[str],
    means: Sequence[float],
    stds: Sequence[float] | None = None,
    *,
    ylabel: str = "test accuracy",
    chance: float | None = None,
    title: str = "",
    ax: Axes | None = None,
) -> Figure:
    """Bars of means with error bars (std over seeds), the value written above each bar."""
    if not len(labels) == len(means) or (stds is not None and len(stds) != len(means)):
        raise ValueError(
            f"labels, means and stds have lengths {len(labels)}, {len(means)}, "
            f"{None if stds is None else len(stds)}; expected equal lengths"
        )
    ax = _axes(ax, (max(4.0, 1.1 * len(labels)), 3.8))
    positions = np.arange(len(labels))
    ax.bar(positions, means, yerr=stds, capsize=4, color="tab:blue", alpha=0.8)
    for x, m, s in zip(positions, means, stds if stds is not None else [0] * len(means),
                       strict=True):
        ax.text(x, m + s + 0.01, f"{m:.2f}", ha="center", va="bottom", fontsize=8)
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle=":", label="chance")
        ax.legend()
    ax.set_xticks(positions, labels, rotation=20, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return ax.figure



FUSION_LEVELS = ("early", "intermediate", "late")
_BLOCKS = ("conv block 1", "conv block 2", "conv block 3\n+ global pooling")
_LEVEL_BLOCKS = {  # per-modality path, where the paths join, the joint part after the join
    "early": (("conv block 1\n(maps flattened)",), "concatenate\nlow-level features",
              ("dense + BN + ReLU\n(joint)", "softmax")),
    "intermediate": (_BLOCKS, "concatenate\nrepresentations", ("dense + ReLU\n(joint)", "softmax")),
    "late": ((*_BLOCKS, "softmax"), "combine probabilities:\nw p_image + (1 - w) p_audio\n"
             "(sum rule) or product rule", ()),
}
_LEVEL_TITLES = {"early": "Early (feature-level) fusion", "intermediate": "Intermediate fusion",
                 "late": "Late (decision-level) fusion"}


def fusion_diagram(
    level: str, *, ax: Axes | None = None, modalities: Sequence[str] = ("image", "audio")
) -> Figure:
    """Block diagram of one fusion level, top to bottom: each modality's path, the join, the rest.

    `level` is "early" (one conv block per modality, the low-level feature maps concatenated,
    the rest of the network joint), "intermediate" (a whole encoder per modality, the learned
    representations concatenated, a joint hidden layer and head) or "late" (a whole classifier
    per modality, class probabilities combined). Rows line up across levels, so three
    diagrams side by side show how early each level joins. The join is gold, joint layers grey.
    """
    if level not in _LEVEL_BLOCKS:
        raise ValueError(f"level={level!r} is not a fusion level; expected one of {FUSION_LEVELS}")
    if isinstance(modalities, str) or len(modalities) < 2:
        raise ValueError(f"modalities={modalities!r}; expected at least two names, e.g. "
                         "('image', 'audio')")
    path, join, joint = _LEVEL_BLOCKS[level]
    ax = _axes(ax, (4.2, 5.2))
    rows = np.linspace(0.95, 0.05, 8)  # the most any level needs: input, 3 blocks, join, 2, class
    xs = np.linspace(0.2, 0.8, len(modalities))

    def box(x, y, text, color):
        return ax.text(x, y, text, ha="center", va="center", fontsize=7.5, zorder=2,
                       bbox={"boxstyle": "round,pad=0.35", "fc": color, "ec": "0.35"})

    def arrow(src, dst):
        ax.annotate("", xy=(0.5, 1), xycoords=dst, xytext=(0.5, 0), textcoords=src,
                    arrowprops={"arrowstyle": "->", "color": "0.3", "shrinkA": 1, "shrinkB": 1})

    joined = box(0.5, rows[len(path) + 1], join, "gold")
    for i, (m, x) in enumerate(zip(modalities, xs, strict=False)):
        color = plt.cm.Pastel1(i)
        prev = box(x, rows[0], f"{m} input", color)
        for j, text in enumerate(path):
            block = box(x, rows[j + 1], text, color)
            arrow(prev, block)
            prev = block
        arrow(prev, joined)
    prev = joined
    for j, text in enumerate((*joint, "class")):
        block = box(0.5, rows[len(path) + 2 + j], text, "white" if text == "class" else "0.88")
        arrow(prev, block)
        prev = block
    ax.set(xlim=(0, 1), ylim=(0, 1))
    ax.set_title(_LEVEL_TITLES[level], fontsize=10)
    ax.axis("off")
    return ax.figure


def plot_sweep(
    ws: np.ndarray,
    val_curves: np.ndarray,
    test_curves: np.ndarray,
    lines: Mapping[str, tuple[float, float]],
    best_ws: Sequence[float],
) -> plt.Figure:
    """Late-fusion accuracy vs w on validation and test (mean +- std over seeds as bands), with
    horizontal reference lines (e.g. image only, audio only, early fusion: mean, std) and the
    validation-optimal w of each seed as ticks."""
    ws = check_ws(ws)
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for curves, label, color in ((val_curves, "late fusion, validation", "C0"),
                                 (test_curves, "late fusion, test", "C1")):
        curves = np.asarray(curves)
        if curves.ndim != 2 or curves.shape[1] != len(ws):
            raise ValueError(f"curves have shape {curves.shape}; expected (seeds, {len(ws)})")
        mean, std = curves.mean(axis=0), curves.std(axis=0)
        ax.plot(ws, mean, color=color, lw=2, label=label)
        ax.fill_between(ws, mean - std, mean + std, color=color, alpha=0.2)
    for (label, (mean, std)), color in zip(lines.items(), ("C2", "C4", "C3", "C5", "C6"),
                                           strict=False):
        ax.axhline(mean, color=color, ls="--", label=f"{label} (test)")
        ax.axhspan(mean - std, mean + std, color=color, alpha=0.08)
    for i, w in enumerate(best_ws):
        ax.axvline(w, ymax=0.06, color="k", lw=2, label="best w on validation (per seed)"
                   if i == 0 else None)
    ax.set(xlabel="w (weight of the image; 1 - w on audio)", ylabel="accuracy", xlim=(0, 1),
           title="Late fusion: accuracy vs weight (bands: +-1 std over seeds)")
    ax.legend(fontsize=8, loc="lower center", ncol=2)
    fig.tight_layout()
    return fig


def plot_robustness(rows: Sequence[dict], defaults: Mapping[str, float]) -> plt.Figure:
    """Test accuracy of each method as one modality gets noisier (rows from robustness_rows).

    `defaults` maps each kind ("snr_db", "image_noise") to the training level, marked dotted.
    """
    kinds = list(dict.fromkeys(r["kind"] for r in rows))
    fig, axes = plt.subplots(1, len(kinds), figsize=(5.2 * len(kinds), 4), squeeze=False)
    titles = {"snr_db": ("audio SNR (dB), lower is noisier", True),
              "image_noise": ("image noise sigma, higher is noisier", False)}
    for ax, kind in zip(axes[0], kinds, strict=True):
        for i, method in enumerate(dict.fromkeys(r["method"] for r in rows)):
            sel = sorted((r for r in rows if r["kind"] == kind and r["method"] == method),
                         key=lambda r: r["level"])
            ax.errorbar([r["level"] for r in sel], [r["accuracy"] for r in sel],
                        yerr=[r["accuracy_std"] for r in sel], marker="o", ms=4, capsize=3,
                        color=f"C{i}", label=LABELS.get(method, method))
        xlabel, invert = titles.get(kind, (kind, False))
        if defaults.get(kind) is not None:
            ax.axvline(defaults[kind], color="0.5", ls=":", label="trained at")
        if invert:
            ax.invert_xaxis()
        ax.set(xlabel=xlabel, ylabel="test accuracy", title=f"Models trained once; test {kind}")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_missing(summary: Mapping[str, float]) -> plt.Figure:
    """Test accuracy with one modality missing, per way of coping (summarize_runs output).

    Draws each way of `MISSING_WAYS` whose `missing_audio_<way>` key is in `summary`.
    """
    ways = [(w, label) for w, label in MISSING_WAYS.items() if f"missing_audio_{w}" in summary]
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    width = 0.8 / len(ways)
    for i, (way, label) in enumerate(ways):
        keys = [f"missing_{m}_{way}" for m in ("audio", "image")]
        ax.bar(np.arange(2) + i * width, [summary[k] for k in keys], width,
               yerr=[summary[f"{k}_std"] for k in keys], capsize=3, label=label)
    ax.set_xticks(np.arange(2) + width * (len(ways) - 1) / 2,
                  ["audio missing at test", "image missing at test"])
    ax.set(ylabel="test accuracy", title="One modality missing at test time (mean +- std)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
