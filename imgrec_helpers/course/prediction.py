"""Predicting single images: image -> array -> scale -> batch dimension -> predict -> labels.

Lesson 02 predicts a CIFAR-10 test image and a real photo with its own CNN; lessons 03 and 04 predict
photos with pretrained and transfer-learned models; ``imgrec predict`` does the same from the shell,
for any ``.keras`` classifier saved by the course, a ``.tflite`` file exported in lesson 07 (run by the
LiteRT interpreter) or a pretrained ImageNet model by name.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .. import data
from ..errors import DataError, ImageError, ImgrecError, ModelError
from ..persistence import check_model_file, check_tflite_file, load_model, read_model_info, read_tflite_info
from ..quiet import library_output


@dataclass
class Prediction:
    """One label and its probability (``wnid`` for ImageNet models, else None)."""

    label: str
    probability: float
    wnid: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"label": self.label, "probability": round(float(self.probability), 6)}
        if self.wnid is not None:
            out["wnid"] = self.wnid
        return out


def scale_pixels(batch: np.ndarray, input_scale: str) -> np.ndarray:
    """uint8 pixels as the model wants them: ``"0-1"`` divides by 255, ``"0-255"`` keeps raw values."""
    batch = np.asarray(batch, dtype=np.float32)
    return batch / 255.0 if input_scale == "0-1" else batch


def top_k(probabilities: np.ndarray, class_names: Sequence[str], k: int = 3) -> list[Prediction]:
    """The ``k`` most likely classes of one probability vector (softmax) or one sigmoid output.

    A single sigmoid output is the probability of ``class_names[1]``; the other class gets the rest.
    """
    probs = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    if probs.size == 1:
        if len(class_names) != 2:
            raise ModelError("a single sigmoid output needs exactly two class names")
        probs = np.array([1.0 - probs[0], probs[0]])
    if len(class_names) != probs.size:
        raise ModelError(f"the model has {probs.size} outputs but {len(class_names)} class names")
    order = np.argsort(-probs)[: max(1, k)]
    return [Prediction(str(class_names[i]), float(probs[i])) for i in order]


# --------------------------------------------------------------------------------------------
# imgrec predict
# --------------------------------------------------------------------------------------------


BATCH_SIZE = 64
"""Images read and predicted together by ``imgrec predict`` and ``imgrec evaluate``: one
``model.predict`` call per batch, memory bounded by one batch of images."""


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


@dataclass
class Predictor:
    """A loaded model with what is needed to label images: made by :func:`load_predictor`."""

    name: str
    model: Any
    image_size: tuple[int, int]
    kind: str                      # "saved" (a .keras file), "litert" (a .tflite file) or "imagenet" (by name)
    class_names: list[str] | None = None
    input_scale: str = "0-1"

    def predict_batch(self, images: np.ndarray, k: int = 3) -> list[list[Prediction]]:
        """Top-``k`` predictions for a batch of RGB uint8 images at :attr:`image_size`, in one call
        of the model (``predict_on_batch``: the whole batch at once, without ``predict``'s per-call set-up)."""
        if self.kind == "imagenet":
            from ..applications import application

            module = application(self.name).keras_module()  # e.g. keras.applications.vgg16
            batch = module.preprocess_input(np.asarray(images, dtype=np.float32))
            probs = np.asarray(self.model.predict_on_batch(batch))
            return [[Prediction(str(label), float(p), str(wnid)) for wnid, label, p in row]
                    for row in module.decode_predictions(probs, top=k)]
        if self.kind == "litert":
            probs = self.model(scale_pixels(images, self.input_scale))
        else:
            probs = np.asarray(self.model.predict_on_batch(scale_pixels(images, self.input_scale)))
        return [top_k(row, self.class_names or [], k) for row in probs]

    def predict_file(self, path: str | os.PathLike, k: int = 3) -> list[Prediction]:
        """Top-``k`` predictions for one image file of any size or mode."""
        return self.predict_batch(data.images_to_batch(data.load_image(path, self.image_size)), k)[0]

    def predict_files(self, paths: Sequence[str | os.PathLike], k: int = 3, batch_size: int = BATCH_SIZE
                      ) -> Iterator[tuple[str | os.PathLike, list[Prediction] | ImgrecError]]:
        """``(path, predictions)`` for every path, in order, reading and predicting ``batch_size``
        images at a time (``imgrec predict``, ``imgrec evaluate``).

        Results come out batch by batch, as soon as each batch is predicted. Photos are decoded by a
        few threads (Pillow releases the interpreter lock), the next batch while the model predicts
        this one, so at most two batches of images are in memory whatever the number of paths.
        A file that cannot be read as an image gives ``(path, ImageError)`` in its place and the other
        images are still predicted: the caller decides what to do with it.
        """
        from concurrent.futures import ThreadPoolExecutor

        def read(path: str | os.PathLike) -> np.ndarray | ImgrecError:
            try:
                return data.load_image(path, self.image_size)
            except ImageError as exc:
                return exc

        chunks = list(_chunks(list(paths), batch_size))
        pool = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="imgrec-read")
        try:
            pending = [pool.submit(read, p) for p in chunks[0]] if chunks else []
            for i, chunk in enumerate(chunks):
                results = [f.result() for f in pending]
                pending = [pool.submit(read, p) for p in chunks[i + 1]] if i + 1 < len(chunks) else []
                images = [r for r in results if isinstance(r, np.ndarray)]
                predictions = iter(self.predict_batch(np.stack(images), k) if images else [])
                for path, result in zip(chunk, results):
                    yield path, (next(predictions) if isinstance(result, np.ndarray) else result)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)


def check_model_spec(spec: str) -> str:
    """What ``imgrec predict`` can check about ``spec`` before it imports TensorFlow: ``"saved"`` for a
    readable ``.keras`` file (:func:`~imgrec_helpers.persistence.check_model_file`), ``"litert"`` for a whole
    ``.tflite`` file (:func:`~imgrec_helpers.persistence.check_tflite_file`), ``"imagenet"`` for a known
    pretrained model name; one-line :class:`ModelError` otherwise."""
    if spec.endswith(".tflite"):
        check_tflite_file(spec)
        return "litert"
    if spec.endswith(".keras") or os.path.exists(spec):
        check_model_file(spec)
        return "saved"
    from ..applications import application

    application(spec)  # lists the known names for a typo
    return "imagenet"


def _check_saved_model(path: Path, model: Any, names: list[str]) -> tuple[int, int]:
    """The (width, height) a saved classifier takes; one line when its input is not H x W x 3 images
    or its outputs do not match its class names."""
    shape = model.input_shape
    if isinstance(shape, list) or len(shape) != 4 or shape[-1] != 3:
        raise ModelError(f"{path}: the model takes input of shape {shape}, not images (None, height, width, 3); "
                         "imgrec predict labels RGB images with a one-input image classifier")
    height, width = shape[1:3]
    if height is None or width is None:
        raise ModelError(f"{path}: the model does not say its input size; save it with a fixed input shape")
    outputs = model.output_shape
    if isinstance(outputs, list) or len(outputs) != 2 or outputs[-1] not in (len(names), 1 if len(names) == 2 else -1):
        raise ModelError(f"{path}: the model's output has shape {outputs} but {len(names)} class names are stored "
                         f"({', '.join(names)[:80]}); save it with one class name per output")
    return int(width), int(height)


class LiteRTModel:
    """A ``.tflite`` file in the LiteRT interpreter, called like a model on a batch: ``probabilities = m(batch)``.

    ``imgrec predict`` on lesson 07's exports. The batch dimension is resized to each batch's length (the
    course exports with a free batch dimension), so a batch of 64 photos is one ``invoke``.
    """

    def __init__(self, path: Path) -> None:
        from ai_edge_litert.interpreter import Interpreter

        try:
            with library_output():  # LiteRT's "Created XNNPACK delegate" line on standard error
                self.interpreter = Interpreter(model_path=str(path), num_threads=os.cpu_count())
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{path}: the LiteRT interpreter cannot load it ({first[:120]}); export it again "
                             "(lesson 07)") from None
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.input_shape = tuple(None if d < 0 else int(d) for d in self.input["shape_signature"])
        self.output_shape = tuple(None if d < 0 else int(d) for d in self.output["shape_signature"])
        self._batch = int(self.input["shape"][0])

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        batch = _quantized(np.asarray(batch, dtype=np.float32), self.input)
        if len(batch) != self._batch:
            with library_output():
                self.interpreter.resize_tensor_input(self.input["index"], [len(batch), *batch.shape[1:]])
                self.interpreter.allocate_tensors()
            self._batch = len(batch)
        self.interpreter.set_tensor(self.input["index"], batch)
        self.interpreter.invoke()
        out = np.array(self.interpreter.get_tensor(self.output["index"]))
        scale, zero = self.output["quantization"]
        return (out.astype(np.float32) - zero) * scale if scale else out.astype(np.float32)


def _quantized(batch: np.ndarray, details: dict[str, Any]) -> np.ndarray:
    """Float pixels as an input tensor wants them: unchanged for float inputs, through the tensor's scale and
    zero point for an integer input (a model exported with int8 or uint8 input)."""
    scale, zero = details["quantization"]
    if not np.issubdtype(details["dtype"], np.integer) or not scale:
        return batch.astype(details["dtype"])
    info = np.iinfo(details["dtype"])
    return np.clip(np.round(batch / scale + zero), info.min, info.max).astype(details["dtype"])


def load_predictor(spec: str, data_home: str | os.PathLike | None = None) -> Predictor:
    """A ``.keras`` file saved by the course, a ``.tflite`` file exported in lesson 07, or the name of a
    pretrained ImageNet model (``vgg16``...)."""
    path = Path(spec)
    kind = check_model_spec(spec)
    if kind == "litert":
        info = read_tflite_info(path)
        names = info.get("class_names")
        if not names:
            raise ModelError(f"{path}: has no class names stored; store them with "
                             "persistence.save_tflite_info(path, class_names=...) after exporting (lesson 07)")
        model = LiteRTModel(path)
        size = _check_saved_model(path, model, list(names))
        return Predictor(path.name, model, size, "litert", list(names), info.get("input_scale", "0-1"))
    if kind == "saved":
        info = read_model_info(path)
        names = info.get("class_names")
        if not names:
            raise ModelError(f"{path}: has no class names stored; save it with persistence.save_model(..., class_names=...)")
        model = load_model(path, compile=False)  # predictions need no optimizer state
        size = _check_saved_model(path, model, list(names))
        return Predictor(path.name, model, size, "saved", list(names), info.get("input_scale", "0-1"))
    from .. import applications, sources, weights

    weights.prepare_keras_cache(sources.data_home(data_home))
    model = applications.load_application(spec)
    size = applications.input_size(spec)
    return Predictor(spec, model, (size, size), "imagenet")


def evaluation_folders(predictor_name: str, class_names: Sequence[str], root: str | os.PathLike
                       ) -> dict[str, list[Path]]:
    """The images of each class folder of ``root`` (sub-folders included, hidden files skipped, as
    ``keras.utils.image_dataset_from_directory`` reads them), after checking that every class folder
    is one of ``class_names``. No TensorFlow needed: ``imgrec evaluate`` calls it before loading the model."""
    folders = data.class_folders(root)  # a clear error for a missing, empty or one-class folder
    unknown = [name for name in folders if name not in class_names]
    if unknown:
        raise DataError(f"{root}: folder(s) {', '.join(unknown)} are not classes of {predictor_name} "
                        f"({', '.join(class_names)}); rename them to the model's class names")
    return {name: data.list_images(Path(root) / name, recursive=True) for name in folders}


def evaluate_folder(predictor: Predictor, root: str | os.PathLike,
                    progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Accuracy of a saved classifier on a labelled ``root/<class name>/<image>`` folder (``imgrec evaluate``).

    Every sub-folder must be named after one of the model's classes (the names stored with it), so
    that a typo or another data set's folders give a clear error instead of a meaningless score.
    Images in sub-folders of a class folder count for that class; hidden files (``.name``, macOS'
    ``._photo.jpg``) are skipped. Images are predicted :data:`BATCH_SIZE` at a time; ``progress``
    is called with ``(class name, correct, total)`` as soon as each class is done. An image that
    cannot be read stops the evaluation (a score without it would be silently wrong).
    Returns ``{"images", "correct", "accuracy", "per_class": {name: (correct, total)}}``.
    """
    if predictor.kind != "saved" or not predictor.class_names:
        raise ModelError(f"{predictor.name}: evaluate needs a .keras classifier saved with its class names")
    per_class: dict[str, tuple[int, int]] = {}
    for name, paths in evaluation_folders(predictor.name, predictor.class_names, root).items():
        correct = 0
        for path, result in predictor.predict_files(paths, 1):
            if isinstance(result, ImgrecError):
                raise ImageError(f"{result}; or remove it from {Path(root) / name} (every image is scored)")
            correct += result[0].label == name
        per_class[name] = (correct, len(paths))
        if progress is not None:
            progress(name, correct, len(paths))
    images = sum(total for _, total in per_class.values())
    correct = sum(c for c, _ in per_class.values())
    return {"images": images, "correct": correct, "accuracy": correct / images, "per_class": per_class}
