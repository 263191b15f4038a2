"""Metrics on known inputs, mean/std, summaries, tables and the plots."""

import math

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from mmlearn_helpers.metrics import (  # noqa: E402
    evaluate,
    gains,
    mean_std,
    results_table,
    summarize,
)
from mmlearn_helpers.plots import (  # noqa: E402
    bar_plot,
    confusion_matrix_plot,
    embedding_plot,
    learning_curve_plot,
)


def test_evaluate_known_values():
    y_true = np.array([0, 0, 1, 1])
    got = evaluate(y_true, np.array([0, 1, 1, 1]))
    # class 0: precision 1, recall 1/2, F1 2/3; class 1: precision 2/3, recall 1, F1 4/5
    assert got == pytest.approx({"accuracy": 0.75, "macro_recall": 0.75,
                                 "macro_f1": (2 / 3 + 4 / 5) / 2})
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7]])
    assert evaluate(y_true, probs) == got
    assert evaluate(y_true, y_true)["macro_f1"] == 1.0


def test_evaluate_macro_recall_weights_classes_equally():
    y_true = np.array([0] * 8 + [1] * 2)
    got = evaluate(y_true, np.zeros(10, dtype=int))
    assert got["accuracy"] == pytest.approx(0.8)
    assert got["macro_recall"] == pytest.approx(0.5)


def test_evaluate_refuses_bad_inputs():
    with pytest.raises(ValueError, match="same non-zero count"):
        evaluate(np.array([0, 1]), np.array([0, 1, 1]))
    with pytest.raises(ValueError, match="y_pred_or_probs"):
        evaluate(np.array([0, 1]), np.array([0.2, 0.8]))
    with pytest.raises(ValueError, match="y_true"):
        evaluate(np.array([[0, 1]]), np.array([0, 1]))


def test_mean_std():
    assert mean_std([1, 2, 3]) == pytest.approx((2.0, math.sqrt(2 / 3)))
    assert mean_std([0.5]) == (0.5, 0.0)
    with pytest.raises(ValueError, match="values"):
        mean_std([])
    with pytest.raises(ValueError, match="values"):
        mean_std([1.0, float("nan")])


ROWS = [
    {"method": m, "k": k, "seed": s, "accuracy": acc, "macro_recall": acc, "macro_f1": acc}
    for (m, k, s, acc) in [
        ("scratch", 1, 0, 0.2), ("scratch", 1, 1, 0.4), ("frozen", 1, 0, 0.6),
        ("frozen", 1, 1, 0.8), ("scratch", 5, 0, 0.5), ("scratch", 5, 1, 0.7),
        ("frozen", 5, 0, 0.9), ("frozen", 5, 1, 0.9),
    ]
]


def test_summarize_groups_in_order_with_mean_and_std():
    summary = summarize(ROWS)
    assert [(r["method"], r["k"]) for r in summary] == [
        ("scratch", 1), ("frozen", 1), ("scratch", 5), ("frozen", 5)]
    assert summary[0]["accuracy"] == pytest.approx(0.3)
    assert summary[0]["accuracy_std"] == pytest.approx(0.1)
    assert summary[3]["accuracy_std"] == 0.0 and summary[3]["n"] == 2
    with pytest.raises(ValueError, match="lacks"):
        summarize([{"method": "x", "k": 1}])
    with pytest.raises(ValueError, match="empty"):
        summarize([])


def test_results_table_is_markdown_with_spreads():
    table = results_table(summarize(ROWS), ["method", "k", "accuracy", "accuracy_std"])
    lines = table.splitlines()
    assert lines[0] == "| method | k | accuracy |"
    assert lines[2] == "| scratch | 1 | 0.300 ± 0.100 |"
    assert len(lines) == 2 + 4
    assert table._repr_markdown_() == table == repr(table)  # rendered in Jupyter, text elsewhere
    with pytest.raises(ValueError, match="lacks column"):
        results_table(ROWS, ["method", "missing"])


def test_plots_return_figures():
    summary = summarize(ROWS)
    fig = learning_curve_plot(summary, chance=0.1, title="toy")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.containers) == 2  # one errorbar container per method
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {"scratch", "frozen", "chance"}
    y_true = np.array([0, 1, 2, 2, 1])
    assert isinstance(confusion_matrix_plot(y_true, np.array([0, 1, 2, 1, 1])), Figure)
    rng = np.random.default_rng(0)
    feats, labels = rng.normal(size=(40, 6)), np.arange(40) % 4
    assert isinstance(embedding_plot(feats, labels, method="pca"), Figure)
    assert isinstance(embedding_plot(feats, labels, method="tsne"), Figure)
    assert isinstance(bar_plot(["a", "b"], [0.5, 0.7], [0.1, 0.05], chance=0.1), Figure)
    plt.close("all")


def test_plots_refuse_bad_inputs():
    with pytest.raises(ValueError, match="accuracy_std"):
        learning_curve_plot([{"method": "a", "k": 1, "accuracy": 0.5}])
    with pytest.raises(ValueError, match="method='umap'"):
        embedding_plot(np.zeros((5, 2)), np.arange(5), method="umap")
    with pytest.raises(ValueError, match="lengths"):
        bar_plot(["a"], [0.1, 0.2])
    with pytest.raises(TypeError, match="Axes"):
        bar_plot(["a"], [0.1], ax="left")
    plt.close("all")


def test_gains_pairs_seeds_and_reads_verdicts():
    out = gains(ROWS)
    assert [(g["k"], g["method"]) for g in out] == [(1, "frozen"), (5, "frozen")]
    # k=1: per-seed gains 0.4 and 0.4; k=5: 0.4 and 0.2
    assert out[0]["gain"] == pytest.approx(0.4) and out[0]["spread"] == pytest.approx(0.0)
    assert out[0]["verdict"] == "better" and out[0]["n"] == 2
    assert out[1]["gain"] == pytest.approx(0.3) and out[1]["spread"] == pytest.approx(0.1)
    assert out[1]["verdict"] == "better"  # 0.3 > 2 x 0.1
    noisy = [dict(r) for r in ROWS[:4]]
    noisy[2]["accuracy"], noisy[3]["accuracy"] = 0.1, 0.8  # per-seed gains -0.1 and +0.4
    assert gains(noisy)[0]["verdict"] == "no clear difference"
    worse = [dict(r) for r in ROWS[:4]]
    worse[2]["accuracy"], worse[3]["accuracy"] = 0.0, 0.1  # gains -0.2 and -0.3
    assert gains(worse)[0]["verdict"] == "worse"
    with pytest.raises(ValueError, match="baseline='linear'"):
        gains(ROWS, "linear")
    with pytest.raises(ValueError, match="lacks"):
        gains([{"method": "scratch", "k": 1, "accuracy": 0.5}])
