"""Pretrained Keras Applications (VGG16, ResNet50, InceptionV3, MobileNet...): weights, predictions,
features and transfer-learning models.

Lesson 03 uses the registry, :func:`load_application`, :func:`preprocess_input`,
:func:`decode_predictions` and the feature extractor; lesson 04 adds the transfer-learning builders
and :func:`freeze`; ``imgrec predict`` uses the registry and the loaders.

**Where weights come from.** Keras downloads ImageNet weights on first use into its cache,
``$KERAS_HOME/models/`` (``~/.keras/models/``, or ``/tmp/.keras/models/`` when the home folder is
not writable), and never again afterwards. :func:`prepare_keras_cache` makes files already present
in the data home's ``keras/models/`` folder visible there (a link per file), so classroom machines
with no internet use the same Keras code path. Nothing here writes into the data home.

Every function takes what it needs as arguments: there is no module-level state besides the
constant registry :data:`APPLICATIONS`.
"""
from __future__ import annotations

import os
import shutil
import socket
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .errors import ImageError, ModelError, WeightsError

KERAS_WEIGHTS_HOST = "https://storage.googleapis.com/tensorflow/keras-applications/"
CLASS_INDEX_FILE = "imagenet_class_index.json"
IMAGENET_TRAIN_IMAGES = 1_281_167
"""Images in the ImageNet-1k training set, what every ``weights="imagenet"`` model learned from (lesson 03)."""

DOMESTIC_CAT_WNIDS: dict[str, str] = {
    "n02123045": "tabby", "n02123159": "tiger_cat", "n02123394": "Persian_cat",
    "n02123597": "Siamese_cat", "n02124075": "Egyptian_cat",
}
"""ImageNet's five house-cat classes: lesson 03 checks a cat photo gets one of them in its top 5."""

ESPRESSO_WNID = "n07920052"
"""ImageNet's "espresso" class (lesson 03 checks the coffee photo)."""


# --------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Application:
    """One Keras Applications model as the course knows it (lessons 03, 04, ``imgrec predict``).

    ``top_file`` / ``notop_file`` are the weight file names Keras looks for in its cache, with
    ``{size}`` standing for the input size where Keras names files by it; ``*_mb`` are their
    approximate download sizes. ``preprocess_mode`` is Keras' name for the input scaling:
    ``"caffe"`` (RGB -> BGR, minus the ImageNet mean per channel) or ``"tf"`` (to [-1, 1]).
    """

    name: str
    display: str
    constructor: str                       # attribute of keras.applications
    module: str                            # keras.applications submodule with preprocess_input
    size: int                              # default input size
    sizes: tuple[int, ...]                 # sizes with ImageNet weights (with top: only ``size``)
    preprocess_mode: str
    top_file: str
    notop_file: str
    top_mb: float
    notop_mb: float
    kwargs: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    def weight_file(self, include_top: bool, size: int | None = None) -> str:
        """The file name Keras looks for in its cache for these settings."""
        pattern = self.top_file if include_top else self.notop_file
        return pattern.format(size=size if size in self.sizes else self.size)

    def download_mb(self, include_top: bool) -> float:
        return self.top_mb if include_top else self.notop_mb


APPLICATIONS: dict[str, Application] = {
    app.name: app
    for app in (
        Application("vgg16", "VGG16", "VGG16", "vgg16", 224, (224,), "caffe",
                    "vgg16_weights_tf_dim_ordering_tf_kernels.h5",
                    "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", 528, 56,
                    note="Oxford VGG, 2014: 16 weight layers, 138M parameters"),
        Application("resnet50", "ResNet50", "ResNet50", "resnet50", 224, (224,), "caffe",
                    "resnet50_weights_tf_dim_ordering_tf_kernels.h5",
                    "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", 98, 90,
                    note="Microsoft, 2015: residual (skip) connections, 50 layers"),
        Application("inceptionv3", "InceptionV3", "InceptionV3", "inception_v3", 299, (299,), "tf",
                    "inception_v3_weights_tf_dim_ordering_tf_kernels.h5",
                    "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5", 92, 84,
                    note="Google, 2015: parallel filters of several sizes; 299 px input"),
        Application("mobilenet-1.0", "MobileNet (alpha 1.0)", "MobileNet", "mobilenet", 224,
                    (128, 160, 192, 224), "tf", "mobilenet_1_0_{size}_tf.h5", "mobilenet_1_0_{size}_tf_no_top.h5",
                    16.4, 16.2, {"alpha": 1.0}, note="Google, 2017: depthwise separable convolutions, for phones"),
        Application("mobilenet-0.25", "MobileNet (alpha 0.25)", "MobileNet", "mobilenet", 224,
                    (128, 160, 192, 224), "tf", "mobilenet_2_5_{size}_tf.h5", "mobilenet_2_5_{size}_tf_no_top.h5",
                    2.0, 1.0, {"alpha": 0.25}, note="MobileNet with a quarter of the filters: 0.5M parameters"),
        Application("mobilenetv2-1.0", "MobileNetV2 (alpha 1.0)", "MobileNetV2", "mobilenet_v2", 224,
                    (96, 128, 160, 192, 224), "tf",
                    "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{size}.h5",
                    "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{size}_no_top.h5", 14, 9,
                    {"alpha": 1.0}, note="Google, 2018: inverted residual blocks; the alpaca tutorial's base"),
        Application("mobilenetv2-0.35", "MobileNetV2 (alpha 0.35)", "MobileNetV2", "mobilenet_v2", 224,
                    (96, 128, 160, 192, 224), "tf",
                    "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_{size}.h5",
                    "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_{size}_no_top.h5", 6.4, 2.0,
                    {"alpha": 0.35}, note="MobileNetV2 with 35% of the filters: 0.4M parameters without top"),
    )
}
"""The Keras Applications the course uses, by name (lower case, dashes). Lessons 03, 04, ``imgrec predict``."""


def application(name: str) -> Application:
    """The registry entry for ``name``; :class:`ModelError` listing the known names otherwise."""
    key = str(name).strip().lower()
    if key not in APPLICATIONS:
        raise ModelError(f"unknown pretrained model {name!r}; use one of: {', '.join(APPLICATIONS)}")
    return APPLICATIONS[key]


def model_names() -> list[str]:
    """The names :func:`load_application` accepts (lesson 03's tour, ``imgrec predict --model``)."""
    return list(APPLICATIONS)


def display_name(name: str) -> str:
    """How a model is named in headings and results, e.g. ``"VGG16"``, ``"MobileNet (alpha 0.25)"``."""
    return application(name).display


def input_size(name: str) -> int:
    """The default (square) input size in pixels: 224 for VGG16, 299 for InceptionV3 (lesson 03)."""
    return application(name).size


# --------------------------------------------------------------------------------------------
# The Keras cache
# --------------------------------------------------------------------------------------------


def keras_cache_dir() -> Path:
    """The folder Keras keeps downloaded weights in, exactly as ``keras.utils.get_file`` chooses it.

    ``$KERAS_HOME/models`` (default ``~/.keras/models``); when that base folder is not writable,
    Keras uses ``/tmp/.keras/models`` instead, and so does this function (lessons 03, 04).
    """
    import tempfile

    from keras.src.backend import config

    base = os.path.expanduser(config.keras_home())
    if not os.access(base, os.W_OK):
        base = os.path.join("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir(), ".keras")
    return Path(base) / "models"


def _data_home(data_home: str | os.PathLike | None) -> Path:
    from .data import data_home as _home

    return _home(data_home)


def prepare_keras_cache(data_home: str | os.PathLike | None = None) -> list[Path]:
    """Make Keras find the weight files already in ``<data home>/keras/models/`` (lessons 03, 04).

    Each file there is linked (symbolic link, or copied if links are not possible) into
    :func:`keras_cache_dir` unless a file of that name is already in the cache. Returns the cache
    paths that now point at the data home's files (new or already linked). The data home is only
    read. Files that are in neither place are downloaded by Keras as usual on first use.
    """
    source = _data_home(data_home) / "keras" / "models"
    if not source.is_dir():
        return []
    cache = keras_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    linked = []
    for src in sorted(p for p in source.iterdir() if p.is_file()):
        target = cache / src.name
        if target.is_symlink() and not target.exists():  # a dangling link from an old data home
            target.unlink()
        if target.exists():
            if target.is_symlink() and target.resolve() == src.resolve():
                linked.append(target)
            continue
        try:
            target.symlink_to(src.resolve())
        except OSError:
            tmp = target.with_name(f".{target.name}.partial")
            shutil.copyfile(src, tmp)
            os.replace(tmp, target)
        linked.append(target)
    return linked


def _cached_weights(app: Application, include_top: bool, size: int | None) -> Path | None:
    """The cached file holding the weights for these settings, if any.

    Without the top, the convolutional weights do not depend on the input size, so a file saved
    for another size of the same model serves as well (MobileNetV2 0.35 at 160 px loads the 224 px file).
    """
    cache = keras_cache_dir()
    exact = cache / app.weight_file(include_top, size)
    if exact.is_file():
        return exact
    if not include_top and "{size}" in app.notop_file:
        for other in app.sizes:
            candidate = cache / app.notop_file.format(size=other)
            if candidate.is_file():
                return candidate
    return None


def weights_available(name: str, include_top: bool = True, size: int | None = None) -> bool:
    """True when the ImageNet weights for these settings are in the Keras cache (lessons 03, 04)."""
    return _cached_weights(application(name), include_top, size) is not None


def weights_status(name: str, include_top: bool = True, size: int | None = None) -> str:
    """``"cached"`` or ``"not cached (downloads ~528 MB on first use)"`` (lesson 03's tour)."""
    app = application(name)
    if _cached_weights(app, include_top, size) is not None:
        return "cached"
    return f"not cached (downloads ~{app.download_mb(include_top):g} MB on first use)"


def _can_reach(url: str, timeout: float = 3.0) -> bool:
    """A quick check that the weights' host answers, so an offline machine fails in seconds, not minutes."""
    from urllib.request import getproxies

    parts = urllib.parse.urlsplit(url)
    proxy = getproxies().get(parts.scheme)
    target = urllib.parse.urlsplit(proxy) if proxy else parts
    host, port = target.hostname, target.port or (443 if target.scheme == "https" else 80)
    if not host:
        return False
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _missing_weights_error(file_name: str, reason: str) -> WeightsError:
    cache = keras_cache_dir()
    return WeightsError(
        f"ImageNet weights file {file_name} is not in the Keras cache {cache} and {reason}; connect to the "
        f"internet once (Keras then keeps the file there), or place {file_name} in {cache} or in the data "
        "home's keras/models/ folder")


# --------------------------------------------------------------------------------------------
# Loading models
# --------------------------------------------------------------------------------------------


def load_application(name: str, *, include_top: bool = True, weights: str | os.PathLike | None = "imagenet",
                     input_shape: tuple[int, int, int] | None = None, pooling: str | None = None,
                     classes: int = 1000, data_home: str | os.PathLike | None = None):
    """Create a Keras Applications model the way Keras does: ``keras.applications.VGG16(...)`` (lessons 03, 04).

    ``weights`` is ``"imagenet"`` (from the Keras cache, downloaded on first use), ``None`` (random
    initialisation: the same architecture, trained from scratch, e.g. with ``classes=N``) or the
    path of a local weights file (``.h5`` / ``.weights.h5``) for exactly this architecture.
    Without the top and without ``input_shape`` the model is built at its default size (Keras would leave
    the size open). The data home's weight files are linked into the cache first (:func:`prepare_keras_cache`).
    Raises :class:`ModelError` for an unknown name or impossible settings and :class:`WeightsError`
    when the ImageNet weights are neither cached nor downloadable (in seconds when offline).
    """
    import keras

    app = application(name)
    constructor: Callable[..., Any] = getattr(keras.applications, app.constructor)
    if input_shape is None and not include_top:
        input_shape = (app.size, app.size, 3)  # Keras would leave it open (None, None, 3)
    size = int(input_shape[0]) if input_shape else app.size
    kwargs: dict[str, Any] = dict(app.kwargs, include_top=include_top, pooling=pooling, classes=classes,
                                  input_shape=tuple(input_shape) if input_shape else None)
    if weights is None:
        return _construct(constructor, app, weights=None, **kwargs)
    if weights != "imagenet":
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsError(f"{path}: no such weights file; pass weights='imagenet', None, or the path of a "
                               f"weights file saved for {app.display}")
        model = _construct(constructor, app, weights=None, **kwargs)
        try:
            model.load_weights(path)
        except Exception as exc:  # Keras raises several types for mismatched files
            raise WeightsError(f"{path}: does not fit {app.display} (include_top={include_top}, "
                               f"classes={classes}): {type(exc).__name__}: {str(exc).splitlines()[0][:200]}; "
                               "pass the file saved for this architecture") from None
        return model
    if include_top and classes != 1000:
        raise ModelError(f"{app.display} with include_top=True and ImageNet weights has 1000 classes, not {classes}; "
                         "use weights=None to train the same architecture for your classes, or include_top=False")
    prepare_keras_cache(data_home)
    file_name = app.weight_file(include_top, size)
    cached = _cached_weights(app, include_top, size)
    if cached is not None and cached.name != file_name:
        # same weights saved under another input size (no top): build at this size, load that file
        model = _construct(constructor, app, weights=None, **kwargs)
        model.load_weights(cached)
        return model
    if cached is None and not _can_reach(KERAS_WEIGHTS_HOST):
        raise _missing_weights_error(file_name, "this machine cannot reach the download server")
    try:
        return _construct(constructor, app, weights="imagenet", **kwargs)
    except (ModelError, WeightsError):
        raise
    except Exception as exc:
        detail = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
        if cached is None:
            raise _missing_weights_error(file_name, f"the download failed ({detail})") from None
        raise WeightsError(f"{cached}: the cached weights file could not be used ({detail}); it may be incomplete "
                           "or not the official file (Keras checks its hash); delete it and connect to the "
                           "internet once, or replace it with the official file") from None


def _construct(constructor: Callable[..., Any], app: Application, **kwargs: Any):
    try:
        return constructor(**kwargs)
    except ValueError as exc:
        raise ModelError(f"{app.display}: these settings do not work ({str(exc).splitlines()[0][:240]})") from None


def load_with_fallback(name: str, fallback: str, **kwargs: Any) -> tuple[Any, str, str]:
    """Load ``name``; if its weights are missing and cannot be downloaded, load ``fallback`` instead (lessons 03, 04).

    Returns ``(model, used_name, message)``; the message says in plain words which model is used and
    why, so a notebook never switches models silently. ``kwargs`` go to :func:`load_application`
    (the fallback is built at its own input size unless ``input_shape`` is given).
    """
    try:
        model = load_application(name, **kwargs)
        return model, application(name).name, f"Using {display_name(name)} with its ImageNet weights."
    except WeightsError as exc:
        model = load_application(fallback, **kwargs)
        message = (f"{display_name(name)}'s ImageNet weights are not on this machine and cannot be downloaded "
                   f"here, so this lesson runs on {display_name(fallback)} instead, whose real ImageNet weights "
                   f"are in the Keras cache. Every heading and result below names the model used. "
                   f"(Details: {exc})")
        return model, application(fallback).name, message


# --------------------------------------------------------------------------------------------
# Inputs and outputs
# --------------------------------------------------------------------------------------------


def preprocess_input(name: str, images_uint8: np.ndarray) -> np.ndarray:
    """Scale RGB 0-255 images the way ``name`` was trained (its own ``preprocess_input``) (lessons 03, 04).

    VGG16 and ResNet50: RGB -> BGR and the ImageNet channel means subtracted; MobileNet(V2) and
    InceptionV3: to [-1, 1]. Returns float32; the input is not modified.
    """
    import keras

    app = application(name)
    x = np.array(images_uint8, dtype=np.float32, copy=True)
    if x.ndim not in (3, 4) or x.shape[-1] != 3:
        raise ImageError(f"expected RGB images of shape (H, W, 3) or (N, H, W, 3), got {x.shape}")
    module = getattr(keras.applications, app.module)
    return np.asarray(module.preprocess_input(x), dtype=np.float32)


def decode_predictions(name: str, probabilities: np.ndarray, top: int = 5,
                       data_home: str | os.PathLike | None = None) -> list[list[tuple[str, str, float]]]:
    """The ``top`` ImageNet classes per image as ``(wnid, label, probability)``, best first (lesson 03).

    Uses Keras' own ``decode_predictions``, which reads ``imagenet_class_index.json`` from the Keras
    cache (linked from the data home by :func:`prepare_keras_cache`, or downloaded on first use).
    """
    import keras

    application(name)
    probabilities = np.asarray(probabilities)
    if probabilities.ndim != 2 or probabilities.shape[1] != 1000:
        raise ModelError(f"decode_predictions needs ImageNet outputs of shape (N, 1000), got {probabilities.shape}; "
                         "use a model with include_top=True and ImageNet weights")
    prepare_keras_cache(data_home)
    if not (keras_cache_dir() / CLASS_INDEX_FILE).is_file() and not _can_reach(
            "https://storage.googleapis.com/download.tensorflow.org/"):
        raise _missing_weights_error(CLASS_INDEX_FILE, "this machine cannot reach the download server")
    decoded = keras.applications.imagenet_utils.decode_predictions(probabilities, top=top)
    return [[(str(w), str(label), float(p)) for w, label, p in row] for row in decoded]


def wnid_from_filename(path: str | os.PathLike) -> str | None:
    """The ImageNet class id at the start of a file name such as ``n02088364_beagle.jpg`` (lesson 03)."""
    stem = Path(path).name.split("_", 1)[0]
    return stem if len(stem) == 9 and stem[0] == "n" and stem[1:].isdigit() else None


def predict_top(name: str, model: Any, images_uint8: np.ndarray, top: int = 5,
                batch_size: int = 32, data_home: str | os.PathLike | None = None
                ) -> list[list[tuple[str, str, float]]]:
    """Preprocess, predict and decode in one call: the lesson 03 pipeline for a batch of photos."""
    x = preprocess_input(name, images_uint8)
    if x.ndim == 3:
        x = x[np.newaxis]
    probabilities = model.predict(x, batch_size=batch_size, verbose=0)
    return decode_predictions(name, probabilities, top=top, data_home=data_home)


def imagenet_top1_accuracy(decoded: Sequence[Sequence[tuple[str, str, float]]],
                           paths: Sequence[str | os.PathLike]) -> tuple[float, int]:
    """Top-1 accuracy of decoded predictions against the wnid in each file name (lesson 03's record).

    Returns ``(accuracy, number of photos with a wnid)``; photos without one are skipped.
    """
    pairs = [(row[0][0], wnid_from_filename(p)) for row, p in zip(decoded, paths)]
    pairs = [(pred, true) for pred, true in pairs if true is not None]
    if not pairs:
        raise ImageError("no file name starts with an ImageNet wnid (e.g. n02088364_beagle.jpg)")
    return float(np.mean([pred == true for pred, true in pairs])), len(pairs)


# --------------------------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------------------------


def feature_extractor(model: Any, layer: str | None = None):
    """A model that outputs the vector before the classifier: the standalone feature extractor (lessons 03, 04).

    ``layer`` names the output layer; by default ``fc2`` (VGG16's 4,096 values) when present,
    otherwise the last global pooling layer (flattened), otherwise the model's own output (a base
    without top).
    """
    import keras

    names = [lyr.name for lyr in model.layers]
    if layer is None:
        if "fc2" in names:
            layer = "fc2"
        else:
            pools = [lyr.name for lyr in model.layers
                     if isinstance(lyr, (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D))]
            if not pools:
                return model
            layer = pools[-1]
    if layer not in names:
        raise ModelError(f"{model.name} has no layer {layer!r}; choose one of its layers, e.g. {', '.join(names[-4:])}")
    output = model.get_layer(layer).output
    if len(output.shape) > 2:
        output = keras.layers.Flatten(name="features")(output)
    return keras.Model(model.input, output, name=f"{model.name}_features")


def extract_features(name: str, model: Any, images_uint8: np.ndarray, *, size: int | None = None,
                     batch_size: int = 128) -> np.ndarray:
    """Features of many images, chunk by chunk: resize (if ``size``), preprocess, predict (lessons 03, 04, 05).

    ``images_uint8`` is (N, H, W, 3) RGB 0-255; with ``size`` the images are resized to
    ``size`` x ``size`` (bilinear) first, e.g. CIFAR-10's 32 px up to the base's 96 px. Working in
    chunks keeps memory small: 10,000 images at 96 px would need 1 GB as one float32 array.
    """
    import tensorflow as tf

    images = np.asarray(images_uint8)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ImageError(f"expected a batch of RGB images (N, H, W, 3), got {images.shape}")
    outputs = []
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size].astype(np.float32)
        if size is not None and chunk.shape[1:3] != (size, size):
            chunk = tf.image.resize(chunk, (size, size), method="bilinear").numpy()
        x = preprocess_input(name, np.clip(chunk, 0, 255))
        outputs.append(np.asarray(model(x, training=False), dtype=np.float32))
    if not outputs:
        return np.zeros((0,) + tuple(int(d) for d in model.output_shape[1:]), dtype=np.float32)
    return np.concatenate(outputs)


# --------------------------------------------------------------------------------------------
# Transfer-learning models
# --------------------------------------------------------------------------------------------


def preprocessing_layers(name: str) -> list[Any]:
    """Built-in Keras layers that do ``name``'s ``preprocess_input`` inside a model (lesson 04).

    ``"tf"`` scaling is ``Rescaling(1/127.5, offset=-1)``; ``"caffe"`` scaling (VGG16, ResNet50) is a
    fixed, frozen 1 x 1 linear map (a ``Dense(3)`` on the channel axis) that swaps RGB to BGR and
    subtracts the ImageNet means. No Lambda layers, so a saved ``.keras`` file loads anywhere.
    """
    import keras

    app = application(name)
    if app.preprocess_mode == "tf":
        return [keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale_to_minus1_1")]
    if app.preprocess_mode == "caffe":
        layer = keras.layers.Dense(3, trainable=False, name="rgb_to_bgr_minus_mean")
        layer.build((None, None, None, 3))
        kernel = np.zeros((3, 3), dtype=np.float32)
        kernel[0, 2] = kernel[1, 1] = kernel[2, 0] = 1.0                 # BGR = RGB reversed
        bias = -np.array([103.939, 116.779, 123.68], dtype=np.float32)   # ImageNet means, BGR order
        layer.set_weights([kernel, bias])
        return [layer]
    raise ModelError(f"no preprocessing layers for mode {app.preprocess_mode!r}")


def freeze(model: Any, trainable_from: int | str | None = None) -> Any:
    """Freeze a model (``trainable = False``), or all but its last layers (lesson 04).

    ``trainable_from=None`` freezes the whole model; an int index (negative counts from the end:
    ``-30`` = the last 30 layers) or a layer name leaves that layer and the ones after it trainable.
    Batch-normalisation layers stay frozen either way, as Keras recommends for fine-tuning.
    Returns the model; compile (again) afterwards for the change to take effect.
    """
    import keras

    if trainable_from is None:
        model.trainable = False
        return model
    if isinstance(trainable_from, str):
        names = [lyr.name for lyr in model.layers]
        if trainable_from not in names:
            raise ModelError(f"{model.name} has no layer {trainable_from!r}")
        start = names.index(trainable_from)
    else:
        start = trainable_from if trainable_from >= 0 else max(0, len(model.layers) + trainable_from)
    model.trainable = True
    for i, lyr in enumerate(model.layers):
        lyr.trainable = i >= start and not isinstance(lyr, keras.layers.BatchNormalization)
    return model


def build_feature_head(feature_shape: int | Sequence[int], num_classes: int, *, hidden: int = 256,
                       dropout: float = 0.5, learning_rate: float = 1e-3, name: str = "head"):
    """The small head trained on saved features, compiled (lessons 04 and 05).

    Flatten -> Dense(``hidden``, relu) -> Dropout(``dropout``) -> output; ``hidden=0`` leaves out
    the hidden layer. With ``num_classes == 2`` the output is one sigmoid unit (probability of class
    1, binary cross-entropy); otherwise ``num_classes`` softmax units with sparse categorical
    cross-entropy (integer labels). Adam at ``learning_rate``; metric ``accuracy``.
    """
    import keras
    from keras import layers

    shape = (int(feature_shape),) if isinstance(feature_shape, (int, np.integer)) else tuple(int(d) for d in feature_shape)
    stack: list[Any] = [keras.Input(shape=shape), layers.Flatten(name="flatten")]
    if hidden:
        stack += [layers.Dense(hidden, activation="relu", name="hidden"), layers.Dropout(dropout, name="dropout")]
    stack.append(_output_layer(num_classes))
    return compile_classifier(keras.Sequential(stack, name=name), num_classes, learning_rate)


def build_end_to_end(name: str, base: Any, head: Any, *, model_name: str = "end_to_end"):
    """One model from raw photos to the answer: RGB 0-255 in, ``head``'s output out (lesson 04, part A).

    Input (size x size x 3, 0-255) -> ``name``'s preprocessing as layers -> frozen ``base`` (no top)
    -> the ``head`` trained on the base's saved features. Saves and loads as one ``.keras`` file.
    """
    import keras

    inputs, features = _frozen_base_on_raw_pixels(name, base)
    return keras.Model(inputs, head(features), name=model_name)


def _frozen_base_on_raw_pixels(name: str, base: Any) -> tuple[Any, Any]:
    """Input (RGB 0-255) -> ``name``'s preprocessing as layers -> frozen ``base`` in inference mode.

    Returns the input tensor and the base's output, for :func:`build_end_to_end` and
    :func:`build_frozen_classifier`.
    """
    import keras

    size = int(base.input_shape[1])
    inputs = keras.Input(shape=(size, size, 3), name="image_rgb_0_255")
    x = inputs
    for layer in preprocessing_layers(name):
        x = layer(x)
    freeze(base)
    return inputs, base(x, training=False)


def _output_layer(num_classes: int):
    """One sigmoid unit for two classes (probability of class 1), else ``num_classes`` softmax units."""
    from keras import layers

    binary = num_classes == 2
    return layers.Dense(1 if binary else num_classes, activation="sigmoid" if binary else "softmax", name="output")


def build_frozen_classifier(name: str, base: Any, num_classes: int = 2, *, dropout: float = 0.2,
                            learning_rate: float = 1e-3, model_name: str = "frozen_base_classifier"):
    """Frozen pretrained base + new head, compiled: the integrated feature extractor (lesson 04, part B).

    Input (RGB 0-255) -> preprocessing layers -> ``base`` (frozen, run in inference mode so its
    batch normalisation keeps ImageNet statistics, even when fine-tuned) -> GlobalAveragePooling2D
    -> Dropout -> Dense(1, sigmoid) for two classes, Dense(num_classes, softmax) otherwise.
    """
    import keras
    from keras import layers

    inputs, x = _frozen_base_on_raw_pixels(name, base)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    model = keras.Model(inputs, _output_layer(num_classes)(x), name=model_name)
    return compile_classifier(model, num_classes, learning_rate)


def compile_classifier(model: Any, num_classes: int, learning_rate: float) -> Any:
    """(Re)compile after freezing or unfreezing: Adam at ``learning_rate``, the matching loss (lesson 04)."""
    import keras

    binary = num_classes == 2
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss="binary_crossentropy" if binary else "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def augmentation_layers(flip: str = "horizontal", rotation: float = 0.1, seed: int | None = None):
    """Random horizontal flip + random rotation, active only in training (lesson 04, part B)."""
    import keras
    from keras import layers

    return keras.Sequential([layers.RandomFlip(flip, seed=seed), layers.RandomRotation(rotation, seed=seed)],
                            name="augmentation")


def with_augmentation(model: Any, augmentation: Any, *, model_name: str | None = None):
    """``model`` with ``augmentation`` in front; same weights, same input (lesson 04, part B)."""
    import keras

    inputs = keras.Input(shape=tuple(model.input_shape[1:]), name="image")
    outputs = model(augmentation(inputs))
    return keras.Model(inputs, outputs, name=model_name or f"{model.name}_augmented")


def find_base(model: Any) -> Any:
    """The pretrained base nested in a transfer model (the largest sub-model), e.g. to unfreeze it (lesson 04)."""
    subs = [lyr for lyr in _walk(model) if hasattr(lyr, "layers") and lyr is not model and len(lyr.layers) > 5]
    if not subs:
        raise ModelError(f"{model.name} has no nested pretrained base")
    return max(subs, key=lambda m: len(m.layers))


def _walk(model: Any):
    for lyr in model.layers:
        yield lyr
        if hasattr(lyr, "layers"):
            yield from _walk(lyr)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """Run ``fn()`` and return ``(result, seconds)``: lesson 04 times extraction and training separately."""
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


__all__ = [
    "APPLICATIONS", "Application", "IMAGENET_TRAIN_IMAGES", "DOMESTIC_CAT_WNIDS", "ESPRESSO_WNID", "application", "model_names", "display_name",
    "input_size", "keras_cache_dir", "prepare_keras_cache", "weights_available", "weights_status",
    "load_application", "load_with_fallback", "preprocess_input", "decode_predictions", "wnid_from_filename",
    "predict_top", "imagenet_top1_accuracy", "feature_extractor", "extract_features", "preprocessing_layers",
    "freeze", "build_feature_head", "build_end_to_end", "build_frozen_classifier", "compile_classifier",
    "augmentation_layers", "with_augmentation", "find_base", "timed",
]
