"""The settings table: merging with parameters, refusals, and sizes capped to the data."""

from __future__ import annotations

import pytest

from mmlearn_helpers.data import load_dataset
from mmlearn_helpers.settings import TABLE, cap, settings


def test_every_entry_has_both_profiles_and_a_reason():
    for notebook, datasets in TABLE.items():
        assert set(datasets) == {"av_digits", "avmnist"}, notebook
        for entry in datasets.values():
            assert entry["why"] and set(entry) == {"why", "common", "fast", "full"}
            assert set(entry["fast"]) == set(entry["full"]), notebook


def test_none_takes_the_table_and_a_value_overrides_it(capsys):
    table = settings("04_early_vs_late_fusion", "av_digits", "fast", snr_db=None)
    assert table["snr_db"] == -3.0 and table["seeds"] == 3
    mine = settings("04_early_vs_late_fusion", "av_digits", "full", snr_db=20.0)
    assert mine["snr_db"] == 20.0 and mine["seeds"] == 10
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and "snr_db=20.0 (yours)" in out[1] and "Why:" in out[1]


def test_real_data_gets_its_own_settings():
    embedded = settings("05_fine_tuning", "av_digits", "fast", quiet=True)
    real = settings("05_fine_tuning", "avmnist", "fast", quiet=True)
    assert embedded["snr_db"] == 10.0 and real["snr_db"] is None and real["image_noise"] == 0.0


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("no_such_notebook", "av_digits", "fast"), "notebook='no_such_notebook'"),
        (("04_early_vs_late_fusion", "digits", "fast"), "dataset='digits'"),
        (("04_early_vs_late_fusion", "av_digits", "slow"), "profile='slow'"),
    ],
)
def test_unknown_names_are_refused(args, match):
    with pytest.raises(ValueError, match=match):
        settings(*args)


def test_unknown_parameter_is_refused():
    with pytest.raises(ValueError, match=r"\['epoch'\] are not settings"):
        settings("04_early_vs_late_fusion", "avmnist", "fast", epoch=3)


def test_cap_says_once_when_it_cuts(capsys):
    assert cap(None, 50, "cap test") == 50 and cap(10, 50, "cap test") == 10
    assert cap(80, 50, "cap test") == 50 and cap(80, 50, "cap test") == 50
    out = capsys.readouterr().out.splitlines()
    assert out == ["cap test: asked for 80, the data hold 50; using all 50."]


def test_avmnist_takes_what_a_split_holds(avmnist_dir, capsys):
    """A valid but small mnist.npz never crashes a notebook that asks for more pairs."""
    val = load_dataset("avmnist", split="val", data_dir=avmnist_dir, n=2000)
    assert val.n == 10
    assert "avmnist val pairs: asked for 2000, the data hold 10" in capsys.readouterr().out
    with pytest.raises(ValueError, match="n=0; expected a positive integer"):
        load_dataset("avmnist", split="val", data_dir=avmnist_dir, n=0)


def test_the_full_profile_runs_at_least_ten_seeds_everywhere():
    from mmlearn_helpers import capstone
    from mmlearn_helpers.settings import TABLE

    full = {(nb, ds): {**entry["common"], **entry["full"]}
            for nb, by_dataset in TABLE.items() for ds, entry in by_dataset.items()}
    assert all(s["seeds"] >= 10 for s in full.values() if "seeds" in s), full
    assert capstone.BUDGETS["full"]["seeds"] >= 10
    assert all(s["seeds"] == 3 for nb, by_ds in TABLE.items() for s in
               ({**e["common"], **e["fast"]} for e in by_ds.values()) if "seeds" in s)
