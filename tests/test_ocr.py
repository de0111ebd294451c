"""Lesson 06's offline OCR: the character error rate, the rendered images with known text, and the
engine itself, run with every network connection refused (its models must come from its own package)."""
from __future__ import annotations

import socket
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from imgrec_helpers import ocr


# --------------------------------------------------------------------------------------------
# Character error rate
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("a, b, distance", [
    ("kitten", "sitting", 3), ("", "abc", 3), ("abc", "", 3), ("same", "same", 0),
    ("flaw", "lawn", 2), ("Route 66", "Route66", 1), ("ab", "ba", 2),
])
def test_edit_distance(a, b, distance):
    assert ocr.edit_distance(a, b) == distance == ocr.edit_distance(b, a)


def test_normalise_text():
    assert ocr.normalise_text("  Fire \n EXIT\t") == "fire exit"
    assert ocr.normalise_text("\ufb01le") == "file"          # the "fi" ligature: NFKC
    assert ocr.normalise_text("\uff2f\uff30\uff25\uff2e") == "open"  # full-width letters
    assert ocr.normalise_text("Fire EXIT", case=True) == "Fire EXIT"


def test_character_error_rate_is_summed_over_images():
    refs = ["STOP", "Bus Stop"]
    assert ocr.character_error_rate(refs, ["stop", "bus  stop"]) == 0.0      # case and spaces normalised
    assert ocr.character_error_rate(refs, ["STOP", "Bus Stop"], case=True) == 0.0
    assert ocr.character_error_rate(refs, ["stop", "bus stop"], case=True) == pytest.approx(6 / 12)  # 4 + 2 letters
    assert ocr.character_error_rate(refs, ["", ""]) == 1.0                  # nothing read: every character missed
    assert ocr.character_error_rate(refs, ["STOP", "Bus Sto"]) == pytest.approx(1 / 12)  # 12 characters in all
    assert ocr.character_error_rate(["ab"], ["ab and more"]) > 1.0          # invented text can pass 1


def test_character_error_rate_refuses_bad_input():
    with pytest.raises(ocr.OCRError, match="2 reference texts but 1 OCR results"):
        ocr.character_error_rate(["a", "b"], ["a"])
    with pytest.raises(ocr.OCRError, match="empty"):
        ocr.character_error_rate([" "], ["x"])


def test_error_rate_by_groups():
    samples = [SimpleNamespace(text=t, box=b) for t, b in [("abcd", True), ("wxyz", False), ("ab", False)]]
    groups = ocr.error_rate_by(samples, ["abcd", "wxy", ""], "box")
    assert groups == {False: (pytest.approx(3 / 6), 2), True: (0.0, 1)}


def test_reading_order_top_to_bottom_then_left_to_right():
    box = lambda x, y: [[x, y], [x + 40, y], [x + 40, y + 20], [x, y + 20]]
    result = SimpleNamespace(txts=("world", "second line", "hello"), boxes=[box(60, 12), box(0, 60), box(0, 10)])
    assert ocr.text_in_reading_order(result) == "hello world second line"
    assert ocr.text_in_reading_order(SimpleNamespace(txts=None, boxes=None)) == ""


# --------------------------------------------------------------------------------------------
# Rendered images with known text
# --------------------------------------------------------------------------------------------


@pytest.fixture
def plain_photos(tmp_path) -> list[Path]:
    """Two flat photos made here: any mark on a rendered image is the drawn text."""
    paths = []
    for name, colour in (("grey.png", (128, 128, 128)), ("green.jpg", (40, 160, 60))):
        path = tmp_path / name
        Image.new("RGB", (400, 300), colour).save(path)
        paths.append(path)
    return paths


def test_rendering_is_seeded_and_varied(plain_photos):
    a = ocr.render_text_images(plain_photos, 24, seed=7)
    b = ocr.render_text_images(plain_photos, 24, seed=7)
    c = ocr.render_text_images(plain_photos, 24, seed=8)
    assert len(a) == 24
    assert all(np.array_equal(x.image, y.image) and x.text == y.text for x, y in zip(a, b))
    assert [x.text for x in a] != [x.text for x in c]
    for s in a:
        assert s.image.dtype == np.uint8 and s.image.ndim == 3 and s.image.shape[2] == 3
        assert s.image.shape[0] >= 128 and s.image.shape[1] >= 320
        assert s.text in ocr.WORDS or all(w in " ".join(ocr.WORDS).split() for w in s.text.split())
        assert s.font in ocr.FONTS and s.colour in ocr.TEXT_COLOURS and abs(s.angle) <= 8.0
        assert len(np.unique(s.image.reshape(-1, 3), axis=0)) > 2  # something was drawn on the flat photo
        assert 0.0 <= s.contrast <= 1.0
    assert {s.photo for s in a} == {"grey.png", "green.jpg"}
    assert {s.box for s in a} == {True, False} and len({s.font for s in a}) > 1 and len({s.size for s in a}) > 1


def test_rendering_needs_photos():
    with pytest.raises(ocr.OCRError, match="at least one photo"):
        ocr.render_text_images([], 5, seed=0)


def test_fonts_ship_with_matplotlib():
    for name in ocr.FONTS:
        assert ocr.font_file(name).is_file()
    with pytest.raises(ocr.OCRError, match="unknown font"):
        ocr.font_file("Comic Sans")


def test_known_text_first():
    names = ["a.jpg", "kodak_kodim10.jpg", "b.jpg", "wikiphotos_021_nasa_shuttle_ferry.jpg"]
    chosen = ocr.known_text_first([Path(n) for n in names], 3)
    assert [p.name for p in chosen] == ["wikiphotos_021_nasa_shuttle_ferry.jpg", "kodak_kodim10.jpg", "a.jpg"]
    assert len(ocr.known_text_first([Path(n) for n in names])) == 4
    assert set(ocr.PHOTO_TEXT) <= ocr.PHOTOS_WITH_TEXT


# --------------------------------------------------------------------------------------------
# The engine, offline
# --------------------------------------------------------------------------------------------


def test_the_models_ship_inside_the_package():
    import rapidocr

    models = ocr.packaged_models()
    package = Path(rapidocr.__file__).resolve().parent
    assert set(models) == {"det", "cls", "rec"}
    for path in models.values():
        assert path.is_file() and path.suffix == ".onnx" and package in path.parents and path.stat().st_size > 100_000
    params = ocr.engine_params(models)
    assert params["Det.model_path"] == str(models["det"]) and params["Rec.model_path"] == str(models["rec"])
    assert params["EngineConfig.onnxruntime.intra_op_num_threads"] == 1
    assert ocr.engine_name(models).startswith("RapidOCR ")


def test_missing_models_say_what_to_install(tmp_path, monkeypatch):
    import rapidocr

    monkeypatch.setattr(rapidocr, "__file__", str(tmp_path / "rapidocr" / "__init__.py"))
    with pytest.raises(ocr.OCRError, match=r"expected one packaged det model.*pip install 'rapidocr"):
        ocr.packaged_models()


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("tests/test_ocr.py: network refused")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_the_engine_reads_rendered_text_offline(plain_photos, no_network):
    from rapidocr import RapidOCR

    engine = RapidOCR(params=ocr.engine_params())
    samples = [s for s in ocr.render_text_images(plain_photos, 16, seed=3) if s.box][:6]
    assert len(samples) >= 4
    read = [ocr.text_in_reading_order(engine(s.image)) for s in samples]
    cer = ocr.character_error_rate([s.text for s in samples], read)
    assert cer < 0.2, list(zip([s.text for s in samples], read))
