"""``imgrec predict`` and ``imgrec evaluate``: image -> array -> scale -> batch -> predict -> labels (the steps
lessons 02-04 take themselves), for a ``.keras`` classifier saved by the course, a ``.tflite`` file exported in
lesson 07 (run by the LiteRT interpreter) or a pretrained ImageNet model by name."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from .. import applications, data, sources
from ..errors import DataError, ImageError, ImgrecError, ModelError
from ..persistence import check_model_file, check_tflite_file, load_model, read_model_info, read_tflite_info
from ..quiet import import_tensorflow, library_output

BATCH_SIZE = 64  # images read and predicted together: one model call per batch, memory bounded by two batches
Result = Iterator[tuple[str, "list[dict[str, Any]] | ImgrecError"]]  # (image, [{label, probability, wnid?}])


@dataclass
class Predictor:
    """A loaded model and what labelling images needs (made by :func:`load_predictor`)."""

    name: str
    model: Any
    image_size: tuple[int, int]
    kind: str  # "saved" (a .keras file), "litert" (a .tflite file) or "imagenet" (by name)
    class_names: list[str] | None = None
    input_scale: str = "0-1"  # "0-1": pixels divided by 255; "0-255": raw values

    def predict_batch(self, images: np.ndarray, k: int) -> list[list[dict[str, Any]]]:
        """Top-``k`` labels of a batch of RGB uint8 images, in one call (``predict_on_batch``: no per-call set-up)."""
        batch = np.asarray(images, dtype=np.float32)
        if self.kind == "imagenet":
            module = applications.application(self.name).keras_module()  # e.g. keras.applications.vgg16
            probs = np.asarray(self.model.predict_on_batch(module.preprocess_input(batch)))
            return [[{"label": str(label), "probability": float(p), "wnid": str(wnid)} for wnid, label, p in row]
                    for row in module.decode_predictions(probs, top=k)]
        batch = batch / 255.0 if self.input_scale == "0-1" else batch
        probs = self.model(batch) if self.kind == "litert" else self.model.predict_on_batch(batch)
        probs = np.asarray(probs, dtype=np.float64).reshape(len(batch), -1)
        if probs.shape[1] == 1:  # one sigmoid output: the probability of class_names[1]
            probs = np.hstack([1.0 - probs, probs])
        return [[{"label": str(self.class_names[i]), "probability": float(row[i])} for i in np.argsort(-row)[:k]]
                for row in probs]

    def predict_files(self, paths: Sequence[str], k: int = 3, batch_size: int = BATCH_SIZE) -> Result:
        """``(path, labels)`` for every path in order, each batch as soon as it is predicted; a file that is not a
        readable image gives ``(path, ImageError)``. Threads decode the next batch while the model predicts this."""
        def read(path: str) -> np.ndarray | ImgrecError:
            try:
                return data.load_image(path, self.image_size)
            except ImageError as exc:
                return exc

        chunks = [paths[start:start + batch_size] for start in range(0, len(paths), batch_size)]
        pool = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="imgrec-read")
        try:  # Pillow releases the interpreter lock; at most two batches of images are in memory
            pending = [pool.submit(read, p) for p in chunks[0]] if chunks else []
            for chunk, following in zip(chunks, chunks[1:] + [[]]):
                results = [f.result() for f in pending]
                pending = [pool.submit(read, p) for p in following]
                images = [r for r in results if isinstance(r, np.ndarray)]
                labels = iter(self.predict_batch(np.stack(images), k) if images else [])
                for path, result in zip(chunk, results):
                    yield path, (next(labels) if isinstance(result, np.ndarray) else result)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)


def check_model_spec(spec: str) -> str:
    """``imgrec predict``'s MODEL, checked without TensorFlow: ``"litert"``, ``"saved"``, ``"imagenet"`` or one line."""
    if spec.endswith(".tflite"):
        check_tflite_file(spec)
        return "litert"
    if spec.endswith(".keras") or os.path.exists(spec):
        check_model_file(spec)
        return "saved"
    applications.application(spec)  # lists the known names for a typo
    return "imagenet"


class LiteRTModel:
    """A ``.tflite`` file in the LiteRT interpreter, called like a model: ``probabilities = m(batch)``. The batch
    dimension is resized to each batch (lesson 07 exports a free one), so 64 photos are one ``invoke``."""

    def __init__(self, path: Path) -> None:
        from ai_edge_litert.interpreter import Interpreter  # 0.3 s to import; only .tflite files need it

        try:
            with library_output():  # LiteRT's "Created XNNPACK delegate" line on standard error
                self.interpreter = Interpreter(model_path=str(path), num_threads=os.cpu_count())
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ModelError(f"{path}: the LiteRT interpreter cannot load it ({first[:120]}); export it again "
                             "(lesson 07)") from None
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.input_shape, self.output_shape = (tuple(None if d < 0 else int(d) for d in details["shape_signature"])
                                               for details in (self.input, self.output))

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        kind = self.input["dtype"]
        scale, zero = self.input["quantization"]
        if np.issubdtype(kind, np.integer) and scale:  # an int8 or uint8 input: through its scale and zero point
            batch = np.clip(np.round(batch / scale + zero), np.iinfo(kind).min, np.iinfo(kind).max)
        batch = batch.astype(kind)
        if len(batch) != self.input["shape"][0]:
            with library_output():
                self.interpreter.resize_tensor_input(self.input["index"], [len(batch), *batch.shape[1:]])
                self.interpreter.allocate_tensors()
            self.input = self.interpreter.get_input_details()[0]
        self.interpreter.set_tensor(self.input["index"], batch)
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self.output["index"]).astype(np.float32)
        scale, zero = self.output["quantization"]
        return (out - zero) * scale if scale else out


def load_predictor(spec: str, data_home: str | os.PathLike | None = None) -> Predictor:
    """``imgrec predict``'s and ``evaluate``'s MODEL loaded, its input size and class names checked (one line)."""
    kind, path = check_model_spec(spec), Path(spec)
    if kind == "imagenet":
        applications.prepare_keras_cache(sources.data_home(data_home))
        size = applications.input_size(spec)
        return Predictor(spec, applications.load_application(spec), (size, size), kind)
    info = read_tflite_info(path) if kind == "litert" else read_model_info(path)
    names = list(info.get("class_names") or [])
    if not names:
        raise ModelError(f"{path}: has no class names stored; " + (
            "store them with persistence.save_tflite_info(path, class_names=...) after exporting (lesson 07)"
            if kind == "litert" else "save it with persistence.save_model(..., class_names=...)"))
    model = LiteRTModel(path) if kind == "litert" else load_model(path, compile=False)  # no optimizer state needed
    shape, outputs = model.input_shape, model.output_shape
    if isinstance(shape, list) or len(shape) != 4 or shape[-1] != 3:
        raise ModelError(f"{path}: the model takes input of shape {shape}, not images (None, height, width, 3); "
                         "imgrec predict labels RGB images with a one-input image classifier")
    if None in shape[1:3]:
        raise ModelError(f"{path}: the model does not say its input size; save it with a fixed input shape")
    if isinstance(outputs, list) or len(outputs) != 2 or outputs[-1] not in (len(names), 1 if len(names) == 2 else -1):
        raise ModelError(f"{path}: the model's output has shape {outputs} but {len(names)} class names are stored "
                         f"({', '.join(names)[:80]}); save it with one class name per output")
    return Predictor(path.name, model, (int(shape[2]), int(shape[1])), kind, names, info.get("input_scale", "0-1"))


def predict(spec: str, arguments: Sequence[str], k: int, data_home: str | None = None) -> Result:
    """``imgrec predict``: top-``k`` labels per image (a folder: its own files); checked before TensorFlow starts."""
    kind, files = check_model_spec(spec), []
    for argument in arguments:
        if not os.path.isdir(argument):
            data.check_image_file(argument)
            files.append(argument)
        elif found := data.list_images(argument):
            files.extend(str(p) for p in found)
        else:
            raise ImgrecError(f"{argument}: a folder with no image files in it ({', '.join(data.IMAGE_EXTENSIONS)}); "
                              "pass image files or a folder of them")
    if kind != "litert":
        import_tensorflow()
    return load_predictor(spec, data_home).predict_files(files, k)


def evaluate(spec: str, root: str | os.PathLike) -> Iterator[tuple[str, int, int]]:
    """``imgrec evaluate``: ``(class name, correct, images)`` of a saved ``.keras`` classifier on each class folder of
    ``root`` (images in sub-folders count, hidden files do not: as ``keras.utils.image_dataset_from_directory``)."""
    if not spec.endswith(".keras") and not os.path.exists(spec):
        raise ModelError(f"{spec}: no such .keras file; evaluate scores a classifier saved by the course "
                         "(e.g. runs/.../models/alpaca.keras), not a pretrained model name")
    names = read_model_info(check_model_file(spec)).get("class_names")
    if not names:
        raise ModelError(f"{spec}: has no class names stored; evaluate needs a classifier saved with "
                         "persistence.save_model(..., class_names=...)")
    folders = data.class_folders(root)  # a clear error for a missing, empty or one-class folder
    if unknown := [name for name in folders if name not in names]:  # a typo or another set's: not a meaningless score
        raise DataError(f"{root}: folder(s) {', '.join(unknown)} are not classes of {Path(spec).name} "
                        f"({', '.join(names)}); rename them to the model's class names")
    images = {name: data.list_images(Path(root) / name, recursive=True) for name in folders}
    import_tensorflow()
    predictor = load_predictor(spec)
    for name, paths in images.items():
        correct = 0
        for _, labels in predictor.predict_files(paths, 1):
            if isinstance(labels, ImgrecError):  # a score without it would be silently wrong
                raise ImageError(f"{labels}; or remove it from {Path(root) / name} (every image is scored)")
            correct += labels[0]["label"] == name
        yield name, correct, len(paths)
