"""The headless runner: bad arguments stop it early, a failing cell is named, summaries written."""

import json

import nbformat
import pytest

from mmlearn_helpers import run


def _notebook(path, cells):
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "language": "python",
                                                           "display_name": "Python 3"}})
    params = nbformat.v4.new_code_cell('profile = "fast"\nresults_dir = "."')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params] + [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, path)


@pytest.fixture
def books(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    _notebook(folder / "01_fine.ipynb", [
        "from mmlearn_helpers.results import save_results",
        "save_results('01_fine', {'accuracy': 0.75}, results_dir)",
    ])
    _notebook(folder / "02_broken.ipynb", ["x = 1", "raise ValueError('the data is gone')"])
    return folder


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--profile", "slow"], "profile='slow' is not a profile"),
        (["07_nothing"], "notebook '07_nothing' does not exist"),
        (["-p", "not valid"], "should look like name=value"),
    ],
)
def test_bad_arguments_stop_before_any_notebook(books, tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        run.main([*argv, "--notebooks-dir", str(books), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out" / "summary.md").exists()


def test_unwritable_output_folder_is_refused(books, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SystemExit):
        run.main(["--notebooks-dir", str(books), "--out", str(blocker / "runs")])
    assert "cannot be written" in capsys.readouterr().err


def test_notebooks_are_found_by_number_or_name(books):
    found = run.find_notebooks(["02", "01_fine"], books)
    assert [p.stem for p in found] == ["02_broken", "01_fine"]


def test_a_failing_cell_fails_the_run_and_is_named(books, tmp_path, capsys):
    out = tmp_path / "out"
    code = run.main(["--notebooks-dir", str(books), "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 1
    assert "FAILED 02_broken: code cell 3 (`raise ValueError('the data is gone')`)" in captured.err
    assert "ValueError: the data is gone" in captured.err
    summary = json.loads((out / "summary.json").read_text())
    assert [(r["notebook"], r["status"]) for r in summary] == [("01_fine", "ok"),
                                                               ("02_broken", "failed")]
    assert summary[0]["metrics"] == {"accuracy": 0.75}
    assert "| 01_fine | ok |" in (out / "summary.md").read_text()
    assert (out / "02_broken.ipynb").exists()


def test_a_run_prints_no_kernel_warning(tmp_path, capfd):
    """The runner's kernel talks over IPC: no "running over TCP without encryption" notice."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    _notebook(folder / "01_one.ipynb", ["print(6 * 7)"])
    (tmp_path / "out").mkdir()
    record = run.run_notebook(folder / "01_one.ipynb", tmp_path / "out", "fast")
    assert record["status"] == "ok"
    out, err = capfd.readouterr()
    assert "without encryption" not in out + err and "WARNING" not in err
    assert sorted(p.name for p in folder.iterdir()) == ["01_one.ipynb"]  # no sockets left here
    executed = nbformat.read(tmp_path / "out" / "01_one.ipynb", as_version=4)
    assert executed.cells[-1].outputs[0]["text"] == "42\n"


def test_jobs_run_notebooks_side_by_side_and_report_in_reading_order(books, tmp_path, capsys):
    out = tmp_path / "out"
    code = run.main(["--notebooks-dir", str(books), "--out", str(out), "--jobs", "2"])
    captured = capsys.readouterr()
    assert code == 1  # 02_broken still fails the run
    summary = json.loads((out / "summary.json").read_text())
    assert [(r["notebook"], r["status"]) for r in summary] == [("01_fine", "ok"),
                                                               ("02_broken", "failed")]
    assert summary[0]["metrics"] == {"accuracy": 0.75}
    assert "2 at a time" in captured.out
    with pytest.raises(SystemExit):
        run.main(["--notebooks-dir", str(books), "--out", str(out), "--jobs", "0"])
    assert "--jobs 0; expected a positive number" in capsys.readouterr().err
