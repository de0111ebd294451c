"""Predicting single images: image -> array -> scale -> batch dimension -> predict -> labels.

Lesson 02 predicts a CIFAR-10 test image and a real photo with its own CNN; lessons 03 and 04 predict
photos with pretrained and transfer-learned models; ``imgrec predict`` does the same from the shell,
for any ``.keras`` classifier saved by the course or a pretrained ImageNet model by name.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import data
from .errors import DataError, ImageError, ModelError
from .persistence import load_model, read_model_info


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


def predict_image(model, image: np.ndarray, class_names: Sequence[str], input_scale: str = "0-1",
                  k: int = 3) -> list[Prediction]:
    """Top-``k`` predictions for one RGB uint8 image already at the model's input size (lesson 02)."""
    batch = data.images_to_batch(image)  # add the batch dimension: (1, H, W, 3)
    expected = tuple(model.input_shape[1:3])
    if None not in expected and tuple(batch.shape[1:3]) != expected:
        raise ImageError(f"image is {batch.shape[1]}x{batch.shape[2]} but the model wants {expected[0]}x{expected[1]}; "
                         "load it with data.load_image(path, size)")
    probs = model.predict(scale_pixels(batch, input_scale), verbose=0)[0]
    return top_k(probs, class_names, k)


def describe(predictions: Sequence[Prediction], truth: str | None = None) -> str:
    """'cat 83.1% (correct)' style line for the best prediction; with the truth when known."""
    best = predictions[0]
    text = f"{best.label} {best.probability * 100:.1f}%"
    if truth is not None:
        text += " (correct)" if best.label == truth else f" (incorrect: it is {truth})"
    return text


# --------------------------------------------------------------------------------------------
# imgrec predict
# --------------------------------------------------------------------------------------------


@dataclass
class Predictor:
    """A loaded model with what is needed to label images: made by :func:`load_predictor`."""

    name: str
    model: Any
    image_size: tuple[int, int]
    kind: str                      # "saved" (a .keras file) or "imagenet" (a pretrained model by name)
    class_names: list[str] | None = None
    input_scale: str = "0-1"

    def predict_file(self, path: str | os.PathLike, k: int = 3) -> list[Prediction]:
        """Top-``k`` predictions for one image file of any size or mode."""
        image = data.load_image(path, self.image_size)
        if self.kind == "imagenet":
            from .applications import application

            module = application(self.name).keras_module()  # e.g. keras.applications.vgg16
            batch = module.preprocess_input(data.images_to_batch(image).astype(np.float32))
            probs = self.model.predict(batch, verbose=0)
            return [Prediction(str(label), float(p), str(wnid))
                    for wnid, label, p in module.decode_predictions(probs, top=k)[0]]
        return predict_image(self.model, image, self.class_names or [], self.input_scale, k)


def load_predictor(spec: str, data_home: str | os.PathLike | None = None) -> Predictor:
    """A ``.keras`` file saved by the course, or the name of a pretrained ImageNet model (``vgg16``...)."""
    path = Path(spec)
    if spec.endswith(".keras") or path.exists():
        model = load_model(path, compile=False)  # predictions need no optimizer state
        info = read_model_info(path)
        names = info.get("class_names")
        if not names:
            raise ModelError(f"{path}: has no class names stored; save it with persistence.save_model(..., class_names=...)")
        height, width = model.input_shape[1:3]
        if height is None or width is None:
            raise ModelError(f"{path}: the model does not say its input size; save it with a fixed input shape")
        return Predictor(path.name, model, (int(width), int(height)), "saved", list(names),
                         info.get("input_scale", "0-1"))
    from . import applications, weights

    weights.prepare_keras_cache(data.data_home(data_home))
    model = applications.load_application(spec)
    size = applications.input_size(spec)
    return Predictor(spec, model, (size, size), "imagenet")


def evaluate_folder(predictor: Predictor, root: str | os.PathLike) -> dict[str, Any]:
    """Accuracy of a saved classifier on a labelled ``root/<class name>/<image>`` folder (``imgrec evaluate``).

    Every sub-folder must be named after one of the model's classes (the names stored with it), so
    that a typo or another data set's folders give a clear error instead of a meaningless score.
    Returns ``{"images", "correct", "accuracy", "per_class": {name: (correct, total)}}``.
    """
    if predictor.kind != "saved" or not predictor.class_names:
        raise ModelError(f"{predictor.name}: evaluate needs a .keras classifier saved with its class names")
    folders = data.class_folders(root)  # a clear error for a missing, empty or one-class folder
    unknown = [name for name in folders if name not in predictor.class_names]
    if unknown:
        raise DataError(f"{root}: folder(s) {', '.join(unknown)} are not classes of {predictor.name} "
                        f"({', '.join(predictor.class_names)}); rename them to the model's class names")
    per_class: dict[str, tuple[int, int]] = {}
    for name in folders:
        paths = data.list_images(Path(root) / name)
        correct = sum(predictor.predict_file(p, 1)[0].label == name for p in paths)
        per_class[name] = (correct, len(paths))
    images = sum(total for _, total in per_class.values())
    correct = sum(c for c, _ in per_class.values())
    return {"images": images, "correct": correct, "accuracy": correct / images, "per_class": per_class}
