"""One seed makes training repeat exactly (what two smoke runs with the same seed rely on)."""
from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = r"""
import json, keras, numpy as np, tensorflow as tf
from imgrec_helpers import models
tf.config.experimental.enable_op_determinism()  # what start_lesson does where a profile asks for it
rng = np.random.default_rng(0)
x = rng.random((256, 32, 32, 3), dtype=np.float32)
y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 256)]
out = []
for _ in range(2):
    keras.utils.set_random_seed(123)
    model = models.build_reference_cnn(precision="PRECISION")
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=2, batch_size=64, verbose=0)
    out.append({"loss": history.history["loss"], "pred": model.predict(x[:16], verbose=0).round(6).tolist()})
keras.utils.set_random_seed(124)
other = models.build_reference_cnn(precision="PRECISION")
out.append({"weights": float(np.asarray(other.layers[0].kernel).sum())})
keras.utils.set_random_seed(123)
again = models.build_reference_cnn(precision="PRECISION")
out.append({"weights": float(np.asarray(again.layers[0].kernel).sum())})
print(json.dumps(out))
"""


def _run(precision: str):
    proc = subprocess.run([sys.executable, "-c", SCRIPT.replace("PRECISION", precision)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_same_seed_same_training_another_seed_differs():
    from imgrec_helpers import training

    precision, _ = training.choose_precision("auto")  # the precision the lessons train in
    first, second, other, again = _run(precision)
    assert first == second
    assert other["weights"] != again["weights"]
