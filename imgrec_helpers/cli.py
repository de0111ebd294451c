"""The ``imgrec`` command: ``run`` the course, ``report`` a run, ``predict`` images, ``evaluate`` a
model on a labelled folder, ``bench``, and ``lab`` (JupyterLab on the student's own copies).

User errors (missing files, unknown names, unreadable images) are printed as one line starting
with ``error:`` and exit with status 2, without a traceback.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Sequence

from .errors import ImgrecError
from .profiles import DEFAULT_PROFILE, PROFILES


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imgrec", description="Image recognition with transfer learning: the course.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="execute the numbered notebooks headless (papermill)")
    run.add_argument("notebooks", nargs="*", metavar="NOTEBOOK", help="e.g. 01 or 02_cnn_from_scratch (default: all)")
    run.add_argument("--profile", choices=list(PROFILES), default=DEFAULT_PROFILE,
                     help=f"how much data and how many epochs (default: {DEFAULT_PROFILE})")
    run.add_argument("--out", metavar="DIR", help="run folder (default: runs/<timestamp>-<profile>/)")
    run.add_argument("--resume", metavar="RUN_DIR", help="finish a stopped run, skipping completed notebooks")
    run.add_argument("--seed", type=int, default=42, help="one seed for Python, NumPy and TensorFlow (default: 42)")
    run.add_argument("--timeout", type=float, default=3600, help="seconds allowed per notebook (default: 3600)")
    run.add_argument("--data-home", metavar="DIR", help="datasets and weights (default: $IMGREC_DATA_HOME or data/)")
    run.add_argument("--no-report", action="store_true", help="do not write report.html at the end")

    report = sub.add_parser("report", help="(re)build RUN_DIR/report.html")
    report.add_argument("run_dir", metavar="RUN_DIR")

    predict = sub.add_parser("predict", help="label images with a saved .keras model or a pretrained ImageNet model")
    predict.add_argument("model", nargs="?", metavar="MODEL",
                         help="a .keras file saved by the course, or a pretrained model name (see --list)")
    predict.add_argument("images", nargs="*", metavar="IMAGE", help="image files (any size or mode)")
    predict.add_argument("--top", type=int, default=3, metavar="K", help="how many labels per image (default: 3)")
    predict.add_argument("--json", action="store_true", help="one JSON object per line")
    predict.add_argument("--list", action="store_true", help="list the pretrained model names and their weights")
    predict.add_argument("--data-home", metavar="DIR", help="where cached weights are (default: $IMGREC_DATA_HOME or data/)")

    evaluate = sub.add_parser("evaluate", help="accuracy of a saved .keras classifier on a class-named image folder")
    evaluate.add_argument("model", metavar="MODEL", help="a .keras file saved by the course")
    evaluate.add_argument("folder", metavar="FOLDER", help="FOLDER/<class name>/<images>, class names as the model's")

    bench = sub.add_parser("bench", help="measure training and inference speed against plain Keras")
    bench.add_argument("--quick", action="store_true", help="smaller measurements: under 10 minutes on 2 cores")
    bench.add_argument("--data-home", metavar="DIR", help="datasets and weights (default: $IMGREC_DATA_HOME or data/)")

    lab = sub.add_parser("lab", help="copy the lessons into your own folder and open JupyterLab there")
    lab.add_argument("--dir", metavar="DIR", help="your notebooks' folder (default: my-notebooks/ in the repository)")
    lab.add_argument("--port", type=int, metavar="N", help="JupyterLab's port (default: JupyterLab's, 8888 or the next free)")
    lab.add_argument("--no-browser", action="store_true", help="do not open a browser; JupyterLab prints the address")
    lab.add_argument("--print-only", action="store_true", help="copy the lessons, print the JupyterLab command, start nothing")

    return parser


def _predict(args: argparse.Namespace) -> int:
    import json

    from .data import check_image_file, data_home

    if args.list:
        from . import pretrained

        pretrained.prepare_keras_cache(data_home(args.data_home))
        for name in pretrained.APPLICATIONS:
            print(f"{name:18} {pretrained.display_name(name):28} {pretrained.weights_status(name)}")
        return 0
    if not args.model or not args.images:
        raise ImgrecError("usage: imgrec predict MODEL IMAGE [IMAGE ...] (or imgrec predict --list)")
    if args.top < 1:
        raise ImgrecError("--top must be at least 1")
    for image in args.images:  # check every path before loading a model
        check_image_file(image)
    from .prediction import load_predictor

    predictor = load_predictor(args.model, args.data_home)
    for image in args.images:
        predictions = predictor.predict_file(image, args.top)
        if args.json:
            print(json.dumps({"image": image, "predictions": [p.as_dict() for p in predictions]}), flush=True)
        else:
            print(image)
            for p in predictions:
                wnid = f" ({p.wnid})" if p.wnid else ""
                print(f"  {p.probability * 100:6.2f}%  {p.label}{wnid}")
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.command == "run":  # `kill` stops a run as cleanly as Ctrl-C does
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        if args.command == "run":
            from .running import run_course

            out = args.resume or args.out
            manifest = run_course(profile=args.profile, out=out, notebooks=args.notebooks, seed=args.seed,
                                  resume=bool(args.resume), timeout=args.timeout, data_home=args.data_home,
                                  report=not args.no_report)
            return 0 if manifest["status"] == "ok" else 1
        if args.command == "predict":
            return _predict(args)
        if args.command == "evaluate":
            from .prediction import evaluate_folder, load_predictor

            scores = evaluate_folder(load_predictor(args.model), args.folder)
            for name, (correct, total) in scores["per_class"].items():
                print(f"{name:20} {correct:5d} / {total:<5d} correct")
            print(f"accuracy {scores['accuracy']:.4f} on {scores['images']} images")
            return 0
        if args.command == "bench":
            from . import bench

            return bench.main((["--quick"] if args.quick else []) + (["--data-home", args.data_home] if args.data_home else []))
        if args.command == "lab":
            from . import lab

            return lab.start_lab(args.dir or lab.DEFAULT_DIR, port=args.port, open_browser=not args.no_browser,
                                 print_only=args.print_only)
        if args.command == "report":
            from .report import write_report

            print(write_report(args.run_dir))
            return 0
    except ImgrecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; finished outputs are kept, resume with imgrec run --resume RUN_DIR", file=sys.stderr)
        return 130
    return 1
