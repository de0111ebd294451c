"""The headless runner behind ``imgrec run``: the numbered notebooks executed with papermill, one after another,
into a run folder with a ``manifest.json`` (and ``report.html`` at the end, :mod:`imgrec_helpers.course.report`).
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from .. import hardware
from ..errors import ImgrecError, os_error
from ..persistence import file_mode
from ..profiles import DEFAULT_PROFILE, profile_settings
from ..results import load_results
from ..running import DEFAULT_SEED, REPO_ROOT, versions
from ..sources import HOME_ENV, fetch_needs, provenance
from ..sources import check_data_home as _check_data_home
from ..sources import data_home as _data_home
from ..training import cpu_environment, describe_strategy
from .manifest import MANIFEST, process_identity, read_manifest, write_manifest
from .report import write_report

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
DEFAULT_TIMEOUT = 3600  # seconds per notebook; the full profile on a CPU needs --timeout larger


def course_notebooks(folder: Path = NOTEBOOKS_DIR) -> list[Path]:
    """The numbered notebooks (``01_*.ipynb`` ... ) in order."""
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))


def select_notebooks(names: Sequence[str], available: list[Path]) -> list[Path]:
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


def _check_timeout(timeout: float) -> float:
    try:
        value = float(timeout)
    except (TypeError, ValueError):
        value = float("nan")
    if not math.isfinite(value) or value <= 0:
        raise ImgrecError(f"timeout must be a positive, finite number of seconds, got {timeout!r}; e.g. --timeout 3600")
    return value


def _prepare_run_dir(run_dir: Path, resume: bool) -> dict[str, Any] | None:
    """Check the run folder before anything is written into it; returns its previous manifest."""
    import stat as _stat

    try:
        st = os.stat(run_dir)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise os_error(exc, run_dir, "use the run folder") from None
    if st is not None and not _stat.S_ISDIR(st.st_mode):
        raise ImgrecError(f"{run_dir}: is a file, not a folder; choose a run folder with --out DIR")
    if resume:
        if st is None:
            raise ImgrecError(f"{run_dir}: nothing to resume (no such folder); check the path, or start a new run")
        previous = read_manifest(run_dir, fix="it is not a run folder to resume; start a new run with --out")
        if previous is None:
            raise ImgrecError(f"{run_dir}: nothing to resume (no manifest.json); start a new run instead")
    else:
        previous = read_manifest(run_dir, fix="this folder holds something else: choose another --out folder") if st else None
    if previous is not None and previous.get("status") == "running":  # its runner still exists (or is elsewhere)
        where = f"process {previous.get('pid')} on {previous.get('host') or 'an unknown machine'}"
        raise ImgrecError(f"{run_dir}: another imgrec run ({where}) is still writing into this folder; wait for it "
                          f"to finish or stop it, or choose another folder (if nothing runs there any more, delete "
                          f"{run_dir / MANIFEST})")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "logs").mkdir(exist_ok=True)
    except OSError as exc:
        raise os_error(exc, exc.filename or run_dir, "create the run folder") from None
    return previous


def run_course(profile: str = DEFAULT_PROFILE, out: str | os.PathLike | None = None,
               notebooks: Sequence[str] = (), seed: int = DEFAULT_SEED, resume: bool = False,
               timeout: float = DEFAULT_TIMEOUT, data_home: str | os.PathLike | None = None,
               report: bool = True, log: Callable[[str], None] = print,
               notebooks_dir: str | os.PathLike = NOTEBOOKS_DIR) -> dict[str, Any]:
    """Execute the course's notebooks in order with papermill; return the run manifest.

    Each notebook runs in its own kernel with the parameters ``PROFILE``, ``SEED``, ``RUN_DIR``
    (and ``DATA_HOME`` when given). Executed copies go to the run folder under their own names;
    a copy is written under a temporary name and renamed when the notebook finished, so an
    interrupted run never replaces a good copy with a partial one, and a copy that does not parse
    (cut short by a full disk) is never kept. ``manifest.json`` is rewritten (atomically) after
    each notebook, and marked failed or interrupted whatever stops the run. With ``resume``,
    notebooks that already completed in ``out`` with the same profile and seed are skipped; the
    folder is checked before anything is written into it. Raises :class:`ImgrecError` naming the
    failing notebook and cell (and saying so when the disk is full).
    """
    profile_settings(profile)  # validates the name
    timeout = _check_timeout(timeout)
    available = course_notebooks(Path(notebooks_dir))
    if not available:
        raise ImgrecError(f"{notebooks_dir}: no numbered notebooks (01_*.ipynb ...) to run")
    selected = select_notebooks(notebooks, available)
    _check_data_home(data_home)
    # before lesson 01: everything the lessons read is in the data home or fetched now (from the mirror or the
    # public addresses), so a missing set stops the run in seconds, not after a lesson has trained
    fetch_needs([p.name for p in selected], data_home, log=log)
    if out is None:
        if resume:
            raise ImgrecError("--resume needs the run folder to resume: imgrec run --resume RUN_DIR")
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = REPO_ROOT / "runs" / f"{stamp}-{profile}"
    run_dir = Path(out).expanduser().absolute()
    previous = _prepare_run_dir(run_dir, resume)
    run_dir = run_dir.resolve()
    done: set[str] = set()
    if resume:
        assert previous is not None
        if previous.get("profile") != profile or previous.get("seed") != seed:
            raise ImgrecError(f"{run_dir} was run with profile {previous.get('profile')!r} and seed "
                              f"{previous.get('seed')}; resume it with the same --profile and --seed")
        done = {name for name, nb in previous["notebooks"].items()
                if nb.get("status") == "ok" and (run_dir / name).is_file()}

    manifest: dict[str, Any] = {
        "profile": profile,
        "seed": seed,
        "settings": profile_settings(profile),
        "started": _dt.datetime.now().isoformat(timespec="seconds"),
        "versions": versions(),
        "hardware": hardware.info(),
        "cpu_settings": cpu_settings_of({**os.environ, **cpu_environment()}),  # as kernel_env passes them on
        "data_home": str(_data_home(data_home)),
        "data": provenance([p.name for p in selected], data_home),  # public originals or a mirror's copies
        "notebooks": {p.name: {"status": "pending"} for p in selected},
        "status": "running",
        "pid": os.getpid(),             # with host: a later reader can tell a killed run from a running one
        "host": platform.node(),
        "process": process_identity(os.getpid()),  # tells the runner from a later process given its id
    }
    if previous and resume:
        for name in done:
            manifest["notebooks"][name] = previous["notebooks"][name]
    manifest_path = run_dir / MANIFEST
    write_manifest(manifest_path, manifest)

    log(f"imgrec run: profile {profile}, seed {seed}, {len(selected)} notebook(s) -> {run_dir}")
    failure: str | None = None
    try:
        for i, nb_path in enumerate(selected, 1):
            name = nb_path.name
            prefix = f"[{i}/{len(selected)}] {nb_path.stem}"
            if name in done:
                log(f"{prefix}: already completed, skipped (--resume)")
                continue
            entry = manifest["notebooks"][name]
            entry.update(status="running", started=_dt.datetime.now().isoformat(timespec="seconds"))
            write_manifest(manifest_path, manifest)
            t0 = time.perf_counter()
            try:
                status, detail = _execute(nb_path, run_dir, profile, seed, timeout, data_home)
            finally:
                entry["seconds"] = round(time.perf_counter() - t0, 1)
            entry.update(status=status)
            if detail:
                entry["error"] = detail
            trained_on = _trained_on(run_dir, nb_path.stem[:2])
            if trained_on:
                entry["trained_on"] = trained_on
            write_manifest(manifest_path, manifest)
            if status == "ok":
                log(f"{prefix}: ok ({entry['seconds']:.1f} s)")
                continue
            kept = run_dir / f"{nb_path.stem}.failed.ipynb"
            failure = f"notebook {name} {detail}" + (f"; executed copy: {kept}" if kept.is_file() else "")
            log(f"{prefix}: {status.upper()} ({entry['seconds']:.1f} s)")
            break
    except BaseException as exc:  # Ctrl-C, kill, a full disk...: record it, keep every finished output
        stopped = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        for nb in manifest["notebooks"].values():
            if nb.get("status") == "running":
                nb["status"] = stopped
                if stopped == "failed":
                    nb["error"] = str(exc) or type(exc).__name__
        manifest.update(status=stopped, ended=_dt.datetime.now().isoformat(timespec="seconds"))
        try:
            write_manifest(manifest_path, manifest)
        except ImgrecError:
            pass  # the error being raised already says what is wrong with the disk
        raise

    manifest["ended"] = _dt.datetime.now().isoformat(timespec="seconds")
    manifest["status"] = "failed" if failure else "ok"
    manifest["seconds"] = round(sum(nb.get("seconds", 0) for nb in manifest["notebooks"].values()), 1)
    write_manifest(manifest_path, manifest)
    if report:
        try:
            log(f"report: {write_report(run_dir)}")
        except ImgrecError as exc:
            if not failure:
                raise ImgrecError(f"every notebook ran (manifest: {manifest_path}) but the report was not written: "
                                  f"{exc}") from None
            log(f"report not written: {exc}")
    if failure:
        raise ImgrecError(failure)
    log(f"done in {manifest['seconds']:.1f} s; manifest: {manifest_path}")
    return manifest


def _trained_on(run_dir: Path, number: str) -> list[str]:
    """The distribution strategies lesson ``number``'s result records name, in words
    (``["default strategy, 1 replica (CPU:0)"]``): the manifest's ``trained_on``, shown in the report."""
    try:
        records = load_results(run_dir, kind=None)
    except ImgrecError:
        return []  # a damaged record is reported by lesson 05 and the report, which read them all
    return sorted({describe_strategy(r) for r in records if r.get("lesson") == number and "replicas" in r})


def _parses(path: Path) -> bool:
    """True when ``path`` is a complete notebook file (JSON with cells), not one cut short."""
    try:
        return isinstance(json.loads(path.read_bytes()).get("cells"), list)
    except (OSError, ValueError, AttributeError):
        return False


def _disk_full(run_dir: Path, log_path: Path) -> str | None:
    """A sentence when the disk holding ``run_dir`` is full (the log says so, or almost nothing is free)."""
    try:
        tail = log_path.read_bytes()[-20000:].decode("utf-8", "replace")
    except OSError:
        tail = ""
    try:
        st = os.statvfs(run_dir)
        free = st.f_bavail * st.f_frsize
    except OSError:
        free = None
    said = "No space left on device" in tail or "ENOSPC" in tail or "Errno 28" in tail or "disk is full" in tail
    if not said and (free is None or free > 1 << 20):
        return None
    from ..errors import _mount_point

    mount = _mount_point(run_dir)
    where = f" (mounted at {mount}, {free // 1024} KB free)" if mount is not None and free is not None else ""
    return (f"the disk holding {run_dir} is full{where}: free some space on it, or run into a folder on "
            "another disk with --out")


_PAPERMILL_MAIN = "import sys; sys.modules['rfc3987_syntax'] = None; from papermill.cli import papermill; papermill()"
"""``python -m papermill`` with less start-up per notebook. jsonschema (through nbformat) imports ``rfc3987_syntax``
when it is installed (an extra of Jupyter's dependencies), and that module compiles a grammar at import, only for
the "iri" string format, which no notebook schema uses. Blocked in papermill's process, the import fails and
jsonschema goes without that one check, as it does where the module is not installed. Measured on the 2-core
Intel Xeon, 2026-12-01: ``import papermill`` 1.8 s -> 0.45 s; a trivial notebook's run 3.18 s -> 1.48 s (medians
of 3 alternating runs)."""


def _execute(nb_path: Path, run_dir: Path, profile: str, seed: int, timeout: float,
             data_home: str | os.PathLike | None) -> tuple[str, str]:
    """Run one notebook with papermill in a child process; returns (status, detail).

    Only an executed copy that parses is kept (as the notebook, or as ``NAME.failed.ipynb``); a
    copy cut short, e.g. by a full disk, is removed and the detail says why.
    """
    params: dict[str, Any] = {"PROFILE": profile, "SEED": seed, "RUN_DIR": str(run_dir)}
    if data_home:
        params["DATA_HOME"] = str(Path(data_home).expanduser().resolve())
    final = run_dir / nb_path.name
    failed = run_dir / f"{nb_path.stem}.failed.ipynb"
    log_path = run_dir / "logs" / f"{nb_path.stem}.log"
    partial: Path | None = None
    try:
        env = kernel_env(run_dir / "logs")
        if data_home:  # the helpers that fetch (weights for applications.choose) use the lessons' data home
            env[HOME_ENV] = params["DATA_HOME"]
        fd, partial_name = tempfile.mkstemp(prefix=f".{nb_path.stem}.", suffix=".partial.ipynb", dir=run_dir)
        os.close(fd)
        partial = Path(partial_name)
        os.chmod(partial, file_mode())  # papermill writes into this file: the copy gets open()'s mode
        log_file = open(log_path, "w")
    except OSError as exc:
        if partial is not None and partial.exists():
            partial.unlink()
        raise os_error(exc, exc.filename or run_dir, "write") from None
    cmd = [sys.executable, "-c", _PAPERMILL_MAIN, str(nb_path), str(partial), "-y", json.dumps(params),
           "--cwd", str(nb_path.parent), "--kernel", "python3", "--no-progress-bar", "--log-output"]
    try:
        with log_file:
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
        full = _disk_full(run_dir, log_path) if code != 0 or not _parses(partial) else None
        if code != 0:
            kept = _keep_failed(partial, failed)
            where = _failing_cell(failed) if kept else "a cell (no readable executed copy was written)"
            return "failed", f"failed in {where}{'; ' + full if full else ''} (log: {log_path})"
        if not _parses(partial):
            return "failed", (f"failed: {full or 'its executed copy could not be written completely'}; "
                              f"the previous copy is unchanged (log: {log_path})")
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
    - The course's CPU speed settings (:data:`imgrec_helpers.training.CPU_ENVIRONMENT`, oneDNN on)
      unless the caller set them.
    - No ``MPLBACKEND``: a non-interactive backend such as ``Agg`` (common in CI) would leave the figures
      out of the executed notebooks; the kernel draws them inline, as in JupyterLab.
    """
    ipython_dir = Path(folder) / "ipython"
    (ipython_dir / "profile_default").mkdir(parents=True, exist_ok=True)
    (ipython_dir / "profile_default" / "ipython_kernel_config.py").write_text(
        "c.IPKernelApp.capture_fd_output = True  # as in JupyterLab\n")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"),
               PYTHONUNBUFFERED="1", IPYTHONDIR=str(ipython_dir), IMGREC_HEADLESS="1")
    env.update(cpu_environment(env))
    env.pop("MPLBACKEND", None)
    return env


SPEED_VARIABLES = ("TF_ENABLE_ONEDNN_OPTS", "ONEDNN_MAX_CPU_ISA", "IMGREC_PRECISION", "TF_NUM_INTEROP_THREADS",
                   "TF_NUM_INTRAOP_THREADS")
"""The environment variables that change training speed or precision (recorded in ``manifest.json``)."""


def cpu_settings_of(env: dict[str, str]) -> dict[str, str]:
    """The speed-related variables as the notebook kernels see them, for ``manifest.json``
    (``"cpu_settings"``: unset ones are left out)."""
    return {k: env[k] for k in SPEED_VARIABLES if k in env}


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


def _keep_failed(partial: Path, failed: Path) -> bool:
    """Keep the executed copy of a failed notebook as ``failed`` if it parses; True when kept."""
    if _parses(partial):
        os.replace(partial, failed)
        return True
    return False

