"""The reference CNN, training helpers and saving/loading (imgrec_helpers.models, training, persistence)."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from types import SimpleNamespace

import nbformat
import numpy as np
import pytest

from imgrec_helpers import models, persistence, training
from imgrec_helpers.errors import ImgrecError, ModelError


def test_reference_cnn_is_exactly_the_lesson_architecture():
    model = models.build_reference_cnn()
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Conv2D", "Conv2D", "MaxPooling2D", "Dropout", "Conv2D", "Conv2D", "MaxPooling2D",
                     "Dropout", "Flatten", "Dense", "Dropout", "Dense"]
    counts = models.parameter_counts(model)
    assert counts["trainable"] == models.REFERENCE_CNN_PARAMS == 1_250_858 and counts["non_trainable"] == 0
    convs = [layer for layer in model.layers if kinds[model.layers.index(layer)] == "Conv2D"]
    assert [c.padding for c in convs] == ["same", "valid", "same", "valid"]
    assert [c.filters for c in convs] == [32, 32, 64, 64]
    assert [layer.rate for layer in model.layers if type(layer).__name__ == "Dropout"] == [0.25, 0.25, 0.5]
    assert model.output_shape == (None, 10)


LESSON_02 = Path(__file__).resolve().parent.parent / "notebooks" / "02_cnn_from_scratch.ipynb"


def _lesson_02_model(precision: str):
    """Run lesson 02's model cell (the one with ``keras.Sequential(``) as the notebook has it."""
    import keras

    cells = [c.source for c in nbformat.read(LESSON_02, as_version=4).cells
             if c.cell_type == "code" and "keras.Sequential(" in c.source]
    assert len(cells) == 1, "lesson 02 should build its model in exactly one keras.Sequential cell"
    import tensorflow as tf

    namespace = {"keras": keras, "lesson": SimpleNamespace(seed=0), "precision": precision,
                 "strategy": tf.distribute.get_strategy()}  # the setup cell's choice on one device
    previous = keras.config.dtype_policy()
    try:
        exec(compile(cells[0], str(LESSON_02), "exec"), namespace)
    finally:
        keras.config.set_dtype_policy(previous)  # the cell sets the global policy, as the lesson teaches
    return namespace["model"]


def _architecture(model) -> list[tuple]:
    rows = []
    for layer in model.layers:
        config = {k: v for k, v in layer.get_config().items() if k != "name"}
        rows.append((type(layer).__name__, tuple(layer.output.shape), layer.count_params(),
                     layer.dtype_policy.name, json.dumps(config, sort_keys=True, default=str)))
    return rows


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_lesson_02_cell_and_helper_build_the_same_network(precision):
    """Lesson 02 shows the network as a keras.Sequential; lesson 05 and the benchmark rebuild it with
    models.build_reference_cnn: same layer types, output shapes, parameter counts, configs and dtypes."""
    import keras

    from_notebook = _lesson_02_model(precision)
    from_helper = models.build_reference_cnn(precision=precision)
    assert _architecture(from_notebook) == _architecture(from_helper)
    assert from_notebook.count_params() == from_helper.count_params() == models.REFERENCE_CNN_PARAMS
    assert from_notebook.layers[-1].dtype_policy.name == "float32"
    if precision != "float32":
        assert from_notebook.layers[0].compute_dtype == "bfloat16"
    assert keras.config.dtype_policy().name == "float32"


def test_feature_head_binary_and_multiclass():
    import keras

    keras.utils.set_random_seed(0)
    binary = models.build_feature_head(32, 2, hidden=8)
    assert binary.output_shape == (None, 1) and binary.loss == "binary_crossentropy"
    assert [type(layer).__name__ for layer in binary.layers] == ["Flatten", "Dense", "Dropout", "Dense"]
    multi = models.build_feature_head((4, 4, 8), 10, hidden=0)
    assert multi.output_shape == (None, 10) and multi.count_params() == 4 * 4 * 8 * 10 + 10
    assert multi.loss == "sparse_categorical_crossentropy"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 32)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    binary.fit(x, y, epochs=60, verbose=0)
    assert binary.evaluate(x, y, verbose=0)[1] > 0.8  # it learns a learnable signal
    multi.fit(np.zeros((40, 4, 4, 8), np.float32), np.arange(40) % 10, epochs=1, verbose=0)


def test_precision_is_per_layer_and_softmax_stays_float32():
    import keras

    model = models.build_reference_cnn(precision="mixed_bfloat16")
    assert model.layers[0].dtype_policy.name == "mixed_bfloat16"
    assert model.layers[-1].dtype_policy.name == "float32"
    assert keras.config.dtype_policy().name == "float32"  # no global setting changed


def test_choose_precision(monkeypatch):
    monkeypatch.delenv("IMGREC_PRECISION", raising=False)
    policy, why = training.choose_precision("float32")
    assert policy == "float32" and "PRECISION" in why
    policy, why = training.choose_precision("auto")
    assert policy in ("float32", "mixed_bfloat16", "mixed_float16") and policy in why
    with pytest.raises(ImgrecError, match="unknown precision"):
        training.choose_precision("float8")


@pytest.mark.parametrize("capabilities, policy", [([(9, 0)], "mixed_float16"), ([(8, 6), (7, 0)], "mixed_float16"),
                                                   ([(9, 0), (6, 1)], "float32"), ([None], "float32")])
def test_choose_precision_on_gpus_follows_their_compute_capability(monkeypatch, capabilities, policy):
    """mixed_float16 only where every GPU has float16 tensor cores (compute capability 7.0+), said in words."""
    import tensorflow as tf

    monkeypatch.delenv("IMGREC_PRECISION", raising=False)
    gpus = [f"GPU:{i}" for i in range(len(capabilities))]
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: gpus if kind == "GPU" else [])
    monkeypatch.setattr(tf.config.experimental, "get_device_details",
                        lambda gpu: {"compute_capability": capabilities[gpus.index(gpu)]} if capabilities[gpus.index(gpu)] else {})
    chosen, why = training.choose_precision("auto")
    slowest = min(c or (0, 0) for c in capabilities)
    assert chosen == policy and why.startswith(policy) and f"compute capability {slowest[0]}.{slowest[1]}" in why


def test_choose_precision_from_the_environment(monkeypatch):
    monkeypatch.setenv("IMGREC_PRECISION", "float32")
    assert training.choose_precision("auto") == ("float32", "float32 (chosen by the IMGREC_PRECISION environment variable)")
    assert training.choose_precision("mixed_bfloat16")[0] == "mixed_bfloat16"  # the parameter wins
    monkeypatch.setenv("IMGREC_PRECISION", "fp8")
    with pytest.raises(ImgrecError, match="IMGREC_PRECISION='fp8' is not a precision"):
        training.choose_precision("auto")


def test_cpu_environment_keeps_what_the_user_set(monkeypatch):
    assert training.cpu_environment({}) == training.CPU_ENVIRONMENT == {"TF_ENABLE_ONEDNN_OPTS": "1"}
    assert training.cpu_environment({"TF_ENABLE_ONEDNN_OPTS": "0"}) == {}
    import tensorflow  # noqa: F401  (imported by now: too late to change its settings)

    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    assert training.apply_cpu_environment() == {} and "TF_ENABLE_ONEDNN_OPTS" not in __import__("os").environ
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("TF_NUM_INTEROP_THREADS", raising=False)
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS", raising=False)
    assert training.cpu_settings() == "TensorFlow default"
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert training.cpu_settings() == "oneDNN on (max ISA AVX2)"


def test_apply_cpu_environment_before_tensorflow():
    import subprocess
    import sys

    code = ("import os, sys; os.environ.pop('TF_ENABLE_ONEDNN_OPTS', None); from imgrec_helpers import training; "
            "print(training.apply_cpu_environment(), 'tensorflow' in sys.modules, os.environ['TF_ENABLE_ONEDNN_OPTS'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "{'TF_ENABLE_ONEDNN_OPTS': '1'} False 1"


def test_training_helpers():
    m = training.confusion_matrix([0, 1, 1, 2], [0, 2, 1, 2], 3)
    assert m.tolist() == [[1, 0, 0], [0, 1, 1], [0, 0, 1]]
    joined = training.join_histories({"loss": [3, 2]}, {"loss": [1], "val_loss": [1.5]})
    assert joined["loss"] == [3, 2, 1] and joined["_stage_starts"] == [0, 2]
    assert np.isnan(joined["val_loss"][0]) and joined["val_loss"][2] == 1.5
    assert training.epochs_for(100, 50_000, 5, 50) == 50
    assert training.epochs_for(10_000, 50_000, 5, 50) == 5


def _tiny_classifier():
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    return model


def test_a_small_model_learns_a_learnable_signal():
    model = _tiny_classifier()
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    x = np.zeros((300, 8, 8, 3), np.float32)
    x[np.arange(300), 0, 0, y] = 1.0  # a learnable signal
    history = model.fit(x, np.eye(3)[y], epochs=30, batch_size=32, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    probabilities = model.predict(x, verbose=0)
    assert (probabilities.argmax(axis=1) == y).mean() > 0.9 and probabilities.shape == (300, 3)


def test_keras_file_round_trip_keeps_class_names(tmp_path):
    model = _tiny_classifier()
    path = persistence.save_model(model, tmp_path / "m.keras", class_names=["a", "b", "c"], input_scale="0-1")
    info = persistence.read_model_info(path)
    assert info == {"class_names": ["a", "b", "c"], "input_scale": "0-1", "input_shape": [8, 8, 3]}
    loaded = persistence.load_model(path)
    x = np.random.default_rng(1).random((4, 8, 8, 3)).astype(np.float32)
    assert np.array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert [p.name for p in tmp_path.iterdir()] == ["m.keras"]  # no temporary files left


def test_load_model_errors(tmp_path):
    with pytest.raises(ModelError, match="no such model file"):
        persistence.load_model(tmp_path / "missing.keras")
    (tmp_path / "text.keras").write_text("not a model")
    with pytest.raises(ModelError, match="not a .keras model file"):
        persistence.load_model(tmp_path / "text.keras")
    with zipfile.ZipFile(tmp_path / "zip.keras", "w") as z:
        z.writestr("hello.txt", "hi")
    with pytest.raises(ModelError, match="not a Keras model file"):
        persistence.load_model(tmp_path / "zip.keras")
    with pytest.raises(ModelError, match="is a folder"):
        persistence.load_model(tmp_path)


def test_atomic_writes_keep_the_old_file_on_failure(tmp_path):
    target = tmp_path / "record.json"
    persistence.write_json(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with persistence.atomic_path(target) as tmp:
            tmp.write_text('{"v": 2, "half')
            raise RuntimeError("killed mid-write")
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]


def test_features_round_trip(tmp_path):
    f = np.random.default_rng(0).random((5, 7)).astype(np.float32)
    path = persistence.save_features(tmp_path / "f.npz", f, np.arange(5), test_features=f[:2])
    back = persistence.load_features(path)
    assert np.array_equal(back["features"], f) and back["labels"].tolist() == list(range(5))
    assert back["test_features"].shape == (2, 7)
    (tmp_path / "bad.npz").write_bytes(b"junk")
    with pytest.raises(ImgrecError, match="not a readable features file"):
        persistence.load_features(tmp_path / "bad.npz")
