"""The ``imgrec`` command: ``run`` the course, ``report`` a run, ``predict`` images, ``evaluate`` a
model on a labelled folder, ``bench``, and ``lab`` (JupyterLab on the student's own copies).

Errors are one line on standard error, starting with ``error:``, with exit status 2 and no
traceback: bad arguments (argparse's own messages included), missing or unreadable files, unknown
names, and anything the operating system refuses (disk full, read-only, no permission, a name too
long: :func:`imgrec_helpers.errors.describe_os_error`). Arguments and paths are checked before
TensorFlow is imported, and TensorFlow is imported through
:func:`imgrec_helpers.quiet.import_tensorflow`, so no library log comes before that line.
Options may come before, between or after positional arguments
(``imgrec predict MODEL --top 5 --json IMAGE...``). When standard output is closed early
(``imgrec predict ... | head``) the command stops quietly, as Python's documentation advises.
Every line it prints is one terminal line: a file name with a newline, an escape sequence or bytes that
are not UTF-8 is shown with backslash escapes (:func:`_one_line`), never as raw control characters or a
``UnicodeEncodeError``.

To add a command: a ``sub.add_parser`` block in :func:`_parser` and a branch in :func:`_dispatch`.
"""
from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import threading
from typing import Any, NoReturn, Sequence

from ..errors import ImgrecError, describe_os_error
from ..profiles import DEFAULT_PROFILE, PROFILES


class _Parser(argparse.ArgumentParser):
    """argparse with its usage errors as one ``error:`` line (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, _one_line(f"error: {self.prog}: {message}; see {self.prog} --help") + "\n")


def _whole_number(text: str, low: int, high: int | None = None) -> int:
    """``text`` as an int in ``low..high`` (no upper bound when ``high`` is None), for argparse."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < low or (high is not None and value > high):
        raise argparse.ArgumentTypeError(f"{text} must be at least {low}" if high is None
                                         else f"{text} must lie in {low}..{high}")
    return value


def _positive_int(text: str) -> int:
    return _whole_number(text, 1)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be a positive, finite number of seconds, e.g. 3600")
    return value


def _port(text: str) -> int:
    return _whole_number(text, 1, 65535)


def _seed(text: str) -> int:
    from ..running import MAX_SEED  # the rule start_lesson applies to a notebook's SEED

    return _whole_number(text, 0, MAX_SEED)


_MIRROR_HELP = ("fetch every file from this base URL or folder (laid out like a data home) instead of the public "
                "addresses (default: $IMGREC_DATA_MIRROR)")


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = _Parser(prog="imgrec", description="Image recognition with transfer learning: the course.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="execute the numbered notebooks headless (papermill)")
    run.add_argument("notebooks", nargs="*", metavar="NOTEBOOK", help="e.g. 01 or 02_cnn_from_scratch (default: all)")
    run.add_argument("--profile", choices=list(PROFILES), default=DEFAULT_PROFILE,
                     help=f"how much data and how many epochs (default: {DEFAULT_PROFILE})")
    run.add_argument("--out", metavar="DIR", help="run folder (default: runs/<timestamp>-<profile>/)")
    run.add_argument("--resume", metavar="RUN_DIR", help="finish a stopped run, skipping completed notebooks")
    run.add_argument("--seed", type=_seed, default=42, help="one seed for Python, NumPy and TensorFlow (default: 42)")
    run.add_argument("--timeout", type=_seconds, default=3600, help="seconds allowed per notebook (default: 3600)")
    run.add_argument("--data-home", metavar="DIR", help="datasets and weights (default: $IMGREC_DATA_HOME or data/)")
    run.add_argument("--data-mirror", metavar="URL_OR_DIR", help=_MIRROR_HELP)
    run.add_argument("--no-report", action="store_true", help="do not write report.html at the end")

    data_cmd = sub.add_parser("data", help="fetch the data the lessons need before a class, or check it")
    data_cmd.add_argument("action", choices=["fetch", "check"], help="fetch: download what is missing; "
                          "check: verify every file against its registered hash")
    data_cmd.add_argument("notebooks", nargs="*", metavar="NOTEBOOK", help="only these lessons' data (default: all)")
    data_cmd.add_argument("--profile", choices=list(PROFILES), default=DEFAULT_PROFILE,
                          help="the profile to fetch for (every profile reads the same files)")
    data_cmd.add_argument("--data-home", metavar="DIR", help="where the data goes (default: $IMGREC_DATA_HOME or data/)")
    data_cmd.add_argument("--data-mirror", metavar="URL_OR_DIR", help=_MIRROR_HELP)

    report = sub.add_parser("report", help="(re)build RUN_DIR/report.html")
    report.add_argument("run_dir", metavar="RUN_DIR")

    predict = sub.add_parser("predict", help="label images with a saved .keras or .tflite model or a pretrained "
                             "ImageNet model")
    predict.add_argument("model", nargs="?", metavar="MODEL",
                         help="a .keras file saved by the course, a .tflite file exported in lesson 07, or a "
                              "pretrained model name (see --list)")
    predict.add_argument("images", nargs="*", metavar="IMAGE", help="image files (any size or mode), or folders of them")
    predict.add_argument("--top", type=_positive_int, default=3, metavar="K", help="how many labels per image (default: 3)")
    predict.add_argument("--json", action="store_true", help="one JSON object per line")
    predict.add_argument("--list", action="store_true", help="list the pretrained model names and their weights")
    predict.add_argument("--data-home", metavar="DIR", help="where cached weights are (default: $IMGREC_DATA_HOME or data/)")

    evaluate = sub.add_parser("evaluate", help="accuracy of a saved .keras classifier on a class-named image folder")
    evaluate.add_argument("model", metavar="MODEL", help="a .keras file saved by the course")
    evaluate.add_argument("folder", metavar="FOLDER", help="FOLDER/<class name>/<images>, class names as the model's")

    from .bench import add_arguments as add_bench_arguments  # the same options as python -m imgrec_helpers.course.bench

    add_bench_arguments(sub.add_parser("bench", help="measure training and inference speed against plain Keras"))

    lab = sub.add_parser("lab", help="copy the lessons into your own folder and open JupyterLab there")
    lab.add_argument("--dir", metavar="DIR", help="your notebooks' folder (default: my-notebooks/ in the repository)")
    lab.add_argument("--port", type=_port, metavar="N", help="JupyterLab's port (default: JupyterLab's, 8888 or the next free)")
    lab.add_argument("--no-browser", action="store_true", help="do not open a browser; JupyterLab prints the address")
    lab.add_argument("--print-only", action="store_true", help="copy the lessons, print the JupyterLab command, start nothing")

    return parser, sub.choices


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse ``imgrec`` arguments; each command's options may be mixed with its positional arguments
    (argparse's intermixed parsing, e.g. ``imgrec predict MODEL --top 5 IMAGE...``)."""
    parser, commands = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args, _ = parser.parse_known_args(argv)  # the command (and -h, unknown commands)
    rest = argv[argv.index(args.command) + 1:]
    command_args = commands[args.command].parse_intermixed_args(rest)
    command_args.command = args.command
    return command_args


def _data_home_checked(given: str | None) -> None:
    """A data home named by --data-home or IMGREC_DATA_HOME must exist (before TensorFlow starts)."""
    if given or os.environ.get("IMGREC_DATA_HOME"):
        from ..sources import check_data_home

        check_data_home(given)


_ESCAPES = {code: f"\\x{code:02x}" for code in [*range(0x20), *range(0x7F, 0xA0)]}
_ESCAPES.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})


def _one_line(text: str) -> str:
    """``text`` as one printable line: control characters (a newline or a terminal escape sequence in a
    file name) become ``\\n``, ``\\x1b``, ...; bytes of a file name that are not UTF-8 (which Python keeps as
    surrogates, and a UTF-8 terminal cannot print) become ``\\xff``. Other text is returned as it is."""
    if text.isprintable():
        return text
    try:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that did not come from a file name's byte
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text.translate(_ESCAPES)


def _print(*lines: str) -> None:
    for line in lines:
        print(_one_line(line))
    sys.stdout.flush()  # each result as soon as it is ready (and a closed pipe noticed at once)


def _predict(args: argparse.Namespace) -> int:
    import json

    from ..quiet import import_tensorflow

    _data_home_checked(args.data_home)
    if args.list:
        if args.model or args.images:
            raise ImgrecError("imgrec predict --list lists the pretrained models and takes no model or image; "
                              "run it alone, or leave out --list to label images")
        import_tensorflow()
        from .. import applications, sources, weights

        weights.prepare_keras_cache(sources.data_home(args.data_home))
        for name in applications.APPLICATIONS:
            _print(f"{name:18} {applications.display_name(name):28} {applications.weights_status(name)}")
        return 0
    if not args.model or not args.images:
        raise ImgrecError("usage: imgrec predict MODEL IMAGE [IMAGE ...] [--top K] [--json] (or imgrec predict --list)")
    from .prediction import check_model_spec

    kind = check_model_spec(args.model)  # a readable .keras or .tflite file or a known name, before TensorFlow starts
    images = _image_files(args.images)  # every path exists, before a model is loaded
    if kind != "litert":  # a .tflite file runs in the LiteRT interpreter: no TensorFlow to start
        import_tensorflow()
    from .prediction import load_predictor

    predictor = load_predictor(args.model, args.data_home)
    unreadable = 0
    for image, result in predictor.predict_files(images, args.top):
        _stop_if_ctrl_c()
        if isinstance(result, ImgrecError):  # reported in its place; the other images are still labelled
            unreadable += 1
            sys.stdout.flush()
            print(_one_line(f"error: {result}"), file=sys.stderr, flush=True)
        elif args.json:
            _print(json.dumps({"image": str(image), "predictions": [p.as_dict() for p in result]}))
        else:
            _print(str(image), *(f"  {p.probability * 100:6.2f}%  {p.label}" + (f" ({p.wnid})" if p.wnid else "")
                                 for p in result))
    return 2 if unreadable else 0


def _image_files(arguments: Sequence[str]) -> list[str]:
    """``imgrec predict``'s image arguments as files: a folder stands for the image files directly in it
    (sorted, by extension); every file must exist. One-line error for a missing path or an image-less folder."""
    from ..data import IMAGE_EXTENSIONS, check_image_file, list_images

    files: list[str] = []
    for argument in arguments:
        if os.path.isdir(argument):
            found = list_images(argument)
            if not found:
                raise ImgrecError(f"{argument}: a folder with no image files in it ({', '.join(IMAGE_EXTENSIONS)}); "
                                  "pass image files or a folder of them")
            files.extend(str(p) for p in found)
        else:
            check_image_file(argument)
            files.append(argument)
    return files


def _evaluate(args: argparse.Namespace) -> int:
    from ..persistence import check_model_file, read_model_info
    from .prediction import evaluate_folder, evaluation_folders, load_predictor
    from ..quiet import import_tensorflow

    if not args.model.endswith(".keras") and not os.path.exists(args.model):
        raise ImgrecError(f"{args.model}: no such .keras file; evaluate scores a classifier saved by the course "
                          "(e.g. runs/.../models/alpaca.keras), not a pretrained model name")
    path = check_model_file(args.model)  # before TensorFlow starts: the file, its class names, the folders
    names = read_model_info(path).get("class_names")
    if not names:
        raise ImgrecError(f"{path}: has no class names stored; evaluate needs a classifier saved with "
                          "persistence.save_model(..., class_names=...)")
    evaluation_folders(path.name, names, args.folder)
    import_tensorflow()

    def progress(name: str, correct: int, total: int) -> None:
        _stop_if_ctrl_c()
        _print(f"{name:20} {correct:5d} / {total:<5d} correct")

    scores = evaluate_folder(load_predictor(args.model), args.folder, progress=progress)
    _print(f"accuracy {scores['accuracy']:.4f} on {scores['images']} images")
    return 0


def _data(args: argparse.Namespace) -> int:
    """``imgrec data fetch`` / ``imgrec data check``: one line per need or file; exit 1 when something is wrong."""
    from .. import sources
    from .runner import course_notebooks, select_notebooks

    lessons = [p.name for p in select_notebooks(args.notebooks, course_notebooks())]
    if args.action == "fetch":
        sources.fetch_needs(lessons, args.data_home, log=_print)
        _print(f"data: ok, everything lessons {', '.join(n[:2] for n in lessons)} need is in "
               f"{sources.data_home(args.data_home)}")
        return 0
    rows = sources.check(lessons, args.data_home)
    for status, path, detail in rows:
        _print(f"{status:8} {path}: {detail}")
    problems = [r for r in rows if r[0] != "ok"]
    counts = {s: sum(r[0] == s for r in rows) for s in ("ok", "missing", "corrupt", "extra")}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    if problems:
        raise ImgrecError(f"data check: {summary} in {sources.data_home(args.data_home)}; run `imgrec data fetch` "
                          "for what is missing or corrupt (it replaces corrupt files), and move extra photos out "
                          "of the set folders")
    _print(f"data check: all {counts['ok']} files ok in {sources.data_home(args.data_home)}")
    return 0


def _dispatch(args: argparse.Namespace) -> int:
    from ..sources import MIRROR_ENV, check_mirror

    given = getattr(args, "data_mirror", None) or os.environ.get(MIRROR_ENV, "").strip()
    if given:  # checked (a folder must exist) and made absolute: the lessons' kernels inherit it, in notebooks/
        os.environ[MIRROR_ENV] = check_mirror(given)
    if args.command == "data":
        _data_home_checked(args.data_home)
        return _data(args)
    if args.command == "run":
        from .runner import run_course

        _data_home_checked(args.data_home)
        out = args.resume or args.out
        manifest = run_course(profile=args.profile, out=out, notebooks=args.notebooks, seed=args.seed,
                              resume=bool(args.resume), timeout=args.timeout, data_home=args.data_home,
                              report=not args.no_report)
        return 0 if manifest["status"] == "ok" else 1
    if args.command == "predict":
        return _predict(args)
    if args.command == "evaluate":
        return _evaluate(args)
    if args.command == "bench":
        from . import bench

        _data_home_checked(args.data_home)
        # bench.run applies the CPU settings and starts TensorFlow quietly itself: settings such as
        # --emulate-avx2 must come before TensorFlow is imported
        return bench.run(args)
    if args.command == "report":
        from .report import write_report

        _print(str(write_report(args.run_dir)))
        return 0
    if args.command == "lab":
        from . import lab

        return lab.start_lab(args.dir or lab.DEFAULT_DIR, port=args.port, open_browser=not args.no_browser,
                             print_only=args.print_only)
    return 1


def _interrupted(args: Any) -> str:
    """What Ctrl-C leaves behind, and what to do next, for each command."""
    command = getattr(args, "command", None)
    if command == "run":
        where = args.resume or args.out or "RUN_DIR"
        return f"interrupted; finished notebooks are kept; finish the run with imgrec run --resume {where}"
    if command == "predict":
        return "interrupted; the predictions printed above are complete; run imgrec predict again for the other images"
    if command == "evaluate":
        return "interrupted before the accuracy was computed; run imgrec evaluate again"
    if command == "report":
        return f"interrupted; the previous report.html is unchanged; run imgrec report {args.run_dir} again"
    if command == "bench":
        return "interrupted; no benchmark summary was made; run imgrec bench again"
    if command == "data":
        return "interrupted; files fetched so far are kept whole, nothing half-written; run imgrec data fetch again"
    return "interrupted"


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


_CTRL_C = threading.Event()
"""Set by :func:`_on_ctrl_c`: the long loops (predict, evaluate) check it after each result. Python raises
Ctrl-C's KeyboardInterrupt in whatever code runs at that moment; when that is a finalizer (a TensorFlow
object's ``__del__``), Python prints "Exception ignored" and goes on, and the command would run to its end."""


def _on_ctrl_c(signum: int, frame: object) -> None:
    _CTRL_C.set()
    raise KeyboardInterrupt


def _stop_if_ctrl_c() -> None:
    """Raise KeyboardInterrupt if Ctrl-C was pressed, also when its first raise was swallowed."""
    if _CTRL_C.is_set():
        raise KeyboardInterrupt


def _stdout_closed() -> int:
    """Python's documented handling of a closed pipe (``imgrec predict ... | head``): stop quietly,
    pointing standard output at /dev/null so the interpreter's last flush does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    args: Any = None
    for stream in (sys.stdout, sys.stderr):  # what other modules print (a run folder's name) cannot crash either
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    try:
        args = parse_args(argv)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        if args.command == "run":  # `kill` stops a run as cleanly as Ctrl-C does
            signal.signal(signal.SIGTERM, _interrupt)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not where it is ignored (nohup, &)
            signal.signal(signal.SIGINT, _on_ctrl_c)
        return _dispatch(args)
    except ImgrecError as exc:
        _flush_quietly()
        print(_one_line(f"error: {exc}"), file=sys.stderr)
        return 2
    except BrokenPipeError:
        return _stdout_closed()
    except OSError as exc:  # anything the operating system refused that no helper explained
        _flush_quietly()
        print(_one_line(f"error: {describe_os_error(exc)}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _flush_quietly()
        print(_one_line(f"error: {_interrupted(args)}"), file=sys.stderr)
        return 130


def _flush_quietly() -> None:
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _stdout_closed()
    except (OSError, ValueError):
        pass
