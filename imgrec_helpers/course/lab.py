"""``imgrec lab``: the student's own copies of the lessons (default ``<repository>/my-notebooks/``, git-ignored; they
run as from ``notebooks/``) and JupyterLab started there, so that a ``git pull`` of the course never meets their edits.
"""
from __future__ import annotations

import hashlib
import importlib.util
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
STATE_FILE = ".imgrec-lab.json"  # the SHA-256 of the course version (without outputs) each copy started from


@dataclass
class SyncReport:
    """What :func:`sync_notebooks` did, one list of notebook names per outcome."""

    folder: Path
    copied: list[str] = field(default_factory=list)   # the folder had no copy
    updated: list[str] = field(default_factory=list)  # an unchanged copy replaced by the course's new version
    kept: list[str] = field(default_factory=list)     # a changed copy kept, NAME.new.ipynb beside it
    changed: list[str] = field(default_factory=list)  # a changed copy kept, nothing new from the course
    current: list[str] = field(default_factory=list)  # nothing to do

    def lines(self) -> list[str]:
        """What ``imgrec lab`` prints: one line, and one per kept notebook."""
        counts = [f"{len(names)} {what}" for names, what in (
            (self.copied, "copied"), (self.updated, "updated"),
            (self.kept, "changed by you, with a new version beside"), (self.changed, "changed by you"),
            (self.current, "up to date")) if names]
        return [f"your notebooks: {self.folder} ({', '.join(counts) or 'none'})"] + [
            f"{name}: your changed copy is kept; the course's new version is {_new_name(name)}" for name in self.kept]


def _new_name(name: str) -> str:
    return name.removesuffix(".ipynb") + ".new.ipynb"


def _digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def _write(data: bytes, target: Path) -> None:
    with atomic_path(target) as tmp:  # atomic, with the mode the umask gives a new file
        tmp.write_bytes(data)


def sync_notebooks(folder: str | os.PathLike = DEFAULT_DIR, course: str | os.PathLike = NOTEBOOKS_DIR) -> SyncReport:
    """``imgrec lab``: copy the lessons the folder lacks; replace an unchanged copy by the course's new version; keep
    a changed copy (running it saves outputs), with each new version offered once beside it as ``NAME.new.ipynb``."""
    lessons = course_notebooks(Path(course))
    if not lessons:
        raise ImgrecError(f"no course notebooks (01_*.ipynb ...) in {course}; imgrec lab needs the course "
                          "repository (git clone it, then pip install -e . inside it)")
    folder, course = Path(folder).expanduser().resolve(), Path(course).resolve()
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
    state_path = folder / STATE_FILE
    try:
        state = json.loads(state_path.read_text()) if state_path.exists() else {}
        copied, offered = dict(state.get("copied", {})), dict(state.get("offered", {}))
    except (ValueError, AttributeError, TypeError):
        raise ImgrecError(f"{state_path} is not a valid record of your copies; delete it and run imgrec lab again "
                          "(your notebooks are kept)") from None
    report = SyncReport(folder)
    for source in lessons:
        name, target, new_copy = source.name, folder / source.name, folder / _new_name(source.name)
        try:  # the student's copy: the same cells without outputs or execution counts
            nb = nbformat.read(source, as_version=4)
            for cell in (c for c in nb.cells if c.cell_type == "code"):
                cell.outputs, cell.execution_count = [], None
            version = (nbformat.writes(nb, version=4) + "\n").encode("utf-8")
        except (OSError, ValueError, nbformat.ValidationError) as exc:
            raise ImgrecError(f"{source}: not a readable notebook ({exc}); update the course (git pull)") from None
        latest = hashlib.sha256(version).hexdigest()
        try:
            mine, started = _digest(target), copied.get(name)
            if mine == latest:  # up to date (or the student adopted NAME.new.ipynb)
                report.current.append(name)
            elif mine is None or mine == started:  # no copy, or an untouched copy of an older version
                _write(version, target)
                (report.updated if mine else report.copied).append(name)
            else:  # the student's work: kept; each new course version is offered once, beside it
                if started != latest and offered.get(name) != latest:
                    _write(version, new_copy)
                    offered[name] = latest
                # a NAME.new.ipynb the student deleted stays deleted until the course changes again
                (report.kept if started != latest and new_copy.exists() else report.changed).append(name)
                continue
            copied[name] = latest
            offered.pop(name, None)
            if _digest(new_copy) == latest:
                new_copy.unlink()  # adopted or no longer needed
        except OSError as exc:
            raise ImgrecError(f"cannot update your copy {exc.filename}: {exc.strerror}; check its permissions"
                              ) from None
    with atomic_path(state_path) as tmp:
        tmp.write_text(json.dumps({"copied": copied, "offered": offered}, indent=1, sort_keys=True) + "\n")
    return report


def lab_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """JupyterLab's environment: the caller's, TensorFlow's C++ log level 3 unless set, without ``IMGREC_HEADLESS``
    (the live progress bar) and ``MPLBACKEND`` (``Agg`` would hide every figure; the kernel draws them inline)."""
    env = os.environ if base is None else base
    return {"TF_CPP_MIN_LOG_LEVEL": "3", **{k: v for k, v in env.items() if k not in ("IMGREC_HEADLESS", "MPLBACKEND")}}


def running_as_root() -> bool:
    """Whether this is the superuser (a container's default user), where JupyterLab needs ``--allow-root``."""
    return hasattr(os, "geteuid") and os.geteuid() == 0


def lab_command(folder: str | os.PathLike, port: int | None = None, open_browser: bool = True,
                allow_root: bool | None = None) -> list[str]:
    """JupyterLab's command with ``folder`` as its root (nothing outside it can be opened or saved from the
    browser); ``allow_root`` None: :func:`running_as_root`."""
    root = running_as_root() if allow_root is None else allow_root
    return [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={Path(folder).resolve()}",
            *([f"--port={port}"] if port is not None else []), *([] if open_browser else ["--no-browser"]),
            *(["--allow-root"] if root else [])]


def start_lab(folder: str | os.PathLike = DEFAULT_DIR, port: int | None = None, open_browser: bool = True,
              print_only: bool = False, log: Callable[[str], None] = print) -> int:
    """``imgrec lab``: copy the lessons into ``folder``, then run JupyterLab there until it stops (or with
    ``print_only``, print its command). Returns the exit status."""
    report = sync_notebooks(folder)
    for line in report.lines():
        log(line)
    cmd = lab_command(report.folder, port=port, open_browser=open_browser)
    if print_only:
        log(shlex.join(cmd))
        return 0
    if importlib.util.find_spec("jupyterlab") is None:
        raise ImgrecError("JupyterLab is not installed in this environment: pip install 'jupyterlab~=4.0'")
    if "--allow-root" in cmd:
        log("you are root (e.g. in a container): JupyterLab is started with --allow-root, which it needs then")
    log("starting JupyterLab (stop it with Ctrl-C, twice) ...")
    proc = subprocess.Popen(cmd, env=lab_env(), cwd=report.folder)
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:  # JupyterLab handles Ctrl-C itself (it asks, or stops on the second)
            continue
