"""The benchmark's reading of executed notebooks (its timings are numbers, not tests)."""

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from mmlearn_helpers import bench
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


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_peak_memory_reads_each_descendant_own_high_water_mark():
    code = "import time; b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096]); " \
           "print('ready', flush=True); time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        assert child.pid in bench._descendants(os.getpid())
        assert 300 <= bench._peak_mib([child.pid]) < 600  # its own peak, not its parent's
    finally:
        child.kill()
        child.wait()
