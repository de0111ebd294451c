"""Training on several devices through ``tf.distribute``, checked without a GPU.

Lesson 02 (smoke profile) runs with ``CPU_DEVICES = 2``: the setup cell splits this machine's CPU into two
logical devices, the lesson picks ``MirroredStrategy`` over them and trains two replicas of the reference CNN,
32 images each per step. The shared smoke run trained the same network on one device with the same global batch
(64) and the same seed; the two must agree within :data:`TOLERANCE`. The two runs differ only where they must:
each replica draws its own dropout masks and the gradients are summed in another order.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from imgrec_helpers import results, running, training
from imgrec_helpers.course import runner

REPO = Path(__file__).resolve().parent.parent
LESSON_02 = REPO / "notebooks" / "02_cnn_from_scratch.ipynb"
TOLERANCE = {"train_loss": 0.02, "val_loss": 0.05, "test_accuracy": 0.06}
"""Largest differences allowed between the two-replica and the one-device smoke run of lesson 02: the final
training and validation losses relative to the one-device run's, the test accuracy in points. Measured on a 2-core
Xeon (2026-12-04): training loss 2.0827 vs 2.0903 (0.4%), validation loss 1.8931 vs 1.8753 (0.9%), test accuracy
0.255 vs 0.295. The accuracy moves most: after 2 epochs on 1,800 images the network is on the steep part of its
learning curve, where other dropout masks alone shift 1,000 test images' accuracy by several points."""


def _execute(notebook: Path, out: Path, folder: Path, **parameters) -> nbformat.NotebookNode:
    """``notebook`` executed headless by papermill, as ``imgrec run`` does, with ``parameters``."""
    yaml = "".join(f"{name}: {value!r}\n" if isinstance(value, str) else f"{name}: {value}\n"
                   for name, value in parameters.items())
    proc = subprocess.run([sys.executable, "-m", "papermill", str(notebook), str(out), "-y", yaml,
                           "--kernel", "python3", "--no-progress-bar", "--log-level", "ERROR"],
                          capture_output=True, text=True, env=runner.kernel_env(folder), timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return nbformat.read(out, as_version=4)


@pytest.mark.slow
def test_lesson_02_on_two_replicas_agrees_with_one_device(smoke_run, real_home, tmp_path):
    assert smoke_run.returncode == 0, smoke_run.stderr[-3000:]
    one = {r["name"]: r for r in results.load_results(smoke_run.out)}["02_scratch_cnn"]
    run_dir = tmp_path / "run"
    executed = _execute(LESSON_02, tmp_path / "02.ipynb", tmp_path, PROFILE="smoke", SEED=running.DEFAULT_SEED,
                        RUN_DIR=str(run_dir), DATA_HOME=str(real_home), CPU_DEVICES=2, BATCH_SIZE=32)
    two = {r["name"]: r for r in results.load_results(run_dir)}["02_scratch_cnn"]

    assert (one["strategy"], one["replicas"], one["batch_size"]) == ("default strategy", 1, 64)
    assert (two["strategy"], two["replicas"], two["devices"]) == ("MirroredStrategy", 2, ["CPU:0", "CPU:1"])
    assert two["batch_size"] == one["batch_size"]  # the same global batch: 2 replicas x 32
    assert (two["train_images"], two["epochs"], two["test_images"]) == (one["train_images"], one["epochs"],
                                                                        one["test_images"])
    for key in ("train_loss", "val_loss"):
        assert abs(two[key] - one[key]) <= TOLERANCE[key] * one[key], (key, two[key], one[key])
    assert abs(two["test_accuracy"] - one["test_accuracy"]) <= TOLERANCE["test_accuracy"], \
        (two["test_accuracy"], one["test_accuracy"])
    shown = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert "MirroredStrategy: 2 replica(s) on /device:CPU:0, /device:CPU:1" in shown
    assert "batch 32 per replica, global batch 64, learning rate 0.001" in shown
    noise = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs
             if o.output_type == "error" or o.get("name") == "stderr"]
    assert noise == [], noise  # no library log lines from tf.distribute in the lesson


def test_strategy_facts_name_the_default_strategy_and_its_device():
    from imgrec_helpers.quiet import import_tensorflow

    import_tensorflow()
    import tensorflow as tf

    facts = training.strategy_facts(tf.distribute.get_strategy())
    assert facts["strategy"] == "default strategy" and facts["replicas"] == 1
    assert facts["devices"] and facts["devices"][0].startswith(("CPU:", "GPU:"))
    assert training.describe_strategy({"strategy": "MirroredStrategy", "replicas": 2, "devices": ["GPU:0", "GPU:1"]}) \
        == "MirroredStrategy, 2 replicas (GPU:0, GPU:1)"


def test_cpu_devices_is_checked_in_words(tmp_path):
    from imgrec_helpers.errors import ImgrecError

    for bad in (0, 2.5, "2", True):
        with pytest.raises(ImgrecError, match=r"^CPU_DEVICES = .*: use a whole number from 1 to 64$"):
            running.start_lesson("02", "smoke", 42, tmp_path, quiet=True, cpu_devices=bad)


def test_cpu_devices_after_tensorflow_ran_says_restart_the_kernel():
    """In a kernel where TensorFlow already ran something, the split cannot happen any more: one line says so."""
    script = ("from imgrec_helpers import training\nfrom imgrec_helpers.quiet import import_tensorflow\n"
              "import_tensorflow()\nimport tensorflow as tf\ntf.constant(1.0) + 1\n"
              "from imgrec_helpers.errors import ImgrecError\n"
              "try:\n    training.split_cpu(2)\nexcept ImgrecError as exc:\n    print(exc)\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == ("CPU_DEVICES = 2 takes effect only in a fresh kernel: restart "
                                                    "the kernel and run the notebook from the top")
