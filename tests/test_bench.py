"""The benchmark's reading of executed notebooks (its timings are numbers, not tests)."""

import nbformat

from mmlearn_helpers.bench import cell_seconds


def test_cell_seconds_reads_papermill_durations(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# title"),
                nbformat.v4.new_code_cell("import numpy as np\nx = 1"),
                nbformat.v4.new_code_cell("")]
    nb.cells[1].metadata["papermill"] = {"duration": 1.5}
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    assert cell_seconds(path) == [(1.5, "import numpy as np"), (0.0, "")]
