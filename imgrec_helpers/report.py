"""The run report: ``RUN_DIR/report.html``, one self-contained page per run.

``imgrec run`` ends by writing it; ``imgrec report RUN_DIR`` rebuilds it. It shows the manifest,
the notebooks (with HTML copies), the comparison table from the result records
(:mod:`imgrec_helpers.results`), lesson 06's and lesson 07's own tables, and every saved figure, embedded as
data URIs.
"""
from __future__ import annotations

import base64
import html
import os
from pathlib import Path

from .errors import FileSystemError, ImgrecError
from .persistence import atomic_path
from .results import TABLE_COLUMNS, format_value, load_results, table_rows

_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}
th{background:#f0f0f0} .ok{color:#1a7f37} .failed,.timeout{color:#c00}
figure{display:inline-block;margin:1em;vertical-align:top} figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:13px;color:#555}
"""


def _export_notebooks_html(run_dir: Path) -> list[tuple[str, str]]:
    """HTML copies of the executed notebooks in ``RUN_DIR/html/``; returns (name, relative link)."""
    import nbformat
    from nbconvert import HTMLExporter

    links = []
    exporter = HTMLExporter()
    for nb_path in sorted(run_dir.glob("[0-9][0-9]_*.ipynb")):
        if nb_path.name.endswith(".failed.ipynb") or ".partial" in nb_path.name:
            continue
        target = run_dir / "html" / f"{nb_path.stem}.html"
        if not target.exists() or target.stat().st_mtime < nb_path.stat().st_mtime:
            try:
                node = nbformat.read(nb_path, as_version=4)
            except OSError:
                raise
            except Exception as exc:  # nbformat raises several types for a damaged file
                raise ImgrecError(f"{nb_path}: not a readable notebook ({type(exc).__name__}); delete it and run "
                                  f"imgrec run --resume {run_dir} to execute it again") from None
            body, _ = exporter.from_notebook_node(node)
            with atomic_path(target) as tmp:
                tmp.write_text(body, encoding="utf-8")
        links.append((nb_path.stem, f"html/{target.name}"))
    return links


def _api_comparison_section(run_dir: Path) -> str:
    """Lesson 06's "when to use what" table from the run's ``api_comparison`` records ("" when there are none).

    The cells come from :func:`imgrec_helpers.cloud.comparison_rows`, the same as the table in the notebook.
    """
    from .cloud import COMPARISON_COLUMNS, comparison_rows

    records = load_results(run_dir, kind="api_comparison")
    if not records:
        return ""
    e = html.escape
    head = "".join(f"<th>{e(title)}</th>" for _, title in COMPARISON_COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{e(cell)}</td>" for cell in row) + "</tr>" for row in comparison_rows(records))
    return (f"<h2>Cloud vision APIs or your own models (lesson 06)</h2><table id='api_comparison'><tr>{head}</tr>"
            f"{body}</table>")


def _deployment_section(run_dir: Path) -> str:
    """Lesson 07's deployment table (formats, sizes, speed, accuracy) from the run's ``deployment`` records
    ("" when there are none); the cells come from :func:`imgrec_helpers.deployment.rows`, as in the notebook."""
    from . import deployment

    records = load_results(run_dir, kind=deployment.KIND)
    if not records:
        return ""
    e = html.escape
    head = "".join(f"<th>{e(title)}</th>" for _, title in deployment.COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{e(cell)}</td>" for cell in row) + "</tr>" for row in deployment.rows(records))
    return (f"<h2>Deployment: .keras, LiteRT float32 and int8 (lesson 07)</h2><p>{e(deployment.measured_on(records))}."
            f"</p><table id='deployment'><tr>{head}</tr>{body}</table>")


def write_report(run_dir: str | os.PathLike) -> Path:
    """Write ``RUN_DIR/report.html``: manifest, comparison table, figures, links to the notebooks.

    Figures are embedded as data URIs, so the file opens in a browser with no server. Refuses a
    folder whose ``manifest.json`` was not written by ``imgrec run``; when the run folder cannot be
    written (read-only, disk full), says so and how to make the report elsewhere.
    """
    try:
        return _write_report(Path(run_dir))
    except FileSystemError as exc:
        raise FileSystemError(f"{exc}; the report is written into the run folder itself: copy the folder somewhere "
                              f"writable (cp -r {run_dir} NEW_DIR) and run imgrec report NEW_DIR", exc.errno) from None


def _write_report(run_dir: Path) -> Path:
    from .running import read_manifest

    if not run_dir.is_dir():
        what = "is a file, not a run folder" if run_dir.exists() else "no such run folder"
        raise ImgrecError(f"{run_dir}: {what}; pass the folder imgrec run wrote (runs/<timestamp>-<profile>/)")
    manifest = read_manifest(run_dir, fix="this is not a folder written by imgrec run, so no report is written")
    if manifest is None:
        raise ImgrecError(f"{run_dir}: no manifest.json, so not a run folder; run imgrec run first")
    records = load_results(run_dir)
    e = html.escape
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>imgrec run report: {e(run_dir.name)}"
             f"</title><style>{_CSS}</style></head><body>",
             f"<h1>imgrec run report</h1><p>Run folder <code>{e(str(run_dir))}</code>, profile "
             f"<b>{e(str(manifest.get('profile')))}</b>, seed {e(str(manifest.get('seed')))}, status "
             f"<b class='{e(str(manifest.get('status')))}'>{e(str(manifest.get('status')))}</b>"
             + (f": {e(str(manifest['note']))}" if manifest.get("note") else "") + ".</p>"]

    parts.append("<h2>Notebooks</h2><table id='notebooks'><tr><th>notebook</th><th>status</th><th>seconds</th>"
                 "<th>trained on (tf.distribute)</th><th>executed copy</th></tr>")
    links = dict(_export_notebooks_html(run_dir))
    for name, nb in manifest.get("notebooks", {}).items():
        stem = Path(name).stem
        link = f"<a href='{e(links[stem])}'>{e(stem)}.html</a>" if stem in links else "none"
        status = str(nb.get("status"))
        parts.append(f"<tr><td>{e(name)}</td><td class='{e(status)}'>{e(status)}</td>"
                     f"<td>{e(format_value('train_seconds', nb.get('seconds')))}</td>"
                     f"<td>{e('; '.join(nb.get('trained_on') or [])) or ('no training' if status == 'ok' else '')}</td>"
                     f"<td>{link}</td></tr>")
    parts.append("</table>")

    parts.append("<h2>Comparison (from the result records)</h2>")
    if records:
        parts.append("<table id='comparison'><tr>" + "".join(f"<th>{e(c)}</th>" for c in TABLE_COLUMNS) + "</tr>")
        for row in table_rows(records):
            parts.append("<tr>" + "".join(f"<td>{e(v)}</td>" for v in row) + "</tr>")
        parts.append("</table>")
    else:
        parts.append("<p>No result records in this run yet.</p>")
    parts.append(_api_comparison_section(run_dir))  # lesson 06's table, when lesson 06 ran
    parts.append(_deployment_section(run_dir))  # lesson 07's table, when lesson 07 ran

    figures = sorted((run_dir / "figures").glob("*.png")) if (run_dir / "figures").is_dir() else []
    parts.append("<h2>Figures</h2>")
    for fig in figures:
        data = base64.b64encode(fig.read_bytes()).decode("ascii")
        parts.append(f"<figure id='{e(fig.stem)}'><img alt='{e(fig.stem)}' src='data:image/png;base64,{data}'>"
                     f"<figcaption>{e(fig.stem.replace('_', ' '))}</figcaption></figure>")
    if not figures:
        parts.append("<p>No figures saved in this run.</p>")

    parts.append("<h2>Environment</h2><table id='manifest'>")
    for key in ("started", "ended", "seconds", "data_home"):
        parts.append(f"<tr><th>{e(key)}</th><td>{e(str(manifest.get(key, '')))}</td></tr>")
    for group in ("versions", "hardware", "cpu_settings", "data"):  # the CPU every time was measured on; the data
        for key, value in (manifest.get(group) or {}).items():
            parts.append(f"<tr><th>{e(group)}: {e(key)}</th><td>{e(str(value))}</td></tr>")
    parts.append("</table></body></html>")
    target = run_dir / "report.html"
    with atomic_path(target) as tmp:
        tmp.write_text("\n".join(parts), encoding="utf-8")
    return target
