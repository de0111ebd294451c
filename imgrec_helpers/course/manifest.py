"""A run folder's ``manifest.json``: written by :mod:`imgrec_helpers.course.runner` as each notebook runs, read
back by ``imgrec run --resume`` and :mod:`imgrec_helpers.course.report`."""
from __future__ import annotations

import errno
import json
import os
import platform
from pathlib import Path
from typing import Any

from ..errors import FileSystemError, ImgrecError, os_error
from ..persistence import write_json

MANIFEST = "manifest.json"
_MANIFEST_KEYS = {"profile": str, "seed": int, "notebooks": dict, "status": str}


def read_manifest(run_dir: str | os.PathLike, fix: str = "run into a new folder") -> dict[str, Any] | None:
    """``RUN_DIR/manifest.json`` if it is a run manifest written by ``imgrec run``; None when there is none.

    One-line :class:`ImgrecError` for a manifest that is empty, truncated, not an object, or some
    other program's ``manifest.json`` (no profile, seed, notebooks and status), and for one that
    cannot be read. Used by the runner (``--resume``, runs into an existing folder) and
    ``imgrec report``; ``fix`` is the advice for a manifest that is not one.
    """
    path = Path(run_dir) / MANIFEST
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        if isinstance(exc, OSError):
            raise os_error(exc, path, "read") from None
        raise ImgrecError(f"{path}: not a text file, so not an imgrec run manifest; {fix}") from None
    try:
        manifest = json.loads(text)
    except ValueError:
        state = "empty" if not text.strip() else "truncated or not JSON"
        raise ImgrecError(f"{path}: {state}, so not a valid imgrec run manifest; {fix}") from None
    wrong = ([f"a JSON {type(manifest).__name__}"] if not isinstance(manifest, dict) else
             [k for k, t in _MANIFEST_KEYS.items() if not isinstance(manifest.get(k), t)
              or (t is int and isinstance(manifest.get(k), bool))])
    if not wrong and not all(isinstance(nb, dict) for nb in manifest["notebooks"].values()):
        wrong = ["notebooks"]
    if wrong:
        raise ImgrecError(f"{path}: not an imgrec run manifest ({'it is ' + wrong[0] if not isinstance(manifest, dict) else 'bad or missing ' + ', '.join(wrong)}); {fix}")
    return _settle_if_gone(manifest)


def _process_exists(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (signal 0 only checks). On Windows, where
    ``os.kill`` would end the process, it does not check and answers True."""
    if os.name == "nt":
        return True  # cannot tell there, so assume it still runs
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    except (OverflowError, ValueError):
        return False
    return True


def process_identity(pid: int) -> str | None:
    """``"<boot id>:<start time>"`` of process ``pid`` on Linux (from ``/proc``), None where it cannot be
    read (macOS, Windows, no such process). Recorded in the manifest beside the process id: a later
    process that got the same id (after a reboot, or a SIGKILL and many new processes) has another."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
        start = stat[stat.rindex(")") + 2:].split()[19]  # field 22, after the "(name)" that may hold spaces
    except (OSError, ValueError, IndexError):
        return None
    return f"{boot}:{start}"


def _settle_if_gone(manifest: dict[str, Any]) -> dict[str, Any]:
    """A manifest still at "running" whose runner (``pid`` on this ``host``) no longer exists was stopped
    without a chance to record it (SIGKILL, power loss): read it as "interrupted", saying so; the file is
    left as it is (``--resume`` writes a new one)."""
    pid, host, identity = manifest.get("pid"), manifest.get("host"), manifest.get("process")
    if (manifest.get("status") != "running" or not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0
            or host != platform.node()):
        return manifest
    if isinstance(identity, str) and process_identity(os.getpid()) is not None:  # /proc tells exactly
        if process_identity(pid) == identity:
            return manifest  # the runner itself, still running
    elif _process_exists(pid):
        return manifest
    why = f"its runner (process {pid}) ended without recording how (killed?)"
    manifest = {**manifest, "status": "interrupted", "note": why,
                "notebooks": {name: ({**nb, "status": "interrupted", "error": why} if nb.get("status") == "running"
                                     else nb) for name, nb in manifest["notebooks"].items()}}
    return manifest


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    """Write the manifest atomically; on a full disk, overwrite the old one in place when the new
    text fits in the space the old file already has, so it never stays at "running"."""
    try:
        write_json(path, manifest)
        return
    except FileSystemError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        failure = exc
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":"), default=str).encode() + b"\n"
    try:
        with open(path, "r+b") as fh:
            room = max(os.fstat(fh.fileno()).st_blocks * 512, os.fstat(fh.fileno()).st_size)
            if len(text) > room:
                raise failure
            fh.write(text)
            fh.truncate(len(text))
            fh.flush()
            os.fsync(fh.fileno())
    except OSError:
        raise failure from None
