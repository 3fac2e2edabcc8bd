"""`check-config FILE`: validate a configuration file and print the effective settings."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from exporter.commands.common import EXIT_USAGE
from exporter.config import ConfigError, explain, load_settings


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "check-config", help="validate a configuration file and explain the effective settings"
    )
    parser.add_argument("file", help="the YAML configuration file")
    return parser


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.file)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"{args.file}: valid")
    print(explain(settings))
    return 0
