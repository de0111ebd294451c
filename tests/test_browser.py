"""A student's JupyterLab session, driven in a real headless Chromium.

``imgrec lab`` copies the lessons into a temporary folder and starts JupyterLab 4 on it; Playwright
drives Debian's Chromium (``/usr/bin/chromium``; browser downloads do not work here, so never
``playwright install``). The test opens lesson 01 as a student would, runs all cells from the Run
menu, and checks what the student sees: no error or stderr output (TensorFlow's C++ log is the
usual culprit), the figures drawn, and that JupyterLab saved into the copy, not into ``notebooks/``.
A second, scratch notebook trains a tiny model with ``verbose=lesson.verbose`` and checks that
Keras' progress bar is live (it moves while the cell runs) and ends as one line per epoch. A third shows
that a course error (a missing photo) is one line in the page, not a traceback. A fourth fetches a photo set into
an empty data home and checks that the download shows tqdm's progress widget.
A screenshot of each goes to ``$IMGREC_SCREENSHOTS`` (default: the test's temporary folder).

Skipped, with the reason, where Chromium or Playwright is not installed; lesson 01 needs the real
CIFAR-10, fetched into the data home first (``real_home``).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest


REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path(os.environ.get("IMGREC_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TOKEN = "imgrec-browser-test"
STDERR = ('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"], '
          '.jp-RenderedText[data-mime-type*="stderr"], .jp-OutputArea-output[data-mime-type*="error"]')
TF_LOG = re.compile(r"I0000|W0000|E0000|cuInit|oneDNN custom operations|absl::InitializeLog")

pytestmark = pytest.mark.slow


def _skip_without_browser() -> None:
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install -y chromium chromium-driver (or set IMGREC_CHROMIUM)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("Playwright's Python package is not installed: pip install -e '.[dev]'")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sha(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.ipynb"))}


@pytest.fixture(scope="module")
def lab(tmp_path_factory, real_home):
    """``imgrec lab --dir <tmp> --no-browser --port N`` running; yields (base URL, folder, run folder, shots)."""
    _skip_without_browser()
    tmp = tmp_path_factory.mktemp("lab")
    folder, run_dir, jupyter = tmp / "my-notebooks", tmp / "run", tmp / "jupyter"
    settings = jupyter / "settings"
    # every cell in the page (no virtual scrolling), no news pop-up: what the test reads is all there
    for plugin, values in {"@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
                           "@jupyterlab/apputils-extension/notification": {"fetchNews": "false",
                                                                            "checkForUpdates": False}}.items():
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    config = jupyter / "config" / "jupyter_server_config.json"  # CI runs as root
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps({"ServerApp": {"allow_root": True}}))
    port = _free_port()
    env = dict(os.environ, JUPYTER_TOKEN=TOKEN, JUPYTERLAB_SETTINGS_DIR=str(settings),
               JUPYTERLAB_WORKSPACES_DIR=str(jupyter / "workspaces"), JUPYTER_RUNTIME_DIR=str(jupyter / "runtime"),
               JUPYTER_CONFIG_DIR=str(jupyter / "config"), IMGREC_DATA_HOME=str(real_home))
    env.pop("IMGREC_HEADLESS", None)  # as in a student's shell (imgrec lab removes it too)
    log = open(tmp / "jupyterlab.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "imgrec_helpers", "lab", "--dir", str(folder), "--no-browser",
                             "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while True:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail("JupyterLab did not start: " + (tmp / "jupyterlab.log").read_text()[-3000:])
            time.sleep(0.5)
    shots = Path(os.environ.get("IMGREC_SCREENSHOTS", tmp))
    try:
        yield base, folder, run_dir, shots
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
        log.close()


@pytest.fixture
def page(lab, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
            headless=True, viewport={"width": 1400, "height": 1000})
        try:
            yield browser.pages[0] if browser.pages else browser.new_page()
        finally:
            browser.close()


def _open(page, base: str, name: str):
    """Open ``name`` alone (``reset``: no tab restored from before); returns its notebook panel."""
    page.goto(f"{base}/lab/tree/{name}?reset&token={TOKEN}")
    panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    panel.locator(".jp-Cell").first.wait_for(timeout=60_000)
    # the kernel is up (Run All before that opens JupyterLab's "Select Kernel" dialog)
    page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\| Idle$")).wait_for(timeout=90_000)
    assert page.locator(".jp-NotebookPanel").count() == 1  # the page-wide waits below rely on it
    return panel


def _run_all(page) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()


def _wait_until_done(page, timeout_s: float, shot: Path) -> None:  # (one notebook open: see _open)
    """Run All in a fresh kernel numbers the code cells 1..N: wait until the prompts read exactly that,
    or until nothing runs any more after an error or stderr output (the caller's asserts say which)."""
    try:
        page.wait_for_function(
            """(stderr) => {
                const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]
                    .map(p => p.textContent.trim());
                const done = prompts.length > 0 && prompts.every((p, i) => p === `[${i + 1}]:`);
                const stopped = !prompts.includes('[*]:') && document.querySelector(stderr) !== null;
                return done || stopped;
            }""", arg=STDERR, timeout=timeout_s * 1000, polling=500)
    finally:
        page.screenshot(path=str(shot), full_page=True)


def _save(page) -> None:
    page.keyboard.press("Control+s")
    page.wait_for_function("() => !document.querySelector('.jp-mod-dirty')", timeout=30_000)


def test_lesson_01_runs_clean_in_jupyterlab(lab, page):
    base, folder, run_dir, shots = lab
    tracked = _sha(REPO / "notebooks")
    copy = folder / "01_data_exploration.ipynb"
    nb = nbformat.read(copy, as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    params.source = params.source.replace('RUN_DIR = ""', f'RUN_DIR = "{run_dir}"')  # not the repository's runs/
    nbformat.write(nb, copy)

    panel = _open(page, base, copy.name)
    _run_all(page)
    _wait_until_done(page, timeout_s=240, shot=shots / "browser-lesson-01.png")

    stderr = panel.locator(STDERR)
    assert stderr.count() == 0, "stderr or error output in JupyterLab: " + stderr.first.inner_text()[:600]
    text = panel.locator(".jp-OutputArea-output").all_inner_texts()
    assert text and not [t for t in text if TF_LOG.search(t)]
    assert panel.locator(".jp-OutputArea-output").filter(has_text="x_train  shape (50000, 32, 32, 3)").count() == 1
    sizes = panel.locator(".jp-OutputArea-output img").evaluate_all(
        "imgs => imgs.map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
    assert len(sizes) >= 2 and all(ok and w > 100 and h > 100 for ok, w, h in sizes), sizes  # the two figures
    panel.locator(".jp-OutputArea-output img").nth(1).screenshot(path=str(shots / "browser-lesson-01-figure.png"))

    _save(page)
    saved = nbformat.read(copy, as_version=4)  # JupyterLab saved into the student's copy ...
    outputs = [o for c in saved.cells if c.cell_type == "code" for o in c.outputs]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 2
    assert not [o for o in outputs if o.output_type == "error" or o.get("name") == "stderr"]
    assert (run_dir / "figures" / "01_class_counts.png").is_file()
    assert _sha(REPO / "notebooks") == tracked  # ... and never into the tracked notebooks


PROGRESS_NOTEBOOK = [
    "from imgrec_helpers import running\n\nlesson = running.start_lesson('00', 'smoke', 42, RUN_DIR, '')",
    "print('verbose', lesson.verbose)",
    "import time\n\nimport keras\nimport numpy as np\n\n"
    "class Slow(keras.callbacks.Callback):\n"
    "    def on_train_batch_end(self, batch, logs=None):\n"
    "        time.sleep(0.2)\n\n"
    "model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])\n"
    "model.compile(optimizer='sgd', loss='mse')\n"
    "history = model.fit(np.zeros((320, 4)), np.zeros(320), batch_size=32, epochs=2,\n"
    "                    verbose=lesson.verbose, callbacks=[Slow()])",
]


def test_progress_bar_is_live_in_jupyterlab(lab, page):
    base, folder, run_dir, shots = lab
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(f'RUN_DIR = "{run_dir}"')] + [nbformat.v4.new_code_cell(s)
                                                                          for s in PROGRESS_NOTEBOOK]
    nbformat.write(nb, folder / "scratch_progress.ipynb")

    panel = _open(page, base, "scratch_progress.ipynb")
    _run_all(page)
    fit_output = panel.locator(".jp-CodeCell").nth(3).locator(".jp-OutputArea-output")
    # while the fit runs (10 steps x 0.2 s per epoch), a progress line shows and moves on
    seen = set()
    deadline = time.time() + 120
    while time.time() < deadline and len(seen) < 3:
        for t in fit_output.all_inner_texts():
            seen.update(re.findall(r"^\s*(\d+)/10\b", t, re.M))
        time.sleep(0.2)
    assert len(seen) >= 3, f"no live progress bar: steps seen {sorted(seen)}"
    _wait_until_done(page, timeout_s=120, shot=shots / "browser-progress.png")

    assert panel.locator(".jp-CodeCell").nth(2).locator(".jp-OutputArea-output").inner_text().strip() == "verbose 1"
    final = "\n".join(fit_output.all_inner_texts())
    assert re.findall(r"^Epoch (\d)/2$", final, re.M) == ["1", "2"]
    step_lines = re.findall(r"^\s*\d+/10\b.*$", final, re.M)
    assert len(step_lines) == 2 and all(line.lstrip().startswith("10/10") for line in step_lines), final
    assert "loss" in step_lines[-1]
    assert panel.locator(STDERR).count() == 0


def test_a_course_error_is_one_line_in_jupyterlab(lab, page):
    """What a student sees for a missing photo: the cell's error is the one line that says what to do, not a
    traceback through the helper code."""
    base, folder, run_dir, shots = lab
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("from imgrec_helpers import data"),
                nbformat.v4.new_code_cell("photo = data.load_image('/no/such/photo.jpg', 32)")]
    nbformat.write(nb, folder / "scratch_error.ipynb")

    panel = _open(page, base, "scratch_error.ipynb")
    _run_all(page)
    _wait_until_done(page, timeout_s=120, shot=shots / "browser-error.png")
    error = panel.locator(STDERR)  # JupyterLab renders an error's traceback as stderr text
    assert error.count() == 1
    assert error.inner_text().strip() == "ImageError: /no/such/photo.jpg: no such image file; check the path"


def test_a_download_shows_a_progress_widget_in_jupyterlab(lab, page, tmp_path):
    """A student's first fetch in JupyterLab: the 64 photos of lesson 03/04 come into an EMPTY data home (from
    IMGREC_DATA_MIRROR, or the internet) with tqdm's progress widget, and nothing on stderr."""
    base, folder, run_dir, shots = lab
    empty = tmp_path / "empty-home"
    empty.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("from imgrec_helpers import sources"),
                nbformat.v4.new_code_cell(f"folder = sources.fetch_set('dog_vs_notdog', {str(empty)!r})"),
                nbformat.v4.new_code_cell("print(len(list(folder.rglob('*.jpg'))), 'photos')")]
    nbformat.write(nb, folder / "scratch_fetch.ipynb")

    panel = _open(page, base, "scratch_fetch.ipynb")
    _run_all(page)
    _wait_until_done(page, timeout_s=180, shot=shots / "browser-fetch.png")
    assert panel.locator(STDERR).count() == 0
    fetch_output = panel.locator(".jp-CodeCell").nth(1).locator(".jp-OutputArea-output")
    assert fetch_output.locator(".widget-hprogress").count() == 1  # ipywidgets' progress bar, not text on stderr
    assert "64/64" in fetch_output.inner_text()
    assert panel.locator(".jp-CodeCell").nth(2).locator(".jp-OutputArea-output").inner_text().strip() == "64 photos"
