"""The course's benchmark: ``python -m imgrec_helpers.bench [--quick]`` (or ``imgrec bench``).

Runs every comparison in one process on this machine and prints one line per figure, ending with

    summary: train_speedup=2.4x time_to_80=540s ref_recipe=690s transfer64=1.9s infer_speedup=1.6x

A figure that could not be measured is ``n/a``, with the reason on its own line above the summary.

1. Reference CNN training throughput (images/s): the course's settings (mixed precision where the
   hardware has it, batch 64) versus plain Keras defaults (float32, batch 32), same data.
2. Time to 80% CIFAR-10 test accuracy from scratch with the course's fast recipe (a small CNN with
   batch normalisation, bfloat16, flip + shift augmentation in a tf.data pipeline, one-cycle learning rate).
3. The reference recipe (30 epochs x 50,000 images, batch 64) projected from the measured epoch time.
4. Transfer learning from 64 images: feature extraction + head training, end to end.
5. Inference images/s of the pretrained model at 224 px: course settings versus plain float32 ``predict``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Callable

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _line(text: str) -> None:
    print(text, flush=True)


def _reference_throughput(x: np.ndarray, y: np.ndarray, settings: dict[str, tuple[str, int]],
                          rounds: int = 3) -> dict[str, float]:
    """Images/s of the reference CNN for each ``name: (precision, batch size)``: median of ``rounds``
    timed epochs, the settings taking turns so that a slow spell of a shared machine hits all of them."""
    import keras

    from . import models

    built = {}
    for name, (precision, batch_size) in settings.items():
        keras.utils.set_random_seed(0)
        model = models.build_reference_cnn(precision=precision, name=f"reference_cnn_{name}")
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
        model.fit(x[:2048], y[:2048], batch_size=batch_size, epochs=1, verbose=0)  # trace and warm up
        built[name] = (model, batch_size)
    times: dict[str, list[float]] = {name: [] for name in settings}
    for _ in range(rounds):
        for name, (model, batch_size) in built.items():
            start = time.perf_counter()
            model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
            times[name].append(time.perf_counter() - start)
    return {name: len(x) / float(np.median(t)) for name, t in times.items()}


def _fast_recipe(data_home: Any, precision: str, epochs: int, time_limit: float,
                 target: float = 0.80) -> tuple[float | None, list[tuple[float, float]]]:
    """Train the fast CNN; returns (training seconds when test accuracy first reached ``target``, curve)."""
    import keras
    import tensorflow as tf

    from . import data, models

    (x_train, y_train), (x_test, y_test) = data.load_cifar10(data_home)
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    batch = 256
    steps = len(x_train) // batch

    def augment(image, label):
        image = tf.image.random_flip_left_right(image)
        image = tf.image.resize_with_crop_or_pad(image, 36, 36)
        image = tf.image.random_crop(image, (32, 32, 3))
        return image, label

    def to_float(image, label):
        return tf.cast(image, tf.float32) / 255.0, tf.one_hot(tf.cast(label[:, 0], tf.int32), 10)

    train = (tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(50_000, seed=0)
             .map(augment, num_parallel_calls=tf.data.AUTOTUNE).batch(batch, drop_remainder=True)
             .map(to_float, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))
    x_eval = x_test.astype(np.float32) / 255.0
    schedule = keras.optimizers.schedules.CosineDecay(0.0, decay_steps=steps * epochs - steps,
                                                      warmup_target=0.1, warmup_steps=steps)
    model = models.build_fast_cnn(precision=precision, widths=(32, 64, 128))
    model.compile(optimizer=keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True, weight_decay=5e-4),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1), metrics=["accuracy"])
    curve: list[tuple[float, float]] = []
    trained = 0.0
    reached = None
    for epoch in range(epochs):
        start = time.perf_counter()
        model.fit(train, epochs=1, verbose=0, shuffle=False)  # the dataset shuffles itself
        trained += time.perf_counter() - start
        accuracy = float((model.predict(x_eval, batch_size=1000, verbose=0).argmax(1) == y_test[:, 0]).mean())
        curve.append((trained, accuracy))
        _line(f"  fast recipe epoch {epoch + 1}/{epochs}: {trained:6.1f} s of training, test accuracy {accuracy:.4f}")
        if reached is None and accuracy >= target:
            reached = trained
            break
        if trained > time_limit:
            break
    return reached, curve


def _transfer64(data_home: Any) -> tuple[float, float, float]:
    """Seconds for features of the 64 dog/not-dog photos + head training; returns (extract, train, total)."""
    import keras

    from . import applications, data, pretrained

    folder = data.load_image_folder(data.data_home(data_home) / "images" / "dog_vs_notdog", 224)
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    base = applications.load_application("mobilenet-0.25", include_top=False, pooling="avg")
    start = time.perf_counter()
    features = base.predict(keras.applications.mobilenet.preprocess_input(folder.images), batch_size=128, verbose=0)
    extracted = time.perf_counter() - start
    head = pretrained.build_feature_head(features.shape[1:], 2, hidden=0)
    labels = (np.asarray(folder.class_names)[folder.labels] == "dog").astype(np.float32)
    start = time.perf_counter()
    head.fit(features, labels, epochs=20, batch_size=64, verbose=0)
    trained = time.perf_counter() - start
    return extracted, trained, extracted + trained


def _inference(images: np.ndarray, policies: dict[str, str], batch_size: int = 32,
               rounds: int = 3) -> dict[str, float]:
    """Images/s of MobileNet (alpha 0.25, with top) at 224 px for each ``name: Keras dtype policy``;
    median of ``rounds`` timed passes, taking turns."""
    import keras

    from . import applications

    batch = keras.applications.mobilenet.preprocess_input(images.astype(np.float32))
    built = {}
    previous = keras.config.dtype_policy()
    for name, policy in policies.items():
        keras.config.set_dtype_policy(policy)  # the benchmark's own process: restored below
        try:
            built[name] = applications.load_application("mobilenet-0.25")
        finally:
            keras.config.set_dtype_policy(previous)
        built[name].predict(batch[:batch_size], batch_size=batch_size, verbose=0)  # warm up
    times: dict[str, list[float]] = {name: [] for name in policies}
    for _ in range(rounds):
        for name, model in built.items():
            start = time.perf_counter()
            model.predict(batch, batch_size=batch_size, verbose=0)
            times[name].append(time.perf_counter() - start)
    return {name: len(images) / float(np.median(t)) for name, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imgrec bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller measurements: under 10 minutes on 2 cores")
    parser.add_argument("--data-home", help="datasets and weights (default: $IMGREC_DATA_HOME or data/)")
    args = parser.parse_args(argv)

    from . import data, hardware, training, weights
    from .errors import ImgrecError

    home = data.data_home(args.data_home)
    info = hardware.info()
    _line(f"imgrec bench: {hardware.describe_cpu()}, {info.get('memory_gib')} GiB, "
          f"GPUs: {info.get('gpus') or 'none'}; {'--quick' if args.quick else 'full'} mode")
    precision, why = training.choose_precision("auto")
    _line(f"course precision: {why}")
    summary: dict[str, str] = {}
    reasons: list[str] = []

    def figure(key: str, fn: Callable[[], str]) -> None:
        try:
            summary[key] = fn()
        except (ImgrecError, OSError) as exc:
            summary[key] = "n/a"
            reasons.append(f"{key}: n/a because {exc}")

    (x_train, y_train), _ = data.load_cifar10(home)
    n = 6144 if args.quick else 16_384
    x = data.preprocess_images(x_train[:n])
    y = data.one_hot(y_train[:n])
    speeds = _reference_throughput(x, y, {"plain": ("float32", 32), "course": (precision, 64)})
    plain, course = speeds["plain"], speeds["course"]
    _line(f"1. reference CNN training: course {course:,.0f} images/s ({precision}, batch 64) vs plain Keras "
          f"{plain:,.0f} images/s (float32, batch 32): {course / plain:.2f}x (median of 3 alternating epochs "
          f"of {len(x):,} images each)")
    summary["train_speedup"] = f"{course / plain:.1f}x"
    ref_seconds = 30 * 50_000 / course
    _line(f"3. reference recipe (30 epochs x 50,000 images, batch 64) projected: {ref_seconds:,.0f} s "
          f"(original lesson: 1,298 s)")

    def time_to_80() -> str:
        epochs, limit = (6, 240.0) if args.quick else (15, 900.0)
        reached, curve = _fast_recipe(home, precision, epochs, limit)
        _line("2. fast recipe accuracy vs training time: " + ", ".join(f"{s:.0f}s={a:.3f}" for s, a in curve))
        if reached is None:
            best = max(a for _, a in curve)
            raise ImgrecError(f"the fast recipe reached {best:.3f}, not 0.80, in {curve[-1][0]:.0f} s of training "
                              f"({len(curve)} epochs{'; --quick caps it, run without --quick' if args.quick else ''})")
        _line(f"2. time to 80% test accuracy: {reached:.0f} s of training")
        return f"{reached:.0f}s"

    figure("time_to_80", time_to_80)
    summary["ref_recipe"] = f"{ref_seconds:.0f}s"

    def transfer() -> str:
        extracted, trained, total = _transfer64(home)
        _line(f"4. transfer learning from 64 images: features {extracted:.2f} s + head {trained:.2f} s = {total:.2f} s")
        return f"{total:.1f}s"

    def inference() -> str:
        images = x_train[:256].repeat(7, axis=1).repeat(7, axis=2)  # 32 -> 224 px
        speeds = _inference(images, {"plain": "float32", "course": precision})
        plain_ips, course_ips = speeds["plain"], speeds["course"]
        _line(f"5. pretrained MobileNet (alpha 0.25) inference at 224 px: course {course_ips:,.0f} images/s vs plain "
              f"float32 {plain_ips:,.0f} images/s: {course_ips / plain_ips:.2f}x ({precision} vs float32, batch 32)")
        return f"{course_ips / plain_ips:.1f}x"

    weights.prepare_keras_cache(home)
    figure("transfer64", transfer)
    figure("infer_speedup", inference)
    for reason in reasons:
        _line(reason)
    order = ("train_speedup", "time_to_80", "ref_recipe", "transfer64", "infer_speedup")
    _line("summary: " + " ".join(f"{k}={summary.get(k, 'n/a')}" for k in order))
    return 0


if __name__ == "__main__":
    sys.exit(main())
