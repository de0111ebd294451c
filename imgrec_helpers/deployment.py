"""Lesson 07's deployment table: one row per model and file format (``.keras``, LiteRT float32 and int8), from
the run's result records of kind ``"deployment"``; the notebook and ``report.html`` show the same cells."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from .results import format_value, markdown_table

KIND = "deployment"  # the ``kind`` of lesson 07's result records
# (record field, column heading) of the deployment table, in order.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("model", "model"), ("format", "file format"), ("file_mb", "file MB"), ("parameters", "parameters"),
    ("ms_per_image", "ms per image (batch 1)"), ("test_accuracy", "accuracy"), ("test_set", "test set"),
    ("agreement", "agrees with Keras"))


def megabytes(path: str | os.PathLike) -> float:
    """The size of a file in MB (10^6 bytes), as the table shows it (lesson 07)."""
    return Path(path).stat().st_size / 1e6


def rows(records: Sequence[dict[str, Any]]) -> list[list[str]]:
    """The table's cells, one row per ``"deployment"`` record, ordered by record name (lesson 07, report)."""
    table = []
    for rec in sorted(records, key=lambda r: str(r.get("name", ""))):
        cells = {key: format_value(key, rec.get(key)) for key, _ in COLUMNS}
        if isinstance(rec.get("test_images"), int) and rec.get("test_set") is not None:
            cells["test_set"] += f" ({rec['test_images']:,} images)"
        table.append(list(cells.values()))
    return table


def markdown(records: Sequence[dict[str, Any]]) -> str:
    """The table as Markdown, for ``IPython.display.Markdown`` (lesson 07)."""
    return markdown_table(records, COLUMNS, rows(records))


def measured_on(records: Sequence[dict[str, Any]]) -> str:
    """The CPU (and thread count) the timings were measured on, one sentence from the records (lesson 07, report)."""
    cpus = sorted({f"{r.get('cpu', 'unknown CPU')} ({r.get('hardware', '?')})" for r in records})
    threads = sorted({str(r.get("threads")) for r in records if r.get("threads")})
    where = " and ".join(cpus) or "an unrecorded CPU"
    return f"timings measured on {where}" + (f", LiteRT with {', '.join(threads)} thread(s)" if threads else "")


def quantization_bytes(path: str | os.PathLike) -> int:
    """Bytes a ``.tflite`` file spends on quantization parameters (lesson 07): 4 per scale and 8 per zero point
    of every quantized tensor, read with LiteRT's own flatbuffer schema."""
    from ai_edge_litert import schema_py_generated as schema  # here: 0.3 s that ``imgrec report`` need not pay

    model = schema.Model.GetRootAs(Path(path).read_bytes(), 0)
    graphs = [model.Subgraphs(g) for g in range(model.SubgraphsLength())]
    quantized = [q for graph in graphs for t in range(graph.TensorsLength())
                 if (q := graph.Tensors(t).Quantization()) is not None]
    return sum(4 * q.ScaleLength() + 8 * q.ZeroPointLength() for q in quantized)
