"""Transfer learning in lesson 04: heads on features, end-to-end models, freezing, saving and loading.

Unit tests build small models with random weights (``weights=None``) on images made by the test;
the test on the real 64 dog/not-dog photos skips when the data home lacks them.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from imgrec_helpers import models, persistence, pretrained  # noqa: E402

DATA_HOME = Path(os.environ.get("IMGREC_DATA_HOME", Path(__file__).resolve().parent.parent / "data"))


def _images(n: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def _small_base(size: int = 64, pooling: str | None = "avg"):
    import keras

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    return pretrained.load_application("mobilenet-0.25", weights=None, include_top=False, pooling=pooling,
                                       input_shape=(size, size, 3))


def test_feature_head_binary_and_multiclass():
    binary = pretrained.build_feature_head(32, 2, hidden=8)
    assert binary.output_shape == (None, 1) and binary.loss == "binary_crossentropy"
    multi = pretrained.build_feature_head((4, 4, 8), 10, hidden=0)
    assert multi.output_shape == (None, 10) and multi.count_params() == 4 * 4 * 8 * 10 + 10
    x = np.random.default_rng(0).normal(size=(40, 32)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    binary.fit(x, y, epochs=2, verbose=0)
    y10 = np.arange(40) % 10
    multi.fit(np.zeros((40, 4, 4, 8), np.float32), y10, epochs=1, verbose=0)


def test_extract_features_chunks_and_resizes():
    base = _small_base(48)
    images = _images(5, 32)
    one = pretrained.extract_features("mobilenet-0.25", base, images, size=48, batch_size=5)
    chunked = pretrained.extract_features("mobilenet-0.25", base, images, size=48, batch_size=2)
    assert one.shape == (5, 256) and one.dtype == np.float32
    np.testing.assert_allclose(one, chunked, rtol=1e-4, atol=1e-5)
    assert pretrained.extract_features("mobilenet-0.25", base, images[:0], size=48).shape == (0, 256)


def test_feature_extractor_of_a_model_with_top():
    import keras

    keras.backend.clear_session()
    model = pretrained.load_application("mobilenet-0.25", weights=None)
    assert pretrained.feature_extractor(model).output_shape == (None, 256)


def test_freeze_whole_model_and_last_layers():
    base = _small_base()
    pretrained.freeze(base)
    assert models.parameter_counts(base)["trainable"] == 0
    pretrained.freeze(base, trainable_from=-6)
    counts = models.parameter_counts(base)
    assert 0 < counts["trainable"] < counts["total"]
    assert all(not layer.trainable for layer in base.layers[:-6])
    import keras
    assert all(not layer.trainable for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization))


def test_end_to_end_dog_model_save_load_round_trip(tmp_path):
    import keras

    base = _small_base(64)
    images = _images(12, 64)
    labels = np.arange(12) % 2
    features = pretrained.extract_features("mobilenet-0.25", base, images)
    head = pretrained.build_feature_head(features.shape[1:], 2, hidden=16)
    head.fit(features, labels, epochs=2, verbose=0)
    model = pretrained.build_end_to_end("mobilenet-0.25", base, head, model_name="dog_vs_notdog")
    assert model.input_shape == (None, 64, 64, 3)
    assert models.parameter_counts(model)["trainable"] == head.count_params()
    expected = head.predict(features, verbose=0)
    np.testing.assert_allclose(model.predict(images, verbose=0), expected, atol=1e-5)
    path = persistence.save_model(model, tmp_path / "dog_vs_notdog.keras", class_names=["not dog", "dog"],
                                  input_scale="0-255")
    info = persistence.read_model_info(path)
    assert info["class_names"] == ["not dog", "dog"] and info["input_scale"] == "0-255"
    for loaded in (keras.models.load_model(path), persistence.load_model(path)):
        np.testing.assert_allclose(loaded.predict(images, verbose=0), expected, atol=1e-5)


def test_end_to_end_with_caffe_preprocessing_saves_and_loads(tmp_path):
    """VGG16-style preprocessing (BGR, mean removed) as a frozen layer survives a .keras round trip."""
    import keras

    keras.backend.clear_session()
    inputs = keras.Input((8, 8, 3))
    x = inputs
    for layer in pretrained.preprocessing_layers("vgg16"):
        x = layer(x)
    model = keras.Model(inputs, x)
    model.save(tmp_path / "caffe.keras")
    loaded = keras.models.load_model(tmp_path / "caffe.keras")
    images = _images(2, 8)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), pretrained.preprocess_input("vgg16", images), atol=1e-3)
    assert models.parameter_counts(loaded)["trainable"] == 0


def test_frozen_classifier_augmentation_fine_tuning_and_reload(tmp_path):
    import keras

    base = _small_base(64, pooling=None)
    model = pretrained.build_frozen_classifier("mobilenet-0.25", base, 2, model_name="alpaca")
    frozen = models.parameter_counts(model)
    assert frozen["trainable"] == 256 + 1   # only the sigmoid unit learns
    images, labels = _images(8, 64), (np.arange(8) % 2).astype(np.float32)
    model.fit(images, labels, epochs=1, verbose=0)
    augmented = pretrained.with_augmentation(model, pretrained.augmentation_layers(seed=0), model_name="alpaca")
    pretrained.compile_classifier(augmented, 2, 1e-3)
    assert models.parameter_counts(augmented)["trainable"] == frozen["trainable"]
    augmented.fit(images, labels, epochs=1, verbose=0)
    pretrained.freeze(base, trainable_from=-5)
    pretrained.compile_classifier(augmented, 2, 1e-4)
    assert models.parameter_counts(augmented)["trainable"] > frozen["trainable"]
    augmented.fit(images, labels, epochs=1, verbose=0)
    assert pretrained.find_base(augmented) is base
    # augmentation is off at prediction time: same answer twice, and after reloading
    first = augmented.predict(images, verbose=0)
    np.testing.assert_allclose(augmented.predict(images, verbose=0), first, atol=1e-6)
    path = persistence.save_model(augmented, tmp_path / "alpaca.keras", class_names=["alpaca", "not alpaca"],
                                  input_scale="0-255")
    np.testing.assert_allclose(keras.models.load_model(path).predict(images, verbose=0), first, atol=1e-5)


def test_multiclass_frozen_classifier():
    base = _small_base(32, pooling=None)
    model = pretrained.build_frozen_classifier("mobilenet-0.25", base, 10)
    assert model.output_shape == (None, 10)
    assert model.loss == "sparse_categorical_crossentropy"


@pytest.mark.realdata
@pytest.mark.skipif(not (DATA_HOME / "images" / "dog_vs_notdog" / "dog").is_dir()
                    or not (DATA_HOME / "keras" / "models" /
                            "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5").is_file(),
                    reason=f"no images/dog_vs_notdog or MobileNetV2 0.35 weights in {DATA_HOME}")
def test_real_dog_vs_notdog_on_new_photos(tmp_path, monkeypatch):
    """Lesson 04 part A on the real photos: the saved model tells the new dogs from the cats."""
    import keras
    from keras.src.backend import config

    from imgrec_helpers import data, running

    monkeypatch.setattr(config, "_KERAS_DIR", str(tmp_path / "keras_home"))
    keras.backend.clear_session()
    running.set_seed(42)
    name = "mobilenetv2-0.35"
    base = pretrained.load_application(name, include_top=False, pooling="avg", data_home=DATA_HOME)
    folder = data.load_image_folder(DATA_HOME / "images" / "dog_vs_notdog", 224)
    is_dog = (folder.labels == folder.class_names.index("dog")).astype(np.int64)
    features = pretrained.extract_features(name, base, folder.images)
    head = pretrained.build_feature_head(features.shape[1:], 2, hidden=64)
    head.fit(features, is_dog, epochs=100, batch_size=16, verbose=0)
    path = persistence.save_model(pretrained.build_end_to_end(name, base, head), tmp_path / "dog_vs_notdog.keras",
                                  class_names=["not dog", "dog"], input_scale="0-255")
    samples = DATA_HOME / "images" / "samples"
    photos = {"oxfordpets_dog_beagle_128.jpg": 1, "oxfordpets_dog_keeshond_158.jpg": 1,
              "oxfordpets_dog_samoyed_12.jpg": 1, "burn_cat.jpg": 0, "skimage_chelsea.jpg": 0}
    x = np.stack([data.load_image(samples / n, 224) for n in photos])
    p_dog = keras.models.load_model(path).predict(x, verbose=0)[:, 0]
    assert ((p_dog >= 0.5) == np.array(list(photos.values()))).mean() >= 0.85, p_dog
