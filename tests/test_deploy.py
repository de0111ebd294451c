"""Lesson 07's pieces on tiny models, without the lesson's data: the Grad-CAM recipe (written here again, as the
lesson writes it, so no helper stands between the test and TensorFlow), the LiteRT round trip (a model exported to
``.tflite`` in float32 and int8 gives the Keras model's answers in the LiteRT interpreter), the class names stored in
a ``.tflite`` file, ``imgrec predict`` on one (and one clear line for a truncated or foreign file), the quiet block
around the converter, and the deployment table of the notebook and the report."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from imgrec_helpers import deployment, persistence, quiet
from imgrec_helpers.course import cli
from imgrec_helpers.errors import ModelError

quiet.import_tensorflow()


def grad_cam(forward, images, class_index):
    """Lesson 07's recipe: gradients of the class score, pooled per channel, weighted maps, ReLU, scaled."""
    import tensorflow as tf

    with tf.GradientTape() as tape:
        feature_maps, probabilities = forward(images)
        scores = tf.gather(probabilities, class_index, axis=1, batch_dims=1)
    gradients = tape.gradient(scores, feature_maps)
    channel_weights = tf.reduce_mean(gradients, axis=(1, 2))
    heat = tf.nn.relu(tf.einsum("nhwc,nc->nhw", feature_maps, channel_weights))
    return tf.math.divide_no_nan(heat, tf.reduce_max(heat, axis=(1, 2), keepdims=True)).numpy()


def _spot_model():
    """A tiny CNN whose class 1 fires on a bright square wherever it is: one 3x3 filter that sums brightness,
    global max pooling, and a dense layer with a positive weight for class 1 and a negative one for class 0."""
    import keras

    inputs = keras.Input((16, 16, 1))
    maps = keras.layers.Conv2D(1, 3, padding="same", activation="relu", name="conv")(inputs)
    pooled = keras.layers.GlobalMaxPooling2D()(maps)
    outputs = keras.layers.Dense(2, activation="softmax")(pooled)
    model = keras.Model(inputs, outputs)
    model.get_layer("conv").set_weights([np.ones((3, 3, 1, 1), "float32") / 9, np.zeros(1, "float32")])
    model.layers[-1].set_weights([np.array([[-4.0, 4.0]], "float32"), np.array([1.0, -1.0], "float32")])
    return model


def test_grad_cam_points_at_the_evidence():
    """The heat map of class 1 has the feature maps' shape, lies in [0, 1], and is hottest where the bright
    square is; masking that spot lowers the class score more than masking a random spot of the same size."""
    import keras
    import tensorflow as tf

    model = _spot_model()
    images = np.zeros((3, 16, 16, 1), "float32")
    spots = [(2, 3), (9, 10), (12, 1)]
    for image, (r, c) in zip(images, spots):
        image[r:r + 3, c:c + 3] = 1.0
    grad_model = keras.Model(model.inputs, [model.get_layer("conv").output, model.output])
    heat = grad_cam(grad_model, tf.constant(images), np.array([1, 1, 1]))
    assert heat.shape == (3, 16, 16) and heat.min() >= 0 and np.allclose(heat.max(axis=(1, 2)), 1)
    for h, (r, c) in zip(heat, spots):
        row, col = np.unravel_index(h.argmax(), h.shape)
        assert r <= row < r + 3 and c <= col < c + 3  # the hottest point is on the square

    score = lambda batch: model.predict(batch, verbose=0)[:, 1]
    hot, cold = images.copy(), images.copy()
    for i, (r, c) in enumerate(spots):
        hot[i, r:r + 3, c:c + 3] = 0
        cold[i, (r + 8) % 13:(r + 8) % 13 + 3, (c + 8) % 13:(c + 8) % 13 + 3] = 0  # away from the square
    assert (score(images) - score(hot) > score(images) - score(cold)).all()


def test_grad_cam_of_a_class_without_evidence_is_empty_not_nan():
    """ReLU leaves nothing for a class the image speaks against: the map is zeros, not a division by zero."""
    import keras
    import tensorflow as tf

    model = _spot_model()
    image = np.zeros((1, 16, 16, 1), "float32")
    image[0, 5:8, 5:8] = 1.0
    grad_model = keras.Model(model.inputs, [model.get_layer("conv").output, model.output])
    heat = grad_cam(grad_model, tf.constant(image), np.array([0]))
    assert np.isfinite(heat).all() and heat.max() == 0


def test_grad_cam_through_a_nested_base():
    """As in the lesson's dog model: the convolution sits inside a nested model; the base gets two outputs and
    the head goes on top, and the pieces give exactly the whole model's answers."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(1)
    base_in = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="inner_conv")(base_in)
    base = keras.Model(base_in, keras.layers.GlobalAveragePooling2D()(x), name="base")
    head = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")], name="head")
    inputs = keras.Input((12, 12, 3))
    whole = keras.Model(inputs, head(base(inputs / 255.0)))
    with pytest.raises(ValueError):
        whole.get_layer("inner_conv")  # not a layer of the outer model
    base_grad = keras.Model(base.inputs, [base.get_layer("inner_conv").output, base.output])

    def forward(images):
        maps, pooled = base_grad(images / 255.0)
        p = head(pooled)
        return maps, tf.concat([1 - p, p], axis=1)

    images = tf.constant(np.random.default_rng(0).uniform(0, 255, (4, 12, 12, 3)).astype("float32"))
    assert np.allclose(forward(images)[1][:, 1], whole.predict(images, verbose=0)[:, 0], atol=1e-6)
    heat = grad_cam(forward, images, np.array([1, 0, 1, 0]))
    assert heat.shape == (4, 10, 10) and 0 <= heat.min() and heat.max() <= 1 + 1e-6


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny CNN classifier exported as the lesson does it: SavedModel, then float32 and int8 .tflite files."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(8, 3, activation="relu"),
                              keras.layers.Conv2D(16, 3, activation="relu"), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(3, activation="softmax")])
    folder = tmp_path_factory.mktemp("deploy")
    rng = np.random.default_rng(0)
    calibration = rng.uniform(0, 1, (32, 16, 16, 3)).astype("float32")

    def representative_dataset():
        for image in calibration:
            yield [image[None]]

    with quiet.library_output():
        model.export(folder / "saved_model", format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(str(folder / "saved_model"))
        (folder / "float32.tflite").write_bytes(converter.convert())
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset
        (folder / "int8.tflite").write_bytes(converter.convert())
    return model, folder, rng.uniform(0, 1, (20, 16, 16, 3)).astype("float32")


def _run_litert(path, images):
    from ai_edge_litert.interpreter import Interpreter

    with quiet.library_output():
        interpreter = Interpreter(model_path=str(path))
        interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0]["index"], interpreter.get_output_details()[0]["index"]
    results = []
    for image in images:
        interpreter.set_tensor(inp, image[None])
        interpreter.invoke()
        results.append(interpreter.get_tensor(out)[0].copy())
    return np.stack(results)


def test_litert_float32_and_int8_agree_with_keras(exported):
    model, folder, images = exported
    expected = model.predict(images, verbose=0)
    as_float = _run_litert(folder / "float32.tflite", images)
    as_int8 = _run_litert(folder / "int8.tflite", images)
    assert np.abs(as_float - expected).max() < 1e-5
    assert np.array_equal(as_float.argmax(1), expected.argmax(1))
    assert np.abs(as_int8 - expected).max() < 0.1  # int8: close, not equal
    assert deployment.quantization_bytes(folder / "int8.tflite") > 0 == deployment.quantization_bytes(
        folder / "float32.tflite")


def test_the_quiet_block_holds_back_the_converter_log_but_passes_other_lines(exported, capfd):
    """The int8 conversion prints ``fully_quantize: ...`` from C++; inside ``library_output`` nothing arrives,
    while a line that is not a known notice still reaches standard error."""
    _run_litert(exported[1] / "int8.tflite", exported[2][:1])
    assert capfd.readouterr().err == ""
    with quiet.library_output():
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
        os.write(2, b"fully_quantize: 0, inference_type: 6, input_inference_type: FLOAT32, output_inference_type: FLOAT32\n")
        os.write(2, b"a real problem\n")
    assert capfd.readouterr().err == "a real problem\n"


@pytest.fixture
def labelled(exported, tmp_path):
    """The exported files with class names stored inside, and three photos."""
    paths = {}
    for name in ("float32", "int8"):
        path = tmp_path / f"tiny_{name}.tflite"
        path.write_bytes((exported[1] / f"{name}.tflite").read_bytes())
        persistence.save_tflite_info(path, class_names=["apple", "boat", "cat"], input_scale="0-1")
        paths[name] = path
    photos = []
    for i, mode in enumerate(["RGB", "L", "RGBA"]):
        p = tmp_path / f"photo{i}.png"
        Image.new(mode, (40 + i * 10, 30), color=(i * 60,) * len(mode)).save(p)
        photos.append(p)
    return paths, photos


def test_class_names_are_stored_inside_the_tflite_file(labelled, exported):
    paths, _ = labelled
    info = persistence.read_tflite_info(paths["int8"])
    assert info == {"class_names": ["apple", "boat", "cat"], "input_scale": "0-1", "input_shape": [16, 16, 3]}
    persistence.save_tflite_info(paths["int8"], class_names=["a", "b", "c"], input_scale="0-255")  # stored again
    assert persistence.read_tflite_info(paths["int8"])["class_names"] == ["a", "b", "c"]
    assert persistence.read_tflite_info(exported[1] / "int8.tflite") == {}  # none stored
    images = exported[2][:4]  # the interpreter ignores the metadata: the same answers as before
    assert np.array_equal(_run_litert(paths["float32"], images), _run_litert(exported[1] / "float32.tflite", images))


def test_predict_on_a_tflite_file_matches_keras(labelled, exported, capsys):
    """``imgrec predict`` on a .tflite file: the same output format and class names as for a .keras file, the
    same answers as the Keras model."""
    from imgrec_helpers import data

    paths, photos = labelled
    model = exported[0]
    assert cli.main(["predict", str(paths["float32"]), *map(str, photos), "--top", "3", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["image"] for line in lines] == [str(p) for p in photos]
    for line, photo in zip(lines, photos):
        expected = model.predict(data.load_image(photo, 16)[None] / 255.0, verbose=0)[0]
        best = line["predictions"][0]
        assert best["label"] == ["apple", "boat", "cat"][int(expected.argmax())]
        assert abs(best["probability"] - float(expected.max())) < 1e-5
    assert cli.main(["predict", str(paths["int8"]), str(photos[0]), "--top", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == str(photos[0]) and len(out) == 3 and out[1].strip().endswith(("apple", "boat", "cat"))


@pytest.mark.parametrize("damage,expect", [
    (lambda raw: raw[: len(raw) // 2], "truncated or damaged .tflite file"),
    (lambda raw: raw[:-64], "truncated or damaged .tflite file"),
    (lambda raw: b"", "an empty file"),
    (lambda raw: b"PK\x03\x04 this is a zip, not a flatbuffer", "not a LiteRT model"),
])
def test_a_damaged_tflite_file_is_one_line(labelled, tmp_path, damage, expect):
    """In a fresh process, as a user runs it: exit status 2, one ``error:`` line, no traceback, no library log."""
    paths, photos = labelled
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(damage(paths["int8"].read_bytes()))
    done = subprocess.run([sys.executable, "-m", "imgrec_helpers", "predict", str(bad), str(photos[0])],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(f"error: {bad}: {expect}") and done.stderr.count("\n") == 1, done.stderr


def test_a_tflite_file_without_class_names_says_how_to_store_them(exported, tmp_path, capsys):
    photo = tmp_path / "p.png"
    Image.new("RGB", (20, 20)).save(photo)
    assert cli.main(["predict", str(exported[1] / "int8.tflite"), str(photo)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "save_tflite_info" in err and err.count("\n") == 1
    with pytest.raises(ModelError, match="no such model file"):
        persistence.check_tflite_file(tmp_path / "missing.tflite")


def test_the_deployment_table_cells():
    records = [{"name": "07_deploy_1_cnn_2", "model": "CNN", "format": "LiteRT float32", "file_mb": 5.012,
                "parameters": 1250858, "ms_per_image": 0.5234, "test_accuracy": 0.6931, "test_images": 1000,
                "test_set": "CIFAR-10 test images", "agreement": 1.0, "cpu": "Xeon", "hardware": "CPU, 2 cores",
                "threads": 2},
               {"name": "07_deploy_1_cnn_1", "model": "CNN", "format": ".keras", "file_mb": 5.05,
                "parameters": 1250858, "ms_per_image": 2.3, "test_accuracy": 0.6931, "test_images": 1000,
                "test_set": "CIFAR-10 test images", "agreement": 1.0, "cpu": "Xeon", "hardware": "CPU, 2 cores"}]
    assert deployment.rows(records) == [
        ["CNN", ".keras", "5.05", "1,250,858", "2.30", "0.6931", "CIFAR-10 test images (1,000 images)", "100.0%"],
        ["CNN", "LiteRT float32", "5.01", "1,250,858", "0.52", "0.6931", "CIFAR-10 test images (1,000 images)",
         "100.0%"]]
    assert deployment.markdown(records).splitlines()[0].startswith("| model | file format | file MB |")
    assert deployment.measured_on(records) == "timings measured on Xeon (CPU, 2 cores), LiteRT with 2 thread(s)"
