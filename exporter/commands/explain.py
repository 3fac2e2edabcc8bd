"""`explain`: why each target of a target group is (or is not) admitted, rule by rule.

TARGET is a target group name or ARN, or `namespace/service` (every target group of it). Live by
default: describes one account-region through boto3's normal credential chain (AWS_ENDPOINT_URL
honoured; read-only calls only) and reads CloudTrail LookupEvents for the target group's security
groups and attribute changes over --lookback (default 24h; --no-cloudtrail skips it). Offline
with --inventory FILE (a `snapshot` file). --events reads CloudTrail files or folders instead:
they attribute each rule to its last change and, with --at, rebuild the rules as they were at
that moment. Exit 2 for an unknown target, unusable input, or events of which not one record
was usable (each file with rejected records is named on stderr; --verbose: each record).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

from exporter.commands import impact_check
from exporter.commands.common import (
    UsageError,
    aws_failure,
    guarded,
    load_inventory,
    parse_duration,
    region_of,
)
from exporter.commands.trail_input import (
    EventsRead,
    EventsReadJson,
    NoUsableRecords,
    read_files,
    read_lookup_events,
)
from exporter.engine.changes import Change
from exporter.engine.explain import (
    NotExplainable,
    TargetNotFound,
    current_state,
    explain_target_group,
    find_target_groups,
    state_at,
    with_intents,
)
from exporter.engine.flowlogs import FlowLogFormat, S3Location
from exporter.engine.gaps import analyze
from exporter.engine.inventory import Inventory, InventoryError, TargetGroup
from exporter.engine.timeutil import format_optional_time, format_time, parse_time
from exporter.engine.triggers import triggers_for
from exporter.reports.explain import ExplanationJson, explanation_json, explanation_text
from exporter.reports.gaps import GapLine, gap_json, gaps_text
from exporter.sources.ratelimit import LOOKUP_MAX_RETRIES
from exporter.textsafe import printable, printable_fields, printable_lines

#: What explain and plan report as bad input (exit 2), beside commands.common's UsageError.
USAGE_ERRORS: tuple[type[Exception], ...] = (TargetNotFound, NotExplainable, NoUsableRecords, InventoryError)


class ExplainDocument(msgspec.Struct, frozen=True):
    """What `explain --format json` prints (its objects: reports/explain.py)."""

    query: str
    source: str  # "live" | the inventory path
    inventory_taken_at: str
    at: str | None
    events: int
    cloudtrail: EventsReadJson
    target_groups: list[ExplanationJson]


@dataclass
class World:
    inventory: Inventory
    events: EventsRead
    source: str  # "live" | the inventory path
    clients: Any = None  # live: the AwsClients the inventory was read with

    @property
    def changes(self) -> list[Change]:
        return self.events.changes


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
    parser.add_argument(
        "--lookback",
        default="24h",
        metavar="DURATION",
        help="live: how far back LookupEvents reads (7d, 12h, 30m; default 24h)",
    )
    parser.add_argument(
        "--no-cloudtrail", action="store_true", help="live: do not read CloudTrail (last changes unknown)"
    )
    parser.add_argument(
        "--lookup-retries",
        type=int,
        default=None,
        metavar="N",
        help=f"live: retries of a throttled LookupEvents page, with backoff, before that lookup is given "
        f"up and the read reported INCOMPLETE (default {LOOKUP_MAX_RETRIES}; 0 for a quick answer in a "
        "throttling storm)",
    )
    parser.add_argument("--verbose", action="store_true", help="name each rejected record on stderr")
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
        "--at",
        metavar="TIME",
        help="ISO 8601 time: the rules as they were then (needs --events, or live CloudTrail)",
    )
    impact_check.add_arguments(parser)
    return parser


def load_events(args: argparse.Namespace, prog: str) -> EventsRead:
    """The --events files (NoUsableRecords when not one record is usable), or none."""
    paths = list(args.events)
    if not paths:
        return EventsRead("none")
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise UsageError(f"no such file or folder: {', '.join(missing)}")
    return read_files(paths, prog, verbose=bool(getattr(args, "verbose", False)), stream=sys.stderr)


def live_inventory(args: argparse.Namespace) -> tuple[Inventory, Any]:
    """Describe the account-region now (read-only calls), or raise AwsFailure/UsageError."""
    from botocore.exceptions import BotoCoreError, ClientError

    from exporter.sources.aws import AwsClients, AwsTarget
    from exporter.sources.inventory import inventory_for

    region = region_of(args)
    if not region:
        raise UsageError("no region: pass --region or set AWS_REGION (or use --inventory)")
    target = AwsTarget(region=region, role_arn=args.role_arn, external_id=args.external_id)
    clients = AwsClients(target)
    try:
        return inventory_for(clients, datetime.now(UTC)), clients
    except (BotoCoreError, ClientError) as exc:
        raise aws_failure(exc) from exc


def load_world(args: argparse.Namespace, prog: str) -> World:
    """The inventory (offline file or live describe) and the changes of --events."""
    events = load_events(args, prog)
    if args.inventory is not None:
        return World(load_inventory(args.inventory), events, str(args.inventory))
    inventory, clients = live_inventory(args)
    return World(inventory, events, "live", clients)


def lookback(args: argparse.Namespace) -> timedelta:
    try:
        window = parse_duration(args.lookback)
    except ValueError as exc:
        raise UsageError(f"--lookback: {exc}") from exc
    if window > timedelta(days=90):
        raise UsageError("--lookback: LookupEvents keeps 90 days of events at most")
    return window


def lookup_retries(args: argparse.Namespace) -> int | None:
    retries: int | None = args.lookup_retries
    if retries is not None and retries < 0:
        raise UsageError(f"--lookup-retries {retries}: must be 0 or more")
    return retries


def groups_of(inventory: Inventory, target_groups: list[TargetGroup]) -> set[str]:
    """The security groups whose rules decide the target groups: their ENIs' and their NLBs'."""
    groups: set[str] = set()
    for tg in target_groups:
        for target in tg.targets:
            eni = inventory.network_interfaces.get(target.eni_id or "")
            if eni is not None:
                groups.update(eni.security_group_ids)
        for lb_arn in tg.load_balancer_arns:
            lb = inventory.load_balancers.get(lb_arn)
            if lb is not None:
                groups.update(lb.security_groups)
    return groups


def with_live_events(
    world: World, args: argparse.Namespace, target_groups: list[TargetGroup], prog: str
) -> World:
    """Live and no --events: read the target groups' CloudTrail (unless --no-cloudtrail)."""
    if world.clients is None or args.events or args.no_cloudtrail:
        return world
    window = lookback(args)
    events = read_lookup_events(
        world.clients.client("cloudtrail"),
        groups_of(world.inventory, target_groups),
        now=world.inventory.taken_at,
        lookback=window,
        prog=prog,
        stream=sys.stderr,
        max_retries=lookup_retries(args),
    )
    return World(world.inventory, events, world.source, world.clients)


def resolve(args: argparse.Namespace, prog: str) -> tuple[World, list[TargetGroup]]:
    """The world and the target groups TARGET names, with live CloudTrail read for them."""
    if args.inventory is None and not args.events and not args.no_cloudtrail:
        lookback(args)  # a bad --lookback or --lookup-retries fails before any AWS call
        lookup_retries(args)
    world = load_world(args, prog)
    target_groups = list(find_target_groups(world.inventory, args.target))
    return with_live_events(world, args, target_groups, prog), target_groups


def parse_at(text: str | None, has_events: bool) -> datetime | None:
    if text is None:
        return None
    if not has_events:
        raise UsageError(
            "--at needs --events (or live CloudTrail): without them the rules are those of the inventory"
        )
    try:
        return parse_time(text)
    except ValueError as exc:
        raise UsageError(f"--at {text!r} is not an ISO 8601 time") from exc


def run(args: argparse.Namespace) -> int:
    return guarded("explain", lambda: execute(args), USAGE_ERRORS)


def execute(args: argparse.Namespace) -> int:
    prog = "explain"
    fmt = impact_check.flow_log_format(args)
    live_trail = args.inventory is None and not args.no_cloudtrail
    at = parse_at(args.at, bool(args.events) or live_trail)
    world, target_groups = resolve(args, prog)
    if at is not None:
        state = state_at(world.inventory, world.changes, at)
    else:
        state = current_state(world.inventory, world.changes)
    intended = with_intents(world.inventory, world.changes, at)
    explanations = [explain_target_group(intended, tg.arn, state, at=at) for tg in target_groups]
    gaps = gaps_by_target_group(world, at, impact_options(args, fmt))
    if args.format == "json":
        document = ExplainDocument(
            query=args.target,
            source=world.source,
            inventory_taken_at=format_time(world.inventory.taken_at),
            at=format_optional_time(at),
            events=len(world.changes),
            cloudtrail=world.events.to_json(),
            target_groups=[
                explanation_json(e, [line.record() for line in gaps.get(e.target_group_arn, [])])
                for e in explanations
            ],
        )
        print(json.dumps(msgspec.to_builtins(document), indent=2))
    else:
        # values from AWS and CloudTrail shown, never obeyed by the terminal (exporter/textsafe.py)
        print(printable_lines(world.events.summary()))
        text = "\n".join(
            explanation_text(printable_fields(e), events_read=world.events.read_any)
            + gaps_text(printable_fields(gaps.get(e.target_group_arn, [])))
            for e in explanations
        )
        print(printable_lines(text), end="")
    return 0


@dataclass(frozen=True)
class ImpactOptions:
    flow_log_group: str | None
    flow_log_s3: S3Location | None
    fmt: FlowLogFormat


def impact_options(args: argparse.Namespace, fmt: FlowLogFormat | None) -> ImpactOptions | None:
    """--impact's options (None without --impact: no CloudWatch or CloudWatch Logs call)."""
    return None if fmt is None else ImpactOptions(args.flow_log_group, impact_check.flow_log_s3(args), fmt)


def gaps_by_target_group(
    world: World, at: datetime | None, impact: ImpactOptions | None = None
) -> dict[str, list[GapLine]]:
    """The rule gaps the events show (started by `at`), each with its trigger, per target group;
    with `impact`, each closed gap's impact read from AWS (commands/impact_check.py)."""
    if not world.changes:
        return {}
    analysis = analyze(world.inventory, world.changes)
    triggers = triggers_for(analysis.gaps, world.changes, world.inventory.services)
    shown = [gap for gap in analysis.gaps if at is None or gap.start <= at]
    impacts = {}
    if impact is not None and shown:
        impacts = impact_check.check(
            world.inventory,
            shown,
            impact_check.clients_for(world.inventory),
            flow_log_group=impact.flow_log_group,
            flow_log_s3=impact.flow_log_s3,
            fmt=impact.fmt,
            warn=lambda line: print(f"explain: {printable(line)}", file=sys.stderr),
        )
    found: dict[str, list[GapLine]] = {}
    for gap in shown:  # an open gap's impact is not known yet (None)
        line = GapLine(gap_json(gap, triggers, analysis.end), impact is not None, impacts.get(gap.key))
        found.setdefault(gap.target_group_arn, []).append(line)
    return found
