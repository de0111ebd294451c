"""``imgrec run``: the numbered notebooks executed in order by papermill (in this process, each in its own kernel)
into a run folder with ``manifest.json`` (:mod:`.manifest`) and, at the end, ``report.html`` (:mod:`.report`)."""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import math
import os
import platform
import stat
import time
from pathlib import Path
from typing import IO, Any, Callable, Iterator, Sequence

from jupyter_client.manager import AsyncKernelManager

from .. import hardware
from ..errors import ImgrecError, mount_point, os_error
from ..profiles import DEFAULT_PROFILE, profile_settings
from ..results import load_results
from ..running import DEFAULT_SEED, REPO_ROOT, versions
from ..sources import HOME_ENV, check_data_home, data_home as _data_home, fetch_needs, provenance
from ..training import cpu_environment, describe_strategy
from .manifest import MANIFEST, process_identity, read_manifest, write_manifest
from .report import write_report

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
DEFAULT_TIMEOUT = 3600  # seconds one cell may run (papermill's execution_timeout); the full profile on a CPU needs more
SPEED_VARIABLES = ("TF_ENABLE_ONEDNN_OPTS", "ONEDNN_MAX_CPU_ISA", "IMGREC_PRECISION", "TF_NUM_INTEROP_THREADS",
                   "TF_NUM_INTRAOP_THREADS")  # what changes training speed or precision: the manifest's cpu_settings


def course_notebooks(folder: Path = NOTEBOOKS_DIR) -> list[Path]:
    """The numbered notebooks (``01_*.ipynb`` ... ) in order."""
    return sorted(folder.glob("[0-9][0-9]_*.ipynb"))


def select_notebooks(names: Sequence[str], available: list[Path]) -> list[Path]:
    """The notebooks ``imgrec run`` and ``imgrec data`` name (``01``, ``01_intro``, a file name), in order; all
    when none is named."""
    chosen: set[Path] = set()
    for name in names:
        hits = {p for p in available if name in (p.name, p.stem) or p.name.startswith(f"{name}_")
                or Path(name).name == p.name}
        if not hits:
            raise ImgrecError(f"unknown notebook {name!r}; choose from: {', '.join(p.name for p in available)}")
        chosen |= hits
    return sorted(chosen) if names else available


def _now() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")


def _prepare_run_dir(run_dir: Path, resume: bool) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """Check the run folder before anything is written into it, then create it; returns its previous manifest and
    the kernels' environment (:func:`kernel_env`, its IPython profile under ``logs/``)."""
    try:
        is_dir = stat.S_ISDIR(os.stat(run_dir).st_mode)
    except FileNotFoundError:
        is_dir = None
    except OSError as exc:
        raise os_error(exc, run_dir, "use the run folder") from None
    if is_dir is False:
        raise ImgrecError(f"{run_dir}: is a file, not a folder; choose a run folder with --out DIR")
    if resume and not is_dir:
        raise ImgrecError(f"{run_dir}: nothing to resume (no such folder); check the path, or start a new run")
    fix = ("it is not a run folder to resume; start a new run with --out" if resume
           else "this folder holds something else: choose another --out folder")
    previous = read_manifest(run_dir, fix=fix) if is_dir else None
    if resume and previous is None:
        raise ImgrecError(f"{run_dir}: nothing to resume (no manifest.json); start a new run instead")
    if previous is not None and previous.get("status") == "running":  # its runner still exists (or is elsewhere)
        where = f"process {previous.get('pid')} on {previous.get('host') or 'an unknown machine'}"
        raise ImgrecError(f"{run_dir}: another imgrec run ({where}) is still writing into this folder; wait for it "
                          f"to finish or stop it, or choose another folder (if nothing runs there any more, delete "
                          f"{run_dir / MANIFEST})")
    try:
        return previous, kernel_env(run_dir / "logs")
    except OSError as exc:
        raise os_error(exc, exc.filename or run_dir, "create the run folder") from None


def run_course(profile: str = DEFAULT_PROFILE, out: str | os.PathLike | None = None,
               notebooks: Sequence[str] = (), seed: int = DEFAULT_SEED, resume: bool = False,
               timeout: float = DEFAULT_TIMEOUT, data_home: str | os.PathLike | None = None,
               report: bool = True, log: Callable[[str], None] = print,
               notebooks_dir: str | os.PathLike = NOTEBOOKS_DIR) -> dict[str, Any]:
    """``imgrec run``: the notebooks in order, with the parameters ``PROFILE``, ``SEED``, ``RUN_DIR`` (``DATA_HOME``),
    one cell running ``timeout`` seconds at most; ``resume`` skips those that completed in ``out`` with the same
    profile and seed. Returns the manifest (rewritten after each notebook, marked failed or interrupted whatever stops
    the run); raises :class:`ImgrecError` naming the failing notebook and cell (and saying so when the disk is full)."""
    profile_settings(profile)  # validates the name
    try:
        timeout = float(timeout)
    except (TypeError, ValueError):
        timeout = math.nan
    if not 0 < timeout < math.inf:
        raise ImgrecError(f"timeout must be a positive, finite number of seconds, got {timeout!r}; e.g. --timeout 3600")
    available = course_notebooks(Path(notebooks_dir))
    if not available:
        raise ImgrecError(f"{notebooks_dir}: no numbered notebooks (01_*.ipynb ...) to run")
    selected = select_notebooks(notebooks, available)
    names = [p.name for p in selected]
    check_data_home(data_home)
    # before lesson 01: everything the lessons read is in the data home or fetched now (from the mirror or the
    # public addresses), so a missing set stops the run in seconds, not after a lesson has trained
    fetch_needs(names, data_home, log=log)
    if out is None:
        if resume:
            raise ImgrecError("--resume needs the run folder to resume: imgrec run --resume RUN_DIR")
        out = REPO_ROOT / "runs" / f"{_dt.datetime.now():%Y%m%d-%H%M%S}-{profile}"
    previous, env = _prepare_run_dir(Path(out).expanduser().absolute(), resume)
    run_dir = Path(out).expanduser().resolve()
    done: dict[str, Any] = {}
    if previous and resume:
        if previous.get("profile") != profile or previous.get("seed") != seed:
            raise ImgrecError(f"{run_dir} was run with profile {previous.get('profile')!r} and seed "
                              f"{previous.get('seed')}; resume it with the same --profile and --seed")
        done = {name: nb for name, nb in previous["notebooks"].items()
                if nb.get("status") == "ok" and (run_dir / name).is_file()}
    params: dict[str, Any] = {"PROFILE": profile, "SEED": seed, "RUN_DIR": str(run_dir)}
    if data_home:  # the helpers that fetch (weights for applications.choose) use the lessons' data home too
        params["DATA_HOME"] = env[HOME_ENV] = str(Path(data_home).expanduser().resolve())
    manifest: dict[str, Any] = {
        "profile": profile, "seed": seed, "settings": profile_settings(profile), "started": _now(),
        "versions": versions(), "hardware": hardware.info(),
        "cpu_settings": {k: env[k] for k in SPEED_VARIABLES if k in env},  # as the kernels see them
        "data_home": str(_data_home(data_home)),
        "data": provenance(names, data_home),  # public originals or a mirror's copies
        "notebooks": {**{name: {"status": "pending"} for name in names}, **done},
        "status": "running",
        "pid": os.getpid(), "host": platform.node(),  # a later reader can tell a killed run from a running one,
        "process": process_identity(os.getpid()),     # and the runner from a later process given its id
    }
    manifest_path = run_dir / MANIFEST
    write_manifest(manifest_path, manifest)

    log(f"imgrec run: profile {profile}, seed {seed}, {len(selected)} notebook(s) -> {run_dir}")
    failure: str | None = None
    try:
        for i, nb_path in enumerate(selected, 1):
            prefix = f"[{i}/{len(selected)}] {nb_path.stem}"
            if nb_path.name in done:
                log(f"{prefix}: already completed, skipped (--resume)")
                continue
            entry = manifest["notebooks"][nb_path.name]
            entry.update(status="running", started=_now())
            write_manifest(manifest_path, manifest)
            t0 = time.perf_counter()
            try:
                entry["status"], detail = _execute(nb_path, run_dir, params, timeout, env)
            finally:
                entry["seconds"] = round(time.perf_counter() - t0, 1)
            if detail:
                entry["error"] = detail
            trained_on = _trained_on(run_dir, nb_path.stem[:2])
            if trained_on:
                entry["trained_on"] = trained_on
            write_manifest(manifest_path, manifest)
            if entry["status"] == "ok":
                log(f"{prefix}: ok ({entry['seconds']:.1f} s)")
                continue
            kept = run_dir / f"{nb_path.stem}.failed.ipynb"
            failure = f"notebook {nb_path.name} {detail}" + (f"; executed copy: {kept}" if kept.is_file() else "")
            log(f"{prefix}: {entry['status'].upper()} ({entry['seconds']:.1f} s)")
            break
    except BaseException as exc:  # Ctrl-C, kill, a full disk...: record it, keep every finished output
        stopped = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        for nb in manifest["notebooks"].values():
            if nb.get("status") == "running":
                nb["status"] = stopped
                if stopped == "failed":
                    nb["error"] = str(exc) or type(exc).__name__
        manifest.update(status=stopped, ended=_now())
        with contextlib.suppress(ImgrecError):  # the error being raised already says what is wrong with the disk
            write_manifest(manifest_path, manifest)
        raise

    manifest.update(ended=_now(), status="failed" if failure else "ok",
                    seconds=round(sum(nb.get("seconds", 0) for nb in manifest["notebooks"].values()), 1))
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


def _kernel_manager(env: dict[str, str], log: IO[str]) -> type[AsyncKernelManager]:
    """nbclient's kernel manager, starting the kernel with ``env`` (:func:`kernel_env`) instead of this process's
    environment, and its own messages going to the notebook's ``log``."""

    class KernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw: Any) -> None:
            await super().start_kernel(env=env, stdout=log, stderr=log, **kw)

    return KernelManager


class _LogFile(logging.FileHandler):
    """A notebook's ``logs/NAME.log``; a line it cannot write (a full disk) is dropped, not printed: the run's
    own error says what is wrong."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass


@contextlib.contextmanager
def _papermill_log(path: Path) -> Iterator[IO[str]]:
    """papermill's messages and each cell's output (``log_output``) into ``path``, not the terminal; yields the
    file, for the kernel's own messages."""
    logger = logging.getLogger("papermill")
    try:
        handler = _LogFile(path, mode="w", encoding="utf-8")
    except OSError as exc:
        raise os_error(exc, path, "write") from None
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler.stream
    finally:
        logger.removeHandler(handler)
        with contextlib.suppress(OSError):  # a full disk: the run's own error says so
            handler.close()
        logger.setLevel(level)


def _cells(path: Path) -> list[dict[str, Any]] | None:
    """The cells of a complete notebook file; None for one cut short (by a full disk) or missing."""
    try:
        cells = json.loads(path.read_bytes()).get("cells")
    except (OSError, ValueError, AttributeError):
        return None
    return cells if isinstance(cells, list) else None


def _first_line(text: object) -> str:
    return (str(text).strip().splitlines() or [""])[0]


def _failing_cell(cells: list[dict[str, Any]], exc: BaseException | None) -> str:
    """``code cell N [its first line]: ErrorType: message`` for the last cell papermill started in an executed copy,
    counted as in the source notebook: the cell's own error, else ``exc`` (a dead kernel); no error without exc."""
    code = [c for c in cells if c.get("cell_type") == "code"
            and "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    started = [i for i, c in enumerate(code) if c.get("metadata", {}).get("papermill", {}).get("start_time")]
    if not started:
        return f"no cell: the kernel did not start ({type(exc).__name__}: {_first_line(exc)})"
    source = _first_line("".join(code[started[-1]].get("source", "")))
    place = f"code cell {started[-1] + 1}" + (f" [{source[:60]}]" if source else "")
    if exc is None:
        return place  # a timeout: the kernel's interruption is no error of the cell's
    error = next((o for o in code[started[-1]].get("outputs", []) if o.get("output_type") == "error"), None)
    if error is None:
        return f"{place}: {type(exc).__name__}: {_first_line(exc)}"
    return f"{place}: {error.get('ename')}: {_first_line(error.get('evalue', ''))}"


def _disk_full(run_dir: Path, said: str) -> str | None:
    """A sentence when the disk holding ``run_dir`` is full (``said``, an error, says so, or almost nothing is free)."""
    try:
        st = os.statvfs(run_dir)
        free = st.f_bavail * st.f_frsize
    except OSError:
        free = None
    said_full = any(s in said for s in ("No space left on device", "ENOSPC", "Errno 28", "disk is full"))
    if not said_full and (free is None or free > 1 << 20):
        return None
    mount = mount_point(run_dir)
    where = f" (mounted at {mount}, {free // 1024} KB free)" if mount is not None and free is not None else ""
    return (f"the disk holding {run_dir} is full{where}: free some space on it, or run into a folder on "
            "another disk with --out")


def _execute(nb_path: Path, run_dir: Path, params: dict[str, Any], timeout: float,
             env: dict[str, str]) -> tuple[str, str]:
    """Run one notebook with papermill (its ``execution_timeout`` per cell; papermill shuts its kernel down however
    it ends); returns (status, detail). Only an executed copy that parses is kept (as the notebook, or as
    ``NAME.failed.ipynb``); a copy cut short, e.g. by a full disk, is removed and the detail says why."""
    import papermill  # 4.0 s to import, measured here 2026-12-05: `imgrec lab` and `imgrec data` import this module
    from nbclient.exceptions import CellTimeoutError

    partial = run_dir / f".{nb_path.stem}.partial.ipynb"  # papermill writes it with open(): the umask's mode
    failed = run_dir / f"{nb_path.stem}.failed.ipynb"
    log_path = run_dir / "logs" / f"{nb_path.stem}.log"
    error: Exception | None = None
    try:
        with _papermill_log(log_path) as log:
            try:
                papermill.execute_notebook(
                    nb_path, partial, params, kernel_name="python3", cwd=nb_path.parent, progress_bar=False,
                    log_output=True, execution_timeout=timeout, kernel_manager_class=_kernel_manager(env, log))
            except Exception as exc:  # a failing cell, a timeout, a dead kernel, a full disk: the copy tells which
                error = exc
                logging.getLogger("papermill").error("%s: %s", type(exc).__name__, exc)
        cells = _cells(partial)
        if cells is not None:  # only a complete executed copy replaces the previous one
            os.replace(partial, failed if error else run_dir / nb_path.name)
    finally:
        partial.unlink(missing_ok=True)
    if cells is not None and error is None:
        failed.unlink(missing_ok=True)
        return "ok", ""
    if isinstance(error, CellTimeoutError):
        where = _failing_cell(cells, None) if cells else "a cell"
        return "timeout", (f"timed out after {timeout:.0f} s in {where} (the most one cell may run: raise it with "
                           "--timeout SECONDS)")
    full = _disk_full(run_dir, str(error))
    if error is None:
        return "failed", (f"failed: {full or 'its executed copy could not be written completely'}; "
                          f"the previous copy is unchanged (log: {log_path})")
    where = (_failing_cell(cells, error) if cells is not None else
             f"a cell (no readable executed copy was written: {type(error).__name__}: {_first_line(error)})")
    return "failed", f"failed in {where}{'; ' + full if full else ''} (log: {log_path})"


def kernel_env(folder: Path) -> dict[str, str]:
    """The environment of headless kernels (``imgrec run``, the tests): the caller's, so that an executed notebook
    shows what JupyterLab does: ``IMGREC_HEADLESS=1`` (one line per epoch); file-descriptor output captured (anything
    TensorFlow's C++ code writes), from an IPython profile under ``folder`` that a user's start-up files cannot change;
    TensorFlow's C++ log level 3 and the CPU speed settings (:data:`imgrec_helpers.training.CPU_ENVIRONMENT`) unless
    set; no ``MPLBACKEND`` (``Agg``, common in CI, would leave the figures out: the kernel draws them inline)."""
    profile = Path(folder) / "ipython" / "profile_default"
    profile.mkdir(parents=True, exist_ok=True)
    (profile / "ipython_kernel_config.py").write_text("c.IPKernelApp.capture_fd_output = True  # as in JupyterLab\n")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"),
               PYTHONUNBUFFERED="1", IPYTHONDIR=str(profile.parent), IMGREC_HEADLESS="1")
    env.update(cpu_environment(env))
    env.pop("MPLBACKEND", None)
    return env
