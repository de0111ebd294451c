"""Training plumbing around lessons 02, 04, 05's ``fit``: CPU speed, precision, ``tf.distribute`` devices, arithmetic.
TensorFlow (10 s to import) is imported only in the functions that need it: ``imgrec`` and :mod:`.quiet` import this."""
from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

from . import hardware
from .errors import ImgrecError

PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")

CPU_ENVIRONMENT: dict[str, str] = {"TF_ENABLE_ONEDNN_OPTS": "1"}
"""Set for training on CPUs, read by TensorFlow at import: oneDNN also where TensorFlow leaves it off (AMD, older
Intel), 1.25x the images/s on an AVX2 CPU, 1.9x on shared cores (``imgrec bench --levers --emulate-avx2``); threads,
``steps_per_execution``, ``tf.data``, larger batches gave no consistent gain (README, "Performance")."""


def cpu_environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """The :data:`CPU_ENVIRONMENT` settings not already in ``env`` (default ``os.environ``; the runner's kernels)."""
    return {k: v for k, v in CPU_ENVIRONMENT.items() if k not in (os.environ if env is None else env)}


def apply_cpu_environment() -> dict[str, str]:
    """:func:`cpu_environment` set in ``os.environ`` unless TensorFlow is imported (setup cells, ``imgrec bench``)."""
    chosen = {} if "tensorflow" in sys.modules else cpu_environment()
    os.environ.update(chosen)
    return chosen


def cpu_settings() -> str:
    """The CPU speed settings in effect in words, e.g. ``"oneDNN on (max ISA AVX2)"`` (lessons 02, 05, records)."""
    env = os.environ
    words = {"1": "oneDNN on", "0": "oneDNN off"}.get(env.get("TF_ENABLE_ONEDNN_OPTS") or "", "TensorFlow default")
    extra = [text.format(env[var]) for var, text in (("ONEDNN_MAX_CPU_ISA", "max ISA {}"),
             ("TF_NUM_INTEROP_THREADS", "{} inter-op threads"), ("TF_NUM_INTRAOP_THREADS", "{} intra-op threads"))
             if env.get(var)]
    return words + (f" ({', '.join(extra)})" if extra else "")


def choose_precision(requested: str = "auto") -> tuple[str, str]:
    """The Keras dtype policy to train with and why (lessons 02, 05 ``PRECISION``, ``imgrec bench``); ``auto``: see
    README, "Training precision" (``mixed_bfloat16`` is 2.6x faster on lesson 02's CNN on CPUs with AVX512-BF16/AMX)."""
    if requested not in PRECISIONS:
        raise ImgrecError(f"unknown precision {requested!r}; use one of: {', '.join(PRECISIONS)}")
    if requested != "auto":
        return requested, f"{requested} (chosen by the PRECISION parameter)"
    if from_env := os.environ.get("IMGREC_PRECISION"):
        if from_env not in PRECISIONS[1:]:
            raise ImgrecError(f"IMGREC_PRECISION={from_env!r} is not a precision; use one of: "
                              f"{', '.join(PRECISIONS[1:])}, or unset it")
        return from_env, f"{from_env} (chosen by the IMGREC_PRECISION environment variable)"
    import tensorflow as tf  # 10 s to import: only where needed (module docstring)
    if gpus := tf.config.list_physical_devices("GPU"):  # the slowest GPU decides: every replica uses one policy
        major, minor = min(tuple(tf.config.experimental.get_device_details(gpu).get("compute_capability") or (0, 0))
                           for gpu in gpus)
        if (major, minor) >= (7, 0):
            return "mixed_float16", (f"mixed_float16: GPU compute capability {major}.{minor} has float16 tensor cores "
                                     "(float16 compute, float32 weights, loss scaling by Keras)")
        return "float32", (f"float32: GPU compute capability {major}.{minor} is below 7.0, without float16 tensor "
                           "cores, where mixed_float16 gains little")
    if {"avx512_bf16", "amx_bf16"} & hardware.cpu_flags():  # native bfloat16: AVX512-BF16 or AMX
        return "mixed_bfloat16", "mixed_bfloat16: this CPU computes bfloat16 natively (AVX512-BF16/AMX)"
    return "float32", "float32: no GPU and no native bfloat16 on this CPU"


def join_histories(*runs: dict[str, list[float]]) -> dict[str, Any]:
    """Training stages' histories end to end, NaN-padded, with each ``_stage_starts`` (lesson 04's learning curves)."""
    keys = list(dict.fromkeys(k for hist in runs for k in hist if not k.startswith("_")))
    lengths = [max((len(v) for k, v in hist.items() if not k.startswith("_")), default=0) for hist in runs]
    joined: dict[str, Any] = {"_stage_starts": [sum(lengths[:i]) for i in range(len(runs))]}
    for key in keys:  # each stage's values padded to its length with NaN
        joined[key] = [x for hist, n in zip(runs, lengths) for x in (list(hist.get(key, [])) + [float("nan")] * n)[:n]]
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
    """The CPU split in ``count`` devices for ``MirroredStrategy`` (lessons 02, 05, ``imgrec bench --cpu-devices``)."""
    if count == 1:
        return
    import tensorflow as tf  # 10 s to import: only where needed (module docstring)
    if gpus := tf.config.list_physical_devices("GPU"):
        raise ImgrecError(f"CPU_DEVICES = {count} is for machines without a GPU; this one has {len(gpus)} GPU(s), "
                          "one replica each: set CPU_DEVICES = 1")
    try:
        tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                                   [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError:  # TensorFlow already ran something in this process
        raise ImgrecError(f"CPU_DEVICES = {count} takes effect only in a fresh kernel: restart the kernel and run "
                          "the notebook from the top") from None


def strategy_facts(strategy: Any) -> dict[str, Any]:
    """Where a model trained (``Lesson.record``, manifest): ``{"strategy": ..., "replicas": 2, "devices": [...]}``."""
    import tensorflow as tf  # 10 s to import: only where needed (module docstring)
    try:
        devices = list(strategy.extended.worker_devices)
    except RuntimeError:  # the default strategy has no device list: it runs where TensorFlow places ops
        devices = [(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU"))[0].name]
    name = type(strategy).__name__
    return {"strategy": "default strategy" if name.startswith("_Default") else name,
            "replicas": int(strategy.num_replicas_in_sync), "devices": [d.rsplit("device:", 1)[-1] for d in devices]}


def describe_strategy(facts: dict[str, Any]) -> str:
    """:func:`strategy_facts` in words (manifest, report): ``"MirroredStrategy, 2 replicas (CPU:0, CPU:1)"``."""
    replicas = facts.get("replicas", 1)
    return (f"{facts.get('strategy', 'default strategy')}, {replicas} replica{'s' if replicas != 1 else ''} "
            f"({', '.join(facts.get('devices') or [])})")
