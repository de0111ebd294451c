"""Shared fixtures: a CIFAR-format archive made by the tests, the real data home when present, and the one
smoke run of the whole course that tests/test_course.py checks."""
from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import tarfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # the course's own default (imgrec_helpers/quiet.py)
os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parent.parent
PER_BATCH = 20  # images per fake batch: 5 train batches + 1 test batch


def fake_batches(seed: int = 0) -> dict[str, tuple[np.ndarray, list[int]]]:
    """Six small batches in the official layout: (N, 3072) uint8 rows of 1024 R, 1024 G, 1024 B."""
    rng = np.random.default_rng(seed)
    out = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(PER_BATCH, 3072), dtype=np.uint8)
        labels = [int(i % 10) for i in range(PER_BATCH)]
        out[name] = (data, labels)
    return out


def write_batches(folder: Path, batches) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, (data, labels) in batches.items():
        with open(folder / name, "wb") as fh:
            pickle.dump({b"batch_label": name.encode(), b"labels": labels, b"data": data}, fh)
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"x"] * 10}))
    return folder


def write_archive(path: Path, batches, mode: str = "w:gz", folder: str = "cifar-10-batches-py") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, mode) as tar:
        for name, (data, labels) in batches.items():
            payload = pickle.dumps({b"labels": labels, b"data": data})
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path


def write_notebook(path: Path, *sources: str) -> Path:
    """A course-style notebook at ``path``: a parameters cell (PROFILE, SEED, RUN_DIR, DATA_HOME), then
    one code cell per source (tests of the runner)."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('PROFILE = "quick"\nSEED = 42\nRUN_DIR = ""\nDATA_HOME = ""')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params] + [nbformat.v4.new_code_cell(s) for s in sources]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch) -> Path:
    """Extraction cache in a temp folder, so tests never touch ~/.cache/imgrec."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("IMGREC_CACHE_DIR", str(cache))
    return cache


@pytest.fixture
def fake_home(tmp_path, isolated_cache) -> Path:
    """A data home with a fake cifar-10-python.tar.gz."""
    home = tmp_path / "home"
    write_archive(home / "cifar-10-python.tar.gz", fake_batches())
    return home


def _real_home() -> Path | None:
    env = os.environ.get("IMGREC_DATA_HOME")
    if not env:
        return None
    home = Path(env)
    has_cifar = (home / "cifar-10-batches-py").is_dir() or any(home.glob("cifar-10-python.tar*"))
    return home if has_cifar and (home / "images").is_dir() else None


@pytest.fixture(scope="session")
def real_home() -> Path:
    """The real data home (IMGREC_DATA_HOME with CIFAR-10 and photos), or skip."""
    home = _real_home()
    if home is None:
        pytest.skip("needs IMGREC_DATA_HOME pointing at a data home with the real CIFAR-10 and photos")
    return home


# --------------------------------------------------------------------------------------------
# One smoke run of the whole course, shared by every test that checks it (tests/test_course.py)
# --------------------------------------------------------------------------------------------
# `imgrec run --profile smoke` executes every notebook once (nbval's check of the reference outputs
# reads the same executed copies, so the notebooks are not executed a second time), then lesson 02
# again into a second folder for the same-seed comparison. It starts in the background when the
# session starts, so it overlaps with the other tests; the tests that read it run last.

SMOKE_FIXTURE = "smoke_run"


@dataclass
class SmokeRun:
    """The shared smoke run: its folder, the command's exit status and output; ``rerun``: lesson 02 again."""

    out: Path
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    rerun: Path | None = None
    rerun_returncode: int | None = None
    rerun_output: str = ""
    proc: subprocess.Popen | None = field(default=None, repr=False)
    stopped: bool = False


def pytest_collection_modifyitems(config, items):
    """The tests that read the shared smoke run go last (stable order otherwise)."""
    items.sort(key=lambda item: SMOKE_FIXTURE in getattr(item, "fixturenames", ()))


def _imgrec(run: SmokeRun, *args: str, timeout: float = 900) -> tuple[int, str, str]:
    """``imgrec ARGS`` in a child process that session teardown can stop (``run.proc``)."""
    if run.stopped:
        return -1, "", "not started: the test session ended"
    run.proc = subprocess.Popen([sys.executable, "-m", "imgrec_helpers", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    try:
        out, err = run.proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        run.proc.terminate()  # imgrec run stops its notebook and records the interruption
        out, err = run.proc.communicate()
        err += f"\nstopped after {timeout:.0f} s"
    return run.proc.returncode, out, err


@pytest.fixture(scope="session", autouse=True)
def _smoke_run_in_background(request, tmp_path_factory):
    """Start the shared smoke run when the session starts, if a selected test needs it and the real data is there."""
    home = _real_home()
    if home is None or not any(SMOKE_FIXTURE in getattr(i, "fixturenames", ()) for i in request.session.items):
        yield None
        return
    folder = tmp_path_factory.mktemp("smoke")
    run = SmokeRun(out=folder / "run", rerun=folder / "rerun-02")

    def work() -> None:
        run.returncode, run.stdout, run.stderr = _imgrec(run, "run", "--profile", "smoke", "--out", str(run.out),
                                                         "--data-home", str(home))
        code, out, err = _imgrec(run, "run", "--profile", "smoke", "--out", str(run.rerun), "--data-home", str(home),
                                 "--no-report", "02")
        run.rerun_returncode, run.rerun_output = code, out + err

    thread = threading.Thread(target=work, name="imgrec smoke run", daemon=True)
    thread.start()
    yield thread, run
    run.stopped = True
    if thread.is_alive() and run.proc is not None:  # the session ended early (-x, Ctrl-C)
        run.proc.terminate()
        thread.join(timeout=30)


@pytest.fixture(scope="session")
def smoke_run(real_home, _smoke_run_in_background) -> SmokeRun:
    """The shared smoke run, finished (waits for it); the tests using it assert that it succeeded."""
    thread, run = _smoke_run_in_background
    thread.join()
    return run
