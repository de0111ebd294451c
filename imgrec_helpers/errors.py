"""Errors the course reports to people, each as one readable line.

Every helper raises :class:`ImgrecError` (or a subclass) for problems a student can fix
themselves: missing or corrupt data, unreadable images, unknown names, missing weights.
The message says what went wrong, which file, and what to do. ``imgrec`` prints it without
a traceback; notebooks show it as the cell's error.
"""
from __future__ import annotations


class ImgrecError(Exception):
    """A problem with the user's input or environment, explained in one line.

    Line breaks inside the message (e.g. from a library's own error text) are folded into spaces.
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class DataError(ImgrecError):
    """A dataset is missing, truncated, corrupt or of the wrong shape (lessons 01, 02, 04)."""


class ImageError(ImgrecError):
    """An image file cannot be read as an image (lessons 02-04, ``imgrec predict``)."""


class WeightsError(ImgrecError):
    """Pretrained weights are not cached and cannot be downloaded, or do not fit (lessons 03, 04)."""


class ModelError(ImgrecError):
    """A name or file does not describe a model this course can use (``imgrec predict``)."""
