"""The notebooks: committed format (clean), structure, nbval on the smoke profile, and `imgrec run` end to end.

Committed-outputs policy: notebooks are committed clean (no outputs, no execution counts, metadata only
kernelspec/language and cell tags), except cells marked ``# NBVAL_CHECK_OUTPUT``: they keep their
deterministic text output (shapes, class counts, parameter counts, table columns) and execution count 1,
and nbval compares them.
Refresh those with ``python tools/nbtools.py refresh-reference RUN_DIR`` after a smoke run.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from imgrec_helpers import results, running

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = running.course_notebooks(REPO / "notebooks")
CHECK = "# NBVAL_CHECK_OUTPUT"


def test_the_six_lessons_exist_in_order():
    assert [p.name[:3] for p in NOTEBOOKS] == ["01_", "02_", "03_", "04_", "05_", "06_"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebooks_are_clean(path):
    raw = json.loads(path.read_text())
    assert set(raw["metadata"]) <= {"kernelspec", "language_info"}
    assert raw["metadata"]["kernelspec"]["name"] == "python3"
    checked = 0
    for cell in raw["cells"]:
        assert set(cell.get("metadata", {})) <= {"tags"}, f"stray cell metadata: {cell['metadata']}"
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        if CHECK in source:
            checked += 1
            assert cell["execution_count"] == 1  # nbval only compares cells that look executed
            assert cell["outputs"], f"checked cell has no reference output: {source[:60]!r}"
            for out in cell["outputs"]:
                assert out["output_type"] == "stream" and out["name"] == "stdout"
                text = "".join(out["text"])
                assert not re.search(r"0x[0-9a-f]{6,}|\d+\.\d+ s\b", text), "unstable text in a checked output"
        else:
            assert cell["execution_count"] is None
            assert cell["outputs"] == [], f"outputs committed in an unchecked cell: {source[:60]!r}"
    assert checked >= 1


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_lesson_structure(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith(f"# {path.name[:2]} · ")
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1
    for name in ("PROFILE", "SEED", "RUN_DIR", "DATA_HOME"):
        assert re.search(rf"^{name} = ", params[0].source, re.M), f"parameter {name} missing"
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "from imgrec_helpers import" in code
    assert f'running.start_lesson("{path.name[:2]}", PROFILE, SEED, RUN_DIR, DATA_HOME)' in code
    assert "assert " in code  # claims are checked


SMOKE_RUNS: dict[str, Path] = {}  # run folders of the two smoke executions below, to compare them


@pytest.mark.realdata
@pytest.mark.slow
def test_nbval_smoke(real_home, tmp_path):
    """nbval executes each notebook (smoke parameters injected by papermill, outputs kept) and compares
    the checked cells with their committed reference output."""
    import papermill

    run_dir = tmp_path / "run"
    prepared = []
    for path in NOTEBOOKS:
        target = tmp_path / "nb" / path.name
        target.parent.mkdir(exist_ok=True)
        papermill.execute_notebook(str(path), str(target), prepare_only=True, progress_bar=False,
                                   parameters={"PROFILE": "smoke", "RUN_DIR": str(run_dir), "DATA_HOME": str(real_home)})
        prepared.append(str(target))
    proc = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-q",
                           "--rootdir", str(tmp_path), *prepared], cwd=tmp_path, env=dict(running.kernel_env(tmp_path), MPLBACKEND="Agg"),
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert re.search(r"\d+ passed", proc.stdout)
    SMOKE_RUNS["nbval"] = run_dir


@pytest.mark.realdata
@pytest.mark.slow
def test_imgrec_run_smoke_end_to_end(real_home, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "imgrec_helpers", "run", "--profile", "smoke", "--out", str(out),
                           "--data-home", str(real_home)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert len(re.findall(rf"^\[\d/{len(NOTEBOOKS)}\] \S+: ok \(\d+\.\d s\)$", proc.stdout, re.M)) == len(NOTEBOOKS)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "ok" and manifest["profile"] == "smoke" and manifest["seed"] == 42
    assert all(nb["status"] == "ok" for nb in manifest["notebooks"].values())
    for path in NOTEBOOKS:
        executed = nbformat.read(out / path.name, as_version=4)
        errors = [o for c in executed.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors
        assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)

    records = results.load_results(out)
    names = {r["name"] for r in records}
    assert {"02_scratch_cnn", "04c_transfer_cifar10"} <= names
    for r in records:
        assert set(results.REQUIRED_KEYS) <= set(r) and r["profile"] == "smoke"
        assert 0.0 <= r["test_accuracy"] <= 1.0
    assert results.load_results(out, kind="curve")

    # the report: every table cell matches the records; figures embedded; notebooks linked
    report = (out / "report.html").read_text()
    table = re.search(r"<table id='comparison'>(.*?)</table>", report, re.S).group(1)
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:]
    cells = [re.findall(r"<td>(.*?)</td>", row) for row in rows]
    import html

    assert [[html.unescape(c) for c in row] for row in cells] == results.table_rows(records)
    for figure in ("02_learning_curves", "02_confusion_matrix", "05_data_efficiency"):
        assert re.search(rf"<figure id='{figure}'><img alt='{figure}' src='data:image/png;base64,[A-Za-z0-9+/=]{{200,}}'",
                         report)
    assert "<table id='api_comparison'>" in report  # lesson 06's "when to use what" table
    for path in NOTEBOOKS:
        assert f"href='html/{path.stem}.html'" in report and (out / "html" / f"{path.stem}.html").is_file()

    # two smoke runs with the same seed on the same machine give the same results (when both ran)
    if "nbval" in SMOKE_RUNS:
        other = {r["name"]: r["test_accuracy"] for r in results.load_results(SMOKE_RUNS["nbval"], kind=None)}
        assert other == {r["name"]: r["test_accuracy"] for r in results.load_results(out, kind=None)}
