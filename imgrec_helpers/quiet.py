"""TensorFlow started without its C++ start-up log (every lesson's setup cell, ``imgrec``), LiteRT quietened.

TensorFlow writes oneDNN notices, "Could not find cuda drivers", ``E0000 ... cuInit`` lines to file descriptor 2
before any Python setting reaches it (a red block under a notebook's first cell). These helpers point the descriptors
at a temporary file and afterwards pass on every line that is not a known notice, so real errors still show.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import re
import sys
import tempfile
import warnings
from typing import Iterator

from .training import apply_cpu_environment

_NOISE = re.compile(
    r"^(?:[IWE]\d{4} [\d:. ]+\d+ \S+:\d+\]"          # absl/TF C++ log lines: I0000 00:00:... file.cc:12]
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|To enable the following instructions:"
    r"|.*rebuild TensorFlow with the appropriate compiler flags)")
_CONVERTER_NOISE = re.compile(  # what the LiteRT converter and runtime print on every conversion and first run
    r"^(?:fully_quantize: \d+, inference_type: \d+, input_inference_type: \w+, output_inference_type: \w+"
    r"|INFO: Created TensorFlow Lite XNNPACK delegate for CPU\."
    r"|INFO: Initialized TensorFlow Lite runtime\."
    r"|Estimated count of arithmetic ops: .*"
    r"|Saved artifact at '.*'\.?)$")


def import_tensorflow() -> None:
    """Import TensorFlow and Keras and let TensorFlow look for GPUs, with the start-up log filtered (once).

    First applies :func:`imgrec_helpers.training.apply_cpu_environment` (oneDNN on, unless you set it) and
    ``TF_CPP_MIN_LOG_LEVEL=3`` (unless set): in TensorFlow 2.21 even level-E lines are notices. Also silences Keras'
    "`shuffle=True` was passed" warning at ``fit`` on a ``tf.data.Dataset`` and TensorFlow's retracing notices.
    """
    if "tensorflow" in sys.modules:
        return
    apply_cpu_environment()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _held_back((2,), _NOISE):
        import tensorflow as tf
        import keras  # noqa: F401  (Keras' own start-up, same stream)

        tf.config.list_physical_devices()  # the GPU probe, where cuInit complains
    warnings.filterwarnings("ignore", message=r"`shuffle=True` was passed", category=UserWarning)
    tf.get_logger().setLevel("ERROR")


@contextlib.contextmanager
def library_output() -> Iterator[None]:
    """A block whose C++ log lines on descriptors 1 and 2 and known notices are held back (lesson 07's LiteRT
    converter and interpreter); the converter's warning about float inputs without statistics is silenced too."""
    with _held_back((1, 2), _NOISE, _CONVERTER_NOISE), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Statistics for quantized inputs were expected",
                                category=UserWarning)
        yield


@contextlib.contextmanager
def _held_back(fds: tuple[int, ...], *noise: re.Pattern) -> Iterator[None]:
    """Point ``fds`` at a temporary file for the block; then restore them and print to standard error every line
    that matches none of the ``noise`` patterns. Exceptions pass through."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = {fd: os.dup(fd) for fd in fds}
    with tempfile.TemporaryFile(mode="w+b") as log:
        for fd in saved:
            os.dup2(log.fileno(), fd)
        try:
            yield
        finally:
            try:  # fflush(NULL): what C's stdio buffered goes to the file, not to the restored descriptors
                ctypes.CDLL(None).fflush(None)
            except (OSError, AttributeError):
                pass
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            log.seek(0)
            kept = [line for line in log.read().decode("utf-8", "replace").splitlines()
                    if line.strip() and not any(pattern.match(line) for pattern in noise)]
            if kept:
                print("\n".join(kept), file=sys.stderr)
