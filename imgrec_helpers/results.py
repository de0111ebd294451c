"""Measured results: one JSON record per measurement in ``RUN_DIR/results/`` (``running.Lesson.record``), read back
by lessons 05-07 and the run report with :func:`load_results`, so numbers are never typed by hand; their tables."""
from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any, Sequence

from .errors import ImgrecError
from .persistence import write_json

# Every result record has at least these keys (lesson 05 and the report read them).
REQUIRED_KEYS = ("approach", "model", "train_images", "epochs", "train_seconds", "test_accuracy",
                 "test_images", "profile", "precision", "hardware")
# The comparison table's columns, in order (lesson 05, report.html): every required key but epochs.
TABLE_COLUMNS = tuple(key for key in REQUIRED_KEYS if key != "epochs")
# How a cell of each field is shown in the course's tables (lessons 05 and 07, report.html).
FORMATS = {"test_accuracy": "{:.4f}", "train_seconds": "{:.1f}", "file_mb": "{:.2f}", "ms_per_image": "{:.2f}",
           "parameters": "{:,}", "agreement": "{:.1%}"}


def record_result(run_dir: str | os.PathLike, name: str, *, kind: str = "model", **fields: Any) -> Path:
    """Write one record to ``RUN_DIR/results/<name>.json`` atomically; ``kind`` is "model" (lessons 02-04),
    "curve" (lesson 05), "api_comparison" (06) or "deployment" (07). A missing required key raises."""
    if missing := [k for k in REQUIRED_KEYS if k not in fields]:
        raise ImgrecError(f"result {name!r} lacks {', '.join(missing)}; every record needs {', '.join(REQUIRED_KEYS)}")
    record = {"name": name, "kind": kind, "recorded": _dt.datetime.now().isoformat(timespec="seconds"), **fields}
    return write_json(Path(run_dir) / "results" / f"{name}.json", record)


def load_results(run_dir: str | os.PathLike, kind: str | None = "model") -> list[dict[str, Any]]:
    """A run's result records of one ``kind`` (all: ``None``), sorted by name (lessons 05-07, report)."""
    records = []
    for path in sorted((Path(run_dir) / "results").glob("*.json")):  # no results folder: no records
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            rec = None
        if not isinstance(rec, dict):
            raise ImgrecError(f"{path}: not a valid result record; delete it and re-run its notebook")
        if kind is None or rec.get("kind") == kind:
            records.append(rec)
    return records


def format_value(key: str, value: Any) -> str:
    """A table cell (lessons 05-07, report): "n/a" for None, counts with commas, other numbers as :data:`FORMATS`."""
    if value is None:
        return "n/a"
    if key in ("train_images", "test_images", "epochs") and isinstance(value, int):
        return f"{value:,}"
    return FORMATS.get(key, "{}").format(value)


def table_rows(records: Sequence[dict[str, Any]], columns: Sequence[str] = TABLE_COLUMNS) -> list[list[str]]:
    """The comparison table as rows of formatted strings (lesson 05, report)."""
    return [[format_value(c, rec.get(c)) for c in columns] for rec in records]


def markdown_table(records: Sequence[dict[str, Any]], columns: Sequence[Any] = TABLE_COLUMNS,
                   rows: Sequence[Sequence[str]] | None = None) -> str:
    """A table as Markdown for ``IPython.display.Markdown``: lesson 05's from ``records``; lessons 06 and 07
    give their own ``rows`` and ``(field, heading)`` columns. A "|" in a cell becomes "/"."""
    headings = [c if isinstance(c, str) else c[1] for c in columns]
    rows = table_rows(records, columns) if rows is None else rows
    lines = ["| " + " | ".join(headings) + " |", "|" + "---|" * len(headings)]
    return "\n".join(lines + ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in rows])
