"""Every metric family, declared once as data, and the collector that renders a Snapshot.

kube-state-metrics style: `SPECS` is the contract (name, type, help, labels, stability). The
collector builds fresh families from the current snapshot on every scrape; it never touches AWS
and never blocks, because the daemon swaps whole, immutable snapshots in.

`python -m exporter.metrics` prints docs/metrics.md from `SPECS`.

Conventions: one prefix `sgchurn_`, base units (seconds, ratios), counters end in `_total`,
properties are `_info` families with value 1, label values are bounded (names, never ARNs,
timestamps or gap keys).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from exporter.daemon.snapshot import (
    GAP_DURATION_BUCKETS,
    JOB_DURATION_BUCKETS,
    GapView,
    Labels,
    Snapshot,
)
from exporter.engine.flows import FLOW_KINDS, REASONS
from exporter.engine.gaps import CAUSES, ORDERS

log = logging.getLogger(__name__)

MetricType = Literal["gauge", "counter", "histogram", "info"]
Stability = Literal["stable", "experimental"]

#: The labels every per-target-group series carries (TargetGroupView.identity / GapView.identity).
IDENTITY: tuple[str, ...] = ("aws_account_id", "aws_region", "target_group", "namespace", "service")
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
        "Service.",
        (*IDENTITY, "load_balancer", "scheme", "mode", "target_type", "protocol", "cluster", "mapped_by"),
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
        "Fraction of the target group's targets whose security groups admit the flow (1 when it has no "
        "targets).",
        (*IDENTITY, "flow"),
    ),
    _s(
        "sgchurn_target_group_unadmitted_targets",
        "gauge",
        "Targets whose security groups do not admit the flow, by reason (every reason is exported, 0 when "
        "none).",
        (*IDENTITY, "flow", "reason"),
    ),
    # Gaps.
    _s(
        "sgchurn_rule_gap_open",
        "gauge",
        "1 while a rule gap is open for the target group and flow (some target does not admit it), else 0.",
        (*IDENTITY, "flow"),
    ),
    _s(
        "sgchurn_rule_gap_open_since_timestamp_seconds",
        "gauge",
        "Unix time the currently open rule gap started; present only while a gap is open.",
        (*IDENTITY, "flow"),
    ),
    _s(
        "sgchurn_rule_gaps_total",
        "counter",
        "Closed rule gaps, by flow and cause.",
        (*IDENTITY, "flow", "cause"),
    ),
    _s(
        "sgchurn_rule_gap_duration_seconds",
        "histogram",
        "Durations of closed rule gaps.",
        (*IDENTITY, "flow"),
    ),
    _s(
        "sgchurn_rule_gap_last_duration_seconds",
        "gauge",
        "Duration of the last closed rule gap of the target group and flow.",
        (*IDENTITY, "flow"),
        "experimental",
    ),
    _s(
        "sgchurn_rule_gap_last_info",
        "info",
        "Cause and actor (role or principal name, 'unknown' when CloudTrail did not say) of the last "
        "closed rule gap of the target group and flow.",
        (*IDENTITY, "flow", "cause", "actor"),
        "experimental",
    ),
    # Changes seen in CloudTrail.
    _s(
        "sgchurn_rule_replacements_total",
        "counter",
        "Security-group rule replacements (a revoke and an authorize close together), by order: "
        "make_before_break or break_before_make.",
        (*ACCOUNT_REGION, "security_group", "order"),
    ),
    _s(
        "sgchurn_target_group_attribute_changes_total",
        "counter",
        "Changes of watched target-group attributes (such as preserve_client_ip.enabled) seen in CloudTrail.",
        (*IDENTITY, "attribute"),
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
        "CloudTrail records rejected (malformed, duplicate, out of scope ...), by reason.",
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
        "Durations of the exporter's background job runs.",
        ("job",),
        "experimental",
    ),
    _s(
        "sgchurn_job_last_success_timestamp_seconds",
        "gauge",
        "Unix time the job last finished successfully; absent before its first success.",
        ("job",),
        "experimental",
    ),
    _s(
        "sgchurn_job_runs_skipped_total",
        "counter",
        "Job runs skipped because the previous run was still going.",
        ("job",),
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
}


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
            for reason in REASONS:
                count = 0 if status is None else status.unadmitted_by_reason.get(reason, 0)
                out.add("sgchurn_target_group_unadmitted_targets", {**with_flow, "reason": reason}, count)
            out.add("sgchurn_rule_gap_open", with_flow, 1 if (tg.arn, flow) in open_by_key else 0)
    # Open gaps (also those of target groups no longer listed, e.g. just deleted).
    for gap in sorted(open_by_key.values(), key=lambda g: g.start):
        with_flow = {**gap.identity(), "flow": gap.flow}
        out.add("sgchurn_rule_gap_open", with_flow, 1)
        out.add("sgchurn_rule_gap_open_since_timestamp_seconds", with_flow, gap.start.timestamp())
    for gap in snapshot.last_gaps:
        with_flow = {**gap.identity(), "flow": gap.flow}
        duration = gap.duration_seconds
        if duration is not None:
            out.add("sgchurn_rule_gap_last_duration_seconds", with_flow, duration)
        out.add("sgchurn_rule_gap_last_info", {**with_flow, "cause": gap.cause, "actor": _actor(gap)}, 1)
    for labels, hist in snapshot.gap_durations.items():
        out.add_histogram(
            "sgchurn_rule_gap_duration_seconds", dict(labels), GAP_DURATION_BUCKETS, hist.buckets, hist.total
        )
    # Persisted counters.
    for source, name in COUNTER_SOURCES.items():
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
        job_labels = {"job": job.job}
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
        "TYPE), even while they have no series.",
        "",
        "Label values:",
        "",
        f"- `reason`: {_values(REASONS)}",
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
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    del argv
    sys.stdout.write(render_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
