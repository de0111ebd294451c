"""Keras Applications: which pretrained model a lesson runs on and why (:func:`choose`; lessons 03, 04, 06, 07), where
its ImageNet weights are (Keras' cache, the data home, a mirror, the internet), and :func:`load_application` with
one-line errors (``imgrec predict``, ``bench``). The lessons build their models themselves."""
from __future__ import annotations

import os
import shutil
import socket
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from . import sources
from .errors import DataError, ModelError, WeightsError

KERAS_WEIGHTS_HOST = "https://storage.googleapis.com/tensorflow/keras-applications/"
CLASS_INDEX_HOST = "https://storage.googleapis.com/download.tensorflow.org/"
CLASS_INDEX_FILE = "imagenet_class_index.json"  # decode_predictions reads the 1,000 labels from it (in the Keras cache)


@dataclass(frozen=True)
class Application:
    """One Keras Applications model (lessons 03, 04, ``imgrec predict``): names, input sizes with ImageNet weights,
    the files Keras caches (``{size}``: input size) and their MB, the variant's ``kwargs``, the feature layer."""

    name: str
    display: str
    constructor: str
    module: str
    size: int
    sizes: tuple[int, ...]
    top_file: str
    notop_file: str
    top_mb: float
    notop_mb: float
    kwargs: dict[str, Any] = field(default_factory=dict)
    feature_layer: str = "global_average_pooling2d"  # the MobileNets' pooling layer in a fresh Keras session

    def weight_file(self, include_top: bool, size: int | None = None) -> str:
        """The file name Keras looks for in its cache for these settings."""
        pattern = self.top_file if include_top else self.notop_file
        return pattern.format(size=size if size in self.sizes else self.size)

    def download_mb(self, include_top: bool) -> float:
        return self.top_mb if include_top else self.notop_mb

    def keras_module(self) -> ModuleType:
        """The ``keras.applications`` module with ``preprocess_input`` and ``decode_predictions``."""
        # Imported here: importing keras starts TensorFlow (7-9 s on a 2-core AMD EPYC, 2026-12-05) and its C++ log
        # unless quiet.start_tensorflow ran first; imgrec predict --list and imgrec data never need it.
        import keras
        return getattr(keras.applications, self.module)

    def model_builder(self) -> Callable[..., Any]:
        """The Keras constructor itself, e.g. ``keras.applications.vgg16.VGG16``."""
        return getattr(self.keras_module(), self.constructor)


def _mobilenets() -> list[Application]:
    v1 = "mobilenet_{}_{{size}}_tf{}.h5"
    v2 = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{}_{{size}}{}.h5"
    return [
        Application("mobilenet-1.0", "MobileNet (alpha 1.0)", "MobileNet", "mobilenet", 224, (128, 160, 192, 224),
                    v1.format("1_0", ""), v1.format("1_0", "_no_top"), 16.4, 16.2, {"alpha": 1.0}),
        Application("mobilenet-0.25", "MobileNet (alpha 0.25)", "MobileNet", "mobilenet", 224, (128, 160, 192, 224),
                    v1.format("2_5", ""), v1.format("2_5", "_no_top"), 2.0, 1.0, {"alpha": 0.25}),
        Application("mobilenetv2-1.0", "MobileNetV2 (alpha 1.0)", "MobileNetV2", "mobilenet_v2", 224,
                    (96, 128, 160, 192, 224), v2.format("1.0", ""), v2.format("1.0", "_no_top"), 14, 9, {"alpha": 1.0}),
        Application("mobilenetv2-0.35", "MobileNetV2 (alpha 0.35)", "MobileNetV2", "mobilenet_v2", 224,
                    (96, 128, 160, 192, 224), v2.format("0.35", ""), v2.format("0.35", "_no_top"), 6.4, 2.0,
                    {"alpha": 0.35}),
    ]


def _classics() -> list[Application]:
    files = "{}_weights_tf_dim_ordering_tf_kernels{}.h5"
    return [Application(module.replace("_", ""), display, display, module, size, (size,), files.format(module, ""),
                        files.format(module, "_notop"), top_mb, notop_mb, feature_layer=layer)
            for display, module, size, top_mb, notop_mb, layer in (
                ("VGG16", "vgg16", 224, 528, 56, "fc2"),
                ("ResNet50", "resnet50", 224, 98, 90, "avg_pool"),
                ("InceptionV3", "inception_v3", 299, 92, 84, "avg_pool"))]


APPLICATIONS: dict[str, Application] = {app.name: app for app in _classics() + _mobilenets()}
"""The Keras Applications the course knows, by name (lower case, dashes): lessons 03, 04, ``imgrec predict``."""


def application(name: str) -> Application:
    """The registry entry for ``name``; one-line :class:`ModelError` listing the known names otherwise."""
    key = str(name).strip().lower()
    if key not in APPLICATIONS:
        raise ModelError(f"unknown pretrained model {name!r}; use one of: {', '.join(APPLICATIONS)}")
    return APPLICATIONS[key]


def model_names() -> list[str]:
    return list(APPLICATIONS)


def display_name(name: str) -> str:
    """How headings and results name a model: ``"VGG16"``, ``"MobileNet (alpha 0.25)"``."""
    return application(name).display


def input_size(name: str) -> int:
    return application(name).size


def keras_cache_dir() -> Path:
    """Where ``keras.utils.get_file`` keeps weights (lesson 03): ``$KERAS_HOME/models``, by Keras' own rule."""
    home = os.path.expanduser("~")
    base = os.path.expanduser(os.environ.get("KERAS_HOME")
                              or os.path.join(home if os.access(home, os.W_OK) else "/tmp", ".keras"))
    return Path(base if os.access(base, os.W_OK) else os.path.join("/tmp", ".keras")) / "models"


def prepare_keras_cache(data_home: str | os.PathLike | None = None) -> list[Path]:
    """Link (else copy) each file of ``<data home>/keras/models/`` the Keras cache lacks into it, for lessons 03-07,
    ``imgrec predict`` and ``bench``; the cache paths that point at the data home's files (which it only reads)."""
    source = sources.data_home(data_home) / "keras" / "models"
    if not source.is_dir():
        return []
    cache = keras_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    linked = []
    for src in sorted(p for p in source.iterdir() if p.is_file()):
        target = cache / src.name
        if target.is_symlink() and not target.exists():  # a dangling link from an old data home
            target.unlink()
        if not target.exists():
            try:
                target.symlink_to(src.resolve())
            except OSError:
                tmp = target.with_name(f".{target.name}.partial")
                shutil.copyfile(src, tmp)
                os.replace(tmp, target)
        elif not (target.is_symlink() and target.resolve() == src.resolve()):
            continue
        linked.append(target)
    return linked


def fetch_weights(file_name: str, data_home: str | os.PathLike | None = None) -> Path | None:
    """A registered weights file's Keras cache path, fetched into the data home if need be (:func:`choose`), or None."""
    path = f"keras/models/{file_name}"
    if path not in sources.registry():
        return None
    try:
        sources.fetch(path, data_home)
    except DataError:
        return None
    prepare_keras_cache(data_home)
    cached = keras_cache_dir() / file_name
    return cached if cached.is_file() else None


def can_reach(url: str, timeout: float = 3.0) -> bool:
    """Whether a download host answers (through the proxy, if set): offline is known in seconds, not minutes."""
    parts = urllib.parse.urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    target = urllib.parse.urlsplit(proxy) if proxy else parts
    if not target.hostname:
        return False
    try:
        with socket.create_connection((target.hostname, target.port or (443 if target.scheme == "https" else 80)),
                                      timeout=timeout):
            return True
    except OSError:
        return False


def missing_weights_error(file_name: str, reason: str) -> WeightsError:
    """The one line for a weights (or class index) file that is neither cached nor downloadable."""
    path = f"keras/models/{file_name}"
    size = f" ({sources.megabytes(*sources.size_of(path))})" if path in sources.registry() else ""
    return WeightsError(
        f"ImageNet weights file {file_name}{size} is not in the Keras cache {keras_cache_dir()} and {reason}; run "
        f"`{sources.FETCH_COMMAND}` where the internet (or a data mirror, {sources.MIRROR_ENV}) can be reached")


def cached_weights(name: str, include_top: bool = True, size: int | None = None) -> Path | None:
    """The Keras cache's file with ``name``'s ImageNet weights (:func:`choose`); without the top, any size's serves."""
    app, cache = application(name), keras_cache_dir()
    names = [app.weight_file(include_top, size)]
    if not include_top and "{size}" in app.notop_file:
        names += [app.notop_file.format(size=other) for other in app.sizes]
    return next((cache / n for n in names if (cache / n).is_file()), None)


def weights_available(name: str, include_top: bool = True, size: int | None = None) -> bool:
    return cached_weights(name, include_top, size) is not None


def weights_status(name: str, include_top: bool = True, size: int | None = None) -> str:
    """``"cached"`` or ``"not cached (downloads ~528 MB on first use)"`` (lesson 03, ``imgrec predict --list``)."""
    return ("cached" if weights_available(name, include_top, size)
            else f"not cached (downloads ~{application(name).download_mb(include_top):g} MB on first use)")


@dataclass(frozen=True)
class Choice:
    """The model a lesson runs on (:func:`choose`): ``weights`` for its Keras constructor (``"imagenet"``, a cached
    file's path, or None: random), the input ``size``, and ``reason``, one sentence saying why."""

    name: str
    requested: str
    display: str
    weights: str | None
    size: int
    feature_layer: str
    reason: str

    @property
    def fallback_used(self) -> bool:
        """True when the stand-in runs instead of the model asked for."""
        return self.name != self.requested


def _no_source() -> str:
    base = sources.mirror()
    return f"the data mirror {base} does not have them" if base else "this machine cannot reach the download server"


def _check_size(app: Application, include_top: bool, size: int) -> None:
    if include_top and size != app.size:
        raise ModelError(f"{app.display} with its top (the ImageNet classifier) takes {app.size} x {app.size} "
                         f"images, not {size}; use include_top=False for other sizes")


def _find(app: Application, include_top: bool, size: int,
          data_home: str | os.PathLike | None) -> tuple[Path | None, str]:
    """``app``'s cached weights file for these settings, fetched through the registry if need be, and a note
    saying it was fetched just now (empty otherwise)."""
    cached = cached_weights(app.name, include_top, size)
    if cached is not None:
        return cached, ""
    for file_name in dict.fromkeys([app.weight_file(include_top, size), app.weight_file(include_top, app.size)]):
        if fetch_weights(file_name, data_home) is None:
            continue
        return cached_weights(app.name, include_top, size), (
            f" They were fetched just now from {sources.mirror() or 'their public address'} into the data home, "
            "checked against the registered hash, and linked into that cache.")
    return None, ""


def _weights_argument(app: Application, cached: Path, include_top: bool, size: int) -> tuple[str, str]:
    """``("imagenet", "")`` when the cached file is the one Keras looks for, else its path and why that works."""
    if cached.name == app.weight_file(include_top, size):
        return "imagenet", ""
    return str(cached), (f" {cached.name} is for another input size; without the top the convolution weights fit "
                         f"any size, so its path is passed as weights=... for {size} x {size} px.")


def choose(name: str, fallback: str | None = None, *, include_top: bool = True, size: int | None = None,
           or_random: bool = False, data_home: str | os.PathLike | None = None) -> Choice:
    """Which model a lesson runs on, and why (lessons 03, 04, 06, 07): ``name`` when its ImageNet weights are in
    the Keras cache, can be fetched into the data home, or Keras can download them; else ``fallback`` when its
    weights can be had; else, with ``or_random``, ``name`` with random weights; else a one-line
    :class:`WeightsError`. With ``include_top`` the ImageNet labels file must be available too."""
    app = application(name)
    size = int(size) if size else app.size
    _check_size(app, include_top, size)
    cached, fetched = _find(app, include_top, size, data_home)
    file_name = app.weight_file(include_top, size)
    if cached is not None:
        weights, note = _weights_argument(app, cached, include_top, size)
        where = f"{app.display}'s ImageNet weights ({cached.name}) are in the Keras cache {keras_cache_dir()}"
        choice = Choice(app.name, app.name, app.display, weights, size, app.feature_layer,
                        where + (', so weights="imagenet" reads them from there.' if not note else ".")
                        + note + fetched)
    elif not sources.mirror() and can_reach(KERAS_WEIGHTS_HOST):
        choice = Choice(app.name, app.name, app.display, "imagenet", size, app.feature_layer,
                        f"{app.display}'s ImageNet weights are not in the Keras cache {keras_cache_dir()} yet: Keras "
                        f"downloads {file_name} (about {app.download_mb(include_top):g} MB) on first use and keeps "
                        "it there.")
    elif fallback is not None:
        stand_in = application(fallback)
        fb_size = size if not include_top else stand_in.size
        _check_size(stand_in, include_top, fb_size)
        found, _ = _find(stand_in, include_top, fb_size, data_home)
        if found is None:
            raise WeightsError(
                f"neither {app.display}'s nor {stand_in.display}'s ImageNet weights are in the Keras cache "
                f"{keras_cache_dir()}, and {_no_source()}: {file_name} (about {app.download_mb(include_top):g} MB) "
                f"or {stand_in.weight_file(include_top, fb_size)} (about {stand_in.download_mb(include_top):g} MB); "
                f"run `{sources.FETCH_COMMAND}` where the internet (or a data mirror, {sources.MIRROR_ENV}) can be "
                "reached")
        weights, note = _weights_argument(stand_in, found, include_top, fb_size)
        choice = Choice(stand_in.name, app.name, stand_in.display, weights, fb_size, stand_in.feature_layer,
                        f"{app.display}'s ImageNet weights ({file_name}) are not in the Keras cache and "
                        f"{_no_source()}, so this lesson runs on {stand_in.display} instead, whose real ImageNet "
                        f"weights are in the cache ({found.name}). Every heading and result below names the model "
                        "used." + note)
    elif or_random:
        return Choice(app.name, app.name, app.display, None, size, app.feature_layer,
                      f"{app.display}'s ImageNet weights are not in the Keras cache and {_no_source()}, so it is built "
                      "with weights=None (random weights): enough to look at its architecture and parameter counts, "
                      "not to use it.")
    else:
        raise missing_weights_error(file_name, _no_source())
    if (include_top and not (keras_cache_dir() / CLASS_INDEX_FILE).is_file()
            and fetch_weights(CLASS_INDEX_FILE, data_home) is None
            and (sources.mirror() or not can_reach(CLASS_INDEX_HOST))):
        raise missing_weights_error(CLASS_INDEX_FILE, _no_source())
    return choice


def load_application(name: str, *, include_top: bool = True, weights: str | os.PathLike | None = "imagenet",
                     input_shape: tuple[int, int, int] | None = None, pooling: str | None = None,
                     classes: int = 1000, data_home: str | os.PathLike | None = None) -> Any:
    """A Keras Applications model with one-line errors (``imgrec predict``, ``bench``); ``weights``: ``"imagenet"``,
    None (random) or a weights file's path. Without the top and ``input_shape`` the default size is used."""
    app = application(name)
    if input_shape is None and not include_top:
        input_shape = (app.size, app.size, 3)  # Keras would leave it open (None, None, 3)
    size = int(input_shape[0]) if input_shape else app.size
    kwargs = dict(app.kwargs, include_top=include_top, pooling=pooling, classes=classes,
                  input_shape=tuple(input_shape) if input_shape else None)
    if weights is not None and weights != "imagenet":
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsError(f"{path}: no such weights file; pass weights='imagenet', None, or the path of a "
                               f"weights file saved for {app.display}")
        model = _construct(app, weights=None, **kwargs)
        try:
            model.load_weights(path)
        except Exception as exc:  # Keras raises several types for mismatched files
            raise WeightsError(f"{path}: does not fit {app.display} (include_top={include_top}, classes={classes}): "
                               f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}; pass the file saved for "
                               "this architecture") from None
        return model
    if weights is None:
        return _construct(app, weights=None, **kwargs)
    if include_top and classes != 1000:
        raise ModelError(f"{app.display} with include_top=True and ImageNet weights has 1000 classes, not {classes}; "
                         "use weights=None to train the same architecture for your classes, or include_top=False")
    prepare_keras_cache(data_home)
    choice = choose(app.name, include_top=include_top, size=size, data_home=data_home)
    cached = cached_weights(app.name, include_top, size)
    try:
        return _construct(app, weights=choice.weights, **kwargs)
    except (ModelError, WeightsError):
        raise
    except Exception as exc:
        detail = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
        if cached is None:
            raise missing_weights_error(app.weight_file(include_top, size), f"the download failed ({detail})") from None
        raise WeightsError(f"{cached}: the cached weights file could not be used ({detail}); it may be incomplete "
                           "or not the official file (Keras checks its hash); delete it and connect to the "
                           "internet once, or replace it with the official file") from None


def _construct(app: Application, **kwargs: Any) -> Any:
    try:
        return app.model_builder()(**kwargs)
    except ValueError as exc:
        raise ModelError(f"{app.display}: these settings do not work ({str(exc).splitlines()[0][:240]})") from None
