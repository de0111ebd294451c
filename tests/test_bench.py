"""The benchmark's measuring parts on tiny inputs (imgrec_helpers.course.bench): they measure, not pretend."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from imgrec_helpers.course import bench


@pytest.mark.realdata
def test_lever_worker_measures_each_fit_setting(real_home):
    fits = ["NumPy arrays, batch 64", "tf.data + prefetch, batch 64", "steps_per_execution=16, batch 64"]
    speeds = bench._lever_worker({"data_home": str(real_home), "images": 256, "rounds": 1, "fits": fits})
    assert list(speeds) == fits and all(s > 0 for s in speeds.values())


def test_every_lever_process_sets_onednn_explicitly():
    assert all(env["TF_ENABLE_ONEDNN_OPTS"] in ("0", "1") for env in bench.LEVER_PROCESSES.values())
    assert set(bench.LEVER_FITS) >= {"NumPy arrays, batch 64", "plain Keras: NumPy arrays, batch 32"}


@pytest.mark.slow
def test_replica_figure_measures_each_device_and_mirrored_replicas():
    """Figure 7 on a CPU split into two logical devices (``imgrec bench --cpu-devices 2``): images/s of each
    device alone and of a two-replica MirroredStrategy, every figure a measured positive rate."""
    script = ("import json, numpy as np\nfrom imgrec_helpers import training\nfrom imgrec_helpers.course import bench\n"
              "from imgrec_helpers.quiet import import_tensorflow\nimport_tensorflow()\ntraining.split_cpu(2)\n"
              "import tensorflow as tf\nrng = np.random.default_rng(0)\n"
              "x = rng.random((256, 32, 32, 3), dtype=np.float32)\ny = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 256)]\n"
              "devices = [d.name for d in tf.config.list_logical_devices('CPU')]\n"
              "print(json.dumps(bench._replica_throughput(x, y, 'float32', devices, rounds=1)))\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(found) == {"CPU:0", "CPU:1", "2 replicas"}
    assert all(speed > 0 for speed in found.values())
