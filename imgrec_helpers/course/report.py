"""``RUN_DIR/report.html``, written at the end of ``imgrec run`` and by ``imgrec report RUN_DIR``: one self-contained
page with the manifest, the notebooks (and their HTML copies), the comparison table of the result records, lessons
06's and 07's tables, and every saved figure as a data URI."""
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

_PAGE = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True).from_string("""\
{% macro table(id, columns, rows) %}
<table id='{{ id }}'><tr>{% for c in columns %}<th>{{ c }}</th>{% endfor %}</tr>
{% for row in rows %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>
{% endfor %}</table>
{% endmacro %}
<!DOCTYPE html><html><head><meta charset='utf-8'><title>imgrec run report: {{ run_dir.name }}</title><style>
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px} th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}
th{background:#f0f0f0} .ok{color:#1a7f37} .failed,.timeout{color:#c00} figcaption{font-size:13px;color:#555}
figure{display:inline-block;margin:1em;vertical-align:top} figure img{max-width:100%;border:1px solid #ddd}
</style></head><body><h1>imgrec run report</h1><p>Run folder <code>{{ run_dir }}</code>, profile <b>{{ m.profile }}</b>,
seed {{ m.seed }}, status <b class='{{ m.status }}'>{{ m.status }}</b>{% if m.note %}: {{ m.note }}{% endif %}.</p>
<h2>Notebooks</h2><table id='notebooks'><tr><th>notebook</th><th>status</th><th>seconds</th>
<th>trained on (tf.distribute)</th><th>executed copy</th></tr>
{% for name, nb in m.notebooks.items() %}{% set stem, status = name.rsplit('.', 1)[0], nb.get('status') %}
<tr><td>{{ name }}</td><td class='{{ status }}'>{{ status }}</td><td>{{ seconds(nb.get('seconds')) }}</td>
<td>{{ (nb.trained_on or []) | join('; ') or ('no training' if status == 'ok' else '') }}</td>
<td>{% if stem in links %}<a href='html/{{ stem }}.html'>{{ stem }}.html</a>{% else %}none{% endif %}</td></tr>
{% endfor %}</table>
<h2>Comparison (from the result records)</h2>
{{ table("comparison", columns, comparison) if comparison else "<p>No result records in this run yet.</p>" | safe }}
{% for s in sections %}<h2>{{ s.title }}</h2>{% if s.note %}<p>{{ s.note }}.</p>{% endif %}
{{ table(s.id, s.columns, s.rows) }}
{% endfor %}<h2>Figures</h2>
{% for fig in figures %}
<figure id='{{ fig.stem }}'><img alt='{{ fig.stem }}' src='data:image/png;base64,{{ fig.data }}'>
<figcaption>{{ fig.stem.replace('_', ' ') }}</figcaption></figure>
{% else %}<p>No figures saved in this run.</p>
{% endfor %}<h2>Environment</h2><table id='manifest'>
{% for key, value in environment %}<tr><th>{{ key }}</th><td>{{ value }}</td></tr>
{% endfor %}</table></body></html>
""")
"""The page, one autoescaped jinja2 template: every value from the manifest, the records and file names is text."""
_SECTIONS = (  # lesson 06's "when to use what" and lesson 07's deployment table, made as the notebooks make them
    ("api_comparison", "Cloud vision APIs or your own models (lesson 06)", COMPARISON_COLUMNS, comparison_rows, None),
    (deployment.KIND, "Deployment: .keras, LiteRT float32 and int8 (lesson 07)", deployment.COLUMNS, deployment.rows,
     deployment.measured_on))


def _export_notebooks_html(run_dir: Path) -> set[str]:
    """HTML copies of the executed notebooks in ``RUN_DIR/html/`` (made again when older); returns their stems."""
    notebooks = [nb_path for nb_path in sorted(run_dir.glob("[0-9][0-9]_*.ipynb"))
                 if not nb_path.name.endswith(".failed.ipynb") and ".partial" not in nb_path.name]
    for nb_path in notebooks:
        target = run_dir / "html" / f"{nb_path.stem}.html"
        if not target.exists() or target.stat().st_mtime < nb_path.stat().st_mtime:
            try:
                node = nbformat.read(nb_path, as_version=4)
            except OSError:
                raise
            except Exception as exc:  # nbformat raises several types for a damaged file
                raise ImgrecError(f"{nb_path}: not a readable notebook ({type(exc).__name__}); delete it and run "
                                  f"imgrec run --resume {run_dir} to execute it again") from None
            with atomic_path(target) as tmp:
                tmp.write_text(HTMLExporter().from_notebook_node(node)[0], encoding="utf-8")
    return {nb_path.stem for nb_path in notebooks}


def write_report(run_dir: str | os.PathLike) -> Path:
    """Write ``RUN_DIR/report.html`` (``imgrec run``, ``imgrec report``), figures embedded so it opens with no server;
    refuses a folder ``imgrec run`` did not write; one that cannot be written gets how to make the report elsewhere."""
    run_dir = Path(run_dir)
    try:
        if not run_dir.is_dir():
            what = "is a file, not a run folder" if run_dir.exists() else "no such run folder"
            raise ImgrecError(f"{run_dir}: {what}; pass the folder imgrec run wrote (runs/<timestamp>-<profile>/)")
        manifest = read_manifest(run_dir, fix="this is not a folder written by imgrec run, so no report is written")
        if manifest is None:
            raise ImgrecError(f"{run_dir}: no manifest.json, so not a run folder; run imgrec run first")
        environment = [(key, manifest.get(key, "")) for key in ("started", "ended", "seconds", "data_home")]
        for group in ("versions", "hardware", "cpu_settings", "data"):  # the CPU every time was measured on; the data
            environment += [(f"{group}: {key}", value) for key, value in (manifest.get(group) or {}).items()]
        figures = [{"stem": fig.stem, "data": base64.b64encode(fig.read_bytes()).decode()}
                   for fig in sorted((run_dir / "figures").glob("*.png"))]
        links, comparison = _export_notebooks_html(run_dir), table_rows(load_results(run_dir))
        sections = [{"id": kind, "title": title, "note": note and note(records), "rows": rows(records),
                     "columns": [heading for _, heading in columns]}  # a lesson that did not run: no section
                    for kind, title, columns, rows, note in _SECTIONS if (records := load_results(run_dir, kind=kind))]
        page = _PAGE.render(run_dir=run_dir, m=manifest, links=links, columns=TABLE_COLUMNS, figures=figures,
                            seconds=lambda s: format_value("train_seconds", s), comparison=comparison,
                            sections=sections, environment=environment)
        with atomic_path(run_dir / "report.html") as tmp:
            tmp.write_text(page, encoding="utf-8")
    except FileSystemError as exc:
        raise FileSystemError(f"{exc}; the report is written into the run folder itself: copy the folder somewhere "
                              f"writable (cp -r {run_dir} NEW_DIR) and run imgrec report NEW_DIR", exc.errno) from None
    return run_dir / "report.html"
