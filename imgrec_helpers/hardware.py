"""What the course runs on: CPU model and flags (``/proc/cpuinfo`` where there is one), cores, memory, GPUs (setup
lines, result records, :func:`imgrec_helpers.training.choose_precision`, ``manifest.json``, ``imgrec bench``)."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

SIMD_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
"""The CPU flags that matter for training speed, as quoted beside every timing (lesson 07, ``imgrec bench``)."""


def _cpuinfo_field(name: str) -> str | None:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return None
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith(name)), None)


def cpu_model() -> str:
    """The CPU's model name, e.g. ``"AMD EPYC 7B13"`` (lesson 07; ``platform.processor()`` without /proc/cpuinfo)."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    """The CPU's feature flags (``avx2``, ``amx_bf16``, ...; lesson 07); empty where they cannot be read."""
    return set((_cpuinfo_field("flags") or "").split())


def gpus() -> list[str]:
    """GPU names: TensorFlow's list when TensorFlow is already imported, else ``nvidia-smi -L``'s."""
    if "tensorflow" in sys.modules:
        return [d.name for d in sys.modules["tensorflow"].config.list_physical_devices("GPU")]
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.split(":", 1)[1].split("(")[0].strip() for line in listing.splitlines() if ":" in line]


def info() -> dict[str, Any]:
    """Everything above as one dict (``manifest.json``, ``imgrec bench``)."""
    flags = cpu_flags()
    out: dict[str, Any] = {"cpu": cpu_model(), "cores": os.cpu_count(),
                           "cpu_flags": [f for f in SIMD_FLAGS if f in flags],
                           "platform": platform.platform(terse=True)}
    try:
        out["memory_gib"] = round(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    return out | {"gpus": gpus()}


def label() -> str:
    """A short label for setup lines and result records: ``"CPU, 2 cores"`` or ``"GPU (1x), 16 cores"``."""
    found = gpus()
    return f"{f'GPU ({len(found)}x)' if found else 'CPU'}, {os.cpu_count()} cores"


def describe_cpu() -> str:
    """The CPU as quoted beside timings (``imgrec bench``): model, cores and the speed-relevant flags."""
    shown = [f for f in SIMD_FLAGS if f in cpu_flags()] or ["no AVX2"]
    return f"{cpu_model()}, {os.cpu_count()} cores ({', '.join(shown)})"
