"""The snapshot: everything /metrics and the landing page show, built by jobs and swapped in whole.

Immutable once built. A scrape reads the current snapshot and never waits on AWS.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from functools import cached_property

from exporter.engine.changes import Change
from exporter.engine.flows import FlowKind, FlowStatus
from exporter.engine.impact import ImpactResult
from exporter.engine.inventory import Intent, Inventory

#: Buckets of sgchurn_rule_gap_duration_seconds: 1 s to 1 h.
GAP_DURATION_BUCKETS: tuple[float, ...] = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

Labels = tuple[tuple[str, str], ...]  # sorted (name, value) pairs

#: Snapshot.counters key of the persisted time a gap's harm was last confirmed per target group
#: and flow (a "last time" gauge kept with the counters, not a counter).
IMPACT_CONFIRMED_LAST = "rule_gap_last_impact_confirmed"
#: Snapshot.counters key of the persisted end time of the last break-before-make replacement per
#: security group (a "last time" gauge kept with the counters, not a counter).
BREAK_BEFORE_MAKE_LAST = "rule_replacement_last_break_before_make"


def labels_of(**values: str) -> Labels:
    return tuple(sorted(values.items()))


@dataclass(frozen=True)
class TargetGroupIdentity:
    """How users find a target group: the labels every per-target-group series carries. Every view
    (target group, gap, attribute change) and the gap tracker name a target group by this one type."""

    aws_account_id: str
    aws_region: str
    target_group: str
    namespace: str
    service: str

    @classmethod
    def of(cls, view: GapView | AttributeChangeView) -> TargetGroupIdentity:
        """The identity of a view that carries its five fields."""
        return cls(view.aws_account_id, view.aws_region, view.target_group, view.namespace, view.service)

    def labels_dict(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in IDENTITY_LABELS}

    def labels(self, **extra: str) -> Labels:
        return labels_of(**self.labels_dict(), **extra)


#: The identity's label names, in declaration order (metrics.IDENTITY).
IDENTITY_LABELS: tuple[str, ...] = tuple(f.name for f in fields(TargetGroupIdentity))


@dataclass(frozen=True)
class TargetGroupView:
    """One target group as it is now, with the labels that identify it."""

    aws_account_id: str
    aws_region: str
    arn: str
    name: str
    load_balancer: str
    scheme: str
    mode: str  # "sg" | "legacy"
    target_type: str
    protocol: str
    namespace: str
    service: str
    cluster: str
    mapped_by: str  # "targetgroupbinding" | "tags" | "none"
    preserve_client_ip: bool
    targets: int
    flows: Mapping[FlowKind, FlowStatus]
    intent: str = "default"  # what its client sources are judged by: binding | managed_rules | default

    @cached_property
    def identity(self) -> dict[str, str]:
        """The labels every per-target-group series carries (made once per view: a view is immutable)."""
        ident = TargetGroupIdentity(
            self.aws_account_id, self.aws_region, self.name, self.namespace, self.service
        )
        return ident.labels_dict()


@dataclass(frozen=True)
class GapView:
    """A gap as shown: open (end None) or closed."""

    key: str
    aws_account_id: str
    aws_region: str
    target_group_arn: str
    target_group: str
    namespace: str
    service: str
    flow: FlowKind
    start: datetime
    end: datetime | None
    cause: str
    actor: str  # role / principal name, "" when unknown
    actor_arn: str
    explained: bool  # True when CloudTrail records explain it; False: seen by inventory polls only
    actor_session: str = ""  # who assumed the actor's role (assumed-role session name)
    #: The attribute change that preceded the gap on its target group (engine/triggers.py):
    #: trigger_who is role/session (or principal), "" when none was found.
    trigger_who: str = ""
    trigger_time: datetime | None = None
    trigger_event_id: str = ""
    trigger_detail: str = ""  # e.g. "preserve_client_ip.enabled=false"
    #: False when the real start is unknown: the flow was already not admitted when the exporter
    #: first looked (start-up, or before the first record); `start` is then the first moment seen.
    start_exact: bool = True
    #: The impact of a closed gap once checked (daemon/impacts.py); None: not checked (yet).
    impact: ImpactResult | None = None
    #: Why the start is not exact ("" when it is): the engine's note (engine/gaps.py), or
    #: FIRST_LOOK_NOTE for a gap the polls saw at the exporter's first look.
    note: str = ""

    @property
    def trigger_actor(self) -> str:
        """The trigger_actor label: who made the triggering change; "none" when an explained gap
        had no attribute change before it, "unknown" when CloudTrail has not explained the gap."""
        if self.trigger_who:
            return self.trigger_who
        return "none" if self.explained else "unknown"

    @property
    def duration_seconds(self) -> float | None:
        return None if self.end is None else (self.end - self.start).total_seconds()

    @cached_property
    def identity(self) -> dict[str, str]:
        """The labels every per-target-group series carries (made once per view)."""
        return TargetGroupIdentity.of(self).labels_dict()


@dataclass(frozen=True)
class AttributeChangeView:
    """The last CloudTrail-recorded change of one watched attribute of one target group."""

    aws_account_id: str
    aws_region: str
    target_group: str
    namespace: str
    service: str
    attribute: str
    value: str
    actor: str  # role/session (or principal), "unknown" when CloudTrail did not say
    time: datetime

    @cached_property
    def identity(self) -> dict[str, str]:
        """The labels every per-target-group series carries (made once per view)."""
        return TargetGroupIdentity.of(self).labels_dict()


@dataclass(frozen=True)
class HistogramState:
    """Cumulative bucket counts (same order as GAP_DURATION_BUCKETS, +Inf last), sum and count."""

    buckets: tuple[int, ...]
    total: float
    count: int


#: The labels sgchurn_rule_gap_duration_seconds keeps: a distribution across target groups (a
#: histogram per target group would be 13 series for each one that ever had a gap).
GAP_DURATION_LABELS: tuple[str, ...] = ("aws_account_id", "aws_region", "flow")


def merge_histograms(
    series: Mapping[Labels, HistogramState], keep: tuple[str, ...] = GAP_DURATION_LABELS
) -> dict[Labels, HistogramState]:
    """The histograms summed over every label but `keep` (series with other bucket counts than the
    first of their group are left out rather than mis-added)."""
    merged: dict[Labels, HistogramState] = {}
    for labels, hist in series.items():
        key = tuple((name, value) for name, value in labels if name in keep)
        have = merged.get(key)
        if have is None:
            merged[key] = hist
        elif len(have.buckets) == len(hist.buckets):
            merged[key] = HistogramState(
                tuple(a + b for a, b in zip(have.buckets, hist.buckets, strict=True)),
                have.total + hist.total,
                have.count + hist.count,
            )
    return merged


#: The sources not tied to one account and region (the Kubernetes API, the state file): their
#: SourceHealth, and so their sgchurn_up series, carry empty aws_account_id and aws_region.
SOURCES_WITHOUT_ACCOUNT_REGION = ("kubernetes", "state")


@dataclass(frozen=True)
class SourceHealth:
    source: str  # inventory | lookup_events | sqs (per account and region) | kubernetes | state
    aws_account_id: str
    aws_region: str
    up: bool
    last_success: datetime | None
    last_error: str | None


@dataclass(frozen=True)
class JobStats:
    job: str
    runs: int
    skipped: int
    last_duration_seconds: float | None
    last_success: datetime | None
    last_error: str | None
    duration_buckets: tuple[int, ...] = ()  # cumulative, JOB_DURATION_BUCKETS then +Inf
    duration_sum: float = 0.0


JOB_DURATION_BUCKETS: tuple[float, ...] = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


@dataclass(frozen=True)
class ExplainBasis:
    """What one monitor's last evaluation judged by: its inventory, the intents the analysis
    learned and the changes it held. The landing page explains a target group from it
    (daemon/explainer.py), lazily and once per snapshot, never from the monitor's live state."""

    inventory: Inventory
    intents: Mapping[str, Intent]
    changes: tuple[Change, ...]


@dataclass(frozen=True)
class Snapshot:
    generated_at: datetime
    version: str = "0.0.0"
    shard: int = 0
    total_shards: int = 1
    ready: bool = False
    target_groups: tuple[TargetGroupView, ...] = ()
    open_gaps: tuple[GapView, ...] = ()
    recent_gaps: tuple[GapView, ...] = ()  # closed, newest first
    #: Persisted counters: family name (without _total) -> labels -> value.
    counters: Mapping[str, Mapping[Labels, float]] = field(default_factory=dict)
    #: sgchurn_rule_gap_duration_seconds by labels (GAP_DURATION_LABELS: account, region, flow).
    gap_durations: Mapping[Labels, HistogramState] = field(default_factory=dict)
    #: Last closed gap per target group and flow.
    last_gaps: tuple[GapView, ...] = ()
    sources: tuple[SourceHealth, ...] = ()
    jobs: tuple[JobStats, ...] = ()
    api_requests: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (service, operation)
    api_errors: Mapping[tuple[str, str, str], int] = field(default_factory=dict)  # (service, operation, code)
    cloudtrail_lag_seconds: Mapping[tuple[str, str], float] = field(default_factory=dict)  # (account, region)
    owned_targets: tuple[tuple[str, str], ...] = ()  # (account or "default", region) this shard watches
    #: When this exporter process started watching: before it, what the page draws is unknown.
    watched_since: datetime | None = None
    #: The last change of each watched attribute per target group seen in CloudTrail.
    attribute_changes: tuple[AttributeChangeView, ...] = ()
    #: What each monitor's last evaluation judged by: the input of the per-target-group explanation.
    explain_bases: tuple[ExplainBasis, ...] = ()
