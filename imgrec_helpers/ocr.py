"""Offline text recognition (OCR) and how well it reads: lesson 06.

**The engine.** RapidOCR (PyPI package ``rapidocr``) runs PaddleOCR's text detector, orientation
classifier and recogniser as ONNX models on ONNX Runtime, on the CPU. Its wheel ships those three model
files inside the package, so nothing is downloaded: :func:`packaged_models` finds them and
:func:`engine_params` points RapidOCR at exactly those files (RapidOCR would otherwise look up its
download table). Lesson 06 creates the engine itself, ``RapidOCR(params=ocr.engine_params())``, and calls
it on images: ``result = engine(image)`` gives ``result.txts`` (one string per text line),
``result.scores`` and ``result.boxes`` (four corners per line).

**The measurement.** A photo rarely comes with the text it shows typed out, so lesson 06 writes known
words onto crops of the course's real photos (:func:`render_text_images`: several fonts, sizes, colours and
small rotations; half of them on a semi-transparent contrasting box, half straight on the photo) and
compares what the engine reads with what was written: the **character error rate**
(:func:`character_error_rate`), the edit distance between the two texts divided by the length of the
written text, after :func:`normalise_text`.
"""
from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .errors import ImgrecError

OCR_PACKAGE = "rapidocr"
"""The PyPI package (and import name) of the offline OCR engine (lesson 06)."""

MAX_SIDE = 640
"""Detection works on images scaled so their longer side is at most this many pixels (RapidOCR's
default instead enlarges every image to at least 736 pixels on its shorter side, which costs about 3x the
time on the course's 640-pixel photos and gains nothing on them)."""

FONTS: dict[str, str] = {
    "DejaVu Sans": "DejaVuSans.ttf",
    "DejaVu Sans Bold": "DejaVuSans-Bold.ttf",
    "DejaVu Serif": "DejaVuSerif.ttf",
    "DejaVu Sans Mono": "DejaVuSansMono.ttf",
}
"""Fonts the rendered text uses: TrueType files that ship inside matplotlib (lesson 06)."""

TEXT_COLOURS: dict[str, tuple[int, int, int]] = {
    "white": (255, 255, 255),
    "black": (20, 20, 20),
    "yellow": (250, 215, 0),
    "red": (210, 30, 30),
    "blue": (30, 70, 200),
}
"""Text colours of the rendered images (lesson 06)."""

WORDS: tuple[str, ...] = (
    "coffee", "harbour", "station", "bakery", "museum", "garden", "river", "market", "library", "bridge",
    "airport", "ticket", "window", "orange", "yellow", "summer", "winter", "morning", "evening", "number",
    "Open", "Closed", "Exit", "Entrance", "Platform", "Street", "Avenue", "Hotel", "Pharmacy", "Parking",
    "Welcome", "Sale", "Menu", "Office", "Gate", "Taxi", "Bus Stop", "Main Road", "Fresh Bread", "No Entry",
    "STOP", "PUSH", "PULL", "DANGER", "NORTH", "SOUTH", "EXPRESS", "POLICE", "FIRE EXIT", "ONE WAY",
    "Route 66", "Gate B12", "Room 214", "2026", "42", "1984", "Bus 7", "Exit 3", "Line 5", "Track 9",
)
"""The fixed word list the rendered images draw from: lower case, capitalised, capitals and digits (lesson 06)."""


class OCRError(ImgrecError):
    """The OCR engine or its packaged models are missing or unusable (lesson 06)."""


# --------------------------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------------------------


def packaged_models() -> dict[str, Path]:
    """The engine's three ONNX model files shipped inside the installed ``rapidocr`` package (lesson 06).

    ``{"det": ..., "cls": ..., "rec": ...}``: text detection, orientation classification, recognition.
    Raises :class:`OCRError` saying what to install when the package or a file is missing (a RapidOCR
    release whose wheel does not ship its models would otherwise try to download them).
    """
    try:
        import rapidocr
    except ImportError:
        raise OCRError("the offline OCR engine is not installed; run: pip install -e . (it brings rapidocr "
                       "and onnxruntime)") from None
    folder = Path(rapidocr.__file__).resolve().parent / "models"
    found: dict[str, Path] = {}
    for task in ("det", "cls", "rec"):
        files = sorted(folder.glob(f"*_{task}_*.onnx")) if folder.is_dir() else []
        if len(files) != 1:
            raise OCRError(f"{folder}: expected one packaged {task} model (*_{task}_*.onnx), found "
                           f"{len(files)}; reinstall a rapidocr release whose wheel ships its models: "
                           "pip install 'rapidocr>=3.10,<4'")
        found[task] = files[0]
    return found


def engine_name(models: Mapping[str, Path] | None = None) -> str:
    """How the engine is named in outputs and records, e.g. ``"RapidOCR 3.10.0 (PP-OCRv6_rec_small)"``."""
    from importlib.metadata import version

    models = models or packaged_models()
    return f"RapidOCR {version(OCR_PACKAGE)} ({Path(models['rec']).stem})"


def engine_params(models: Mapping[str, Path] | None = None, *, max_side: int = MAX_SIDE,
                  threads: int | None = 1) -> dict[str, Any]:
    """Settings for ``RapidOCR(params=...)``: the packaged model files, quiet logging, detection size (lesson 06).

    ``threads`` is ONNX Runtime's number of threads per model; ``None`` lets it use every core. One thread
    is the default: on the course's busy 2-core machine it read the small rendered images 2.5-5x faster
    than all cores did (the models are small; the threads mostly wait for each other there).
    """
    models = models or packaged_models()
    params: dict[str, Any] = {
        "Global.log_level": "critical",
        "Det.model_path": str(models["det"]),
        "Cls.model_path": str(models["cls"]),
        "Rec.model_path": str(models["rec"]),
        "Det.limit_type": "max",
        "Det.limit_side_len": int(max_side),
    }
    if threads is not None:
        params["EngineConfig.onnxruntime.intra_op_num_threads"] = int(threads)
    return params


def text_in_reading_order(result: Any) -> str:
    """The lines an engine call found, top to bottom then left to right, joined by spaces (lesson 06).

    ``result`` is what ``engine(image)`` returned; no text found gives ``""``.
    """
    texts = list(getattr(result, "txts", None) or ())
    boxes = getattr(result, "boxes", None)
    if not texts:
        return ""
    if boxes is None or len(boxes) != len(texts):
        return " ".join(texts)
    tops = [(float(np.min(np.asarray(b)[:, 1])), float(np.min(np.asarray(b)[:, 0]))) for b in boxes]
    heights = [float(np.ptp(np.asarray(b)[:, 1])) for b in boxes]
    line = max(1.0, float(np.median(heights)) / 2)  # lines whose tops differ by less than this are one row
    order = sorted(range(len(texts)), key=lambda i: (round(tops[i][0] / line), tops[i][1]))
    return " ".join(texts[i] for i in order)


# --------------------------------------------------------------------------------------------
# Character error rate
# --------------------------------------------------------------------------------------------


def normalise_text(text: str, *, case: bool = False) -> str:
    """The text as the error rate compares it (lesson 06).

    Unicode NFKC (so full-width or ligature forms count as their plain letters), every run of white space
    to one space, no space at either end, and lower case unless ``case=True``.
    """
    text = " ".join(unicodedata.normalize("NFKC", str(text)).split())
    return text if case else text.casefold()


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: the fewest single-character insertions, deletions and substitutions
    that turn ``a`` into ``b`` (lesson 06)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def character_error_rate(references: Sequence[str], hypotheses: Sequence[str], *, case: bool = False) -> float:
    """Character error rate over a set of images (lesson 06).

    The sum of the edit distances between each written text (reference) and what the engine read
    (hypothesis), divided by the total number of reference characters, both after :func:`normalise_text`.
    So 0 is perfect, a missed word costs its length, and extra text the engine invents can push it above 1.
    """
    if len(references) != len(hypotheses):
        raise OCRError(f"{len(references)} reference texts but {len(hypotheses)} OCR results; give one each")
    refs = [normalise_text(r, case=case) for r in references]
    total = sum(len(r) for r in refs)
    if total == 0:
        raise OCRError("the reference texts are empty; the error rate needs known text")
    errors = sum(edit_distance(r, normalise_text(h, case=case)) for r, h in zip(refs, hypotheses))
    return errors / total


# --------------------------------------------------------------------------------------------
# Images with known text
# --------------------------------------------------------------------------------------------


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
    import matplotlib

    if name not in FONTS:
        raise OCRError(f"unknown font {name!r}; use one of: {', '.join(FONTS)}")
    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / FONTS[name]
    if not path.is_file():
        raise OCRError(f"{path}: font file missing from matplotlib; reinstall matplotlib")
    return path


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(rgb, dtype=np.float64) @ np.array([0.299, 0.587, 0.114])


def render_text_images(photos: Sequence[str | os.PathLike], count: int, seed: int, *,
                       words: Sequence[str] = WORDS, fonts: Sequence[str] = tuple(FONTS),
                       sizes: Sequence[int] = (18, 24, 32, 44), colours: Sequence[str] = tuple(TEXT_COLOURS),
                       max_angle: float = 8.0, box_share: float = 0.5,
                       crop: tuple[int, int] = (320, 128)) -> list[TextImage]:
    """``count`` images with known text: one or two words from ``words`` drawn onto crops of ``photos`` (lesson 06).

    Each image takes the next photo (every photo is used in turn), a random crop of at least ``crop``
    (width, height) pixels, a random font, size, colour and rotation (uniform in +-``max_angle`` degrees),
    and, for a share ``box_share`` of the images, a semi-transparent box behind the text in a contrasting
    shade (dark behind light text, light behind dark text), like a caption; the others have the text
    straight on the photo, however little it contrasts. The same ``seed`` gives the same images.
    """
    from PIL import Image, ImageDraw, ImageFont

    from .data import load_image

    if count < 1 or not photos:
        raise OCRError("render_text_images needs at least one photo and count >= 1")
    rng = np.random.default_rng(seed)
    loaded = [(Path(p).name, Image.fromarray(load_image(p))) for p in photos]
    order = rng.permutation(len(loaded))
    font_cache: dict[tuple[str, int], Any] = {}
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

        key = (font_name, size)
        if key not in font_cache:
            font_cache[key] = ImageFont.truetype(str(font_file(font_name)), size)
        font = font_cache[key]
        left, top, right, bottom = font.getbbox(text)
        pad = max(4, size // 4)
        layer = Image.new("RGBA", (right - left + 2 * pad, bottom - top + 2 * pad), (0, 0, 0, 0))
        draw = ImageDraw.Draw(layer)
        rgb = TEXT_COLOURS[colour]
        if box:
            shade = (0, 0, 0, 170) if _luminance(np.array(rgb)) > 128 else (255, 255, 255, 190)
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
        px = int(rng.integers(8, width - layer.width - 7)) if width - layer.width > 16 else (width - layer.width) // 2
        py = int(rng.integers(8, height - layer.height - 7)) if height - layer.height > 16 else (height - layer.height) // 2
        behind = np.asarray(canvas.convert("RGB"))[py:py + layer.height, px:px + layer.width]
        canvas.alpha_composite(layer, (px, py))
        ink = np.asarray(layer)[..., 3] > 128
        contrast = abs(float(_luminance(np.array(rgb))) - float(_luminance(behind[ink]).mean())) / 255 \
            if ink.any() else 0.0
        out.append(TextImage(np.asarray(canvas.convert("RGB"), dtype=np.uint8), text, name, font_name, size,
                             colour, angle, box, round(contrast, 3)))
    return out


def error_rate_by(samples: Sequence[TextImage], hypotheses: Sequence[str], attribute: str,
                  *, case: bool = False) -> dict[Any, tuple[float, int]]:
    """Character error rate per value of one :class:`TextImage` attribute (``"font"``, ``"box"``, ...),
    as ``{value: (rate, images)}`` sorted by value (lesson 06)."""
    groups: dict[Any, list[int]] = {}
    for i, sample in enumerate(samples):
        groups.setdefault(getattr(sample, attribute), []).append(i)
    return {value: (character_error_rate([samples[i].text for i in idx], [hypotheses[i] for i in idx], case=case),
                    len(idx))
            for value, idx in sorted(groups.items(), key=lambda kv: str(kv[0]))}


PHOTOS_WITH_TEXT: frozenset[str] = frozenset({
    "wikiphotos_021_nasa_shuttle_ferry.jpg", "matplotlib_grace_hopper.jpg", "kodak_kodim10.jpg",
    "kodak_kodim06.jpg",
})
"""The course's sample photos that show legible text of their own (a fuselage, a name tag, sail numbers, a
boat's name). Lesson 06 renders its known text on the *other* photos only, so that text
the engine rightly reads in the background does not count as an error."""

PHOTO_TEXT: dict[str, tuple[str, ...]] = {
    "wikiphotos_021_nasa_shuttle_ferry.jpg": ("United States",),
    "matplotlib_grace_hopper.jpg": ("COMO HOPPER",),
    "kodak_kodim10.jpg": ("63455", "20042"),
}
"""Text that is plainly legible in some of the course's own sample photos, transcribed by eye
(the shuttle's fuselage, Grace Hopper's name tag, two sail numbers). Lesson 06 checks whether the engine
finds each one; these photos carry other, smaller text too."""


def known_text_first(paths: Sequence[str | os.PathLike], limit: int | None = None) -> list[Path]:
    """``paths`` with the photos of :data:`PHOTO_TEXT` first (in that order), then the rest by name,
    cut to ``limit`` (``None``: all). Lesson 06 sends the same photos through every approach, and a
    short profile should still include the photos that show text."""
    paths = [Path(p) for p in paths]
    known = [p for name in PHOTO_TEXT for p in paths if p.name == name]
    rest = sorted((p for p in paths if p not in known), key=lambda p: p.name)
    chosen = known + rest
    return chosen if limit is None else chosen[:limit]


def show_text_images(samples: Sequence[TextImage], titles: Sequence[str], columns: int = 4,
                     save_to: str | os.PathLike | None = None):
    """Rendered images in a grid sized to their wide shape, each with its title (lesson 06)."""
    import matplotlib.pyplot as plt

    from .plots import save_figure

    n = len(samples)
    columns = max(1, min(columns, n))
    rows = max(1, -(-n // columns))
    aspect = float(np.median([s.image.shape[0] / s.image.shape[1] for s in samples])) if n else 0.4
    width = 2.8
    fig, axes = plt.subplots(rows, columns, figsize=(columns * width, rows * (width * aspect + 0.4)), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i < n:
            ax.imshow(samples[i].image)
            ax.set_title(titles[i], fontsize=8)
    fig.tight_layout()
    save_figure(fig, save_to)
    return fig
