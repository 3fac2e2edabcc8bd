"""The series of a snapshot: one generator per family group, the only walk of a snapshot.

A family group is the families one part of the snapshot feeds (a target group's families, the
open gaps, the last gaps, ...). Its generator yields its samples in exposition order, as
(family name, labels, value), a histogram's value a `Buckets`. Every consumer reads them: the text
writer (writer.py, which keeps a target group's lines, and a group's while its input is equal)
and the prometheus_client adapter (adapter.py, the reference of the byte-equality tests and what
serves `escaping=` negotiation). Both check the label names against the spec, drop a series whose
names differ, and keep the first series of a label set.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from exporter.daemon.snapshot import (
    GAP_DURATION_BUCKETS,
    JOB_DURATION_BUCKETS,
    GapView,
    Snapshot,
    TargetGroupView,
)
from exporter.engine.flows import FLOW_KINDS, NOT_EVALUABLE_REASONS, REASONS
from exporter.metrics.specs import SPECS_BY_NAME, STORED_SOURCES, UNKNOWN_ACTOR


@dataclass(frozen=True, slots=True)
class Buckets:
    """A histogram series' value: cumulative counts per bucket bound, +Inf last, and the sum."""

    bounds: Sequence[float]
    counts: Sequence[int]
    total: float


Value = float | Buckets
Sample = tuple[str, Mapping[str, str], Value]
#: The open gap of each (target group ARN, flow): the earliest, when several are open.
OpenGaps = Mapping[tuple[str, str], GapView]


def open_gaps_by_key(snapshot: Snapshot) -> OpenGaps:
    open_by_key: dict[tuple[str, str], GapView] = {}
    for gap in snapshot.open_gaps:
        key = (gap.target_group_arn, gap.flow)
        if key not in open_by_key or gap.start < open_by_key[key].start:
            open_by_key[key] = gap
    return open_by_key


@dataclass(frozen=True)
class FamilyGroup:
    """Families fed by one part of a snapshot, and the generator of their samples.

    `families`: the families `samples` adds to (the text writer enforces it, and writes a family
    out once no later group adds to it). `kept_while`: the input the samples depend on alone, so
    a writer may keep the group's lines while it stays equal (None: rendered every time).
    """

    name: str
    families: tuple[str, ...]
    samples: Callable[[Snapshot, OpenGaps], Iterable[Sample]]
    kept_while: Callable[[Snapshot], object] | None = None

    def __post_init__(self) -> None:
        unknown = set(self.families) - set(SPECS_BY_NAME)
        if unknown:  # pragma: no cover - a programming error, caught at import
            raise ValueError(f"{self.name}: no spec for {sorted(unknown)}")


def short_name(arn_or_name: str) -> str:
    """A load balancer's name from its ARN (`.../loadbalancer/net/<name>/<id>`); a name stays as is."""
    if not arn_or_name.startswith("arn:"):
        return arn_or_name
    resource = arn_or_name.split(":", 5)[-1]
    parts = resource.split("/")
    if len(parts) >= 4 and parts[0] == "loadbalancer":
        return parts[2]
    return parts[-1]


# -- a target group's families ---------------------------------------------------------------------

TARGET_GROUP_FAMILIES: tuple[str, ...] = (
    "sgchurn_target_group_info",
    "sgchurn_target_group_preserve_client_ip",
    "sgchurn_target_group_targets",
    "sgchurn_target_group_reachability_ratio",
    "sgchurn_target_group_unadmitted_targets",
    "sgchurn_target_group_not_evaluable_targets",
    "sgchurn_rule_gap_open",
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


def target_group_samples(tg: TargetGroupView, open_gaps: OpenGaps) -> Iterator[Sample]:
    """One target group's series: they depend on its view and on which of its flows have a gap
    open, nothing else (writer.TargetGroupLines keeps them until either changes)."""
    identity = tg.identity
    info = {
        **identity,
        "load_balancer": short_name(tg.load_balancer),
        "scheme": tg.scheme,
        "mode": tg.mode,
        "target_type": tg.target_type,
        "protocol": tg.protocol,
        "cluster": tg.cluster,
        "mapped_by": tg.mapped_by,
        "intent": tg.intent,
    }
    yield "sgchurn_target_group_info", info, 1
    yield "sgchurn_target_group_preserve_client_ip", identity, 1 if tg.preserve_client_ip else 0
    yield "sgchurn_target_group_targets", identity, tg.targets
    for flow in FLOW_KINDS:
        status = tg.flows.get(flow)
        with_flow = {**identity, "flow": flow}
        if status is not None:
            yield "sgchurn_target_group_reachability_ratio", with_flow, status.ratio
            by_reason = status.unadmitted_by_reason
            for reason in REASONS if by_reason else ():  # only the reasons some target has: a
                count = by_reason.get(reason, 0)  # series per reason and flow would be 10 zeros each
                if count != 0:
                    yield "sgchurn_target_group_unadmitted_targets", {**with_flow, "reason": reason}, count
        yield "sgchurn_rule_gap_open", with_flow, 1 if (tg.arn, flow) in open_gaps else 0
    for reason, count in _not_evaluable(tg):
        yield "sgchurn_target_group_not_evaluable_targets", {**identity, "reason": reason}, count


def _target_groups(snapshot: Snapshot, open_gaps: OpenGaps) -> Iterator[Sample]:
    for tg in snapshot.target_groups:
        yield from target_group_samples(tg, open_gaps)


# -- gaps --------------------------------------------------------------------------------------------


def _open_gaps(snapshot: Snapshot, open_gaps: OpenGaps) -> Iterator[Sample]:
    """Also those of target groups no longer listed (e.g. just deleted): their sgchurn_rule_gap_open
    series; those of listed target groups are already there (the first series wins)."""
    for gap in sorted(open_gaps.values(), key=lambda g: g.start):
        with_flow = {**gap.identity, "flow": gap.flow}
        yield "sgchurn_rule_gap_open", with_flow, 1
        if gap.start_exact:  # an unknown start is not exported as if it were one
            yield "sgchurn_rule_gap_open_since_timestamp_seconds", with_flow, gap.start.timestamp()


def _last_gaps(snapshot: Snapshot, open_gaps: OpenGaps) -> Iterator[Sample]:
    for gap in snapshot.last_gaps:
        with_flow = {**gap.identity, "flow": gap.flow}
        duration = gap.duration_seconds
        if duration is not None:
            yield "sgchurn_rule_gap_last_duration_seconds", with_flow, duration
        if gap.end is not None:
            yield "sgchurn_rule_gap_last_end_timestamp_seconds", with_flow, gap.end.timestamp()
        info = {
            **with_flow,
            "cause": gap.cause,
            "actor": gap.actor or UNKNOWN_ACTOR,
            "trigger_actor": gap.trigger_actor,
        }
        yield "sgchurn_rule_gap_last_info", info, 1
        rejected = None if gap.impact is None else gap.impact.rejected_flows
        if rejected is not None:  # absent until the gap's flow logs are read (no zero series)
            yield "sgchurn_rule_gap_last_rejected_flows", with_flow, rejected


def _attribute_changes(snapshot: Snapshot, open_gaps: OpenGaps) -> Iterator[Sample]:
    for change in snapshot.attribute_changes:
        identity = {**change.identity, "attribute": change.attribute}
        info = {**identity, "value": change.value, "actor": change.actor}
        yield "sgchurn_target_group_attribute_last_change_info", info, 1
        timestamp = change.time.timestamp()
        yield "sgchurn_target_group_attribute_last_change_timestamp_seconds", identity, timestamp


def _gap_durations(snapshot: Snapshot, open_gaps: OpenGaps) -> Iterator[Sample]:
    for labels, hist in snapshot.gap_durations.items():
        value = Buckets(GAP_DURATION_BUCKETS, hist.buckets, hist.total)
        yield "sgchurn_rule_gap_duration_seconds", dict(labels), value


# -- stored counters and "last time" gauges: Snapshot.counters ----------------------------------


def _stored(source: str, name: str) -> FamilyGroup:
    """A family read from Snapshot.counters[source] alone: a series per key, as stored."""

    def samples(snapshot: Snapshot, open_gaps: OpenGaps) -> Iterator[Sample]:
        for labels, value in snapshot.counters.get(source, {}).items():
            yield name, dict(labels), value

    return FamilyGroup(
        source, (name,), samples, kept_while=lambda snapshot: snapshot.counters.get(source, {})
    )


# -- the exporter itself ---------------------------------------------------------------------------


def _lags(snapshot: Snapshot, open_gaps: OpenGaps) -> Iterator[Sample]:
    for (account, region), lag in snapshot.cloudtrail_lag_seconds.items():
        yield "sgchurn_cloudtrail_lag_seconds", {"aws_account_id": account, "aws_region": region}, lag


def _sources(snapshot: Snapshot, open_gaps: OpenGaps) -> Iterator[Sample]:
    for health in snapshot.sources:
        labels = {
            "source": health.source,
            "aws_account_id": health.aws_account_id,
            "aws_region": health.aws_region,
        }
        yield "sgchurn_up", labels, 1 if health.up else 0


def _jobs(snapshot: Snapshot, open_gaps: OpenGaps) -> Iterator[Sample]:
    for job in snapshot.jobs:
        labels = {"task": job.job}
        counts = job.duration_buckets or (0,) * (len(JOB_DURATION_BUCKETS) + 1)
        total = job.duration_sum if job.duration_buckets else 0.0
        yield "sgchurn_job_duration_seconds", labels, Buckets(JOB_DURATION_BUCKETS, counts, total)
        if job.last_success is not None:
            yield "sgchurn_job_last_success_timestamp_seconds", labels, job.last_success.timestamp()
        yield "sgchurn_job_runs_skipped_total", labels, job.skipped


def _api_requests(snapshot: Snapshot, open_gaps: OpenGaps) -> Iterator[Sample]:
    for (service, operation), count in snapshot.api_requests.items():
        yield "sgchurn_aws_api_requests_total", {"service": service, "operation": operation}, count


def _api_errors(snapshot: Snapshot, open_gaps: OpenGaps) -> Iterator[Sample]:
    for (service, operation, code), count in snapshot.api_errors.items():
        yield (
            "sgchurn_aws_api_errors_total",
            {"service": service, "operation": operation, "code": code},
            count,
        )


def _itself(snapshot: Snapshot, open_gaps: OpenGaps) -> Iterator[Sample]:
    yield "sgchurn_build_info", {"version": snapshot.version}, 1
    yield "sgchurn_shard_info", {"shard": str(snapshot.shard), "total_shards": str(snapshot.total_shards)}, 1
    for account, region in snapshot.owned_targets:
        yield "sgchurn_shard_owned_targets", {"aws_account_id": account, "aws_region": region}, 1
    yield "sgchurn_snapshot_timestamp_seconds", {}, snapshot.generated_at.timestamp()
    yield "sgchurn_ready", {}, 1 if snapshot.ready else 0


#: The target groups' families: writer.TargetGroupLines renders them per target group
#: (`target_group_samples`), keeping each target group's lines until it changes.
TARGET_GROUPS = FamilyGroup("target_groups", TARGET_GROUP_FAMILIES, _target_groups)

#: Every family group, in the order their samples are added (the order of the series within a
#: family; families are exposed in SPECS order). Each family belongs to one group, except
#: sgchurn_rule_gap_open (target groups, then open gaps of target groups no longer listed).
GROUPS: tuple[FamilyGroup, ...] = (
    TARGET_GROUPS,
    FamilyGroup(
        "open_gaps",
        ("sgchurn_rule_gap_open", "sgchurn_rule_gap_open_since_timestamp_seconds"),
        _open_gaps,
    ),
    # Last gaps and stored counters: the daemon reads them from its store at each publish, mostly
    # unchanged, so their lines are kept while they stay equal.
    FamilyGroup(
        "last_gaps",
        (
            "sgchurn_rule_gap_last_duration_seconds",
            "sgchurn_rule_gap_last_end_timestamp_seconds",
            "sgchurn_rule_gap_last_info",
            "sgchurn_rule_gap_last_rejected_flows",
        ),
        _last_gaps,
        kept_while=lambda snapshot: snapshot.last_gaps,
    ),
    FamilyGroup(
        "attribute_changes",
        (
            "sgchurn_target_group_attribute_last_change_info",
            "sgchurn_target_group_attribute_last_change_timestamp_seconds",
        ),
        _attribute_changes,
    ),
    FamilyGroup("gap_durations", ("sgchurn_rule_gap_duration_seconds",), _gap_durations),
    *itertools.starmap(_stored, STORED_SOURCES.items()),
    FamilyGroup("cloudtrail_lags", ("sgchurn_cloudtrail_lag_seconds",), _lags),
    FamilyGroup("sources", ("sgchurn_up",), _sources),
    FamilyGroup(
        "jobs",
        (
            "sgchurn_job_duration_seconds",
            "sgchurn_job_last_success_timestamp_seconds",
            "sgchurn_job_runs_skipped_total",
        ),
        _jobs,
    ),
    FamilyGroup("api_requests", ("sgchurn_aws_api_requests_total",), _api_requests),
    FamilyGroup("api_errors", ("sgchurn_aws_api_errors_total",), _api_errors),
    FamilyGroup(
        "itself",
        (
            "sgchurn_build_info",
            "sgchurn_shard_info",
            "sgchurn_shard_owned_targets",
            "sgchurn_snapshot_timestamp_seconds",
            "sgchurn_ready",
        ),
        _itself,
    ),
)


def samples_of(snapshot: Snapshot) -> Iterator[Sample]:
    """Every sample of a snapshot, group after group."""
    open_gaps = open_gaps_by_key(snapshot)
    for group in GROUPS:
        yield from group.samples(snapshot, open_gaps)
