"""The whole course on the smoke profile, executed once (``imgrec run --profile smoke``, started in the
background by tests/conftest.py) and checked here from every side:

- the run: every notebook ok, a progress line each, the manifest, papermill's injected parameters;
- nbval's check: the ``# NBVAL_CHECK_OUTPUT`` cells' outputs equal their committed references, by nbval's
  comparison rules (``tools/nbtools.py``), on the same executed copies instead of a second execution;
- a clean session: no error, no stderr output and no TensorFlow C++ log line in any output (the kernels
  capture file-descriptor output as JupyterLab's do), the figures drawn inline, nothing of it in the
  command's own output either;
- one line per epoch when training headless (``lesson.verbose`` is 2 there);
- the result records and the report;
- the same seed gives the same results: lesson 02 run again into another folder records the same numbers.
"""
from __future__ import annotations

import html
import importlib.util
import json
import re
from pathlib import Path

import nbformat
import pytest

from imgrec_helpers import results
from imgrec_helpers.course import runner

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = runner.course_notebooks(REPO / "notebooks")
TF_LOG = re.compile(r"I0000|W0000|E0000|cuInit|oneDNN custom operations|absl::InitializeLog")

_spec = importlib.util.spec_from_file_location("nbtools", REPO / "tools" / "nbtools.py")
nbtools = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(nbtools)

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


def _texts(output) -> list[str]:
    if output.output_type == "stream":
        return [output.text]
    if output.output_type == "error":
        return [output.ename, output.evalue, *output.get("traceback", [])]
    return [v for k, v in output.get("data", {}).items() if k.startswith("text/") and isinstance(v, str)]


@pytest.fixture(scope="module")
def run(smoke_run):
    assert smoke_run.returncode == 0, smoke_run.stdout[-3000:] + smoke_run.stderr[-3000:]
    return smoke_run


def test_smoke_run_completes(run):
    n = len(NOTEBOOKS)
    assert len(re.findall(rf"^\[\d+/{n}\] \S+: ok \(\d+\.\d s\)$", run.stdout, re.M)) == n
    manifest = json.loads((run.out / "manifest.json").read_text())
    assert manifest["status"] == "ok" and manifest["profile"] == "smoke" and manifest["seed"] == 42
    assert list(manifest["notebooks"]) == [p.name for p in NOTEBOOKS]
    assert all(nb["status"] == "ok" for nb in manifest["notebooks"].values())
    # the run started from an empty data home: it fetched every set and says which copies the lessons read
    assert manifest["data"]["images/samples"] == "19 in the repository"
    assert re.fullmatch(r"327 (public originals|mirror copies)", manifest["data"]["images/alpaca"])
    assert "data" in (run.out / "report.html").read_text() and "327 " in (run.out / "report.html").read_text()
    for path in NOTEBOOKS:
        executed = nbformat.read(run.out / path.name, as_version=4)
        assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    # the command's own output is its progress lines: no TensorFlow log, nothing on stderr
    assert not TF_LOG.search(run.stdout + run.stderr) and run.stderr.strip() == ""


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_checked_outputs_match_the_references(run, path):
    committed = nbformat.read(path, as_version=4)
    assert any(nbtools.CHECK_MARK in c.source for c in committed.cells if c.cell_type == "code")
    problems = nbtools.checked_output_differences(committed, nbformat.read(run.out / path.name, as_version=4))
    assert not problems, f"{path.name}: " + "\n".join(problems) + \
        "\n(if the change is intended: python tools/nbtools.py refresh-reference RUN_DIR after a smoke run)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_executed_notebook_is_clean(run, path):
    executed = nbformat.read(run.out / path.name, as_version=4)
    outputs = [(i, o) for i, c in enumerate(executed.cells) if c.cell_type == "code" for o in c.outputs]
    assert outputs
    errors = [(i, o.ename) for i, o in outputs if o.output_type == "error"]
    stderr = [(i, o.text[:300]) for i, o in outputs if o.output_type == "stream" and o.name == "stderr"]
    tf_log = [(i, t[:300]) for i, o in outputs for t in _texts(o) if TF_LOG.search(t)]
    assert not errors and not stderr and not tf_log, f"cell index: output -- {errors + stderr + tf_log}"
    if "plots." in "".join(c.source for c in executed.cells if c.cell_type == "code"):
        assert any("image/png" in o.get("data", {}) for _, o in outputs), "no figure drawn inline"


def test_headless_training_prints_one_line_per_epoch(run):
    """``imgrec run`` sets IMGREC_HEADLESS=1, so ``verbose=lesson.verbose`` is 2: "Epoch k/N" and one line
    with the epoch's figures, no progress bar (carriage returns, backspaces) in any executed notebook."""
    fits = 0
    for path in NOTEBOOKS:
        for cell in nbformat.read(run.out / path.name, as_version=4).cells:
            text = "".join(o.text for o in cell.get("outputs", []) if o.output_type == "stream")
            assert "\r" not in text and "\b" not in text, f"{path.name}: a progress bar in a headless run"
            epochs = re.findall(r"^Epoch \d+/\d+$", text, re.M)
            if epochs:
                fits += 1
                assert len(re.findall(r"^\d+/\d+ - \d+m?s - .*loss: ", text, re.M)) == len(epochs), text[:600]
    assert fits >= 1  # lesson 02 at least trains with verbose=lesson.verbose


def test_result_records_and_report(run):
    records = results.load_results(run.out)
    assert {"02_scratch_cnn", "04c_transfer_cifar10"} <= {r["name"] for r in records}
    for r in records:
        assert set(results.REQUIRED_KEYS) <= set(r) and r["profile"] == "smoke"
        assert 0.0 <= r["test_accuracy"] <= 1.0
    assert results.load_results(run.out, kind="curve")

    # the report: every table cell matches the records; figures embedded; notebooks linked
    report = (run.out / "report.html").read_text()
    table = re.search(r"<table id='comparison'>(.*?)</table>", report, re.S).group(1)
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:]
    cells = [re.findall(r"<td>(.*?)</td>", row) for row in rows]
    assert [[html.unescape(c) for c in row] for row in cells] == results.table_rows(records)
    for figure in ("02_learning_curves", "02_confusion_matrix", "05_data_efficiency"):
        assert re.search(rf"<figure id='{figure}'><img alt='{figure}' src='data:image/png;base64,[A-Za-z0-9+/=]{{200,}}'",
                         report)
    for path in NOTEBOOKS:
        assert f"href='html/{path.stem}.html'" in report and (run.out / "html" / f"{path.stem}.html").is_file()
    # lesson 06's "when to use what" table, one row per recorded approach, the cloud marked as not run
    api_table = re.search(r"<table id='api_comparison'>(.*?)</table>", report, re.S).group(1)
    api_records = results.load_results(run.out, kind="api_comparison")
    assert len(re.findall(r"<tr>", api_table)) - 1 == len(api_records) == 4
    assert "not run" in html.unescape(api_table)
    ocr = {r["name"]: r for r in results.load_results(run.out, kind="ocr")}["06_ocr"]
    assert ocr["test_images"] >= 50 and 0.0 <= ocr["cer"] < 1.0


def test_manifest_and_report_say_where_each_lesson_trained(run):
    """tf.distribute: the lessons that train record strategy, replicas and devices; the manifest collects them per
    notebook and the report's notebook table shows them (one device here: the default strategy)."""
    manifest = json.loads((run.out / "manifest.json").read_text())
    one_device = "default strategy, 1 replica (CPU:0)"
    for name, nb in manifest["notebooks"].items():
        expected = [one_device] if name[:2] in ("02", "04", "05") else None
        assert nb.get("trained_on") == expected, name
    for r in results.load_results(run.out, kind=None):
        if r.get("lesson") in ("02", "04", "05"):
            assert (r["strategy"], r["replicas"], r["devices"]) == ("default strategy", 1, ["CPU:0"]), r["name"]
    report = html.unescape((run.out / "report.html").read_text())
    rows = re.findall(r"<tr><td>(\d\d_\w+\.ipynb)</td>.*?</tr>", report, re.S)
    assert len(rows) == len(NOTEBOOKS)
    assert report.count(f"<td>{one_device}</td>") == 3 and report.count("<td>no training</td>") == len(NOTEBOOKS) - 3


def test_the_deployment_table_is_this_runs_measurement(run):
    """Lesson 07's table, in the executed notebook and in report.html, is made of the deployment records this run
    wrote while lesson 07 ran (three models, three formats each), and each file size is the size of the file
    the run exported."""
    from imgrec_helpers import deployment

    records = results.load_results(run.out, kind=deployment.KIND)
    assert len(records) == 9 and {r["format"] for r in records} == {".keras", "LiteRT float32", "LiteRT int8"}
    started = json.loads((run.out / "manifest.json").read_text())["notebooks"]["07_explain_and_deploy.ipynb"]["started"]
    for r in records:
        assert r["recorded"] >= started and r["profile"] == "smoke" and r["ms_per_image"] > 0
        assert round((run.out / r["file"]).stat().st_size / 1e6, 3) == r["file_mb"]
    report = (run.out / "report.html").read_text()
    table = re.search(r"<table id='deployment'>(.*?)</table>", report, re.S).group(1)
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:]
    assert [[html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", row)] for row in rows] == deployment.rows(records)
    executed = nbformat.read(run.out / "07_explain_and_deploy.ipynb", as_version=4)
    shown = [o.data["text/markdown"] for c in executed.cells if c.cell_type == "code" for o in c.outputs
             if "text/markdown" in o.get("data", {})]
    assert deployment.markdown(records) in shown


def test_same_seed_same_results(run):
    """Lesson 02 (the CNN trained from scratch) run again with the same seed records the same numbers."""
    assert run.rerun_returncode == 0, run.rerun_output[-3000:]
    again = results.load_results(run.rerun, kind=None)
    assert again, "the second run of lesson 02 recorded nothing"
    first = {r["name"]: r for r in results.load_results(run.out, kind=None)}
    measured = ("test_accuracy", "train_images", "epochs", "test_images")
    for r in again:
        assert {k: r.get(k) for k in measured} == {k: first[r["name"]].get(k) for k in measured}, r["name"]
