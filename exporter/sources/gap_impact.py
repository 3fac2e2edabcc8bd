"""The impact of closed gaps: the evidence of each read (sources/impact.py), then assessed
(engine/impact.py). Shared by `replay --impact` and the daemon's impact job.

Bounded: one GetMetricData call per 125 gaps, and per gap one FilterLogEvents read (at most
MAX_LOG_PAGES pages) with a flow-log group, or with an S3 location the listings of the window's
day folders and at most MAX_OBJECTS flow-log files (sources/s3flowlogs.py). AWS errors leave that
source not read (the gap's impact says so) and are named through `warn`; hostile flow-log lines
likewise.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from datetime import datetime
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from exporter.engine.flowlogs import FlowLogFormat
from exporter.engine.impact import HealthCheck, ImpactResult, MetricEvidence, assess, window_for
from exporter.engine.inventory import Inventory, TargetGroup
from exporter.sources.aws import AwsClients
from exporter.sources.impact import FlowLogRequest, MetricRequest, read_flow_logs, read_metrics
from exporter.sources.s3flowlogs import S3Location, read_flow_logs_s3

#: The controller's health-check defaults for a Service's target group (interval 10 s, thresholds
#: 3 and 3: aws-load-balancer-controller v2.13.0 and v3.5.0 pkg/service/model_builder.go), used when the
#: inventory does not carry the target group's own settings (a snapshot file written before).
CONTROLLER_HEALTH_CHECK = HealthCheck(healthy_threshold=3, unhealthy_threshold=3, interval_seconds=10)


class ClosedGap(Protocol):
    """What the check needs of a gap (engine Gap and the daemon's GapView both have it)."""

    @property
    def key(self) -> Hashable: ...
    @property
    def target_group_arn(self) -> str: ...
    @property
    def target_group(self) -> str: ...
    @property
    def flow(self) -> str: ...
    @property
    def start(self) -> datetime: ...
    @property
    def end(self) -> datetime | None: ...


def health_for(tg: TargetGroup | None) -> HealthCheck:
    """The target group's own health-check timing (DescribeTargetGroups), else the controller's."""
    if tg is None or tg.health_check_timing is None:
        return CONTROLLER_HEALTH_CHECK
    interval, healthy, unhealthy = tg.health_check_timing
    return HealthCheck(healthy_threshold=healthy, unhealthy_threshold=unhealthy, interval_seconds=interval)


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


def check_gaps(
    inventory: Inventory,
    gaps: Sequence[ClosedGap],
    clients: AwsClients,
    *,
    flow_log_group: str | None,
    fmt: FlowLogFormat,
    now: datetime,
    warn: Callable[[str], None] = lambda line: None,
    flow_log_s3: S3Location | None = None,
) -> dict[Any, ImpactResult]:
    """ImpactResult per closed gap key (open gaps are left out: their impact is not known yet).

    The targets, addresses and ports are the inventory's (the latest one for the daemon)."""
    out: dict[Any, ImpactResult] = {}
    closed: list[tuple[ClosedGap, datetime]] = []
    for gap in gaps:
        tg = inventory.target_groups.get(gap.target_group_arn)
        if gap.end is None:
            continue
        if tg is None or not tg.load_balancer_arns:  # no dimensions to ask CloudWatch for
            missing = "target_group_not_in_inventory" if tg is None else "no_load_balancer"
            out[gap.key] = ImpactResult("unknown", (missing,))
        else:
            closed.append((gap, gap.end))
    windows = [
        window_for(gap.start, end, health_for(inventory.target_groups.get(gap.target_group_arn)))
        for gap, end in closed
    ]
    requests = [
        MetricRequest(
            gap.target_group_arn, inventory.target_groups[gap.target_group_arn].load_balancer_arns[0], w
        )
        for (gap, _), w in zip(closed, windows, strict=True)
    ]
    metrics: list[MetricEvidence | None] = [None] * len(requests)
    if requests:
        try:
            metrics = list(read_metrics(clients.client("cloudwatch"), requests))
        except (BotoCoreError, ClientError) as exc:  # counted by the clients; the metrics are not read
            warn(f"impact: NLB metrics not read: {aws_error(exc)}")
    for (gap, _), window, evidence in zip(closed, windows, metrics, strict=True):
        flows = None
        if flow_log_group or flow_log_s3:
            tg = inventory.target_groups[gap.target_group_arn]
            addresses, interfaces = _addresses(inventory, tg)
            request = FlowLogRequest(addresses, interfaces, _ports(tg, gap.flow), window.start, window.end)
            try:
                if flow_log_group:
                    flows, parsed = read_flow_logs(
                        clients.client("logs"), flow_log_group, fmt, request, now=now
                    )
                elif not inventory.account_id:
                    raise _NoAccount
                else:
                    assert flow_log_s3 is not None
                    flows, parsed = read_flow_logs_s3(
                        clients.client("s3"),
                        flow_log_s3,
                        fmt,
                        request,
                        account=inventory.account_id,
                        region=inventory.region,
                        now=now,
                    )
            except (BotoCoreError, ClientError) as exc:
                warn(f"impact: flow logs of {gap.target_group} not read: {aws_error(exc)}")
            except _NoAccount:
                warn(f"impact: flow logs of {gap.target_group} not read: the inventory names no account")
            else:
                if parsed.rejected:
                    reasons = " ".join(f"{k}={v}" for k, v in sorted(parsed.rejected.items()))
                    warn(f"impact: flow-log lines rejected for {gap.target_group}: {reasons}")
        configured = bool(flow_log_group or flow_log_s3)
        out[gap.key] = assess(window, evidence, flows, flow_logs_configured=configured, now=now)
    return out


class _NoAccount(Exception):
    """The S3 flow-log keys need the account id, and the inventory has none."""


def aws_error(exc: Exception) -> str:
    """An AWS error's code (or the exception's type): what a log line or warning names."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code") or type(exc).__name__)
    return type(exc).__name__
