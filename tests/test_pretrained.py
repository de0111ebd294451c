"""Keras Applications in lesson 03 (and ``imgrec predict``): registry, Keras cache, weights, decoding.

VGG16's real ImageNet weights (528 MB) are not on the course's machines, so its path is tested
honestly without them: the architecture and parameter count, and loading a weights file from a
local path written by the test from a randomly initialised model (the same ``load_weights`` path a
user with the real file takes). Tests that need the real data home skip with a reason.
"""
from __future__ import annotations

import os
import urllib.error
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from imgrec_helpers import pretrained  # noqa: E402
from imgrec_helpers.errors import ModelError, WeightsError  # noqa: E402

DATA_HOME = Path(os.environ.get("IMGREC_DATA_HOME", Path(__file__).resolve().parent.parent / "data"))
REAL_MODELS = DATA_HOME / "keras" / "models"
needs_class_index = pytest.mark.skipif(not (REAL_MODELS / "imagenet_class_index.json").is_file(),
                                       reason=f"no keras/models/imagenet_class_index.json in {DATA_HOME}")
needs_mobilenet = pytest.mark.skipif(not (REAL_MODELS / "mobilenet_2_5_224_tf.h5").is_file(),
                                     reason=f"no MobileNet 0.25 ImageNet weights in {DATA_HOME}/keras/models")
needs_samples = pytest.mark.skipif(not (DATA_HOME / "images" / "samples" / "skimage_chelsea.jpg").is_file(),
                                   reason=f"no images/samples in {DATA_HOME}")


@pytest.fixture
def keras_home(tmp_path, monkeypatch) -> Path:
    """An empty Keras cache, as on a fresh machine: Keras' home points into tmp_path for this test."""
    from keras.src.backend import config

    home = tmp_path / "keras_home"
    home.mkdir()
    monkeypatch.setattr(config, "_KERAS_DIR", str(home))
    return home


@pytest.fixture
def empty_data_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "data_home"
    home.mkdir()
    monkeypatch.setenv("IMGREC_DATA_HOME", str(home))
    return home


@pytest.fixture
def offline(monkeypatch):
    """No network: the reachability probe says no, and any download attempt fails at once."""
    monkeypatch.setattr(pretrained, "_can_reach", lambda url, timeout=3.0: False)

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


def test_registry_names_and_sizes():
    names = pretrained.model_names()
    for name in ("vgg16", "mobilenet-0.25", "mobilenetv2-0.35", "resnet50", "inceptionv3", "mobilenetv2-1.0"):
        assert name in names
        assert name == name.lower() and " " not in name
    assert pretrained.input_size("vgg16") == 224 and pretrained.input_size("inceptionv3") == 299
    assert pretrained.display_name("vgg16") == "VGG16"
    assert pretrained.display_name("mobilenet-0.25") == "MobileNet (alpha 0.25)"
    assert pretrained.display_name("MobileNetV2-0.35") == "MobileNetV2 (alpha 0.35)"


def test_unknown_model_name_is_one_line_listing_names():
    with pytest.raises(ModelError) as err:
        pretrained.load_application("vgg17", weights=None)
    message = str(err.value)
    assert "vgg17" in message and "vgg16" in message and "mobilenet-0.25" in message and "\n" not in message


def test_impossible_settings_are_model_errors():
    with pytest.raises(ModelError, match="1000 classes"):
        pretrained.load_application("mobilenet-0.25", classes=10)


# --- VGG16 without its real weights ---------------------------------------------------------------


def test_vgg16_architecture_and_fc2_features():
    import keras

    keras.backend.clear_session()
    model = pretrained.load_application("vgg16", weights=None)
    assert model.count_params() == 138_357_544
    assert model.input_shape == (None, 224, 224, 3) and model.output_shape == (None, 1000)
    assert [layer.name for layer in model.layers[-3:]] == ["fc1", "fc2", "predictions"]
    extractor = pretrained.feature_extractor(model)
    assert extractor.output_shape == (None, 4096)


def test_vgg16_loads_weights_from_a_local_file(tmp_path):
    """The same code path as with the real download: a weights file in the official legacy H5 layout, by path."""
    import keras

    keras.backend.clear_session()
    keras.utils.set_random_seed(1)
    source = pretrained.load_application("vgg16", weights=None)
    path = _legacy_h5(source, tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels.h5")
    keras.utils.set_random_seed(2)  # a different random initialisation before loading
    loaded = pretrained.load_application("vgg16", weights=path)
    image = np.random.default_rng(0).integers(0, 256, (1, 224, 224, 3), dtype=np.uint8)
    x = pretrained.preprocess_input("vgg16", image)
    np.testing.assert_array_equal(source.predict(x, verbose=0), loaded.predict(x, verbose=0))


def test_weights_file_that_does_not_fit(tmp_path):
    import keras

    keras.backend.clear_session()
    small = pretrained.load_application("mobilenet-0.25", weights=None)
    path = small.save_weights(tmp_path / "small.weights.h5") or tmp_path / "small.weights.h5"
    with pytest.raises(WeightsError, match="does not fit"):
        pretrained.load_application("mobilenetv2-0.35", weights=path)
    with pytest.raises(WeightsError, match="no such weights file"):
        pretrained.load_application("vgg16", weights=tmp_path / "missing.h5")


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
    linked = pretrained.prepare_keras_cache(data_home)
    assert pretrained.keras_cache_dir() == cache
    assert [p.name for p in linked] == ["a.h5"]
    assert (cache / "a.h5").read_bytes() == b"A" and (cache / "b.h5").read_bytes() == b"mine"
    assert sorted(p.name for p in models.iterdir()) == before
    assert pretrained.prepare_keras_cache(data_home) == linked  # idempotent
    assert pretrained.prepare_keras_cache(tmp_path / "nowhere") == []


def test_weights_status(keras_home, empty_data_home):
    assert pretrained.weights_status("vgg16") == "not cached (downloads ~528 MB on first use)"
    assert not pretrained.weights_available("mobilenetv2-0.35", include_top=False, size=160)
    cache = keras_home / "models"
    cache.mkdir()
    (cache / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5").write_bytes(b"x")
    # without the top, the 224 px file serves every input size
    assert pretrained.weights_status("mobilenetv2-0.35", include_top=False, size=160) == "cached"
    assert not pretrained.weights_available("mobilenetv2-0.35", include_top=True)


def test_missing_weights_offline_is_a_fast_one_line_error(keras_home, empty_data_home, offline):
    import time

    start = time.perf_counter()
    with pytest.raises(WeightsError) as err:
        pretrained.load_application("mobilenet-0.25")
    message = str(err.value)
    assert time.perf_counter() - start < 20
    assert "mobilenet_2_5_224_tf.h5" in message and str(keras_home / "models") in message
    assert "connect to the internet" in message and "keras/models" in message and "\n" not in message


def test_failed_download_is_a_weights_error(keras_home, empty_data_home, monkeypatch):
    from keras.src.utils import file_utils

    monkeypatch.setattr(pretrained, "_can_reach", lambda url, timeout=3.0: True)

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("refused")

    monkeypatch.setattr(file_utils, "urlretrieve", refuse)
    with pytest.raises(WeightsError, match="download failed"):
        pretrained.load_application("mobilenet-0.25", include_top=False)
    assert not list((keras_home / "models").glob("*.h5"))  # nothing half-written left behind


@pytest.fixture
def cached_stand_in(keras_home):
    """A MobileNet 0.25 (with top) weights file in the empty Keras cache, written by the test; returns its model."""
    import keras

    keras.backend.clear_session()
    stand_in = pretrained.load_application("mobilenet-0.25", weights=None)
    (keras_home / "models").mkdir()
    _legacy_h5(stand_in, keras_home / "models" / "mobilenet_2_5_224_tf.h5")
    return stand_in


def test_fallback_says_so_in_plain_words(cached_stand_in, empty_data_home, offline):
    """VGG16 is missing; the fallback's weights file is in the cache (here written by the test)."""
    stand_in = cached_stand_in
    model, used, message = pretrained.load_with_fallback("vgg16", "mobilenet-0.25")
    assert used == "mobilenet-0.25" and model.output_shape == (None, 1000)
    assert "VGG16" in message and "MobileNet (alpha 0.25)" in message and "instead" in message
    x = pretrained.preprocess_input("mobilenet-0.25", np.zeros((1, 224, 224, 3), np.uint8))
    np.testing.assert_allclose(model.predict(x, verbose=0), stand_in.predict(x, verbose=0), rtol=1e-6)


def test_no_fallback_needed_when_weights_are_there(cached_stand_in, empty_data_home, offline):
    _, used, message = pretrained.load_with_fallback("mobilenet-0.25", "vgg16")
    assert used == "mobilenet-0.25" and "instead" not in message


# --- inputs and outputs ---------------------------------------------------------------------------


def test_preprocess_input_per_model_and_as_layers():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    keep = images.copy()
    tf_mode = pretrained.preprocess_input("mobilenet-0.25", images)
    np.testing.assert_allclose(tf_mode, images / 127.5 - 1, atol=1e-5)
    caffe = pretrained.preprocess_input("vgg16", images)
    np.testing.assert_allclose(caffe[..., 0], images[..., 2] - 103.939, atol=1e-3)  # BGR, mean removed
    assert np.array_equal(images, keep) and caffe.dtype == np.float32
    for name, expected in (("mobilenetv2-0.35", tf_mode), ("vgg16", caffe)):
        x = images.astype(np.float32)
        for layer in pretrained.preprocessing_layers(name):
            x = layer(x)
        np.testing.assert_allclose(np.asarray(x), expected, atol=1e-3)


def test_wnid_from_filename_and_top1():
    assert pretrained.wnid_from_filename("n02088364_beagle.jpg") == "n02088364"
    assert pretrained.wnid_from_filename("burn_cat.jpg") is None
    decoded = [[("n02088364", "beagle", 0.9)], [("n01440764", "tench", 0.5)], [("x", "y", 1.0)]]
    acc, n = pretrained.imagenet_top1_accuracy(decoded, ["n02088364_beagle.jpg", "n02086079_Pekinese.jpg", "cat.jpg"])
    assert (acc, n) == (0.5, 2)


@needs_class_index
def test_decode_predictions_with_wnids(keras_home):
    pretrained.prepare_keras_cache(DATA_HOME)
    probabilities = np.zeros((2, 1000), np.float32)
    probabilities[0, 281] = 0.7   # tabby
    probabilities[0, 967] = 0.2   # espresso
    probabilities[1, 967] = 1.0
    decoded = pretrained.decode_predictions("vgg16", probabilities, top=3)
    assert decoded[0][:2] == [("n02123045", "tabby", pytest.approx(0.7)), ("n07920052", "espresso", pytest.approx(0.2))]
    assert decoded[1][0][:2] == ("n07920052", "espresso") and len(decoded[1]) == 3
    assert "n02123045" in pretrained.DOMESTIC_CAT_WNIDS
    with pytest.raises(ModelError, match="1000"):
        pretrained.decode_predictions("vgg16", np.zeros((1, 10)))


def test_decode_predictions_offline_without_class_index(keras_home, empty_data_home, offline):
    with pytest.raises(WeightsError, match="imagenet_class_index.json"):
        pretrained.decode_predictions("vgg16", np.zeros((1, 1000)), top=5)


@needs_mobilenet
@needs_class_index
@needs_samples
def test_real_mobilenet_recognises_the_cat_and_the_espresso(keras_home):
    import keras

    from imgrec_helpers import data

    keras.backend.clear_session()
    model = pretrained.load_application("mobilenet-0.25", data_home=DATA_HOME)
    samples = DATA_HOME / "images" / "samples"
    images = np.stack([data.load_image(samples / n, 224) for n in ("skimage_chelsea.jpg", "skimage_coffee.jpg")])
    cat, coffee = pretrained.predict_top("mobilenet-0.25", model, images, top=5, data_home=DATA_HOME)
    assert {w for w, _, _ in cat} & set(pretrained.DOMESTIC_CAT_WNIDS)
    assert "espresso" in [label for _, label, _ in coffee]


def test_tour_entries_build_without_weights():
    import keras

    keras.backend.clear_session()
    model = pretrained.load_application("mobilenetv2-1.0", weights=None, include_top=False, pooling="avg",
                                        input_shape=(96, 96, 3))
    assert model.output_shape == (None, 1280)
    scratch = pretrained.load_application("mobilenet-0.25", weights=None, classes=7)
    assert scratch.output_shape == (None, 7)
    assert pretrained.load_application("mobilenet-0.25", weights=None, include_top=False).input_shape == (None, 224, 224, 3)
