"""The `sg-churn-exporter` command line: one subcommand per module in exporter.commands."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from exporter import __version__
from exporter.commands.common import EXIT_PIPE_CLOSED, EXIT_USAGE

#: Subcommand modules, in help order. A module missing here is not yet built.
COMMANDS = ("run", "demo", "snapshot", "replay", "backfill", "explain", "plan", "check-config")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sg-churn-exporter",
        description="Measure security-group rule gaps behind AWS Network Load Balancers.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"exporter.commands.{name.replace('-', '_')}")
        except ModuleNotFoundError as exc:
            if exc.name != f"exporter.commands.{name.replace('-', '_')}":
                raise
            continue
        sub = module.add_parser(subparsers)
        sub.set_defaults(handler=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        result: int = handler(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # Python flushes stdout again at exit; point it at /dev/null so that flush is quiet too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_PIPE_CLOSED
    return result


if __name__ == "__main__":
    sys.exit(main())
