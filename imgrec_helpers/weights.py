"""ImageNet weights on this machine: the Keras cache, the data home's copies, and what can be had offline.

Keras ships the architectures of its applications; their trained weights are separate files that
``keras.applications.VGG16(weights="imagenet")`` downloads on first use into the Keras cache,
``$KERAS_HOME/models/`` (``~/.keras/models/``, or ``/tmp/.keras/models/`` when the home folder is
not writable), and reads from there ever after. This module is the plumbing around that cache:

- :func:`prepare_keras_cache` links the files already in the data home's ``keras/models/`` folder into
  the cache, so classroom machines without internet take the very same Keras code path (lessons 03, 04,
  ``imgrec predict``, ``imgrec bench``). The data home is only read.
- :func:`cached_weights`, :func:`weights_available` and :func:`weights_status` say whether a model's
  weights are there (lesson 03's tour, ``imgrec predict --list``).
- :func:`can_reach` and :func:`missing_weights_error` turn "no weights and no internet" into a one-line
  error in seconds instead of a download that times out after minutes
  (:func:`imgrec_helpers.applications.choose`, :func:`imgrec_helpers.applications.load_application`).

Which model a lesson uses when weights are missing is decided in :mod:`imgrec_helpers.applications`.
"""
from __future__ import annotations

import os
import shutil
import socket
import urllib.parse
from pathlib import Path

from . import sources
from .errors import DataError, WeightsError

KERAS_WEIGHTS_HOST = "https://storage.googleapis.com/tensorflow/keras-applications/"
"""Where Keras downloads the applications' weight files from."""

CLASS_INDEX_HOST = "https://storage.googleapis.com/download.tensorflow.org/"
"""Where Keras downloads ``imagenet_class_index.json`` from (``decode_predictions``)."""

CLASS_INDEX_FILE = "imagenet_class_index.json"
"""The file ``decode_predictions`` reads the 1,000 ImageNet labels from (in the Keras cache)."""


def keras_cache_dir() -> Path:
    """The folder Keras keeps downloaded weights in, exactly as ``keras.utils.get_file`` chooses it.

    ``$KERAS_HOME/models`` (default ``~/.keras/models``); when that base folder is not writable,
    Keras uses ``/tmp/.keras/models`` instead, and so does this function (lessons 03, 04).
    """
    import tempfile

    from keras.src.backend import config

    base = os.path.expanduser(config.keras_home())
    if not os.access(base, os.W_OK):
        base = os.path.join("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir(), ".keras")
    return Path(base) / "models"


def prepare_keras_cache(data_home: str | os.PathLike | None = None) -> list[Path]:
    """Make Keras find the weight files already in ``<data home>/keras/models/`` (lessons 03, 04).

    Each file there is linked (symbolic link, or copied atomically if links are not possible) into
    :func:`keras_cache_dir` unless a file of that name is already in the cache. Returns the cache
    paths that now point at the data home's files (new or already linked). The data home is only
    read. Files that are in neither place are downloaded by Keras as usual on first use.
    """
    source = sources.data_home(data_home) / "keras" / "models"
    if not source.is_dir():
        return []
    cache = keras_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    linked = []
    for src in sorted(p for p in source.iterdir() if p.is_file()):
        target = cache / src.name
        if target.is_symlink() and not target.exists():  # a dangling link from an old data home
            target.unlink()
        if target.exists():
            if target.is_symlink() and target.resolve() == src.resolve():
                linked.append(target)
            continue
        try:
            target.symlink_to(src.resolve())
        except OSError:
            tmp = target.with_name(f".{target.name}.partial")
            shutil.copyfile(src, tmp)
            os.replace(tmp, target)
        linked.append(target)
    return linked


def fetch_weights(file_name: str, data_home: str | os.PathLike | None = None) -> Path | None:
    """Fetch a registered weights file (or ``imagenet_class_index.json``) into the data home's ``keras/models/``
    and link it into the Keras cache (:func:`prepare_keras_cache`); returns its cache path, or None when it is
    not registered or cannot be had from the mirror or its public address (lessons 03, 04, 06 via
    :func:`imgrec_helpers.applications.choose`). The file is checked against Keras' own hash where Keras
    has one, so it is the file Keras would have downloaded."""
    path = f"keras/models/{file_name}"
    if path not in sources.registry():
        return None
    try:
        sources.fetch(path, data_home)
    except DataError:
        return None
    prepare_keras_cache(data_home)
    cached = keras_cache_dir() / file_name
    return cached if cached.is_file() else None


def class_index_available() -> bool:
    """True when ``imagenet_class_index.json`` (the labels of ``decode_predictions``) is in the Keras cache."""
    return (keras_cache_dir() / CLASS_INDEX_FILE).is_file()


def can_reach(url: str, timeout: float = 3.0) -> bool:
    """A quick check that a download host answers (through the proxy, if one is set), so an offline
    machine is recognised in seconds, not after a download times out (lessons 03, 04)."""
    from urllib.request import getproxies

    parts = urllib.parse.urlsplit(url)
    proxy = getproxies().get(parts.scheme)
    target = urllib.parse.urlsplit(proxy) if proxy else parts
    host, port = target.hostname, target.port or (443 if target.scheme == "https" else 80)
    if not host:
        return False
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def missing_weights_error(file_name: str, reason: str) -> WeightsError:
    """The one-line error for a weights (or class index) file that is neither cached nor downloadable."""
    path = f"keras/models/{file_name}"
    size = (f" ({sources.megabytes(*sources.size_of(path))})" if path in sources.registry() else "")
    return WeightsError(
        f"ImageNet weights file {file_name}{size} is not in the Keras cache {keras_cache_dir()} and {reason}; run "
        f"`{sources.FETCH_COMMAND}` where the internet (or a data mirror, {sources.MIRROR_ENV}) can be reached")


__all__ = [
    "KERAS_WEIGHTS_HOST", "CLASS_INDEX_HOST", "CLASS_INDEX_FILE", "keras_cache_dir", "prepare_keras_cache", "fetch_weights",
    "class_index_available", "can_reach",
    "missing_weights_error",
]
