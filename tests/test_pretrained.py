"""Keras Applications in lesson 03 (and ``imgrec predict``): registry, choosing a model, Keras cache, weights, ImageNet labels.

VGG16's real ImageNet weights (528 MB) are not on the course's machines, so its path is tested
honestly without them: the architecture and parameter count, and loading a weights file from a
local path written by the test from a randomly initialised model (the same ``load_weights`` path a
user with the real file takes). Tests that need the real data home skip with a reason.
"""
from __future__ import annotations

import os
import re
import urllib.error
from pathlib import Path

import nbformat
import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from imgrec_helpers import applications, imagenet, models  # noqa: E402
from imgrec_helpers.errors import ModelError, WeightsError  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def empty_data_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "data_home"
    home.mkdir()
    monkeypatch.setenv("IMGREC_DATA_HOME", str(home))
    return home


@pytest.fixture
def course_fetch_fails(monkeypatch):
    """No mirror, and every download of the course's own (requests, through pooch) fails at once."""
    import requests

    monkeypatch.delenv("IMGREC_DATA_MIRROR", raising=False)

    def no_network(*args, **kwargs):
        raise requests.ConnectionError("no network in this test")

    monkeypatch.setattr(requests, "get", no_network)


@pytest.fixture
def offline(monkeypatch, course_fetch_fails):
    """No network and no mirror: the reachability probe says no, and any download attempt fails at once."""
    monkeypatch.setattr(applications, "can_reach", lambda url, timeout=3.0: False)

    def no_download(*args, **kwargs):
        raise urllib.error.URLError("no network in this test")

    from keras.src.utils import file_utils
    monkeypatch.setattr(file_utils, "urlretrieve", no_download)


def _legacy_h5(model, path: Path) -> Path:
    """Write weights in the legacy Keras H5 layout that the official Applications files use."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    return path


# --- registry -----------------------------------------------------------------------------------


def test_registry_names_sizes_and_keras_functions():
    import keras

    names = applications.model_names()
    for name in ("vgg16", "mobilenet-0.25", "mobilenetv2-0.35", "resnet50", "inceptionv3", "mobilenetv2-1.0"):
        assert name in names
        assert name == name.lower() and " " not in name
    assert applications.input_size("vgg16") == 224 and applications.input_size("inceptionv3") == 299
    assert applications.display_name("vgg16") == "VGG16"
    assert applications.display_name("mobilenet-0.25") == "MobileNet (alpha 0.25)"
    assert applications.display_name("MobileNetV2-0.35") == "MobileNetV2 (alpha 0.35)"
    # the registry hands out Keras' own functions, not wrappers
    vgg = applications.application("vgg16")
    assert vgg.model_builder() is keras.applications.vgg16.VGG16
    assert vgg.keras_module().preprocess_input is keras.applications.vgg16.preprocess_input
    assert applications.application("mobilenetv2-0.35").model_builder() is keras.applications.mobilenet_v2.MobileNetV2


def test_unknown_model_name_is_one_line_listing_names():
    for call in (lambda: applications.load_application("vgg17", weights=None), lambda: applications.choose("vgg17")):
        with pytest.raises(ModelError) as err:
            call()
        message = str(err.value)
        assert "vgg17" in message and "vgg16" in message and "mobilenet-0.25" in message and "\n" not in message


def test_impossible_settings_are_model_errors():
    with pytest.raises(ModelError, match="1000 classes"):
        applications.load_application("mobilenet-0.25", classes=10)
    with pytest.raises(ModelError, match="224 x 224"):
        applications.choose("vgg16", size=300)  # with its top, VGG16 takes only 224 px


def test_the_rename_only_wrappers_are_gone():
    """No module of the package wraps the Keras calls the lessons teach (they make them in view)."""
    import importlib
    import pkgutil

    import imgrec_helpers

    gone = ("freeze", "compile_classifier", "augmentation_layers", "with_augmentation", "timed",
            "build_frozen_classifier", "build_end_to_end", "preprocessing_layers", "feature_extractor",
            "extract_features", "load_with_fallback", "preprocess_input", "decode_predictions", "custom_objects",
            "layer_table", "save_json_and_h5", "load_json_and_h5", "one_hot", "preprocess_images", "predict_image",
            "evaluate_accuracy", "fit")
    for info in pkgutil.iter_modules(imgrec_helpers.__path__):
        if info.name == "__main__":  # runs the command when imported
            continue
        module = importlib.import_module(f"imgrec_helpers.{info.name}")
        assert not [name for name in gone if name in vars(module)], info.name
    assert callable(models.build_feature_head)  # lesson 05 and the benchmark use it


# --- VGG16 without its real weights ---------------------------------------------------------------


def test_vgg16_architecture_and_fc2_features():
    import keras

    keras.backend.clear_session()
    model = keras.applications.vgg16.VGG16(weights=None)
    assert model.count_params() == 138_357_544
    assert model.input_shape == (None, 224, 224, 3) and model.output_shape == (None, 1000)
    assert [layer.name for layer in model.layers[-3:]] == ["fc1", "fc2", "predictions"]
    layer = applications.application("vgg16").feature_layer
    extractor = keras.Model(inputs=model.inputs, outputs=model.get_layer(layer).output)
    assert layer == "fc2" and extractor.output_shape == (None, 4096)


def test_feature_layers_of_the_registry_exist():
    """Each model's ``feature_layer`` (lesson 03's extractor) is a layer of a freshly built model."""
    import keras

    for name, width in (("mobilenet-0.25", 256), ("mobilenetv2-0.35", 1280), ("resnet50", 2048)):
        keras.backend.clear_session()
        app = applications.application(name)
        model = app.model_builder()(weights=None, **app.kwargs)
        output = model.get_layer(app.feature_layer).output
        assert int(np.prod(output.shape[1:])) == width, name


def test_vgg16_loads_weights_from_a_local_file(tmp_path):
    """The same code path as with the real download: a weights file in the official legacy H5 layout, by path."""
    import keras

    keras.backend.clear_session()
    keras.utils.set_random_seed(1)
    source = keras.applications.vgg16.VGG16(weights=None)
    path = _legacy_h5(source, tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels.h5")
    keras.utils.set_random_seed(2)  # a different random initialisation before loading
    loaded = applications.load_application("vgg16", weights=path)
    image = np.random.default_rng(0).integers(0, 256, (1, 224, 224, 3), dtype=np.uint8)
    x = keras.applications.vgg16.preprocess_input(image)
    expected = source.predict(x, verbose=0)
    np.testing.assert_array_equal(expected, loaded.predict(x, verbose=0))
    # Keras' constructor takes the same file by path, as the lessons' weights=choice.weights does
    np.testing.assert_array_equal(expected, keras.applications.vgg16.VGG16(weights=str(path)).predict(x, verbose=0))


def test_weights_file_that_does_not_fit(tmp_path):
    import keras

    keras.backend.clear_session()
    small = keras.applications.MobileNet(alpha=0.25, weights=None)
    path = tmp_path / "small.weights.h5"
    small.save_weights(path)
    with pytest.raises(WeightsError, match="does not fit"):
        applications.load_application("mobilenetv2-0.35", weights=path)
    with pytest.raises(WeightsError, match="no such weights file"):
        applications.load_application("vgg16", weights=tmp_path / "missing.h5")


# --- the Keras cache and missing weights ----------------------------------------------------------


def test_prepare_keras_cache_links_without_touching_the_data_home(tmp_path, keras_home):
    data_home = tmp_path / "home"
    models = data_home / "keras" / "models"
    models.mkdir(parents=True)
    (models / "a.h5").write_bytes(b"A")
    (models / "b.h5").write_bytes(b"B")
    cache = keras_home / "models"
    cache.mkdir()
    (cache / "b.h5").write_bytes(b"mine")          # already in the cache: left alone
    before = sorted(p.name for p in models.iterdir())
    linked = applications.prepare_keras_cache(data_home)
    assert applications.keras_cache_dir() == cache
    assert [p.name for p in linked] == ["a.h5"]
    assert (cache / "a.h5").read_bytes() == b"A" and (cache / "b.h5").read_bytes() == b"mine"
    assert sorted(p.name for p in models.iterdir()) == before
    assert applications.prepare_keras_cache(data_home) == linked  # idempotent
    assert applications.prepare_keras_cache(tmp_path / "nowhere") == []


def test_weights_status(keras_home, empty_data_home):
    assert applications.weights_status("vgg16") == "not cached (downloads ~528 MB on first use)"
    assert not applications.weights_available("mobilenetv2-0.35", include_top=False, size=160)
    cache = keras_home / "models"
    cache.mkdir()
    (cache / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5").write_bytes(b"x")
    # without the top, the 224 px file serves every input size
    assert applications.weights_status("mobilenetv2-0.35", include_top=False, size=160) == "cached"
    assert not applications.weights_available("mobilenetv2-0.35", include_top=True)


def test_missing_weights_offline_is_a_fast_one_line_error(keras_home, empty_data_home, offline):
    import time

    for call in (lambda: applications.load_application("mobilenet-0.25"), lambda: applications.choose("mobilenet-0.25")):
        start = time.perf_counter()
        with pytest.raises(WeightsError) as err:
            call()
        message = str(err.value)
        assert time.perf_counter() - start < 20
        assert "mobilenet_2_5_224_tf.h5" in message and str(keras_home / "models") in message
        assert "cannot reach the download server" in message and "imgrec data fetch" in message
        assert "IMGREC_DATA_MIRROR" in message and "\n" not in message


def test_failed_download_is_a_weights_error(keras_home, empty_data_home, course_fetch_fails, monkeypatch):
    from keras.src.utils import file_utils

    monkeypatch.setattr(applications, "can_reach", lambda url, timeout=3.0: True)

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("refused")

    monkeypatch.setattr(file_utils, "urlretrieve", refuse)
    with pytest.raises(WeightsError, match="download failed"):
        applications.load_application("mobilenet-0.25", include_top=False)
    assert not list((keras_home / "models").glob("*.h5"))  # nothing half-written left behind


def test_choose_says_keras_downloads_when_online(keras_home, empty_data_home, course_fetch_fails, monkeypatch):
    """The course's own fetch fails, but the host answers: Keras downloads the file itself on first use."""
    monkeypatch.setattr(applications, "can_reach", lambda url, timeout=3.0: True)
    choice = applications.choose("vgg16", "mobilenet-0.25")
    assert choice.name == "vgg16" and not choice.fallback_used and choice.weights == "imagenet"
    assert "downloads vgg16_weights_tf_dim_ordering_tf_kernels.h5" in choice.reason and "528 MB" in choice.reason


@pytest.fixture
def cached_stand_in(keras_home):
    """A MobileNet 0.25 (with top) weights file in the empty Keras cache, written by the test; returns its model.

    A placeholder ``imagenet_class_index.json`` sits beside it: :func:`applications.choose` only checks
    that ``decode_predictions`` will find its labels file (these tests never decode).
    """
    import keras

    keras.backend.clear_session()
    stand_in = keras.applications.MobileNet(alpha=0.25, weights=None)
    (keras_home / "models").mkdir()
    _legacy_h5(stand_in, keras_home / "models" / "mobilenet_2_5_224_tf.h5")
    (keras_home / "models" / applications.CLASS_INDEX_FILE).write_text("{}")
    return stand_in


def test_fallback_says_so_in_plain_words_and_hands_over_keras(cached_stand_in, empty_data_home, offline):
    """VGG16 is missing; the fallback's weights file is in the cache (here written by the test)."""
    import keras

    choice = applications.choose("vgg16", "mobilenet-0.25")
    assert choice.name == "mobilenet-0.25" and choice.requested == "vgg16" and choice.fallback_used
    assert "VGG16" in choice.reason and "MobileNet (alpha 0.25)" in choice.reason and "instead" in choice.reason
    assert "\n" not in choice.reason
    assert choice.weights == "imagenet" and choice.size == 224 and choice.display == "MobileNet (alpha 0.25)"
    # the lesson's own call for the stand-in: Keras reads the cached file
    model = keras.applications.mobilenet.MobileNet(alpha=0.25, weights=choice.weights)
    x = keras.applications.mobilenet.preprocess_input(np.zeros((1, 224, 224, 3), np.uint8))
    np.testing.assert_allclose(model.predict(x, verbose=0), cached_stand_in.predict(x, verbose=0), rtol=1e-6)


def test_no_fallback_needed_when_weights_are_there(cached_stand_in, empty_data_home, offline):
    choice = applications.choose("mobilenet-0.25", "vgg16")
    assert choice.name == "mobilenet-0.25" and not choice.fallback_used and "instead" not in choice.reason
    assert "in the Keras cache" in choice.reason


def test_no_weights_for_either_model_is_one_line(cached_stand_in, empty_data_home, offline):
    with pytest.raises(WeightsError) as err:
        applications.choose("vgg16", "resnet50")
    message = str(err.value)
    assert "VGG16" in message and "ResNet50" in message and "imgrec data fetch" in message and "\n" not in message


def test_without_top_another_size_file_is_passed_by_path(keras_home, empty_data_home, offline):
    """MobileNetV2 0.35 without top at 160 px: only the 224 px file is there; Keras loads it by path."""
    import keras

    keras.backend.clear_session()
    source = keras.applications.MobileNetV2(alpha=0.35, include_top=False, weights=None, input_shape=(224, 224, 3))
    (keras_home / "models").mkdir()
    _legacy_h5(source, keras_home / "models" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5")
    choice = applications.choose("mobilenetv2-1.0", "mobilenetv2-0.35", include_top=False, size=160)
    assert choice.name == "mobilenetv2-0.35" and choice.size == 160 and Path(choice.weights).is_file()
    assert "its path is passed as weights=" in choice.reason
    base = keras.applications.MobileNetV2(alpha=0.35, include_top=False, weights=choice.weights, input_shape=(160, 160, 3))
    for a, b in zip(base.get_weights(), source.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_or_random_builds_the_architecture_and_says_so(keras_home, empty_data_home, offline):
    choice = applications.choose("vgg16", include_top=False, size=300, or_random=True)
    assert choice.weights is None and "weights=None" in choice.reason and "random" in choice.reason
    assert choice.name == "vgg16" and choice.size == 300


def test_class_index_missing_offline_is_one_line(keras_home, empty_data_home, offline):
    (keras_home / "models").mkdir()
    (keras_home / "models" / "mobilenet_2_5_224_tf.h5").write_bytes(b"x")  # weights there, labels not
    with pytest.raises(WeightsError, match="imagenet_class_index.json"):
        applications.choose("mobilenet-0.25")
    assert applications.choose("mobilenet-0.25", include_top=False, or_random=True).weights is None  # no labels needed


# --- ImageNet labels --------------------------------------------------------------------------------


def test_wnid_from_filename_and_top1():
    assert imagenet.wnid_from_filename("n02088364_beagle.jpg") == "n02088364"
    assert imagenet.wnid_from_filename("burn_cat.jpg") is None
    decoded = [[("n02088364", "beagle", 0.9)], [("n01440764", "tench", 0.5)], [("x", "y", 1.0)]]
    acc, n = imagenet.top1_accuracy(decoded, ["n02088364_beagle.jpg", "n02086079_Pekinese.jpg", "cat.jpg"])
    assert (acc, n) == (0.5, 2)


def test_keras_decode_predictions_reads_the_linked_class_index_offline(real_home, keras_home, offline):
    """The data home's labels file, linked into the cache, passes Keras' hash check: no download."""
    import keras

    applications.prepare_keras_cache(real_home)
    probabilities = np.zeros((2, 1000), np.float32)
    probabilities[0, 281] = 0.7   # tabby
    probabilities[0, 967] = 0.2   # espresso
    probabilities[1, 967] = 1.0
    decoded = keras.applications.vgg16.decode_predictions(probabilities, top=3)
    assert [tuple(row) for row in decoded[0][:2]] == [("n02123045", "tabby", pytest.approx(0.7)),
                                                       ("n07920052", "espresso", pytest.approx(0.2))]
    assert tuple(decoded[1][0][:2]) == ("n07920052", "espresso") and len(decoded[1]) == 3
    assert "n02123045" in imagenet.DOMESTIC_CAT_WNIDS


def test_real_mobilenet_recognises_the_cat_and_the_espresso(real_home, keras_home, offline):
    """Lesson 03's path on the real weights: choose, then Keras' own calls."""
    import keras

    from imgrec_helpers import data

    applications.prepare_keras_cache(real_home)
    choice = applications.choose("vgg16", "mobilenet-0.25")
    assert choice.name == "mobilenet-0.25"
    keras.backend.clear_session()
    model = keras.applications.mobilenet.MobileNet(alpha=0.25, weights="imagenet")
    preprocess_input = keras.applications.mobilenet.preprocess_input
    samples = real_home / "images" / "samples"
    images = np.stack([data.load_image(samples / n, 224) for n in ("skimage_chelsea.jpg", "skimage_coffee.jpg")])
    predictions = model.predict(preprocess_input(images), verbose=0)
    cat, coffee = keras.applications.mobilenet.decode_predictions(predictions, top=5)
    assert {w for w, _, _ in cat} & set(imagenet.DOMESTIC_CAT_WNIDS)
    assert "espresso" in [label for _, label, _ in coffee]
    # the standalone feature extractor of the lesson: the pooled vector before the classifier
    extractor = keras.Model(inputs=model.inputs, outputs=model.get_layer(choice.feature_layer).output)
    assert extractor.predict(preprocess_input(images), verbose=0).reshape(2, -1).shape == (2, 256)


def test_load_application_builds_without_weights():
    import keras

    keras.backend.clear_session()
    model = applications.load_application("mobilenetv2-1.0", weights=None, include_top=False, pooling="avg",
                                          input_shape=(96, 96, 3))
    assert model.output_shape == (None, 1280)
    scratch = applications.load_application("mobilenet-0.25", weights=None, classes=7)
    assert scratch.output_shape == (None, 7)
    assert applications.load_application("mobilenet-0.25", weights=None, include_top=False).input_shape == (None, 224, 224, 3)


# --- lesson 03 shows the Keras it teaches -----------------------------------------------------------


def _code(notebook: str) -> str:
    nb = nbformat.read(REPO / "notebooks" / notebook, as_version=4)
    return "\n".join(c.source for c in nb.cells if c.cell_type == "code")


LESSON_03_CALLS = [
    r"keras\.applications\.vgg16\.VGG16\(weights=None\)",
    r"model = keras\.applications\.vgg16\.VGG16\(weights=\"imagenet\"\)",
    r"preprocess_input = keras\.applications\.vgg16\.preprocess_input",
    r"decode_predictions = keras\.applications\.vgg16\.decode_predictions",
    r"model = keras\.applications\.mobilenet\.MobileNet\(alpha=0\.25, weights=\"imagenet\"\)",
    r"keras\.utils\.set_random_seed\(lesson\.seed\)",
    r"keras\.utils\.load_img\(first, target_size=\(size, size\)\)",
    r"keras\.utils\.img_to_array\(image\)",
    r"np\.expand_dims\(array, axis=0\)",
    r"preprocess_input\(batch",
    r"model\.predict\(x",
    r"decode_predictions\(predictions, top=settings\[\"top_k\"\]\)",
    r"keras\.applications\.ResNet50\b", r"keras\.applications\.InceptionV3\b",
    r"keras\.applications\.MobileNet\b", r"keras\.applications\.MobileNetV2\b",
    r"include_top=False, input_shape=\(160, 160, 3\)", r"pooling=\"avg\"", r"pooling=\"max\"",
    r"weights=None, classes=10",
    r"keras\.Model\(inputs=vgg16\.inputs, outputs=vgg16\.get_layer\(\"fc2\"\)\.output\)",
    r"keras\.Model\(inputs=model\.inputs, outputs=model\.get_layer\(feature_layer\)\.output\)",
    r"persistence\.save_features\(", r"persistence\.load_features\(",
]


@pytest.mark.parametrize("pattern", LESSON_03_CALLS)
def test_lesson_03_code_cells_show_the_keras_calls(pattern):
    assert re.search(pattern, _code("03_pretrained_models.ipynb")), pattern


def test_lesson_03_has_no_upper_case_computed_names():
    code = _code("03_pretrained_models.ipynb")
    parameters = {"PROFILE", "SEED", "RUN_DIR", "DATA_HOME", "PHOTOS"}
    assigned = set(re.findall(r"^([A-Z][A-Z0-9_]*)\s*(?:,|=[^=])", code, re.M))
    assert assigned <= parameters, assigned - parameters
