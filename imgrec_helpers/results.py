"""Measured results: one JSON record per trained model, and the comparison table built from them.

Lessons record through :meth:`imgrec_helpers.running.Lesson.record` (which calls :func:`record_result`
with the profile, seed and hardware filled in); lesson 05 and the run report
(:mod:`imgrec_helpers.report`) read the records back with :func:`load_results`: numbers are never
typed by hand.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any, Sequence

from .errors import ImgrecError
from .persistence import write_json

REQUIRED_KEYS = ("approach", "model", "train_images", "epochs", "train_seconds", "test_accuracy",
                 "test_images", "profile", "precision", "hardware")
"""Every result record has at least these keys (lesson 05 and the report read them)."""

TABLE_COLUMNS = ("approach", "model", "train_images", "train_seconds", "test_accuracy", "test_images",
                 "profile", "precision", "hardware")
"""The comparison table's columns, in order (lesson 05, report.html)."""


def record_result(run_dir: str | os.PathLike, name: str, *, kind: str = "model", **fields: Any) -> Path:
    """Write one result record to ``RUN_DIR/results/<name>.json`` (atomically) and return its path.

    ``kind`` is ``"model"`` for the comparison table (lessons 02-04) or ``"curve"`` for points of
    the data-efficiency curve (lesson 05). Raises when a required key is missing, so an incomplete
    record can never reach the table.
    """
    missing = [k for k in REQUIRED_KEYS if k not in fields]
    if missing:
        raise ImgrecError(f"result {name!r} lacks {', '.join(missing)}; every record needs {', '.join(REQUIRED_KEYS)}")
    record = {"name": name, "kind": kind, "recorded": _dt.datetime.now().isoformat(timespec="seconds"), **fields}
    return write_json(Path(run_dir) / "results" / f"{name}.json", record)


def load_results(run_dir: str | os.PathLike, kind: str | None = "model") -> list[dict[str, Any]]:
    """All result records of a run (of one ``kind``, or all with ``kind=None``), sorted by name."""
    folder = Path(run_dir) / "results"
    records = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            rec = None
        if not isinstance(rec, dict):
            raise ImgrecError(f"{path}: not a valid result record; delete it and re-run its notebook") from None
        if kind is None or rec.get("kind") == kind:
            records.append(rec)
    return records


def format_value(key: str, value: Any) -> str:
    """How a table cell is shown: accuracy as 0.xxxx, seconds with one decimal, counts with commas."""
    if value is None:
        return "n/a"
    if key == "test_accuracy":
        return f"{value:.4f}"
    if key == "train_seconds":
        return f"{value:.1f}"
    if key in ("train_images", "test_images", "epochs") and isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table_rows(records: Sequence[dict[str, Any]], columns: Sequence[str] = TABLE_COLUMNS) -> list[list[str]]:
    """The comparison table as rows of formatted strings (lesson 05, report)."""
    return [[format_value(c, rec.get(c)) for c in columns] for rec in records]


def markdown_table(records: Sequence[dict[str, Any]], columns: Sequence[str] = TABLE_COLUMNS) -> str:
    """The comparison table as Markdown, for ``IPython.display.Markdown`` (lesson 05)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(records, columns)]
    return "\n".join(lines)
