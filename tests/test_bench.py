"""The benchmark's measuring parts on tiny inputs (imgrec_helpers.bench): they measure, not pretend."""
from __future__ import annotations

import pytest

from imgrec_helpers import bench


@pytest.mark.realdata
def test_lever_worker_measures_each_fit_setting(real_home):
    fits = ["NumPy arrays, batch 64", "tf.data + prefetch, batch 64", "steps_per_execution=16, batch 64"]
    speeds = bench._lever_worker({"data_home": str(real_home), "images": 256, "rounds": 1, "fits": fits})
    assert list(speeds) == fits and all(s > 0 for s in speeds.values())


def test_every_lever_process_sets_onednn_explicitly():
    assert all(env["TF_ENABLE_ONEDNN_OPTS"] in ("0", "1") for env in bench.LEVER_PROCESSES.values())
    assert set(bench.LEVER_FITS) >= {"NumPy arrays, batch 64", "plain Keras: NumPy arrays, batch 32"}
