"""`explain`: why each target of a target group is (or is not) admitted, rule by rule.

TARGET is a target group name or ARN, or `namespace/service` (every target group of it). Live by
default: describes one account-region through boto3's normal credential chain (AWS_ENDPOINT_URL
honoured; read-only calls only). Offline with --inventory FILE (a `snapshot` file). --events
adds CloudTrail files or folders: they attribute each rule to its last change and, with --at,
rebuild the rules as they were at that moment. Exit 2 with one line for an unknown target or
unusable input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from exporter.engine.changes import Change
from exporter.engine.explain import (
    NotExplainable,
    TargetNotFound,
    current_state,
    explain_target_group,
    find_target_groups,
    render_text,
    state_at,
)
from exporter.engine.inventory import Inventory, InventoryError
from exporter.engine.timeutil import format_time, parse_time

EXIT_FAILURE = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """Input that cannot be used (exit 2); the message is one line."""


class AwsFailure(Exception):
    """AWS could not be read; `code` is the exit code (2 unreachable/credentials, 1 otherwise)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class World:
    inventory: Inventory
    changes: list[Change]
    source: str  # "live" | the inventory path


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """TARGET and the live/offline source options shared by `explain` and `plan`."""
    parser.add_argument("target", metavar="TARGET", help="target group name or ARN, or namespace/service")
    parser.add_argument(
        "--inventory", type=Path, help="offline: a file written by `snapshot` (default: live)"
    )
    parser.add_argument(
        "--events",
        nargs="+",
        type=Path,
        default=[],
        metavar="PATH",
        help="CloudTrail files or folders (any wrapper: trail files, LookupEvents results, EventBridge)",
    )
    parser.add_argument("--region", help="live: AWS region (default: AWS_REGION / AWS_DEFAULT_REGION)")
    parser.add_argument("--role-arn", help="live: assume this role first")
    parser.add_argument("--external-id", help="live: external id for --role-arn")
    parser.add_argument("--format", choices=("text", "json"), default="text")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "explain",
        help="show which rules admit each target of a target group, or why not",
        description="For each flow (traffic, health_check) and each target: admitted or not; the rules "
        "that admit it and who last changed them; else the reason and the uncovered CIDRs. Read-only.",
    )
    add_source_arguments(parser)
    parser.add_argument(
        "--at", metavar="TIME", help="ISO 8601 time: the rules as they were then (needs --events)"
    )
    return parser


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def load_changes(paths: list[Path], prog: str) -> list[Change]:
    if not paths:
        return []
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise UsageError(f"no such file or folder: {', '.join(missing)}")
    from exporter.sources.trailfiles import load_paths  # imported late: keeps `--help` light

    parsed = load_paths(paths)
    if parsed.rejections:
        reasons = Counter(r.reason for r in parsed.rejections)
        summary = ", ".join(f"{reason}={count}" for reason, count in sorted(reasons.items()))
        print(f"{prog}: {len(parsed.rejections)} records rejected ({summary})", file=sys.stderr)
    return list(parsed.changes)


def live_inventory(args: argparse.Namespace) -> Inventory:
    """Describe the account-region now (read-only calls), or raise AwsFailure/UsageError."""
    from botocore.exceptions import BotoCoreError, ClientError

    from exporter.commands.snapshot import CREDENTIAL_ERROR_CODES
    from exporter.sources.aws import AwsClients, AwsTarget
    from exporter.sources.inventory import inventory_for

    region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise UsageError("no region: pass --region or set AWS_REGION (or use --inventory)")
    target = AwsTarget(region=region, role_arn=args.role_arn, external_id=args.external_id)
    try:
        return inventory_for(AwsClients(target), datetime.now(UTC))
    except BotoCoreError as exc:
        raise AwsFailure(f"cannot reach AWS: {_one_line(exc)}", EXIT_USAGE) from exc
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in CREDENTIAL_ERROR_CODES:
            raise AwsFailure(f"cannot reach AWS: {_one_line(exc)}", EXIT_USAGE) from exc
        raise AwsFailure(f"AWS error: {_one_line(exc)}", EXIT_FAILURE) from exc


def load_world(args: argparse.Namespace, prog: str) -> World:
    """The inventory (offline file or live describe) and the changes of --events."""
    changes = load_changes(list(args.events), prog)
    if args.inventory is not None:
        from exporter.commands.replay import load_inventory

        try:
            return World(load_inventory(args.inventory), changes, str(args.inventory))
        except InventoryError as exc:
            raise UsageError(_one_line(exc)) from exc
    return World(live_inventory(args), changes, "live")


def parse_at(text: str | None, has_events: bool) -> datetime | None:
    if text is None:
        return None
    if not has_events:
        raise UsageError("--at needs --events: without them the rules are those of the inventory")
    try:
        return parse_time(text)
    except ValueError as exc:
        raise UsageError(f"--at {text!r} is not an ISO 8601 time") from exc


def run(args: argparse.Namespace) -> int:
    prog = "explain"
    try:
        at = parse_at(args.at, bool(args.events))
        world = load_world(args, prog)
        target_groups = find_target_groups(world.inventory, args.target)
        if at is not None:
            state = state_at(world.inventory, world.changes, at)
        else:
            state = current_state(world.inventory, world.changes)
        explanations = [explain_target_group(world.inventory, tg.arn, state, at=at) for tg in target_groups]
    except (UsageError, TargetNotFound, NotExplainable) as exc:
        print(f"{prog}: {_message(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except AwsFailure as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return exc.code
    if args.format == "json":
        document = {
            "query": args.target,
            "source": world.source,
            "inventory_taken_at": format_time(world.inventory.taken_at),
            "at": None if at is None else format_time(at),
            "events": len(world.changes),
            "target_groups": [e.to_dict() for e in explanations],
        }
        print(json.dumps(document, indent=2))
    else:
        print("\n".join(render_text(e) for e in explanations), end="")
    return 0


def _message(exc: BaseException) -> str:
    text = exc.args[0] if isinstance(exc, LookupError) and exc.args else str(exc)
    return " ".join(str(text).split())
