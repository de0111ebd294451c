"""Each lesson's setup cell: :func:`start_lesson`, the :class:`Lesson` it returns, the checks of its parameters."""
from __future__ import annotations

import math
import numbers
import os
import platform
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import matplotlib

from . import hardware
from .errors import ImgrecError, os_error
from .profiles import DEFAULT_PROFILE, profile_settings
from .quiet import import_tensorflow
from .results import record_result
from .sources import check_data_home as _check_data_home
from .training import split_cpu, strategy_facts

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SEED = 42
MAX_SEED = 2**32 - 1  # the largest seed NumPy and Keras take (SEED and imgrec run --seed lie in 0..MAX_SEED)
_SETTING_RULES: dict[str, tuple[bool, float, float | None]] = {  # Lesson.setting's (whole, minimum, maximum)
    "epochs": (True, 1, None), "batch_size": (True, 1, None), "train_images": (True, 1, None),
    "min_test_accuracy": (False, 0, 1), "curve_sizes": (True, 1, None)}


def check_parameter(name: str, value: Any, *, whole: bool = False, minimum: float = 0,
                    maximum: float | None = None, above_minimum: bool = False) -> Any:
    """A notebook parameter checked before Keras or NumPy sees it (setup cells, lessons 04, 06, 07, ``imgrec bench``):
    returns ``value`` or raises a one-line :class:`ImgrecError`: ``EPOCHS = -1: use a whole number of at least 1``."""
    if broken := _broken_rule(value, whole=whole, minimum=minimum, maximum=maximum, above_minimum=above_minimum):
        raise ImgrecError(f"{name} = {_shown(value)}: use {broken}")
    return value


def _broken_rule(value: Any, *, whole: bool = False, minimum: float = 0, maximum: float | None = None,
                 above_minimum: bool = False) -> str | None:  # the rule in words if value breaks it, else None
    if (not isinstance(value, bool) and isinstance(value, numbers.Integral if whole else numbers.Real)
            and (isinstance(value, numbers.Integral) or math.isfinite(value))
            and (value > minimum if above_minimum else value >= minimum) and (maximum is None or value <= maximum)):
        return None
    what, number = ("a whole number", "{:,}") if whole else ("a number", "{:g}")
    if maximum is not None:
        return f"{what} from {number.format(minimum)} to {number.format(maximum)}"
    return f"{what} {'above' if above_minimum else 'of at least'} {number.format(minimum)}"


def _shown(value: Any) -> str:
    """``repr(value)``, cut to 40 characters (an error line stays one short line)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass
class Lesson:
    """What a notebook needs to know about its run: made by :func:`start_lesson`."""

    number: str
    profile: str
    seed: int
    run_dir: Path
    data_home: Path
    settings: dict[str, Any] = field(repr=False)

    def path(self, *parts: str) -> Path:
        """A path inside the run folder, its parent folders created (lessons 01-07)."""
        p = self.run_dir.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def setting(self, key: str, override: Any = None) -> Any:
        """The profile's ``settings[key]``, or the notebook's override of it (``EPOCHS`` for ``"epochs"``; None keeps
        the profile's), checked: a bad one is a one-line :class:`ImgrecError` naming it (lessons 02, 05)."""
        if override is None:
            value = self.settings[key]
            return list(value) if isinstance(value, list) else value
        name = key.upper()
        whole, minimum, maximum = _SETTING_RULES[key]
        default = "all" if self.settings[key] is None else self.settings[key]
        if key == "curve_sizes":
            sizes = override if isinstance(override, (list, tuple)) else []
            if not sizes or any(_broken_rule(v, whole=whole, minimum=minimum) for v in sizes):
                raise ImgrecError(f"{name} = {_shown(override)}: use a list of training-set sizes, whole numbers "
                                  f"of at least {minimum}, e.g. [100, 300, 1000], or None for the profile's value "
                                  f"({default})")
            return list(sizes)
        try:
            return check_parameter(name, override, whole=whole, minimum=minimum, maximum=maximum)
        except ImgrecError as exc:
            raise ImgrecError(f"{exc}, or None for the profile's value ({default})") from None

    @property
    def verbose(self) -> int:
        """``model.fit``'s verbose (lessons 02, 04): 2, a line per epoch, headless (``IMGREC_HEADLESS=1``), else 1."""
        return 2 if os.environ.get("IMGREC_HEADLESS") == "1" else 1

    def record(self, name: str, *, kind: str = "model", precision: str = "float32", strategy: Any = None,
               **measured: Any) -> Path:
        """A result in ``results/<name>.json`` with the lesson's facts, hardware and ``strategy``'s (lessons 02-07)."""
        where = strategy_facts(strategy) if strategy is not None else {}
        return record_result(self.run_dir, name, kind=kind, lesson=self.number, profile=self.profile,
                             seed=self.seed, precision=precision, hardware=hardware.label(), **where, **measured)


def versions() -> dict[str, str]:
    """Versions of Python and the course's libraries, from the installed packages' metadata (setup cells, manifest)."""
    out = {"python": platform.python_version()}
    for name in ("tensorflow", "keras", "numpy", "matplotlib", "pillow", "papermill"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def start_lesson(number: str, profile: str = DEFAULT_PROFILE, seed: int = DEFAULT_SEED,
                 run_dir: str | os.PathLike | None = None, data_home: str | os.PathLike | None = None,
                 quiet: bool = False, cpu_devices: int = 1) -> Lesson:
    """Every notebook's setup cell, before ``import keras``: TensorFlow, profile, seed, plots, run folder (default:
    ``runs/interactive-<profile>/``), data home; ``cpu_devices`` above 1 splits the CPU (lessons 02, 05)."""
    settings = profile_settings(profile)
    try:
        check_parameter("SEED", seed, whole=True, minimum=0, maximum=MAX_SEED)
    except ImgrecError as exc:
        raise ImgrecError(f"{exc} (the same number gives the same run)") from None
    check_parameter("CPU_DEVICES", cpu_devices, whole=True, minimum=1, maximum=64)
    import_tensorflow()  # before anything imports TensorFlow: no C++ start-up log in the notebook
    import tensorflow as tf  # here, not at the top: only after import_tensorflow filtered its start-up log
    split_cpu(cpu_devices)  # before TensorFlow runs anything, which fixes its devices
    tf.keras.utils.set_random_seed(int(seed))  # Python's random, NumPy and TensorFlow, as the lessons do in view
    if settings["deterministic"]:
        tf.config.experimental.enable_op_determinism()
    matplotlib.rcParams.update({"figure.dpi": 80, "savefig.dpi": 100, "axes.grid": False, "figure.max_open_warning": 0})
    run = Path(run_dir).expanduser().resolve() if run_dir else REPO_ROOT / "runs" / f"interactive-{profile}"
    try:
        run.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # RUN_DIR is a file, on a read-only disk, ...
        raise os_error(exc, exc.filename or run, "create the run folder") from None
    lesson = Lesson(number=number, profile=profile, seed=seed, run_dir=run,
                    data_home=_check_data_home(data_home), settings=settings)
    if not quiet:
        v = versions()
        print(f"Lesson {number} | profile {profile} | seed {seed} | TensorFlow {v['tensorflow']}, "
              f"Keras {v['keras']} | {hardware.label()}\nrun folder: {run}\ndata home: {lesson.data_home}")
    return lesson
