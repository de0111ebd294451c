"""Training plumbing: CPU speed settings, numeric precision, devices, confusion matrices.

Lessons 02 and 05 call ``compile``/``fit``/``evaluate`` themselves, and lessons 02, 04 and 05 choose their
``tf.distribute`` strategy in view; this module chooses *how fast* they run (:func:`apply_cpu_environment`,
:func:`choose_precision`), splits the CPU into logical devices where a lesson asks for several without GPUs
(:func:`split_cpu`), says where a model trained (:func:`strategy_facts`) and holds the arithmetic that is not
the lesson (confusion matrix, epochs per curve point); lesson 04 uses :func:`join_histories` (one plot of
its three training stages).
"""
from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

from . import hardware

PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")

CPU_ENVIRONMENT: dict[str, str] = {"TF_ENABLE_ONEDNN_OPTS": "1"}
"""Environment settings the course adopts for training on CPUs, read by TensorFlow when it is imported.

``TF_ENABLE_ONEDNN_OPTS=1``: TensorFlow's oneDNN kernels also on CPUs where TensorFlow leaves them off by
default (AMD, older Intel). Measured on an AVX2 CPU emulated on a Xeon (float32 reference CNN, oneDNN capped
at AVX2): 1.25x the images/s of TensorFlow's own kernels on a quiet machine (37 s against 46 s per lesson-02
epoch) and 1.9x while the two cores were shared with other work (``imgrec bench --levers --emulate-avx2``).
On CPUs where TensorFlow already turns oneDNN on (recent Intel Xeons) it changes nothing. Thread settings,
``steps_per_execution``, a ``tf.data`` pipeline and larger batches gave no consistent gain and are left at
Keras' defaults (README, "Performance")."""


def cpu_environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """The :data:`CPU_ENVIRONMENT` settings not already set in ``env`` (default ``os.environ``):
    a value the user exported, e.g. ``TF_ENABLE_ONEDNN_OPTS=0``, always wins."""
    env = os.environ if env is None else env
    return {k: v for k, v in CPU_ENVIRONMENT.items() if k not in env}


def apply_cpu_environment() -> dict[str, str]:
    """Set :func:`cpu_environment` in ``os.environ`` before TensorFlow is imported; returns what it set.

    For the start of every process that trains (the lessons' setup cell through
    ``quiet.import_tensorflow``, ``imgrec bench``). Does nothing once TensorFlow is imported, since
    TensorFlow reads these settings only at import.
    """
    if "tensorflow" in sys.modules:
        return {}
    chosen = cpu_environment()
    os.environ.update(chosen)
    return chosen


def cpu_settings() -> str:
    """The CPU speed settings in effect, in words, for lesson output and result records (lessons 02, 05):
    e.g. ``"oneDNN on"`` or ``"oneDNN on (max ISA AVX2)"``; ``"TensorFlow default"`` when nothing is set."""
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    words = {"1": "oneDNN on", "0": "oneDNN off"}.get(onednn or "", "TensorFlow default")
    extra = [f"max ISA {os.environ['ONEDNN_MAX_CPU_ISA']}"] if os.environ.get("ONEDNN_MAX_CPU_ISA") else []
    for var, name in (("TF_NUM_INTEROP_THREADS", "inter-op"), ("TF_NUM_INTRAOP_THREADS", "intra-op")):
        if os.environ.get(var):
            extra.append(f"{os.environ[var]} {name} threads")
    return words + (f" ({', '.join(extra)})" if extra else "")


def choose_precision(requested: str = "auto") -> tuple[str, str]:
    """Pick the Keras dtype policy to train with; returns ``(policy, reason in words)``.

    ``auto``: ``$IMGREC_PRECISION`` when it is set (e.g. ``IMGREC_PRECISION=float32 imgrec run``, to
    run the whole course as on a laptop without bfloat16); else ``mixed_float16`` on GPUs with float16
    tensor cores (compute capability 7.0 and up; ``float32`` on older ones);
    ``mixed_bfloat16`` on a CPU with native bfloat16 (AVX512-BF16 or AMX, where it trains lesson 02's
    CNN about 2.6x faster than float32); ``float32`` otherwise. Any other value is used as given.
    Lessons 02 and 05 (``PRECISION`` parameter), ``imgrec bench``.
    """
    from .errors import ImgrecError

    if requested not in PRECISIONS:
        raise ImgrecError(f"unknown precision {requested!r}; use one of: {', '.join(PRECISIONS)}")
    if requested != "auto":
        return requested, f"{requested} (chosen by the PRECISION parameter)"
    from_env = os.environ.get("IMGREC_PRECISION")
    if from_env:
        if from_env not in PRECISIONS[1:]:
            raise ImgrecError(f"IMGREC_PRECISION={from_env!r} is not a precision; use one of: "
                              f"{', '.join(PRECISIONS[1:])}, or unset it")
        return from_env, f"{from_env} (chosen by the IMGREC_PRECISION environment variable)"
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:  # the slowest GPU decides: every replica computes in the same policy
        major, minor = min(tuple(tf.config.experimental.get_device_details(gpu).get("compute_capability") or (0, 0))
                           for gpu in gpus)
        if (major, minor) >= (7, 0):
            return "mixed_float16", (f"mixed_float16: GPU compute capability {major}.{minor} has float16 tensor cores "
                                     "(float16 compute, float32 weights, loss scaling by Keras)")
        return "float32", (f"float32: GPU compute capability {major}.{minor} is below 7.0, without float16 tensor "
                           "cores, where mixed_float16 gains little")
    if hardware.has_native_bfloat16():
        return "mixed_bfloat16", "mixed_bfloat16: this CPU computes bfloat16 natively (AVX512-BF16/AMX)"
    return "float32", "float32: no GPU and no native bfloat16 on this CPU"


def join_histories(*runs: dict[str, list[float]]) -> dict[str, Any]:
    """Concatenate the histories of several training stages (lesson 04: frozen, augmented, fine-tuned).

    The result carries ``_stage_starts`` (epoch index where each stage begins) for
    :func:`imgrec_helpers.plots.learning_curves`.
    """
    joined: dict[str, Any] = {"_stage_starts": []}
    length = 0
    for hist in runs:
        joined["_stage_starts"].append(length)
        n = max((len(v) for k, v in hist.items() if not k.startswith("_")), default=0)
        for key, values in hist.items():
            if key.startswith("_"):
                continue
            joined.setdefault(key, [float("nan")] * length)
            joined[key].extend(values)
        length += n
        for key in joined:
            if not key.startswith("_") and len(joined[key]) < length:
                joined[key].extend([float("nan")] * (length - len(joined[key])))
    return joined


def confusion_matrix(true, pred, num_classes: int) -> np.ndarray:
    """Counts of (true class, predicted class) pairs; rows are the true class (lesson 02)."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(true).reshape(-1), np.asarray(pred).reshape(-1)), 1)
    return matrix


def epochs_for(train_images: int, budget_images: int, min_epochs: int, max_epochs: int) -> int:
    """Epochs so that small training sets get about the same number of gradient steps (lesson 05)."""
    return int(np.clip(round(budget_images / max(train_images, 1)), min_epochs, max_epochs))


def split_cpu(count: int) -> None:
    """Split the CPU into ``count`` logical devices, so that ``MirroredStrategy`` has several to mirror
    over on a machine without GPUs (the ``CPU_DEVICES`` parameter of lessons 02 and 05; ``imgrec bench
    --cpu-devices``; the two-replica test).

    TensorFlow takes this only before it first runs anything: :func:`imgrec_helpers.running.start_lesson`
    calls it right after importing TensorFlow. ``count`` 1 changes nothing.
    """
    from .errors import ImgrecError
    import tensorflow as tf

    if count == 1:
        return
    if tf.config.list_physical_devices("GPU"):
        raise ImgrecError(f"CPU_DEVICES = {count} is for machines without a GPU; this one has "
                          f"{len(tf.config.list_physical_devices('GPU'))} GPU(s), one replica each: set CPU_DEVICES = 1")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError:  # TensorFlow already ran something in this process
        raise ImgrecError(f"CPU_DEVICES = {count} takes effect only in a fresh kernel: restart the kernel and run "
                          "the notebook from the top") from None


def strategy_facts(strategy: Any) -> dict[str, Any]:
    """Where a model trained, for result records and the manifest (lessons 02, 04, 05 via
    :meth:`imgrec_helpers.running.Lesson.record`): ``{"strategy": "MirroredStrategy", "replicas": 2,
    "devices": ["CPU:0", "CPU:1"]}``; the default strategy is named ``"default strategy"``."""
    import tensorflow as tf

    try:
        devices = list(strategy.extended.worker_devices)
    except RuntimeError:  # the default strategy has no device list: it runs where TensorFlow places ops
        devices = [(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU"))[0].name]
    name = type(strategy).__name__
    return {"strategy": "default strategy" if name.startswith("_Default") else name,
            "replicas": int(strategy.num_replicas_in_sync),
            "devices": [d.rsplit("device:", 1)[-1] for d in devices]}


def describe_strategy(facts: dict[str, Any]) -> str:
    """:func:`strategy_facts` in words, as the manifest and the report show it:
    ``"MirroredStrategy, 2 replicas (CPU:0, CPU:1)"``."""
    replicas = facts.get("replicas", 1)
    return (f"{facts.get('strategy', 'default strategy')}, {replicas} replica{'s' if replicas != 1 else ''} "
            f"({', '.join(facts.get('devices') or [])})")
