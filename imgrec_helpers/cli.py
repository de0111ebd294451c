"""The ``imgrec`` command: ``run`` the course, ``report`` a run, ``predict`` images, ``bench``.

User errors (missing files, unknown names, unreadable images) are printed as one line starting
with ``error:`` and exit with status 2, without a traceback.
"""
from __future__ import annotations

import argparse
import os
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

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        if args.command == "run":
            from .running import run_course

            out = args.resume or args.out
            manifest = run_course(profile=args.profile, out=out, notebooks=args.notebooks, seed=args.seed,
                                  resume=bool(args.resume), timeout=args.timeout, data_home=args.data_home,
                                  report=not args.no_report)
            return 0 if manifest["status"] == "ok" else 1
        if args.command == "report":
            from .results import write_report

            print(write_report(args.run_dir))
            return 0
    except ImgrecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; finished outputs are kept, resume with imgrec run --resume RUN_DIR", file=sys.stderr)
        return 130
    return 1
