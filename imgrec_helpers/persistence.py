"""Saving and loading without half-written files (:func:`atomic_path`, :func:`atomic_dir`: written beside the target
with the mode a plain ``open``/``mkdir`` gives, renamed into place when complete); ``.keras`` (lessons 02, 04) and
``.tflite`` (lesson 07) models that carry their class names; features (lessons 03, 04)."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .errors import ImgrecError, ModelError, describe_os_error, os_error

MODEL_INFO_ENTRY = "imgrec.json"  # the .keras zip entry (.tflite metadata) with class names and input scaling
INPUT_SCALES = ("0-1", "0-255")  # floats in [0, 1] (lesson 02's CNN) or raw RGB (models with preprocessing inside)
TFLITE_IDENTIFIER = b"TFL3"  # the file identifier of every LiteRT (.tflite) flatbuffer, at bytes 4-8


def file_mode(base: int = 0o666) -> int:
    """``base & ~umask``: the mode ``open(path, "w")`` (``0o777``: ``mkdir``) gives, for :func:`atomic_path`."""
    try:  # from /proc where there is one: setting and restoring the umask is not thread-safe
        with open("/proc/self/status") as fh:
            umask = next(int(line.split()[1], 8) for line in fh if line.startswith("Umask:"))
    except (OSError, ValueError, IndexError, StopIteration):
        umask = os.umask(0o022)
        os.umask(umask)
    return base & ~umask


def _make_parent(target: Path) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise os_error(exc, exc.filename or target.parent, f"create the folder for {target.name} in") from None


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """A temporary path beside ``target`` with its extension (or ``suffix``), renamed onto it if the block succeeds
    (every writer, lessons 02, 04); an :class:`OSError` becomes one :class:`FileSystemError` line."""
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
    """A fresh folder beside ``target``, moved into its place if the block succeeds (extracted datasets); creating
    or moving it raises :class:`FileSystemError`, the block's own errors pass unchanged."""
    target = Path(target)
    _make_parent(target)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
        os.chmod(tmp, file_mode(0o777))
    except OSError as exc:
        raise os_error(exc, target, "create the folder") from None
    try:
        yield tmp
        old = target.with_name(f".{target.name}.old")
        try:
            if target.exists():
                shutil.rmtree(old, ignore_errors=True)
                os.replace(target, old)
            os.replace(tmp, target)
        except OSError as exc:
            raise os_error(exc, target, "move into place the folder") from None
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def stat_existing(path: str | os.PathLike, error: type[ImgrecError], missing: str) -> os.stat_result:
    """``os.stat(path)``, or one ``error`` line with the advice ``missing``, or why not (``data.check_folder``)."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        raise error(f"{path}: {missing}") from None
    except OSError as exc:
        raise error(describe_os_error(exc, Path(path), "open")) from None


def existing_file(path: str | os.PathLike, error: type[ImgrecError], missing: str, folder: str) -> Path:
    """``path`` if it is an existing regular file, else one ``error`` line (``data.check_image_file``, ``imgrec``)."""
    path = Path(path)
    mode = stat_existing(path, error, missing).st_mode
    if stat.S_ISDIR(mode):
        raise error(f"{path}: is a folder; {folder}")
    if not stat.S_ISREG(mode):
        raise error(f"{path}: not a regular file (a FIFO, socket or device); pass a file")
    return path


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON (NumPy numbers and arrays, paths too), atomically (records, manifest)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n")
    return Path(path)


def _json_default(value: Any) -> Any:
    for kind, convert in ((np.integer, int), (np.floating, float), (np.ndarray, np.ndarray.tolist), (Path, str)):
        if isinstance(value, kind):
            return convert(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _model_info(class_names: list[str] | None, input_scale: str, shape: list[int | None]) -> dict[str, Any]:
    if input_scale not in INPUT_SCALES:
        raise ImgrecError(f"input_scale must be one of {INPUT_SCALES}, got {input_scale!r}")
    return {"class_names": list(class_names) if class_names else None, "input_scale": input_scale,
            "input_shape": shape}


def save_model(model: Any, path: str | os.PathLike, class_names: list[str] | None = None,
               input_scale: str = "0-1") -> Path:
    """``model.save`` into one ``.keras`` file, atomically, with :func:`add_model_info` (tests, ``imgrec``)."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ImgrecError(f"{path}: a whole model is saved as a .keras file; use a name ending in .keras")
    with atomic_path(path) as tmp:
        model.save(tmp)
        add_model_info(tmp, model, class_names, input_scale)
    return path


def add_model_info(path: str | os.PathLike, model: Any, class_names: list[str] | None = None,
                   input_scale: str = "0-1") -> Path:
    """Add ``class_names`` (one sigmoid output: ``class_names[1]``'s probability) and ``input_scale`` to a ``.keras``
    file just saved, inside :func:`atomic_path`, for ``imgrec predict`` (lessons 02, 04); Keras ignores the entry."""
    info = _model_info(class_names, input_scale, [int(d) if d is not None else None for d in model.input_shape[1:]])
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(MODEL_INFO_ENTRY, json.dumps(info, indent=2))
    return Path(path)


def read_model_info(path: str | os.PathLike) -> dict[str, Any]:
    """What :func:`save_model` stored (``{}`` if none), checked, or one :class:`ModelError` line (``imgrec``)."""
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
    return _check_model_info(path, raw, "entry", "save the model again with imgrec_helpers.persistence.save_model")


def _check_model_info(path: Path, raw: bytes, kind: str, fix: str) -> dict[str, Any]:
    try:
        info = json.loads(bytes(raw))
    except (ValueError, TypeError):
        raise ModelError(f"{path}: its {MODEL_INFO_ENTRY} {kind} is not valid JSON; {fix}") from None
    if not isinstance(info, dict):
        raise ModelError(f"{path}: {MODEL_INFO_ENTRY} holds a {type(info).__name__}, not an object; {fix}")
    names, scale, shape = info.get("class_names"), info.get("input_scale", "0-1"), info.get("input_shape")
    if names is not None and (not isinstance(names, list) or not names
                              or not all(isinstance(n, str) and n.strip() for n in names)):
        raise ModelError(f"{path}: class_names in {MODEL_INFO_ENTRY} must be a list of non-empty strings, "
                         f"got {json.dumps(names)[:60]}; {fix}")
    if names is not None and len(set(names)) != len(names):
        raise ModelError(f"{path}: class_names in {MODEL_INFO_ENTRY} repeat a name; {fix}")
    if not isinstance(scale, str) or scale not in INPUT_SCALES:
        raise ModelError(f"{path}: unknown input_scale {json.dumps(scale)[:40]} in {MODEL_INFO_ENTRY}; it must be "
                         f"one of {', '.join(INPUT_SCALES)}; {fix}")
    if shape is not None and (not isinstance(shape, list)
                              or not all(d is None or (isinstance(d, int) and not isinstance(d, bool) and d > 0)
                                         for d in shape)):
        raise ModelError(f"{path}: input_shape in {MODEL_INFO_ENTRY} must be a list of sizes, got "
                         f"{json.dumps(shape)[:60]}; {fix}")
    return info


def load_model(path: str | os.PathLike, compile: bool = True) -> Any:
    """A ``.keras`` model saved by this course, or one :class:`ModelError` line (``imgrec predict``, the tests)."""
    path = check_model_file(path)
    import keras  # here, not at the top: importing Keras takes about 10 s
    try:
        with warnings.catch_warnings():
            if not compile:  # Keras still reads the optimizer state and warns when it does not fit
                warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            return keras.models.load_model(path, compile=compile)
    except Exception as exc:  # Keras raises many types for a file that is not a model
        raise ModelError(f"{path}: not a Keras model file this course can load ({type(exc).__name__}); "
                         "save one with imgrec_helpers.persistence.save_model") from None


def check_model_file(path: str | os.PathLike) -> Path:
    """A ``.keras`` file with a valid ``imgrec.json``, checked without TensorFlow (``imgrec predict``)."""
    path = existing_file(path, ModelError, "no such model file; train one in lesson 02 or 04, or check the path",
                         "pass a .keras model file")
    if path.suffix != ".keras":
        raise ModelError(f"{path}: not a .keras file; pass a model saved by this course (lesson 02 or 04)")
    read_model_info(path)
    return path


def save_tflite_info(path: str | os.PathLike, class_names: list[str] | None = None,
                     input_scale: str = "0-1") -> Path:
    """Store class names and input scaling in a ``.tflite`` file's own metadata list, as :func:`save_model` does
    (lesson 07): the LiteRT interpreter ignores it, ``imgrec predict`` reads it. Rewrites the file atomically."""
    # imported here, not at the top: the LiteRT schema takes 0.4 s to import, which every other helper would pay
    from ai_edge_litert import schema_py_generated as schema
    import flatbuffers
    path = check_tflite_file(path)
    model = schema.ModelT.InitFromPackedBuf(bytearray(path.read_bytes()), 0)
    shape = [int(d) for d in model.subgraphs[0].tensors[model.subgraphs[0].inputs[0]].shape[1:]]
    model.metadata = model.metadata or []
    entry = next((m for m in model.metadata if m.name in (MODEL_INFO_ENTRY, MODEL_INFO_ENTRY.encode())), None)
    if entry is None:  # a new entry and its buffer; stored again, the same entry gets the new JSON
        entry = schema.MetadataT()
        entry.name, entry.buffer = MODEL_INFO_ENTRY, len(model.buffers)
        model.buffers.append(schema.BufferT())
        model.metadata.append(entry)
    model.buffers[entry.buffer].data = np.frombuffer(
        json.dumps(_model_info(class_names, input_scale, shape)).encode("utf-8"), dtype=np.uint8)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    with atomic_path(path) as tmp:
        tmp.write_bytes(builder.Output())
    return path


def check_tflite_file(path: str | os.PathLike) -> Path:
    """A whole LiteRT flatbuffer, checked without TensorFlow (``imgrec predict``), or one :class:`ModelError` line."""
    path = existing_file(path, ModelError, "no such model file; export one in lesson 07, or check the path",
                         "pass a .tflite model file")
    _tflite_model(path)
    return path


def _tflite_model(path: Path) -> Any:
    from ai_edge_litert import schema_py_generated as schema  # 0.4 s to import, see save_tflite_info
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
        whole = schema.ModelT.InitFromObj(model)  # read lazily otherwise: unpacking all finds a truncated file
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
    """What :func:`save_tflite_info` stored (``{}`` if nothing), checked like :func:`read_model_info` (``imgrec``)."""
    path = Path(path)
    model = _tflite_model(path)
    for m in range(model.MetadataLength()):
        entry = model.Metadata(m)
        if entry.Name() in (MODEL_INFO_ENTRY.encode(), MODEL_INFO_ENTRY):
            return _check_model_info(path, model.Buffers(entry.Buffer()).DataAsNumpy(), "metadata",
                                     "store it again with imgrec_helpers.persistence.save_tflite_info")
    return {}


def save_features(path: str | os.PathLike, features: np.ndarray, labels: np.ndarray | None = None,
                  **extra: Any) -> Path:
    """Save features, their labels (if any) and ``extra`` arrays to one ``.npz`` file, atomically (lessons 03, 04)."""
    path = Path(path)
    if path.suffix != ".npz":
        raise ImgrecError(f"{path}: features are saved as .npz; use a name ending in .npz")
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, features=features, **({} if labels is None else {"labels": labels}), **extra)
    return path


def load_features(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The arrays :func:`save_features` wrote, by name (lessons 03-05), or one :class:`ImgrecError` line."""
    path = Path(path)
    if not path.is_file():
        raise ImgrecError(f"{path}: no features file; run the feature-extraction cell first")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except Exception as exc:
        raise ImgrecError(f"{path}: not a readable features file ({exc}); extract the features again") from None
