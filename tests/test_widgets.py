"""The fusion-weight slider, the SNR explorer and their static twins (no front end needed)."""

import re

import ipywidgets as widgets
import matplotlib
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from mmlearn_helpers.fusion import best_weight, late_fusion
from mmlearn_helpers.plots import plot_missing, plot_robustness, plot_sweep
from mmlearn_helpers.widgets import (
    READOUT_CLASS,
    SIMPLEX_CLASS,
    SIMPLEX_READOUT_CLASS,
    SLIDER_CLASS,
    SNR_CLASS,
    SNR_READOUT_CLASS,
    fusion_explorer,
    fusion_figure,
    readout_text,
    simplex_explorer,
    simplex_figure,
    simplex_readout,
    snr_explorer,
    snr_figure,
    snr_table,
)

matplotlib.use("Agg")


def find_widget(container: widgets.Widget, css_class: str) -> widgets.Widget:
    """The one widget inside `container` (depth first) that carries `css_class`."""
    found = []

    def walk(widget):
        if css_class in getattr(widget, "_dom_classes", ()):
            found.append(widget)
        for child in getattr(widget, "children", ()):
            walk(child)

    walk(container)
    if len(found) != 1:
        raise ValueError(f"container holds {len(found)} widgets with class {css_class!r}; "
                         "expected exactly one")
    return found[0]

READOUT = re.compile(r"^w=(\d\.\d\d) \| accuracy=(\d\.\d{4}) \| macro_f1=(\d\.\d{4})$")


def noisy_probs(y, strength, seed, k=10):
    """Probabilities that favour the true class by `strength` (so accuracy varies with w)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(len(y), k))
    logits[np.arange(len(y)), y] += strength
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def probs():
    y = np.random.default_rng(0).integers(0, 10, 300)
    return noisy_probs(y, 1.2, 1), noisy_probs(y, 1.0, 2), y


def expected_tokens(p_img, p_aud, y, w):
    pred = late_fusion([p_img, p_aud], w).argmax(axis=1)
    return (f"{w:.2f}", f"{accuracy_score(y, pred):.4f}",
            f"{f1_score(y, pred, average='macro'):.4f}")


def test_explorer_contract_slider_and_readout(probs):
    box = fusion_explorer(*probs, w=0.5, best_w=0.65, plot=False)
    assert isinstance(box, widgets.VBox)
    slider = find_widget(box, SLIDER_CLASS)
    assert isinstance(slider, widgets.FloatSlider)
    assert (slider.min, slider.max, slider.step, slider.value) == (0.0, 1.0, 0.05, 0.5)
    assert slider.description == "w (image)"
    readout = find_widget(box, READOUT_CLASS)
    assert isinstance(readout, (widgets.HTML, widgets.Label))
    assert READOUT.match(readout.value).groups() == expected_tokens(*probs, 0.5)
    assert "0.65" in find_widget(box, "mmlearn-best-weight").value


@pytest.mark.parametrize("w", [0.0, 0.05, 0.3, 0.55, 0.9, 1.0])
def test_moving_the_slider_shows_what_late_fusion_gives(probs, w):
    box = fusion_explorer(*probs, plot=False)
    slider, readout = find_widget(box, SLIDER_CLASS), find_widget(box, READOUT_CLASS)
    slider.value = w
    assert READOUT.match(readout.value).groups() == expected_tokens(*probs, w)
    assert readout.value == readout_text(*probs, w)


def test_readout_changes_with_w(probs):
    box = fusion_explorer(*probs, plot=False)
    slider, readout = find_widget(box, SLIDER_CLASS), find_widget(box, READOUT_CLASS)
    seen = set()
    for w in (0.0, 0.5, 1.0):
        slider.value = w
        seen.add(READOUT.match(readout.value).group(2))
    assert len(seen) > 1, "accuracy did not change with w on data where the modalities differ"


def test_explorer_with_plot_redraws_into_its_output(probs):
    box = fusion_explorer(*probs, best_w=0.4)
    find_widget(box, SLIDER_CLASS).value = 0.7
    assert READOUT.match(find_widget(box, READOUT_CLASS).value).group(1) == "0.70"
    assert any(isinstance(child, widgets.Output) for child in box.children)


def test_fusion_figure_is_the_static_twin(probs):
    fig = fusion_figure(*probs, 0.55, best_w=0.6)
    ax_w, ax_cm = fig.axes[:2]
    assert "0.55" in ax_cm.get_title()
    image = ax_cm.images[0].get_array()
    pred = late_fusion(list(probs[:2]), 0.55).argmax(1)
    assert np.trace(image) == (pred == probs[2]).sum()
    assert any("validation" in t.get_text() for t in ax_w.get_legend().get_texts())


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        (lambda p: (p[0], p[1][:200], p[2]), {},
         r"probs_audio has shape \(200, 10\) but probs_image has \(300, 10\)"),
        (lambda p: (p[0], p[1], p[2][:10]), {}, r"y has 10 labels but probs_image has 300"),
        (lambda p: (np.where(p[0] > 0.5, np.nan, p[0]), p[1], p[2]), {}, "probs_image holds NaN"),
        (lambda p: (p[0] * 2, p[1], p[2]), {}, r"probs_image row 0 sums to"),
        (lambda p: p, {"w": 1.3}, r"w=1\.3 should be a float in \[0, 1\] \(the image's share\)"),
        (lambda p: p, {"best_w": -0.2}, r"best_w=-0\.2 should be a float in \[0, 1\]"),
    ],
)
def test_explorer_refuses_bad_inputs(probs, args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fusion_explorer(*args(probs), plot=False, **kwargs)


def test_find_widget_wants_exactly_one():
    box = widgets.VBox([widgets.Label("a"), widgets.Label("b")])
    with pytest.raises(ValueError, match="0 widgets with class 'x'"):
        find_widget(box, "x")


@pytest.fixture(scope="module")
def snr_rows():
    rng = np.random.default_rng(5)
    y_val, y_test = rng.integers(0, 10, 200), rng.integers(0, 10, 200)
    img_val, img_test = noisy_probs(y_val, 1.5, 1), noisy_probs(y_test, 1.5, 2)
    strengths = {10.0: 3.0, 0.0: 1.5, -10.0: 0.2}
    aud_val = {s: noisy_probs(y_val, v, 3) for s, v in strengths.items()}
    aud_test = {s: noisy_probs(y_test, v, 4) for s, v in strengths.items()}
    rows = snr_table(img_val, img_test, aud_val, aud_test, y_val, y_test)
    return rows, (img_val, aud_val, y_val)


def test_snr_table_tunes_w_on_validation_per_level(snr_rows):
    rows, (img_val, aud_val, y_val) = snr_rows
    assert [r["snr_db"] for r in rows] == [10.0, 0.0, -10.0]
    for row in rows:
        assert row["best_w"] == best_weight(img_val, aud_val[row["snr_db"]], y_val,
                                            np.round(np.arange(0, 1.01, 0.05), 2))
    # noisier audio -> more weight on the image
    assert rows[0]["best_w"] < rows[-1]["best_w"]


def test_snr_explorer_updates_on_selection(snr_rows):
    rows, _ = snr_rows
    box = snr_explorer(rows)
    slider, readout = find_widget(box, SNR_CLASS), find_widget(box, SNR_READOUT_CLASS)
    assert isinstance(slider, widgets.SelectionSlider)
    slider.value = -10.0
    assert readout.value.startswith(f"snr_db=-10 | best_w={rows[-1]['best_w']:.2f} | ")
    assert f"accuracy={rows[-1]['late_tuned']:.4f}" in readout.value
    assert len(snr_figure(rows).axes[0].lines) == 2 * len(rows)
    with pytest.raises(ValueError, match="same SNR levels"):
        snr_table(*[np.eye(10)[:2]] * 2, {0.0: np.eye(10)[:2]}, {}, np.arange(2), np.arange(2))


def test_static_figures(snr_rows):
    ws = np.linspace(0, 1, 5)
    curves = np.array([[0.5, 0.6, 0.7, 0.6, 0.4], [0.52, 0.61, 0.69, 0.58, 0.41]])
    fig = plot_sweep(ws, curves, curves - 0.02, {"image only": (0.4, 0.01)}, [0.5, 0.5])
    assert fig.axes[0].get_xlabel().startswith("w")
    with pytest.raises(ValueError, match=r"expected \(seeds, 5\)"):
        plot_sweep(ws, curves[:, :3], curves, {}, [])
    rows = [{"kind": k, "level": lv, "method": m, "accuracy": 0.5, "accuracy_std": 0.01}
            for k, levels in (("snr_db", (0, -5)), ("image_noise", (0.7, 0.9)))
            for lv in levels for m in ("early", "late_tuned")]
    assert len(plot_robustness(rows, {"snr_db": 0, "image_noise": 0.7}).axes) == 2
    summary = {f"missing_{m}_{w}{s}": 0.5 for m in ("audio", "image")
               for w in ("late", "early", "early_mean", "early_dropout") for s in ("", "_std")}
    assert len(plot_missing(summary).axes[0].patches) == 8


# ---------------------------------------------------------------- three modalities

THREE = re.compile(r"^image=(\d\.\d\d) audio=(\d\.\d\d) text=(\d\.\d\d) \| "
                   r"accuracy=(\d\.\d{4}) \| macro_f1=(\d\.\d{4})$")


@pytest.fixture(scope="module")
def probs3():
    y = np.random.default_rng(3).integers(0, 10, 300)
    return {"image": noisy_probs(y, 1.2, 4), "audio": noisy_probs(y, 0.8, 5),
            "text": noisy_probs(y, 1.5, 6)}, y


def simplex_parts(box):
    sliders = [w for w in box.children if SIMPLEX_CLASS in getattr(w, "_dom_classes", ())]
    return sliders, find_widget(box, SIMPLEX_READOUT_CLASS)


def shown(readout) -> tuple[list[float], float]:
    match = THREE.match(readout.value)
    assert match, readout.value
    return [float(v) for v in match.groups()[:3]], float(match[4])


def late3(probs3, w):
    p, y = probs3
    return float(np.mean(late_fusion(list(p.values()), w).argmax(1) == y))


def test_simplex_explorer_starts_at_equal_weights_and_reads_late_fusion(probs3):
    box = simplex_explorer(*probs3, best=[0.2, 0.3, 0.5], plot=False)
    sliders, readout = simplex_parts(box)
    assert [s.description for s in sliders] == ["image weight", "audio weight"]
    assert [(s.min, s.max, s.step) for s in sliders] == [(0.0, 1.0, 0.01)] * 2
    weights, acc = shown(readout)
    assert weights == [0.33, 0.33, 0.34] and acc == pytest.approx(late3(probs3, weights), abs=1e-4)
    assert "text 0.50" in box.children[4].value
    sliders[0].value, sliders[1].value = 0.2, 0.5
    weights, acc = shown(readout)
    assert weights == [0.2, 0.5, 0.3] and acc == pytest.approx(late3(probs3, weights), abs=1e-4)
    assert readout.value == simplex_readout(probs3[0], probs3[1], weights)


def test_simplex_sliders_keep_the_weights_summing_to_one(probs3):
    sliders, readout = simplex_parts(simplex_explorer(*probs3, weights=[0.3, 0.5, 0.2],
                                                      plot=False))
    sliders[0].value = 0.8  # 0.8 + 0.5 > 1: the audio slider gives way
    assert (sliders[0].value, sliders[1].value) == (0.8, pytest.approx(0.2))
    assert shown(readout)[0] == [0.8, 0.2, 0.0]
    sliders[1].value = 1.0
    assert sliders[0].value == 0.0 and shown(readout)[0] == [0.0, 1.0, 0.0]
    for a, b in ((0.0, 0.0), (0.35, 0.65), (0.05, 0.15)):
        sliders[0].value, sliders[1].value = a, b
        weights, acc = shown(readout)
        assert sum(weights) == pytest.approx(1) and min(weights) >= 0
        assert acc == pytest.approx(late3(probs3, weights), abs=1e-4)


def test_simplex_figure_is_the_static_twin(probs3):
    fig = simplex_figure(*probs3, [0.2, 0.3, 0.5], best=[0.1, 0.4, 0.5])
    ax_t, ax_cm = fig.axes[:2]
    assert len(ax_t.collections[0].get_offsets()) == 231  # the whole grid, coloured
    assert "text 0.50" in ax_cm.get_title()
    box = simplex_explorer(*probs3)
    assert any(isinstance(child, widgets.Output) for child in box.children)
    matplotlib.pyplot.close("all")


@pytest.mark.parametrize("kwargs, error, message", [
    ({"weights": [0.5, 0.5, 0.5]}, ValueError, "sums to 1.5"),
    ({"weights": [0.5, 0.5]}, ValueError, "2 weights for 3"),
    ({"best": [0.7, 0.7, -0.4]}, ValueError, "outside [0, 1]"),
])
def test_simplex_explorer_refuses_weights_off_the_simplex(probs3, kwargs, error, message):
    with pytest.raises(error) as info:
        simplex_explorer(*probs3, plot=False, **kwargs)
    assert message in str(info.value)


def test_simplex_explorer_wants_three_modalities(probs3):
    p, y = probs3
    with pytest.raises(ValueError, match="probs has 2 modalities"):
        simplex_explorer({"image": p["image"], "audio": p["audio"]}, y)
    with pytest.raises(TypeError, match="probs is a list"):
        simplex_explorer(list(p.values()), y)
    with pytest.raises(ValueError, match="y has 5"):
        simplex_readout(p, y[:5], [0.2, 0.3, 0.5])
