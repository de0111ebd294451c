"""The course's benchmark: ``python -m imgrec_helpers.course.bench [--quick]`` (or ``imgrec bench``).

Runs every comparison in one process on this machine and prints one line per figure, ending with

    summary: train_speedup=2.4x time_to_80=540s ref_recipe=690s transfer64=1.9s infer_speedup=1.6x
             predict_batched=400/s predict_single=20/s replicas=CPU:0=1790/s

A figure that could not be measured is ``n/a``, with the reason on its own line above the summary.

1. Reference CNN training throughput (images/s): the course's settings (mixed precision where the
   hardware has it, batch 64) versus plain Keras defaults (float32, batch 32), same data.
2. Time to 80% CIFAR-10 test accuracy from scratch with the course's fast recipe (a small CNN with
   batch normalisation, bfloat16, flip + shift augmentation in a tf.data pipeline, one-cycle learning rate);
   not with ``--quick`` (it trains for 10 minutes or more).
3. The reference recipe (30 epochs x 50,000 images, batch 64) projected from the measured epoch time.
4. Transfer learning from 64 images: feature extraction + head training, end to end.
5. Inference images/s of the pretrained model at 224 px: course settings versus plain float32 ``predict``.
6. ``imgrec predict``-style labelling with the real MobileNet (alpha 0.25): ``model.predict`` on batches of
   64 images versus one call per image (images/s).
7. Reference CNN training images/s on each device alone and under ``MirroredStrategy`` over 2, 3, ... of them
   (the GPUs, else the CPU's logical devices: ``--cpu-devices N`` splits the CPU).

``--levers`` instead measures what each per-epoch setting gives float32 training of the reference CNN on
this CPU (oneDNN on/off and inter-op threads in alternating processes; steps_per_execution, tf.data +
prefetch and batch size in one process); ``--emulate-avx2`` caps oneDNN at AVX2.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Callable

import numpy as np



def _line(text: str) -> None:
    print(text, flush=True)


def _reference_throughput(x: np.ndarray, y: np.ndarray, settings: dict[str, tuple[str, int]],
                          rounds: int = 3, each_round: Callable[[], None] | None = None) -> dict[str, float]:
    """Images/s of the reference CNN for each ``name: (precision, batch size)``: median of ``rounds``
    timed epochs, the settings taking turns so that a slow spell of a shared machine hits all of them;
    ``each_round`` (a measurement in another process) takes its turn after each round."""
    import keras

    from .. import models

    built = {}
    for name, (precision, batch_size) in settings.items():
        keras.utils.set_random_seed(0)
        model = models.build_reference_cnn(precision=precision, name=f"reference_cnn_{name}")
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
        model.fit(x[:2048], y[:2048], batch_size=batch_size, epochs=1, verbose=0)  # trace and warm up
        built[name] = (model, batch_size)
    return _alternating_epochs(built, x, y, rounds, each_round)


def _alternating_epochs(built: dict[str, tuple[Any, int]], x: np.ndarray, y: np.ndarray, rounds: int,
                        each_round: Callable[[], None] | None = None) -> dict[str, float]:
    """Images/s of each ``name: (compiled model, batch size)``: the median of ``rounds`` timed epochs, the models
    taking turns (figures 1 and 7)."""
    times: dict[str, list[float]] = {name: [] for name in built}
    for _ in range(rounds):
        for name, (model, batch_size) in built.items():
            start = time.perf_counter()
            model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
            times[name].append(time.perf_counter() - start)
        if each_round is not None:
            each_round()
    return {name: len(x) / float(np.median(t)) for name, t in times.items()}


def _replica_throughput(x: np.ndarray, y: np.ndarray, precision: str, devices: list[str],
                        rounds: int = 3) -> dict[str, float]:
    """Images/s of the reference CNN trained alone on each device (``"CPU:0"``) and under ``MirroredStrategy`` over
    the first 2, 3, ... devices (``"2 replicas"``; batch 64 per replica), median of ``rounds`` alternating epochs:
    figure 7."""
    import keras
    import tensorflow as tf

    from .. import models

    strategies: dict[str, Any] = {d.rsplit("device:", 1)[-1]: tf.distribute.OneDeviceStrategy(d) for d in devices}
    for count in range(2, len(devices) + 1):
        strategies[f"{count} replicas"] = tf.distribute.MirroredStrategy(devices[:count])
    built = {}
    for name, strategy in strategies.items():
        keras.utils.set_random_seed(0)
        with strategy.scope():
            model = models.build_reference_cnn(precision=precision, name="reference_cnn_replicas")
            model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
        batch = 64 * strategy.num_replicas_in_sync
        model.fit(x[:2048], y[:2048], batch_size=batch, epochs=1, verbose=0)  # trace and warm up
        built[name] = (model, batch)
    return _alternating_epochs(built, x, y, rounds)


def _fast_recipe(data_home: Any, precision: str, epochs: int, time_limit: float,
                 target: float = 0.80) -> tuple[float | None, list[tuple[float, float]]]:
    """Train the fast CNN; returns (training seconds when test accuracy first reached ``target``, curve)."""
    import keras
    import tensorflow as tf

    from .. import data, models

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

    from .. import applications, data, models, sources

    folder = data.load_image_folder(sources.fetch_set("dog_vs_notdog", data_home), 224)
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    base = applications.load_application("mobilenet-0.25", include_top=False, pooling="avg")
    start = time.perf_counter()
    features = base.predict(keras.applications.mobilenet.preprocess_input(folder.images), batch_size=128, verbose=0)
    extracted = time.perf_counter() - start
    head = models.build_feature_head(features.shape[1:], 2, hidden=0)
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

    from .. import applications

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


# --------------------------------------------------------------------------------------------
# Per-epoch levers on a float32 CPU (``--levers``): which settings make the reference CNN train faster
# --------------------------------------------------------------------------------------------

LEVER_PROCESSES: dict[str, dict[str, str]] = {
    "oneDNN off": {"TF_ENABLE_ONEDNN_OPTS": "0"},
    "oneDNN on": {"TF_ENABLE_ONEDNN_OPTS": "1"},
    "oneDNN off, 1 inter-op thread": {"TF_ENABLE_ONEDNN_OPTS": "0", "TF_NUM_INTEROP_THREADS": "1"},
    "oneDNN on, 1 inter-op thread": {"TF_ENABLE_ONEDNN_OPTS": "1", "TF_NUM_INTEROP_THREADS": "1"},
}
"""Settings read when TensorFlow starts, so each is measured in its own process (the runs alternate)."""

LEVER_FITS: dict[str, dict[str, Any]] = {
    "NumPy arrays, batch 64": {"batch": 64},
    "steps_per_execution=16, batch 64": {"batch": 64, "steps_per_execution": 16},
    "tf.data + prefetch, batch 64": {"batch": 64, "pipeline": True},
    "NumPy arrays, batch 128": {"batch": 128},
    "NumPy arrays, batch 256": {"batch": 256},
    "plain Keras: NumPy arrays, batch 32": {"batch": 32},
}
"""Settings of ``compile``/``fit``, measured in one process, taking turns."""


def _lever_worker(spec: dict[str, Any]) -> dict[str, float]:
    """Images/s of the float32 reference CNN for each of ``spec["fits"]`` (names of :data:`LEVER_FITS`):
    each warmed up with one full epoch, then the median of ``spec["rounds"]`` alternating epochs."""
    import keras
    import tensorflow as tf

    from .. import data, models

    (x_train, y_train), _ = data.load_cifar10(spec["data_home"])
    n = int(spec["images"])
    x = x_train[:n].astype("float32") / 255.0
    y = keras.utils.to_categorical(y_train[:n], num_classes=10)
    runs = {}
    for name in spec["fits"]:
        setting = LEVER_FITS[name]
        keras.utils.set_random_seed(0)
        model = models.build_reference_cnn(precision="float32")
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"],
                      steps_per_execution=setting.get("steps_per_execution", 1))
        if setting.get("pipeline"):
            dataset = (tf.data.Dataset.from_tensor_slices((x, y)).shuffle(n, seed=0).batch(setting["batch"])
                       .prefetch(tf.data.AUTOTUNE))
            args: dict[str, Any] = {"x": dataset, "shuffle": False}  # the dataset shuffles itself
        else:
            args = {"x": x, "y": y, "batch_size": setting["batch"]}
        model.fit(epochs=1, verbose=0, **args)  # trace and warm up on the same epoch
        runs[name] = (model, args)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(int(spec["rounds"])):
        for name, (model, args) in runs.items():
            start = time.perf_counter()
            model.fit(epochs=1, verbose=0, **args)
            times[name].append(time.perf_counter() - start)
    return {name: n / float(np.median(t)) for name, t in times.items()}


def _run_lever_worker(env: dict[str, str], spec: dict[str, Any],
                      base_env: dict[str, str] | None = None) -> dict[str, float]:
    """:func:`_lever_worker` in a new process with ``base_env`` (default: this process's) updated by ``env``."""
    import json
    import subprocess

    full_env = dict(os.environ if base_env is None else base_env, TF_CPP_MIN_LOG_LEVEL="3", **env)
    proc = subprocess.run([sys.executable, "-m", "imgrec_helpers.course.bench", "--lever-worker", json.dumps(spec)],
                          env=full_env, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("LEVERS ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"lever worker failed: {proc.stderr.strip().splitlines()[-1:] or proc.returncode}")
    return json.loads(lines[-1][len("LEVERS "):])


def levers(data_home: Any, emulate_avx2: bool = False, images: int = 2048, rounds: int = 3) -> dict[str, Any]:
    """Measure what each per-epoch lever gives the float32 reference CNN on this CPU (``--levers``).

    1. Process-level settings (:data:`LEVER_PROCESSES`: oneDNN on/off, inter-op threads), each in its
       own process (median of ``rounds`` epochs there), the processes alternating for ``rounds`` rounds;
       the median of each.
    2. ``compile``/``fit`` settings (:data:`LEVER_FITS`: steps_per_execution, tf.data + prefetch,
       batch size), in one process per oneDNN setting, taking turns.

    ``emulate_avx2`` caps oneDNN at AVX2 (``ONEDNN_MAX_CPU_ISA=AVX2``), to stand in for a CPU without
    AVX-512 and bfloat16 (with oneDNN off, TensorFlow's own kernels use the same code on both).
    """
    cap = {"ONEDNN_MAX_CPU_ISA": "AVX2"} if emulate_avx2 else {}
    envs = {name: dict(env, **cap) for name, env in LEVER_PROCESSES.items()}
    base = next(iter(LEVER_FITS))
    spec = {"data_home": str(data_home), "images": images, "rounds": rounds, "fits": [base]}
    per_process: dict[str, list[float]] = {name: [] for name in envs}
    for r in range(rounds):
        for name, env in envs.items():
            speed = _run_lever_worker(env, spec)[base]
            per_process[name].append(speed)
            _line(f"  round {r + 1}/{rounds}: {name:32} {speed:6.0f} images/s")
    process_medians = {name: float(np.median(v)) for name, v in per_process.items()}
    fits: dict[str, dict[str, float]] = {}
    for name in ("oneDNN off", "oneDNN on"):
        fits[name] = _run_lever_worker(envs[name], dict(spec, rounds=rounds, fits=list(LEVER_FITS)[:-1]))
        for fit_name, speed in fits[name].items():
            _line(f"  {name}: {fit_name:36} {speed:6.0f} images/s")
    return {"processes": process_medians, "fits": fits}


def _predict_batched_vs_single(images: np.ndarray, batch_size: int = 64, single: int = 32) -> tuple[float, float]:
    """Images/s of ``imgrec predict``-style labelling with the real MobileNet (alpha 0.25, ImageNet
    weights, 224 px, float32): ``model.predict`` on batches of ``batch_size`` versus one call per image
    (the first ``single`` images). Each warmed up first; preprocessing is included in both."""
    import keras

    from .. import applications

    keras.backend.clear_session()
    model = applications.load_application("mobilenet-0.25")
    preprocess = keras.applications.mobilenet.preprocess_input
    model.predict(preprocess(images[:batch_size].astype("float32")), batch_size=batch_size, verbose=0)
    model.predict(preprocess(images[:1].astype("float32")), verbose=0)
    start = time.perf_counter()
    for i in range(0, len(images), batch_size):
        model.predict(preprocess(images[i:i + batch_size].astype("float32")),
                      batch_size=batch_size, verbose=0)
    batched = len(images) / (time.perf_counter() - start)
    start = time.perf_counter()
    for i in range(single):
        model.predict(preprocess(images[i:i + 1].astype("float32")), verbose=0)
    one_by_one = single / (time.perf_counter() - start)
    return batched, one_by_one


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The benchmark's options, shared by ``imgrec bench`` and ``python -m imgrec_helpers.course.bench``."""
    parser.add_argument("--quick", action="store_true",
                        help="smaller measurements, without the time-to-80%% recipe: a few minutes on 2 cores")
    parser.add_argument("--data-home", metavar="DIR", help="datasets and weights (default: $IMGREC_DATA_HOME or data/)")
    parser.add_argument("--levers", action="store_true",
                        help="only measure the per-epoch levers of float32 training (oneDNN, threads, "
                             "steps_per_execution, tf.data, batch size)")
    parser.add_argument("--cpu-devices", type=int, default=1, metavar="N",
                        help="split the CPU into N logical devices, to measure MirroredStrategy over them where "
                             "there is no GPU (figure 7; default 1)")
    parser.add_argument("--emulate-avx2", action="store_true",
                        help="stand in for a laptop CPU without AVX-512/bfloat16 (e.g. AMD EPYC): float32, oneDNN "
                             "capped at AVX2, plain Keras with oneDNN off (TensorFlow's default on AMD CPUs)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imgrec bench", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    parser.add_argument("--lever-worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.lever_worker:
        import json

        from ..quiet import import_tensorflow

        import_tensorflow()
        _line("LEVERS " + json.dumps(_lever_worker(json.loads(args.lever_worker))))
        return 0
    return run(args)


def run(args: argparse.Namespace) -> int:
    """The benchmark for parsed options (:func:`add_arguments`: ``quick``, ``data_home``, ``levers``,
    ``emulate_avx2``); ``imgrec bench`` calls it with its own parsed arguments."""
    from .. import data, hardware, sources, training, weights
    from ..errors import ImgrecError

    home = sources.data_home(args.data_home)
    plain_env = dict(os.environ)  # plain Keras: the user's environment and TensorFlow's own defaults
    if args.emulate_avx2 and not args.levers:  # before TensorFlow is imported
        os.environ.setdefault("IMGREC_PRECISION", "float32")
        os.environ["ONEDNN_MAX_CPU_ISA"] = plain_env["ONEDNN_MAX_CPU_ISA"] = "AVX2"
        plain_env.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # TensorFlow's own choice on AMD CPUs
    adopted = {} if args.levers else training.apply_cpu_environment()
    if not args.levers:
        from ..quiet import import_tensorflow

        import_tensorflow()  # after the settings above, without TensorFlow's C++ start-up log
        from ..running import check_parameter

        training.split_cpu(check_parameter("--cpu-devices", args.cpu_devices, whole=True, minimum=1, maximum=64))
    separate_plain = bool(adopted) or (args.emulate_avx2 and not args.levers)
    info = hardware.info()
    emulated = "; EMULATING an AVX2 CPU without bfloat16 (float32, oneDNN max ISA AVX2)" if args.emulate_avx2 else ""
    _line(f"imgrec bench: {hardware.describe_cpu()}, {info.get('memory_gib')} GiB, "
          f"GPUs: {info.get('gpus') or 'none'}; {'--quick' if args.quick else 'full'} mode; "
          f"CPU settings: {training.cpu_settings()}{emulated}")
    if args.levers:
        found = levers(home, emulate_avx2=args.emulate_avx2)
        best = max(found["processes"], key=found["processes"].get)
        _line("levers: " + ", ".join(f"{k}={v:.0f}/s" for k, v in found["processes"].items()) + f"; fastest: {best}")
        return 0
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

    import keras

    (x_train, y_train), _ = data.load_cifar10(home)
    n = 6144 if args.quick else 16_384
    x = x_train[:n].astype("float32") / 255.0
    y = keras.utils.to_categorical(y_train[:n], num_classes=10)
    if separate_plain:  # plain Keras runs with TensorFlow's own defaults: in a process without the course's settings
        plain_fit = "plain Keras: NumPy arrays, batch 32"
        plain_speeds: list[float] = []

        def plain_round() -> None:  # a fresh process each round, taking turns with the course's epochs
            plain_speeds.append(_run_lever_worker({}, {"data_home": str(home), "images": n, "rounds": 1,
                                                       "fits": [plain_fit]}, base_env=plain_env)[plain_fit])

        speeds = _reference_throughput(x, y, {"course": (precision, 64)}, each_round=plain_round)
        speeds["plain"] = float(np.median(plain_speeds))
        onednn = plain_env.get("TF_ENABLE_ONEDNN_OPTS", "TensorFlow's choice")
        how = (f"median of 3 alternating epochs of {len(x):,} images each; plain Keras in its own process each "
               f"round, TF_ENABLE_ONEDNN_OPTS={onednn}")
    else:
        speeds = _reference_throughput(x, y, {"plain": ("float32", 32), "course": (precision, 64)})
        how = f"median of 3 alternating epochs of {len(x):,} images each"
    plain, course = speeds["plain"], speeds["course"]
    _line(f"1. reference CNN training: course {course:,.0f} images/s ({precision}, batch 64, "
          f"{training.cpu_settings()}) vs plain Keras {plain:,.0f} images/s (float32, batch 32, TensorFlow's "
          f"defaults): {course / plain:.2f}x ({how})")
    summary["train_speedup"] = f"{course / plain:.1f}x"
    ref_seconds = 30 * 50_000 / course
    _line(f"3. reference recipe (30 epochs x 50,000 images, batch 64) projected: {ref_seconds:,.0f} s "
          f"(original lesson: 1,298 s)")

    def time_to_80() -> str:
        if args.quick:  # one epoch of the fast recipe alone takes minutes on a float32 CPU
            raise ImgrecError("it trains for 10 minutes or more; run the benchmark without --quick")
        epochs, limit = 15, 900.0
        reached, curve = _fast_recipe(home, precision, epochs, limit)
        _line("2. fast recipe accuracy vs training time: " + ", ".join(f"{s:.0f}s={a:.3f}" for s, a in curve))
        if reached is None:
            best = max(a for _, a in curve)
            raise ImgrecError(f"the fast recipe reached {best:.3f}, not 0.80, in {curve[-1][0]:.0f} s of training "
                              f"({len(curve)} epochs)")
        _line(f"2. time to 80% test accuracy: {reached:.0f} s of training")
        return f"{reached:.0f}s"

    figure("time_to_80", time_to_80)
    summary["ref_recipe"] = f"{ref_seconds:.0f}s"

    def transfer() -> str:
        extracted, trained, total = _transfer64(home)
        _line(f"4. transfer learning from 64 images: features {extracted:.2f} s + head {trained:.2f} s = {total:.2f} s")
        return f"{total:.1f}s"

    def inference() -> str:
        if precision == "float32":  # the course's policy is plain Keras' own: the same computation twice
            raise ImgrecError("the course's precision is float32 on this CPU, the same computation as plain Keras "
                              "(two timings of it would only show the machine's noise)")
        images = x_train[:256].repeat(7, axis=1).repeat(7, axis=2)  # 32 -> 224 px
        speeds = _inference(images, {"plain": "float32", "course": precision})
        plain_ips, course_ips = speeds["plain"], speeds["course"]
        _line(f"5. pretrained MobileNet (alpha 0.25) inference at 224 px: course {course_ips:,.0f} images/s vs plain "
              f"float32 {plain_ips:,.0f} images/s: {course_ips / plain_ips:.2f}x ({precision} vs float32, batch 32)")
        return f"{course_ips / plain_ips:.1f}x"

    def predict_batching() -> str:
        images = x_train[:512 if args.quick else 2048].repeat(7, axis=1).repeat(7, axis=2)  # 32 -> 224 px
        batched, single = _predict_batched_vs_single(images)
        _line(f"6. imgrec predict-style labelling, MobileNet (alpha 0.25) at 224 px, float32: batches of 64 "
              f"{batched:,.0f} images/s vs one image per predict call {single:,.1f} images/s: "
              f"{batched / single:.0f}x ({len(images):,} and 32 images)")
        summary["predict_single"] = f"{single:.0f}/s"
        return f"{batched:.0f}/s"

    def replicas() -> str:
        import tensorflow as tf

        devices = [d.name for d in tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")]
        if len(devices) == 1:  # one device: figure 1's course setting is already its images/s
            found = {devices[0].rsplit("device:", 1)[-1]: course}
            how = "figure 1's course setting; more replicas need more devices: GPUs, or --cpu-devices N"
        else:
            found = _replica_throughput(x, y, precision, devices)
            how = f"batch 64 per replica, median of 3 alternating epochs of {len(x):,} images"
        _line("7. reference CNN training per device and per replica count: "
              + ", ".join(f"{name}{'' if 'replicas' in name else ' alone'} {speed:,.0f} images/s"
                          for name, speed in found.items()) + f" ({how})")
        return ",".join(f"{name.replace(' replicas', 'x')}={speed:.0f}/s" for name, speed in found.items())

    weights.prepare_keras_cache(home)
    figure("replicas", replicas)
    figure("transfer64", transfer)
    figure("infer_speedup", inference)
    figure("predict_batched", predict_batching)
    for reason in reasons:
        _line(reason)
    order = ("train_speedup", "time_to_80", "ref_recipe", "transfer64", "infer_speedup", "predict_batched",
             "predict_single", "replicas")
    _line("summary: " + " ".join(f"{k}={summary.get(k, 'n/a')}" for k in order))
    return 0


if __name__ == "__main__":
    sys.exit(main())
