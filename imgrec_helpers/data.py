"""Datasets and images: where they live, how they are loaded, how they are prepared.

The data home (``IMGREC_DATA_HOME``, default: the repository's ``data/`` folder) holds datasets and
pretrained weights. Nothing is downloaded when the data home already has it; otherwise the official
files are downloaded once, checked against their published hash, and kept there.

Used by lesson 01 (CIFAR-10 exploration), 02 (training data, photos to predict), 04 (photo folders)
and ``imgrec predict``.
"""
from __future__ import annotations

import contextlib
import hashlib
import numbers
import os
import pickle
import re
import tarfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import DataError, FileSystemError, ImageError, describe_os_error
from .persistence import atomic_dir, atomic_path, existing_file, stat_existing
from .sources import (CIFAR10, FETCH_COMMAND, cache_dir, check_data_home, fetch_need, file_digest,
                      folder_lock)

CLASS_NAMES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
"""CIFAR-10's ten mutually exclusive classes, in label order 0-9 (lessons 01, 02, 05)."""

CLASS_NOTES: dict[str, str] = {
    "automobile": "sedans, SUVs and the like; no pickup trucks",
    "truck": "big trucks only; no pickup trucks",
}
"""Class definitions worth knowing: the two vehicle classes exclude pickups (lesson 01)."""

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"  # its size and SHA-256: registry.tsv
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_FOLDER = "cifar-10-batches-py"
_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST_BATCH = "test_batch"

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".avif",
                    ".heic", ".heif", ".ppm", ".pgm", ".pbm", ".pnm")
"""The names a folder's image files end in (any case): photo formats :func:`load_image` reads."""
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1", b"heif"}


# --------------------------------------------------------------------------------------------
# CIFAR-10
# --------------------------------------------------------------------------------------------


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles CIFAR batches, allowing only the NumPy types they contain (no arbitrary code)."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):  # noqa: D401 - pickle API
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"unexpected object {module}.{name}")


def _read_batch(path: Path, where: str | None = None, fix: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 python batch into (N, 32, 32, 3) uint8 images and (N,) uint8 labels.

    Checks what the official batches hold: a dict with uint8 ``data`` of shape (N, 3072), N >= 1,
    and N integer ``labels`` in 0-9; anything else is refused with one line saying what is wrong
    (no silent cast of float pixels). ``where`` names the batch in messages (e.g. the archive and
    member when it was just extracted to a temporary folder) and ``fix`` says what to do.
    """
    where = where or str(path)
    fix = fix or (f"delete the folder {path.parent} and run again to re-extract it from the archive, "
                  f"or replace it with the official {CIFAR10_FOLDER}/")
    if not path.is_file():
        raise DataError(f"{where}: CIFAR-10 batch is missing; {fix}")
    try:
        with open(path, "rb") as fh:
            batch = _BatchUnpickler(fh, encoding="bytes").load()
    except OSError as exc:
        if exc.errno is not None:
            raise DataError(describe_os_error(exc, path, "read")) from None
        raise DataError(f"{where}: truncated or corrupt CIFAR-10 batch ({type(exc).__name__}); {fix}") from None
    except Exception as exc:  # unpickling raises many types for a damaged file
        raise DataError(f"{where}: truncated or corrupt CIFAR-10 batch ({type(exc).__name__}); {fix}") from None
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DataError(f"{where}: not a CIFAR-10 batch (no data and labels entries); {fix}")
    data, labels = batch[b"data"], batch[b"labels"]
    if not isinstance(data, np.ndarray):
        raise DataError(f"{where}: not a CIFAR-10 batch (data is a {type(data).__name__}, not an array); {fix}")
    if data.dtype != np.uint8:
        if data.dtype.kind in "iu" and data.size and data.min() >= 0 and data.max() <= 255:
            data = data.astype(np.uint8)  # the same 0-255 values in a wider integer type
        else:
            span = f", values {data.min()}..{data.max()}" if data.size and data.dtype.kind in "iuf" else ""
            raise DataError(f"{where}: pixels are {data.dtype}{span}, not uint8 0-255 as in CIFAR-10 batches "
                            f"(they are not converted silently); {fix}")
    if data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{where}: not a CIFAR-10 batch (data of shape {data.shape}, expected (N, 3072)); {fix}")
    if len(data) == 0:
        raise DataError(f"{where}: empty CIFAR-10 batch (0 images); {fix}")
    try:
        label_array = np.asarray(labels)
    except Exception:
        label_array = np.asarray([], dtype=object)
    if label_array.ndim != 1 or label_array.dtype.kind not in "iu":
        raise DataError(f"{where}: labels must be a list of integers 0-9, got {label_array.dtype} of shape "
                        f"{label_array.shape}; {fix}")
    if len(label_array) != len(data):
        raise DataError(f"{where}: {len(data)} images but {len(label_array)} labels; {fix}")
    bad = np.flatnonzero((label_array < 0) | (label_array > 9))
    if bad.size:
        raise DataError(f"{where}: {bad.size} label(s) outside 0-9 (e.g. {int(label_array[bad[0]])} for image "
                        f"{int(bad[0])}); CIFAR-10 has classes 0-9 only; {fix}")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), label_array.astype(np.uint8)


def _find_archive(home: Path) -> Path | None:
    """The official archive, or the same tar under any compression, in the data home."""
    official = home / CIFAR10_ARCHIVE
    if official.is_file():
        return official
    others = sorted(home.glob("cifar-10-python.tar*"))
    return others[0] if others else None


def _extract_archive(archive: Path, target: Path) -> Path:
    """Extract the batches folder of ``archive`` into ``target`` atomically (temp folder + rename).

    Reading and writing fail for different reasons and call for different actions: a damaged
    archive is to be replaced; a cache that cannot be written (disk full, read-only, a file in
    the way) is not the archive's fault, and the message says so.
    """
    import lzma
    import zlib

    corrupt = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, ValueError)
    replace = f"delete it and download {CIFAR10_URL} again, or place a good copy there"

    def read_failed(exc: BaseException) -> DataError:
        if isinstance(exc, OSError) and exc.errno is not None:
            return DataError(describe_os_error(exc, archive, "read"))
        return DataError(f"{archive}: truncated or corrupt archive ({type(exc).__name__}: {exc}); {replace}")

    def write_failed(detail: str) -> DataError:
        return DataError(f"CIFAR-10 cannot be extracted into the cache: {detail}; or set IMGREC_CACHE_DIR to a "
                         f"writable folder with 200 MB free (the archive {archive.name} itself is fine)")

    def wanted(member: tarfile.TarInfo) -> bool:
        return member.isfile() and member.name.startswith(f"{CIFAR10_FOLDER}/") and ".." not in member.name

    try:
        tar = tarfile.open(archive, "r|*")  # one streaming pass: a compressed archive is decompressed once
    except (OSError, *corrupt) as exc:
        raise read_failed(exc) from None
    with tar:
        try:
            with atomic_dir(target) as tmp:
                names = set()
                while True:
                    try:
                        member = tar.next()
                        if member is None:
                            break
                        if not wanted(member):
                            continue
                        src = tar.extractfile(member)
                        assert src is not None
                        payload = src.read()
                    except (OSError, *corrupt) as exc:
                        raise read_failed(exc) from None
                    try:
                        (tmp / Path(member.name).name).write_bytes(payload)
                    except OSError as exc:
                        raise write_failed(describe_os_error(exc, target.parent, "write to")) from None
                    names.add(Path(member.name).name)
                missing = [n for n in (*_TRAIN_BATCHES, _TEST_BATCH) if n not in names]
                if missing:
                    raise DataError(f"{archive}: not a CIFAR-10 python archive (missing {', '.join(missing)}); "
                                    f"replace it with the official {CIFAR10_ARCHIVE}")
                for name in (*_TRAIN_BATCHES, _TEST_BATCH):  # validate before the folder goes into place
                    _read_batch(tmp / name, where=f"{archive}, member {CIFAR10_FOLDER}/{name}",
                                fix=f"this is not the official CIFAR-10; replace {archive.name} with the official "
                                    f"{CIFAR10_ARCHIVE}")
        except FileSystemError as exc:  # creating or moving the cache folder
            raise write_failed(str(exc)) from None
    return target


def cifar10_folder(home: str | os.PathLike | None = None, *, download: bool = True) -> Path:
    """The extracted ``cifar-10-batches-py`` folder, extracting or fetching it if needed.

    Looks, in order, for: the extracted folder in the data home;
    the archive (``.tar.gz`` or any other compression) in the data home, extracted once into the
    cache (:func:`cache_dir`) by :func:`_extracted`; and finally fetches the official archive (or a
    mirror's registered copy) into the data home, hash-checked (:func:`imgrec_helpers.sources.fetch_need`).
    Used by :func:`load_cifar10`.
    """
    home_path = check_data_home(home)
    in_home = home_path / CIFAR10_FOLDER
    if in_home.is_dir():
        return in_home
    archive = _find_archive(home_path)
    if archive is None:
        if not download:
            raise DataError(f"CIFAR-10 not found: no {CIFAR10_FOLDER}/ or {CIFAR10_ARCHIVE} in {home_path}; "
                            f"run `{FETCH_COMMAND}` to fetch it ({CIFAR10_URL})")
        archive = fetch_need(CIFAR10, home_path)
    return _extracted(archive)


def _extracted(archive: Path) -> Path:
    """The cache folder extracted from ``archive``, extracting it the first time.

    The folder is named by the archive's content (SHA-256), so a data home copied anew, moved or
    touched reuses the extraction and the cache does not grow, while a replaced archive with other
    bytes gets its own folder. A small pointer file, named by the archive's path, size and time,
    skips the hashing (0.2 s) on later loads.
    """
    cache = cache_dir()
    try:
        stat = archive.stat()
    except OSError as exc:
        raise DataError(describe_os_error(exc, archive, "read")) from None
    quick = hashlib.sha1(f"{archive.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    pointer = cache / f"{CIFAR10_FOLDER}-{quick}.source"
    try:
        named = cache / pointer.read_text().strip()
        if named.parent == cache and named.name.startswith(f"{CIFAR10_FOLDER}-") and named.is_dir():
            return named
    except (OSError, ValueError):
        pass  # no pointer yet, or an unreadable one: hash the archive
    try:
        digest = file_digest(archive)
    except OSError as exc:
        raise DataError(describe_os_error(exc, archive, "read")) from None
    target = cache / f"{CIFAR10_FOLDER}-{digest[:16]}"
    if not target.is_dir():
        try:
            cache.mkdir(parents=True, exist_ok=True)
        except OSError:
            pass  # the extraction says what is wrong with the cache
        with folder_lock(cache):  # lessons or tests started together: one extracts, the others wait for it
            if not target.is_dir():
                _extract_archive(archive, target)
                _remove_old_scheme_extractions(cache)
    try:
        with atomic_path(pointer) as tmp:
            tmp.write_text(target.name)
    except FileSystemError:
        pass  # a read-only cache with the folder already in it: the next load hashes again
    return target


def _remove_old_scheme_extractions(cache: Path) -> None:
    """Delete the extractions that earlier versions of the course named by the archive's path and time
    (``cifar-10-batches-py-`` and 12 hex digits, 176 MB each, one more for every new copy or touch of the
    archive): this version never reads them. Anything else in the cache is left alone."""
    import shutil

    old = re.compile(rf"{re.escape(CIFAR10_FOLDER)}-[0-9a-f]{{12}}")
    with contextlib.suppress(OSError):
        for entry in os.scandir(cache):
            if old.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)


def load_cifar10(home: str | os.PathLike | None = None, *, download: bool = True
                 ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load CIFAR-10 exactly as ``keras.datasets.cifar10.load_data()`` returns it, from the data home.

    Returns ``(x_train, y_train), (x_test, y_test)``: uint8 images of shape (50000, 32, 32, 3) and
    (10000, 32, 32, 3), uint8 labels of shape (50000, 1) and (10000, 1). Used in lessons 01, 02, 04, 05.
    """
    folder = cifar10_folder(home, download=download)
    parts = [_read_batch(folder / name) for name in _TRAIN_BATCHES]
    x_train = np.concatenate([p[0] for p in parts])
    y_train = np.concatenate([p[1] for p in parts]).reshape(-1, 1)
    x_test, y_test = _read_batch(folder / _TEST_BATCH)
    return (x_train, y_train), (x_test, y_test.reshape(-1, 1))


def class_counts(labels: np.ndarray, num_classes: int = 10) -> np.ndarray:
    """How many images each class has (lesson 01's bar chart)."""
    return np.bincount(np.asarray(labels).reshape(-1).astype(np.int64), minlength=num_classes)


def channel_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of uint8 images, on the [0, 1] scale (lesson 01).

    Computed in float64 in chunks so the 50,000 training images need no 600 MB float copy.
    """
    images = np.asarray(images)
    total = np.zeros(3)
    total_sq = np.zeros(3)
    n = 0
    for start in range(0, len(images), 5000):
        chunk = images[start:start + 5000].astype(np.float64) / 255.0
        total += chunk.sum(axis=(0, 1, 2))
        total_sq += (chunk ** 2).sum(axis=(0, 1, 2))
        n += chunk.shape[0] * chunk.shape[1] * chunk.shape[2]
    mean = total / n
    return mean, np.sqrt(total_sq / n - mean ** 2)


def stratified_subset(labels: np.ndarray, size: int | None, seed: int) -> np.ndarray:
    """Indices of a class-balanced random subset of ``size`` items (all items when ``size`` is None).

    Lessons 02, 04 and 05 train on subsets in the quick and smoke profiles; the same seed always
    gives the same subset. A size that is not a whole number from 1 to ``len(labels)`` (a parameter
    such as ``TRAIN_IMAGES = -5`` or ``100_000``) is a one-line :class:`DataError`.
    """
    labels = np.asarray(labels).reshape(-1)
    if size is not None and (isinstance(size, bool) or not isinstance(size, numbers.Integral)
                             or not 1 <= size <= len(labels)):
        asked = f"{size:,}" if isinstance(size, numbers.Integral) and not isinstance(size, bool) else repr(size)
        raise DataError(f"{asked} images asked for, but there are {len(labels):,}: use a whole number from 1 to "
                        f"{len(labels):,}, or None for all of them")
    if size is None or size == len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in classes]
    quota = np.full(len(classes), size // len(classes))
    quota[: size % len(classes)] += 1
    chosen = np.concatenate([idx[:q] for idx, q in zip(per_class, quota)])
    return np.sort(chosen)


# --------------------------------------------------------------------------------------------
# Photos
# --------------------------------------------------------------------------------------------


MAX_IMAGE_SIZE = 16384
"""The largest side :func:`load_image` resizes to (a larger target is surely a mistake)."""


def check_image_file(path: str | os.PathLike) -> Path:
    """``path`` as a Path if it names an existing file; one-line :class:`ImageError` for a folder, a
    missing path, or a path the operating system refuses (no permission on a folder above it, a
    name too long, a link loop). Used by :func:`load_image`, and ``imgrec predict`` before it loads a
    model."""
    return existing_file(path, ImageError, "no such image file; check the path",
                         "pass image files (or use a folder loader)")


def image_size(size: int | Sequence[int] | None) -> tuple[int, int] | None:
    """``size`` as a (width, height) pair of positive integers (an int means a square); one-line
    :class:`ImageError` for 0, negative, fractional or absurd sizes (:func:`load_image`)."""
    if size is None:
        return None
    pair = (size, size) if isinstance(size, (int, np.integer)) else size
    try:
        ok = len(pair) == 2 and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in pair)
    except TypeError:
        ok = False
    if not ok or not all(1 <= v <= MAX_IMAGE_SIZE for v in pair):
        raise ImageError(f"image size must be a whole number of pixels from 1 to {MAX_IMAGE_SIZE}, or a "
                         f"(width, height) pair of them, got {size!r}; e.g. load_image(path, 224)")
    return int(pair[0]), int(pair[1])


def center_box(width: int, height: int, target: tuple[int, int]) -> tuple[int, int, int, int]:
    """The largest central box of a ``width`` x ``height`` image with the aspect ratio of ``target``
    (width, height), in whole pixels: always inside the image and at least 1 x 1 (:func:`load_image`)."""
    tw, th = target
    if width * th > height * tw:  # wider than the target: keep the full height
        ch = height
        cw = min(width, max(1, (height * tw + th // 2) // th))
    else:
        cw = width
        ch = min(height, max(1, (width * th + tw // 2) // tw))
    left, top = (width - cw) // 2, (height - ch) // 2
    return left, top, left + cw, top + ch


def load_image(path: str | os.PathLike, size: int | tuple[int, int] | None = None, *,
               crop: bool = True) -> np.ndarray:
    """Read any photo as an RGB uint8 array of shape (H, W, 3), optionally resized to ``size``.

    Handles every mode a student's photo may have: grayscale, palette, RGBA (composited on white),
    CMYK, 16-bit; EXIF rotation is applied (a photo whose EXIF is too damaged to read is used as
    stored). Large JPEGs are decoded at reduced scale, so a
    10,000 x 10,000 photo does not take gigabytes. With ``crop`` the central box with the target's
    proportions (:func:`center_box`, whole pixels) is kept before resizing, so objects keep their
    proportions. ``size`` is an int (a square) or (width, height). Used in lessons 02-04 and
    ``imgrec predict``.
    """
    from PIL import Image, UnidentifiedImageError

    target = image_size(size)
    path = check_image_file(path)
    try:
        rgb = _decode(path, target)
    except OSError as exc:
        if exc.errno is not None:  # the operating system's refusal, not a damaged image
            raise ImageError(describe_os_error(exc, path, "read")) from None
        raise _unreadable(path, exc) from None
    except Image.DecompressionBombError as exc:  # a valid image, only too big to decode safely
        pixels = re.search(r"\((\d+) pixels\)", str(exc))
        count = f"{int(pixels.group(1)):,} pixels; " if pixels else ""
        raise ImageError(f"{path}: too large to decode safely ({count}Pillow refuses more than "
                         f"{2 * (Image.MAX_IMAGE_PIXELS or 0):,}); shrink it, e.g. to 4,000 pixels across, "
                         "and try again") from None
    except (UnidentifiedImageError, SyntaxError, ValueError, EOFError) as exc:
        raise _unreadable(path, exc) from None
    if target is not None:
        box = center_box(*rgb.size, target) if crop else None
        rgb = rgb.resize(target, Image.Resampling.BICUBIC, box=box, reducing_gap=3.0)
    return np.asarray(rgb, dtype=np.uint8)


def _decode(path: Path, target: tuple[int, int] | None):  # -> RGB PIL.Image.Image
    """Open, turn upright by its EXIF orientation, decode and convert to RGB (:func:`load_image`). Pillow's
    warnings about damaged metadata ("Corrupt EXIF data", "Truncated File Read") are not shown: the
    result is an image or an error, and the warnings would only be noise in a lesson or a shell."""
    from PIL import Image

    with warnings.catch_warnings():
        # between 89 and 179 million pixels Pillow only warns (above, it refuses: DecompressionBombError);
        # big JPEGs are decoded at reduced scale anyway, so the warning is noise for the student
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        warnings.simplefilter("ignore", UserWarning)
        img = _open_image(path)
        with img:
            if target is not None and img.format == "JPEG":
                img.draft("RGB", (target[0] * 2, target[1] * 2))  # decode big JPEGs at reduced scale
            try:
                orientation = img.getexif().get(0x0112)  # EXIF orientation: how to turn the pixels upright
            except Exception:  # damaged EXIF raises anything (struct.error, TypeError, ...): use it as stored
                orientation = None
            img.load()
            # as PIL.ImageOps.exif_transpose turns them, without rewriting the EXIF block (which fails when
            # it is damaged: a struct.error traceback for a photo whose pixels are fine)
            upright = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                       4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
                       6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}
            method = upright.get(orientation) if isinstance(orientation, int) else None
            return _to_rgb(img.transpose(method) if method is not None else img)


def _open_image(path: Path):  # -> PIL.Image.Image
    """``PIL.Image.open``, and for a HEIC/HEIF photo (iPhones' default format, which Pillow itself
    cannot read) the pillow-heif package's decoder, which yields the same kind of image."""
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(path)
    except UnidentifiedImageError:
        with open(path, "rb") as fh:
            head = fh.read(12)
        if head[4:8] != b"ftyp" or head[8:12] not in _HEIF_BRANDS:
            raise
    try:
        import pillow_heif
    except ImportError:
        raise ImageError(f"{path}: a HEIC/HEIF photo (iPhones' default format) and pillow-heif, which reads it, "
                         "is not installed; pip install pillow-heif, or convert the photo to JPEG") from None
    try:
        heif = pillow_heif.open_heif(path, convert_hdr_to_8bit=True)  # reads the header; decodes on to_pillow
        pixels = heif.size[0] * heif.size[1]
        if Image.MAX_IMAGE_PIXELS and pixels > 2 * Image.MAX_IMAGE_PIXELS:  # the limit Image.open applies
            raise Image.DecompressionBombError(f"Image size ({pixels} pixels) exceeds limit")
        return heif.to_pillow()
    except (ValueError, RuntimeError) as exc:  # libheif's word for a damaged or truncated file
        raise ValueError(str(exc).strip()) from None


def _unreadable(path: Path, exc: BaseException) -> ImageError:
    """The one line for a file Pillow could not decode; an empty file (0 bytes) is named as such. The
    size is looked at only here, after decoding failed, so readable photos cost no extra stat."""
    try:
        empty = path.stat().st_size == 0
    except OSError:
        empty = False
    if empty:
        return ImageError(f"{path}: an empty file (0 bytes), not an image; copy the photo again")
    return ImageError(f"{path}: not a readable image ({type(exc).__name__}: {exc}); "
                      "replace it with a valid JPEG or PNG file")


def _to_rgb(img):  # PIL.Image.Image -> RGB PIL.Image.Image
    from PIL import Image

    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):  # 16/32-bit grey: scale to 8 bit
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if arr.max(initial=0) > 255 else 255.0
        img = Image.fromarray(np.clip(arr / top * 255.0, 0, 255).astype(np.uint8), mode="L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img.convert("RGBA"), mask=img.convert("RGBA").getchannel("A"))
        return background
    return img.convert("RGB")


def check_folder(folder: str | os.PathLike) -> Path:
    """``folder`` as a Path if it is a folder; one-line :class:`DataError` otherwise (missing, a file,
    or refused by the operating system). Used by :func:`list_images` and :func:`class_folders`."""
    import stat

    folder = Path(folder)
    st = stat_existing(folder, DataError, "no such folder; check the path or the data home (IMGREC_DATA_HOME)")
    if not stat.S_ISDIR(st.st_mode):
        raise DataError(f"{folder}: is a file, not a folder; pass the folder that holds the images")
    return folder


def _hidden(name: str) -> bool:
    """Hidden files and folders, including macOS' ``._photo.jpg`` companions (resource forks)."""
    return name.startswith(".")


def list_images(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Image files inside ``folder`` (and its sub-folders with ``recursive``), sorted by path.

    Files are chosen by extension (:data:`IMAGE_EXTENSIONS`, any case: JPEG, PNG, HEIC, AVIF, ...; Keras'
    own ``image_dataset_from_directory`` takes only .bmp .gif .jpeg .jpg .png); hidden files and folders
    (``.name``, macOS' ``._photo.jpg``) are skipped. ``recursive`` is what
    ``keras.utils.image_dataset_from_directory`` does inside each class folder (lesson 04,
    ``imgrec evaluate``); symbolic links to folders are not followed, as there. Used in lessons 03, 04.
    """
    folder = check_folder(folder)
    try:
        found: list[Path] = []

        def refuse(exc: OSError) -> None:
            raise exc

        walker = os.walk(folder, onerror=refuse) if recursive else [(str(folder), [], os.listdir(folder))]
        for top, dirs, files in walker:
            dirs[:] = sorted(d for d in dirs if not _hidden(d))
            for name in files:
                p = Path(top) / name
                if not _hidden(name) and p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file():
                    found.append(p)
    except OSError as exc:
        raise DataError(describe_os_error(exc, None if exc.filename else folder, "list")) from None
    return sorted(found)


@dataclass
class ImageFolder:
    """Images of a class-named folder tree, as loaded by :func:`load_image_folder` (lesson 04A)."""

    images: np.ndarray           # (N, size, size, 3) uint8
    labels: np.ndarray           # (N,) int, index into class_names
    class_names: list[str]       # sorted sub-folder names
    paths: list[Path]


def class_folders(root: str | os.PathLike) -> list[str]:
    """Class names of a ``root/<class>/<image>`` tree, sorted; checks there are at least two classes.

    Images may sit in sub-folders of a class folder; hidden folders are not classes. This is the
    layout ``keras.utils.image_dataset_from_directory`` expects (lesson 04).
    """
    root = check_folder(root)
    try:
        names = sorted(p.name for p in root.iterdir() if p.is_dir() and not _hidden(p.name))
    except OSError as exc:
        raise DataError(describe_os_error(exc, root, "list")) from None
    with_images = [n for n in names if list_images(root / n, recursive=True)]
    if not with_images:
        raise DataError(f"{root}: no images found; put photos in one sub-folder per class, e.g. {root}/dog/*.jpg")
    if len(with_images) < 2:
        raise DataError(f"{root}: only one class folder with images ({with_images[0]}); a classifier needs at "
                        "least two, e.g. dog/ and not_dog/")
    return with_images


def load_image_folder(root: str | os.PathLike, size: int) -> ImageFolder:
    """Load every image of a ``root/<class>/`` tree at ``size`` x ``size`` (lesson 04, part A)."""
    names = class_folders(root)
    images, labels, paths = [], [], []
    for label, name in enumerate(names):
        for path in list_images(Path(root) / name, recursive=True):
            images.append(load_image(path, size))
            labels.append(label)
            paths.append(path)
    return ImageFolder(np.stack(images), np.asarray(labels), names, paths)


def images_to_batch(images: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """Stack images into a batch; a single (H, W, 3) image gets its batch dimension (lesson 02)."""
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[np.newaxis]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ImageError(f"expected images of shape (H, W, 3) or (N, H, W, 3), got {arr.shape}")
    return arr

