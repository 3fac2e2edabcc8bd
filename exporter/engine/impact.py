"""Impact of a closed rule gap: did the NLB's own metrics or the VPC Flow Logs see harm?

Pure: the caller reads the evidence (sources/impact.py) and passes it in with `now`. The answer
is `confirmed` (unhealthy hosts rose above the level before the gap, or flows to a target were
rejected), `none_seen` (every source was read, has data for the whole window, and shows nothing)
or `unknown` (a source was not read, not configured, or has no data for the window yet). Never a
guess: a missing source is named in `missing`.

The window is the gap plus the health-check settle time: a target marked unhealthy during the gap
is marked healthy again only after HealthyThresholdCount consecutive passing checks, one every
HealthCheckIntervalSeconds (AWS ELB docs, "Health checks for Network Load Balancer target groups").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, get_args

Impact = Literal["confirmed", "none_seen", "unknown"]
IMPACTS: tuple[Impact, ...] = get_args(Impact)

#: CloudWatch's finest standard resolution for AWS/NetworkELB: one datapoint per minute.
METRIC_PERIOD = timedelta(minutes=1)
#: Flow log records reach CloudWatch Logs after their aggregation interval (up to 10 minutes)
#: plus a delivery delay (AWS VPC docs, "Flow log records"): before this, no REJECT is not news.
FLOW_LOG_DELIVERY_LAG = timedelta(minutes=15)


@dataclass(frozen=True)
class HealthCheck:
    """A target group's health-check cadence (defaults: the controller's, v2.13.0 and v3.5.0
    pkg/service/model_builder.go: interval 10 s, healthy and unhealthy thresholds 3)."""

    healthy_threshold: int = 3
    unhealthy_threshold: int = 3
    interval_seconds: int = 10

    def __post_init__(self) -> None:
        if self.healthy_threshold < 1 or self.unhealthy_threshold < 1 or self.interval_seconds < 1:
            raise ValueError("health-check thresholds and interval must be positive")

    @property
    def settle(self) -> timedelta:
        """How long after the gap closed a target marked unhealthy can still show as unhealthy."""
        return timedelta(seconds=self.healthy_threshold * self.interval_seconds)


Datapoint = tuple[datetime, float]


@dataclass(frozen=True)
class MetricEvidence:
    """AWS/NetworkELB datapoints for one target group, over the window and the same length before.

    Timestamps are the start of each period, as CloudWatch returns them.
    """

    unhealthy_hosts: tuple[Datapoint, ...] = ()
    healthy_hosts: tuple[Datapoint, ...] = ()
    target_resets: tuple[Datapoint, ...] = ()
    new_flows: tuple[Datapoint, ...] = ()


@dataclass(frozen=True)
class FlowLogEvidence:
    """REJECT records to the gap's targets and ports, counted from flow logs read up to `read_until`."""

    rejected_flows: int
    records_read: int
    read_until: datetime


@dataclass(frozen=True)
class Window:
    """The evidence window of a closed gap: [start, end + settle], on period boundaries."""

    start: datetime
    end: datetime
    gap_end: datetime

    @property
    def before_start(self) -> datetime:
        """The start of the same length before the window (the baseline)."""
        return self.start - (self.end - self.start)


def _floor(moment: datetime, period: timedelta = METRIC_PERIOD) -> datetime:
    seconds = int(period.total_seconds())
    epoch = int(moment.timestamp())
    return moment - timedelta(seconds=epoch % seconds, microseconds=moment.microsecond)


def _ceil(moment: datetime, period: timedelta = METRIC_PERIOD) -> datetime:
    floored = _floor(moment, period)
    return floored if floored == moment else floored + period


def window_for(start: datetime, end: datetime, health: HealthCheck) -> Window:
    """The metric window of a gap closed at `end`: whole periods from start to end + settle."""
    if end < start:
        raise ValueError("a gap cannot end before it starts")
    return Window(_floor(start), max(_ceil(end + health.settle), _floor(start) + METRIC_PERIOD), end)


@dataclass(frozen=True)
class ImpactResult:
    impact: Impact
    missing: tuple[str, ...] = ()  # why unknown: the sources not read, not configured or without data
    peak_unhealthy_hosts: float | None = None
    baseline_unhealthy_hosts: float | None = None
    min_healthy_hosts: float | None = None
    target_resets: float | None = None
    new_flows_during: float | None = None
    new_flows_before: float | None = None
    rejected_flows: int | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    reasons: tuple[str, ...] = field(default=())  # why confirmed


def _within(points: Sequence[Datapoint], start: datetime, end: datetime) -> list[float]:
    return [value for moment, value in points if start <= moment < end]


def _covers(points: Sequence[Datapoint], window: Window) -> bool:
    """True when the series has a datapoint in the window's last period (the data has arrived)."""
    return any(window.end - METRIC_PERIOD <= moment < window.end for moment, _ in points)


def assess(
    window: Window,
    metrics: MetricEvidence | None,
    flow_logs: FlowLogEvidence | None,
    *,
    flow_logs_configured: bool,
    now: datetime,
) -> ImpactResult:
    """Decide the impact of one closed gap from the evidence read (None: that source was not read)."""
    missing: list[str] = []
    reasons: list[str] = []
    values: dict[str, Any] = {"window_start": window.start, "window_end": window.end}
    if metrics is None:
        missing.append("metrics_not_read")
    else:
        during = _within(metrics.unhealthy_hosts, window.start, window.end)
        before = _within(metrics.unhealthy_hosts, window.before_start, window.start)
        healthy = _within(metrics.healthy_hosts, window.start, window.end)
        resets = _within(metrics.target_resets, window.start, window.end)
        flows = _within(metrics.new_flows, window.start, window.end)
        flows_before = _within(metrics.new_flows, window.before_start, window.start)
        values.update(
            peak_unhealthy_hosts=max(during) if during else None,
            baseline_unhealthy_hosts=max(before) if before else None,
            min_healthy_hosts=min(healthy) if healthy else None,
            target_resets=sum(resets) if resets else None,
            new_flows_during=sum(flows) if flows else None,
            new_flows_before=sum(flows_before) if flows_before else None,
        )
        # "Rose": above the peak of the same length before; with no datapoint before (the target
        # group is new, or CloudWatch kept nothing), any unhealthy host in the window counts.
        if during and max(during) > (max(before) if before else 0.0):
            reasons.append("unhealthy_hosts_rose")
        if not _covers(metrics.unhealthy_hosts, window):
            missing.append("metrics_no_data_yet")
    if not flow_logs_configured:
        missing.append("flow_logs_not_configured")
    elif flow_logs is None:
        missing.append("flow_logs_not_read")
    else:
        values["rejected_flows"] = flow_logs.rejected_flows
        if flow_logs.rejected_flows > 0:
            reasons.append("flows_rejected")
        if min(flow_logs.read_until, now) < window.end + FLOW_LOG_DELIVERY_LAG:
            missing.append("flow_logs_no_data_yet")
    if reasons:
        return ImpactResult("confirmed", tuple(missing), reasons=tuple(reasons), **values)
    return ImpactResult("unknown" if missing else "none_seen", tuple(missing), **values)
