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
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
import warnings

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
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as log:
        os.dup2(log.fileno(), 2)
        try:
            import tensorflow as tf
            import keras  # noqa: F401  (Keras' own start-up, same stream)

            tf.config.list_physical_devices()  # the GPU probe, where cuInit complains
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            log.seek(0)
            kept = [line for line in log.read().decode("utf-8", "replace").splitlines()
                    if line.strip() and not _NOISE.match(line)]
    if kept:
        print("\n".join(kept), file=sys.stderr)
    warnings.filterwarnings("ignore", message=r"`shuffle=True` was passed", category=UserWarning)
    tf.get_logger().setLevel("ERROR")
