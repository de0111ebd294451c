"""Errors the course reports to people, each as one readable line.

Every helper raises :class:`ImgrecError` (or a subclass) for problems a student can fix
themselves: missing or corrupt data, unreadable images, unknown names, missing weights, a disk
that is full or read-only. The message says what went wrong, which file, and what to do.
``imgrec`` prints it without a traceback; in a notebook (IPython) the cell's error is that one line
too, ``DataError: ... what to do``, without the frames of the helper code that raised it (``%tb``
still prints them); any other exception keeps its whole traceback.

Errors the operating system raises (:class:`OSError`) are explained by :func:`describe_os_error`:
the path, what the error number means, and what to do about it. ``imgrec`` uses it for any
``OSError`` that reaches it, so a full disk or a folder without permission is one line too.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path


class ImgrecError(Exception):
    """A problem with the user's input or environment, explained in one line.

    Line breaks inside the message (e.g. from a library's own error text) are folded into spaces.
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))

    def _render_traceback_(self) -> list[str]:
        """What IPython shows for this exception instead of a traceback: its one line."""
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
    """The operating system refused to read or write a file: disk full, read-only, no permission,
    path too long... (every writer through :mod:`imgrec_helpers.persistence`, the runner, ``imgrec``).

    ``errno`` keeps the operating system's error number (e.g. ``errno.ENOSPC``), or None.
    """

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


# errno -> (what it means, what to do); the meaning is worded for people, the advice is an action.
_OS_ERRORS: dict[int, tuple[str, str]] = {
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
    errno.EEXIST: ("already exists and is not a folder", "remove or rename it, or choose another path"),
    errno.ENOENT: ("no such file or folder", "check the path"),
    errno.ELOOP: ("too many levels of symbolic links (a link loop)", "fix or remove the symbolic link"),
    errno.EIO: ("input/output error", "the disk or network drive may be failing; copy the file elsewhere and retry"),
    errno.EMFILE: ("too many open files", "close other programs or raise the limit (ulimit -n)"),
    errno.ENXIO: ("no such device (a socket or a FIFO without a writer?)", "pass a regular file"),
    errno.ETXTBSY: ("file is busy", "close the program using it and retry"),
}


def _errno_of(exc: OSError) -> int | None:
    """The error number, also from libraries that only put it in the text (h5py: ``errno = 28``)."""
    if exc.errno is not None:
        return exc.errno
    import re

    match = re.search(r"errno\s*=\s*(\d+)", str(exc))
    return int(match.group(1)) if match else None


def errno_name(number: int | None) -> str:
    """``ENOSPC`` for 28, ``"OSError"`` when there is no number."""
    return errno.errorcode.get(number, f"errno {number}") if number is not None else "OSError"


def _mount_point(path: Path) -> Path | None:
    """The mount point of the file system that holds ``path`` (or the nearest existing parent)."""
    p = Path(os.path.abspath(path))
    try:
        while not p.exists() and p != p.parent:
            p = p.parent
        while not os.path.ismount(p) and p != p.parent:
            p = p.parent
    except OSError:
        return None
    return p


def describe_os_error(exc: OSError, path: str | os.PathLike | None = None, action: str | None = None) -> str:
    """One line for an :class:`OSError`: the path, the action, what the error means, what to do.

    ``"cannot write /mnt/usb/run/manifest.json: no space left on device: the disk is full (ENOSPC,
    disk mounted at /mnt/usb); free some space on that disk, or choose a folder on another disk"``.
    ``path`` defaults to the error's own file name; ``action`` is e.g. ``"write"`` or ``"read"``.
    """
    where = path if path is not None else (exc.filename if exc.filename is not None else None)
    number = _errno_of(exc)
    meaning, advice = _OS_ERRORS.get(number, (exc.strerror or str(exc) or type(exc).__name__,
                                              "check the path and try again"))
    name = errno_name(number)
    if number in (errno.ENOSPC, errno.EDQUOT, errno.EROFS) and where is not None:
        mount = _mount_point(Path(where))
        if mount is not None:
            name += f", disk mounted at {mount}"
    head = f"cannot {action} {where}" if action and where is not None else (str(where) if where is not None else
                                                                          f"cannot {action or 'continue'}")
    if exc.filename2 is not None and path is None:
        head += f" -> {exc.filename2}"
    return f"{head}: {meaning} ({name}); {advice}"


def os_error(exc: OSError, path: str | os.PathLike | None = None, action: str | None = None) -> FileSystemError:
    """:class:`FileSystemError` with :func:`describe_os_error`'s line (``raise os_error(exc, p, "write") from None``)."""
    return FileSystemError(describe_os_error(exc, path, action), _errno_of(exc))
