"""The AV-MNIST benchmark setting: rows per seed, a fusion rule chosen on validation only."""

from __future__ import annotations

import pytest

from mmlearn_helpers import fusion_benchmark as fb
from mmlearn_helpers.data import load_dataset


@pytest.fixture
def tiny(avmnist_dir):
    return {s: load_dataset("avmnist", split=s, data_dir=avmnist_dir, seed=0)
            for s in ("train", "val", "test")}


def test_rows_choose_the_rule_on_validation(tiny):
    rows = fb.late_fusion_benchmark(tiny, seeds=[0, 1], epochs=1, pool={"image": 2},
                                    verbose=False)
    assert [r["seed"] for r in rows] == [0, 1]
    for row in rows:
        assert row["train_seconds"] > 0 and 0 <= row["w"] <= 1
        assert row["chosen"] in fb.RULES and row["fusion"] == row[row["chosen"]]
        assert row[f"val_{row['chosen']}"] == max(row[f"val_{r}"] for r in fb.RULES)
        assert all(0 <= row[k] <= 1 for k in ("image_only", "audio_only", *fb.RULES))
    summary = fb.summary(rows)
    assert summary["seeds"] == 2 and summary["fusion_std"] >= 0
    ours, theirs = fb.comparison_rows(summary)
    assert ours["fusion"] == summary["fusion"] and theirs == fb.MULTIBENCH


def test_bad_data_is_refused(tiny):
    with pytest.raises(ValueError, match="expected a dict with the Datasets"):
        fb.late_fusion_benchmark({"train": tiny["train"]}, seeds=[0], epochs=1)
    with pytest.raises(ValueError, match="rows is empty"):
        fb.summary([])
