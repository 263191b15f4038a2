"""Metrics on known inputs, mean/std, summaries, tables and the plots."""

import math

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from mmlearn_helpers.metrics import (  # noqa: E402
    MIN_EFFECT,
    VERDICTS,
    compare,
    comparison_row,
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
    with pytest.raises(ValueError, match="y_true has 2 labels but the predictions have 3"):
        evaluate(np.array([0, 1]), np.array([0, 1, 1]))
    with pytest.raises(ValueError, match="y_pred_or_probs"):
        evaluate(np.array([0, 1]), np.array([0.2, 0.8]))
    with pytest.raises(TypeError, match=r"y_true has shape \(1, 2\)"):
        evaluate(np.array([[0, 1]]), np.array([0, 1]))
    with pytest.raises(ValueError, match="y_true is empty"):
        evaluate(np.array([], dtype=int), np.array([], dtype=int))


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


def _seed_rows(gain_per_seed, base=0.5, k=1):
    """Per-seed rows of scratch (base + seed-level spread) and frozen (scratch + the gain)."""
    scratch = base + 0.2 * np.sin(np.arange(len(gain_per_seed)))
    return ([{"method": "scratch", "k": k, "seed": s, "accuracy": float(acc)}
             for s, acc in enumerate(scratch)]
            + [{"method": "frozen", "k": k, "seed": s, "accuracy": float(acc + g)}
               for s, (acc, g) in enumerate(zip(scratch, gain_per_seed, strict=True))])


def test_gains_pairs_seeds_and_reads_verdicts():
    out = gains(ROWS)
    assert [(g["k"], g["method"]) for g in out] == [(1, "frozen"), (5, "frozen")]
    # k=1: per-seed gains 0.4 and 0.4; k=5: 0.4 and 0.2
    assert out[0]["gain"] == pytest.approx(0.4) and out[0]["spread"] == pytest.approx(0.0)
    assert out[0]["n"] == 2 and out[0]["low"] == pytest.approx(0.4) == out[0]["high"]
    assert out[1]["gain"] == pytest.approx(0.3) and out[1]["spread"] == pytest.approx(0.1)
    assert out[1]["low"] == pytest.approx(0.2) and out[1]["high"] == pytest.approx(0.4)
    # two seeds never settle anything, however large the gain
    assert [g["verdict"] for g in out] == ["not established", "not established"]
    rng = np.random.default_rng(0)
    better = gains(_seed_rows(0.10 + 0.01 * rng.standard_normal(8)))[0]
    assert better["verdict"] == "better" and better["n"] == 8 and 0 < better["low"] < 0.1
    worse = gains(_seed_rows(-0.10 + 0.01 * rng.standard_normal(8)))[0]
    assert worse["verdict"] == "worse" and worse["high"] < 0
    tiny = gains(_seed_rows(0.002 * rng.standard_normal(8)))[0]
    assert tiny["verdict"] == "negligible"
    noisy = gains(_seed_rows([0.3, -0.2, 0.25, -0.15, 0.1, -0.3, 0.2, 0.0]))[0]
    assert noisy["verdict"] == "not established" and noisy["low"] < 0 < noisy["high"]
    with pytest.raises(ValueError, match="baseline='linear'"):
        gains(ROWS, "linear")
    with pytest.raises(ValueError, match="lacks"):
        gains([{"method": "scratch", "k": 1, "accuracy": 0.5}])


def test_compare_clear_paired_gain_is_better():
    rng = np.random.default_rng(0)
    b = 0.6 + 0.01 * rng.standard_normal(10)
    a = b + 0.10 + 0.01 * rng.standard_normal(10)
    got = compare(a, b)
    assert set(got) == {"a", "b", "diff", "low", "high", "n", "min_effect", "confidence",
                        "verdict"}
    assert got["verdict"] == "better" and got["n"] == 10 and got["min_effect"] == MIN_EFFECT
    assert got["diff"] == pytest.approx(a.mean() - b.mean())
    assert got["a"] == pytest.approx(a.mean()) and got["b"] == pytest.approx(b.mean())
    assert 0 < got["low"] < got["diff"] < got["high"] < 0.2
    flipped = compare(b, a)
    assert flipped["verdict"] == "worse" and flipped["high"] < 0
    assert flipped["low"] == pytest.approx(-got["high"], abs=0.01)
    # above 0 for sure, but maybe below min_effect: not established; surely below it: negligible
    edge = (got["diff"] + got["high"]) / 2
    assert compare(a, b, min_effect=edge)["verdict"] == "not established"
    assert compare(a, b, min_effect=0.2)["verdict"] == "negligible"
    # a wider interval at 99.9%
    wide = compare(a, b, confidence=0.999)
    assert wide["low"] < got["low"] and wide["high"] > got["high"]


def test_compare_pairing_removes_between_seed_variation():
    b = np.linspace(0.3, 0.9, 10)  # seeds differ a lot ...
    a = b + 0.10  # ... but each seed gains exactly 0.10
    paired = compare(a, b)
    assert paired["verdict"] == "better"
    assert paired["low"] == pytest.approx(0.10) and paired["high"] == pytest.approx(0.10)
    unpaired = compare(a, b, paired=False)
    assert unpaired["verdict"] == "not established"
    assert unpaired["low"] < 0 < unpaired["high"]
    assert unpaired["diff"] == pytest.approx(paired["diff"])
    # unpaired runs may have different numbers of seeds; n is the smaller one
    assert compare(a, b[:7], paired=False)["n"] == 7


def test_compare_negligible_and_too_few_seeds():
    x = np.linspace(0.5, 0.7, 10)
    same = compare(x, x)
    assert same["verdict"] == "negligible" and same["diff"] == 0.0
    assert same["low"] == same["high"] == 0.0
    assert compare(x + 0.005, x)["verdict"] == "negligible"
    assert compare([0.9, 0.9], [0.1, 0.1])["verdict"] == "not established"  # 2 seeds
    assert compare([0.5, 0.5], [0.5, 0.5])["verdict"] == "not established"
    assert compare([0.9, 0.91, 0.92], [0.1, 0.1, 0.1])["verdict"] == "better"  # 3 seeds suffice
    assert set(VERDICTS) == {"better", "worse", "negligible", "not established"}


def test_compare_is_deterministic_under_seed():
    rng = np.random.default_rng(1)
    a, b = rng.uniform(0.5, 0.8, 6), rng.uniform(0.5, 0.8, 6)
    assert compare(a, b, seed=3) == compare(a, b, seed=3)
    assert compare(a, b, seed=3)["low"] != compare(a, b, seed=4)["low"]
    assert compare(a.tolist(), b.tolist()) == compare(a, b)  # lists work like arrays


def _one_cluster_gain(n_seeds=10, n_clusters=50, size=60):
    """Per-example 0/1 scores where a beats b only on the examples of cluster 0."""
    rng = np.random.default_rng(0)
    clusters = np.repeat(np.arange(n_clusters), size)
    b = (rng.random((n_seeds, len(clusters))) < 0.6).astype(int)
    a = b.copy()
    a[:, clusters == 0] = 1
    b[:, clusters == 0] = 0
    return a, b, clusters


def test_compare_two_level_bootstrap_covers_clusters():
    a, b, clusters = _one_cluster_gain()
    seeds_only = compare(a, b)
    two_level = compare(a, b, clusters=clusters)
    assert two_level["diff"] == seeds_only["diff"] == pytest.approx(1 / 50)
    # every seed gains the same, so over seeds alone the gain looks certain ...
    assert seeds_only["high"] - seeds_only["low"] < 1e-9
    # ... but it all comes from one cluster, which a draw may miss or take several times
    assert two_level["low"] == pytest.approx(0.0)
    assert two_level["high"] - two_level["low"] > 0.03
    assert two_level["verdict"] == "not established"
    # 2-D without clusters is the same as per-seed means
    assert compare(a.mean(axis=1), b.mean(axis=1)) == pytest.approx(seeds_only)
    unpaired = compare(a, b, clusters=clusters, paired=False)
    assert unpaired["high"] - unpaired["low"] > 0.03


def test_compare_weights_clusters_by_size():
    # one small cluster (10 examples) gains 1, ten clusters of 99 examples gain nothing:
    # the example-weighted gain is 10 / 1000 = 0.01, the unweighted cluster mean 1 / 11
    clusters = np.repeat(np.arange(11), [10] + [99] * 10)
    a = np.tile((clusters == 0).astype(float), (5, 1))
    b = np.zeros_like(a)
    got = compare(a, b, clusters=clusters)
    assert got["diff"] == pytest.approx(0.01)
    assert got["low"] == 0.0 and got["high"] < 0.06


def test_compare_two_level_bootstrap_on_a_test_set_of_realistic_size():
    rng = np.random.default_rng(0)
    clusters = rng.integers(0, 50, 3000)
    a = (rng.random((10, 3000)) < 0.8).astype(int)
    b = (rng.random((10, 3000)) < 0.7).astype(int)
    got = compare(a, b, clusters=clusters)
    assert got["verdict"] == "better" and got["low"] > 0.05


def test_compare_refuses_bad_inputs():
    x = [0.5, 0.6, 0.7]
    with pytest.raises(ValueError, match=r"a has 3 seeds and b has 2; paired=True"):
        compare(x, [0.5, 0.6])
    with pytest.raises(ValueError, match="a has 1 non-finite"):
        compare([0.5, float("nan"), 0.7], x)
    with pytest.raises(ValueError, match="b has 1 non-finite"):
        compare(x, [0.5, float("inf"), 0.7])
    with pytest.raises(ValueError, match="a is empty"):
        compare([], [], paired=False)
    with pytest.raises(ValueError, match=r"and b \(1, 3\)"):
        compare(x, [[0.5, 0.6, 0.7]])
    with pytest.raises(ValueError, match=r"a has shape \(\)"):
        compare(0.5, 0.5)
    with pytest.raises(ValueError, match=r"confidence=1.5 should be a float in \(0, 1\)"):
        compare(x, x, confidence=1.5)
    with pytest.raises(ValueError, match=r"confidence=0 should be a float in \(0, 1\)"):
        compare(x, x, confidence=0)
    with pytest.raises(ValueError, match="min_effect=-0.1"):
        compare(x, x, min_effect=-0.1)
    with pytest.raises(ValueError, match="n_boot=10"):
        compare(x, x, n_boot=10)
    with pytest.raises(ValueError, match="seed=-1"):
        compare(x, x, seed=-1)
    scores = np.ones((3, 4))
    with pytest.raises(ValueError, match=r"clusters has shape \(3,\).*\(4,\)"):
        compare(scores, scores, clusters=[0, 1, 1])
    with pytest.raises(ValueError, match="clusters is given"):
        compare(x, x, clusters=[0, 1, 2])
    with pytest.raises(ValueError, match="test examples"):
        compare(scores, np.ones((3, 5)))
    with pytest.raises(TypeError, match="a has dtype"):
        compare(["0.5", "0.6", "0.7"], x)
    with pytest.raises(TypeError, match="b has dtype"):
        compare(x, None)
    with pytest.raises(TypeError, match="paired='yes'"):
        compare(x, x, paired="yes")
    with pytest.raises(TypeError, match="confidence='0.95'"):
        compare(x, x, confidence="0.95")
    with pytest.raises(TypeError, match="n_boot=1000.0"):
        compare(x, x, n_boot=1000.0)
    with pytest.raises(TypeError, match="seed=None"):
        compare(x, x, seed=None)
    with pytest.raises(TypeError, match="clusters has dtype"):
        compare(scores, scores, clusters=np.array([1j, 2j, 3j, 4j]))


def test_comparison_row_feeds_results_table():
    a = np.array([0.80, 0.82, 0.81, 0.83])
    result = compare(a, a - 0.05)
    row = comparison_row("frozen", "scratch", result)
    assert row == {"a": "frozen", "b": "scratch", "a_score": result["a"],
                   "b_score": result["b"], "difference": result["diff"],
                   "ci": f"[{result['low']:+.3f}, {result['high']:+.3f}]", "verdict": "better"}
    assert comparison_row("x", "y", {**result, "low": -0.0123, "high": 0.0341})["ci"] == (
        "[-0.012, +0.034]")
    table = results_table([row], ["a", "b", "difference", "ci", "verdict"])
    assert table.splitlines()[0] == "| a | b | difference | ci | verdict |"
    assert table.splitlines()[2] == "| frozen | scratch | 0.050 | [+0.050, +0.050] | better |"
    with pytest.raises(ValueError, match="result lacks"):
        comparison_row("x", "y", {"a": 0.5})
    with pytest.raises(TypeError, match="name_b=2"):
        comparison_row("x", 2, result)
    with pytest.raises(TypeError, match="result is a list"):
        comparison_row("x", "y", [result])


def test_in_words_reads_compare_and_gains_results():
    from mmlearn_helpers.metrics import in_words

    got = compare([0.9, 0.92, 0.91, 0.93], [0.8, 0.81, 0.8, 0.82])
    text = in_words(got)
    assert text.startswith(f"{got['diff']:+.3f} (95% CI {got['low']:+.3f} to ")
    assert text.endswith("4 seeds): better")
    rows = [{"method": m, "seed": s, "k": 1, "accuracy": v}
            for s in range(3) for m, v in (("scratch", 0.5), ("frozen", 0.5 + 0.01 * s))]
    assert in_words(gains(rows)[0]).endswith("3 seeds): not established")
    with pytest.raises(ValueError, match="result lacks"):
        in_words({"verdict": "better"})


def test_gains_with_clusters_resample_the_test_groups_too():
    rng = np.random.default_rng(1)
    clusters = np.repeat(np.arange(6), 20)  # 6 speakers, 20 clips each
    rows = []
    for seed in range(5):
        base = rng.random(120) < 0.6
        gain = base | ((clusters == 0) & (rng.random(120) < 0.9))  # one speaker carries it
        for method, hits in (("scratch", base), ("frozen", gain)):
            rows.append({"method": method, "seed": seed, "k": 5, "accuracy": hits.mean(),
                         "correct": hits})
    (by_seed,) = gains(rows)
    (by_speaker,) = gains(rows, clusters=clusters)
    assert by_speaker["gain"] == pytest.approx(by_seed["gain"])
    assert by_speaker["high"] - by_speaker["low"] > 2 * (by_seed["high"] - by_seed["low"])
    with pytest.raises(ValueError, match="lacks \\['correct'\\]"):
        gains([{k: v for k, v in r.items() if k != "correct"} for r in rows], clusters=clusters)
