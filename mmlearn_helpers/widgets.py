"""Sliders for late fusion (notebook 04) and the static figures that twin them headless.

Both widgets take precomputed class probabilities, so moving a slider only re-weights arrays
(no retraining) and answers at once. The CSS classes below are a contract with the browser
test: the weight slider carries `mmlearn-weight-slider`; the readout `mmlearn-fusion-readout`
shows `w=0.55 | accuracy=0.8731 | macro_f1=0.8650` (w with 2 decimals, metrics with 4).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display

from .checks import check_float, check_labels
from .fusion import best_weight, check_probs, check_ws, late_fusion, sweep
from .metrics import evaluate
from .plots import confusion_matrix_plot

SLIDER_CLASS = "mmlearn-weight-slider"
READOUT_CLASS = "mmlearn-fusion-readout"
BEST_CLASS = "mmlearn-best-weight"
SNR_CLASS = "mmlearn-snr-slider"
SNR_READOUT_CLASS = "mmlearn-snr-readout"
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
