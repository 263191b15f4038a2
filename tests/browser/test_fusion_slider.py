"""The late-fusion sliders of notebook 04 work in a real JupyterLab, driven by a real browser.

Starts JupyterLab from this venv on 127.0.0.1 (random free port, random token) over a temporary
copy of the notebooks, runs notebook 04 in Debian's chromium through Playwright, moves the
two-modality slider and the three-modality sliders with the keyboard and checks that the
accuracy each shows is what `late_fusion` gives for those weights, and that the three weights
stay on the simplex. Screenshots go to runs/browser/. JupyterLab is always shut down, pass or fail.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from mmlearn_helpers.fusion import late_fusion

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = "04_early_vs_late_fusion.ipynb"
SHOTS = ROOT / "runs" / "browser"
READOUT = re.compile(r"w=(?P<w>[01]\.\d+).*?accuracy=(?P<acc>[01]\.\d{4})", re.S)
READOUT3 = re.compile(r"image=(?P<image>[01]\.\d\d) audio=(?P<audio>[01]\.\d\d) "
                      r"text=(?P<text>[01]\.\d\d).*?accuracy=(?P<acc>[01]\.\d{4})", re.S)

pytestmark = pytest.mark.browser


def _chromium() -> str:
    """Debian's chromium, or skip (fail in CI, where .ci/run installs it)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        path = None
    if path is None:
        why = ("browser test of the fusion slider SKIPPED: needs Debian's chromium "
               "(apt-get install chromium) and playwright (pip install -e '.[browser]')")
        if os.environ.get("CI") == "true":
            pytest.fail(why.replace("SKIPPED", "cannot run in CI"))
        pytest.skip(why)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server over a copy of the notebooks: yields (base url, token, work folder)."""
    work = tmp_path / "notebooks"
    work.mkdir()
    for notebook in (ROOT / "notebooks").glob("*.ipynb"):  # the notebooks only, nothing a run left
        shutil.copy2(notebook, work)
    # A fresh JupyterLab asks which kernel to start and pops up a "news" notice: answer both.
    for ext, name, value in [
        ("apputils-extension", "notification",
         {"fetchNews": "false", "checkForUpdates": False, "doNotDisturbMode": True}),
        ("notebook-extension", "tracker", {"autoStartDefaultKernel": True}),
    ]:
        folder = tmp_path / "lab-settings" / "@jupyterlab" / ext
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.jupyterlab-settings").write_text(json.dumps(value))
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "lab-settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "lab-workspaces"),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
           f"--port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
           "--ServerApp.port_retries=0", "--allow-root"]
    log = (tmp_path / "lab.log").open("w")
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("JupyterLab did not start:\n"
                                       + (tmp_path / "lab.log").read_text()[-3000:]) from None
                time.sleep(0.5)
        yield url, token, work
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and the kernels it started
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


def _shown(page) -> tuple[float, float]:
    """The weight and accuracy the readout widget shows."""
    text = page.locator(".mmlearn-fusion-readout").first.inner_text()
    match = READOUT.search(text)
    assert match, f"readout does not show w=... and accuracy=...: {text!r}"
    return float(match["w"]), float(match["acc"])


def _centre(page, locator) -> None:
    """Scroll the notebook until `locator` sits inside the viewport and stays there.

    JupyterLab re-scrolls after Run All, and its windowed notebook swaps estimated cell heights
    for real ones as cells render, which can push the slider out again after one scroll.
    """
    height = page.viewport_size["height"]
    for _ in range(10):
        locator.evaluate("el => el.scrollIntoView({block: 'center'})")
        page.wait_for_timeout(400)
        box = locator.bounding_box()
        if box and 100 < box["y"] < height - 100:
            return
    raise AssertionError(f"could not scroll the slider into view (last box: {box})")


def _press(page, handle, key: str, presses: int, readout: str, old: str, idle) -> None:
    """Press `key` on a slider handle, then wait until `readout` no longer shows `old`."""
    for _ in range(presses):
        handle.press(key)
    page.wait_for_function(
        "([sel, old]) => !document.querySelector(sel).innerText.includes(old)",
        arg=[readout, old], timeout=10_000)
    idle.wait_for(timeout=30_000)  # the figure has redrawn too


def _drive_two_way(page, idle) -> list[tuple[float, float]]:
    """Move the w slider right 4 steps, then left 9: the (w, accuracy) shown each time."""
    handle = page.locator(".mmlearn-weight-slider .noUi-handle").first
    _centre(page, handle)
    page.screenshot(path=str(SHOTS / "1_slider_before.png"))
    seen = [_shown(page)]
    handle.click()
    for key, presses in (("ArrowRight", 4), ("ArrowLeft", 9)):
        _press(page, handle, key, presses, ".mmlearn-fusion-readout", f"w={seen[-1][0]:.2f}", idle)
        seen.append(_shown(page))
    _centre(page, handle)
    page.screenshot(path=str(SHOTS / "2_slider_after.png"))
    return seen


def _shown3(page) -> tuple[list[float], float]:
    """The three weights and the accuracy the three-modality readout shows."""
    text = page.locator(".mmlearn-simplex-readout").first.inner_text()
    match = READOUT3.search(text)
    assert match, f"readout does not show image=... audio=... text=... accuracy=...: {text!r}"
    return [float(match[m]) for m in ("image", "audio", "text")], float(match["acc"])


def _drive_three_way(page, idle) -> list[tuple[list[float], float]]:
    """Raise the image weight (10 presses), lower the audio one (5), then push the image slider
    to its end (the audio slider must give way): the weights and accuracy shown each time."""
    handles = page.locator(".mmlearn-simplex-slider .noUi-handle")
    _centre(page, handles.nth(1))
    seen = [_shown3(page)]
    for which, key, presses in ((0, "ArrowRight", 10), (1, "ArrowLeft", 5), (0, "End", 1)):
        handles.nth(which).click()
        old = "image={:.2f} audio={:.2f}".format(*seen[-1][0][:2])
        _press(page, handles.nth(which), key, presses, ".mmlearn-simplex-readout", old, idle)
        seen.append(_shown3(page))
    page.screenshot(path=str(SHOTS / "3_simplex_after.png"))
    return seen


def _accuracy(probs: list[np.ndarray], y: np.ndarray, w) -> float:
    return float(np.mean(late_fusion(probs, w).argmax(axis=1) == y))


def test_sliders_update_accuracy_to_what_late_fusion_gives(lab):
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    url, token, work = lab
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{url}/lab/tree/{NOTEBOOK}?token={token}")
            idle = page.get_by_text("Python 3 (ipykernel) | Idle")
            idle.wait_for(timeout=120_000)
            page.locator(".lm-MenuBar-item", has_text="Run").first.click()
            page.locator("li.lm-Menu-item[data-command='runmenu:run-all']").click()
            page.locator(".mmlearn-weight-slider .noUi-handle").first.wait_for(timeout=300_000)
            page.locator(".mmlearn-simplex-slider .noUi-handle").first.wait_for(timeout=300_000)
            idle.wait_for(timeout=300_000)  # and the cells below the sliders have run
            seen = _drive_two_way(page, idle)
            seen3 = _drive_three_way(page, idle)
        finally:
            browser.close()

    results = work.parent / "runs" / "results"
    saved = np.load(results / "04_fusion_probs.npz")
    saved3 = np.load(results / "04_fusion3_probs.npz")
    assert len({w for w, _ in seen}) == 3, f"the slider did not move: {seen}"
    for w, acc in seen:
        expected = _accuracy([saved["probs_image"], saved["probs_audio"]], saved["y"], w)
        assert acc == pytest.approx(expected, abs=1e-4), (
            f"w={w}: the slider shows accuracy {acc}, late_fusion gives {expected}")
    (w0, _), (w1, _), (w2, _), (w3, _) = seen3
    assert w1[0] > w0[0] and w2[1] < w1[1], f"the sliders did not move as pressed: {seen3}"
    assert w3 == [1.0, 0.0, 0.0], f"pushing the image weight to 1 did not zero the others: {seen3}"
    probs3 = [saved3[f"probs_{m}"] for m in ("image", "audio", "text")]
    for w, acc in seen3:
        assert sum(w) == pytest.approx(1) and min(w) >= 0, f"weights off the simplex: {w}"
        expected = _accuracy(probs3, saved3["y"], [v / sum(w) for v in w])
        assert acc == pytest.approx(expected, abs=1e-4), (
            f"weights {w}: the widget shows accuracy {acc}, late_fusion gives {expected}")
