"""Students' own copies of the lessons, and JupyterLab opened on them (``imgrec lab``).

A student never works in the course's tracked ``notebooks/`` folder: ``imgrec lab`` copies the
lessons into the student's folder (default ``<repository>/my-notebooks/``, which git ignores) and
starts JupyterLab there, so JupyterLab's autosave writes outputs into the copies and a ``git pull``
of course updates never meets a student's edits.

Copying never overwrites the student's work. ``.imgrec-lab.json`` in the student's folder records
the SHA-256 of the course version each copy started from (copies start without outputs); on every
``imgrec lab``:

- a lesson the folder does not have (a new lesson, or a copy the student deleted) is copied;
- a copy the student has not changed (same bytes as recorded) is replaced by the course's new version;
- a copy the student changed (running it in JupyterLab counts: it saves outputs) is kept, and the
  course's new version is written beside it as ``NAME.new.ipynb``, said in one line.

The notebooks run from the copies exactly as from ``notebooks/``: they use the installed package,
write into ``runs/interactive-<profile>/`` (:func:`imgrec_helpers.running.default_run_dir`) and read
the data home from ``$IMGREC_DATA_HOME`` or the repository's ``data/``, which ``imgrec lab`` leaves as it is.
"""
from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import nbformat

from ..errors import ImgrecError
from ..persistence import atomic_path
from ..running import REPO_ROOT
from .runner import NOTEBOOKS_DIR, course_notebooks

DEFAULT_DIR = REPO_ROOT / "my-notebooks"
STATE_FILE = ".imgrec-lab.json"


@dataclass
class SyncReport:
    """What :func:`sync_notebooks` did to the student's folder, one list of notebook names per outcome."""

    folder: Path
    copied: list[str] = field(default_factory=list)     # the folder had no copy: copied
    updated: list[str] = field(default_factory=list)    # unchanged copy replaced by the course's new version
    kept: list[str] = field(default_factory=list)       # changed copy kept; NAME.new.ipynb beside it
    changed: list[str] = field(default_factory=list)    # changed copy kept; nothing new from the course
    current: list[str] = field(default_factory=list)    # nothing to do

    def lines(self) -> list[str]:
        """The summary ``imgrec lab`` prints: one line, plus one line per kept notebook."""
        counts = [f"{len(names)} {what}" for names, what in
                  ((self.copied, "copied"), (self.updated, "updated"),
                   (self.kept, "changed by you, with a new version beside"), (self.changed, "changed by you"),
                   (self.current, "up to date")) if names]
        out = [f"your notebooks: {self.folder} ({', '.join(counts) or 'none'})"]
        out += [f"{name}: your changed copy is kept; the course's new version is {new_version_name(name)}"
                for name in self.kept]
        return out


def new_version_name(name: str) -> str:
    """``02_cnn_from_scratch.ipynb`` -> ``02_cnn_from_scratch.new.ipynb``."""
    return f"{Path(name).stem}.new.ipynb"


def student_version(source: Path) -> bytes:
    """The student's copy of a course notebook: the same cells without any outputs or execution counts
    (the committed reference outputs of ``# NBVAL_CHECK_OUTPUT`` cells are for the tests)."""
    nb = nbformat.read(source, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return (nbformat.writes(nb, version=4) + "\n").encode("utf-8")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write(data: bytes, target: Path) -> None:
    """Write atomically, with the permissions the user's umask gives a new file."""
    umask = os.umask(0)
    os.umask(umask)
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
        os.chmod(tmp, 0o666 & ~umask)


def _check_folder(folder: Path, course: Path) -> Path:
    folder = folder.expanduser().resolve()
    course = course.resolve()
    if folder == course or course in folder.parents:
        raise ImgrecError(f"{folder} is inside the course's own notebooks folder; choose another --dir "
                          f"(default {DEFAULT_DIR}) so that course updates never meet your work")
    if folder.exists() and not folder.is_dir():
        raise ImgrecError(f"{folder} is a file, not a folder; choose another --dir")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImgrecError(f"cannot create {folder}: {exc.strerror}; choose another --dir") from None
    if not os.access(folder, os.W_OK):
        raise ImgrecError(f"cannot write to {folder}; choose another --dir")
    return folder


def _read_state(path: Path) -> dict[str, dict[str, str]]:
    if not path.exists():
        return {"copied": {}, "offered": {}}
    try:
        state = json.loads(path.read_text())
        return {"copied": dict(state.get("copied", {})), "offered": dict(state.get("offered", {}))}
    except (ValueError, AttributeError, TypeError):
        raise ImgrecError(f"{path} is not a valid record of your copies; delete it and run imgrec lab again "
                          "(your notebooks are kept)") from None


def sync_notebooks(folder: str | os.PathLike = DEFAULT_DIR, course: str | os.PathLike = NOTEBOOKS_DIR) -> SyncReport:
    """Bring the student's folder up to date with the course's lessons without overwriting their work
    (``imgrec lab``; the rules are in this module's docstring). Returns what was done."""
    course = Path(course)
    lessons = course_notebooks(course)
    if not lessons:
        raise ImgrecError(f"no course notebooks (01_*.ipynb ...) in {course}; imgrec lab needs the course "
                          "repository (git clone it, then pip install -e . inside it)")
    folder = _check_folder(Path(folder), course)
    state_path = folder / STATE_FILE
    state = _read_state(state_path)
    report = SyncReport(folder)
    try:
        _sync(lessons, folder, state, report)
    except OSError as exc:
        raise ImgrecError(f"cannot update your copy {exc.filename}: {exc.strerror}; check its permissions") from None
    with atomic_path(state_path) as tmp:
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True) + "\n")
    return report


def _sync(lessons: list[Path], folder: Path, state: dict[str, dict[str, str]], report: SyncReport) -> None:
    for source in lessons:
        name = source.name
        target, new_copy = folder / name, folder / new_version_name(name)
        try:
            version = student_version(source)
        except (OSError, ValueError, nbformat.ValidationError) as exc:
            raise ImgrecError(f"{source}: not a readable notebook ({exc}); update the course (git pull)") from None
        latest = _sha256(version)
        started_from = state["copied"].get(name)
        if not target.exists():
            _write(version, target)
            report.copied.append(name)
        else:
            mine = _sha256(target.read_bytes())
            if mine == latest:                                # up to date (or the student adopted NAME.new)
                report.current.append(name)
            elif started_from is not None and mine == started_from:  # untouched copy of an older version
                _write(version, target)
                report.updated.append(name)
            elif started_from == latest:                      # the student's work, no course update since
                report.changed.append(name)
                continue
            else:                                             # the student's work and a course update: keep it
                if state["offered"].get(name) != latest:      # offer each course version once
                    _write(version, new_copy)
                    state["offered"][name] = latest
                # a NAME.new.ipynb the student deleted stays deleted until the course changes again
                (report.kept if new_copy.exists() else report.changed).append(name)
                continue
        state["copied"][name] = latest
        state["offered"].pop(name, None)
        if new_copy.exists() and _sha256(new_copy.read_bytes()) == latest:
            new_copy.unlink()                                 # adopted or no longer needed


def lab_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment JupyterLab and its kernels get: the caller's, with TensorFlow's C++ log level at 3
    (unless set), without ``IMGREC_HEADLESS`` (so ``lesson.verbose`` gives the live progress bar) and
    without ``MPLBACKEND`` (a non-interactive backend such as ``Agg`` would hide every figure; the kernel
    then draws them inline). ``IMGREC_DATA_HOME`` and the rest are passed on unchanged."""
    env = dict(os.environ if base is None else base)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env.pop("IMGREC_HEADLESS", None)
    env.pop("MPLBACKEND", None)
    return env


def running_as_root() -> bool:
    """Whether this process is the superuser (a Docker container's default user), where JupyterLab
    refuses to start unless given ``--allow-root``."""
    return hasattr(os, "geteuid") and os.geteuid() == 0


def lab_command(folder: str | os.PathLike, port: int | None = None, open_browser: bool = True,
                allow_root: bool | None = None) -> list[str]:
    """The command that starts JupyterLab with ``folder`` as its root (nothing outside it can be opened
    or saved from the browser, so the tracked notebooks stay untouched). ``allow_root`` None: added
    when :func:`running_as_root`."""
    cmd = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={Path(folder).resolve()}"]
    if port is not None:
        cmd.append(f"--port={port}")
    if not open_browser:
        cmd.append("--no-browser")
    if running_as_root() if allow_root is None else allow_root:
        cmd.append("--allow-root")
    return cmd


def start_lab(folder: str | os.PathLike = DEFAULT_DIR, port: int | None = None, open_browser: bool = True,
              print_only: bool = False, log: Callable[[str], None] = print) -> int:
    """``imgrec lab``: copy the lessons into ``folder`` (:func:`sync_notebooks`), then run JupyterLab on it
    until it is stopped (Ctrl-C); with ``print_only`` print the command instead. Returns the exit status."""
    report = sync_notebooks(folder)
    for line in report.lines():
        log(line)
    cmd = lab_command(report.folder, port=port, open_browser=open_browser)
    if print_only:
        log(shlex.join(cmd))
        return 0
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        raise ImgrecError("JupyterLab is not installed in this environment: pip install 'jupyterlab~=4.0'") from None
    if "--allow-root" in cmd:
        log("you are root (e.g. in a container): JupyterLab is started with --allow-root, which it needs then")
    log("starting JupyterLab (stop it with Ctrl-C, twice) ...")
    proc = subprocess.Popen(cmd, env=lab_env(), cwd=report.folder)
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:  # JupyterLab handles Ctrl-C itself (it asks, or stops on the second)
            continue

