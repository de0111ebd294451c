"""One-line errors: what went wrong, which file, what to do. ``imgrec`` and notebooks (``%tb`` still shows the frames)
print an :class:`ImgrecError` without traceback; :func:`describe_os_error` explains an OSError (full disk, ...)."""
from __future__ import annotations

import errno
import os
import re
from pathlib import Path


class ImgrecError(Exception):
    """A problem with the user's input or environment, in one line (line breaks are folded into spaces)."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))

    def _render_traceback_(self) -> list[str]:  # what IPython shows for this exception instead of a traceback
        return [f"{type(self).__name__}: {self}"]


class DataError(ImgrecError):
    """A dataset is missing, truncated, corrupt or of the wrong shape (lessons 01, 02, 04)."""


class ImageError(ImgrecError):
    """An image file cannot be read as an image (lessons 02-04, ``imgrec predict``)."""


class WeightsError(ImgrecError):
    """Pretrained weights are not cached and cannot be downloaded, or do not fit (lessons 03, 04)."""


class ModelError(ImgrecError):
    """A name or file does not describe a model this course can use (``imgrec predict``)."""


class FileSystemError(ImgrecError):
    """The OS refused to read or write a file (:mod:`.persistence`, runner, ``imgrec``); ``errno``: its number/None."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


_OS_ERRORS: dict[int, tuple[str, str]] = {  # errno: (what it means, what to do)
    errno.ENOSPC: ("no space left on device: the disk is full",
                   "free some space on that disk, or choose a folder on another disk"),
    errno.EDQUOT: ("disk quota exceeded", "free some of your space there, or choose a folder on another disk"),
    errno.EFBIG: ("file too large for this file system", "choose a folder on another disk"),
    errno.EROFS: ("read-only file system", "choose a folder on a writable disk"),
    errno.EACCES: ("permission denied", "check the permissions of the file and of every folder above it "
                   "(ls -ld), or use a path you may use"),
    errno.EPERM: ("operation not permitted", "check the permissions and owner (ls -ld), or use another path"),
    errno.ENAMETOOLONG: ("file name too long for the file system", "use a shorter path or file name"),
    errno.ENOTDIR: ("a part of the path is a file, not a folder", "check the path"),
    errno.EISDIR: ("is a folder, not a file", "pass a file"),
    errno.ENOENT: ("no such file or folder", "check the path"),
    errno.EEXIST: ("already exists and is not a folder", "remove or rename it, or choose another path"),
    errno.ELOOP: ("too many levels of symbolic links (a link loop)", "fix or remove the symbolic link"),
    errno.EIO: ("input/output error", "the disk or network drive may be failing; copy the file elsewhere and retry"),
    errno.EMFILE: ("too many open files", "close other programs or raise the limit (ulimit -n)"),
    errno.ENXIO: ("no such device (a socket or a FIFO without a writer?)", "pass a regular file"),
    errno.ETXTBSY: ("file is busy", "close the program using it and retry"),
}


def _errno_of(exc: OSError) -> int | None:  # also from libraries that only put it in the text (h5py: ``errno = 28``)
    match = re.search(r"errno\s*=\s*(\d+)", str(exc)) if exc.errno is None else None
    return int(match.group(1)) if match else exc.errno


def mount_point(path: Path) -> Path:
    """The mount point of the file system that holds ``path`` (or its nearest existing parent; also the runner's)."""
    p = Path(os.path.abspath(path))
    while not os.path.ismount(p) and p != p.parent:  # ismount: False, never an error, for a missing or unreadable path
        p = p.parent
    return p


def describe_os_error(exc: OSError, path: str | os.PathLike | None = None, action: str | None = None) -> str:
    """One line (every writer, ``imgrec``): ``"cannot write /mnt/usb/run/manifest.json: no space left on device: the
    disk is full (ENOSPC, disk mounted at /mnt/usb); free some space ..."``; ``path`` defaults to the error's file."""
    where = path if path is not None else exc.filename
    number = _errno_of(exc)
    meaning, advice = _OS_ERRORS.get(number, (exc.strerror or str(exc) or type(exc).__name__,
                                              "check the path and try again"))
    name = errno.errorcode.get(number, f"errno {number}") if number is not None else "OSError"
    if number in (errno.ENOSPC, errno.EDQUOT, errno.EROFS) and where is not None:
        name += f", disk mounted at {mount_point(Path(where))}"
    head = f"cannot {action or 'continue'}" if where is None else f"cannot {action} {where}" if action else str(where)
    if exc.filename2 is not None and path is None:
        head += f" -> {exc.filename2}"
    return f"{head}: {meaning} ({name}); {advice}"


def os_error(exc: OSError, path: str | os.PathLike | None = None, action: str | None = None) -> FileSystemError:
    """:class:`FileSystemError` with :func:`describe_os_error`'s line: ``raise os_error(exc, p, "write") from None``."""
    return FileSystemError(describe_os_error(exc, path, action), _errno_of(exc))
