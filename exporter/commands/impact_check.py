"""`replay --impact`: the impact of each closed gap, from NLB metrics and (when given) flow logs.

Reads AWS only when asked: one GetMetricData call per 125 closed gaps, and one bounded
FilterLogEvents read per closed gap when a flow-log group is named.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from botocore.exceptions import BotoCoreError, ClientError

from exporter.commands.common import UsageError
from exporter.engine.flowlogs import DEFAULT_FORMAT, FlowLogFormat, FormatError
from exporter.engine.gaps import Gap
from exporter.engine.impact import HealthCheck, ImpactResult, MetricEvidence, assess, window_for
from exporter.engine.inventory import Inventory, TargetGroup
from exporter.sources.aws import AwsClients, AwsTarget
from exporter.sources.impact import FlowLogRequest, MetricRequest, read_flow_logs, read_metrics
from exporter.textsafe import printable

#: The controller's health-check defaults for a Service's target group (interval 10 s, thresholds
#: 3 and 3: aws-load-balancer-controller v2.13.0 pkg/service/model_builder.go); the inventory
#: snapshot does not carry a target group's own settings yet.
CONTROLLER_HEALTH_CHECK = HealthCheck(healthy_threshold=3, unhealthy_threshold=3, interval_seconds=10)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--impact",
        action="store_true",
        help="ask AWS for each closed gap's impact: NLB metrics (CloudWatch GetMetricData) and, with "
        "--flow-log-group, VPC Flow Log REJECTs (FilterLogEvents); default off: replay stays offline",
    )
    parser.add_argument("--flow-log-group", help="the CloudWatch Logs group the VPC Flow Logs go to")
    parser.add_argument(
        "--flow-log-format",
        default=DEFAULT_FORMAT,
        help="the flow log's ${field} format (default: the AWS default, version 2)",
    )


#: CloudWatch Logs API reference, CreateLogGroup: logGroupName is 1-512 of [.-_/#A-Za-z0-9].
LOG_GROUP_NAME = re.compile(r"^[.\-_/#A-Za-z0-9]{1,512}$")


def flow_log_format(args: argparse.Namespace) -> FlowLogFormat | None:
    """The checked impact options: the parsed --flow-log-format (None without --impact)."""
    given = args.flow_log_group is not None or args.flow_log_format != DEFAULT_FORMAT
    if not args.impact:
        if given:
            raise UsageError("--flow-log-group/--flow-log-format: only with --impact")
        return None
    if args.flow_log_group is not None and not LOG_GROUP_NAME.match(args.flow_log_group):
        raise UsageError(
            f"--flow-log-group: not a CloudWatch Logs group name: {printable(args.flow_log_group[:80])}"
        )
    try:
        return FlowLogFormat.parse(args.flow_log_format)
    except FormatError as exc:
        raise UsageError(f"--flow-log-format: {exc}") from exc


def _ports(tg: TargetGroup, flow: str) -> frozenset[int]:
    ports = {target.port for target in tg.targets}
    if flow == "health_check" and tg.health_check_port.isdigit():
        return frozenset({int(tg.health_check_port)})
    return frozenset(ports or {tg.port})


def _addresses(inventory: Inventory, tg: TargetGroup) -> tuple[frozenset[str], frozenset[str]]:
    addresses: set[str] = set()
    interfaces: set[str] = set()
    for target in tg.targets:
        if tg.target_type == "ip":
            addresses.add(target.target_id)
        eni = inventory.network_interfaces.get(target.eni_id or "")
        if eni is not None:
            interfaces.add(eni.eni_id)
            if tg.target_type != "ip":
                addresses.update(eni.private_ips[:1])  # NLB -> instance: the primary address
    return frozenset(addresses), frozenset(interfaces)


def check(
    inventory: Inventory,
    gaps: Sequence[Gap],
    clients: AwsClients,
    *,
    flow_log_group: str | None,
    fmt: FlowLogFormat,
    now: datetime | None = None,
    health: HealthCheck = CONTROLLER_HEALTH_CHECK,
    warn: Callable[[str], None] = lambda line: None,
) -> dict[tuple[str, str, str], ImpactResult]:
    """ImpactResult per closed gap key (open gaps are left out: their impact is not known yet)."""
    moment = now or datetime.now(UTC)
    out: dict[tuple[str, str, str], ImpactResult] = {}
    closed = []
    for gap in gaps:
        tg = inventory.target_groups.get(gap.target_group_arn)
        if gap.end is None:
            continue
        if tg is None or not tg.load_balancer_arns:  # no dimensions to ask CloudWatch for
            missing = "target_group_not_in_inventory" if tg is None else "no_load_balancer"
            out[gap.key] = ImpactResult("unknown", (missing,))
        else:
            closed.append(gap)
    windows = [window_for(gap.start, gap.end, health) for gap in closed if gap.end is not None]
    requests = [
        MetricRequest(
            gap.target_group_arn, inventory.target_groups[gap.target_group_arn].load_balancer_arns[0], w
        )
        for gap, w in zip(closed, windows, strict=True)
    ]
    metrics: list[MetricEvidence | None] = [None] * len(requests)
    if requests:
        try:
            metrics = list(read_metrics(clients.client("cloudwatch"), requests))
        except (BotoCoreError, ClientError) as exc:  # counted by the clients; the metrics are not read
            warn(f"impact: NLB metrics not read: {_error(exc)}")
    for gap, window, evidence in zip(closed, windows, metrics, strict=True):
        flows = None
        if flow_log_group:
            tg = inventory.target_groups[gap.target_group_arn]
            addresses, interfaces = _addresses(inventory, tg)
            request = FlowLogRequest(addresses, interfaces, _ports(tg, gap.flow), window.start, window.end)
            try:
                flows, parsed = read_flow_logs(
                    clients.client("logs"), flow_log_group, fmt, request, now=moment
                )
            except (BotoCoreError, ClientError) as exc:
                warn(f"impact: flow logs of {gap.target_group} not read: {_error(exc)}")
            else:
                if parsed.rejected:
                    reasons = " ".join(f"{k}={v}" for k, v in sorted(parsed.rejected.items()))
                    warn(f"impact: flow-log lines rejected for {gap.target_group}: {reasons}")
        out[gap.key] = assess(window, evidence, flows, flow_logs_configured=bool(flow_log_group), now=moment)
    return out


def _error(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code") or type(exc).__name__)
    return type(exc).__name__


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

__all__ = ["UsageError", "add_arguments", "check", "clients_for", "flow_log_format", "table_cells"]
