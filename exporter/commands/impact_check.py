"""`replay --impact`: the impact of each closed gap, from NLB metrics and (when given) flow logs.

Reads AWS only when asked: one GetMetricData call per 125 closed gaps, and one bounded
FilterLogEvents read per closed gap when a flow-log group is named.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from exporter.commands.common import UsageError
from exporter.engine.flowlogs import (
    DEFAULT_FORMAT,
    LOG_GROUP_NAME,
    FlowLogFormat,
    FormatError,
    S3Location,
    S3UriError,
)
from exporter.engine.gaps import Gap
from exporter.engine.impact import ImpactResult
from exporter.engine.inventory import Inventory
from exporter.sources.aws import AwsClients, AwsTarget
from exporter.sources.gap_impact import check_gaps
from exporter.textsafe import printable


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--impact",
        action="store_true",
        help="ask AWS for each closed gap's impact: NLB metrics (CloudWatch GetMetricData) and, with "
        "--flow-log-group or --flow-log-s3-uri, VPC Flow Log REJECTs; default off: no call to either",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--flow-log-group", help="the CloudWatch Logs group the VPC Flow Logs go to")
    where.add_argument(
        "--flow-log-s3-uri",
        metavar="S3_URI",
        help="or the S3 location they are delivered to: s3://bucket[/prefix] (text files, gzip)",
    )
    parser.add_argument(
        "--flow-log-format",
        default=DEFAULT_FORMAT,
        help="the flow log's ${field} format (default: the AWS default, version 2)",
    )


def flow_log_format(args: argparse.Namespace) -> FlowLogFormat | None:
    """The checked impact options: the parsed --flow-log-format (None without --impact)."""
    given = args.flow_log_group is not None or args.flow_log_s3_uri is not None
    if not args.impact:
        if given or args.flow_log_format != DEFAULT_FORMAT:
            raise UsageError("--flow-log-group/--flow-log-s3-uri/--flow-log-format: only with --impact")
        return None
    flow_log_s3(args)
    if args.flow_log_group is not None and not LOG_GROUP_NAME.match(args.flow_log_group):
        raise UsageError(
            f"--flow-log-group: not a CloudWatch Logs group name: {printable(args.flow_log_group[:80])}"
        )
    try:
        return FlowLogFormat.parse(args.flow_log_format)
    except FormatError as exc:
        raise UsageError(f"--flow-log-format: {exc}") from exc


def flow_log_s3(args: argparse.Namespace) -> S3Location | None:
    """The checked --flow-log-s3-uri (None when not given)."""
    if args.flow_log_s3_uri is None:
        return None
    try:
        return S3Location.parse(args.flow_log_s3_uri)
    except S3UriError as exc:
        raise UsageError(f"--flow-log-s3-uri: {exc}") from exc


def check(
    inventory: Inventory,
    gaps: Sequence[Gap],
    clients: AwsClients,
    *,
    flow_log_group: str | None,
    fmt: FlowLogFormat,
    now: datetime | None = None,
    warn: Callable[[str], None] = lambda line: None,
    flow_log_s3: S3Location | None = None,
) -> dict[tuple[str, str, str], ImpactResult]:
    """ImpactResult per closed gap key (open gaps are left out: their impact is not known yet)."""
    return check_gaps(
        inventory,
        gaps,
        clients,
        flow_log_group=flow_log_group,
        fmt=fmt,
        now=now or datetime.now(UTC),
        warn=warn,
        flow_log_s3=flow_log_s3,
    )


def clients_for(inventory: Inventory) -> AwsClients:
    """Counted, guarded clients in the inventory's region; raises ValueError when it has none."""
    if not inventory.region:
        raise UsageError("--impact: the inventory names no region: cannot tell where to read")
    return AwsClients(AwsTarget(inventory.region))


def table_cells(result: ImpactResult | None) -> list[str]:
    """The table's impact, peak unhealthy hosts and rejected flows for one gap ("-": none)."""
    if result is None:
        return ["-", "-", "-"]
    return [
        result.impact,
        "-" if result.peak_unhealthy_hosts is None else f"{result.peak_unhealthy_hosts:g}",
        "-" if result.rejected_flows is None else str(result.rejected_flows),
    ]


TABLE_COLUMNS = ("impact", "peak unhealthy", "rejected flows")

__all__ = [
    "UsageError",
    "add_arguments",
    "check",
    "clients_for",
    "flow_log_format",
    "flow_log_s3",
    "table_cells",
]
