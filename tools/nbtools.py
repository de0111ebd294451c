"""Maintainer tools for the course notebooks (not used by students).

- ``python tools/nbtools.py clean notebooks/*.ipynb``: rewrite notebooks in the committed format
  (see README, "Tests"): no outputs, no execution counts, no metadata beyond the kernelspec,
  language and cell tags; outputs are kept only in cells marked ``# NBVAL_CHECK_OUTPUT``, which
  carry execution count 1 (nbval compares only cells that look executed).
- ``python tools/nbtools.py refresh-reference RUN_DIR``: copy the outputs of the
  ``# NBVAL_CHECK_OUTPUT`` cells from executed copies in RUN_DIR (e.g. a smoke run) into the
  committed notebooks, after checking the rest of the cell sources are identical.
- ``python tools/nbtools.py check RUN_DIR``: compare the ``# NBVAL_CHECK_OUTPUT`` cells of the executed
  copies in RUN_DIR with the committed references, by nbval's rules (what the tests do with the one
  smoke run they share, instead of letting nbval execute every notebook a second time).
"""
from __future__ import annotations

import re
import sys
from collections import defaultdict
from pathlib import Path

import nbformat

CHECK_MARK = "# NBVAL_CHECK_OUTPUT"
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
ALLOWED_CELL_METADATA = {"tags"}


def clean(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb.metadata = nbformat.from_dict({"kernelspec": KERNELSPEC, "language_info": {"name": "python"}})
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i:02d}"
        cell.metadata = nbformat.from_dict({k: v for k, v in cell.metadata.items() if k in ALLOWED_CELL_METADATA})
        if cell.cell_type == "code":
            checked = CHECK_MARK in cell.source and bool(cell.outputs)
            # nbval compares only cells it sees as run, so checked cells carry execution count 1
            cell.execution_count = 1 if checked else None
            cell.outputs = [_clean_output(o) for o in cell.outputs] if checked else []
    nb.nbformat, nb.nbformat_minor = 4, 5
    return nb


def _clean_output(out):
    out = nbformat.from_dict(dict(out))
    if out.output_type == "execute_result":
        out.execution_count = None
    if "metadata" in out:
        out.metadata = {}
    return out


def write(nb: nbformat.NotebookNode, path: Path) -> None:
    nbformat.validate(nb)
    path.write_text(nbformat.writes(nb, version=4) + "\n", encoding="utf-8")


def refresh_reference(run_dir: Path, notebooks: Path) -> None:
    for src in sorted(notebooks.glob("[0-9][0-9]_*.ipynb")):
        executed_path = run_dir / src.name
        if not executed_path.is_file():
            print(f"skip {src.name}: no executed copy in {run_dir}")
            continue
        nb = nbformat.read(src, as_version=4)
        executed = nbformat.read(executed_path, as_version=4)
        by_source = {c.source: c for c in executed.cells if c.cell_type == "code"}
        for cell in nb.cells:
            if cell.cell_type == "code" and CHECK_MARK in cell.source:
                if cell.source not in by_source:
                    raise SystemExit(f"{src.name}: a checked cell changed since {executed_path} was executed")
                cell.outputs = by_source[cell.source].outputs
        write(clean(nb), src)
        print(f"refreshed {src.name}")


# nbval's comparison (nbval 0.11, ``--nbval-lax``: only marked cells are compared): stream outputs of one
# name are joined, backspaces and carriage returns applied; then, per stream name or MIME type (images,
# metadata, tracebacks and execution counts left out), the list of values must be equal.
_SKIPPED = {"image/png", "image/jpeg", "application/vnd.jupyter.widget-view+json"}
_BACKSPACE = re.compile(r"[^\n]\b")
_CARRIAGE_RETURN = re.compile(r"^.*\r(?=[^\n])", re.M)


def comparable(outputs) -> dict[str, list]:
    """A cell's outputs as nbval compares them: ``{stream name or MIME type or "error": [values]}``."""
    out: dict[str, list] = defaultdict(list)
    streams: dict[str, str] = {}
    for o in outputs:
        if o["output_type"] == "stream":
            streams[o["name"]] = streams.get(o["name"], "") + "".join(o["text"])
        elif o["output_type"] == "error":
            out["error"].append(f"{o['ename']}: {o['evalue']}")
        else:
            for mime, value in o.get("data", {}).items():
                if mime not in _SKIPPED:
                    out[mime].append("".join(value) if isinstance(value, list) else value)
    for name, text in streams.items():
        previous = None
        while previous != text:
            previous, text = text, _BACKSPACE.sub("", text)
        out[name].append(_CARRIAGE_RETURN.sub("", text))
    return dict(out)


def checked_output_differences(committed: nbformat.NotebookNode, executed: nbformat.NotebookNode) -> list[str]:
    """One line per ``# NBVAL_CHECK_OUTPUT`` cell of ``committed`` whose output in ``executed`` differs
    from its reference (or that ``executed`` lacks); empty when all match."""
    by_source = {c.source: c for c in executed.cells if c.cell_type == "code"}
    problems = []
    for cell in committed.cells:
        if cell.cell_type != "code" or CHECK_MARK not in cell.source:
            continue
        first = next((line for line in cell.source.splitlines() if line and CHECK_MARK not in line), "")[:60]
        ran = by_source.get(cell.source)
        if ran is None:
            problems.append(f"[{first}]: not in the executed copy (cell changed? refresh-reference)")
            continue
        want, got = comparable(cell.outputs), comparable(ran.outputs)
        if want != got:
            problems.append(f"[{first}]: expected {want!r}, got {got!r}")
    return problems


def check(run_dir: Path, notebooks: Path) -> int:
    failed = 0
    for src in sorted(notebooks.glob("[0-9][0-9]_*.ipynb")):
        executed = run_dir / src.name
        if not executed.is_file():
            print(f"{src.name}: no executed copy in {run_dir}")
            failed += 1
            continue
        problems = checked_output_differences(nbformat.read(src, as_version=4), nbformat.read(executed, as_version=4))
        print(f"{src.name}: " + ("checked outputs match" if not problems else "\n  ".join(["DIFFERS", *problems])))
        failed += bool(problems)
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "clean":
        for name in argv[1:]:
            path = Path(name)
            write(clean(nbformat.read(path, as_version=4)), path)
        return 0
    if len(argv) == 2 and argv[0] == "refresh-reference":
        refresh_reference(Path(argv[1]), Path(__file__).resolve().parent.parent / "notebooks")
        return 0
    if len(argv) == 2 and argv[0] == "check":
        return check(Path(argv[1]), Path(__file__).resolve().parent.parent / "notebooks")
    print(__doc__)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
