"""Transfer learning in lesson 04: the Keras recipes the lesson shows, and that the lesson shows them.

The lesson builds its models in view (``base.trainable = False``, ``keras.Input`` ->
``preprocess_input`` -> ``base(x, training=False)`` -> head, the fine-tuning loop, ``compile`` again).
These tests run the same recipes on small models with random weights (``weights=None``) and images made
by the test, to check what the lesson's prose claims: the end-to-end model answers like the head on the
saved features, the preprocessing inside a model survives a ``.keras`` round trip (also VGG16's), freezing
and the fine-tuning loop give the trainable counts the lesson prints, augmentation is off at prediction
time. The test on the real 64 dog/not-dog photos skips when the data home lacks them.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from imgrec_helpers import applications, models, persistence, profiles  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DATA_HOME = Path(os.environ.get("IMGREC_DATA_HOME", REPO / "data"))


def _images(n: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def _small_base(size: int = 64, pooling: str | None = "avg"):
    import keras

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    base = keras.applications.MobileNet(alpha=0.25, weights=None, include_top=False, pooling=pooling,
                                        input_shape=(size, size, 3))
    base.trainable = False
    return base


def _end_to_end(base, head, preprocess_input, size: int):
    """Lesson 04 part A's model, as the lesson writes it."""
    import keras

    inputs = keras.Input(shape=(size, size, 3))
    x = preprocess_input(inputs)
    x = base(x, training=False)
    return keras.Model(inputs, head(x), name="dog_vs_notdog")


def test_feature_head_binary_and_multiclass():
    binary = models.build_feature_head(32, 2, hidden=8)
    assert binary.output_shape == (None, 1) and binary.loss == "binary_crossentropy"
    multi = models.build_feature_head((4, 4, 8), 10, hidden=0)
    assert multi.output_shape == (None, 10) and multi.count_params() == 4 * 4 * 8 * 10 + 10
    x = np.random.default_rng(0).normal(size=(40, 32)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    binary.fit(x, y, epochs=2, verbose=0)
    y10 = np.arange(40) % 10
    multi.fit(np.zeros((40, 4, 4, 8), np.float32), y10, epochs=1, verbose=0)


def _fine_tune_from(base, fine_tune_at: int) -> None:
    """Lesson 04's fine-tuning loop: layers from ``fine_tune_at`` on become trainable, batch normalisation stays frozen."""
    import keras

    base.trainable = True
    for layer in base.layers[:fine_tune_at]:
        layer.trainable = False
    for layer in base.layers[fine_tune_at:]:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


def test_freezing_whole_base_and_selected_layers():
    import keras

    base = _small_base()
    assert models.parameter_counts(base)["trainable"] == 0
    _fine_tune_from(base, len(base.layers) - 6)
    counts = models.parameter_counts(base)
    assert 0 < counts["trainable"] < counts["total"]
    assert all(not layer.trainable for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization))


def test_end_to_end_dog_model_save_load_round_trip(tmp_path):
    import keras

    preprocess_input = keras.applications.mobilenet.preprocess_input
    base = _small_base(64)
    images = _images(12, 64)
    labels = np.arange(12) % 2
    features = base.predict(preprocess_input(images), verbose=0)
    head = models.build_feature_head(features.shape[1:], 2, hidden=16)
    head.fit(features, labels, epochs=2, verbose=0)
    model = _end_to_end(base, head, preprocess_input, 64)
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


def test_vgg16_preprocess_input_inside_a_model_saves_and_loads(tmp_path):
    """VGG16's preprocessing (BGR, mean removed), called on a Keras tensor, survives a .keras round trip."""
    import keras

    keras.backend.clear_session()
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.applications.vgg16.preprocess_input(inputs))
    model.save(tmp_path / "caffe.keras")
    loaded = keras.models.load_model(tmp_path / "caffe.keras")
    images = _images(2, 8)
    expected = keras.applications.vgg16.preprocess_input(images)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), expected, atol=1e-3)
    np.testing.assert_allclose(expected[..., 0], images[..., 2] - 103.939, atol=1e-3)  # BGR, mean removed
    assert models.parameter_counts(loaded)["total"] == 0


def test_alpaca_recipe_frozen_augmented_fine_tuned_and_reloaded(tmp_path):
    import keras

    base = _small_base(64, pooling=None)
    inputs = keras.Input(shape=(64, 64, 3))
    x = keras.applications.mobilenet.preprocess_input(inputs)
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.2)(x)
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    classifier = keras.Model(inputs, outputs)
    classifier.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy", metrics=["accuracy"])
    frozen = models.parameter_counts(classifier)
    assert frozen["trainable"] == 256 + 1   # only the sigmoid unit learns
    images, labels = _images(8, 64), (np.arange(8) % 2).astype(np.float32)
    bn_before = [w.copy() for w in base.get_layer("conv1_bn").get_weights()]
    classifier.fit(images, labels, epochs=1, verbose=0)
    # training=False: batch normalisation keeps its ImageNet (here: initial) statistics
    for a, b in zip(base.get_layer("conv1_bn").get_weights(), bn_before):
        np.testing.assert_array_equal(a, b)

    augmentation = keras.Sequential([keras.layers.RandomFlip("horizontal", seed=0),
                                     keras.layers.RandomRotation(0.1, seed=0)])
    inputs = keras.Input(shape=(64, 64, 3))
    alpaca = keras.Model(inputs, classifier(augmentation(inputs)), name="alpaca")
    alpaca.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy", metrics=["accuracy"])
    assert models.parameter_counts(alpaca)["trainable"] == frozen["trainable"]
    alpaca.fit(images, labels, epochs=1, verbose=0)

    _fine_tune_from(base, len(base.layers) - 5)
    alpaca.compile(optimizer=keras.optimizers.Adam(1e-4), loss="binary_crossentropy", metrics=["accuracy"])
    assert models.parameter_counts(alpaca)["trainable"] > frozen["trainable"]
    # what the optimizer will update: the unfrozen convolution, not the frozen ones, no batch normalisation
    # (random weights make the activations too small for a visible step, so the test checks the variables)
    trainable = {v.path for v in alpaca.trainable_weights}
    assert "conv_pw_13/kernel" in trainable and "conv1/kernel" not in trainable
    assert not any("_bn/" in path for path in trainable)
    first_kernel = base.get_layer("conv1").kernel.numpy().copy()
    alpaca.fit(images, labels, epochs=1, verbose=0)
    np.testing.assert_array_equal(first_kernel, base.get_layer("conv1").kernel.numpy())  # frozen: it did not move
    # augmentation is off at prediction time: same answer twice, and after reloading
    first = alpaca.predict(images, verbose=0)
    np.testing.assert_allclose(alpaca.predict(images, verbose=0), first, atol=1e-6)
    path = persistence.save_model(alpaca, tmp_path / "alpaca.keras", class_names=["alpaca", "not alpaca"],
                                  input_scale="0-255")
    np.testing.assert_allclose(keras.models.load_model(path).predict(images, verbose=0), first, atol=1e-5)


def test_cifar_extractor_resizes_inside_the_model():
    """Part C's extractor: Resizing + preprocess_input + frozen base, fed uint8 CIFAR-sized images."""
    import keras

    base = _small_base(48)
    inputs = keras.Input(shape=(32, 32, 3))
    x = keras.layers.Resizing(48, 48)(inputs)
    x = keras.applications.mobilenet.preprocess_input(x)
    extractor = keras.Model(inputs, base(x, training=False))
    images = _images(5, 32)
    features = extractor.predict(images, batch_size=2, verbose=0)
    assert features.shape == (5, 256) and features.dtype == np.float32
    import tensorflow as tf
    by_hand = base.predict(keras.applications.mobilenet.preprocess_input(
        tf.image.resize(images.astype(np.float32), (48, 48)).numpy()), verbose=0)
    np.testing.assert_allclose(features, by_hand, rtol=1e-4, atol=1e-5)


@pytest.mark.realdata
def test_real_dog_vs_notdog_on_new_photos(real_home, keras_home, tmp_path, monkeypatch):
    """Lesson 04 part A on the real photos: the saved model tells the new dogs from the cats. VGG16's weights
    are made unavailable (an empty mirror, no network) so that the stand-in runs, as on a machine without them."""
    import keras

    from imgrec_helpers import data, sources

    # the stand-in's weights (already there when the data home came from a mirror without VGG16)
    sources.fetch("keras/models/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5", real_home)
    monkeypatch.setattr(applications, "can_reach", lambda url, timeout=3.0: False)
    (tmp_path / "empty_mirror").mkdir()
    monkeypatch.setenv("IMGREC_DATA_MIRROR", str(tmp_path / "empty_mirror"))
    monkeypatch.setenv("IMGREC_DATA_HOME", str(real_home))
    applications.prepare_keras_cache(real_home)
    choice = applications.choose("vgg16", "mobilenetv2-0.35", include_top=False)
    assert choice.name == "mobilenetv2-0.35" and "instead" in choice.reason
    keras.backend.clear_session()
    keras.utils.set_random_seed(42)
    base = keras.applications.mobilenet_v2.MobileNetV2(alpha=0.35, include_top=False, weights=choice.weights,
                                                       input_shape=(224, 224, 3), pooling="avg")
    preprocess_input = keras.applications.mobilenet_v2.preprocess_input
    base.trainable = False
    folder = data.load_image_folder(real_home / "images" / "dog_vs_notdog", 224)
    is_dog = (folder.labels == folder.class_names.index("dog")).astype(np.int64)
    features = base.predict(preprocess_input(folder.images), verbose=0)
    head = models.build_feature_head(features.shape[1:], 2, hidden=64)
    head.fit(features, is_dog, epochs=100, batch_size=16, verbose=0)
    path = persistence.save_model(_end_to_end(base, head, preprocess_input, 224),
                                  tmp_path / "dog_vs_notdog.keras", class_names=["not dog", "dog"], input_scale="0-255")
    samples = real_home / "images" / "samples"
    photos = {"oxfordpets_dog_beagle_128.jpg": 1, "oxfordpets_dog_keeshond_158.jpg": 1,
              "oxfordpets_dog_samoyed_12.jpg": 1, "burn_cat.jpg": 0, "skimage_chelsea.jpg": 0}
    x = np.stack([data.load_image(samples / n, 224) for n in photos])
    p_dog = keras.models.load_model(path).predict(x, verbose=0)[:, 0]
    truth = np.array(list(photos.values()))
    assert ((p_dog >= 0.5) == truth).mean() >= profiles.PROFILES["full"]["min_dog_accuracy"], p_dog  # 4 of 5
    assert (p_dog[truth == 0] < 0.5).all(), p_dog  # no cat taken for a dog


# --- lesson 04 shows the Keras it teaches -----------------------------------------------------------


def _code(notebook: str) -> str:
    nb = nbformat.read(REPO / "notebooks" / notebook, as_version=4)
    return "\n".join(c.source for c in nb.cells if c.cell_type == "code")


LESSON_04_CALLS = [
    # part A
    r"dog_base = keras\.applications\.vgg16\.VGG16\(include_top=False, weights=\"imagenet\", input_shape=\(224, 224, 3\)",
    r"dog_base = keras\.applications\.mobilenet_v2\.MobileNetV2\(alpha=0\.35, include_top=False",
    r"preprocess_dog = keras\.applications\.vgg16\.preprocess_input", r"dog_base\.trainable = False",
    r"dog_base\.predict\(preprocess_dog\(folder\.images\)", r"persistence\.save_features\(.*features, is_dog",
    r"keras\.Sequential\(\[\s*keras\.Input\(shape=saved_features\.shape\[1:\]\),\s*keras\.layers\.Flatten\(\),\s*"
    r"keras\.layers\.Dense\(64, activation=\"relu\"\),\s*keras\.layers\.Dropout\(0\.5\),\s*"
    r"keras\.layers\.Dense\(1, activation=\"sigmoid\"\),",
    r"head\.compile\(optimizer=keras\.optimizers\.Adam\(LEARNING_RATE\), loss=\"binary_crossentropy\"",
    r"head\.fit\(", r"head\.save\(", r"dog_model\.save\(tmp\)", r"alpaca\.save\(tmp\)",
    r"x = preprocess_dog\(inputs\)\nx = dog_base\(x, training=False\)\noutputs = head\(x\)\n"
    r"dog_model = keras\.Model\(inputs, outputs",
    r"likelihood this image contains a dog", r"keras\.models\.load_model\(dog_path\)",
    # part B
    r"keras\.utils\.image_dataset_from_directory\(\s*alpaca_root, validation_split=0\.2, subset=\"both\", "
    r"seed=lesson\.seed, image_size=\(160, 160\), batch_size=32",
    r"alpaca_classes = train_ds\.class_names",
    r"alpaca_base = keras\.applications\.mobilenet_v2\.MobileNetV2\(alpha=alpha, include_top=False,\s*"
    r"weights=alpaca_choice\.weights, input_shape=\(160, 160, 3\)\)",
    r"alpaca_base\.trainable = False",
    r"inputs = keras\.Input\(shape=\(160, 160, 3\)\)\nx = preprocess_alpaca\(inputs\)\nx = alpaca_base\(x, training=False\)\n"
    r"x = keras\.layers\.GlobalAveragePooling2D\(\)\(x\)\nx = keras\.layers\.Dropout\(0\.2\)\(x\)\n"
    r"outputs = keras\.layers\.Dense\(1, activation=\"sigmoid\"\)\(x\)\nclassifier = keras\.Model\(inputs, outputs",
    r"classifier\.compile\(optimizer=keras\.optimizers\.Adam\(LEARNING_RATE\), loss=\"binary_crossentropy\"",
    r"classifier\.summary\(\)", r"classifier\.fit\(train_ds, .*verbose=lesson\.verbose\)",
    r"keras\.Sequential\(\[\s*keras\.layers\.RandomFlip\(\"horizontal\"[^\]]*keras\.layers\.RandomRotation\(0\.1",
    r"x = data_augmentation\(inputs\)\noutputs = classifier\(x\)\nalpaca = keras\.Model\(inputs, outputs",
    r"alpaca_base\.trainable = True\nfor layer in alpaca_base\.layers\[:fine_tune_at\]:\n    layer\.trainable = False",
    r"alpaca\.compile\(optimizer=keras\.optimizers\.Adam\(LEARNING_RATE / 10\)",
    r"alpaca\.fit\(train_ds, epochs=settings\[\"fine_tune_epochs\"\]",
    # part C and VGG16 at 300 x 300
    r"cifar_base = keras\.applications\.mobilenet_v2\.MobileNetV2\(alpha=0\.35, include_top=False",
    r"keras\.layers\.Resizing\(cifar_size, cifar_size\)", r"cifar_extractor\.predict\(",
    r"keras\.layers\.Dense\(10, activation=\"softmax\"\)", r"cifar_head\.evaluate\(",
    r"keras\.applications\.vgg16\.VGG16\(include_top=False, weights=vgg_choice\.weights, input_shape=\(300, 300, 3\)\)",
    r"vgg_base\.trainable = False",
    r"keras\.layers\.Flatten\(\),\s*keras\.layers\.Dense\(1024, activation=\"relu\"\),\s*"
    r"keras\.layers\.Dense\(10, activation=\"softmax\"\)",
    r"vgg_model\.summary\(\)",
]


@pytest.mark.parametrize("pattern", LESSON_04_CALLS)
def test_lesson_04_code_cells_show_the_keras_calls(pattern):
    """Each call in view, also where it sits inside ``with strategy.scope():`` (a line break may be followed by
    that block's indentation)."""
    assert re.search(pattern.replace(r"\n", r"\n[ ]*"), _code("04_transfer_learning.ipynb")), pattern


def test_lesson_04_keeps_its_outputs_for_lesson_05_and_imgrec():
    code = _code("04_transfer_learning.ipynb")
    for key in ("test_features=", "test_labels=", "train_indices=", "test_indices=", "image_size=", "base="):
        assert key in code
    assert '"cifar10_transfer.npz"' in code and '"dog_vs_notdog.keras"' in code and '"alpaca.keras"' in code
    for gone in ("pretrained.", "training.fit(", "freeze(", "compile_classifier"):
        assert gone not in code, gone


def test_lesson_04_has_no_upper_case_computed_names():
    code = _code("04_transfer_learning.ipynb")
    parameters = {"PROFILE", "SEED", "RUN_DIR", "DATA_HOME", "LEARNING_RATE"}
    assigned = set(re.findall(r"^([A-Z][A-Z0-9_]*)\s*(?:,|=[^=])", code, re.M))
    assert assigned <= parameters, assigned - parameters
