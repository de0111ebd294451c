"""Result records, the comparison table and report.html, on a run folder the test makes."""
from __future__ import annotations

import html
import re

import nbformat
import numpy as np
import pytest

from imgrec_helpers import persistence, plots, results
from imgrec_helpers.course import report
from imgrec_helpers.errors import ImgrecError

RECORD = dict(approach="CNN from scratch", model="reference CNN", train_images=45000, epochs=5,
              train_seconds=104.56, test_accuracy=0.7366, test_images=10000, profile="quick",
              precision="mixed_bfloat16", hardware="CPU, 2 cores")


def test_records_need_every_key(tmp_path):
    with pytest.raises(ImgrecError, match="lacks test_accuracy"):
        results.record_result(tmp_path, "x", **{k: v for k, v in RECORD.items() if k != "test_accuracy"})


def test_records_round_trip_and_kinds(tmp_path):
    results.record_result(tmp_path, "02_scratch_cnn", **RECORD)
    results.record_result(tmp_path, "05_curve_scratch_100", kind="curve", **{**RECORD, "train_images": 100})
    assert [r["name"] for r in results.load_results(tmp_path)] == ["02_scratch_cnn"]
    assert [r["name"] for r in results.load_results(tmp_path, kind="curve")] == ["05_curve_scratch_100"]
    assert len(results.load_results(tmp_path, kind=None)) == 2
    row = results.table_rows(results.load_results(tmp_path))[0]
    assert row == ["CNN from scratch", "reference CNN", "45,000", "104.6", "0.7366", "10,000", "quick",
                   "mixed_bfloat16", "CPU, 2 cores"]
    assert results.markdown_table(results.load_results(tmp_path)).splitlines()[0].startswith("| approach | model |")
    (tmp_path / "results" / "broken.json").write_text("{")
    with pytest.raises(ImgrecError, match="broken.json"):
        results.load_results(tmp_path)


def test_report_is_self_contained_and_matches_records(tmp_path):
    results.record_result(tmp_path, "02_scratch_cnn", **RECORD)
    results.record_result(tmp_path, "04c_transfer_cifar10", **{**RECORD, "approach": "transfer <frozen>",
                                                                "test_accuracy": 0.61})
    fig = plots.comparison_bars(["a", "b"], [0.5, 0.7], "accuracy", "t", save_to=tmp_path / "figures" / "05_bars.png")
    assert fig is not None
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 01 · hello")])
    nbformat.write(nb, tmp_path / "01_hello.ipynb")
    persistence.write_json(tmp_path / "manifest.json", {
        "profile": "quick", "seed": 42, "status": "ok", "notebooks": {"01_hello.ipynb": {"status": "ok", "seconds": 1.5}},
        "versions": {"tensorflow": "2.x"}, "hardware": {"cores": 2, "cpu": "AMD EPYC 7B13"},
        "cpu_settings": {"TF_ENABLE_ONEDNN_OPTS": "1"}})
    page = report.write_report(tmp_path).read_text()
    environment = re.search(r"<table id='manifest'>(.*?)</table>", page, re.S).group(1)
    assert "<th>hardware: cpu</th><td>AMD EPYC 7B13</td>" in environment  # the CPU the times were measured on
    assert "<th>cpu_settings: TF_ENABLE_ONEDNN_OPTS</th><td>1</td>" in environment
    assert "<b>quick</b>" in page and "&lt;frozen&gt;" in page  # values are escaped
    rows = re.findall(r"<tr>(.*?)</tr>", re.search(r"<table id='comparison'>(.*?)</table>", page, re.S).group(1))[1:]
    shown = [[html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", row)] for row in rows]
    assert shown == results.table_rows(results.load_results(tmp_path))
    assert re.search(r"<figure id='05_bars'><img alt='05_bars' src='data:image/png;base64,", page)
    assert "href='html/01_hello.html'" in page and (tmp_path / "html" / "01_hello.html").is_file()
    assert "src='http" not in page and "href='/" not in page  # nothing needs a server


def test_report_needs_a_manifest(tmp_path):
    with pytest.raises(ImgrecError, match="not a run folder"):
        report.write_report(tmp_path)


def test_predictions_grid_puts_every_image_beside_its_bars(tmp_path):
    images = [np.full((8, 8, 3), v, np.uint8) for v in (0, 80, 160, 240)]
    labels = [["cat", "dog"], ["ship", "car"], ["frog", "deer"], ["bird", "horse"]]
    probs = [[0.7, 0.2], [0.5, 0.4], [0.9, 0.05], [0.6, 0.3]]
    fig = plots.predictions_grid(images, labels, probs, ["a", "b", "c", "d"], "t", columns=3,
                                 save_to=tmp_path / "grid.png")
    bars = [ax for ax in fig.axes if ax.patches]
    assert len(fig.axes) == 2 * 2 * 3  # 2 rows of 3 image-and-bars pairs, the last two slots blank
    top_down = [[t.get_text() for t in sorted(ax.get_yticklabels(), key=lambda t: -t.get_position()[1])] for ax in bars]
    assert top_down == labels  # best first, at the top
    assert [[round(p.get_width()) for p in ax.patches] for ax in bars] == [[round(v * 100) for v in p] for p in probs]
    assert (tmp_path / "grid.png").stat().st_size > 1000
