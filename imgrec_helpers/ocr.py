"""Lesson 06's offline OCR: RapidOCR runs PaddleOCR's ONNX models shipped in its wheel (nothing downloads), called
as ``RapidOCR(params=ocr.engine_params())``, and its character error rate on known words drawn onto the photos."""
from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .data import load_image
from .errors import ImgrecError
from .plots import SaveTo, image_grid

# Detection scales images to at most this longer side (RapidOCR's default enlarges every image to 736 pixels on
# its shorter side: about 3x the time on the course's 640-pixel photos, for nothing).
MAX_SIDE = 640
# Fonts of the rendered text: TrueType files that ship inside matplotlib.
FONTS = {"DejaVu Sans": "DejaVuSans.ttf", "DejaVu Sans Bold": "DejaVuSans-Bold.ttf", "DejaVu Serif": "DejaVuSerif.ttf",
         "DejaVu Sans Mono": "DejaVuSansMono.ttf"}
TEXT_COLOURS = {"white": (255, 255, 255), "black": (20, 20, 20), "yellow": (250, 215, 0), "red": (210, 30, 30),
                "blue": (30, 70, 200)}
# The words the rendered images draw from: lower case, capitalised, capitals and digits.
WORDS: tuple[str, ...] = (
    "coffee", "harbour", "station", "bakery", "museum", "garden", "river", "market", "library", "bridge",
    "airport", "ticket", "window", "orange", "yellow", "summer", "winter", "morning", "evening", "number",
    "Open", "Closed", "Exit", "Entrance", "Platform", "Street", "Avenue", "Hotel", "Pharmacy", "Parking",
    "Welcome", "Sale", "Menu", "Office", "Gate", "Taxi", "Bus Stop", "Main Road", "Fresh Bread", "No Entry",
    "STOP", "PUSH", "PULL", "DANGER", "NORTH", "SOUTH", "EXPRESS", "POLICE", "FIRE EXIT", "ONE WAY",
    "Route 66", "Gate B12", "Room 214", "2026", "42", "1984", "Bus 7", "Exit 3", "Line 5", "Track 9")
# Text plainly legible in some sample photos, transcribed by eye (fuselage, name tag, sail numbers).
PHOTO_TEXT = {"wikiphotos_021_nasa_shuttle_ferry.jpg": ("United States",),
              "matplotlib_grace_hopper.jpg": ("COMO HOPPER",), "kodak_kodim10.jpg": ("63455", "20042")}
# Sample photos that show legible text of their own: known text is rendered on the others only.
PHOTOS_WITH_TEXT = frozenset({*PHOTO_TEXT, "kodak_kodim06.jpg"})


class OCRError(ImgrecError):
    """The OCR engine or its packaged models are missing or unusable, or bad input (lesson 06)."""


def packaged_models() -> dict[str, Path]:
    """``{"det", "cls", "rec"}``: the ONNX files shipped inside the installed ``rapidocr``, or an
    :class:`OCRError` saying what to install (lesson 06)."""
    try:
        import rapidocr  # here, so that its absence is a one-line error
    except ImportError:
        raise OCRError("the offline OCR engine is not installed; run: pip install -e . (it brings rapidocr "
                       "and onnxruntime)") from None
    folder = Path(rapidocr.__file__).resolve().parent / "models"
    found = {task: sorted(folder.glob(f"*_{task}_*.onnx")) if folder.is_dir() else [] for task in ("det", "cls", "rec")}
    for task, files in found.items():
        if len(files) != 1:
            raise OCRError(f"{folder}: expected one packaged {task} model (*_{task}_*.onnx), found {len(files)}; "
                           "reinstall a rapidocr release whose wheel ships its models: pip install 'rapidocr>=3.10,<4'")
    return {task: files[0] for task, files in found.items()}


def engine_name(models: Mapping[str, Path] | None = None) -> str:
    """The engine as outputs name it, e.g. ``"RapidOCR 3.10.0 (PP-OCRv6_rec_small)"`` (lesson 06)."""
    return f"RapidOCR {version('rapidocr')} ({Path((models or packaged_models())['rec']).stem})"


def engine_params(models: Mapping[str, Path] | None = None) -> dict[str, Any]:
    """``RapidOCR(params=...)`` (lesson 06): the packaged models, no log, detection at most :data:`MAX_SIDE`, one
    ONNX Runtime thread per model (one read 2.5-5x faster than all cores on the course's busy 2-core machine)."""
    models = models or packaged_models()
    return {"Global.log_level": "critical", "Det.limit_type": "max", "Det.limit_side_len": MAX_SIDE,
            **{f"{task.title()}.model_path": str(models[task]) for task in ("det", "cls", "rec")},
            "EngineConfig.onnxruntime.intra_op_num_threads": 1}


def text_in_reading_order(result: Any) -> str:
    """The lines ``engine(image)`` found, top to bottom then left to right, joined by spaces ("" if none)."""
    texts = list(getattr(result, "txts", None) or ())
    boxes = getattr(result, "boxes", None)
    if not texts or boxes is None or len(boxes) != len(texts):
        return " ".join(texts)
    boxes = [np.asarray(b) for b in boxes]
    line = max(1.0, float(np.median([np.ptp(b[:, 1]) for b in boxes])) / 2)  # tops closer than this: one row
    order = sorted(range(len(texts)), key=lambda i: (round(float(boxes[i][:, 1].min()) / line), boxes[i][:, 0].min()))
    return " ".join(texts[i] for i in order)


def normalise_text(text: str, *, case: bool = False) -> str:
    """The text as the error rate compares it (lesson 06): NFKC, white space runs to one space, trimmed, lower case
    unless ``case``."""
    text = " ".join(unicodedata.normalize("NFKC", str(text)).split())
    return text if case else text.casefold()


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (lesson 06's error rate): fewest single-character insertions, deletions, substitutions."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def character_error_rate(references: Sequence[str], hypotheses: Sequence[str], *, case: bool = False) -> float:
    """Summed edit distances between written and read texts over the written characters, both normalised
    (lesson 06): 0 is perfect, a missed word costs its length, invented text can pass 1."""
    if len(references) != len(hypotheses):
        raise OCRError(f"{len(references)} reference texts but {len(hypotheses)} OCR results; give one each")
    refs = [normalise_text(r, case=case) for r in references]
    total = sum(len(r) for r in refs)
    if total == 0:
        raise OCRError("the reference texts are empty; the error rate needs known text")
    return sum(edit_distance(r, normalise_text(h, case=case)) for r, h in zip(refs, hypotheses)) / total


@dataclass(frozen=True)
class TextImage:
    """One rendered image with known text, from :func:`render_text_images` (lesson 06)."""
    image: np.ndarray      # (H, W, 3) uint8
    text: str              # what was written
    photo: str             # file name of the photo the crop came from
    font: str
    size: int              # font size in pixels
    colour: str
    angle: float           # rotation in degrees, counter-clockwise
    box: bool              # on a semi-transparent contrasting box (True) or straight on the photo
    contrast: float        # |luminance of the text colour - mean luminance behind the text| / 255


def font_file(name: str) -> Path:
    """The TrueType file of one of :data:`FONTS`, inside matplotlib's package data (lesson 06)."""
    if name not in FONTS:
        raise OCRError(f"unknown font {name!r}; use one of: {', '.join(FONTS)}")
    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / FONTS[name]
    if not path.is_file():
        raise OCRError(f"{path}: font file missing from matplotlib; reinstall matplotlib")
    return path


def _luminance(rgb: Any) -> np.ndarray:
    return np.asarray(rgb, dtype=np.float64) @ np.array([0.299, 0.587, 0.114])


def render_text_images(photos: Sequence[str | os.PathLike], count: int, seed: int, *,
                       words: Sequence[str] = WORDS, fonts: Sequence[str] = tuple(FONTS),
                       sizes: Sequence[int] = (18, 24, 32, 44), colours: Sequence[str] = tuple(TEXT_COLOURS),
                       max_angle: float = 8.0, box_share: float = 0.5,
                       crop: tuple[int, int] = (320, 128)) -> list[TextImage]:
    """``count`` images, seeded: one or two ``words`` in a random font, size, colour and rotation (+-``max_angle``)
    on a random crop (at least ``crop``) of each photo in turn, a share ``box_share`` on a semi-transparent box of
    contrasting shade, the others straight on the photo (lesson 06)."""
    if count < 1 or not photos:
        raise OCRError("render_text_images needs at least one photo and count >= 1")
    rng = np.random.default_rng(seed)
    loaded = [(Path(p).name, Image.fromarray(load_image(p))) for p in photos]
    order = rng.permutation(len(loaded))
    fonts_loaded: dict[tuple[str, int], Any] = {}  # each (font, size) is loaded once
    out: list[TextImage] = []
    for i in range(count):
        name, photo = loaded[int(order[i % len(loaded)])]
        n_words = 1 if rng.random() < 0.6 else 2
        text = " ".join(str(w) for w in rng.choice(np.asarray(words, dtype=object), size=n_words, replace=False))
        font_name = str(rng.choice(np.asarray(fonts, dtype=object)))
        size = int(rng.choice(np.asarray(sizes)))
        colour = str(rng.choice(np.asarray(colours, dtype=object)))
        angle = round(float(rng.uniform(-max_angle, max_angle)), 1)
        box = bool(rng.random() < box_share)

        if (font_name, size) not in fonts_loaded:
            fonts_loaded[font_name, size] = ImageFont.truetype(str(font_file(font_name)), size)
        font = fonts_loaded[font_name, size]
        left, top, right, bottom = font.getbbox(text)
        pad = max(4, size // 4)
        layer = Image.new("RGBA", (right - left + 2 * pad, bottom - top + 2 * pad), (0, 0, 0, 0))
        draw = ImageDraw.Draw(layer)
        rgb = TEXT_COLOURS[colour]
        if box:
            shade = (0, 0, 0, 170) if _luminance(rgb) > 128 else (255, 255, 255, 190)
            draw.rectangle((0, 0, layer.width - 1, layer.height - 1), fill=shade)
        draw.text((pad - left, pad - top), text, font=font, fill=(*rgb, 255))
        layer = layer.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)

        width, height = max(crop[0], layer.width + 24), max(crop[1], layer.height + 24)
        scale = max(width / photo.width, height / photo.height, 1.0)
        source = photo if scale == 1.0 else photo.resize((int(np.ceil(photo.width * scale)),
                                                          int(np.ceil(photo.height * scale))))
        x0 = int(rng.integers(0, source.width - width + 1))
        y0 = int(rng.integers(0, source.height - height + 1))
        canvas = source.crop((x0, y0, x0 + width, y0 + height)).convert("RGBA")
        px, py = ((int(rng.integers(8, room - 7)) if room > 16 else room // 2)
                  for room in (width - layer.width, height - layer.height))
        behind = np.asarray(canvas.convert("RGB"))[py:py + layer.height, px:px + layer.width]
        canvas.alpha_composite(layer, (px, py))
        ink = np.asarray(layer)[..., 3] > 128
        contrast = abs(float(_luminance(rgb)) - float(_luminance(behind[ink]).mean())) / 255 if ink.any() else 0.0
        out.append(TextImage(np.asarray(canvas.convert("RGB"), dtype=np.uint8), text, name, font_name, size,
                             colour, angle, box, round(contrast, 3)))
    return out


def error_rate_by(samples: Sequence[TextImage], hypotheses: Sequence[str],
                  attribute: str) -> dict[Any, tuple[float, int]]:
    """Character error rate per value of one :class:`TextImage` attribute (``"font"``, ``"box"``, ...),
    as ``{value: (rate, images)}`` sorted by value (lesson 06)."""
    groups: dict[Any, list[int]] = {}
    for i, sample in enumerate(samples):
        groups.setdefault(getattr(sample, attribute), []).append(i)
    return {value: (character_error_rate([samples[i].text for i in idx], [hypotheses[i] for i in idx]), len(idx))
            for value, idx in sorted(groups.items(), key=lambda kv: str(kv[0]))}


def known_text_first(paths: Sequence[str | os.PathLike], limit: int | None = None) -> list[Path]:
    """``paths`` with those of :data:`PHOTO_TEXT` first, then the rest by name, cut to ``limit``: lesson 06 sends
    these photos through every approach, and a short profile still includes the ones that show text."""
    paths = [Path(p) for p in paths]
    known = [p for name in PHOTO_TEXT for p in paths if p.name == name]
    return (known + sorted((p for p in paths if p not in known), key=lambda p: p.name))[:limit]


def show_text_images(samples: Sequence[TextImage], titles: Sequence[str], columns: int = 4, save_to: SaveTo = None):
    """Rendered images in a grid sized to their wide shape, each with its title (lesson 06)."""
    aspect = float(np.median([s.image.shape[0] / s.image.shape[1] for s in samples])) if samples else 0.4
    return image_grid([s.image for s in samples], titles, columns, size=2.8, save_to=save_to, aspect=aspect,
                      fontsize=8)
