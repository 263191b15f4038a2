"""Notebook parameters are refused early and clearly; results are saved as plain JSON."""

import json

import numpy as np
import pytest

from mmlearn_helpers.params import check_parameters, check_profile, check_results_dir
from mmlearn_helpers.results import load_results, save_results


def test_good_parameters_come_back_resolved(tmp_path):
    params = check_parameters("fast", 3, "digits", None, tmp_path / "out")
    assert params["profile"] == "fast" and params["seed"] == 3
    assert (tmp_path / "out").is_dir() and params["results_dir"] == str(tmp_path / "out")


@pytest.mark.parametrize("profile", ["quick", "FAST", "", None])
def test_unknown_profile_is_refused(profile):
    with pytest.raises(ValueError, match=r"profile=.*expected one of \('fast', 'full'\)"):
        check_profile(profile)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seed": -1}, "seed=-1 should be an int >= 0"),
        ({"dataset": "cifar"}, "dataset='cifar' is unknown; expected one of"),
        ({"data_dir": "/no/such/folder"}, "data_dir='/no/such/folder' is not a folder"),
        ({"profile": "slow"}, "profile='slow' is not a profile"),
    ],
)
def test_bad_parameters_name_the_argument(tmp_path, kwargs, message):
    args = {"profile": "fast", "seed": 0, "dataset": "digits", "data_dir": None,
            "results_dir": tmp_path}
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_parameters(**{**args, **kwargs})


def test_a_seed_of_the_wrong_type_is_a_type_error(tmp_path):
    with pytest.raises(TypeError, match="seed=1.5 is a float; expected an int >= 0"):
        check_parameters("fast", 1.5, "digits", None, tmp_path)


def test_results_dir_that_cannot_be_written_is_refused(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(ValueError, match="results_dir=.*cannot be written"):
        check_results_dir(blocker / "results")


def test_save_results_writes_plain_json_with_params_and_environment(tmp_path):
    path = save_results("01_demo", {"acc": np.float32(0.5), "n": np.int64(3), "best": "late"},
                        tmp_path, {"profile": "fast", "seed": 0})
    payload = json.loads(path.read_text())
    assert payload["metrics"] == {"acc": 0.5, "n": 3, "best": "late"}
    assert payload["params"]["profile"] == "fast"
    assert payload["environment"]["backend"] == "tensorflow"
    assert "CPU" in payload["environment"]["device"] or "GPU" in payload["environment"]["device"]
    assert load_results(tmp_path)["01_demo"]["metrics"]["n"] == 3


@pytest.mark.parametrize(
    ("name", "metrics", "error", "message"),
    [
        ("../escape", {"a": 1}, ValueError, "name='../escape' should be a file stem"),
        ("ok", {}, ValueError, "metrics should be a non-empty dict"),
        ("ok", {"a": float("nan")}, ValueError, r"metrics\['a'\]=nan is not finite"),
        ("ok", {"a": [1, 2]}, TypeError, r"metrics\['a'\] is a list"),
    ],
)
def test_save_results_refuses_what_json_cannot_hold(tmp_path, name, metrics, error, message):
    with pytest.raises(error, match=message):
        save_results(name, metrics, tmp_path)
