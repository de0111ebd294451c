"""The ``imgrec`` command: ``run``, ``data fetch/check``, ``report``, ``predict``, ``evaluate``, ``bench``, ``lab``.
Errors (bad arguments and paths, checked before TensorFlow starts; what the OS refuses) are one ``error:`` line, exit
status 2; every line printed is one terminal line. A new command: its options in parse_args, its function in _COMMANDS.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
from typing import Any, Callable, NoReturn, Sequence

from .. import applications, sources
from ..errors import ImgrecError, describe_os_error
from ..profiles import DEFAULT_PROFILE, PROFILES
from ..quiet import import_tensorflow
from ..running import MAX_SEED
from . import bench, prediction


class _Parser(argparse.ArgumentParser):
    """argparse with its usage errors as one ``error:`` line (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, _one_line(f"error: {self.prog}: {message}; see {self.prog} --help") + "\n")


def _number(low: float = 0, high: float = math.inf, seconds: bool = False) -> Callable[[str], float]:
    """An argparse type: a whole number in ``low..high``, or with ``seconds`` a positive, finite number."""
    def convert(text: str) -> float:
        try:
            value = float(text) if seconds else int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {'number of seconds' if seconds else 'whole number'}")
        if seconds and not 0 < value < math.inf:
            raise argparse.ArgumentTypeError(f"{text} must be a positive, finite number of seconds, e.g. 3600")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} must " + (f"lie in {low}..{high}" if high < math.inf
                                                                  else f"be at least {low}"))
        return value
    return convert


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """``imgrec`` arguments, a command's options anywhere among its positional ones (``predict M --top 5 IMAGE``)."""
    parser = _Parser(prog="imgrec", description="Image recognition with transfer learning: the course.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands = {name: sub.add_parser(name, help=text) for name, text in [
        ("run", "execute the numbered notebooks headless (papermill)"),
        ("data", "fetch the data the lessons need before a class, or check it"),
        ("report", "(re)build RUN_DIR/report.html"),
        ("predict", "label images with a saved .keras or .tflite model or a pretrained ImageNet model"),
        ("evaluate", "accuracy of a saved .keras classifier on a class-named image folder"),
        ("bench", "measure training and inference speed against plain Keras"),
        ("lab", "copy the lessons into your own folder and open JupyterLab there")]}
    run, data, predict, lab = commands["run"], commands["data"], commands["predict"], commands["lab"]
    data.add_argument("action", choices=["fetch", "check"],
                      help="fetch: download what is missing; check: verify every file against its registered hash")
    for command, lessons, profile, home in (
            (run, "e.g. 01 or 02_cnn_from_scratch", f"how much data and how many epochs (default: {DEFAULT_PROFILE})",
             "datasets and weights"),
            (data, "only these lessons' data", "the profile to fetch for (every profile reads the same files)",
             "where the data goes")):
        command.add_argument("notebooks", nargs="*", metavar="NOTEBOOK", help=f"{lessons} (default: all)")
        command.add_argument("--profile", choices=list(PROFILES), default=DEFAULT_PROFILE, help=profile)
        command.add_argument("--data-home", metavar="DIR", help=f"{home} (default: $IMGREC_DATA_HOME or data/)")
        command.add_argument("--data-mirror", metavar="URL_OR_DIR", help="fetch every file from this URL or folder "
                             "(laid out like a data home), not the public addresses (default: $IMGREC_DATA_MIRROR)")
    run.add_argument("--out", metavar="DIR", help="run folder (default: runs/<timestamp>-<profile>/)")
    run.add_argument("--resume", metavar="RUN_DIR", help="finish a stopped run, skipping completed notebooks")
    run.add_argument("--seed", type=_number(0, MAX_SEED), default=42,
                     help="one seed for Python, NumPy and TensorFlow (default: 42)")
    run.add_argument("--timeout", type=_number(seconds=True), default=3600,
                     help="seconds one cell may run (default: 3600)")
    run.add_argument("--no-report", action="store_true", help="do not write report.html at the end")
    commands["report"].add_argument("run_dir", metavar="RUN_DIR")
    predict.add_argument("model", nargs="?", metavar="MODEL", help="a .keras file saved by the course, a .tflite "
                         "file exported in lesson 07, or a pretrained model name (see --list)")
    predict.add_argument("images", nargs="*", metavar="IMAGE", help="image files (any size or mode), or their folders")
    predict.add_argument("--top", type=_number(1), default=3, metavar="K", help="labels per image (default: 3)")
    predict.add_argument("--json", action="store_true", help="one JSON object per line")
    predict.add_argument("--list", action="store_true", help="list the pretrained model names and their weights")
    predict.add_argument("--data-home", metavar="DIR", help="cached weights (default: $IMGREC_DATA_HOME or data/)")
    commands["evaluate"].add_argument("model", metavar="MODEL", help="a .keras file saved by the course")
    commands["evaluate"].add_argument("folder", metavar="FOLDER", help="FOLDER/<class name>/<images>")
    bench.add_arguments(commands["bench"])  # the options of python -m imgrec_helpers.course.bench
    lab.add_argument("--dir", metavar="DIR", help="your notebooks' folder (default: my-notebooks/ in the repository)")
    lab.add_argument("--port", type=_number(1, 65535), metavar="N", help="JupyterLab's port (default: 8888 or next)")
    lab.add_argument("--no-browser", action="store_true", help="do not open a browser; JupyterLab prints the address")
    lab.add_argument("--print-only", action="store_true", help="copy the lessons, print JupyterLab's command, no more")
    argv = list(sys.argv[1:] if argv is None else argv)
    command = parser.parse_known_args(argv)[0].command  # the command (and -h, unknown commands)
    args = commands[command].parse_intermixed_args(argv[argv.index(command) + 1:])
    args.command = command
    return args


_ESCAPES = {code: f"\\x{code:02x}" for code in [*range(0x20), *range(0x7F, 0xA0)]} | {10: "\\n", 13: "\\r", 9: "\\t"}


def _one_line(text: str) -> str:
    """``text`` as one printable line: control characters (a newline or an escape sequence in a file name)
    become ``\\n``, ``\\x1b``...; a file name's bytes that are not UTF-8 (kept as surrogates) become ``\\xff``."""
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
    if args.list:
        if args.model or args.images:
            raise ImgrecError("imgrec predict --list lists the pretrained models and takes no model or image; "
                              "run it alone, or leave out --list to label images")
        import_tensorflow()
        applications.prepare_keras_cache(sources.data_home(args.data_home))
        for name in applications.APPLICATIONS:
            _print(f"{name:18} {applications.display_name(name):28} {applications.weights_status(name)}")
        return 0
    if not args.model or not args.images:
        raise ImgrecError("usage: imgrec predict MODEL IMAGE [IMAGE ...] [--top K] [--json] (or imgrec predict --list)")
    unreadable = 0
    for image, labels in prediction.predict(args.model, args.images, args.top, args.data_home):
        if _CTRL_C.is_set():
            raise KeyboardInterrupt
        if isinstance(labels, ImgrecError):  # reported in its place; the other images are still labelled
            unreadable += 1
            sys.stdout.flush()
            print(_one_line(f"error: {labels}"), file=sys.stderr, flush=True)
        elif args.json:
            labels = [{**p, "probability": round(p["probability"], 6)} for p in labels]
            _print(json.dumps({"image": str(image), "predictions": labels}))
        else:
            lines = [f"  {p['probability'] * 100:6.2f}%  {p['label']}" + (f" ({p['wnid']})" if "wnid" in p else "")
                     for p in labels]
            _print(str(image), *lines)
    return 2 if unreadable else 0


def _evaluate(args: argparse.Namespace) -> int:
    correct = total = 0
    for name, right, images in prediction.evaluate(args.model, args.folder):
        if _CTRL_C.is_set():
            raise KeyboardInterrupt
        _print(f"{name:20} {right:5d} / {images:<5d} correct")
        correct, total = correct + right, total + images
    _print(f"accuracy {correct / total:.4f} on {total} images")
    return 0


def _course(args: argparse.Namespace) -> int:
    """``imgrec run``, ``data``, ``report`` and ``lab``: one line per need or file for ``data``."""
    from . import lab, report, runner  # 5 s to import (nbformat), which predict, evaluate and bench do without

    if args.command == "report":
        _print(str(report.write_report(args.run_dir)))
        return 0
    if args.command == "lab":
        return lab.start_lab(args.dir or lab.DEFAULT_DIR, port=args.port, open_browser=not args.no_browser,
                             print_only=args.print_only)
    if args.command == "run":
        manifest = runner.run_course(profile=args.profile, out=args.resume or args.out, notebooks=args.notebooks,
                                     seed=args.seed, resume=bool(args.resume), timeout=args.timeout,
                                     data_home=args.data_home, report=not args.no_report)
        return 0 if manifest["status"] == "ok" else 1
    lessons = [p.name for p in runner.select_notebooks(args.notebooks, runner.course_notebooks())]
    home = sources.data_home(args.data_home)
    if args.action == "fetch":
        sources.fetch_needs(lessons, args.data_home, log=_print)
        _print(f"data: ok, everything lessons {', '.join(n[:2] for n in lessons)} need is in {home}")
        return 0
    rows = sources.check(lessons, args.data_home)
    for status, path, detail in rows:
        _print(f"{status:8} {path}: {detail}")
    counts = {s: sum(r[0] == s for r in rows) for s in ("ok", "missing", "corrupt", "extra")}
    if len(rows) > counts["ok"]:
        summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        raise ImgrecError(f"data check: {summary} in {home}; run `imgrec data fetch` for what is missing or corrupt "
                          "(it replaces corrupt files), and move extra photos out of the set folders")
    _print(f"data check: all {counts['ok']} files ok in {home}")
    return 0


_COMMANDS = {"run": _course, "data": _course, "report": _course, "lab": _course, "predict": _predict,
             "evaluate": _evaluate, "bench": lambda args: bench.run(args)}  # CPU options first, then TensorFlow

_INTERRUPTED = {  # what Ctrl-C leaves behind, and what to do next; {where}: the run folder
    "run": "interrupted; finished notebooks are kept; finish the run with imgrec run --resume {where}",
    "predict": "interrupted; the predictions printed above are complete; run imgrec predict again for the other images",
    "evaluate": "interrupted before the accuracy was computed; run imgrec evaluate again",
    "report": "interrupted; the previous report.html is unchanged; run imgrec report {where} again",
    "bench": "interrupted; no benchmark summary was made; run imgrec bench again",
    "data": "interrupted; files fetched so far are kept whole, nothing half-written; run imgrec data fetch again"}

_CTRL_C = threading.Event()
"""Set by :func:`_interrupt`; predict and evaluate check it after each result: Ctrl-C's KeyboardInterrupt raised
inside a finalizer (a TensorFlow object's ``__del__``) is printed as "Exception ignored" and lost."""


def _interrupt(signum: int, frame: object) -> None:
    """The SIGINT handler, and SIGTERM's for ``imgrec run`` (``kill`` stops a run as cleanly as Ctrl-C)."""
    _CTRL_C.set()
    raise KeyboardInterrupt


def _stdout_closed() -> int:
    """A closed pipe (``imgrec predict ... | head``): stop quietly; stdout on /dev/null, or the last flush fails."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    args: Any = None
    for stream in (sys.stdout, sys.stderr):  # what other modules print (a run folder's name) cannot crash either
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    try:
        args = parse_args(argv)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        if args.command == "run":
            signal.signal(signal.SIGTERM, _interrupt)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not where it is ignored (nohup, &)
            signal.signal(signal.SIGINT, _interrupt)
        mirror = getattr(args, "data_mirror", None) or os.environ.get(sources.MIRROR_ENV, "").strip()
        if mirror:  # checked (a folder must exist) and made absolute: the lessons' kernels inherit it
            os.environ[sources.MIRROR_ENV] = sources.check_mirror(mirror)
        if hasattr(args, "data_home") and (args.data_home or os.environ.get(sources.HOME_ENV)):
            sources.check_data_home(args.data_home)  # one that is named must exist, before TensorFlow starts
        return _COMMANDS[args.command](args)
    except BrokenPipeError:
        return _stdout_closed()
    except (ImgrecError, OSError, KeyboardInterrupt) as exc:  # an OSError: what no helper explained
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            _stdout_closed()
        except (OSError, ValueError):
            pass
        if isinstance(exc, KeyboardInterrupt):
            where = getattr(args, "resume", None) or getattr(args, "out", None) or getattr(args, "run_dir", "RUN_DIR")
            text = _INTERRUPTED.get(getattr(args, "command", None), "interrupted").format(where=where)
        else:
            text = str(exc) if isinstance(exc, ImgrecError) else describe_os_error(exc)
        print(_one_line(f"error: {text}"), file=sys.stderr)
        return 130 if isinstance(exc, KeyboardInterrupt) else 2
