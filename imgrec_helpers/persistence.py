"""Saving and loading without half-written files.

Everything the course writes (models, features, result records, the run manifest, extracted
datasets) goes through :func:`atomic_path` or :func:`atomic_dir`: it is written under a temporary
name beside its target and renamed into place only when complete, so an interrupted run leaves
the previous file intact and never a truncated one.

Lesson 02 teaches the two classic ways to save a Keras model (structure as JSON + weights as H5)
and the modern single ``.keras`` file; lessons 03 and 04 save extracted features with
:func:`save_features`.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .errors import ImgrecError, ModelError, describe_os_error, os_error


def current_umask() -> int:
    """The process's umask (``/proc/self/status`` on Linux, else read by setting and restoring it)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a plain ``open(path, "w")`` gives a new file: ``0o666 & ~umask``."""
    return 0o666 & ~current_umask()


def dir_mode() -> int:
    """The mode a plain ``mkdir`` gives a new folder: ``0o777 & ~umask``."""
    return 0o777 & ~current_umask()


def _make_parent(target: Path) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise os_error(exc, exc.filename or target.parent, f"create the folder for {target.name} in") from None


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` when the block succeeds.

    The temporary name keeps ``target``'s extension (or ``suffix``) because some writers, such as
    Keras' ``model.save``, choose the format from it. On any error the temporary file is removed
    and ``target`` is left as it was. The finished file gets the mode a plain ``open()`` would
    give it (``0o666 & ~umask``), not ``mkstemp``'s private 0600. An :class:`OSError` while writing
    (disk full, read-only, no permission, name too long) becomes one :class:`FileSystemError` line
    naming ``target``.
    """
    target = Path(target)
    _make_parent(target)
    ext = suffix if suffix is not None else "".join(target.suffixes[-1:])
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.stem[:80]}.", suffix=f".partial{ext}", dir=target.parent)
        os.close(fd)
    except OSError as exc:
        raise os_error(exc, target, "write") from None
    tmp_path = Path(tmp)
    try:
        try:
            yield tmp_path
            if tmp_path.exists():  # some writers replace the file; it then has open()'s mode already
                os.chmod(tmp_path, file_mode())
            os.replace(tmp_path, target)
        except OSError as exc:
            if exc.filename in (None, str(tmp_path), tmp_path, str(target), target):
                raise os_error(exc, target, "write") from None
            raise os_error(exc) from None
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``target``; move it into place when the block succeeds.

    Used to extract datasets: a half-extracted folder is never left where the loader looks.
    An existing ``target`` is replaced only after the new folder is complete. The folder gets
    the mode a plain ``mkdir`` would give it (``0o777 & ~umask``). Errors of the block itself are
    passed on unchanged (the caller knows what it was reading); creating or moving the folder
    raises :class:`FileSystemError`.
    """
    target = Path(target)
    _make_parent(target)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
        os.chmod(tmp, dir_mode())
    except OSError as exc:
        raise os_error(exc, target, "create the folder") from None
    try:
        yield tmp
        try:
            if target.exists():
                old = target.with_name(f".{target.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                os.replace(target, old)
                os.replace(tmp, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, target)
        except OSError as exc:
            raise os_error(exc, target, "move into place the folder") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def stat_existing(path: str | os.PathLike, error: type[ImgrecError], missing: str) -> os.stat_result:
    """``os.stat(path)``, or one line of type ``error``: ``missing`` (the advice) for a path that does
    not exist, :func:`~imgrec_helpers.errors.describe_os_error` for any other refusal (permission denied
    on a folder above, name too long, a link loop). Used by :func:`existing_file` and
    :func:`imgrec_helpers.data.check_folder`."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        raise error(f"{path}: {missing}") from None
    except OSError as exc:
        raise error(describe_os_error(exc, Path(path), "open")) from None


def existing_file(path: str | os.PathLike, error: type[ImgrecError], missing: str, folder: str) -> Path:
    """``path`` as a Path if it names an existing regular file; else one line of type ``error``.

    ``missing`` and ``folder`` are the advice for a path that does not exist and one that is a
    folder; other operating-system refusals (permission denied on a folder above, name too long,
    a link loop) are explained by :func:`~imgrec_helpers.errors.describe_os_error`. Used by
    :func:`imgrec_helpers.data.check_image_file` and :func:`load_model`.
    """
    import stat

    path = Path(path)
    st = stat_existing(path, error, missing)
    if stat.S_ISDIR(st.st_mode):
        raise error(f"{path}: is a folder; {folder}")
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{path}: not a regular file (a FIFO, socket or device); pass a file")
    return path


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically. Used for result records and the manifest."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n")
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


MODEL_INFO_ENTRY = "imgrec.json"
"""Name of the entry added to a ``.keras`` zip: class names and input scaling for ``imgrec predict``."""

INPUT_SCALES = ("0-1", "0-255")
"""How a saved model wants its pixels: floats in [0, 1] (lesson 02's CNN) or raw 0-255 RGB
(end-to-end models with their preprocessing inside, lesson 04)."""


def save_model(model: Any, path: str | os.PathLike, class_names: list[str] | None = None,
               input_scale: str = "0-1") -> Path:
    """Save a Keras model as one ``.keras`` file (architecture, weights, optimizer), atomically.

    Used in lessons 02 and 04. ``class_names`` and ``input_scale`` (see :data:`INPUT_SCALES`) are
    stored inside the file (an extra ``imgrec.json`` entry that Keras ignores), so that
    ``imgrec predict MODEL IMAGE`` can label and scale images without being told. For a model with
    one sigmoid output, the output is the probability of ``class_names[1]``.
    """
    import zipfile

    path = Path(path)
    if path.suffix != ".keras":
        raise ImgrecError(f"{path}: a whole model is saved as a .keras file; use a name ending in .keras")
    if input_scale not in INPUT_SCALES:
        raise ImgrecError(f"input_scale must be one of {INPUT_SCALES}, got {input_scale!r}")
    info = {"class_names": list(class_names) if class_names else None, "input_scale": input_scale,
            "input_shape": [int(d) if d is not None else None for d in model.input_shape[1:]]}
    with atomic_path(path) as tmp:
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(MODEL_INFO_ENTRY, json.dumps(info, indent=2))
    return path


def read_model_info(path: str | os.PathLike) -> dict[str, Any]:
    """The class names, input scale and input shape stored by :func:`save_model` (``{}`` if none).

    Checked before anything is predicted: ``class_names`` a list of distinct non-empty strings,
    ``input_scale`` one of :data:`INPUT_SCALES`, ``input_shape`` a list of sizes. Raises
    :class:`ModelError` (one line) for a file that is not a zip archive, cannot be read, or
    carries an ``imgrec.json`` that is not what :func:`save_model` writes.
    """
    import zipfile

    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            if MODEL_INFO_ENTRY not in archive.namelist():
                return {}
            raw = archive.read(MODEL_INFO_ENTRY)
    except OSError as exc:
        if exc.errno is None:  # zipfile's own "truncated" errors carry no number
            raise ModelError(f"{path}: truncated or damaged .keras file ({exc}); save the model again") from None
        raise ModelError(describe_os_error(exc, path, "read")) from None
    except (zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError, ValueError):
        raise ModelError(f"{path}: not a .keras model file (not a zip archive); pass a model saved by this course"
                         ) from None
    try:
        info = json.loads(raw)
    except ValueError:
        raise ModelError(f"{path}: its {MODEL_INFO_ENTRY} entry is not valid JSON; save the model again with "
                         "imgrec_helpers.persistence.save_model") from None
    return _check_model_info(path, info)


def _check_model_info(path: Path, info: Any,
                      fix: str = "save the model again with imgrec_helpers.persistence.save_model") -> dict[str, Any]:
    if not isinstance(info, dict):
        raise ModelError(f"{path}: {MODEL_INFO_ENTRY} holds a {type(info).__name__}, not an object; {fix}")
    names = info.get("class_names")
    if names is not None:
        if (not isinstance(names, list) or not names
                or not all(isinstance(n, str) and n.strip() for n in names)):
            raise ModelError(f"{path}: class_names in {MODEL_INFO_ENTRY} must be a list of non-empty strings, "
                             f"got {json.dumps(names)[:60]}; {fix}")
        if len(set(names)) != len(names):
            raise ModelError(f"{path}: class_names in {MODEL_INFO_ENTRY} repeat a name; {fix}")
    scale = info.get("input_scale", "0-1")
    if not isinstance(scale, str) or scale not in INPUT_SCALES:
        raise ModelError(f"{path}: unknown input_scale {json.dumps(scale)[:40]} in {MODEL_INFO_ENTRY}; it must be "
                         f"one of {', '.join(INPUT_SCALES)}; {fix}")
    shape = info.get("input_shape")
    if shape is not None and (not isinstance(shape, list)
                              or not all(d is None or (isinstance(d, int) and not isinstance(d, bool) and d > 0)
                                         for d in shape)):
        raise ModelError(f"{path}: input_shape in {MODEL_INFO_ENTRY} must be a list of sizes, got "
                         f"{json.dumps(shape)[:60]}; {fix}")
    return info


def load_model(path: str | os.PathLike, compile: bool = True) -> Any:
    """Load a ``.keras`` model saved by this course (lessons 02, 04, ``imgrec predict``).

    ``compile=False`` skips the optimizer state, which predictions do not need. Raises
    :class:`ModelError` with one line when the file is missing, unreadable or not a Keras model.
    """
    path = check_model_file(path)
    import keras

    try:
        with warnings.catch_warnings():
            if not compile:  # Keras still reads the optimizer state and warns when it does not fit
                warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            return keras.models.load_model(path, compile=compile)
    except Exception as exc:  # Keras raises many types for a file that is not a model
        raise ModelError(
            f"{path}: not a Keras model file this course can load ({type(exc).__name__}); "
            "save one with imgrec_helpers.persistence.save_model"
        ) from None


def check_model_file(path: str | os.PathLike) -> Path:
    """Everything about a ``.keras`` file that can be checked without TensorFlow: it exists, is a
    readable zip archive and its ``imgrec.json`` is valid (``imgrec predict`` calls it before it
    imports TensorFlow; :func:`load_model` too)."""
    path = existing_file(path, ModelError, "no such model file; train one in lesson 02 or 04, or check the path",
                         "pass a .keras model file")
    if path.suffix != ".keras":
        raise ModelError(f"{path}: not a .keras file; pass a model saved by this course (lesson 02 or 04)")
    read_model_info(path)  # a clear error for a file that is not a zip at all, or unreadable
    return path


TFLITE_IDENTIFIER = b"TFL3"
"""The file identifier every LiteRT (``.tflite``) flatbuffer carries at bytes 4-8."""


def save_tflite_info(path: str | os.PathLike, class_names: list[str] | None = None,
                     input_scale: str = "0-1") -> Path:
    """Store class names and input scaling inside a ``.tflite`` file, as :func:`save_model` does for ``.keras``.

    Lesson 07 exports models with ``model.export(path, format="litert")``; this adds one entry to the
    flatbuffer's own ``metadata`` list (name ``imgrec.json``, the same JSON as in a ``.keras`` file), which the
    LiteRT interpreter ignores and ``imgrec predict`` reads: the file alone is enough to label photos, with no
    sidecar file to lose. The file is rewritten atomically. ``input_shape`` is read from the model itself.
    """
    from ai_edge_litert import schema_py_generated as schema
    import flatbuffers

    path = check_tflite_file(path)
    if input_scale not in INPUT_SCALES:
        raise ImgrecError(f"input_scale must be one of {INPUT_SCALES}, got {input_scale!r}")
    model = schema.ModelT.InitFromPackedBuf(bytearray(path.read_bytes()), 0)
    shape = [int(d) for d in model.subgraphs[0].tensors[model.subgraphs[0].inputs[0]].shape[1:]]
    info = {"class_names": list(class_names) if class_names else None, "input_scale": input_scale,
            "input_shape": shape}
    data = np.frombuffer(json.dumps(info).encode("utf-8"), dtype=np.uint8)
    model.metadata = model.metadata or []
    entry = next((m for m in model.metadata if m.name in (MODEL_INFO_ENTRY, MODEL_INFO_ENTRY.encode())), None)
    if entry is None:  # a new entry and its buffer; stored again, the same entry gets the new JSON
        entry = schema.MetadataT()
        entry.name, entry.buffer = MODEL_INFO_ENTRY, len(model.buffers)
        model.buffers.append(schema.BufferT())
        model.metadata.append(entry)
    model.buffers[entry.buffer].data = data
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    with atomic_path(path) as tmp:
        tmp.write_bytes(builder.Output())
    return path


def check_tflite_file(path: str | os.PathLike) -> Path:
    """A ``.tflite`` file that exists and is a whole LiteRT flatbuffer: checked without TensorFlow or the
    interpreter (``imgrec predict`` calls it first). One :class:`ModelError` line for a missing, empty,
    truncated or foreign file."""
    path = existing_file(path, ModelError, "no such model file; export one in lesson 07, or check the path",
                         "pass a .tflite model file")
    _tflite_model(path)
    return path


def _tflite_model(path: Path) -> Any:
    """The parsed flatbuffer of a ``.tflite`` file (ai_edge_litert's schema), or one :class:`ModelError` line.

    A flatbuffer is read lazily, so a truncated file is found by unpacking all of it (the schema's object
    API visits every table and vector, and each must lie inside the file)."""
    from ai_edge_litert import schema_py_generated as schema

    fix = "export it again (lesson 07) or copy the whole file"
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ModelError(describe_os_error(exc, path, "read")) from None
    if not raw:
        raise ModelError(f"{path}: an empty file; {fix}")
    if len(raw) < 8 or raw[4:8] != TFLITE_IDENTIFIER:
        raise ModelError(f"{path}: not a LiteRT model (no TFL3 identifier at bytes 4-8); pass a .tflite file "
                         "exported in lesson 07")
    try:
        model = schema.Model.GetRootAs(raw, 0)
        whole = schema.ModelT.InitFromObj(model)  # visits every table and vector: offsets outside the file raise
        if not whole.subgraphs:
            raise IndexError("no subgraph")
        for buffer in whole.buffers or []:
            if buffer.offset > 1 and buffer.offset + buffer.size > len(raw):  # weights stored after the flatbuffer
                raise IndexError("weights past the end of the file")
    except Exception:  # struct.error, IndexError, ...: offsets that point outside the file
        raise ModelError(f"{path}: truncated or damaged .tflite file (its tables point outside its {len(raw):,} "
                         f"bytes); {fix}") from None
    return model


def read_tflite_info(path: str | os.PathLike) -> dict[str, Any]:
    """The class names, input scale and input shape stored by :func:`save_tflite_info` (``{}`` if none),
    checked as :func:`read_model_info` checks a ``.keras`` file's."""
    path = Path(path)
    model = _tflite_model(path)
    for m in range(model.MetadataLength()):
        entry = model.Metadata(m)
        if entry.Name() in (MODEL_INFO_ENTRY.encode(), MODEL_INFO_ENTRY):
            raw = model.Buffers(entry.Buffer()).DataAsNumpy()
            try:
                info = json.loads(bytes(raw).decode("utf-8"))
            except (ValueError, TypeError):
                raise ModelError(f"{path}: its {MODEL_INFO_ENTRY} metadata is not valid JSON; store it again with "
                                 "imgrec_helpers.persistence.save_tflite_info") from None
            return _check_model_info(path, info, fix="store it again with imgrec_helpers.persistence.save_tflite_info")
    return {}


def save_features(path: str | os.PathLike, features: np.ndarray, labels: np.ndarray, **extra: Any) -> Path:
    """Save extracted features and their labels (and any extra arrays) to one ``.npz`` file (lessons 03, 04)."""
    path = Path(path)
    if path.suffix != ".npz":
        raise ImgrecError(f"{path}: features are saved as .npz; use a name ending in .npz")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, features=features, labels=labels, **extra)
    return path


def load_features(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load a file written by :func:`save_features`; returns a dict with ``features``, ``labels``, ..."""
    path = Path(path)
    if not path.is_file():
        raise ImgrecError(f"{path}: no features file; run the feature-extraction cell first")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except Exception as exc:
        raise ImgrecError(f"{path}: not a readable features file ({exc}); extract the features again") from None
