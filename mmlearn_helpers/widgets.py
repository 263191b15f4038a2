"""Sliders for late fusion (notebook 04) and the static figures that twin them headless.

The widgets take precomputed class probabilities, so moving a slider only re-weights arrays
(no retraining) and answers at once. The CSS classes below are a contract with the browser
test: the weight slider carries `mmlearn-weight-slider`; the readout `mmlearn-fusion-readout`
shows `w=0.55 | accuracy=0.8731 | macro_f1=0.8650` (w with 2 decimals, metrics with 4). The
three-modality explorer's two sliders carry `mmlearn-simplex-slider`, its readout
`mmlearn-simplex-readout` shows `image=0.30 audio=0.25 text=0.45 | accuracy=... | macro_f1=...`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display

from . import simplex
from .checks import check_float, check_labels
from .fusion import best_weight, check_probs, check_weights, check_ws, late_fusion, sweep
from .metrics import evaluate
from .plots import confusion_matrix_plot

SLIDER_CLASS = "mmlearn-weight-slider"
READOUT_CLASS = "mmlearn-fusion-readout"
BEST_CLASS = "mmlearn-best-weight"
SNR_CLASS = "mmlearn-snr-slider"
SNR_READOUT_CLASS = "mmlearn-snr-readout"
SIMPLEX_CLASS = "mmlearn-simplex-slider"
SIMPLEX_READOUT_CLASS = "mmlearn-simplex-readout"
STEP = 0.05
WS = np.round(np.arange(0, 1 + STEP / 2, STEP), 2)


def _check_w(w: object, name: str = "w") -> float:
    return check_float(w, name, low=0, high=1, hint=" (the image's share)")


def _check_pair(probs_image: object, probs_audio: object, y: object) -> tuple:
    p_img, p_aud = check_probs([probs_image, probs_audio], labels=("probs_image", "probs_audio"))
    return p_img, p_aud, check_labels(y, n=len(p_img), n_classes=p_img.shape[1],
                                      counted="probs_image has")


def readout_text(probs_image: np.ndarray, probs_audio: np.ndarray, y: np.ndarray, w: float) -> str:
    """`w=0.55 | accuracy=0.8731 | macro_f1=0.8650` for late fusion with weight w on the image."""
    w = round(_check_w(w), 2)
    scores = evaluate(y, late_fusion([probs_image, probs_audio], w))
    return f"w={w:.2f} | accuracy={scores['accuracy']:.4f} | macro_f1={scores['macro_f1']:.4f}"


def fusion_figure(
    probs_image: np.ndarray,
    probs_audio: np.ndarray,
    y: np.ndarray,
    w: float,
    *,
    best_w: float | None = None,
    split: str = "test",
) -> plt.Figure:
    """Accuracy vs w (current w and validation-optimal w marked) beside the confusion matrix at w.

    The static twin of `fusion_explorer`: the same figure, for one w.
    """
    p_img, p_aud, y = _check_pair(probs_image, probs_audio, y)
    w = round(_check_w(w), 2)
    acc = sweep(p_img, p_aud, y, WS)
    fused = late_fusion([p_img, p_aud], w)
    fig, (ax_w, ax_cm) = plt.subplots(1, 2, figsize=(9.5, 3.8))
    ax_w.plot(WS, acc, color="0.4", label=f"late fusion ({split})")
    ax_w.plot([w], [acc[np.argmin(np.abs(WS - w))]], "o", color="C3", label=f"w = {w:.2f}")
    if best_w is not None:
        ax_w.axvline(best_w, ls="--", color="C2", label=f"best w on validation = {best_w:.2f}")
    ax_w.set(xlabel="w (weight of the image; 1 - w on audio)", ylabel=f"{split} accuracy",
             title="Accuracy vs fusion weight", xlim=(0, 1))
    ax_w.legend(fontsize=8, loc="lower center")
    confusion_matrix_plot(y, fused, n_classes=p_img.shape[1], normalize=False, ax=ax_cm,
                          title=f"Confusion matrix at w = {w:.2f} (counts)")
    fig.tight_layout()
    return fig


def _show(fig: plt.Figure) -> None:
    display(fig)
    plt.close(fig)


def fusion_explorer(
    probs_image: np.ndarray,
    probs_audio: np.ndarray,
    y: np.ndarray,
    *,
    w: float = 0.5,
    best_w: float | None = None,
    split: str = "test",
    plot: bool = True,
) -> widgets.VBox:
    """A slider for the late-fusion weight w with live accuracy, macro F1 and confusion matrix.

    Children: a header, the `FloatSlider` "w (image)" (CSS class `mmlearn-weight-slider`), the
    readout (class `mmlearn-fusion-readout`, text from `readout_text`), a line with the
    validation-optimal w (class `mmlearn-best-weight`) and an Output with `fusion_figure`.
    Setting `slider.value` updates the readout first, then redraws the figure (`plot=False`
    skips the figure, e.g. in tests).
    """
    p_img, p_aud, y = _check_pair(probs_image, probs_audio, y)
    w = _check_w(w)
    if best_w is not None:
        best_w = _check_w(best_w, "best_w")
    slider = widgets.FloatSlider(value=w, min=0.0, max=1.0, step=STEP, description="w (image)",
                                 readout_format=".2f", continuous_update=True,
                                 layout=widgets.Layout(width="420px"))
    slider.add_class(SLIDER_CLASS)
    readout = widgets.HTML(layout=widgets.Layout(font_family="monospace"))
    readout.add_class(READOUT_CLASS)
    best_text = ("no validation-optimal w given" if best_w is None
                 else f"validation-optimal w = {best_w:.2f} (dashed line)")
    best = widgets.HTML(f"<i>{best_text}</i>")
    best.add_class(BEST_CLASS)
    out = widgets.Output()

    def update(value: float) -> None:
        readout.value = readout_text(p_img, p_aud, y, value)
        if plot:
            with out:
                out.clear_output(wait=True)
                _show(fusion_figure(p_img, p_aud, y, value, best_w=best_w, split=split))

    slider.observe(lambda change: update(change["new"]), names="value")
    update(w)
    header = widgets.HTML(f"<b>Late fusion on the {split} split</b>: "
                          "w * p_image + (1 - w) * p_audio. Drag the slider.")
    return widgets.VBox([header, slider, readout, best, out])


def snr_label(snr_db: float) -> str:
    """'clean' for an infinite SNR (no noise added), else e.g. '-3 dB'."""
    return "clean" if np.isinf(snr_db) else f"{snr_db:g} dB"


def snr_table(
    probs_image_val: np.ndarray,
    probs_image_test: np.ndarray,
    probs_audio_val: Mapping[float, np.ndarray],
    probs_audio_test: Mapping[float, np.ndarray],
    y_val: np.ndarray,
    y_test: np.ndarray,
    ws: Sequence[float] | np.ndarray | None = None,
) -> list[dict]:
    """Per audio SNR level: validation-optimal w and test accuracy of image, audio and fusion.

    `probs_audio_val/test` map an SNR in dB to the audio classifier's probabilities on that
    split at that noise level (the same trained model, no retraining).
    """
    ws = WS if ws is None else check_ws(ws)
    if not isinstance(probs_audio_val, Mapping) or not probs_audio_val or set(
        probs_audio_val) != set(probs_audio_test):
        raise ValueError("probs_audio_val and probs_audio_test should be non-empty dicts with the "
                         "same SNR levels as keys")
    rows = []
    for level in sorted(probs_audio_val, reverse=True):
        p_val, p_test = probs_audio_val[level], probs_audio_test[level]
        w = best_weight(probs_image_val, p_val, y_val, ws)
        test_curve = sweep(probs_image_test, p_test, y_test, ws)
        rows.append({
            "snr_db": float(level),
            "best_w": w,
            "image_only": float(test_curve[np.argmin(np.abs(ws - 1))]),
            "audio_only": float(test_curve[np.argmin(np.abs(ws - 0))]),
            "late_tuned": float(test_curve[np.argmin(np.abs(ws - w))]),
            "val_curve": sweep(probs_image_val, p_val, y_val, ws),
            "test_curve": test_curve,
            "ws": ws,
        })
    return rows


def snr_figure(rows: Sequence[dict], selected: float | None = None) -> plt.Figure:
    """Test accuracy vs w for each audio SNR, each with its validation-optimal w marked.

    The static twin of `snr_explorer`; `selected` draws one level bold.
    """
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(rows)))
    for row, color in zip(rows, colors, strict=True):
        bold = selected is None or np.isclose(row["snr_db"], selected)
        ax.plot(row["ws"], row["test_curve"], color=color, lw=2.2 if bold else 0.8,
                alpha=1 if bold else 0.4, label=f"audio {snr_label(row['snr_db'])}")
        ax.plot([row["best_w"]], [row["late_tuned"]], "v", color=color, ms=9 if bold else 5)
    ax.set(xlabel="w (weight of the image)", ylabel="test accuracy", xlim=(0, 1),
           title="Late fusion vs w as the audio gets noisier (triangles: best w on validation)")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def snr_explorer(rows: Sequence[dict]) -> widgets.VBox:
    """Pick an audio SNR (SelectionSlider, class `mmlearn-snr-slider`) and see the best w move.

    `rows` come from `snr_table` (precomputed, so nothing is retrained on interaction). The
    readout (class `mmlearn-snr-readout`) reads `snr_db=-3 | best_w=0.40 | accuracy=0.7000`.
    """
    if not rows:
        raise ValueError("rows is empty; expected the output of snr_table")
    by_level = {row["snr_db"]: row for row in rows}
    levels = sorted(by_level, reverse=True)
    slider = widgets.SelectionSlider(options=[(snr_label(v), v) for v in levels], value=levels[0],
                                     description="audio SNR", continuous_update=True)
    slider.add_class(SNR_CLASS)
    readout = widgets.HTML(layout=widgets.Layout(font_family="monospace"))
    readout.add_class(SNR_READOUT_CLASS)
    out = widgets.Output()

    def update(level: float) -> None:
        row = by_level[level]
        readout.value = (f"snr_db={level:g} | best_w={row['best_w']:.2f} | "
                         f"accuracy={row['late_tuned']:.4f} | image_only={row['image_only']:.4f}"
                         f" | audio_only={row['audio_only']:.4f}")
        with out:
            out.clear_output(wait=True)
            _show(snr_figure(rows, selected=level))

    slider.observe(lambda change: update(change["new"]), names="value")
    update(levels[0])
    return widgets.VBox([slider, readout, out])


def _check_three(probs: object, y: object) -> tuple[list[str], list[np.ndarray], np.ndarray]:
    """Three modalities' probabilities (a dict modality -> (n, classes)) and their labels."""
    example = "{'image': p_image, 'audio': p_audio, 'text': p_text}"
    if not isinstance(probs, Mapping):
        raise TypeError(f"probs is a {type(probs).__name__}; expected a dict modality -> "
                        f"probabilities, e.g. {example}")
    if len(probs) != 3:
        raise ValueError(f"probs has {len(probs)} modalities {list(probs)}; expected three, "
                         f"e.g. {example}")
    names = [str(m) for m in probs]
    arrays = check_probs(list(probs.values()), labels=[f"probs[{m!r}]" for m in names])
    return names, arrays, check_labels(y, n=len(arrays[0]), n_classes=arrays[0].shape[1],
                                       counted=f"probs[{names[0]!r}] has")


def _on_simplex(weights: object, names: list[str], name: str = "weights") -> np.ndarray:
    """Three weights rounded to the slider's 0.01, each >= 0, summing to 1 (else refused)."""
    return np.round(check_weights(weights, len(names), name=name), 2)


def simplex_readout(probs: Mapping[str, np.ndarray], y: np.ndarray, weights: Sequence[float]
                    ) -> str:
    """`image=0.30 audio=0.25 text=0.45 | accuracy=0.9123 | macro_f1=0.9050` at `weights`."""
    names, arrays, y = _check_three(probs, y)
    w = _on_simplex(weights, names)
    scores = evaluate(y, late_fusion(arrays, (w / w.sum()).tolist()))
    shares = " ".join(f"{m}={v:.2f}" for m, v in zip(names, w, strict=True))
    return f"{shares} | accuracy={scores['accuracy']:.4f} | macro_f1={scores['macro_f1']:.4f}"


def _triangle(ax: plt.Axes, names: list[str], acc: np.ndarray, split: str) -> None:
    """The simplex grid as a triangle of points coloured by accuracy, corners named."""
    x, y = simplex.ternary_xy(simplex.grid(3))
    dots = ax.scatter(x, y, c=acc, cmap="viridis", s=38, marker="h")
    ax.figure.colorbar(dots, ax=ax, shrink=0.8, label=f"{split} accuracy")
    corners = simplex.ternary_xy(np.eye(3))
    ax.plot([*corners[0], corners[0][0]], [*corners[1], corners[1][0]], color="0.5", lw=0.8)
    for name, cx, cy, va in zip(names, *corners, ("top", "top", "bottom"), strict=True):
        ax.annotate(f"{name} = 1", (cx, cy), ha="center", va=va, fontsize=9,
                    xytext=(0, -8 if va == "top" else 6), textcoords="offset points")
    ax.set(xlim=(-0.1, 1.1), ylim=(-0.12, 0.96), xticks=[], yticks=[], aspect="equal")


def simplex_figure(
    probs: Mapping[str, np.ndarray],
    y: np.ndarray,
    weights: Sequence[float],
    *,
    best: Sequence[float] | None = None,
    split: str = "test",
) -> plt.Figure:
    """Late-fusion accuracy over the triangle of weights (current point and validation-optimal
    point marked) beside the confusion matrix at `weights`: the static twin of
    `simplex_explorer`."""
    names, arrays, y = _check_three(probs, y)
    w = _on_simplex(weights, names)
    fig, (ax_t, ax_cm) = plt.subplots(1, 2, figsize=(10.5, 4.2))
    _triangle(ax_t, names, simplex.sweep(arrays, y), split)
    ax_t.plot(*simplex.ternary_xy(w), "o", ms=11, mfc="none", mec="C3", mew=2.2,
              label="weights shown")
    if best is not None:
        ax_t.plot(*simplex.ternary_xy(_on_simplex(best, names, "best")), "*", ms=13, color="C1",
                  label="best on validation")
    ax_t.legend(fontsize=8, loc="upper left")
    ax_t.set_title("Late fusion of three modalities (each point: weights summing to 1)",
                   fontsize=9)
    shares = ", ".join(f"{m} {v:.2f}" for m, v in zip(names, w, strict=True))
    confusion_matrix_plot(y, late_fusion(arrays, (w / w.sum()).tolist()),
                          n_classes=arrays[0].shape[1], normalize=False, ax=ax_cm,
                          title=f"Confusion matrix at {shares} (counts)")
    fig.tight_layout()
    return fig


def simplex_explorer(
    probs: Mapping[str, np.ndarray],
    y: np.ndarray,
    *,
    weights: Sequence[float] | None = None,
    best: Sequence[float] | None = None,
    split: str = "test",
    plot: bool = True,
) -> widgets.VBox:
    """Two sliders for three late-fusion weights, kept on the simplex, with a live readout.

    The sliders (class `mmlearn-simplex-slider`, steps of 0.01, so equal weights are 0.33, 0.33
    and 0.34) set the first two modalities' weights; the third gets 1 minus both. Moving one
    so the two exceed 1 lowers the other, so the weights always sum to 1. Children: a header,
    the two sliders, the readout (class `mmlearn-simplex-readout`, text from
    `simplex_readout`), the validation-optimal weights and an Output with `simplex_figure`
    (`plot=False` skips it, e.g. in tests).
    """
    names, _, y = _check_three(probs, y)
    start = _on_simplex([1 / 3] * 3 if weights is None else weights, names)
    best = None if best is None else _on_simplex(best, names, "best")
    sliders = [widgets.FloatSlider(value=float(v), min=0.0, max=1.0, step=0.01,
                                   description=f"{m} weight", readout_format=".2f",
                                   continuous_update=True, layout=widgets.Layout(width="460px"),
                                   style={"description_width": "initial"})
               for m, v in zip(names[:2], start, strict=False)]
    for slider in sliders:
        slider.add_class(SIMPLEX_CLASS)
    readout = widgets.HTML(layout=widgets.Layout(font_family="monospace"))
    readout.add_class(SIMPLEX_READOUT_CLASS)
    out = widgets.Output()

    def update(moved: int | None = None) -> None:
        if moved is not None and sliders[0].value + sliders[1].value > 1 + 1e-9:
            sliders[1 - moved].value = round(1 - sliders[moved].value, 2)  # calls update again
            return
        a, b = round(sliders[0].value, 2), round(sliders[1].value, 2)
        w = [a, b, round(max(0.0, 1 - a - b), 2)]
        readout.value = simplex_readout(probs, y, w)
        if plot:
            with out:
                out.clear_output(wait=True)
                _show(simplex_figure(probs, y, w, best=best, split=split))

    for i, slider in enumerate(sliders):
        slider.observe(lambda change, i=i: update(i), names="value")
    update()
    best_text = ("no validation-optimal weights given" if best is None else
                 "validation-optimal weights (star): " + ", ".join(
                     f"{m} {v:.2f}" for m, v in zip(names, best, strict=True)))
    header = widgets.HTML(f"<b>Late fusion of {', '.join(names)} on the {split} split</b>: "
                          f"{names[2]} gets 1 minus the two sliders. Drag them.")
    return widgets.VBox([header, *sliders, readout, widgets.HTML(f"<i>{best_text}</i>"), out])
