"""Starting TensorFlow without its C++ start-up log (every lesson's setup cell, the ``imgrec`` command).

TensorFlow writes several lines to the process's standard error while it loads and looks for GPUs
(oneDNN notices, "Could not find cuda drivers", ``E0000 ... failed call to cuInit``) before any
Python setting can reach its logger: ``TF_CPP_MIN_LOG_LEVEL`` does not silence them all. In
JupyterLab they appear as a red block under the first cell. :func:`import_tensorflow` imports
TensorFlow and Keras once with file descriptor 2 pointed at a temporary file, then restores it and
passes on every line that is not one of those known start-up notices, so real errors still show.

Two Python-level notices that say nothing to a student are silenced at the same time, and only
these: Keras 3.15's "`shuffle=True` was passed, but will be ignored" warning at every ``fit`` on a
``tf.data.Dataset`` (lesson 04), and TensorFlow's "retracing" notices when a lesson predicts with
several models (the ``tensorflow`` logger is set to ERROR).

:func:`library_output` holds back the same kind of C++ log around the LiteRT converter and interpreter
(lesson 07), which print to the process's file descriptors long after start-up.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import warnings
from typing import Iterator

_NOISE = re.compile(
    r"^(?:[IWE]\d{4} [\d:. ]+\d+ \S+:\d+\]"          # absl/TF C++ log lines: I0000 00:00:... file.cc:12]
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|To enable the following instructions:"
    r"|.*rebuild TensorFlow with the appropriate compiler flags)")


def import_tensorflow() -> None:
    """Import TensorFlow and Keras (and let TensorFlow look for GPUs) with the start-up log filtered.

    Does nothing when TensorFlow is already imported. First applies the course's CPU speed settings
    (:func:`imgrec_helpers.training.apply_cpu_environment`: oneDNN on, unless you set it). Sets ``TF_CPP_MIN_LOG_LEVEL=3`` (unless set)
    so the C++ lines TensorFlow logs later stay quiet too: in TensorFlow 2.21 even level-E lines are
    notices (``NodeDef mentions attribute use_unbounded_threadpool ...`` at every ``fit``), while
    real failures still arrive as Python exceptions.
    """
    if "tensorflow" in sys.modules:
        return
    from .training import apply_cpu_environment

    apply_cpu_environment()  # the course's CPU speed settings (oneDNN on), read by TensorFlow at import
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _held_back((2,), _NOISE):
        import tensorflow as tf
        import keras  # noqa: F401  (Keras' own start-up, same stream)

        tf.config.list_physical_devices()  # the GPU probe, where cuInit complains
    warnings.filterwarnings("ignore", message=r"`shuffle=True` was passed", category=UserWarning)
    tf.get_logger().setLevel("ERROR")


_CONVERTER_NOISE = re.compile(
    r"^(?:fully_quantize: \d+, inference_type: \d+, input_inference_type: \w+, output_inference_type: \w+"
    r"|INFO: Created TensorFlow Lite XNNPACK delegate for CPU\."
    r"|INFO: Initialized TensorFlow Lite runtime\."
    r"|Estimated count of arithmetic ops: .*"
    r"|Saved artifact at '.*'\.?)$")
"""What the LiteRT converter and runtime print on every conversion and first run, and say nothing to a student."""


@contextlib.contextmanager
def library_output() -> Iterator[None]:
    """A block whose C++ log lines (file descriptors 1 and 2) and known notices are held back (lesson 07).

    TensorFlow's LiteRT converter (``model.export(..., format="litert")``, ``tf.lite.TFLiteConverter``)
    and the LiteRT interpreter print from C++ straight to the process's file descriptors, where no
    Python setting reaches them: MLIR/absl log lines, ``fully_quantize: 0, inference_type: 6, ...`` at an
    int8 conversion, ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.`` at ``allocate_tensors``.
    In JupyterLab (and ``imgrec run``, whose kernels capture file-descriptor output the same way) they would
    be a red block under the cell. Inside this block both descriptors point at a temporary file; at the
    end they are restored and every line that is not one of those known notices (:data:`_NOISE`,
    :data:`_CONVERTER_NOISE`) is passed on to standard error, so a real error message still shows. The
    converter's Python ``UserWarning`` about missing statistics for float inputs (they stay float32 by
    design) is silenced inside the block only. Exceptions pass through unchanged.
    """
    with _held_back((1, 2), _NOISE, _CONVERTER_NOISE), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Statistics for quantized inputs were expected",
                                category=UserWarning)
        yield


@contextlib.contextmanager
def _held_back(fds: tuple[int, ...], *noise: re.Pattern) -> Iterator[None]:
    """Point the file descriptors ``fds`` at a temporary file for the block; afterwards restore them and pass
    every line that matches none of the ``noise`` patterns on to standard error (:func:`import_tensorflow`,
    :func:`library_output`). What C code buffered is flushed into the file first. Exceptions pass through."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = {fd: os.dup(fd) for fd in fds}
    with tempfile.TemporaryFile(mode="w+b") as log:
        for fd in saved:
            os.dup2(log.fileno(), fd)
        try:
            yield
        finally:
            _flush_c_streams()  # what C code buffered goes to the file, not to the restored descriptors
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            log.seek(0)
            kept = [line for line in log.read().decode("utf-8", "replace").splitlines()
                    if line.strip() and not any(pattern.match(line) for pattern in noise)]
            if kept:
                print("\n".join(kept), file=sys.stderr)


def _flush_c_streams() -> None:
    """``fflush(NULL)``: C's stdio buffers (a ``printf`` to a file is block-buffered) written out now."""
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass
