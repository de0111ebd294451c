"""The committed notebooks: format (clean), structure, and the reference-output check itself.

The smoke execution of every notebook (nbval's check of the reference outputs, ``imgrec run`` end to end,
a clean session) is in tests/test_course.py, on one run shared by all its checks.

Committed-outputs policy: notebooks are committed clean (no outputs, no execution counts, metadata only
kernelspec/language and cell tags), except cells marked ``# NBVAL_CHECK_OUTPUT``: they keep their
deterministic text output (shapes, class counts, parameter counts, table columns) and execution count 1,
and nbval compares them.
Refresh those with ``python tools/nbtools.py refresh-reference RUN_DIR`` after a smoke run.
"""
from __future__ import annotations

import copy
import importlib.util
import json
import re
from pathlib import Path

import nbformat
import pytest

from imgrec_helpers.course import runner

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = runner.course_notebooks(REPO / "notebooks")
CHECK = "# NBVAL_CHECK_OUTPUT"

_spec = importlib.util.spec_from_file_location("nbtools", REPO / "tools" / "nbtools.py")
nbtools = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(nbtools)


def test_the_lessons_are_numbered_in_order():
    assert len(NOTEBOOKS) >= 5
    assert [p.name[:3] for p in NOTEBOOKS] == [f"{i:02d}_" for i in range(1, len(NOTEBOOKS) + 1)]


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
    assert re.search(rf'running.start_lesson\("{path.name[:2]}", PROFILE, SEED, RUN_DIR, DATA_HOME[,)]', code)
    assert "assert " in code  # claims are checked


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_number_parameter_is_checked_before_use(path):
    """A number (or None-for-the-profile) parameter reaches Keras only through lesson.setting or
    running.check_parameter, which turn a typo (EPOCHS = 0, LEARNING_RATE = "1e-3") into one line."""
    import ast

    nb = nbformat.read(path, as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code" and c is not params)
    for statement in ast.parse(params.source).body:
        name = statement.targets[0].id
        value = ast.literal_eval(statement.value)
        if name == "SEED" or isinstance(value, (str, dict)):
            continue  # SEED: start_lesson checks it; names and paths: checked where they are used
        used = [f'lesson.setting("{name.lower()}", {name})', f'running.check_parameter("{name}", {name}',
                f"{name.lower()}={name})"]  # CPU_DEVICES: start_lesson checks it
        assert any(u in code for u in used), f"{path.name}: parameter {name} is not checked"


def test_the_reference_check_can_fail():
    """tools/nbtools.py's comparison (nbval's rules, used by tests/test_course.py on the shared smoke run)
    passes a notebook against itself and reports a changed checked output, an extra stderr output and a
    missing checked cell."""
    committed = nbformat.read(NOTEBOOKS[0], as_version=4)
    assert nbtools.checked_output_differences(committed, committed) == []
    checked = [i for i, c in enumerate(committed.cells) if c.cell_type == "code" and CHECK in c.source]

    changed = copy.deepcopy(committed)
    changed.cells[checked[0]].outputs[0].text += "one more line\n"
    assert len(nbtools.checked_output_differences(committed, changed)) == 1

    noisy = copy.deepcopy(committed)
    noisy.cells[checked[-1]].outputs.append(nbformat.v4.new_output("stream", name="stderr", text="W0000 noise\n"))
    assert "stderr" in nbtools.checked_output_differences(committed, noisy)[0]

    # a progress bar's carriage returns are resolved as nbval does; a missing checked cell is reported
    bar = copy.deepcopy(committed)
    text = bar.cells[checked[0]].outputs[0].text
    bar.cells[checked[0]].outputs[0].text = "50% ...\r" + text
    assert nbtools.checked_output_differences(committed, bar) == []
    del bar.cells[checked[0]]
    assert "not in the executed copy" in nbtools.checked_output_differences(committed, bar)[0]


@pytest.mark.slow
def test_headless_kernels_show_what_jupyterlab_shows_but_no_tensorflow_start_up(tmp_path):
    """Kernels started with ``runner.kernel_env`` capture file-descriptor output, as JupyterLab's do: a
    line written to fd 2 appears in the notebook as stderr (a bare ``import tensorflow`` there shows its
    C++ start-up log), while TensorFlow started by ``quiet.import_tensorflow`` leaves no output."""
    import papermill

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("from imgrec_helpers import quiet\nquiet.import_tensorflow()\n"
                                          "import tensorflow as tf\ntf.config.list_physical_devices('GPU')"),
                nbformat.v4.new_code_cell("import os\nos.write(2, b'written to fd 2\\n')\nimport time; time.sleep(0.5)"),
                nbformat.v4.new_code_cell("import matplotlib, os\nprint(os.environ['IMGREC_HEADLESS'], matplotlib.get_backend())")]
    nbformat.write(nb, tmp_path / "in.ipynb")
    import os

    old = dict(os.environ)
    os.environ.clear()
    os.environ.update(runner.kernel_env(tmp_path))  # papermill's kernel inherits this process's environment
    try:
        executed = papermill.execute_notebook(str(tmp_path / "in.ipynb"), str(tmp_path / "out.ipynb"),
                                              kernel_name="python3", progress_bar=False)
    finally:
        os.environ.clear()
        os.environ.update(old)
    start_up, fd2, env = (c.outputs for c in executed.cells)
    assert [o for o in start_up if o.output_type != "execute_result"] == []  # no TensorFlow log, no stderr
    assert [(o.name, o.text) for o in fd2] == [("stderr", "written to fd 2\n")]
    assert [o.text for o in env] == ["1 module://matplotlib_inline.backend_inline\n"]  # inline, though the caller had Agg
