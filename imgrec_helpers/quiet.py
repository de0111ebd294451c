"""TensorFlow started without the C++ start-up log (oneDNN, "Could not find cuda drivers", cuInit) it writes to
descriptor 2 before any Python setting reaches it (every setup cell, ``imgrec``); LiteRT quietened. Real errors show."""
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
    r"|To enable the following instructions:|.*rebuild TensorFlow with the appropriate compiler flags)")
_CONVERTER_NOISE = re.compile(  # what the LiteRT converter and runtime print on every conversion and first run
    r"^(?:fully_quantize: \d+, inference_type: \d+, input_inference_type: \w+, output_inference_type: \w+"
    r"|INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.|INFO: Initialized TensorFlow Lite runtime\."
    r"|Estimated count of arithmetic ops: .*|Saved artifact at '.*'\.?)$")


def import_tensorflow() -> None:
    """Import TensorFlow and Keras and probe the GPUs with the start-up log filtered, once (setup cells, ``imgrec``)."""
    if "tensorflow" in sys.modules:
        return
    apply_cpu_environment()  # oneDNN on, unless you set it
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # unless set: in TensorFlow 2.21 even level-E lines are notices
    with _held_back((2,), _NOISE):
        import tensorflow as tf
        import keras  # noqa: F401  (Keras' own start-up, same stream)
        tf.config.list_physical_devices()  # the GPU probe, where cuInit complains
    warnings.filterwarnings("ignore", message=r"`shuffle=True` was passed", category=UserWarning)  # fit on a Dataset
    tf.get_logger().setLevel("ERROR")  # TensorFlow's retracing notices


@contextlib.contextmanager
def library_output() -> Iterator[None]:
    """C++ log lines and known notices on descriptors 1 and 2 held back (LiteRT: lesson 07, ``imgrec predict``)."""
    with _held_back((1, 2), _NOISE, _CONVERTER_NOISE), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Statistics for quantized inputs were expected",
                                category=UserWarning)
        yield


@contextlib.contextmanager
def _held_back(fds: tuple[int, ...], *noise: re.Pattern) -> Iterator[None]:
    """``fds`` point at a temporary file for the block; then every line matching no ``noise`` goes to stderr."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in fds}
    with tempfile.TemporaryFile(mode="w+b") as log:
        for fd in saved:
            os.dup2(log.fileno(), fd)
        try:
            yield
        finally:
            with contextlib.suppress(OSError, AttributeError):  # fflush(NULL): C's stdio buffers go to the file
                ctypes.CDLL(None).fflush(None)
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            log.seek(0)
            kept = [line for line in log.read().decode("utf-8", "replace").splitlines()
                    if line.strip() and not any(pattern.match(line) for pattern in noise)]
            if kept:
                print("\n".join(kept), file=sys.stderr)
