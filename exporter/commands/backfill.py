"""`backfill`: read CloudTrail trail files from S3 since a time and print the changes as JSON lines.

One line per change: event_id, event_time, event_name, kind, group_id or target_group_arn, actor,
failed (and in_inventory with --inventory). Progress goes to stderr. Gap replay comes later.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from exporter.commands.common import (
    EXIT_FAILURE,
    EXIT_USAGE,
    CommandError,
    UsageError,
    guarded,
    load_inventory,
    one_line,
    parse_duration,
    region_of,
)
from exporter.engine.changes import (
    INVENTORY_CHANGES,
    AttributeChange,
    Change,
    GroupDeletion,
    RuleChange,
    RuleModification,
)
from exporter.engine.inventory import InventoryError
from exporter.engine.timeutil import format_time
from exporter.reports.words import rule_text


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "backfill",
        help="read CloudTrail trail files from S3 and print the changes found",
        description="List AWSLogs/[o-org/]<account>/CloudTrail/<region>/YYYY/MM/DD/ folders for each day "
        "since --since, parse every file and print one JSON line per change.",
    )
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--prefix", default="", help="key prefix before AWSLogs/")
    parser.add_argument("--since", required=True, help="how far back: 7d, 12h, 1d12h, 30m")
    parser.add_argument("--inventory", type=Path, help="a snapshot file: mark changes that touch it")
    parser.add_argument(
        "--gaps",
        action="store_true",
        help="with --inventory: print the rule gaps rebuilt from the trail (as `replay` does) instead of changes",
    )
    parser.add_argument("--output", "-o", type=Path, help="write JSON lines here (default: stdout)")
    parser.add_argument("--region", help="region of the S3 client (default: AWS_REGION)")
    parser.add_argument("--role-arn", help="assume this role first")
    parser.add_argument("--external-id")
    return parser


def change_line(change: Change, touched: set[str] | None) -> dict[str, Any]:
    meta = change.meta
    line: dict[str, Any] = {
        "event_id": meta.event_id,
        "event_time": format_time(meta.event_time),
        "event_name": meta.event_name,
        "actor": meta.actor.label,
        "failed": meta.failed,
    }
    if isinstance(change, AttributeChange):
        line["kind"] = "attributes"
        line["target_group_arn"] = change.target_group_arn
        line["attributes"] = dict(change.attributes)
        subject = change.target_group_arn
    elif isinstance(change, INVENTORY_CHANGES):
        line["kind"] = "inventory"
        fields = {name: getattr(change, name) for name in change.__struct_fields__ if name != "meta"}
        line.update({k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()})
        subject = str(
            getattr(change, "target_group_arn", None)
            or getattr(change, "load_balancer_arn", None)
            or getattr(change, "eni_id", "")
        )
    else:
        line["kind"] = {RuleChange: "rules", RuleModification: "modification", GroupDeletion: "deletion"}[
            type(change)
        ]
        line["group_id"] = change.group_id
        if isinstance(change, RuleChange):
            line["action"] = change.action
            line["rules"] = [rule_text(r) for r in change.rules]
        subject = change.group_id
    if touched is not None:
        line["in_inventory"] = subject in touched
    return line


class Progress:
    """`files 3/10, records 120` on stderr: redrawn in place on a terminal, a line per 10% otherwise."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._last_decile = -1

    def __call__(self, progress: Any) -> None:
        text = f"backfill: files {progress.files_done}/{progress.files_total}, records {progress.records}"
        done = progress.files_done == progress.files_total
        if self.tty:
            self.stream.write("\r" + text + ("\n" if done else ""))
        else:
            decile = progress.files_done * 10 // max(progress.files_total, 1)
            if decile == self._last_decile and not done:
                return
            self._last_decile = decile
            self.stream.write(text + "\n")
        self.stream.flush()


def run(args: argparse.Namespace) -> int:
    return guarded("backfill", lambda: execute(args), (InventoryError,))


def execute(args: argparse.Namespace) -> int:
    try:
        since = parse_duration(args.since)
    except ValueError as exc:
        raise UsageError(f"--since: {exc}") from exc
    touched: set[str] | None = None
    if args.gaps and args.inventory is None:
        raise UsageError("--gaps needs --inventory (the anchor the timeline is rebuilt from)")
    if args.inventory is not None:
        inventory = load_inventory(args.inventory)
        touched = (
            set(inventory.security_groups)
            | set(inventory.target_groups)
            | set(inventory.load_balancers)
            | set(inventory.network_interfaces)
        )

    from botocore.exceptions import BotoCoreError, ClientError

    from exporter.sources.aws import AwsClients, AwsTarget
    from exporter.sources.s3trail import S3TrailBackfill

    region = region_of(args) or "us-east-1"
    clients = AwsClients(AwsTarget(region=region, role_arn=args.role_arn, external_id=args.external_id))
    now = datetime.now(UTC)
    backfill = S3TrailBackfill(
        clients.client("s3"), args.bucket, since=now - since, now=now, prefix=args.prefix
    )
    out = args.output.open("wb") if args.output else sys.stdout.buffer
    reasons: Counter[str] = Counter()
    written = 0
    collected: list[Change] = []
    try:
        for _obj, result in backfill.run(Progress(sys.stderr)):
            reasons.update(result.rejected)
            for change in sorted(result.changes, key=lambda c: (c.meta.event_time, c.meta.event_id)):
                if change.meta.event_time < now - since:
                    continue
                if args.gaps:
                    collected.append(change)
                    continue
                out.write(orjson.dumps(change_line(change, touched)) + b"\n")
                written += 1
    except (BotoCoreError, ClientError) as exc:
        code = EXIT_USAGE if isinstance(exc, BotoCoreError) else EXIT_FAILURE
        raise CommandError(f"cannot read s3://{args.bucket}: {one_line(exc)}", code) from exc
    finally:
        if args.output:
            out.close()
        else:
            out.flush()
    if args.gaps:
        from exporter.engine.gaps import analyze
        from exporter.engine.triggers import triggers_for
        from exporter.reports.gaps import gap_record

        analysis = analyze(inventory, collected)
        triggers = triggers_for(analysis.gaps, collected)
        with args.output.open("wb") if args.output else nullcontext(sys.stdout.buffer) as sink:
            for gap in analysis.gaps:
                sink.write(orjson.dumps(gap_record(gap, triggers, analysis.end)) + b"\n")
        print(f"backfill: {len(collected)} changes, {len(analysis.gaps)} gaps", file=sys.stderr)
        return 0
    if reasons:
        summary = ", ".join(f"{reason}={count}" for reason, count in sorted(reasons.items()))
        print(f"backfill: {sum(reasons.values())} rejected ({summary})", file=sys.stderr)
    print(f"backfill: {written} changes", file=sys.stderr)
    return 0
