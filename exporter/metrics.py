"""Every metric family, declared once as data, and the writers that render a Snapshot.

kube-state-metrics style: `SPECS` is the contract (name, type, help, labels, stability). Two
writers produce the same exposition from a snapshot; neither touches AWS or blocks, because the
daemon swaps whole, immutable snapshots in:

- `SnapshotCollector`: a prometheus_client collector building Metric families (`_fill`), for
  registries, tests and prometheus_client's own encoders.
- `Exposition` / `ExpositionCache`: what /metrics serves. Writes the text format 0.0.4 or
  OpenMetrics 1.0 directly (the same bytes as prometheus_client's encoders over the collector,
  tests/test_metrics.py), once per snapshot, gzip included, at a fraction of the collector's
  cost per series (docs/benchmarks.md, figure 4).

`python -m exporter.metrics` prints docs/metrics.md from `SPECS`.

Conventions: one prefix `sgchurn_`, base units (seconds, ratios), counters end in `_total`,
properties are `_info` families with value 1, label values are bounded (names, never ARNs,
timestamps or gap keys).
"""

from __future__ import annotations

import collections
import functools
import itertools
import logging
import math
import operator
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from queue import SimpleQueue
from typing import Literal, Protocol

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString
from zlib_ng import zlib_ng

from exporter.daemon.snapshot import (
    BREAK_BEFORE_MAKE_LAST,
    GAP_DURATION_BUCKETS,
    IDENTITY_LABELS,
    IMPACT_CONFIRMED_LAST,
    JOB_DURATION_BUCKETS,
    GapView,
    HistogramState,
    Labels,
    Snapshot,
    TargetGroupView,
)
from exporter.engine.changes import REJECTION_REASONS
from exporter.engine.flows import FLOW_KINDS, NOT_EVALUABLE_REASONS, REASONS, FlowStatus
from exporter.engine.gaps import CAUSES, ORDERS
from exporter.metrics_changelog import CHANGELOG

log = logging.getLogger(__name__)

MetricType = Literal["gauge", "counter", "histogram", "info"]
Stability = Literal["stable", "experimental"]

#: The labels every per-target-group series carries (daemon/snapshot.py TargetGroupIdentity).
IDENTITY: tuple[str, ...] = IDENTITY_LABELS
ACCOUNT_REGION: tuple[str, ...] = ("aws_account_id", "aws_region")

#: The actor label value when CloudTrail did not name one.
UNKNOWN_ACTOR = "unknown"


@dataclass(frozen=True)
class MetricSpec:
    """One metric family as exposed: `name` is the exposition name (with `_total` / `_info`)."""

    name: str
    type: MetricType
    help: str
    labels: tuple[str, ...] = ()
    stability: Stability = "stable"

    @property
    def base_name(self) -> str:
        """The name prometheus_client families take: without the `_total` / `_info` suffix."""
        if self.type == "counter":
            return self.name.removesuffix("_total")
        if self.type == "info":
            return self.name.removesuffix("_info")
        return self.name


def _s(
    name: str,
    type_: MetricType,
    help_: str,
    labels: Sequence[str] = (),
    stability: Stability = "stable",
) -> MetricSpec:
    return MetricSpec(name, type_, help_, tuple(labels), stability)


SPECS: tuple[MetricSpec, ...] = (
    # Target groups as they are now.
    _s(
        "sgchurn_target_group_info",
        "info",
        "A watched NLB target group and how it is set up: load balancer, scheme, mode (sg: the NLB has "
        "security groups; legacy: it has none), target type, protocol, cluster and how it was mapped to a "
        "Service, and what its client sources are judged by (intent: binding, the TargetGroupBinding's "
        "networking; managed_rules, the rules the controller manages on the port; default, the "
        "controller's default for the scheme).",
        (
            *IDENTITY,
            "load_balancer",
            "scheme",
            "mode",
            "target_type",
            "protocol",
            "cluster",
            "mapped_by",
            "intent",
        ),
    ),
    _s(
        "sgchurn_target_group_preserve_client_ip",
        "gauge",
        "Effective preserve_client_ip.enabled of the target group (1 on, 0 off; the AWS default when the "
        "attribute is absent).",
        IDENTITY,
    ),
    _s("sgchurn_target_group_targets", "gauge", "Registered targets of the target group.", IDENTITY),
    _s(
        "sgchurn_target_group_reachability_ratio",
        "gauge",
        "Fraction of the target group's evaluable targets whose security groups admit the flow (1 when "
        "it has none; targets that cannot be evaluated are counted by "
        "sgchurn_target_group_not_evaluable_targets).",
        (*IDENTITY, "flow"),
    ),
    _s(
        "sgchurn_target_group_not_evaluable_targets",
        "gauge",
        "Targets whose reachability cannot be evaluated, by reason (target_outside_vpc: an ip target "
        "registered with AvailabilityZone all, outside the VPC, with no ENI and no security group); "
        "never a gap; only reasons with at least one target are exported.",
        (*IDENTITY, "reason"),
    ),
    _s(
        "sgchurn_target_group_unadmitted_targets",
        "gauge",
        "Targets whose security groups do not admit the flow, by reason; only reasons with at least one "
        "target are exported (no series while every target is admitted).",
        (*IDENTITY, "flow", "reason"),
    ),
    # Gaps.
    _s(
        "sgchurn_rule_gap_open",
        "gauge",
        "1 while a rule gap is open for the target group and flow (some target does not admit it, seen by "
        "two consecutive polls or shown by CloudTrail), else 0.",
        (*IDENTITY, "flow"),
    ),
    _s(
        "sgchurn_rule_gap_open_since_timestamp_seconds",
        "gauge",
        "Unix time the currently open rule gap started; present only while a gap is open and its start "
        "is known (absent for a gap already open when the exporter first looked, at start-up or before "
        "the first CloudTrail record: its start is unknown, and the first moment seen is not exported "
        "as if it were the start).",
        (*IDENTITY, "flow"),
    ),
    _s(
        "sgchurn_rule_gaps_total",
        "counter",
        "Closed rule gaps, by flow and cause. A series appears with the first gap of its target group, "
        "flow and cause (no zero series: alert on sgchurn_rule_gap_last_end_timestamp_seconds, which "
        "shows the first gap too).",
        (*IDENTITY, "flow", "cause"),
    ),
    _s(
        "sgchurn_rule_gap_duration_seconds",
        "histogram",
        "Durations of closed rule gaps, across the target groups of an account and region (per target "
        "group: sgchurn_rule_gap_last_duration_seconds).",
        (*ACCOUNT_REGION, "flow"),
    ),
    _s(
        "sgchurn_rule_gap_last_duration_seconds",
        "gauge",
        "Duration of the last closed rule gap of the target group and flow.",
        (*IDENTITY, "flow"),
        "experimental",
    ),
    _s(
        "sgchurn_rule_gap_last_end_timestamp_seconds",
        "gauge",
        "Unix time the last closed rule gap of the target group and flow ended; absent until its first "
        "gap closed. `time() - x < 900`: a gap closed in the last 15 minutes, including the first one "
        "of a target group, and after a restart no sooner than it really did.",
        (*IDENTITY, "flow"),
    ),
    _s(
        "sgchurn_rule_gap_last_info",
        "info",
        "Cause and actor (role or principal name, 'unknown' when CloudTrail did not say) of the last "
        "closed rule gap of the target group and flow, and trigger_actor: who made the attribute change "
        "that preceded it on the target group (role/session), 'none' when no change preceded it, "
        "'unknown' when CloudTrail did not explain the gap.",
        (*IDENTITY, "flow", "cause", "actor", "trigger_actor"),
        "experimental",
    ),
    # The impact of closed gaps (impact.enabled: NLB metrics and VPC Flow Logs).
    _s(
        "sgchurn_rule_gap_impact_total",
        "counter",
        "Closed rule gaps whose impact was checked, by flow and impact: confirmed (the NLB's unhealthy "
        "hosts rose above the level before, or VPC Flow Logs show REJECTs to a target on its port), "
        "none_seen (every source read, nothing) or unknown (a source not configured, or its data did "
        "not arrive within two hours). Only with impact.enabled; a series appears with its first gap "
        "checked (no zero series: alert on sgchurn_rule_gap_last_impact_confirmed_timestamp_seconds).",
        (*IDENTITY, "flow", "impact"),
    ),
    _s(
        "sgchurn_rule_gap_last_impact_confirmed_timestamp_seconds",
        "gauge",
        "Unix time a closed rule gap of the target group and flow was last confirmed to have hurt "
        "traffic; absent until the first. `time() - x < 3600`: harm confirmed in the last hour, "
        "however long ago the gap closed.",
        (*IDENTITY, "flow"),
    ),
    _s(
        "sgchurn_rule_gap_last_rejected_flows",
        "gauge",
        "VPC Flow Log REJECTs to the targets on their port during the last closed rule gap of the target "
        "group and flow (and its health-check settle time); absent until that gap's flow logs are read.",
        (*IDENTITY, "flow"),
        "experimental",
    ),
    # Changes seen in CloudTrail.
    _s(
        "sgchurn_rule_replacements_total",
        "counter",
        "Security-group rule replacements (a revoke and an authorize close together), by order: "
        "make_before_break, break_before_make, or unknown (the same CloudTrail second, and nothing "
        "known about the caller says which came first). A series appears with its first replacement.",
        (*ACCOUNT_REGION, "security_group", "order"),
    ),
    _s(
        "sgchurn_rule_replacement_last_break_before_make_timestamp_seconds",
        "gauge",
        "Unix time (CloudTrail's eventTime of the authorize) the last break-before-make replacement of "
        "the security group's rules ended; absent until its first. `time() - x < 1800`: one in the last "
        "30 minutes, including the first of a group, whenever CloudTrail delivered it.",
        (*ACCOUNT_REGION, "security_group"),
    ),
    _s(
        "sgchurn_target_group_attribute_changes_total",
        "counter",
        "Changes of watched target-group attributes (such as preserve_client_ip.enabled) seen in "
        "CloudTrail. A series appears with its first change (see also "
        "sgchurn_target_group_attribute_last_change_timestamp_seconds).",
        (*IDENTITY, "attribute"),
    ),
    _s(
        "sgchurn_target_group_attribute_last_change_info",
        "info",
        "The last change of a watched target-group attribute seen in CloudTrail (within the retention "
        "window): its new value and who made it (role/session for an assumed role).",
        (*IDENTITY, "attribute", "value", "actor"),
        "experimental",
    ),
    _s(
        "sgchurn_target_group_attribute_last_change_timestamp_seconds",
        "gauge",
        "Unix time of the last change of a watched target-group attribute seen in CloudTrail.",
        (*IDENTITY, "attribute"),
        "experimental",
    ),
    _s(
        "sgchurn_security_group_rule_changes_total",
        "counter",
        "Security-group rule API calls seen in CloudTrail on watched groups, by event name and result "
        "(success or failed).",
        (*ACCOUNT_REGION, "security_group", "event_name", "result"),
    ),
    _s(
        "sgchurn_cloudtrail_events_total",
        "counter",
        "CloudTrail records accepted, by event name.",
        ("event_name",),
    ),
    _s(
        "sgchurn_cloudtrail_records_rejected_total",
        "counter",
        "CloudTrail records rejected, by reason (docs/metrics.md lists them); a duplicate or an unwatched "
        "event name is not a rejection.",
        ("reason",),
    ),
    _s(
        "sgchurn_cloudtrail_lag_seconds",
        "gauge",
        "Age of the newest CloudTrail record read, per account and region.",
        ACCOUNT_REGION,
        "experimental",
    ),
    # The exporter itself.
    _s(
        "sgchurn_up",
        "gauge",
        "1 when the source's last poll succeeded, else 0.",
        ("source", *ACCOUNT_REGION),
    ),
    _s(
        "sgchurn_job_duration_seconds",
        "histogram",
        "Durations of the exporter's background job runs, by task (the job's name: `task`, never `job`, which "
        "is Prometheus' scrape job label).",
        ("task",),
        "experimental",
    ),
    _s(
        "sgchurn_job_last_success_timestamp_seconds",
        "gauge",
        "Unix time the job last finished successfully; absent before its first success.",
        ("task",),
        "experimental",
    ),
    _s(
        "sgchurn_job_runs_skipped_total",
        "counter",
        "Job runs skipped because the previous run was still going.",
        ("task",),
        "experimental",
    ),
    _s(
        "sgchurn_aws_api_requests_total",
        "counter",
        "AWS API requests made, by service and operation.",
        ("service", "operation"),
        "experimental",
    ),
    _s(
        "sgchurn_aws_api_errors_total",
        "counter",
        "AWS API requests that failed, by service, operation and error code.",
        ("service", "operation", "code"),
        "experimental",
    ),
    _s("sgchurn_build_info", "info", "The exporter's version.", ("version",)),
    _s(
        "sgchurn_shard_info",
        "info",
        "This instance's shard number and the total number of shards.",
        ("shard", "total_shards"),
        "experimental",
    ),
    _s(
        "sgchurn_shard_owned_targets",
        "gauge",
        "1 for every (account, region) this shard watches ('default' account: the ambient credentials).",
        ACCOUNT_REGION,
        "experimental",
    ),
    _s(
        "sgchurn_snapshot_timestamp_seconds",
        "gauge",
        "Unix time the snapshot served now was generated.",
        (),
    ),
    _s(
        "sgchurn_ready",
        "gauge",
        "1 once the exporter has a complete first view of its sources, else 0.",
        (),
    ),
)

SPECS_BY_NAME: Mapping[str, MetricSpec] = {spec.name: spec for spec in SPECS}

#: Snapshot.counters keys (family name without `_total`) -> the spec they feed.
COUNTER_SOURCES: Mapping[str, str] = {
    "rule_gaps": "sgchurn_rule_gaps_total",
    "rule_replacements": "sgchurn_rule_replacements_total",
    "target_group_attribute_changes": "sgchurn_target_group_attribute_changes_total",
    "security_group_rule_changes": "sgchurn_security_group_rule_changes_total",
    "cloudtrail_events": "sgchurn_cloudtrail_events_total",
    "cloudtrail_records_rejected": "sgchurn_cloudtrail_records_rejected_total",
    "rule_gap_impact": "sgchurn_rule_gap_impact_total",
}
#: Snapshot.counters keys of the persisted "last time" gauges -> the spec they feed.
LAST_TIME_SOURCES: Mapping[str, str] = {
    IMPACT_CONFIRMED_LAST: "sgchurn_rule_gap_last_impact_confirmed_timestamp_seconds",
    BREAK_BEFORE_MAKE_LAST: "sgchurn_rule_replacement_last_break_before_make_timestamp_seconds",
}
#: Everything read from Snapshot.counters, each family written from its mapping alone.
STORED_SOURCES: Mapping[str, str] = {**COUNTER_SOURCES, **LAST_TIME_SOURCES}


def empty_family(spec: MetricSpec) -> Metric:
    """A family with the spec's name, type, help and labels, and no samples yet."""
    labels = list(spec.labels)
    if spec.type == "gauge":
        return GaugeMetricFamily(spec.base_name, spec.help, labels=labels)
    if spec.type == "counter":
        return CounterMetricFamily(spec.base_name, spec.help, labels=labels)
    if spec.type == "histogram":
        return HistogramMetricFamily(spec.base_name, spec.help, labels=labels)
    return InfoMetricFamily(spec.base_name, spec.help, labels=labels)


def short_name(arn_or_name: str) -> str:
    """A load balancer's name from its ARN (`.../loadbalancer/net/<name>/<id>`); a name stays as is."""
    if not arn_or_name.startswith("arn:"):
        return arn_or_name
    resource = arn_or_name.split(":", 5)[-1]
    parts = resource.split("/")
    if len(parts) >= 4 and parts[0] == "loadbalancer":
        return parts[2]
    return parts[-1]


def _cumulative(buckets: Sequence[float], counts: Sequence[int]) -> list[tuple[str, float]]:
    bounds = [floatToGoString(b) for b in buckets] + ["+Inf"]
    return list(zip(bounds, (float(c) for c in counts), strict=True))


class _Families:
    """The families of one collect() call, filled by label *name* so no value lands on the wrong label."""

    def __init__(self) -> None:
        self.families: dict[str, Metric] = {spec.name: empty_family(spec) for spec in SPECS}
        self._seen: dict[str, set[tuple[str, ...]]] = {spec.name: set() for spec in SPECS}
        self.dropped: list[tuple[str, tuple[str, ...]]] = []

    def _values(self, name: str, labels: Mapping[str, str]) -> tuple[str, ...] | None:
        spec = SPECS_BY_NAME[name]
        if set(labels) != set(spec.labels):
            self.dropped.append((name, tuple(sorted(labels))))
            return None
        values = tuple(str(labels[label]) for label in spec.labels)
        if values in self._seen[name]:  # one series per label set: the first wins
            return None
        self._seen[name].add(values)
        return values

    def add(self, name: str, labels: Mapping[str, str], value: float) -> None:
        values = self._values(name, labels)
        if values is None:
            return
        family = self.families[name]
        if isinstance(family, InfoMetricFamily):
            family.add_metric(list(values), {})
        elif isinstance(family, GaugeMetricFamily | CounterMetricFamily):
            family.add_metric(list(values), value)
        else:  # pragma: no cover - a spec/caller mismatch is a programming error
            raise TypeError(f"{name} is a {SPECS_BY_NAME[name].type}, not a gauge/counter/info")

    def add_histogram(
        self,
        name: str,
        labels: Mapping[str, str],
        bounds: Sequence[float],
        counts: Sequence[int],
        total: float,
    ) -> None:
        if len(counts) != len(bounds) + 1:
            self.dropped.append((name, tuple(sorted(labels))))
            return
        values = self._values(name, labels)
        if values is None:
            return
        family = self.families[name]
        assert isinstance(family, HistogramMetricFamily)
        family.add_metric(list(values), _cumulative(bounds, counts), total)


def _actor(gap: GapView) -> str:
    return gap.actor or UNKNOWN_ACTOR


def _last_info_labels(with_flow: Mapping[str, str], gap: GapView) -> dict[str, str]:
    return {**with_flow, "cause": gap.cause, "actor": _actor(gap), "trigger_actor": gap.trigger_actor}


class _Adds(Protocol):
    def add(self, name: str, labels: Mapping[str, str], value: float) -> None: ...


def _attribute_changes(snapshot: Snapshot, out: _Adds) -> None:
    for change in snapshot.attribute_changes:
        identity = {**change.identity, "attribute": change.attribute}
        info = {**identity, "value": change.value, "actor": change.actor}
        out.add("sgchurn_target_group_attribute_last_change_info", info, 1)
        out.add(
            "sgchurn_target_group_attribute_last_change_timestamp_seconds", identity, change.time.timestamp()
        )


def _not_evaluable(tg: TargetGroupView) -> list[tuple[str, int]]:
    """(reason, count) of the target group's targets that cannot be evaluated (the same for every
    flow: it is a property of the target), only reasons with a target."""
    for flow in FLOW_KINDS:
        status = tg.flows.get(flow)
        if status is not None and status.not_evaluable_by_reason:
            by_reason = status.not_evaluable_by_reason
            return [(r, by_reason[r]) for r in NOT_EVALUABLE_REASONS if by_reason.get(r, 0)]
    return []


def _fill(out: _Families, snapshot: Snapshot) -> None:
    # Target groups and their flows.
    open_by_key: dict[tuple[str, str], GapView] = {}
    for gap in snapshot.open_gaps:
        key = (gap.target_group_arn, gap.flow)
        if key not in open_by_key or gap.start < open_by_key[key].start:
            open_by_key[key] = gap
    for tg in snapshot.target_groups:
        identity = tg.identity
        out.add(
            "sgchurn_target_group_info",
            {
                **identity,
                "load_balancer": short_name(tg.load_balancer),
                "scheme": tg.scheme,
                "mode": tg.mode,
                "target_type": tg.target_type,
                "protocol": tg.protocol,
                "cluster": tg.cluster,
                "mapped_by": tg.mapped_by,
                "intent": tg.intent,
            },
            1,
        )
        out.add("sgchurn_target_group_preserve_client_ip", identity, 1 if tg.preserve_client_ip else 0)
        out.add("sgchurn_target_group_targets", identity, tg.targets)
        for flow in FLOW_KINDS:
            status = tg.flows.get(flow)
            with_flow = {**identity, "flow": flow}
            if status is not None:
                out.add("sgchurn_target_group_reachability_ratio", with_flow, status.ratio)
            if status is not None:  # only the reasons some target has: a series per reason and flow
                for reason in REASONS:  # of every target group would be 10 zeros each
                    count = status.unadmitted_by_reason.get(reason, 0)
                    if count != 0:
                        out.add(
                            "sgchurn_target_group_unadmitted_targets", {**with_flow, "reason": reason}, count
                        )
            out.add("sgchurn_rule_gap_open", with_flow, 1 if (tg.arn, flow) in open_by_key else 0)
        for reason, count in _not_evaluable(tg):
            out.add("sgchurn_target_group_not_evaluable_targets", {**identity, "reason": reason}, count)
    # Open gaps (also those of target groups no longer listed, e.g. just deleted).
    for gap in sorted(open_by_key.values(), key=lambda g: g.start):
        with_flow = {**gap.identity, "flow": gap.flow}
        out.add("sgchurn_rule_gap_open", with_flow, 1)
        if gap.start_exact:
            out.add("sgchurn_rule_gap_open_since_timestamp_seconds", with_flow, gap.start.timestamp())
    for gap in snapshot.last_gaps:
        with_flow = {**gap.identity, "flow": gap.flow}
        duration = gap.duration_seconds
        if duration is not None:
            out.add("sgchurn_rule_gap_last_duration_seconds", with_flow, duration)
        if gap.end is not None:
            out.add("sgchurn_rule_gap_last_end_timestamp_seconds", with_flow, gap.end.timestamp())
        out.add("sgchurn_rule_gap_last_info", _last_info_labels(with_flow, gap), 1)
        rejected = None if gap.impact is None else gap.impact.rejected_flows
        if rejected is not None:  # absent until the gap's flow logs are read (no zero series)
            out.add("sgchurn_rule_gap_last_rejected_flows", with_flow, rejected)
    _attribute_changes(snapshot, out)
    for labels, hist in snapshot.gap_durations.items():
        out.add_histogram(
            "sgchurn_rule_gap_duration_seconds", dict(labels), GAP_DURATION_BUCKETS, hist.buckets, hist.total
        )
    # Persisted counters.
    for source, name in STORED_SOURCES.items():
        series: Mapping[Labels, float] = snapshot.counters.get(source, {})
        for labels, value in series.items():
            out.add(name, dict(labels), value)
    for (account, region), lag in snapshot.cloudtrail_lag_seconds.items():
        out.add("sgchurn_cloudtrail_lag_seconds", {"aws_account_id": account, "aws_region": region}, lag)
    # The exporter itself.
    for health in snapshot.sources:
        out.add(
            "sgchurn_up",
            {
                "source": health.source,
                "aws_account_id": health.aws_account_id,
                "aws_region": health.aws_region,
            },
            1 if health.up else 0,
        )
    for job in snapshot.jobs:
        job_labels = {"task": job.job}
        counts = job.duration_buckets or (0,) * (len(JOB_DURATION_BUCKETS) + 1)
        total = job.duration_sum if job.duration_buckets else 0.0
        out.add_histogram("sgchurn_job_duration_seconds", job_labels, JOB_DURATION_BUCKETS, counts, total)
        if job.last_success is not None:
            out.add("sgchurn_job_last_success_timestamp_seconds", job_labels, job.last_success.timestamp())
        out.add("sgchurn_job_runs_skipped_total", job_labels, job.skipped)
    for (service, operation), count in snapshot.api_requests.items():
        out.add("sgchurn_aws_api_requests_total", {"service": service, "operation": operation}, count)
    for (service, operation, code), count in snapshot.api_errors.items():
        out.add(
            "sgchurn_aws_api_errors_total", {"service": service, "operation": operation, "code": code}, count
        )
    out.add("sgchurn_build_info", {"version": snapshot.version}, 1)
    out.add(
        "sgchurn_shard_info", {"shard": str(snapshot.shard), "total_shards": str(snapshot.total_shards)}, 1
    )
    for account, region in snapshot.owned_targets:
        out.add("sgchurn_shard_owned_targets", {"aws_account_id": account, "aws_region": region}, 1)
    out.add("sgchurn_snapshot_timestamp_seconds", {}, snapshot.generated_at.timestamp())
    out.add("sgchurn_ready", {}, 1 if snapshot.ready else 0)


def families_of(snapshot: Snapshot) -> tuple[list[Metric], list[tuple[str, tuple[str, ...]]]]:
    """The families of a snapshot, in SPECS order, and the (family, label names) series dropped
    because their label names did not match the spec."""
    out = _Families()
    _fill(out, snapshot)
    return list(out.families.values()), out.dropped


class SnapshotCollector(Collector):
    """A prometheus_client custom collector over whatever snapshot `get_snapshot` returns now."""

    def __init__(self, get_snapshot: Callable[[], Snapshot]) -> None:
        self._get_snapshot = get_snapshot
        self._warned: set[tuple[str, tuple[str, ...]]] = set()

    def describe(self) -> Iterable[Metric]:
        """The families without samples: lets a registry check names without reading a snapshot."""
        return [empty_family(spec) for spec in SPECS]

    def collect(self) -> Iterator[Metric]:
        families, dropped = families_of(self._get_snapshot())
        for item in dropped:
            if item not in self._warned:  # once per family and label-name set, not every scrape
                self._warned.add(item)
                log.warning("dropped series with unexpected labels: family %s, labels %s", *item)
        yield from families


def build_registry(get_snapshot: Callable[[], Snapshot]) -> CollectorRegistry:
    """A registry holding only our SnapshotCollector (no process/platform/GC collectors)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(get_snapshot))
    return registry


# -- the fast exposition -------------------------------------------------------------------------
#
# /metrics renders a snapshot straight to text, without Metric or Sample objects. The bytes are
# those prometheus_client's generate_latest (text 0.0.4) and its OpenMetrics generate_latest write
# for SnapshotCollector (tests/test_metrics.py compares them): families in SPECS order, series in
# the order `_fill` adds them, labels sorted by name, the first series of a label set wins, and a
# series whose label names are not its spec's is dropped.
#
# The bulk (a handful of series per target group) is written
# column-wise: a label's values for all rows at once, then every line of a family in one
# str.join over pieces laid out with slice assignments, which runs in C instead of a Python loop
# per series. Anything unusual (a label set that is not the spec's, a value that is not a str,
# two target groups with the same identity) takes the general path, series by series like
# `_fill`.

ExpositionFormat = Literal["text", "openmetrics"]
EXPOSITION_FORMATS: tuple[ExpositionFormat, ...] = ("text", "openmetrics")

#: gzip level of /metrics bodies: level 1 compresses our expositions about 6x faster than the
#: default 9, for bodies about 30% larger. `Exposition.gzip` deflates with zlib-ng (as
#: sources/envelopes.py inflates with it): about 3x faster than CPython's zlib at level 1 on our
#: bodies, whose output is about 30% larger (docs/benchmarks.md, figure 4).
GZIP_LEVEL = 1

#: The TYPE the text format 0.0.4 declares (it has no info type: prometheus_client writes a gauge).
_TEXT_TYPES: Mapping[MetricType, str] = {
    "gauge": "gauge",
    "counter": "counter",
    "histogram": "histogram",
    "info": "gauge",
}


def escape_label_value(value: str) -> str:
    """A label value as both formats write it: backslash, double quote and newline escaped."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value


def _header(spec: MetricSpec, fmt: ExpositionFormat) -> str:
    help_ = spec.help.replace("\\", "\\\\").replace("\n", "\\n")
    if fmt == "openmetrics":  # OpenMetrics names the family without _total / _info and escapes '"' too
        help_ = help_.replace('"', '\\"')
        return f"# HELP {spec.base_name} {help_}\n# TYPE {spec.base_name} {spec.type}\n"
    return f"# HELP {spec.name} {help_}\n# TYPE {spec.name} {_TEXT_TYPES[spec.type]}\n"


_HEADERS: Mapping[ExpositionFormat, tuple[bytes, ...]] = {
    fmt: tuple(_header(spec, fmt).encode() for spec in SPECS) for fmt in EXPOSITION_FORMATS
}
_OPENMETRICS_EOF = b"# EOF\n"

#: The labels of sgchurn_target_group_info besides the identity, and how a target group gives them.
_TG_INFO_EXTRA: Mapping[str, Callable[[TargetGroupView], str]] = {
    "load_balancer": lambda tg: short_name(tg.load_balancer),
    "scheme": operator.attrgetter("scheme"),
    "mode": operator.attrgetter("mode"),
    "target_type": operator.attrgetter("target_type"),
    "protocol": operator.attrgetter("protocol"),
    "cluster": operator.attrgetter("cluster"),
    "mapped_by": operator.attrgetter("mapped_by"),
    "intent": operator.attrgetter("intent"),
}
# What the per-target-group pass takes for granted about the specs it writes.
assert set(SPECS_BY_NAME["sgchurn_target_group_info"].labels) == {*IDENTITY, *_TG_INFO_EXTRA}
assert all(
    set(SPECS_BY_NAME[name].labels) == set(IDENTITY)
    for name in ("sgchurn_target_group_preserve_client_ip", "sgchurn_target_group_targets")
)
assert all(
    set(SPECS_BY_NAME[name].labels) == {*IDENTITY, "flow"}
    for name in ("sgchurn_target_group_reachability_ratio", "sgchurn_rule_gap_open")
)
assert len(set(STORED_SOURCES.values())) == len(STORED_SOURCES)  # _Render.counters: one source each

_first = operator.itemgetter(0)
_second = operator.itemgetter(1)
_identity_of = operator.attrgetter("identity")
_ZERO_ONE = ("0.0\n", "1.0\n")

#: A piece of every line of a block: the same text on each line (str) or one text per line (list).
_Segment = str | list[str]


def _column(values: Iterable[str]) -> list[str]:
    """Label values as written (escaped). TypeError unless each is a str: the general path str()s."""
    column = list(values)
    joined = "".join(column)
    if "\\" in joined or '"' in joined or "\n" in joined:
        return list(map(escape_label_value, column))
    return column


def _label_segments(names: Sequence[str], columns: Mapping[str, _Segment]) -> list[_Segment]:
    """The segments of `a="..",b=".."` for labels `names` (in that order): constants merged."""
    segments: list[_Segment] = []
    for i, name in enumerate(names):
        for segment in (f'{"," if i else ""}{name}="', columns[name], '"'):
            if isinstance(segment, str) and segments and isinstance(segments[-1], str):
                segments[-1] += segment
            else:
                segments.append(segment)
    return segments


def _block(rows: int, segments: Sequence[_Segment]) -> str:
    """`rows` lines, line i the concatenation of each segment (its i-th text when a list)."""
    if rows == 0:
        return ""
    stride = len(segments)
    pieces = [""] * (stride * rows)
    for i, segment in enumerate(segments):
        pieces[i::stride] = [segment] * rows if isinstance(segment, str) else segment
    return "".join(pieces)


def _texts(rows: int, segments: Sequence[_Segment]) -> list[str]:
    """One string per row: the concatenation of the segments (as `_block`, kept apart)."""
    parts = [itertools.repeat(s, rows) if isinstance(s, str) else s for s in segments]
    return list(map("".join, zip(*parts, strict=False)))


def _repeat_rows(column: list[str], times: int) -> list[str]:
    """Each value `times` times in a row: a target group's column for its per-flow rows."""
    return list(itertools.chain.from_iterable(zip(*[column] * times, strict=True)))


def _le_position(names: Sequence[str]) -> int:
    """Where `le` goes among a histogram's label names, sorted."""
    return sum(1 for name in names if name < "le")


@functools.cache
def _le_pairs(bounds: tuple[float, ...]) -> tuple[str, ...]:
    """`le="..."` of each bucket, +Inf last, as prometheus_client writes bounds (floatToGoString)."""
    return (*(f'le="{floatToGoString(bound)}"' for bound in bounds), 'le="+Inf"')


def _sign_bit_set(values: Iterable[float]) -> bool:
    """Whether a value is negative, -0.0 or a negative NaN: those bypass the `_Numbers` memo."""
    return min(map(math.copysign, itertools.repeat(1.0), values), default=1.0) < 0


class _Numbers(dict[float, str]):
    """Sample values as written, newline included: floatToGoString, memoized for one render.

    0 is a key and -0.0 is equal to it, so values with the sign bit set are not looked up here.
    """

    def __init__(self) -> None:
        super().__init__({0: "0.0\n", 1: "1.0\n"})

    def __missing__(self, value: float) -> str:
        text = floatToGoString(value) + "\n"
        if value == value:  # a NaN never finds itself again: do not keep it
            self[value] = text
        return text


class _Family:
    """The sample lines (or blocks of lines) of one family in one render."""

    __slots__ = ("lines", "names", "seen", "sorted_names")

    def __init__(self, spec: MetricSpec) -> None:
        self.lines: list[str] = []
        self.seen: set[str] = set()  # label strings of its series (see _Render.target_groups)
        self.names = frozenset(spec.labels)
        self.sorted_names = tuple(sorted(spec.labels))

    def add(self, labels: str, line: str) -> None:
        """Add a series' line unless one with the same labels is already there: the first wins."""
        if labels not in self.seen:
            self.seen.add(labels)
            self.lines.append(line)


#: The families the per-target-group pass writes (`_steps` declares them for it).
_TG_FAMILIES: tuple[str, ...] = (
    "sgchurn_target_group_info",
    "sgchurn_target_group_preserve_client_ip",
    "sgchurn_target_group_targets",
    "sgchurn_target_group_reachability_ratio",
    "sgchurn_target_group_unadmitted_targets",
    "sgchurn_target_group_not_evaluable_targets",
    "sgchurn_rule_gap_open",
)


@dataclass(frozen=True, slots=True)
class _TargetGroupLines:
    """One target group's sample lines, per family of _TG_FAMILIES, and what they were made from."""

    view: TargetGroupView
    opened: tuple[bool, ...]  # a gap open, per flow of FLOW_KINDS
    identity: tuple[tuple[str, object], ...]  # its identity labels, to check they are distinct
    lines: tuple[str, ...]
    gap_open_labels: tuple[str, ...]  # label strings of its sgchurn_rule_gap_open series


_NONE_OPEN: tuple[bool, ...] = (False,) * len(FLOW_KINDS)


class TargetGroupLines:
    """Each target group's sample lines as last rendered, kept until its view or its open flows
    change, as kube-state-metrics keeps an object's lines until the object changes: a new snapshot
    renders only the target groups that changed, and the families are joined from the kept lines.

    Used by one render at a time (ExpositionCache keeps one per variant, under its render lock).
    Only snapshots whose target groups have distinct ARNs and identities are rendered this way
    (the others by the column-wise pass, as without it).
    """

    def __init__(self) -> None:
        self._entries: dict[str, _TargetGroupLines] = {}
        self.rendered = 0  # target groups rendered (not reused) by the last render
        #: step name -> (its input, its families' lines, what it dropped) of the last render
        self.steps: dict[str, tuple[object, dict[str, list[str]], list[tuple[str, tuple[str, ...]]]]] = {}

    def take(
        self,
        target_groups: Sequence[TargetGroupView],
        open_by_key: Mapping[tuple[str, str], GapView],
        numbers: _Numbers,
    ) -> list[_TargetGroupLines] | None:
        """The lines of every target group, in order, rendering only the changed ones; None when
        the snapshot is not one this cache serves (its target groups then render as before)."""
        entries: dict[str, _TargetGroupLines] = {}
        rendered = 0
        open_arns = {arn for arn, _ in open_by_key}
        for tg in target_groups:
            opened = (
                tuple((tg.arn, flow) in open_by_key for flow in FLOW_KINDS)
                if tg.arn in open_arns
                else _NONE_OPEN
            )
            entry = self._entries.get(tg.arn)
            if entry is None or entry.opened != opened or not (entry.view is tg or entry.view == tg):
                entry = _render_target_group(tg, open_by_key, opened, numbers)
                if entry is None:
                    return None
                rendered += 1
            entries[tg.arn] = entry
        self._entries, self.rendered = entries, rendered  # target groups no longer listed go
        if len(entries) != len(target_groups):  # two with one ARN
            return None
        try:
            if len({entry.identity for entry in entries.values()}) != len(entries):
                return None  # two with one identity: the general path keeps the first series
        except TypeError:  # an unhashable label value
            return None
        return list(entries.values())


def _render_target_group(
    tg: TargetGroupView,
    open_by_key: Mapping[tuple[str, str], GapView],
    opened: tuple[bool, ...],
    numbers: _Numbers,
) -> _TargetGroupLines | None:
    """One target group's lines through the general path (None when it dropped a series)."""
    out = _Render()
    out.numbers, out.writable = numbers, frozenset(_TG_FAMILIES)
    out.target_group(tg, open_by_key)
    if out.dropped:
        return None
    return _TargetGroupLines(
        view=tg,
        opened=opened,
        identity=tuple(tg.identity.items()),
        lines=tuple("".join(out.families[name].lines) for name in _TG_FAMILIES),
        gap_open_labels=tuple(out.families["sgchurn_rule_gap_open"].seen),
    )


class _Render:
    """One render of a snapshot: `_fill` written as text."""

    def __init__(self) -> None:
        self.families: dict[str, _Family] = {spec.name: _Family(spec) for spec in SPECS}
        self.dropped: list[tuple[str, tuple[str, ...]]] = []
        self.numbers = _Numbers()
        self.writable: frozenset[str] = frozenset()  # the families the running step declared

    def family(self, name: str) -> _Family:
        """A family to add to: only one the running step declared (see `_steps`)."""
        if name not in self.writable:
            raise RuntimeError(f"{name} is written by a step of _steps that does not declare it")
        return self.families[name]

    def value(self, value: float) -> str:
        if value == 0 and math.copysign(1.0, value) < 0:
            return "-0.0\n"
        return self.numbers[value]

    def values(self, values: Sequence[float]) -> list[str]:
        return list(map(self.value if _sign_bit_set(values) else self.numbers.__getitem__, values))

    # -- the general path: one series at a time, as _Families does ------------------------------

    def checked(self, name: str, labels: Mapping[str, str]) -> list[str] | None:
        """`label="value"` per label, sorted by name; None (the series dropped) when the label
        names are not the spec's."""
        family = self.family(name)
        if set(labels) != family.names:
            self.dropped.append((name, tuple(sorted(labels))))
            return None
        return [f'{label}="{escape_label_value(str(labels[label]))}"' for label in family.sorted_names]

    def add(self, name: str, labels: Mapping[str, str], value: float) -> None:
        pairs = self.checked(name, labels)
        if pairs is not None:
            text = ",".join(pairs)
            line = f"{name}{{{text}}} {self.value(value)}" if text else f"{name} {self.value(value)}"
            self.family(name).add(text, line)

    def add_histogram(
        self,
        name: str,
        labels: Mapping[str, str],
        bounds: Sequence[float],
        counts: Sequence[int],
        total: float,
    ) -> None:
        if len(counts) != len(bounds) + 1:
            self.dropped.append((name, tuple(sorted(labels))))
            return
        pairs = self.checked(name, labels)
        if pairs is None:
            return
        family, text = self.family(name), ",".join(pairs)
        if text in family.seen:
            return
        family.seen.add(text)
        split = _le_position(family.sorted_names)
        before, after = pairs[:split], pairs[split:]
        for le, count in zip(_le_pairs(tuple(bounds)), counts, strict=True):
            bucket = ",".join([*before, le, *after])
            family.lines.append(f"{name}_bucket{{{bucket}}} {self.value(count)}")
        braces = f"{{{text}}}" if text else ""
        family.lines.append(f"{name}_count{braces} {self.value(counts[-1])}")
        family.lines.append(f"{name}_sum{braces} {self.value(total)}")

    def target_group(self, tg: TargetGroupView, open_by_key: Mapping[tuple[str, str], GapView]) -> None:
        """One target group's series, exactly as `_fill` adds them."""
        identity = tg.identity
        extra = {label: get(tg) for label, get in _TG_INFO_EXTRA.items()}
        self.add("sgchurn_target_group_info", {**identity, **extra}, 1)
        self.add("sgchurn_target_group_preserve_client_ip", identity, 1 if tg.preserve_client_ip else 0)
        self.add("sgchurn_target_group_targets", identity, tg.targets)
        for flow in FLOW_KINDS:
            status = tg.flows.get(flow)
            with_flow = {**identity, "flow": flow}
            if status is not None:
                self.add("sgchurn_target_group_reachability_ratio", with_flow, status.ratio)
                self.unadmitted(with_flow, status)
            self.add("sgchurn_rule_gap_open", with_flow, 1 if (tg.arn, flow) in open_by_key else 0)
        self.not_evaluable(tg)

    def not_evaluable(self, tg: TargetGroupView) -> None:
        for reason, count in _not_evaluable(tg):
            self.add("sgchurn_target_group_not_evaluable_targets", {**tg.identity, "reason": reason}, count)

    def unadmitted(self, with_flow: Mapping[str, str], status: FlowStatus) -> None:
        by_reason = status.unadmitted_by_reason
        if by_reason:
            for reason in REASONS:
                count = by_reason.get(reason, 0)
                if count != 0:
                    self.add(
                        "sgchurn_target_group_unadmitted_targets", {**with_flow, "reason": reason}, count
                    )

    # -- the column-wise passes -----------------------------------------------------------------

    def target_groups(
        self,
        target_groups: Sequence[TargetGroupView],
        open_by_key: Mapping[tuple[str, str], GapView],
        kept: TargetGroupLines | None = None,
    ) -> None:
        """The series of every target group, a family at a time (the general path when a target
        group's identity is not IDENTITY, a label value is not a str, or two identities are equal),
        or joined from the lines `kept` holds, rendering only the target groups that changed.

        The families written here have no series yet, and only sgchurn_rule_gap_open gets more
        later (open gaps of target groups no longer listed): its label strings go to `seen`.
        """
        rows = len(target_groups)
        if rows == 0:
            return
        entries = None if kept is None else kept.take(target_groups, open_by_key, self.numbers)
        if entries is not None:
            for i, name in enumerate(_TG_FAMILIES):
                self.family(name).lines.append("".join([entry.lines[i] for entry in entries]))
            seen = self.family("sgchurn_rule_gap_open").seen
            for entry in entries:
                seen.update(entry.gap_open_labels)
            return
        identities = list(map(_identity_of, target_groups))
        try:
            if set(map(len, identities)) != {len(IDENTITY)}:
                raise KeyError("identity")
            columns = {label: _column(map(operator.itemgetter(label), identities)) for label in IDENTITY}
            extra = {label: _column(map(get, target_groups)) for label, get in _TG_INFO_EXTRA.items()}
            unique = len(set(zip(*(columns[label] for label in IDENTITY), strict=True))) == rows
        except (KeyError, TypeError):
            unique = False
        if not unique:
            for tg in target_groups:
                self.target_group(tg, open_by_key)
            return

        def block(name: str, labels: Mapping[str, _Segment], values: _Segment, count: int = rows) -> None:
            family = self.family(name)
            segments = [f"{name}{{", *_label_segments(family.sorted_names, labels), "} ", values]
            family.lines.append(_block(count, segments))

        block("sgchurn_target_group_info", {**columns, **extra}, "1.0\n")
        preserve = list(map(_ZERO_ONE.__getitem__, map(bool, map(_preserve, target_groups))))
        block("sgchurn_target_group_preserve_client_ip", columns, preserve)
        block("sgchurn_target_group_targets", columns, self.values(list(map(_targets, target_groups))))
        # One row per target group and flow, in that order.
        flows = len(FLOW_KINDS)
        per_flow: dict[str, list[str]] = {
            label: _repeat_rows(column, flows) for label, column in columns.items()
        }
        per_flow["flow"] = _column(FLOW_KINDS) * rows
        statuses = [tg.flows.get(flow) for tg in target_groups for flow in FLOW_KINDS]
        labels: Mapping[str, _Segment] = per_flow
        count = len(statuses)
        if not all(statuses):  # (not `None in`: that compares each FlowStatus with None)
            present = list(map(operator.is_not, statuses, itertools.repeat(None)))
            count = sum(present)
            labels = {label: list(itertools.compress(c, present)) for label, c in per_flow.items()}
        known = [status for status in statuses if status is not None]
        ratios = self.values(list(map(_ratio, known)))
        block("sgchurn_target_group_reachability_ratio", labels, ratios, count)
        for i, status in enumerate(statuses):
            if status is not None and status.unadmitted_by_reason:
                tg = target_groups[i // flows]
                self.unadmitted({**tg.identity, "flow": FLOW_KINDS[i % flows]}, status)
        for tg in target_groups:
            self.not_evaluable(tg)
        gap_open = self.family("sgchurn_rule_gap_open")
        texts = _texts(rows * flows, _label_segments(gap_open.sorted_names, per_flow))
        gap_open.seen.update(texts)
        keys = zip(_repeat_rows(list(map(_arn, target_groups)), flows), itertools.cycle(FLOW_KINDS))
        opened = list(map(_ZERO_ONE.__getitem__, map(open_by_key.__contains__, keys)))
        gap_open.lines.append(_block(rows * flows, ["sgchurn_rule_gap_open{", texts, "} ", opened]))

    def histograms(self, name: str, series: Mapping[Labels, HistogramState], bounds: Sequence[float]) -> None:
        """A histogram family kept by labels (its only source, like a counter family): one block
        when every key is well formed (see `counters`) and has its buckets, else one at a time."""
        family = self.family(name)
        names, keys, hists = family.sorted_names, list(series), list(series.values())
        width, buckets = len(names), len(bounds) + 1
        try:
            if not keys or not names or set(map(len, keys)) != {width}:
                raise TypeError("not one block")
            if {len(hist.buckets) for hist in hists} != {buckets}:
                raise TypeError("buckets")
            pairs = list(itertools.chain.from_iterable(keys))
            if list(map(_first, pairs)) != list(names) * len(keys):
                raise TypeError("label names")
            labels = _column(map(_second, pairs))
            values = self.values([v for h in hists for v in (*h.buckets, h.buckets[-1], h.total)])
        except (TypeError, IndexError):
            for key, hist in series.items():
                self.add_histogram(name, dict(key), bounds, hist.buckets, hist.total)
            return
        # Per histogram its bucket lines, then _count and _sum: `le` among the labels on buckets.
        columns = {label: labels[i::width] for i, label in enumerate(names)}
        split, rows = _le_position(names), len(keys)
        lines = buckets + 2
        before = _texts(rows, _label_segments(names[:split], columns)) if split else []
        after = _texts(rows, _label_segments(names[split:], columns)) if split < width else []
        left, right = ("," if before else ""), ("," if after else "")
        prefix = [f"{name}_bucket{{"] * buckets + [f"{name}_count{{", f"{name}_sum{{"]
        middle = [f"{left}{le}{right}" for le in _le_pairs(tuple(bounds))] + [left and right] * 2
        segments: list[_Segment] = [prefix * rows]
        if before:
            segments.append(_repeat_rows(before, lines))
        segments.append(middle * rows)
        if after:
            segments.append(_repeat_rows(after, lines))
        segments += ["} ", values]
        family.lines.append(_block(rows * lines, segments))

    def counters(self, name: str, series: Mapping[Labels, float]) -> None:
        """A persisted counter family. Its keys are its only series (nothing else adds to it), so
        when each key is exactly the spec's label names in order with str values, distinct keys
        are distinct label sets and the family is one block; else series by series."""
        names = self.family(name).sorted_names
        keys = list(series)
        width = len(names)
        try:
            if not keys or not names or set(map(len, keys)) != {width}:
                raise TypeError("not one block")
            pairs = list(itertools.chain.from_iterable(keys))
            if list(map(_first, pairs)) != list(names) * len(keys):
                raise TypeError("label names")
            labels = _column(map(_second, pairs))
            values = self.values(list(series.values()))
        except (TypeError, IndexError):
            for key, value in series.items():
                self.add(name, dict(key), value)
            return
        columns = {label: labels[i::width] for i, label in enumerate(names)}
        segments = [f"{name}{{", *_label_segments(names, columns), "} ", values]
        self.family(name).lines.append(_block(len(keys), segments))


_preserve = operator.attrgetter("preserve_client_ip")
_targets = operator.attrgetter("targets")
_ratio = operator.attrgetter("ratio")
_arn = operator.attrgetter("arn")


def _steps(
    snapshot: Snapshot, out: _Render, kept: TargetGroupLines | None = None
) -> list[tuple[frozenset[str], Callable[[], object]]]:
    """`_fill` as steps on `out`, in its order, each with the families it adds to (enforced by
    `_Render.family`), so a family is written out as soon as no later step adds to it."""
    open_by_key: dict[tuple[str, str], GapView] = {}
    for gap in snapshot.open_gaps:
        key = (gap.target_group_arn, gap.flow)
        if key not in open_by_key or gap.start < open_by_key[key].start:
            open_by_key[key] = gap

    def open_gaps() -> None:  # also those of target groups no longer listed, e.g. just deleted
        for gap in sorted(open_by_key.values(), key=lambda g: g.start):
            with_flow = {**gap.identity, "flow": gap.flow}
            out.add("sgchurn_rule_gap_open", with_flow, 1)
            if gap.start_exact:  # an unknown start is not exported as if it were one
                out.add("sgchurn_rule_gap_open_since_timestamp_seconds", with_flow, gap.start.timestamp())

    def last_gaps() -> None:
        for gap in snapshot.last_gaps:
            with_flow = {**gap.identity, "flow": gap.flow}
            duration = gap.duration_seconds
            if duration is not None:
                out.add("sgchurn_rule_gap_last_duration_seconds", with_flow, duration)
            if gap.end is not None:
                out.add("sgchurn_rule_gap_last_end_timestamp_seconds", with_flow, gap.end.timestamp())
            out.add("sgchurn_rule_gap_last_info", _last_info_labels(with_flow, gap), 1)
            rejected = None if gap.impact is None else gap.impact.rejected_flows
            if rejected is not None:
                out.add("sgchurn_rule_gap_last_rejected_flows", with_flow, rejected)

    def attribute_changes() -> None:
        _attribute_changes(snapshot, out)

    def gap_durations() -> None:
        out.histograms("sgchurn_rule_gap_duration_seconds", snapshot.gap_durations, GAP_DURATION_BUCKETS)

    def lags() -> None:
        for (account, region), lag in snapshot.cloudtrail_lag_seconds.items():
            out.add("sgchurn_cloudtrail_lag_seconds", {"aws_account_id": account, "aws_region": region}, lag)

    def sources() -> None:
        for health in snapshot.sources:
            labels = {
                "source": health.source,
                "aws_account_id": health.aws_account_id,
                "aws_region": health.aws_region,
            }
            out.add("sgchurn_up", labels, 1 if health.up else 0)

    def jobs() -> None:
        for job in snapshot.jobs:
            job_labels = {"task": job.job}
            counts = job.duration_buckets or (0,) * (len(JOB_DURATION_BUCKETS) + 1)
            total = job.duration_sum if job.duration_buckets else 0.0
            out.add_histogram("sgchurn_job_duration_seconds", job_labels, JOB_DURATION_BUCKETS, counts, total)
            if job.last_success is not None:
                out.add(
                    "sgchurn_job_last_success_timestamp_seconds", job_labels, job.last_success.timestamp()
                )
            out.add("sgchurn_job_runs_skipped_total", job_labels, job.skipped)

    def api_requests() -> None:
        for (service, operation), count in snapshot.api_requests.items():
            out.add("sgchurn_aws_api_requests_total", {"service": service, "operation": operation}, count)

    def api_errors() -> None:
        for (service, operation, code), count in snapshot.api_errors.items():
            labels = {"service": service, "operation": operation, "code": code}
            out.add("sgchurn_aws_api_errors_total", labels, count)

    def itself() -> None:
        out.add("sgchurn_build_info", {"version": snapshot.version}, 1)
        shard = {"shard": str(snapshot.shard), "total_shards": str(snapshot.total_shards)}
        out.add("sgchurn_shard_info", shard, 1)
        for account, region in snapshot.owned_targets:
            out.add("sgchurn_shard_owned_targets", {"aws_account_id": account, "aws_region": region}, 1)
        out.add("sgchurn_snapshot_timestamp_seconds", {}, snapshot.generated_at.timestamp())
        out.add("sgchurn_ready", {}, 1 if snapshot.ready else 0)

    def kept_step(
        name: str, key: object, families: frozenset[str], run: Callable[[], object]
    ) -> tuple[frozenset[str], Callable[[], object]]:
        """A step whose families only it writes, its lines kept while its input stays equal."""

        def step() -> None:
            hit = None if kept is None else kept.steps.get(name)
            if hit is not None and hit[0] == key:
                for family, lines in hit[1].items():
                    out.family(family).lines.extend(lines)
                out.dropped.extend(hit[2])
                return
            dropped = len(out.dropped)
            run()
            if kept is not None:
                made = {family: list(out.family(family).lines) for family in families}
                kept.steps[name] = (key, made, out.dropped[dropped:])

        return families, step

    def counter(source: str, name: str) -> tuple[frozenset[str], Callable[[], object]]:
        series = snapshot.counters.get(source, {})
        return kept_step(name, series, frozenset({name}), lambda: out.counters(name, series))

    return [
        (frozenset(_TG_FAMILIES), lambda: out.target_groups(snapshot.target_groups, open_by_key, kept)),
        (frozenset({"sgchurn_rule_gap_open", "sgchurn_rule_gap_open_since_timestamp_seconds"}), open_gaps),
        # Last gaps and counters: the daemon reads them from its store at each publish, mostly unchanged.
        kept_step(
            "last_gaps",
            snapshot.last_gaps,
            frozenset(
                {
                    "sgchurn_rule_gap_last_duration_seconds",
                    "sgchurn_rule_gap_last_end_timestamp_seconds",
                    "sgchurn_rule_gap_last_info",
                    "sgchurn_rule_gap_last_rejected_flows",
                }
            ),
            last_gaps,
        ),
        (
            frozenset(
                {
                    "sgchurn_target_group_attribute_last_change_info",
                    "sgchurn_target_group_attribute_last_change_timestamp_seconds",
                }
            ),
            attribute_changes,
        ),
        (frozenset({"sgchurn_rule_gap_duration_seconds"}), gap_durations),
        *(counter(source, name) for source, name in STORED_SOURCES.items()),
        (frozenset({"sgchurn_cloudtrail_lag_seconds"}), lags),
        (frozenset({"sgchurn_up"}), sources),
        (
            frozenset(
                {
                    "sgchurn_job_duration_seconds",
                    "sgchurn_job_last_success_timestamp_seconds",
                    "sgchurn_job_runs_skipped_total",
                }
            ),
            jobs,
        ),
        (frozenset({"sgchurn_aws_api_requests_total"}), api_requests),
        (frozenset({"sgchurn_aws_api_errors_total"}), api_errors),
        (
            frozenset(
                {
                    "sgchurn_build_info",
                    "sgchurn_shard_info",
                    "sgchurn_shard_owned_targets",
                    "sgchurn_snapshot_timestamp_seconds",
                    "sgchurn_ready",
                }
            ),
            itself,
        ),
    ]


class Exposition:
    """The exposition of one snapshot, rendered when written.

    The sample lines of the text format 0.0.4 and of OpenMetrics 1.0 are the same for our
    families; only the HELP/TYPE lines and OpenMetrics' final `# EOF` differ. Each write renders
    the snapshot again; `dropped` lists the series the last one dropped.
    """

    def __init__(self, snapshot: Snapshot, kept: TargetGroupLines | None = None) -> None:
        self.snapshot = snapshot
        self.kept = kept  # the target groups' lines of an earlier render, reused where unchanged
        self.dropped: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def write(self, fmt: ExpositionFormat, sink: Callable[[list[bytes]], object]) -> None:
        """Render, passing `sink` the exposition in order, a run of complete families at a time."""
        out = _Render()
        steps = _steps(self.snapshot, out, self.kept)
        pending = collections.Counter(name for families, _ in steps for name in families)
        headers, written = _HEADERS[fmt], 0
        for families, run in steps:
            out.writable = families
            run()
            pending.subtract(families)
            pieces: list[bytes] = []
            while written < len(SPECS) and pending[SPECS[written].name] <= 0:
                family = out.families[SPECS[written].name]
                pieces.append(headers[written])
                if family.lines:
                    pieces.append("".join(family.lines).encode())
                    family.lines, family.seen = [], set()  # let the text go as soon as it is written
                written += 1
            if pieces:
                sink(pieces)
        out.writable = frozenset()
        sink([*headers[written:], *([_OPENMETRICS_EOF] if fmt == "openmetrics" else [])])
        self.dropped = tuple(out.dropped)

    def render(self, fmt: ExpositionFormat = "text") -> bytes:
        pieces: list[bytes] = []
        self.write(fmt, pieces.extend)
        return b"".join(pieces)

    def gzip(self, fmt: ExpositionFormat = "text", level: int = GZIP_LEVEL) -> bytes:
        """The exposition as one gzip member. A second thread compresses the families already
        written while the next are rendered (zlib-ng releases the GIL while it compresses)."""
        compressor = zlib_ng.compressobj(level, zlib_ng.DEFLATED, 31)  # wbits 31: gzip header and trailer
        queue: SimpleQueue[list[bytes] | None] = SimpleQueue()
        parts: list[bytes] = []
        failed: list[BaseException] = []

        def compress() -> None:
            try:
                while (pieces := queue.get()) is not None:
                    parts.extend(compressor.compress(piece) for piece in pieces)
                parts.append(compressor.flush())
            except BaseException as exc:  # pragma: no cover - MemoryError and the like
                failed.append(exc)
                while queue.get() is not None:  # drain, so the writer never blocks
                    pass

        worker = threading.Thread(target=compress, name="metrics-gzip", daemon=True)
        worker.start()
        try:
            self.write(fmt, queue.put)
        finally:
            queue.put(None)
            worker.join()
        if failed:  # pragma: no cover
            raise failed[0]
        return b"".join(parts)


def render_exposition(snapshot: Snapshot, fmt: ExpositionFormat = "text") -> bytes:
    """The /metrics body of a snapshot: what generate_latest writes for SnapshotCollector."""
    return Exposition(snapshot).render(fmt)


class ExpositionCache:
    """The /metrics bodies of the current snapshot: rendered once per snapshot, then reused; a
    scrape never waits for another thread's render when it has a body to serve meanwhile.

    The daemon swaps immutable snapshots in whole, so a snapshot's identity is its version. Per
    variant asked for (format, gzip or not) the cache keeps the last body it rendered and the
    snapshot it rendered it from (a reference: its id cannot be reused meanwhile). A scrape of a
    snapshot whose body is ready gets it. While another thread renders a variant (the daemon's
    `warm` after a publish, or another scrape), a scrape of that variant gets the previous
    snapshot's body at once instead of waiting for the lock, as YACE serves the last completed
    poll: the body is at most one publish old, never half made. Only a variant with no body yet
    waits for its first render, so concurrent scrapes of a new variant render it once. Series
    dropped for unexpected label names are logged once per family and label names.
    """

    def __init__(self, get_snapshot: Callable[[], Snapshot]) -> None:
        self._get_snapshot = get_snapshot
        self._lock = threading.Lock()  # guards the dicts below, held for no render
        self._bodies: dict[tuple[ExpositionFormat, bool], tuple[Snapshot, bytes]] = {}
        self._rendering: dict[tuple[ExpositionFormat, bool], threading.Lock] = {}
        #: per variant (used under its render lock): the target groups' lines of its last render
        self._kept: dict[tuple[ExpositionFormat, bool], TargetGroupLines] = {}
        self._warned: set[tuple[str, tuple[str, ...]]] = set()
        self.renders = 0  # snapshots rendered so far
        self.stale_served = 0  # scrapes answered with the previous body while a render ran
        self.target_groups_rendered = 0  # by the last render: the others' lines were kept

    def body(self, fmt: ExpositionFormat = "text", *, gzipped: bool = False) -> bytes:
        variant = (fmt, gzipped)
        with self._lock:
            snapshot = self._get_snapshot()
            done = self._bodies.get(variant)
            if done is not None and done[0] is snapshot:
                return done[1]
            render_lock = self._rendering.setdefault(variant, threading.Lock())
        if done is not None and not render_lock.acquire(blocking=False):
            with self._lock:  # another thread renders this variant: serve what it replaces
                self.stale_served += 1
                return self._bodies[variant][1]
        if done is None:
            render_lock.acquire()  # nothing to serve yet: wait for (or make) the first body
        try:
            return self._render(variant)
        finally:
            render_lock.release()

    def _render(self, variant: tuple[ExpositionFormat, bool]) -> bytes:
        """The current snapshot's body of `variant`, rendered unless a render finished meanwhile
        (the caller holds the variant's render lock)."""
        with self._lock:
            snapshot = self._get_snapshot()
            done = self._bodies.get(variant)
            if done is not None and done[0] is snapshot:
                return done[1]
        # Only the variants asked for are kept (a Prometheus server asks for one: its format,
        # gzipped); another variant of the same snapshot renders it again.
        fmt, gzipped = variant
        kept = self._kept.setdefault(variant, TargetGroupLines())
        exposition = Exposition(snapshot, kept)
        body = exposition.gzip(fmt) if gzipped else exposition.render(fmt)
        with self._lock:
            self.renders += 1
            self.target_groups_rendered = kept.rendered
            self._warn(exposition.dropped)
            self._bodies[variant] = (snapshot, body)
        return body

    def warm(self) -> None:
        """Render the current snapshot's bodies ahead of the next scrape (called after a publish).

        Renders the variants scrapes asked for so far (text by default), so the background job
        pays for the rendering. It takes every variant's render lock first, so that meanwhile a
        scrape of any of them gets its previous body at once rather than rendering it too.
        """
        with self._lock:
            wanted = list(self._bodies) or [("text", False)]
            locks = [self._rendering.setdefault(variant, threading.Lock()) for variant in wanted]
        held = []
        try:
            for lock in locks:
                lock.acquire()
                held.append(lock)
            for variant, lock in zip(wanted, locks, strict=True):
                self._render(variant)
                lock.release()
                held.remove(lock)
        finally:
            for lock in held:
                lock.release()

    def _warn(self, dropped: Iterable[tuple[str, tuple[str, ...]]]) -> None:
        for item in dropped:
            if item not in self._warned:  # once per family and label-name set, not every render
                self._warned.add(item)
                log.warning("dropped series with unexpected labels: family %s, labels %s", *item)


def _values(values: Iterable[str]) -> str:
    return ", ".join(f"`{v}`" for v in values)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(specs: Sequence[MetricSpec] = SPECS) -> str:
    """docs/metrics.md: the reference table of every family."""
    lines = [
        "# Metrics",
        "",
        "<!-- Generated by `python -m exporter.metrics` from exporter/metrics.py SPECS. Do not edit. -->",
        "",
        "Every family `sg-churn-exporter` exposes on `/metrics`. Names and labels of `stable` families",
        "are a contract; `experimental` ones may change in a minor release. Per-target-group series",
        "carry `aws_account_id`, `aws_region`, `target_group` (the name, never the ARN), `namespace` and",
        "`service`; `flow` is `traffic` or `health_check`. Families are always present (with HELP and",
        "TYPE), even while they have no series. Counter series appear with their first event (no zero",
        "series: see the Changelog below).",
        "",
        "Label values:",
        "",
        f"- `reason`: {_values(REASONS)}; on sgchurn_target_group_not_evaluable_targets: "
        f"{_values(NOT_EVALUABLE_REASONS)}",
        f"- `reason` of `sgchurn_cloudtrail_records_rejected_total`: {_values(REJECTION_REASONS)}",
        f"- `cause`: {_values(CAUSES)}",
        f"- `order`: {_values(ORDERS)}",
        "- `result`: `success`, `failed`",
        f"- `actor`: the role or principal name from CloudTrail, `{UNKNOWN_ACTOR}` when it named none",
        "",
        "| Name | Type | Labels | Stability | Help |",
        "| --- | --- | --- | --- | --- |",
    ]
    for spec in specs:
        labels = ", ".join(f"`{label}`" for label in spec.labels) or "-"
        lines.append(f"| `{spec.name}` | {spec.type} | {labels} | {spec.stability} | {_cell(spec.help)} |")
    return "\n".join(lines) + "\n\n" + CHANGELOG


def main(argv: Sequence[str] | None = None) -> int:
    del argv
    sys.stdout.write(render_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
