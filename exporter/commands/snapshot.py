"""`snapshot`: read one account-region's NLB inventory from AWS and write it as versioned JSON."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from exporter.commands.common import EXIT_FAILURE, CommandError, UsageError, aws_failure, guarded, region_of


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "snapshot",
        help="write the NLB inventory of one account-region as JSON",
        description="Describe the NLBs, target groups, targets, ENIs and security-group rules of one "
        "account-region (read-only calls) and write the inventory JSON. AWS_ENDPOINT_URL is honoured.",
    )
    parser.add_argument("--output", "-o", type=Path, help="write here (default: stdout)")
    parser.add_argument("--region", help="AWS region (default: AWS_REGION / AWS_DEFAULT_REGION)")
    parser.add_argument("--role-arn", help="assume this role first")
    parser.add_argument("--external-id", help="external id for --role-arn")
    return parser


def write_output(data: bytes, output: Path | None) -> None:
    """Write to stdout, or atomically to a file (temp file + rename)."""
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    tmp = output.with_name(f".{output.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, output)


def run(args: argparse.Namespace) -> int:
    return guarded("snapshot", lambda: execute(args))


def execute(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from exporter.sources.aws import AwsClients, AwsTarget
    from exporter.sources.inventory import inventory_for

    region = region_of(args)
    if not region:
        raise UsageError("no region: pass --region or set AWS_REGION")
    target = AwsTarget(region=region, role_arn=args.role_arn, external_id=args.external_id)
    try:
        inventory = inventory_for(AwsClients(target), datetime.now(UTC))
    except (BotoCoreError, ClientError) as exc:
        raise aws_failure(exc) from exc
    data = orjson.dumps(inventory.to_dict(), option=orjson.OPT_INDENT_2) + b"\n"
    try:
        write_output(data, args.output)
    except OSError as exc:
        raise CommandError(f"cannot write {args.output}: {exc.strerror or exc}", EXIT_FAILURE) from exc
    return 0
