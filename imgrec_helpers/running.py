"""Running the course: each lesson's setup cell, and the headless runner behind ``imgrec run``.

:func:`start_lesson` is the first code cell of every notebook: it applies the profile, seeds every
random generator, sets plot defaults and says where results go. :func:`run_course` executes the
numbered notebooks with papermill, one after another, into a run folder with a ``manifest.json``.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from . import hardware
from .quiet import import_tensorflow
from .data import data_home as _data_home
from .errors import ImgrecError
from .persistence import write_json
from .profiles import DEFAULT_PROFILE, PROFILES, profile_settings

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
DEFAULT_SEED = 42
DEFAULT_TIMEOUT = 3600  # seconds per notebook; the full profile on a CPU needs --timeout larger


@dataclass
class Lesson:
    """What a notebook needs to know about its run: made by :func:`start_lesson`."""

    number: str
    profile: str
    seed: int
    run_dir: Path
    data_home: Path
    settings: dict[str, Any] = field(repr=False)

    def path(self, *parts: str) -> Path:
        """A path inside the run folder, its parent folders created (models/, features/, figures/...)."""
        p = self.run_dir.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    @property
    def verbose(self) -> int:
        """``verbose`` for ``model.fit``: 1 (a live progress bar) in JupyterLab, 2 (one line per epoch)
        when ``imgrec run`` or the tests execute the notebook headless (they set ``IMGREC_HEADLESS=1``)."""
        return 2 if os.environ.get("IMGREC_HEADLESS") == "1" else 1

    def record(self, name: str, *, kind: str = "model", precision: str = "float32", **measured: Any) -> Path:
        """Record one measured result in ``results/<name>.json`` (lessons 02-06; lesson 05 reads them).

        The lesson fills in what it knows itself: profile, seed and hardware; ``precision`` is
        ``float32`` unless the lesson trained in another (lesson 02's ``PRECISION``). The call names
        only what the lesson measured (``approach``, ``model``, ``train_images``, ``test_accuracy``, ...).
        """
        from .results import record_result

        return record_result(self.run_dir, name, kind=kind, profile=self.profile, seed=self.seed,
                             precision=precision, hardware=hardware.label(), **measured)


def set_seed(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and TensorFlow with one number; optionally make TensorFlow ops deterministic.

    Called by :func:`start_lesson`, and again before each model is built so that any cell re-run
    alone gives the same result.
    """
    import keras
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)
    if deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def versions() -> dict[str, str]:
    """Versions of Python and the libraries the course depends on (manifest, setup cells).

    Read from the installed package metadata, so the runner does not have to import TensorFlow.
    """
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("tensorflow", "keras", "numpy", "matplotlib", "pillow", "papermill"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def default_run_dir(profile: str) -> Path:
    """Where a notebook run by hand in JupyterLab writes: ``runs/interactive-<profile>/``."""
    return REPO_ROOT / "runs" / f"interactive-{profile}"


def start_lesson(number: str, profile: str = DEFAULT_PROFILE, seed: int = DEFAULT_SEED,
                 run_dir: str | os.PathLike | None = None, data_home: str | os.PathLike | None = None,
                 quiet: bool = False) -> Lesson:
    """The setup cell of every notebook: TensorFlow started quietly, profile, seeds, plot defaults,
    run folder, data home.

    Call it before ``import keras`` so that TensorFlow's C++ start-up log is filtered
    (:func:`imgrec_helpers.quiet.import_tensorflow`).

    ``run_dir`` empty means :func:`default_run_dir` (a notebook opened in JupyterLab);
    ``imgrec run`` passes its own. Prints one line saying what was chosen.
    """
    settings = profile_settings(profile)
    import_tensorflow()  # before anything imports TensorFlow: no C++ start-up log in the notebook
    set_seed(seed, deterministic=settings["deterministic"])
    import matplotlib

    matplotlib.rcParams.update({"figure.dpi": 80, "savefig.dpi": 100, "axes.grid": False,
                                "figure.max_open_warning": 0})
    run = Path(run_dir).expanduser().resolve() if run_dir else default_run_dir(profile)
    run.mkdir(parents=True, exist_ok=True)
    lesson = Lesson(number=number, profile=profile, seed=seed, run_dir=run,
                    data_home=_data_home(data_home), settings=settings)
    if not quiet:
        v = versions()
        print(f"Lesson {number} | profile {profile} | seed {seed} | TensorFlow {v['tensorflow']}, "
              f"Keras {v['keras']} | {hardware.label()}\nrun folder: {run}\ndata home: {lesson.data_home}")
    return lesson


# --------------------------------------------------------------------------------------------
# The runner (imgrec run)
# --------------------------------------------------------------------------------------------


def course_notebooks(folder: Path = NOTEBOOKS_DIR) -> list[Path]:
    """The numbered notebooks (``01_*.ipynb`` ... ) in order."""
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))


def _select(names: Sequence[str], available: list[Path]) -> list[Path]:
    if not names:
        return available
    chosen = []
    for name in names:
        hits = [p for p in available if p.name == name or p.stem == name or p.name.startswith(f"{name}_")
                or Path(name).name == p.name]
        if not hits:
            raise ImgrecError(f"unknown notebook {name!r}; choose from: {', '.join(p.name for p in available)}")
        chosen.extend(h for h in hits if h not in chosen)
    return sorted(chosen)


def _failing_cell(executed: Path) -> str:
    """'cell N: ErrorType: message' for the cell papermill marked as failed in an executed notebook."""
    try:
        nb = json.loads(executed.read_text())
    except (OSError, ValueError):
        return "no executed copy was written"
    code_index = 0
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code" or "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            continue  # count code cells as in the source notebook, without papermill's injected one
        code_index += 1
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                evalue = str(out.get("evalue", "")).strip().splitlines()
                source = "".join(cell.get("source", "")).strip().splitlines()
                first = f" [{source[0][:60]}]" if source else ""
                return f"code cell {code_index}{first}: {out.get('ename')}: {evalue[0] if evalue else ''}"
    return "no cell error recorded (the kernel died or the run was stopped)"


def _read_manifest(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "manifest.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise ImgrecError(f"{path}: not a valid manifest; delete it, or run into a new folder") from None


def run_course(profile: str = DEFAULT_PROFILE, out: str | os.PathLike | None = None,
               notebooks: Sequence[str] = (), seed: int = DEFAULT_SEED, resume: bool = False,
               timeout: float = DEFAULT_TIMEOUT, data_home: str | os.PathLike | None = None,
               report: bool = True, log: Callable[[str], None] = print,
               notebooks_dir: str | os.PathLike = NOTEBOOKS_DIR) -> dict[str, Any]:
    """Execute the course's notebooks in order with papermill; return the run manifest.

    Each notebook runs in its own kernel with the parameters ``PROFILE``, ``SEED``, ``RUN_DIR``
    (and ``DATA_HOME`` when given). Executed copies go to the run folder under their own names;
    a copy is written under a temporary name and renamed when the notebook finished, so an
    interrupted run never replaces a good copy with a partial one. ``manifest.json`` is rewritten
    (atomically) after each notebook. With ``resume``, notebooks that already completed in ``out``
    with the same profile and seed are skipped. Raises :class:`ImgrecError` naming the failing
    notebook and cell.
    """
    profile_settings(profile)  # validates the name
    available = course_notebooks(Path(notebooks_dir))
    if not available:
        raise ImgrecError(f"{notebooks_dir}: no numbered notebooks (01_*.ipynb ...) to run")
    selected = _select(notebooks, available)
    if out is None:
        if resume:
            raise ImgrecError("--resume needs the run folder to resume: imgrec run --resume RUN_DIR")
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = REPO_ROOT / "runs" / f"{stamp}-{profile}"
    run_dir = Path(out).expanduser().resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "logs").mkdir(exist_ok=True)

    previous = _read_manifest(run_dir)
    done: set[str] = set()
    if resume:
        if previous is None:
            raise ImgrecError(f"{run_dir}: nothing to resume (no manifest.json); start a new run instead")
        if previous.get("profile") != profile or previous.get("seed") != seed:
            raise ImgrecError(f"{run_dir} was run with profile {previous.get('profile')!r} and seed "
                              f"{previous.get('seed')}; resume it with the same --profile and --seed")
        done = {name for name, nb in previous.get("notebooks", {}).items()
                if nb.get("status") == "ok" and (run_dir / name).is_file()}

    manifest: dict[str, Any] = {
        "profile": profile,
        "seed": seed,
        "settings": profile_settings(profile),
        "started": _dt.datetime.now().isoformat(timespec="seconds"),
        "versions": versions(),
        "hardware": hardware.info(),
        "data_home": str(_data_home(data_home)),
        "notebooks": {p.name: {"status": "pending"} for p in selected},
        "status": "running",
    }
    if previous and resume:
        for name in done:
            manifest["notebooks"][name] = previous["notebooks"][name]
    manifest_path = run_dir / "manifest.json"
    write_json(manifest_path, manifest)

    log(f"imgrec run: profile {profile}, seed {seed}, {len(selected)} notebook(s) -> {run_dir}")
    failure: str | None = None
    for i, nb_path in enumerate(selected, 1):
        name = nb_path.name
        prefix = f"[{i}/{len(selected)}] {nb_path.stem}"
        if name in done:
            log(f"{prefix}: already completed, skipped (--resume)")
            continue
        entry = manifest["notebooks"][name]
        entry.update(status="running", started=_dt.datetime.now().isoformat(timespec="seconds"))
        write_json(manifest_path, manifest)
        t0 = time.perf_counter()
        try:
            status, detail = _execute(nb_path, run_dir, profile, seed, timeout, data_home)
        except KeyboardInterrupt:  # Ctrl-C or kill: record it, keep every finished output
            entry.update(status="interrupted", seconds=round(time.perf_counter() - t0, 1))
            manifest.update(status="interrupted", ended=_dt.datetime.now().isoformat(timespec="seconds"))
            write_json(manifest_path, manifest)
            raise
        seconds = round(time.perf_counter() - t0, 1)
        entry.update(status=status, seconds=seconds)
        if detail:
            entry["error"] = detail
        write_json(manifest_path, manifest)
        if status == "ok":
            log(f"{prefix}: ok ({seconds:.1f} s)")
            continue
        failure = f"notebook {name} {detail}; executed copy: {run_dir / (nb_path.stem + '.failed.ipynb')}"
        log(f"{prefix}: {status.upper()} ({seconds:.1f} s)")
        break

    manifest["ended"] = _dt.datetime.now().isoformat(timespec="seconds")
    manifest["status"] = "failed" if failure else "ok"
    manifest["seconds"] = round(sum(nb.get("seconds", 0) for nb in manifest["notebooks"].values()), 1)
    write_json(manifest_path, manifest)
    if report:
        from .report import write_report

        report_path = write_report(run_dir)
        log(f"report: {report_path}")
    if failure:
        raise ImgrecError(failure)
    log(f"done in {manifest['seconds']:.1f} s; manifest: {manifest_path}")
    return manifest


def _execute(nb_path: Path, run_dir: Path, profile: str, seed: int, timeout: float,
             data_home: str | os.PathLike | None) -> tuple[str, str]:
    """Run one notebook with papermill in a child process; returns (status, detail)."""
    params: dict[str, Any] = {"PROFILE": profile, "SEED": seed, "RUN_DIR": str(run_dir)}
    if data_home:
        params["DATA_HOME"] = str(Path(data_home).expanduser().resolve())
    final = run_dir / nb_path.name
    failed = run_dir / f"{nb_path.stem}.failed.ipynb"
    log_path = run_dir / "logs" / f"{nb_path.stem}.log"
    env = kernel_env(run_dir / "logs")
    fd, partial_name = tempfile.mkstemp(prefix=f".{nb_path.stem}.", suffix=".partial.ipynb", dir=run_dir)
    os.close(fd)
    partial = Path(partial_name)
    cmd = [sys.executable, "-m", "papermill", str(nb_path), str(partial), "-y", json.dumps(params),
           "--cwd", str(nb_path.parent), "--kernel", "python3", "--no-progress-bar", "--log-output"]
    try:
        with open(log_path, "w") as log_file:
            proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env,
                                    preexec_fn=_own_group_dying_with_parent)
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                _keep_failed(partial, failed)
                return "timeout", f"timed out after {timeout:.0f} s (raise it with --timeout SECONDS)"
            except KeyboardInterrupt:
                _kill_group(proc)
                raise
        if code != 0:
            _keep_failed(partial, failed)
            return "failed", f"failed in {_failing_cell(failed)} (log: {log_path})"
        os.replace(partial, final)  # only a complete executed copy replaces the previous one
        if failed.exists():
            failed.unlink()
        return "ok", ""
    finally:
        if partial.exists():
            partial.unlink()


def _own_group_dying_with_parent() -> None:  # runs in the child before papermill starts
    """Own process group (so a timeout stops papermill and its kernel together), and on Linux a
    SIGTERM when the runner dies, even by SIGKILL, so no orphaned notebook keeps running."""
    os.setsid()
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def kernel_env(folder: Path) -> dict[str, str]:
    """Environment for headless notebook kernels (``imgrec run``, the tests): the caller's, set up so that
    an executed notebook shows what a student sees in JupyterLab.

    - ``IMGREC_HEADLESS=1``: ``lesson.verbose`` gives one line per epoch instead of a progress bar.
    - The kernel captures file-descriptor output as JupyterLab's does (anything TensorFlow's C++ code
      writes would appear in the notebook, so the tests can check that nothing does), from an IPython
      profile written under ``folder``, so a user's own IPython start-up files do not change a run.
    - TensorFlow's C++ log level 3 unless set (:func:`imgrec_helpers.quiet.import_tensorflow`).
    - No ``MPLBACKEND``: a non-interactive backend such as ``Agg`` (common in CI) would leave the figures
      out of the executed notebooks; the kernel draws them inline, as in JupyterLab.
    """
    ipython_dir = Path(folder) / "ipython"
    (ipython_dir / "profile_default").mkdir(parents=True, exist_ok=True)
    (ipython_dir / "profile_default" / "ipython_kernel_config.py").write_text(
        "c.IPKernelApp.capture_fd_output = True  # as in JupyterLab\n")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"),
               PYTHONUNBUFFERED="1", IPYTHONDIR=str(ipython_dir), IMGREC_HEADLESS="1")
    env.pop("MPLBACKEND", None)
    return env


def _kill_group(proc: subprocess.Popen) -> None:
    """Stop papermill and its kernel (they share a process group)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def _keep_failed(partial: Path, failed: Path) -> None:
    if partial.exists() and partial.stat().st_size > 0:
        os.replace(partial, failed)


__all__ = ["Lesson", "start_lesson", "set_seed", "run_course", "course_notebooks", "versions",
           "default_run_dir", "PROFILES"]
