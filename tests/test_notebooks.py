"""Every notebook runs headless in the fast profile and saves the numbers its issue promises.

Split of work with nbval: papermill executes every notebook once here (parameters injected, as
`make run` does); `make test` then runs `pytest --nbval-lax` only on 00_setup_and_data, the one
notebook that trains nothing, to check a plain top-to-bottom kernel run without papermill. The
training notebooks are not executed a second time for nothing.
"""

import json
import re
from pathlib import Path

import nbformat
import pytest
from conftest import write_avmnist

from mmlearn_helpers.run import NOTEBOOKS_DIR, find_notebooks, run_notebook

NOTEBOOKS = find_notebooks(None, NOTEBOOKS_DIR)
REQUIRED_PARAMETERS = ("profile", "seed", "dataset", "data_dir", "results_dir")
REQUIRED_KEYS = {
    "00_setup_and_data": ["gpus", "replicas"],
    "01_parameter_transfer": [f"{m}_k5_{how}" for m in ("image", "audio", "audio_newvoices")
                              for how in ("scratch", "frozen", "finetuned")]
                             + [f"{m}_k5_{how}" for m in ("image", "audio_newvoices")
                                for how in ("zero_shot", "source_head")]
                             + [f"text_{lang}_k5_{how}" for lang in ("de", "ru")
                                for how in ("scratch", "frozen", "finetuned")],
    "02_feature_transfer": ["probe_image", "probe_audio", "probe_concat", "raw_image", "probe_text",
                            "raw_text", "probe_text_chars2vec", "probe_all_three",
                            "raw_audio", "crossmodal_student", "audio_supervised"],
    "03_structure_transfer": ["audio_k5_structure_only", "audio_k5_same_modality_weights",
                              "audio_k5_image_weights", "audio_k5_mlp", "audio_k5_source_chosen",
                              "audio_k5_random_candidate", "audio_k5_image_finetuned",
                              *(f"text_k5_{arm}" for arm in ("text_cnn", "image_cnn",
                                                             "image_weights", "text_weights")),
                              "text_k5_image_weights_vs_image_cnn_verdict",
                              "text_k5_image_cnn_vs_text_cnn_verdict"],
    "04_early_vs_late_fusion": ["image_only", "audio_only", "early", "late_equal", "late_tuned",
                                "best_w", "late_product", "missing_audio_early",
                                "missing_audio_late", "missing_image_early", "missing_image_late",
                                "three_text_only", "three_early", "three_late_tuned",
                                "three_w_text", "three_missing_text_late",
                                "three_best_vs_two_best_verdict"],
    "05_fine_tuning": ["stage1_acc", "stage2_acc", "bn_training_mode_acc", "bn_inference_mode_acc",
                       "source_acc_before", "source_acc_after", "imbalanced_acc",
                       "imbalanced_macro_f1", "balanced_fix_macro_f1", "missing_drop_acc",
                       "missing_keep_acc"],
    "06_capstone": ["best_method", "single_reference", "late3_tuned_w_text"]
                   + [f"{m}_macro_f1" for m in ("zero_shot_text", "text_scratch",
                                                "text_transfer_frozen", "chars2vec_probe",
                                                "probe3", "early3", "late3_equal", "late3_tuned",
                                                "late3_pretrained_tuned")],
}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_clean(path: Path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell must be tagged 'parameters'"
    for name in REQUIRED_PARAMETERS:
        assert re.search(rf"^{name}\s*=", tagged[0].source, re.M), f"parameters lack {name}"
    assert nb.cells[0].cell_type == "markdown" and "Question" in nb.cells[0].source
    assert "Try it yourself" in nb.cells[-1].source
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"cell {i} has outputs"


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_headless_and_saves_its_numbers(path: Path, runs_dir: Path):
    record = run_notebook(path, runs_dir, "fast")
    assert record["status"] == "ok", f"{path.stem}: {record['error']}"
    saved = json.loads((runs_dir / "results" / f"{path.stem}.json").read_text())
    assert saved["params"]["profile"] == "fast"
    missing = [k for k in REQUIRED_KEYS.get(path.stem, []) if k not in saved["metrics"]]
    assert not missing, f"{path.stem} did not save {missing}"


@pytest.fixture(scope="session")
def small_real_data(tmp_path_factory):
    return write_avmnist(tmp_path_factory.mktemp("avmnist"))


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_sizes_itself_to_a_small_real_data_folder(path: Path, small_real_data: Path,
                                                           tmp_path: Path):
    """dataset="avmnist" on a valid but tiny folder (110/10/30 pairs): no crash on any size."""
    extra = {"dataset": "avmnist", "data_dir": str(small_real_data)}
    record = run_notebook(path, tmp_path, "fast", extra)
    assert record["status"] == "ok", f"{path.stem}: {record['error']}"
    saved = json.loads((tmp_path / "results" / f"{path.stem}.json").read_text())
    assert saved["params"]["dataset"] == "avmnist"
