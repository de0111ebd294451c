"""CIFAR-10 and photos as NumPy arrays (lessons 01-07, ``imgrec predict`` / ``evaluate``): CIFAR-10 from the data
home (:mod:`imgrec_helpers.sources`), extracted once into a cache folder named by the archive's content; photos of any
mode or format (HEIC too) as RGB uint8 arrays."""
from __future__ import annotations

import contextlib
import hashlib
import lzma
import os
import pickle
import re
import shutil
import stat
import tarfile
import warnings
import zlib
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import DataError, FileSystemError, ImageError, describe_os_error
from .persistence import atomic_dir, atomic_path, existing_file, stat_existing
from .sources import CIFAR10, FETCH_COMMAND, check_data_home, fetch_need, file_digest, folder_lock

CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
"""CIFAR-10's ten classes in label order 0-9 (lessons 01, 02, 05)."""
CLASS_NOTES = {"automobile": "sedans, SUVs and the like; no pickup trucks",
               "truck": "big trucks only; no pickup trucks"}
"""Class definitions worth knowing (lesson 01)."""
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_FOLDER = "cifar-10-batches-py"
_BATCHES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".avif",
                    ".heic", ".heif", ".ppm", ".pgm", ".pbm", ".pnm")
"""The endings (any case) of the image files a folder loader lists: the formats :func:`load_image` reads."""
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1", b"heif"}
_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
            5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90}
"""EXIF orientation -> the turn that makes the pixels upright, as ``PIL.ImageOps.exif_transpose`` turns them."""
MAX_IMAGE_SIZE = 16384


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles CIFAR batches, allowing only the NumPy types they contain (no arbitrary code)."""
    def find_class(self, module: str, name: str):
        if (module.replace("numpy._core", "numpy.core"), name) in {
                ("numpy.core.multiarray", "_reconstruct"), ("numpy", "ndarray"), ("numpy", "dtype")}:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"unexpected object {module}.{name}")


def _read_batch(path: Path, where: str | None = None, fix: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 batch as (N, 32, 32, 3) uint8 images and (N,) uint8 labels; anything but uint8 ``data`` (N, 3072),
    N >= 1, and N labels 0-9 is one line naming the batch (``where``) and what to do (``fix``)."""
    def fail(problem: str) -> DataError:
        return DataError(f"{where or path}: {problem}; " + (fix or f"delete the folder {path.parent} and run again to "
                         f"re-extract it from the archive, or replace it with the official {CIFAR10_FOLDER}/"))

    if not path.is_file():
        raise fail("CIFAR-10 batch is missing")
    try:
        with open(path, "rb") as fh:
            batch = _BatchUnpickler(fh, encoding="bytes").load()
    except Exception as exc:  # unpickling raises many types for a damaged file
        if isinstance(exc, OSError) and exc.errno is not None:
            raise DataError(describe_os_error(exc, path, "read")) from None
        raise fail(f"truncated or corrupt CIFAR-10 batch ({type(exc).__name__})") from None
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise fail("not a CIFAR-10 batch (no data and labels entries)")
    data = batch[b"data"]
    if not isinstance(data, np.ndarray):
        raise fail(f"not a CIFAR-10 batch (data is a {type(data).__name__}, not an array)")
    if data.dtype != np.uint8 and data.dtype.kind in "iu" and data.size and 0 <= data.min() <= data.max() <= 255:
        data = data.astype(np.uint8)  # the same 0-255 values in a wider integer type
    elif data.dtype != np.uint8:
        span = f", values {data.min()}..{data.max()}" if data.size and data.dtype.kind in "iuf" else ""
        raise fail(f"pixels are {data.dtype}{span}, not uint8 0-255 as in CIFAR-10 batches (they are not converted "
                   "silently)")
    if data.ndim != 2 or data.shape[1] != 3072:
        raise fail(f"not a CIFAR-10 batch (data of shape {data.shape}, expected (N, 3072))")
    if len(data) == 0:
        raise fail("empty CIFAR-10 batch (0 images)")
    try:
        labels = np.asarray(batch[b"labels"])
    except Exception:  # a ragged list, or no list at all
        labels = np.asarray([], dtype=object)
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or len(labels) != len(data):
        raise fail(f"{len(data)} images need as many labels, integers 0-9; got {labels.dtype} of shape {labels.shape}")
    bad = np.flatnonzero((labels < 0) | (labels > 9))
    if bad.size:
        raise fail(f"{bad.size} label(s) outside 0-9 (e.g. {int(labels[bad[0]])} for image {int(bad[0])}); "
                   "CIFAR-10 has classes 0-9 only")
    return np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)), labels.astype(np.uint8)


def _extract_archive(archive: Path, target: Path) -> Path:
    """The batches of ``archive`` (any compression) into ``target`` in one streaming pass, atomically, each checked;
    a damaged archive and a cache that cannot be written (full, read-only, a file in the way) are told apart."""
    def write_failed(detail: str) -> DataError:
        return DataError(f"CIFAR-10 cannot be extracted into the cache: {detail}; or set IMGREC_CACHE_DIR to a "
                         f"writable folder with 200 MB free (the archive {archive.name} itself is fine)")

    try:
        with tarfile.open(archive, "r|*") as tar, atomic_dir(target) as tmp:
            for member in tar:
                if member.isfile() and member.name.startswith(f"{CIFAR10_FOLDER}/") and ".." not in member.name:
                    payload = tar.extractfile(member).read()
                    try:
                        (tmp / Path(member.name).name).write_bytes(payload)
                    except OSError as exc:
                        raise write_failed(describe_os_error(exc, target.parent, "write to")) from None
            missing = [name for name in _BATCHES if not (tmp / name).is_file()]
            if missing:
                raise DataError(f"{archive}: not a CIFAR-10 python archive (missing {', '.join(missing)}); "
                                f"replace it with the official {CIFAR10[0]}")
            for name in _BATCHES:  # checked before the folder goes into place
                _read_batch(tmp / name, f"{archive}, member {CIFAR10_FOLDER}/{name}", "this is not the official "
                            f"CIFAR-10; replace {archive.name} with the official {CIFAR10[0]}")
    except FileSystemError as exc:  # creating or moving the cache folder
        raise write_failed(str(exc)) from None
    except (OSError, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, ValueError) as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            raise DataError(describe_os_error(exc, archive, "read")) from None
        raise DataError(f"{archive}: truncated or corrupt archive ({type(exc).__name__}: {exc}); delete it and "
                        f"download {CIFAR10_URL} again, or place a good copy there") from None
    return target


def cifar10_folder(home: str | os.PathLike | None = None, *, download: bool = True) -> Path:
    """The ``cifar-10-batches-py`` folder (:func:`load_cifar10`): the data home's own, else its archive (any
    compression, fetched first if missing: :func:`sources.fetch_need`) extracted into the cache."""
    home = check_data_home(home)
    if (home / CIFAR10_FOLDER).is_dir():
        return home / CIFAR10_FOLDER
    official = home / CIFAR10[0]
    archive = official if official.is_file() else min(home.glob("cifar-10-python.tar*"), default=None)
    if archive is None and not download:
        raise DataError(f"CIFAR-10 not found: no {CIFAR10_FOLDER}/ or {CIFAR10[0]} in {home}; "
                        f"run `{FETCH_COMMAND}` to fetch it ({CIFAR10_URL})")
    archive = archive or fetch_need(CIFAR10, home)
    # The cache (not the data home, which may be read-only and shared) holds a folder named by the archive's SHA-256
    # (a copied or touched archive reuses it); a pointer named by its path, size and time skips hashing it again.
    cache = Path(os.environ.get("IMGREC_CACHE_DIR") or "~/.cache/imgrec").expanduser().resolve()
    try:
        st = archive.stat()
        quick = hashlib.sha1(f"{archive.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:12]
        pointer = cache / f"{CIFAR10_FOLDER}-{quick}.source"
        with contextlib.suppress(OSError, ValueError):  # no pointer yet, or an unreadable one: hash the archive
            named = cache / pointer.read_text().strip()
            if named.parent == cache and named.name.startswith(f"{CIFAR10_FOLDER}-") and named.is_dir():
                return named
        target = cache / f"{CIFAR10_FOLDER}-{file_digest(archive)[:16]}"
    except OSError as exc:
        raise DataError(describe_os_error(exc, archive, "read")) from None
    if not target.is_dir():
        with contextlib.suppress(OSError):  # the extraction says what is wrong with the cache
            cache.mkdir(parents=True, exist_ok=True)
        with folder_lock(cache):  # lessons or tests started together: one extracts, the others wait for it
            if not target.is_dir():
                _extract_archive(archive, target)
                # earlier versions named extractions by the archive's path and time: 176 MB each, never read again
                with contextlib.suppress(OSError):
                    for old in cache.glob(f"{CIFAR10_FOLDER}-{'[0-9a-f]' * 12}"):
                        if old.is_dir() and not old.is_symlink():
                            shutil.rmtree(old, ignore_errors=True)
    # a read-only cache with the folder in it: no pointer, the next load hashes again
    with contextlib.suppress(FileSystemError), atomic_path(pointer) as tmp:
        tmp.write_text(target.name)
    return target


def load_cifar10(home: str | os.PathLike | None = None, *, download: bool = True
                 ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """CIFAR-10 from the data home as ``keras.datasets.cifar10.load_data()`` returns it (lessons 01, 02, 04, 05):
    uint8 images (50000, 32, 32, 3) and (10000, 32, 32, 3), uint8 labels (50000, 1) and (10000, 1)."""
    folder = cifar10_folder(home, download=download)
    (*train, test) = [_read_batch(folder / name) for name in _BATCHES]
    return ((np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]).reshape(-1, 1)),
            (test[0], test[1].reshape(-1, 1)))


def class_counts(labels: np.ndarray, num_classes: int = 10) -> np.ndarray:
    """How many images each class has (lesson 01's bar chart)."""
    return np.bincount(np.asarray(labels).reshape(-1).astype(np.int64), minlength=num_classes)


def channel_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of uint8 images on the [0, 1] scale (lesson 01), in chunks of
    float64 so that the training images need no 600 MB copy."""
    pixels = np.asarray(images).reshape(-1, 3)
    total, total_sq = np.zeros(3), np.zeros(3)
    for start in range(0, len(pixels), 5_000_000):
        chunk = pixels[start:start + 5_000_000] / 255.0
        total += chunk.sum(axis=0)
        total_sq += (chunk ** 2).sum(axis=0)
    mean = total / len(pixels)
    return mean, np.sqrt(total_sq / len(pixels) - mean ** 2)


def stratified_subset(labels: np.ndarray, size: int | None, seed: int) -> np.ndarray:
    """Indices of a class-balanced random subset of ``size`` items, the same for the same seed; all for None
    (lessons 02, 04, 05). A size that is not a whole number from 1 to ``len(labels)`` is one line."""
    labels = np.asarray(labels).reshape(-1)
    whole = isinstance(size, (int, np.integer)) and not isinstance(size, bool)
    if size is not None and not (whole and 1 <= size <= len(labels)):
        raise DataError(f"{f'{size:,}' if whole else repr(size)} images asked for, but there are {len(labels):,}: "
                        f"use a whole number from 1 to {len(labels):,}, or None for all of them")
    if size is None or size == len(labels):
        return np.arange(len(labels))
    rng, classes = np.random.default_rng(seed), np.unique(labels)
    quota = [size // len(classes) + (i < size % len(classes)) for i in range(len(classes))]  # the rest to the first
    return np.sort(np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:q] for c, q in zip(classes, quota)]))


def check_image_file(path: str | os.PathLike) -> Path:
    """``path`` if it is an existing file, else an :class:`ImageError` line (:func:`load_image`, ``imgrec predict``)."""
    return existing_file(path, ImageError, "no such image file; check the path",
                         "pass image files (or use a folder loader)")


def image_size(size: int | Sequence[int] | None) -> tuple[int, int] | None:
    """``size`` (an int for a square) as a (width, height) pair from 1 to :data:`MAX_IMAGE_SIZE`, or one line."""
    if size is None:
        return None
    pair = (size, size) if isinstance(size, (int, np.integer)) else size
    if not (hasattr(pair, "__len__") and len(pair) == 2 and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 1 <= v <= MAX_IMAGE_SIZE for v in pair)):
        raise ImageError(f"image size must be a whole number of pixels from 1 to {MAX_IMAGE_SIZE}, or a "
                         f"(width, height) pair of them, got {size!r}; e.g. load_image(path, 224)")
    return int(pair[0]), int(pair[1])


def center_box(width: int, height: int, target: tuple[int, int]) -> tuple[int, int, int, int]:
    """The largest central box with ``target``'s proportions, in whole pixels, at least 1 x 1 (:func:`load_image`)."""
    tw, th = target
    if width * th > height * tw:  # wider than the target: keep the full height
        cw, ch = min(width, max(1, (height * tw + th // 2) // th)), height
    else:
        cw, ch = width, min(height, max(1, (width * th + tw // 2) // tw))
    left, top = (width - cw) // 2, (height - ch) // 2
    return left, top, left + cw, top + ch


def load_image(path: str | os.PathLike, size: int | tuple[int, int] | None = None, *,
               crop: bool = True) -> np.ndarray:
    """Any photo as an RGB uint8 array (H, W, 3), optionally resized to ``size`` (lessons 02-04, ``imgrec predict``):
    every mode (grey, palette, RGBA composited on white, CMYK, 16-bit), EXIF rotation (damaged EXIF: as stored), big
    JPEGs decoded at reduced scale; ``crop`` keeps the central box with the target's proportions."""
    target = image_size(size)
    path = check_image_file(path)
    try:
        with warnings.catch_warnings():  # damaged metadata, 89-179 million pixels: an image or an error, no noise
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            warnings.simplefilter("ignore", UserWarning)
            with _open_image(path) as img:
                if target is not None and img.format == "JPEG":
                    img.draft("RGB", (target[0] * 2, target[1] * 2))
                try:
                    method = _UPRIGHT.get(img.getexif().get(0x0112))  # as ImageOps.exif_transpose looks it up
                except Exception:  # damaged EXIF raises anything (struct.error, TypeError, ...)
                    method = None
                img.load()  # then turned without rewriting the EXIF block, which fails when it is damaged
                rgb = _to_rgb(img.transpose(method) if method is not None else img)
    except Image.DecompressionBombError as exc:  # a valid image, only too big to decode safely
        pixels = re.search(r"\((\d+) pixels\)", str(exc))
        raise ImageError(f"{path}: too large to decode safely ({f'{int(pixels[1]):,} pixels; ' if pixels else ''}"
                         f"Pillow refuses more than {2 * (Image.MAX_IMAGE_PIXELS or 0):,}); shrink it, e.g. to 4,000 "
                         "pixels across, and try again") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # UnidentifiedImageError is an OSError
        if isinstance(exc, OSError) and exc.errno is not None:  # the operating system's refusal
            raise ImageError(describe_os_error(exc, path, "read")) from None
        if path.stat().st_size == 0:
            raise ImageError(f"{path}: an empty file (0 bytes), not an image; copy the photo again") from None
        raise ImageError(f"{path}: not a readable image ({type(exc).__name__}: {exc}); replace it with a valid JPEG "
                         "or PNG file") from None
    if target is not None:
        box = center_box(*rgb.size, target) if crop else None
        rgb = rgb.resize(target, Image.Resampling.BICUBIC, box=box, reducing_gap=3.0)
    return np.asarray(rgb, dtype=np.uint8)


def _open_image(path: Path) -> Image.Image:
    """``PIL.Image.open``, or pillow-heif's decoder for a HEIC/HEIF photo (iPhones' default), under the same limit."""
    try:
        return Image.open(path)
    except UnidentifiedImageError:
        with open(path, "rb") as fh:
            head = fh.read(12)
        if head[4:8] != b"ftyp" or head[8:12] not in _HEIF_BRANDS:
            raise
    try:
        import pillow_heif  # optional: only HEIC photos need it
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


def _to_rgb(img: Image.Image) -> Image.Image:
    """RGB: 16/32-bit grey scaled to 8 bit, transparency composited on white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if arr.max(initial=0) > 255 else 255.0
        img = Image.fromarray(np.clip(arr / top * 255.0, 0, 255).astype(np.uint8), mode="L")
    if img.mode in ("RGBA", "LA", "PA", "P"):
        return Image.alpha_composite(Image.new("RGBA", img.size, "white"), img.convert("RGBA")).convert("RGB")
    return img.convert("RGB")


def check_folder(folder: str | os.PathLike) -> Path:
    """``folder`` if it is a folder, else one-line :class:`DataError` (:func:`list_images`, :func:`class_folders`)."""
    st = stat_existing(folder, DataError, "no such folder; check the path or the data home (IMGREC_DATA_HOME)")
    if not stat.S_ISDIR(st.st_mode):
        raise DataError(f"{folder}: is a file, not a folder; pass the folder that holds the images")
    return Path(folder)


def list_images(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Image files in ``folder`` (:data:`IMAGE_EXTENSIONS`), sorted, hidden ones (``.name``, macOS' ``._x.jpg``)
    skipped; ``recursive`` as Keras reads a class folder, links to folders not followed (lessons 03, 04)."""
    folder = check_folder(folder)

    def refuse(exc: OSError) -> None:  # os.walk's default is to skip a folder it cannot list
        raise exc
    found: list[Path] = []
    try:
        for top, dirs, files in os.walk(folder, onerror=refuse) if recursive else [(folder, [], os.listdir(folder))]:
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found += [Path(top) / name for name in files if not name.startswith(".")
                      and Path(name).suffix.lower() in IMAGE_EXTENSIONS and (Path(top) / name).is_file()]
    except OSError as exc:
        raise DataError(describe_os_error(exc, None if exc.filename else folder, "list")) from None
    return sorted(found)


class ImageFolder(NamedTuple):
    """The images of a class-named folder tree (:func:`load_image_folder`, lesson 04A)."""
    images: np.ndarray           # (N, size, size, 3) uint8
    labels: np.ndarray           # (N,) int, index into class_names
    class_names: list[str]       # sorted sub-folder names
    paths: list[Path]


def class_folders(root: str | os.PathLike) -> list[str]:
    """The sorted class names of a ``root/<class>/...`` tree with images, at least two (lesson 04, as Keras'
    ``image_dataset_from_directory``); hidden folders are not classes."""
    root = check_folder(root)
    try:
        names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
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
    """Every image of a ``root/<class>/`` tree at ``size`` x ``size`` (lesson 04, part A)."""
    names = class_folders(root)
    found = [(path, label) for label, name in enumerate(names) for path in list_images(Path(root) / name, True)]
    return ImageFolder(np.stack([load_image(path, size) for path, _ in found]), np.asarray([lb for _, lb in found]),
                       names, [path for path, _ in found])

