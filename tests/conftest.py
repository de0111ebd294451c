"""Shared fixtures: a CIFAR-format archive made by the tests, the real data home when present, and the one
smoke run of the whole course that tests/test_course.py checks."""
from __future__ import annotations

import atexit
import functools
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from imgrec_helpers.course import runner

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # the course's own default (imgrec_helpers/quiet.py)
os.environ.setdefault("MPLBACKEND", "Agg")
# The tests' own Keras cache, never the user's ~/.keras: set before Keras is imported (it reads KERAS_HOME once);
# `imgrec run` and the notebooks' kernels inherit it. Fixtures that need an empty cache point it elsewhere.
os.environ["KERAS_HOME"] = tempfile.mkdtemp(prefix="imgrec-tests-keras-")
atexit.register(shutil.rmtree, os.environ["KERAS_HOME"], ignore_errors=True)

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


_FILLED: dict[str, tuple[Path | None, str]] = {}


def _real_home() -> tuple[Path | None, str]:
    """The data home (``IMGREC_DATA_HOME`` or the repository's ``data/``), filled with everything the lessons read
    exactly as a student's first ``imgrec data fetch`` fills it: from ``IMGREC_DATA_MIRROR`` (``.ci/run`` points it
    at the pre-seeded classroom folder) or the public addresses. Returns ``(home, "")`` or ``(None, why not)``;
    done once per process (the files are hash-checked; a second worker waits on the folder lock, then verifies)."""
    if "home" not in _FILLED:
        from imgrec_helpers import sources
        from imgrec_helpers.errors import ImgrecError

        try:
            home = sources.check_data_home()
            sources.fetch_needs([p.name for p in runner.course_notebooks()], home, log=lambda line: None)
            _FILLED["home"] = (home, "")
        except ImgrecError as exc:
            _FILLED["home"] = (None, str(exc))
    return _FILLED["home"]


@pytest.fixture(scope="session")
def real_home() -> Path:
    """The real data home, filled from the mirror or the internet; a test that needs it FAILS (never skips) when
    the data cannot be had, saying why: set IMGREC_DATA_MIRROR to a mirror, or connect to the internet."""
    home, why = _real_home()
    if home is None:
        pytest.fail(f"the real data could not be fetched: {why}")
    return home


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


def serve_folder(folder: Path) -> tuple[ThreadingHTTPServer, str]:
    """An HTTP server on 127.0.0.1 (a free port) serving ``folder`` in a daemon thread; returns it and its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, name=f"serving {folder}", daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


# --------------------------------------------------------------------------------------------
# One smoke run of the whole course, shared by every test that checks it (tests/test_course.py)
# --------------------------------------------------------------------------------------------
# `imgrec run --profile smoke` executes every notebook once (nbval's check of the reference outputs
# reads the same executed copies, so the notebooks are not executed a second time), and, beside it,
# lesson 02 again into a second folder for the same-seed comparison. It starts in the background when the
# session starts, so it overlaps with the other tests; the tests that read it run last.
# The tests run in pytest-xdist workers (pyproject.toml: -n auto): the first worker to start claims the
# run (an exclusive lock file in the folder all workers share), runs it, and writes its outcome to
# outcome.json; a test in any worker waits for that file.

SMOKE_FIXTURE = "smoke_run"
SMOKE_WAIT = 1800  # seconds a worker waits for the smoke run of another worker before giving up


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
    procs: list[subprocess.Popen] = field(default_factory=list, repr=False)
    stopped: bool = False

    OUTCOME = ("returncode", "stdout", "stderr", "rerun_returncode", "rerun_output")

    @property
    def outcome_file(self) -> Path:
        return self.out.parent / "outcome.json"

    def save_outcome(self) -> None:
        partial = self.outcome_file.with_suffix(".partial")
        partial.write_text(json.dumps({k: getattr(self, k) for k in self.OUTCOME}))
        partial.replace(self.outcome_file)  # whole or absent: a waiting worker never reads half of it

    def load_outcome(self) -> None:
        for key, value in json.loads(self.outcome_file.read_text()).items():
            setattr(self, key, value)


def pytest_collection_modifyitems(config, items):
    """The tests that read the shared smoke run go last (stable order otherwise)."""
    items.sort(key=lambda item: SMOKE_FIXTURE in getattr(item, "fixturenames", ()))


def _imgrec(run: SmokeRun, *args: str, timeout: float = 900, env: dict[str, str] | None = None
            ) -> tuple[int, str, str]:
    """``imgrec ARGS`` in a child process that session teardown can stop (``run.procs``)."""
    if run.stopped:
        return -1, "", "not started: the test session ended"
    proc = subprocess.Popen([sys.executable, "-m", "imgrec_helpers", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    run.procs.append(proc)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()  # imgrec run stops its notebook and records the interruption
        out, err = proc.communicate()
        err += f"\nstopped after {timeout:.0f} s"
    return proc.returncode, out, err


def _shared_folder(tmp_path_factory) -> Path:
    """The temporary folder every worker of this session sees: the session's own, or under pytest-xdist the
    parent of the workers' folders."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def _behind_the_smoke_run() -> None:
    """Lower this worker's test thread's priority a little (nice +5), so that on a busy machine the smoke run,
    the session's longest stream, gets the CPU first and the other tests fill the rest. On Linux a nice value
    belongs to a thread: the smoke run's thread, started before, and its processes keep theirs."""
    if hasattr(os, "nice"):
        os.nice(5)


def _fresh_machine(folder: Path, mirror_url: str | None) -> dict[str, str]:
    """The environment of a student's fresh clone: an EMPTY data home and an EMPTY Keras cache in ``folder``,
    every file fetched from ``mirror_url`` (or, without one, the public addresses)."""
    for name in ("data", "keras", "cache"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, IMGREC_DATA_HOME=str(folder / "data"), KERAS_HOME=str(folder / "keras"))
    env.pop("IMGREC_DATA_MIRROR", None)
    if mirror_url:
        env["IMGREC_DATA_MIRROR"] = mirror_url
    return env


@pytest.fixture(scope="session", autouse=True)
def _smoke_run_in_background(request, tmp_path_factory):
    """Start the shared smoke run when the session starts, if a selected test needs it and no other worker has
    claimed it. Yields ``(thread or None, run)``: None where another worker runs it.

    The smoke run starts as a student's fresh clone does: from an EMPTY data home and an EMPTY Keras cache, and
    fetches every file the course reads (photos, CIFAR-10, weights, the class index) over HTTP from a server on
    127.0.0.1 that serves the mirror folder (``IMGREC_DATA_MIRROR``; a mirror given as a URL is used directly)."""
    if not any(SMOKE_FIXTURE in getattr(i, "fixturenames", ()) for i in request.session.items):
        yield None
        return
    folder = _shared_folder(tmp_path_factory) / "smoke"
    folder.mkdir(exist_ok=True)
    run = SmokeRun(out=folder / "run", rerun=folder / "rerun-02")
    try:
        os.close(os.open(folder / "claimed", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:  # another worker runs it
        _behind_the_smoke_run()
        yield None, run
        return
    mirror = os.environ.get("IMGREC_DATA_MIRROR")
    server = None
    if mirror and "://" not in mirror:
        server, mirror = serve_folder(Path(mirror))

    def rerun() -> None:  # lesson 02 alone, into its own folder, beside the whole run (they share nothing)
        code, out, err = _imgrec(run, "run", "--profile", "smoke", "--out", str(run.rerun), "--no-report", "02",
                                 env=_fresh_machine(folder / "machine-02", mirror))
        run.rerun_returncode, run.rerun_output = code, out + err

    def work() -> None:
        second = threading.Thread(target=rerun, name="imgrec smoke rerun of 02", daemon=True)
        second.start()
        try:
            run.returncode, run.stdout, run.stderr = _imgrec(run, "run", "--profile", "smoke", "--out", str(run.out),
                                                             env=_fresh_machine(folder / "machine", mirror))
            second.join()
        finally:
            run.save_outcome()

    thread = threading.Thread(target=work, name="imgrec smoke run", daemon=True)
    thread.start()
    _behind_the_smoke_run()
    yield thread, run
    if thread.is_alive() and (request.session.shouldstop or request.session.shouldfail):  # -x, Ctrl-C: stop it
        run.stopped = True
        for proc in run.procs:
            proc.terminate()
    thread.join()  # otherwise another worker's tests may still read it: let it finish
    if server is not None:
        server.shutdown()


@pytest.fixture(scope="session")
def smoke_run(_smoke_run_in_background) -> SmokeRun:
    """The shared smoke run, finished (waits for it); the tests using it assert that it succeeded."""
    thread, run = _smoke_run_in_background
    if thread is not None:
        thread.join()
        return run
    deadline = time.monotonic() + SMOKE_WAIT
    while not run.outcome_file.exists():
        if time.monotonic() > deadline:
            pytest.fail(f"the smoke run another worker started wrote no {run.outcome_file} in {SMOKE_WAIT} s")
        time.sleep(1)
    run.load_outcome()
    return run


@pytest.fixture
def keras_home(tmp_path, monkeypatch) -> Path:
    """An empty Keras cache, as on a fresh machine: Keras' home points into tmp_path for this test."""
    from keras.src.backend import config

    home = tmp_path / "keras_home"
    home.mkdir()
    monkeypatch.setattr(config, "_KERAS_DIR", str(home))  # what Keras read from KERAS_HOME when it was imported
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home
