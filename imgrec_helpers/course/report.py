"""The run report: ``RUN_DIR/report.html``, one self-contained page per run.

``imgrec run`` ends by writing it; ``imgrec report RUN_DIR`` rebuilds it. It shows the manifest,
the notebooks (with HTML copies), the comparison table from the result records
(:mod:`imgrec_helpers.results`), lesson 06's and lesson 07's own tables, and every saved figure, embedded as
data URIs.
"""
from __future__ import annotations

import base64
import os
from pathlib import Path

import jinja2
import nbformat
from nbconvert import HTMLExporter

from .. import deployment
from ..cloud import COMPARISON_COLUMNS, comparison_rows
from ..errors import FileSystemError, ImgrecError
from ..persistence import atomic_path
from ..results import TABLE_COLUMNS, format_value, load_results, table_rows
from .manifest import read_manifest

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


_PAGE = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True).from_string("""\
{% macro table(id, columns, rows) %}
<table id='{{ id }}'><tr>{% for c in columns %}<th>{{ c }}</th>{% endfor %}</tr>
{% for row in rows %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>
{% endfor %}</table>
{% endmacro %}
<!DOCTYPE html><html><head><meta charset='utf-8'><title>imgrec run report: {{ run_dir.name }}</title>
<style>{{ css | safe }}</style></head><body>
<h1>imgrec run report</h1><p>Run folder <code>{{ run_dir }}</code>, profile <b>{{ manifest.profile }}</b>, seed \
{{ manifest.seed }}, status <b class='{{ manifest.status }}'>{{ manifest.status }}</b>\
{% if manifest.note %}: {{ manifest.note }}{% endif %}.</p>
<h2>Notebooks</h2><table id='notebooks'><tr><th>notebook</th><th>status</th><th>seconds</th>\
<th>trained on (tf.distribute)</th><th>executed copy</th></tr>
{% for nb in notebooks %}
<tr><td>{{ nb.name }}</td><td class='{{ nb.status }}'>{{ nb.status }}</td><td>{{ nb.seconds }}</td>\
<td>{{ nb.trained_on }}</td><td>{% if nb.link %}<a href='{{ nb.link }}'>{{ nb.stem }}.html</a>{% else %}none{% endif %}</td></tr>
{% endfor %}
</table>
<h2>Comparison (from the result records)</h2>
{% if comparison %}
{{ table("comparison", columns, comparison) }}
{% else %}
<p>No result records in this run yet.</p>
{% endif %}
{% for section in sections %}
<h2>{{ section.title }}</h2>{% if section.note %}<p>{{ section.note }}.</p>{% endif %}
{{ table(section.id, section.columns, section.rows) }}
{% endfor %}
<h2>Figures</h2>
{% for fig in figures %}
<figure id='{{ fig.stem }}'><img alt='{{ fig.stem }}' src='data:image/png;base64,{{ fig.data }}'>\
<figcaption>{{ fig.caption }}</figcaption></figure>
{% else %}
<p>No figures saved in this run.</p>
{% endfor %}
<h2>Environment</h2><table id='manifest'>
{% for key, value in environment %}
<tr><th>{{ key }}</th><td>{{ value }}</td></tr>
{% endfor %}
</table></body></html>
""")
"""The page, one jinja2 template (autoescaped): every value from the manifest, the records and the file names is
escaped as text."""


def _sections(run_dir: Path) -> list[dict[str, object]]:
    """Lesson 06's "when to use what" and lesson 07's deployment table, from the run's records, with the same cells
    as in the notebooks (:func:`imgrec_helpers.cloud.comparison_rows`, :func:`imgrec_helpers.deployment.rows`);
    a lesson that did not run adds no section."""
    sections: list[dict[str, object]] = []
    api = load_results(run_dir, kind="api_comparison")
    if api:
        sections.append({"id": "api_comparison", "title": "Cloud vision APIs or your own models (lesson 06)",
                         "columns": [title for _, title in COMPARISON_COLUMNS], "rows": comparison_rows(api)})
    deployed = load_results(run_dir, kind=deployment.KIND)
    if deployed:
        sections.append({"id": "deployment", "title": "Deployment: .keras, LiteRT float32 and int8 (lesson 07)",
                         "note": deployment.measured_on(deployed), "columns": [title for _, title in deployment.COLUMNS],
                         "rows": deployment.rows(deployed)})
    return sections


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
    if not run_dir.is_dir():
        what = "is a file, not a run folder" if run_dir.exists() else "no such run folder"
        raise ImgrecError(f"{run_dir}: {what}; pass the folder imgrec run wrote (runs/<timestamp>-<profile>/)")
    manifest = read_manifest(run_dir, fix="this is not a folder written by imgrec run, so no report is written")
    if manifest is None:
        raise ImgrecError(f"{run_dir}: no manifest.json, so not a run folder; run imgrec run first")
    links = dict(_export_notebooks_html(run_dir))
    notebooks = []
    for name, nb in manifest.get("notebooks", {}).items():
        status = str(nb.get("status"))
        notebooks.append({"name": name, "stem": Path(name).stem, "link": links.get(Path(name).stem), "status": status,
                          "seconds": format_value("train_seconds", nb.get("seconds")),
                          "trained_on": "; ".join(nb.get("trained_on") or []) or ("no training" if status == "ok" else "")})
    figures = [{"stem": fig.stem, "caption": fig.stem.replace("_", " "), "data": base64.b64encode(fig.read_bytes()).decode()}
               for fig in sorted((run_dir / "figures").glob("*.png"))]
    environment = [(key, manifest.get(key, "")) for key in ("started", "ended", "seconds", "data_home")]
    for group in ("versions", "hardware", "cpu_settings", "data"):  # the CPU every time was measured on; the data
        environment += [(f"{group}: {key}", value) for key, value in (manifest.get(group) or {}).items()]
    page = _PAGE.render(run_dir=run_dir, manifest=manifest, css=_CSS, notebooks=notebooks, columns=TABLE_COLUMNS,
                        comparison=table_rows(load_results(run_dir)), sections=_sections(run_dir), figures=figures,
                        environment=environment)
    target = run_dir / "report.html"
    with atomic_path(target) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return target
