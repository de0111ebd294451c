"""A run folder's ``manifest.json``: written by :mod:`.runner` as each notebook runs, read back by
``imgrec run --resume`` and :mod:`.report`."""
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
_KEYS = {"profile": str, "seed": int, "notebooks": dict, "status": str}


def read_manifest(run_dir: str | os.PathLike, fix: str = "run into a new folder") -> dict[str, Any] | None:
    """``RUN_DIR/manifest.json`` as ``imgrec run`` wrote it (read by ``--resume`` and ``imgrec report``), None when
    there is none; one :class:`ImgrecError` line ending in ``fix`` for one that is unreadable, empty, truncated or
    another program's (no profile, seed, notebooks and status). A run whose runner is gone reads as interrupted."""
    path = Path(run_dir) / MANIFEST
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise os_error(exc, path, "read") from None
    except UnicodeDecodeError:
        raise ImgrecError(f"{path}: not a text file, so not an imgrec run manifest; {fix}") from None
    try:
        manifest = json.loads(text)
    except ValueError:
        state = "empty" if not text.strip() else "truncated or not JSON"
        raise ImgrecError(f"{path}: {state}, so not a valid imgrec run manifest; {fix}") from None
    if not isinstance(manifest, dict):
        raise ImgrecError(f"{path}: not an imgrec run manifest (it is a JSON {type(manifest).__name__}); {fix}")
    wrong = [k for k, kind in _KEYS.items() if not isinstance(manifest.get(k), kind) or type(manifest[k]) is bool]
    if not wrong and not all(isinstance(nb, dict) for nb in manifest["notebooks"].values()):
        wrong = ["notebooks"]
    if wrong:
        raise ImgrecError(f"{path}: not an imgrec run manifest (bad or missing {', '.join(wrong)}); {fix}")
    return _settle_if_gone(manifest)


def process_identity(pid: int) -> str | None:
    """``"<boot id>:<start time>"`` of process ``pid`` from Linux's ``/proc``, None where it cannot be read. Recorded
    beside the runner's id, it tells the runner from a later process given the same id (after a reboot...)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
        return f"{boot}:{stat[stat.rindex(')') + 2:].split()[19]}"  # field 22, after a "(name)" that may hold spaces
    except (OSError, ValueError, IndexError):
        return None


def _process_exists(pid: int) -> bool:
    """Whether process ``pid`` exists here (signal 0 only checks); True on Windows, where os.kill would end it."""
    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError, ValueError):
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def _settle_if_gone(manifest: dict[str, Any]) -> dict[str, Any]:
    """A manifest at "running" whose runner (``pid`` on this ``host``) is gone was stopped without a chance to record
    it (SIGKILL, power loss): read as "interrupted", saying so; the file stays (``--resume`` writes a new one)."""
    pid, identity = manifest.get("pid"), manifest.get("process")
    if manifest["status"] != "running" or type(pid) is not int or pid <= 0 or manifest.get("host") != platform.node():
        return manifest
    if isinstance(identity, str) and process_identity(os.getpid()) is not None:  # /proc tells exactly
        if process_identity(pid) == identity:
            return manifest  # the runner itself, still running
    elif _process_exists(pid):
        return manifest
    why = f"its runner (process {pid}) ended without recording how (killed?)"
    notebooks = {name: {**nb, "status": "interrupted", "error": why} if nb.get("status") == "running" else nb
                 for name, nb in manifest["notebooks"].items()}
    return {**manifest, "status": "interrupted", "note": why, "notebooks": notebooks}


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    """Write the manifest atomically; on a full disk, overwrite the old one in place when the new text fits in the
    space the old file already has, so it never stays at "running"."""
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
            if len(text) > max(os.fstat(fh.fileno()).st_blocks * 512, os.fstat(fh.fileno()).st_size):
                raise failure
            fh.write(text)
            fh.truncate(len(text))
            fh.flush()
            os.fsync(fh.fileno())
    except OSError:
        raise failure from None
