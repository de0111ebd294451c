"""Lesson 07's deployment table: one row per model and file format, from the run's result records.

Lesson 07 measures each model as a ``.keras`` file, as a LiteRT ``.tflite`` file in float32 and with int8
post-training quantization, and records one result of kind ``"deployment"`` per row
(:meth:`imgrec_helpers.running.Lesson.record`). The table in the notebook and in ``report.html``
(:mod:`imgrec_helpers.report`) are both made here from those records, so they show the same measured cells.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from .results import format_value

KIND = "deployment"
"""The ``kind`` of lesson 07's result records."""

COLUMNS: tuple[tuple[str, str], ...] = (
    ("model", "model"),
    ("format", "file format"),
    ("file_mb", "file MB"),
    ("parameters", "parameters"),
    ("ms_per_image", "ms per image (batch 1)"),
    ("test_accuracy", "accuracy"),
    ("test_set", "test set"),
    ("agreement", "agrees with Keras"),
)
"""(record field, column heading) of the deployment table, in order."""


def megabytes(path: str | os.PathLike) -> float:
    """The size of a file in MB (10^6 bytes), as the table shows it."""
    return Path(path).stat().st_size / 1e6


def _cell(key: str, rec: dict[str, Any]) -> str:
    value = rec.get(key)
    if value is None or key == "test_accuracy":
        return format_value(key, value)  # as in every other table of the course
    if key in ("file_mb", "ms_per_image"):
        return f"{value:.2f}"
    if key == "parameters":
        return f"{value:,}"
    if key == "agreement":
        return f"{value:.1%}"
    if key == "test_set":
        return f"{value} ({rec.get('test_images', '?'):,} images)" if isinstance(rec.get("test_images"), int) else str(value)
    return str(value)


def rows(records: Sequence[dict[str, Any]]) -> list[list[str]]:
    """The table's cells, one row per ``"deployment"`` record, ordered by record name."""
    return [[_cell(key, rec) for key, _ in COLUMNS] for rec in sorted(records, key=lambda r: str(r.get("name", "")))]


def markdown(records: Sequence[dict[str, Any]]) -> str:
    """The table as Markdown, for ``IPython.display.Markdown`` (lesson 07)."""
    lines = ["| " + " | ".join(h for _, h in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in rows(records)]
    return "\n".join(lines)


def measured_on(records: Sequence[dict[str, Any]]) -> str:
    """The CPU (and thread count) the table's timings were measured on, from the records: one sentence."""
    cpus = sorted({f"{r.get('cpu', 'unknown CPU')} ({r.get('hardware', '?')})" for r in records})
    threads = sorted({str(r.get("threads")) for r in records if r.get("threads")})
    where = " and ".join(cpus) or "an unrecorded CPU"
    return f"timings measured on {where}" + (f", LiteRT with {', '.join(threads)} thread(s)" if threads else "")


def quantization_bytes(path: str | os.PathLike) -> int:
    """Bytes a ``.tflite`` file spends on quantization parameters: every quantized tensor's scales (4 bytes each)
    and zero points (8 bytes each), one per output channel for per-channel weights and biases (lesson 07 shows
    how much of a small int8 model they are). Read with LiteRT's own flatbuffer schema."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(Path(path).read_bytes(), 0)
    total = 0
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        for t in range(graph.TensorsLength()):
            q = graph.Tensors(t).Quantization()
            if q is not None:
                total += 4 * q.ScaleLength() + 8 * q.ZeroPointLength()
    return total
