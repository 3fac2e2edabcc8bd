"""`demo`: the exporter against an embedded AWS (moto) where a scripted controller causes rule gaps."""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any

from exporter.commands.common import EXIT_FAILURE
from exporter.demo.timing import first_gap_text


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value <= 100:
        raise argparse.ArgumentTypeError(f"must be > 0 and <= 100, not {text}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0..65535, not {text}")
    return value


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="watch a scripted preserve_client_ip incident in an embedded AWS (moto)",
        description=(
            "Start an embedded moto server with a small EKS-like cluster (three NLBs), a scripted "
            "controller that flips preserve_client_ip and replaces node security-group rules "
            "(sometimes revoke-first, like the AWS Load Balancer Controller before v2.12), and the "
            "exporter watching it. Needs the `demo` extra (moto). Stop with Ctrl-C."
        ),
    )
    parser.add_argument(
        "--speed",
        type=_speed,
        default=1.0,
        help=f"run the scripted incidents this many times faster (default 1: {first_gap_text()})",
    )
    parser.add_argument(
        "--port", type=_port, default=9877, help="port for the exporter on 127.0.0.1 (default 9877; 0 = free)"
    )
    parser.add_argument(
        "--state-dir", help="folder for the exporter's state (default: a temporary folder removed at exit)"
    )
    parser.add_argument("--seed", type=int, help="random seed for the scripted pauses")
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="info",
        help="the exporter's log level (logs go to stderr)",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    try:
        import moto  # noqa: F401
    except ImportError:
        print(
            "the demo needs moto: install the `demo` extra (pip install 'sg-churn-exporter[demo]')",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    from exporter.demo.app import DemoOptions, run_demo

    options = DemoOptions(
        speed=args.speed, port=args.port, state_dir=args.state_dir, seed=args.seed, log_level=args.log_level
    )

    def say(line: str) -> None:
        # stdout closed (a pipe reader went away): keep running, quietly
        with contextlib.suppress(OSError):
            print(line, flush=True)

    return run_demo(options, say)
