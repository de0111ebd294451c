"""``imgrec lab``: the student's own copies of the lessons, never overwritten, and JupyterLab's command.

The course is a temporary folder of small notebooks made here, so the tests can change "the course"
between two ``imgrec lab`` calls as a ``git pull`` would.
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import nbformat
import pytest

from imgrec_helpers.course import cli, lab
from imgrec_helpers.errors import ImgrecError


def _lesson(path, text, output=None):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(f"# NBVAL_CHECK_OUTPUT\nprint({text!r})")
    if output is not None:  # a committed reference output, as the course's checked cells have
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=output)]
        cell.execution_count = 1
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {path.name[:2]} · lesson"), cell]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.fixture
def course(tmp_path):
    folder = tmp_path / "course" / "notebooks"
    folder.mkdir(parents=True)
    _lesson(folder / "01_first.ipynb", "one", output="one\n")
    _lesson(folder / "02_second.ipynb", "two")
    return folder


def _student_edits(path, text="my own work"):
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(f"print({text!r})"))
    nbformat.write(nb, path)
    return path.read_bytes()


def test_first_call_copies_every_lesson_without_outputs(course, tmp_path):
    mine = tmp_path / "mine"
    report = lab.sync_notebooks(mine, course)
    assert report.copied == ["01_first.ipynb", "02_second.ipynb"] and not report.kept
    assert report.lines() == [f"your notebooks: {mine} (2 copied)"]
    copy = nbformat.read(mine / "01_first.ipynb", as_version=4)
    original = nbformat.read(course / "01_first.ipynb", as_version=4)
    assert [c.source for c in copy.cells] == [c.source for c in original.cells]
    assert copy.cells[1].outputs == [] and copy.cells[1].execution_count is None  # no reference output shown
    assert original.cells[1].outputs  # the course's notebook is untouched
    state = json.loads((mine / lab.STATE_FILE).read_text())
    assert set(state["copied"]) == {"01_first.ipynb", "02_second.ipynb"}
    assert lab.sync_notebooks(mine, course).current == ["01_first.ipynb", "02_second.ipynb"]  # nothing to do


def test_copies_respect_the_umask(course, tmp_path):
    old = os.umask(0o027)
    try:
        lab.sync_notebooks(tmp_path / "mine", course)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "mine" / "01_first.ipynb").stat().st_mode) == 0o640


def test_course_update_replaces_untouched_copies_and_keeps_changed_work(course, tmp_path):
    mine = tmp_path / "mine"
    lab.sync_notebooks(mine, course)
    work = _student_edits(mine / "02_second.ipynb")

    # no course update yet: the student's changed copy is theirs, nothing else happens
    report = lab.sync_notebooks(mine, course)
    assert report.changed == ["02_second.ipynb"] and not (mine / "02_second.new.ipynb").exists()

    # the course changes both lessons and adds a third (what a git pull brings)
    _lesson(course / "01_first.ipynb", "one, improved")
    _lesson(course / "02_second.ipynb", "two, improved")
    _lesson(course / "03_third.ipynb", "three")
    report = lab.sync_notebooks(mine, course)
    assert report.updated == ["01_first.ipynb"] and report.copied == ["03_third.ipynb"]
    assert report.kept == ["02_second.ipynb"]
    assert "one, improved" in (mine / "01_first.ipynb").read_text()       # untouched copy: updated
    assert (mine / "02_second.ipynb").read_bytes() == work                 # the student's work: kept
    assert "two, improved" in (mine / "02_second.new.ipynb").read_text()   # the new version beside it
    assert report.lines()[1] == ("02_second.ipynb: your changed copy is kept; the course's new version is "
                                 "02_second.new.ipynb")

    # the next call says it again while NAME.new.ipynb is there, and never touches the work
    assert lab.sync_notebooks(mine, course).kept == ["02_second.ipynb"]
    assert (mine / "02_second.ipynb").read_bytes() == work


def test_a_deleted_new_version_stays_deleted_until_the_course_changes_again(course, tmp_path):
    mine = tmp_path / "mine"
    lab.sync_notebooks(mine, course)
    _student_edits(mine / "02_second.ipynb")
    _lesson(course / "02_second.ipynb", "two, improved")
    lab.sync_notebooks(mine, course)
    (mine / "02_second.new.ipynb").unlink()
    report = lab.sync_notebooks(mine, course)
    assert report.changed == ["02_second.ipynb"] and not (mine / "02_second.new.ipynb").exists()
    _lesson(course / "02_second.ipynb", "two, improved again")
    assert lab.sync_notebooks(mine, course).kept == ["02_second.ipynb"]
    assert "improved again" in (mine / "02_second.new.ipynb").read_text()


def test_adopting_the_new_version_or_deleting_the_copy(course, tmp_path):
    mine = tmp_path / "mine"
    lab.sync_notebooks(mine, course)
    _student_edits(mine / "01_first.ipynb")
    _student_edits(mine / "02_second.ipynb")
    _lesson(course / "01_first.ipynb", "one, improved")
    _lesson(course / "02_second.ipynb", "two, improved")
    lab.sync_notebooks(mine, course)

    os.replace(mine / "01_first.new.ipynb", mine / "01_first.ipynb")  # the student takes the new version
    (mine / "02_second.ipynb").unlink()                                 # ... or starts this lesson afresh
    report = lab.sync_notebooks(mine, course)
    assert report.current == ["01_first.ipynb"] and report.copied == ["02_second.ipynb"]
    assert not list(mine.glob("*.new.ipynb"))
    _lesson(course / "01_first.ipynb", "one, third version")  # an adopted copy is updated like any other
    assert lab.sync_notebooks(mine, course).updated == ["01_first.ipynb"]


def test_a_folder_with_notebooks_of_its_own_is_never_overwritten(course, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "01_first.ipynb").write_text("{}")  # not a copy made by imgrec lab (no record)
    report = lab.sync_notebooks(mine, course)
    assert (mine / "01_first.ipynb").read_text() == "{}" and report.kept == ["01_first.ipynb"]
    assert (mine / "01_first.new.ipynb").is_file() and report.copied == ["02_second.ipynb"]


@pytest.mark.parametrize("case, message", [
    ("file", "is a file, not a folder; choose another --dir"),
    ("state", "is not a valid record of your copies; delete it and run imgrec lab again (your notebooks are kept)"),
])
def test_command_errors_are_one_line(tmp_path, capsys, case, message):
    folder = tmp_path / "mine"
    if case == "file":
        folder.write_text("not a folder")
    else:
        folder.mkdir()
        (folder / lab.STATE_FILE).write_text("{broken")
    assert cli.main(["lab", "--dir", str(folder), "--print-only"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {folder}") and message in err and err.count("\n") == 1


def test_a_folder_inside_the_course_or_no_course_is_refused(course, tmp_path):
    with pytest.raises(ImgrecError, match="inside the course's own notebooks folder"):
        lab.sync_notebooks(course / "mine", course)
    assert not (course / "mine").exists()
    with pytest.raises(ImgrecError, match=r"no course notebooks \(01_\*.ipynb ...\) in .*git clone"):
        lab.sync_notebooks(tmp_path / "mine", tmp_path / "nothing")


def test_the_course_notebooks_folder_is_refused_by_the_command(capsys):
    assert cli.main(["lab", "--dir", str(lab.NOTEBOOKS_DIR), "--print-only"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "course's own notebooks folder" in err and err.count("\n") == 1
    assert not (lab.NOTEBOOKS_DIR / lab.STATE_FILE).exists()


def test_print_only_copies_and_prints_the_jupyterlab_command(tmp_path, capsys):
    mine = tmp_path / "mine"
    assert cli.main(["lab", "--dir", str(mine), "--print-only", "--no-browser", "--port", "8899"]) == 0
    out = capsys.readouterr().out.splitlines()
    n = len(lab.course_notebooks(lab.NOTEBOOKS_DIR))
    assert out[0] == f"your notebooks: {mine} ({n} copied)"
    root = " --allow-root" if lab.running_as_root() else ""  # JupyterLab refuses the superuser without it
    assert out[-1].endswith(f"-m jupyterlab --ServerApp.root_dir={mine} --port=8899 --no-browser{root}")
    assert len(list(mine.glob("[0-9][0-9]_*.ipynb"))) == n


def test_the_superuser_gets_allow_root_and_a_port_must_be_one(tmp_path, capsys):
    assert lab.lab_command(tmp_path, allow_root=True)[-1] == "--allow-root"
    assert "--allow-root" not in lab.lab_command(tmp_path, allow_root=False)
    for port in ("0", "70000", "http"):
        with pytest.raises(SystemExit) as stop:
            cli.main(["lab", "--dir", str(tmp_path / "mine"), "--port", port, "--print-only"])
        assert stop.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("error: imgrec lab: argument --port: ") and err.count("\n") == 1
    assert not (tmp_path / "mine").exists()


def test_jupyterlab_environment():
    env = lab.lab_env({"IMGREC_HEADLESS": "1", "MPLBACKEND": "Agg", "IMGREC_DATA_HOME": "/data", "PATH": "/bin"})
    assert env == {"IMGREC_DATA_HOME": "/data", "PATH": "/bin", "TF_CPP_MIN_LOG_LEVEL": "3"}
    assert lab.lab_env({"TF_CPP_MIN_LOG_LEVEL": "0"})["TF_CPP_MIN_LOG_LEVEL"] == "0"  # a user's choice stays


def test_lab_command_starts_jupyterlab_on_the_folder(tmp_path):
    """The command runs JupyterLab from this environment (``--help``: without serving anything)."""
    cmd = lab.lab_command(tmp_path, port=8899, open_browser=False)
    proc = subprocess.run(cmd + ["--help"], capture_output=True, text=True, timeout=120, env=lab.lab_env())
    assert proc.returncode == 0 and "jupyter lab" in proc.stdout.lower()
    assert cmd[:3] == [sys.executable, "-m", "jupyterlab"]
