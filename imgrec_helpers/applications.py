"""Keras Applications: which pretrained model a lesson uses, and why, in words.

The lessons call Keras themselves (``keras.applications.vgg16.VGG16(weights="imagenet")``,
``preprocess_input``, ``decode_predictions``). What this module adds is the decision a course needs on
machines without VGG16's 528 MB of weights, as the Keras Grad-CAM example rebinds
``model_builder`` / ``preprocess_input`` / ``decode_predictions`` to swap models:

- :data:`APPLICATIONS`, the registry of the models the course knows (name, display name, input size,
  weight file names and sizes), and :func:`application` to look one up (lessons 03, 04, ``imgrec predict``);
- :func:`choose`, which decides *which* model runs (the one asked for when its weights are cached or
  downloadable, the named stand-in when not), says why in a sentence, and hands back the Keras
  constructor and its module (lessons 03 and 04);
- :func:`load_application`, the same decision plus the constructor call with one-line errors, for the
  ``imgrec predict`` and ``imgrec bench`` commands (the lessons call the constructor in view instead).

Where the weight files live, and how the data home's copies reach the Keras cache, is :mod:`imgrec_helpers.weights`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from . import sources, weights
from .errors import ModelError, WeightsError

_MOBILENET_POOL = "global_average_pooling2d"
"""Keras gives the MobileNets' pooling layer no name of its own: this is its name in a fresh session
(after ``keras.backend.clear_session()``), which is how the lessons build their models."""


@dataclass(frozen=True)
class Application:
    """One Keras Applications model as the course knows it (lessons 03, 04, ``imgrec predict``).

    ``top_file`` / ``notop_file`` are the weight file names Keras looks for in its cache, with
    ``{size}`` standing for the input size where Keras names files by it; ``*_mb`` are their
    approximate download sizes. ``preprocess_mode`` is Keras' name for the input scaling:
    ``"caffe"`` (RGB -> BGR, minus the ImageNet mean per channel) or ``"tf"`` (to [-1, 1]).
    ``kwargs`` are the constructor arguments that pick this variant (MobileNet's ``alpha``);
    ``feature_layer`` names the layer a standalone feature extractor ends at (lesson 03).
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
    feature_layer: str = ""                # the layer with the vector before the classifier (with top)

    def weight_file(self, include_top: bool, size: int | None = None) -> str:
        """The file name Keras looks for in its cache for these settings."""
        pattern = self.top_file if include_top else self.notop_file
        return pattern.format(size=size if size in self.sizes else self.size)

    def download_mb(self, include_top: bool) -> float:
        """Approximate size of the weights file Keras downloads for these settings."""
        return self.top_mb if include_top else self.notop_mb

    def keras_module(self) -> ModuleType:
        """The ``keras.applications`` module with this model's constructor, ``preprocess_input`` and
        ``decode_predictions`` (e.g. ``keras.applications.vgg16``)."""
        import keras

        return getattr(keras.applications, self.module)

    def model_builder(self) -> Callable[..., Any]:
        """The Keras constructor itself, e.g. ``keras.applications.vgg16.VGG16``."""
        return getattr(self.keras_module(), self.constructor)


APPLICATIONS: dict[str, Application] = {
    app.name: app
    for app in (
        Application("vgg16", "VGG16", "VGG16", "vgg16", 224, (224,), "caffe",
                    "vgg16_weights_tf_dim_ordering_tf_kernels.h5",
                    "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", 528, 56,
                    note="Oxford VGG, 2014: 16 weight layers, 138M parameters", feature_layer="fc2"),
        Application("resnet50", "ResNet50", "ResNet50", "resnet50", 224, (224,), "caffe",
                    "resnet50_weights_tf_dim_ordering_tf_kernels.h5",
                    "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", 98, 90,
                    note="Microsoft, 2015: residual (skip) connections, 50 layers", feature_layer="avg_pool"),
        Application("inceptionv3", "InceptionV3", "InceptionV3", "inception_v3", 299, (299,), "tf",
                    "inception_v3_weights_tf_dim_ordering_tf_kernels.h5",
                    "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5", 92, 84,
                    note="Google, 2015: parallel filters of several sizes; 299 px input",
                    feature_layer="avg_pool"),
        Application("mobilenet-1.0", "MobileNet (alpha 1.0)", "MobileNet", "mobilenet", 224,
                    (128, 160, 192, 224), "tf", "mobilenet_1_0_{size}_tf.h5", "mobilenet_1_0_{size}_tf_no_top.h5",
                    16.4, 16.2, {"alpha": 1.0}, note="Google, 2017: depthwise separable convolutions, for phones",
                    feature_layer=_MOBILENET_POOL),
        Application("mobilenet-0.25", "MobileNet (alpha 0.25)", "MobileNet", "mobilenet", 224,
                    (128, 160, 192, 224), "tf", "mobilenet_2_5_{size}_tf.h5", "mobilenet_2_5_{size}_tf_no_top.h5",
                    2.0, 1.0, {"alpha": 0.25}, note="MobileNet with a quarter of the filters: 0.5M parameters",
                    feature_layer=_MOBILENET_POOL),
        Application("mobilenetv2-1.0", "MobileNetV2 (alpha 1.0)", "MobileNetV2", "mobilenet_v2", 224,
                    (96, 128, 160, 192, 224), "tf",
                    "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{size}.h5",
                    "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{size}_no_top.h5", 14, 9,
                    {"alpha": 1.0}, note="Google, 2018: inverted residual blocks; the alpaca tutorial's base",
                    feature_layer=_MOBILENET_POOL),
        Application("mobilenetv2-0.35", "MobileNetV2 (alpha 0.35)", "MobileNetV2", "mobilenet_v2", 224,
                    (96, 128, 160, 192, 224), "tf",
                    "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_{size}.h5",
                    "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_{size}_no_top.h5", 6.4, 2.0,
                    {"alpha": 0.35}, note="MobileNetV2 with 35% of the filters: 0.4M parameters without top",
                    feature_layer=_MOBILENET_POOL),
    )
}
"""The Keras Applications the course uses, by name (lower case, dashes). Lessons 03, 04, ``imgrec predict``."""


def application(name: str) -> Application:
    """The registry entry for ``name``; :class:`ModelError` listing the known names otherwise (lessons 03, 04)."""
    key = str(name).strip().lower()
    if key not in APPLICATIONS:
        raise ModelError(f"unknown pretrained model {name!r}; use one of: {', '.join(APPLICATIONS)}")
    return APPLICATIONS[key]


def model_names() -> list[str]:
    """The names :func:`choose` and ``imgrec predict`` accept (lesson 03's parameters)."""
    return list(APPLICATIONS)


def display_name(name: str) -> str:
    """How a model is named in headings and results, e.g. ``"VGG16"``, ``"MobileNet (alpha 0.25)"``."""
    return application(name).display


def input_size(name: str) -> int:
    """The default (square) input size in pixels: 224 for VGG16, 299 for InceptionV3 (``imgrec predict``)."""
    return application(name).size


# --------------------------------------------------------------------------------------------
# Choosing the model a lesson runs on
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """The model a lesson runs on, as decided by :func:`choose` (lessons 03, 04).

    ``model_builder`` is the Keras constructor itself (``keras.applications.vgg16.VGG16``) and
    ``module`` its ``keras.applications`` module, whose ``preprocess_input`` and ``decode_predictions``
    belong to that model. Call ``model_builder(weights=choice.weights, **choice.options, ...)``:
    ``weights`` is ``"imagenet"`` (Keras reads its cache, or downloads), the path of a cached file
    that fits these settings, or ``None`` (random weights, only when :func:`choose` was told that
    is enough); ``options`` are the arguments that pick the variant (MobileNet's ``alpha``).
    ``reason`` says in words why this model and these weights.
    """

    name: str
    requested: str
    display: str
    model_builder: Callable[..., Any]
    module: ModuleType
    weights: str | None
    options: dict[str, Any]
    size: int
    include_top: bool
    feature_layer: str
    reason: str

    @property
    def fallback_used(self) -> bool:
        """True when the stand-in runs instead of the model asked for."""
        return self.name != self.requested

    @property
    def call(self) -> str:
        """The Keras call this choice stands for, as text, e.g. ``keras.applications.mobilenet.MobileNet(alpha=0.25, weights="imagenet")``."""
        args = [f"{k}={v!r}" for k, v in self.options.items()]
        if not self.include_top:
            args.append("include_top=False")
        args.append(f"weights={self.weights!r}" if self.weights is None or self.weights == "imagenet"
                    else "weights=<path of the cached file>")
        return f"keras.applications.{self.module.__name__.rsplit('.', 1)[-1]}.{self.model_builder.__name__}({', '.join(args)})"


def _check_size(app: Application, include_top: bool, size: int) -> None:
    if include_top and size != app.size:
        raise ModelError(f"{app.display} with its top (the ImageNet classifier) takes {app.size} x {app.size} "
                         f"images, not {size}; use include_top=False for other sizes")


def _make_choice(app: Application, requested: str, include_top: bool, size: int, weights_arg: str | None,
                 reason: str) -> Choice:
    return Choice(app.name, requested, app.display, app.model_builder(), app.keras_module(), weights_arg,
                  dict(app.kwargs), size, include_top, app.feature_layer, reason)


def _no_source() -> str:
    """Why weights could not be fetched, in words: the mirror lacks them, or the machine is offline."""
    base = sources.mirror()
    return f"the data mirror {base} does not have them" if base else "this machine cannot reach the download server"


def _fetched(app: Application, include_top: bool, size: int, data_home: str | os.PathLike | None) -> Path | None:
    """The cache path of ``app``'s weights for these settings after fetching them through the registry (the
    file for this size, else without the top the file for the default size, which fits any size), or None."""
    names = [app.weight_file(include_top, size)]
    if not include_top and "{size}" in app.notop_file:
        names.append(app.weight_file(include_top, app.size))
    for file_name in dict.fromkeys(names):
        got = weights.fetch_weights(file_name, data_home)
        if got is not None:
            return got
    return None


def _available(app: Application, include_top: bool, size: int, data_home: str | os.PathLike | None
               ) -> tuple[str | None, str] | None:
    """``(weights argument, reason)`` when ``app``'s ImageNet weights can be had here, else None."""
    cache = weights.keras_cache_dir()
    file_name = app.weight_file(include_top, size)
    cached = cached_weights(app.name, include_top, size)
    fetched = ""
    if cached is None:
        cached = _fetched(app, include_top, size, data_home)
        fetched = (f" They were fetched just now from {sources.mirror() or 'their public address'} into the data "
                   "home, checked against the registered hash, and linked into that cache.") if cached else ""
    if cached is not None and cached.name == file_name:
        return "imagenet", (f"{app.display}'s ImageNet weights ({file_name}) are in the Keras cache {cache}, "
                            f'so weights="imagenet" reads them from there.{fetched}')
    if cached is not None:
        return str(cached), (f"{app.display} has no ImageNet weights file for {size} x {size} px in the Keras cache, "
                             f"but it has {cached.name}: without the top, the convolution weights fit any input "
                             "size, so that file's path is passed as weights=... (Keras would try to download "
                             f"{file_name} for weights=\"imagenet\").{fetched}")
    if not sources.mirror() and weights.can_reach(weights.KERAS_WEIGHTS_HOST):
        return "imagenet", (f"{app.display}'s ImageNet weights are not in the Keras cache {cache} yet: Keras "
                            f"downloads {file_name} (about {app.download_mb(include_top):g} MB) on first use "
                            "and keeps it there.")
    return None


def choose(name: str, fallback: str | None = None, *, include_top: bool = True, size: int | None = None,
           or_random: bool = False, data_home: str | os.PathLike | None = None) -> Choice:
    """Decide which Keras Applications model a lesson runs on, and say why (lessons 03, 04).

    ``name``'s ImageNet weights are used when they are in the Keras cache (see
    :func:`imgrec_helpers.weights.prepare_keras_cache`) or can be downloaded. Otherwise ``fallback``
    runs instead when its weights are cached, and the reason says so in plain words, so that a
    lesson never switches models silently. With ``or_random=True`` and no weights to be had,
    ``name`` is built with ``weights=None`` (enough to look at an architecture). Otherwise a
    :class:`WeightsError` says in one line what to do. ``size`` is the input size (default: the
    model's own); with ``include_top`` the ImageNet labels file ``decode_predictions`` reads must
    be available too. Weights that are not cached yet are fetched through the course's registry
    (:func:`imgrec_helpers.weights.fetch_weights`) into ``data_home`` (default: ``$IMGREC_DATA_HOME`` or ``data/``).
    """
    app = application(name)
    size = int(size) if size else app.size
    _check_size(app, include_top, size)
    found = _available(app, include_top, size, data_home)
    if found is not None:
        choice = _make_choice(app, app.name, include_top, size, found[0], found[1])
    elif fallback is not None:
        stand_in = application(fallback)
        fb_size = size if not include_top else stand_in.size
        _check_size(stand_in, include_top, fb_size)
        cached = (cached_weights(stand_in.name, include_top, fb_size)
                  or _fetched(stand_in, include_top, fb_size, data_home))
        if cached is None:
            first, second = app.weight_file(include_top, size), stand_in.weight_file(include_top, fb_size)
            raise WeightsError(
                f"neither {app.display}'s nor {stand_in.display}'s ImageNet weights are in the Keras cache "
                f"{weights.keras_cache_dir()}, and {_no_source()}: {first} (about {app.download_mb(include_top):g} "
                f"MB) or {second} (about {stand_in.download_mb(include_top):g} MB); run `{sources.FETCH_COMMAND}` "
                f"where the internet (or a data mirror, {sources.MIRROR_ENV}) can be reached")
        weights_arg = "imagenet" if cached.name == stand_in.weight_file(include_top, fb_size) else str(cached)
        reason = (f"{app.display}'s ImageNet weights ({app.weight_file(include_top, size)}) are not in the Keras "
                  f"cache and {_no_source()}, so this lesson runs on "
                  f"{stand_in.display} instead, whose real ImageNet weights are in the cache ({cached.name}). "
                  "Every heading and result below names the model used.")
        if weights_arg != "imagenet":
            reason += (f" That file is for another input size; without the top, the convolution weights fit any "
                       f"size, so its path is passed as weights=... for {fb_size} x {fb_size} px.")
        choice = _make_choice(stand_in, app.name, include_top, fb_size, weights_arg, reason)
    elif or_random:
        return _make_choice(app, app.name, include_top, size, None,
                            f"{app.display}'s ImageNet weights are not in the Keras cache and {_no_source()}, so it "
                            "is built with weights=None (random weights): enough "
                            "to look at its architecture and parameter counts, not to use it.")
    else:
        raise weights.missing_weights_error(app.weight_file(include_top, size),
                                            _no_source())
    if (include_top and not weights.class_index_available() and weights.fetch_weights(weights.CLASS_INDEX_FILE, data_home) is None
            and (sources.mirror() or not weights.can_reach(weights.CLASS_INDEX_HOST))):
        raise weights.missing_weights_error(weights.CLASS_INDEX_FILE, _no_source())
    return choice


# --------------------------------------------------------------------------------------------
# Loading a model for the commands (imgrec predict, imgrec bench)
# --------------------------------------------------------------------------------------------


def load_application(name: str, *, include_top: bool = True, weights: str | os.PathLike | None = "imagenet",
                     input_shape: tuple[int, int, int] | None = None, pooling: str | None = None,
                     classes: int = 1000, data_home: str | os.PathLike | None = None):
    """Create a Keras Applications model with one-line errors: ``imgrec predict``, ``imgrec bench`` and the tests.

    The lessons call the Keras constructor themselves (with :func:`choose`); this is the same call for
    the commands, where a missing file must be a clear message and not a traceback. ``weights`` is
    ``"imagenet"`` (cached, linked from the data home, or downloaded on first use), ``None`` (random
    initialisation: the same architecture, e.g. with ``classes=N``) or the path of a local weights
    file (``.h5`` / ``.weights.h5``) for exactly this architecture. Without the top and without
    ``input_shape`` the model is built at its default size (Keras would leave the size open).
    Raises :class:`ModelError` for an unknown name or impossible settings and :class:`WeightsError`
    when the ImageNet weights are neither cached nor downloadable (in seconds when offline), or a
    file does not fit.
    """
    from . import weights as _weights

    app = application(name)
    constructor = app.model_builder()
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
    _weights.prepare_keras_cache(data_home)
    choice = choose(app.name, include_top=include_top, size=size, data_home=data_home)
    cached = cached_weights(app.name, include_top, size)
    try:
        return _construct(constructor, app, weights=choice.weights, **kwargs)
    except (ModelError, WeightsError):
        raise
    except Exception as exc:
        detail = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
        if cached is None:
            raise _weights.missing_weights_error(app.weight_file(include_top, size),
                                                 f"the download failed ({detail})") from None
        raise WeightsError(f"{cached}: the cached weights file could not be used ({detail}); it may be incomplete "
                           "or not the official file (Keras checks its hash); delete it and connect to the "
                           "internet once, or replace it with the official file") from None


def _construct(constructor: Callable[..., Any], app: Application, **kwargs: Any):
    try:
        return constructor(**kwargs)
    except ValueError as exc:
        raise ModelError(f"{app.display}: these settings do not work ({str(exc).splitlines()[0][:240]})") from None


__all__ = [
    "Application", "APPLICATIONS", "application", "model_names", "display_name", "input_size", "Choice",
    "choose", "load_application",
]


def cached_weights(name: str, include_top: bool = True, size: int | None = None) -> Path | None:
    """The file in the Keras cache holding ``name``'s ImageNet weights for these settings, if any (lessons 03, 04).

    Without the top, the convolution weights do not depend on the input size, so a file saved for
    another size of the same model serves as well (MobileNetV2 0.35 at 160 px can load the 224 px file,
    given as ``weights=path``).
    """
    app = application(name)
    cache = weights.keras_cache_dir()
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
    return cached_weights(name, include_top, size) is not None


def weights_status(name: str, include_top: bool = True, size: int | None = None) -> str:
    """``"cached"`` or ``"not cached (downloads ~528 MB on first use)"`` (lesson 03, ``imgrec predict --list``)."""
    if cached_weights(name, include_top, size) is not None:
        return "cached"
    return f"not cached (downloads ~{application(name).download_mb(include_top):g} MB on first use)"
