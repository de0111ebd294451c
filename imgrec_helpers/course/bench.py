"""``imgrec bench [--quick]``: the course's speed vs plain Keras, medians of runs taking turns. Figures: 1 training, 2
time to 80% (not --quick), 3 reference recipe, 4 transfer, 5 inference, 6 predict batched, 7 replicas; ``--levers``:
float32 settings. TensorFlow (14 s) starts after run's CPU settings; pooch only in functions (0.6 s per imgrec command).
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import time
from typing import Any, Callable

import numpy as np

from .. import hardware, models, training
from ..errors import ImgrecError
from ..quiet import import_tensorflow

_line = functools.partial(print, flush=True)
LEVER_PROCESSES: dict[str, dict[str, str]] = {  # read when TensorFlow starts: one process each, taking turns
    "oneDNN off": {"TF_ENABLE_ONEDNN_OPTS": "0"}, "oneDNN on": {"TF_ENABLE_ONEDNN_OPTS": "1"},
    "oneDNN off, 1 inter-op thread": {"TF_ENABLE_ONEDNN_OPTS": "0", "TF_NUM_INTEROP_THREADS": "1"},
    "oneDNN on, 1 inter-op thread": {"TF_ENABLE_ONEDNN_OPTS": "1", "TF_NUM_INTEROP_THREADS": "1"}}
LEVER_FITS: dict[str, dict[str, Any]] = {  # arguments of _epoch_rate, measured in one process, taking turns
    "NumPy arrays, batch 64": {"batch": 64},
    "steps_per_execution=16, batch 64": {"batch": 64, "steps_per_execution": 16},
    "tf.data + prefetch, batch 64": {"batch": 64, "pipeline": True}, "NumPy arrays, batch 128": {"batch": 128},
    "NumPy arrays, batch 256": {"batch": 256}, "plain Keras: NumPy arrays, batch 32": {"batch": 32}}


def _seconds(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> float:
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def _median_turns(runs: dict[str, Callable[[], float]], rounds: int = 3, show: bool = False) -> dict[str, float]:
    """The median of each run's images/s, the runs taking turns for ``rounds`` rounds (every comparison)."""
    found: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(rounds):
        for name, measure in runs.items():
            found[name].append(measure())
            if show:
                _line(f"  round {r + 1}/{rounds}: {name:32} {found[name][-1]:6.0f} images/s")
    return {name: float(np.median(speeds)) for name, speeds in found.items()}


def _cifar(home: Any, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The CIFAR-10 training images, and the first ``n`` as floats in 0..1 with one-hot labels."""
    from .. import data  # pooch: see the module docstring

    (x_train, y_train), _ = data.load_cifar10(home)
    return x_train, x_train[:n].astype("float32") / 255.0, np.eye(10, dtype="float32")[y_train[:n, 0]]


def _epoch_rate(x: np.ndarray, y: np.ndarray, precision: str = "float32", batch: int = 64, strategy: Any = None,
                steps_per_execution: int = 1, pipeline: bool = False) -> Callable[[], float]:
    """The reference CNN compiled under ``strategy`` and warmed up on 2,048 images; returns a function that trains
    one epoch of ``x`` and gives its images/s (figures 1 and 7, the levers)."""
    import keras  # TensorFlow: see the module docstring
    import tensorflow as tf

    def feed(x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
        if pipeline:  # the dataset shuffles itself
            dataset = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=0).batch(batch)
            return {"x": dataset.prefetch(tf.data.AUTOTUNE), "shuffle": False}
        return {"x": x, "y": y, "batch_size": batch}

    keras.utils.set_random_seed(0)
    with (strategy or tf.distribute.get_strategy()).scope():  # the default strategy: no distribution
        model = models.build_reference_cnn(precision=precision)
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"],
                      steps_per_execution=steps_per_execution)
    model.fit(epochs=1, verbose=0, **feed(x[:2048], y[:2048]))  # trace and warm up
    args = feed(x, y)
    return lambda: len(x) / _seconds(model.fit, epochs=1, verbose=0, **args)


def _replica_throughput(x: np.ndarray, y: np.ndarray, precision: str, devices: list[str],
                        rounds: int = 3) -> dict[str, float]:
    """Figure 7: images/s on each device alone (``"CPU:0"``) and mirrored over the first 2, 3... (``"2 replicas"``)."""
    import tensorflow as tf  # see the module docstring

    strategies: dict[str, Any] = {d.rsplit("device:", 1)[-1]: tf.distribute.OneDeviceStrategy(d) for d in devices}
    strategies |= {f"{n} replicas": tf.distribute.MirroredStrategy(devices[:n]) for n in range(2, len(devices) + 1)}
    return _median_turns({name: _epoch_rate(x, y, precision, 64 * strategy.num_replicas_in_sync, strategy)
                          for name, strategy in strategies.items()}, rounds)  # batch 64 per replica


def _lever_worker(spec: dict[str, Any]) -> dict[str, float]:
    """Images/s of the float32 reference CNN for each of ``spec["fits"]`` (:data:`LEVER_FITS`), as in :func:`levers`."""
    _, x, y = _cifar(spec["data_home"], int(spec["images"]))
    return _median_turns({name: _epoch_rate(x, y, **LEVER_FITS[name]) for name in spec["fits"]}, int(spec["rounds"]))


def _run_lever_worker(env: dict[str, str], spec: dict[str, Any], base_env: dict | None = None) -> dict[str, float]:
    """:func:`_lever_worker` in a new process with ``base_env`` (default: this process's) updated by ``env``."""
    full_env = dict(os.environ if base_env is None else base_env, TF_CPP_MIN_LOG_LEVEL="3", **env)
    proc = subprocess.run([sys.executable, "-m", "imgrec_helpers.course.bench", "--lever-worker", json.dumps(spec)],
                          env=full_env, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("LEVERS ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"lever worker failed: {proc.stderr.strip().splitlines()[-1:] or proc.returncode}")
    return json.loads(lines[-1][len("LEVERS "):])


def levers(data_home: Any, emulate_avx2: bool = False, images: int = 2048, rounds: int = 3) -> dict[str, float]:
    """``--levers``: :data:`LEVER_PROCESSES` in alternating processes (median of ``rounds`` epochs in each), then
    :data:`LEVER_FITS` in one process per oneDNN setting; ``emulate_avx2`` caps oneDNN at AVX2. Returns the former."""
    envs = {name: dict(env, **({"ONEDNN_MAX_CPU_ISA": "AVX2"} if emulate_avx2 else {}))
            for name, env in LEVER_PROCESSES.items()}
    base = next(iter(LEVER_FITS))
    spec = {"data_home": str(data_home), "images": images, "rounds": rounds, "fits": [base]}
    processes = _median_turns({name: lambda env=env: _run_lever_worker(env, spec)[base] for name, env in envs.items()},
                              rounds, show=True)
    for name in ("oneDNN off", "oneDNN on"):
        for fit_name, speed in _run_lever_worker(envs[name], dict(spec, fits=list(LEVER_FITS)[:-1])).items():
            _line(f"  {name}: {fit_name:36} {speed:6.0f} images/s")
    return processes


def _time_to_80(home: Any, precision: str, quick: bool, epochs: int = 15, time_limit: float = 900.0) -> dict[str, str]:
    """Figure 2: training seconds of the fast CNN until 80% test accuracy."""
    if quick:  # one epoch of the fast recipe alone takes minutes on a float32 CPU
        raise ImgrecError("it trains for 10 minutes or more; run the benchmark without --quick")
    import keras  # TensorFlow: see the module docstring
    import tensorflow as tf

    from .. import data  # pooch: see the module docstring

    (x_train, y_train), (x_test, y_test) = data.load_cifar10(home)
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    steps = len(x_train) // 256

    def augment(image: Any, label: Any) -> tuple[Any, Any]:  # flip, then shift by up to 4 px
        image = tf.image.resize_with_crop_or_pad(tf.image.random_flip_left_right(image), 36, 36)
        return tf.image.random_crop(image, (32, 32, 3)), label

    train = (tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(50_000, seed=0)
             .map(augment, num_parallel_calls=tf.data.AUTOTUNE).batch(256, drop_remainder=True)
             .map(lambda images, labels: (tf.cast(images, tf.float32) / 255.0,
                                          tf.one_hot(tf.cast(labels[:, 0], tf.int32), 10)),
                  num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))
    x_eval = x_test.astype(np.float32) / 255.0
    schedule = keras.optimizers.schedules.CosineDecay(0.0, steps * (epochs - 1), warmup_target=0.1, warmup_steps=steps)
    model = models.build_fast_cnn(precision=precision, widths=(32, 64, 128))
    model.compile(optimizer=keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True, weight_decay=5e-4),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1), metrics=["accuracy"])
    curve, trained = [], 0.0
    for epoch in range(epochs):
        trained += _seconds(model.fit, train, epochs=1, verbose=0, shuffle=False)  # the dataset shuffles itself
        accuracy = float((model.predict(x_eval, batch_size=1000, verbose=0).argmax(1) == y_test[:, 0]).mean())
        curve.append((trained, accuracy))
        _line(f"  fast recipe epoch {epoch + 1}/{epochs}: {trained:6.1f} s of training, test accuracy {accuracy:.4f}")
        if accuracy >= 0.80 or trained > time_limit:
            break
    _line("2. fast recipe accuracy vs training time: " + ", ".join(f"{s:.0f}s={a:.3f}" for s, a in curve))
    if accuracy < 0.80:
        raise ImgrecError(f"the fast recipe reached {max(a for _, a in curve):.3f}, not 0.80, in {trained:.0f} s of "
                          f"training ({len(curve)} epochs)")
    _line(f"2. time to 80% test accuracy: {trained:.0f} s of training")
    return {"time_to_80": f"{trained:.0f}s"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``imgrec bench`` and ``python -m imgrec_helpers.course.bench``."""
    parser.add_argument("--quick", action="store_true",
                        help="smaller measurements, without the time-to-80%% recipe: a few minutes on 2 cores")
    parser.add_argument("--data-home", metavar="DIR", help="datasets and weights (default: $IMGREC_DATA_HOME or data/)")
    parser.add_argument("--levers", action="store_true", help="only measure the per-epoch levers of float32 training "
                        "(oneDNN, threads, steps_per_execution, tf.data, batch size)")
    parser.add_argument("--cpu-devices", type=int, default=1, metavar="N", help="split the CPU into N logical devices, "
                        "to measure MirroredStrategy over them where there is no GPU (figure 7; default 1)")
    parser.add_argument("--emulate-avx2", action="store_true", help="stand in for a laptop CPU without "
                        "AVX-512/bfloat16 (e.g. AMD EPYC): float32, oneDNN capped at AVX2, plain Keras with oneDNN "
                        "off (TensorFlow's default on AMD CPUs)")


def main(argv: list[str] | None = None) -> int:
    """``python -m imgrec_helpers.course.bench``, and the ``--levers`` worker processes."""
    parser = argparse.ArgumentParser(prog="imgrec bench", description="the course's speed against plain Keras")
    add_arguments(parser)
    parser.add_argument("--lever-worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.lever_worker:
        return run(args)
    import_tensorflow()
    _line("LEVERS " + json.dumps(_lever_worker(json.loads(args.lever_worker))))
    return 0


def run(args: argparse.Namespace) -> int:
    """The benchmark for options parsed by :func:`add_arguments` (``imgrec bench`` passes its own)."""
    from .. import applications, data, sources  # pooch: see the module docstring
    from ..running import check_parameter

    home = sources.data_home(args.data_home)
    plain_env = dict(os.environ)  # plain Keras: the user's environment and TensorFlow's own defaults
    emulate = args.emulate_avx2 and not args.levers
    if emulate:  # before TensorFlow is imported
        os.environ.setdefault("IMGREC_PRECISION", "float32")
        os.environ["ONEDNN_MAX_CPU_ISA"] = plain_env["ONEDNN_MAX_CPU_ISA"] = "AVX2"
        plain_env.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # TensorFlow's own choice on AMD CPUs
    if not args.levers:
        cpu_devices = check_parameter("--cpu-devices", args.cpu_devices, whole=True, minimum=1, maximum=64)
        separate_plain = bool(training.apply_cpu_environment()) or emulate
        import_tensorflow()  # after the settings above, without TensorFlow's C++ start-up log
        training.split_cpu(cpu_devices)
    info = hardware.info()
    emulated = "; EMULATING an AVX2 CPU without bfloat16 (float32, oneDNN max ISA AVX2)" if args.emulate_avx2 else ""
    _line(f"imgrec bench: {hardware.describe_cpu()}, {info.get('memory_gib')} GiB, "
          f"GPUs: {info.get('gpus') or 'none'}; {'--quick' if args.quick else 'full'} mode; "
          f"CPU settings: {training.cpu_settings()}{emulated}")
    if args.levers:
        found = levers(home, emulate_avx2=args.emulate_avx2)
        _line("levers: " + ", ".join(f"{k}={v:.0f}/s" for k, v in found.items())
              + f"; fastest: {max(found, key=found.get)}")
        return 0
    import keras  # TensorFlow: started above, after the CPU settings
    import tensorflow as tf

    precision, why = training.choose_precision("auto")
    _line(f"course precision: {why}")
    x_train, x, y = _cifar(home, 6144 if args.quick else 16_384)
    runs = {"course": _epoch_rate(x, y, precision)}
    how = f"median of 3 alternating epochs of {len(x):,} images each"
    if separate_plain:  # plain Keras with TensorFlow's own defaults: a fresh process without the course's settings
        spec = {"data_home": str(home), "images": len(x), "rounds": 1, "fits": [list(LEVER_FITS)[-1]]}
        runs["plain"] = lambda: _run_lever_worker({}, spec, base_env=plain_env)[spec["fits"][0]]
        onednn = plain_env.get("TF_ENABLE_ONEDNN_OPTS", "TensorFlow's choice")
        how += f"; plain Keras in its own process each round, TF_ENABLE_ONEDNN_OPTS={onednn}"
    else:
        runs = {"plain": _epoch_rate(x, y, batch=32), **runs}
    speeds = _median_turns(runs)
    course, speedup = speeds["course"], speeds["course"] / speeds["plain"]
    _line(f"1. reference CNN training: course {course:,.0f} images/s ({precision}, batch 64, "
          f"{training.cpu_settings()}) vs plain Keras {speeds['plain']:,.0f} images/s (float32, batch 32, "
          f"TensorFlow's defaults): {speedup:.2f}x ({how})")
    _line(f"3. reference recipe (30 epochs x 50,000 images, batch 64) projected: {30 * 50_000 / course:,.0f} s "
          f"(original lesson: 1,298 s)")
    summary = {"train_speedup": f"{speedup:.1f}x", "time_to_80": "n/a", "ref_recipe": f"{30 * 50_000 / course:.0f}s",
               **dict.fromkeys(("transfer64", "infer_speedup", "predict_batched", "predict_single", "replicas"), "n/a")}
    preprocess = keras.applications.mobilenet.preprocess_input
    images = x_train[:512 if args.quick else 2048].repeat(7, axis=1).repeat(7, axis=2)  # 32 -> 224 px

    def replicas() -> dict[str, str]:
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
        return {"replicas": ",".join(f"{name.replace(' replicas', 'x')}={speed:.0f}/s"
                                     for name, speed in found.items())}

    def transfer() -> dict[str, str]:
        folder = data.load_image_folder(sources.fetch_set("dog_vs_notdog", home), 224)
        keras.backend.clear_session()
        keras.utils.set_random_seed(0)
        base = applications.load_application("mobilenet-0.25", include_top=False, pooling="avg")
        start = time.perf_counter()
        features = base.predict(preprocess(folder.images), batch_size=128, verbose=0)
        extracted = time.perf_counter() - start
        head = models.build_feature_head(features.shape[1:], 2, hidden=0)
        labels = (np.asarray(folder.class_names)[folder.labels] == "dog").astype(np.float32)
        trained = _seconds(head.fit, features, labels, epochs=20, batch_size=64, verbose=0)
        _line(f"4. transfer learning from 64 images: features {extracted:.2f} s + head {trained:.2f} s = "
              f"{extracted + trained:.2f} s")
        return {"transfer64": f"{extracted + trained:.1f}s"}

    def inference() -> dict[str, str]:
        if precision == "float32":  # the course's policy is plain Keras' own: the same computation twice
            raise ImgrecError("the course's precision is float32 on this CPU, the same computation as plain Keras "
                              "(two timings of it would only show the machine's noise)")
        batch = preprocess(images[:256].astype(np.float32))
        runs = {}
        previous = keras.config.dtype_policy()
        for name, policy in (("plain", "float32"), ("course", precision)):
            keras.config.set_dtype_policy(policy)  # the benchmark's own process: restored below
            try:
                model = applications.load_application("mobilenet-0.25")
            finally:
                keras.config.set_dtype_policy(previous)
            model.predict(batch[:32], batch_size=32, verbose=0)  # warm up
            runs[name] = lambda model=model: len(batch) / _seconds(model.predict, batch, batch_size=32, verbose=0)
        plain_ips, course_ips = _median_turns(runs).values()
        _line(f"5. pretrained MobileNet (alpha 0.25) inference at 224 px: course {course_ips:,.0f} images/s vs plain "
              f"float32 {plain_ips:,.0f} images/s: {course_ips / plain_ips:.2f}x ({precision} vs float32, batch 32)")
        return {"infer_speedup": f"{course_ips / plain_ips:.1f}x"}

    def labelling() -> dict[str, str]:
        keras.backend.clear_session()
        model = applications.load_application("mobilenet-0.25")

        def label(starts: range, size: int) -> None:  # preprocessing included, as in imgrec predict
            for i in starts:
                model.predict(preprocess(images[i:i + size].astype("float32")), batch_size=size, verbose=0)

        label(range(1), 64)  # warm up both
        label(range(1), 1)
        batched = len(images) / _seconds(label, range(0, len(images), 64), 64)
        single = 32 / _seconds(label, range(32), 1)
        _line(f"6. imgrec predict-style labelling, MobileNet (alpha 0.25) at 224 px, float32: batches of 64 "
              f"{batched:,.0f} images/s vs one image per predict call {single:,.1f} images/s: "
              f"{batched / single:.0f}x ({len(images):,} and 32 images)")
        return {"predict_batched": f"{batched:.0f}/s", "predict_single": f"{single:.0f}/s"}

    applications.prepare_keras_cache(home)
    reasons = []
    figures = {"time_to_80": lambda: _time_to_80(home, precision, args.quick), "replicas": replicas,
               "transfer64": transfer, "infer_speedup": inference, "predict_batched": labelling}
    for key, figure in figures.items():
        try:
            summary.update(figure())
        except (ImgrecError, OSError) as exc:  # its summary value stays n/a
            reasons.append(f"{key}: n/a because {exc}")
    for reason in reasons:
        _line(reason)
    _line("summary: " + " ".join(f"{key}={value}" for key, value in summary.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
