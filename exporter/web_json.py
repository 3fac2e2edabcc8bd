"""/api/snapshot.json: the snapshot for tools, one declared shape encoded by msgspec.

Times are ISO 8601 UTC strings, label sets objects; the document's keys are in the declared order.
"""

from __future__ import annotations

from typing import Any, cast

import msgspec

from exporter.daemon.snapshot import GapView, Snapshot, TargetGroupView
from exporter.engine.timeutil import format_optional_time, format_time
from exporter.reports.impact import ImpactJson, impact_json


class FlowJson(msgspec.Struct, frozen=True):
    targets: int
    admitted: int
    ratio: float
    unadmitted_by_reason: dict[str, int]


class TargetGroupJson(msgspec.Struct, frozen=True):
    aws_account_id: str
    aws_region: str
    arn: str
    name: str
    load_balancer: str
    scheme: str
    mode: str
    target_type: str
    protocol: str
    namespace: str
    service: str
    cluster: str
    mapped_by: str
    preserve_client_ip: bool
    targets: int
    flows: dict[str, FlowJson]


class GapJson(msgspec.Struct, frozen=True):
    key: str
    aws_account_id: str
    aws_region: str
    target_group_arn: str
    target_group: str
    namespace: str
    service: str
    flow: str
    start: str
    end: str | None
    duration_seconds: float | None
    cause: str
    actor: str
    actor_arn: str
    explained: bool
    start_exact: bool
    note: str | None  # why the start is not exact (GapView.note), else null
    impact: ImpactJson | None = None  # a checked gap's impact: the fields of `replay --impact`


class SeriesJson(msgspec.Struct, frozen=True):
    labels: dict[str, str]
    value: float


class HistogramJson(msgspec.Struct, frozen=True):
    labels: dict[str, str]
    buckets: list[int]
    sum: float
    count: int


class SourceJson(msgspec.Struct, frozen=True):
    source: str
    aws_account_id: str
    aws_region: str
    up: bool
    last_success: str | None
    last_error: str | None


class JobJson(msgspec.Struct, frozen=True):
    job: str
    runs: int
    skipped: int
    last_duration_seconds: float | None
    last_success: str | None
    last_error: str | None
    duration_buckets: list[int]
    duration_sum: float


class ApiRequestsJson(msgspec.Struct, frozen=True):
    service: str
    operation: str
    count: int


class ApiErrorsJson(msgspec.Struct, frozen=True):
    service: str
    operation: str
    code: str
    count: int


class LagJson(msgspec.Struct, frozen=True):
    aws_account_id: str
    aws_region: str
    seconds: float


class OwnedTargetJson(msgspec.Struct, frozen=True):
    aws_account_id: str
    aws_region: str


class SnapshotJson(msgspec.Struct, frozen=True):
    generated_at: str
    version: str
    shard: int
    total_shards: int
    ready: bool
    target_groups: list[TargetGroupJson]
    open_gaps: list[GapJson]
    recent_gaps: list[GapJson]
    last_gaps: list[GapJson]
    counters: dict[str, list[SeriesJson]]
    gap_durations: list[HistogramJson]
    sources: list[SourceJson]
    jobs: list[JobJson]
    api_requests: list[ApiRequestsJson]
    api_errors: list[ApiErrorsJson]
    cloudtrail_lag_seconds: list[LagJson]
    watched_since: str | None
    owned_targets: list[OwnedTargetJson]


def _gap(gap: GapView) -> GapJson:
    return GapJson(
        gap.key,
        gap.aws_account_id,
        gap.aws_region,
        gap.target_group_arn,
        gap.target_group,
        gap.namespace,
        gap.service,
        gap.flow,
        format_time(gap.start),
        format_optional_time(gap.end),
        gap.duration_seconds,
        gap.cause,
        gap.actor,
        gap.actor_arn,
        gap.explained,
        gap.start_exact,
        gap.note or None,
        None if gap.impact is None else impact_json(gap.impact),
    )


def _target_group(tg: TargetGroupView) -> TargetGroupJson:
    return TargetGroupJson(
        tg.aws_account_id,
        tg.aws_region,
        tg.arn,
        tg.name,
        tg.load_balancer,
        tg.scheme,
        tg.mode,
        tg.target_type,
        tg.protocol,
        tg.namespace,
        tg.service,
        tg.cluster,
        tg.mapped_by,
        tg.preserve_client_ip,
        tg.targets,
        {
            kind: FlowJson(status.targets, status.admitted, status.ratio, dict(status.unadmitted_by_reason))
            for kind, status in tg.flows.items()
        },
    )


def snapshot_document(snapshot: Snapshot) -> SnapshotJson:
    """The snapshot in its declared JSON shape."""
    return SnapshotJson(
        generated_at=format_time(snapshot.generated_at),
        version=snapshot.version,
        shard=snapshot.shard,
        total_shards=snapshot.total_shards,
        ready=snapshot.ready,
        target_groups=[_target_group(tg) for tg in snapshot.target_groups],
        open_gaps=[_gap(g) for g in snapshot.open_gaps],
        recent_gaps=[_gap(g) for g in snapshot.recent_gaps],
        last_gaps=[_gap(g) for g in snapshot.last_gaps],
        counters={
            family: [SeriesJson(dict(labels), value) for labels, value in series.items()]
            for family, series in snapshot.counters.items()
        },
        gap_durations=[
            HistogramJson(dict(labels), list(hist.buckets), hist.total, hist.count)
            for labels, hist in snapshot.gap_durations.items()
        ],
        sources=[
            SourceJson(
                s.source,
                s.aws_account_id,
                s.aws_region,
                s.up,
                format_optional_time(s.last_success),
                s.last_error,
            )
            for s in snapshot.sources
        ],
        jobs=[
            JobJson(
                j.job,
                j.runs,
                j.skipped,
                j.last_duration_seconds,
                format_optional_time(j.last_success),
                j.last_error,
                list(j.duration_buckets),
                j.duration_sum,
            )
            for j in snapshot.jobs
        ],
        api_requests=[ApiRequestsJson(s, o, count) for (s, o), count in snapshot.api_requests.items()],
        api_errors=[ApiErrorsJson(s, o, code, count) for (s, o, code), count in snapshot.api_errors.items()],
        cloudtrail_lag_seconds=[
            LagJson(account, region, lag)
            for (account, region), lag in snapshot.cloudtrail_lag_seconds.items()
        ],
        watched_since=format_optional_time(snapshot.watched_since),
        owned_targets=[OwnedTargetJson(account, region) for account, region in snapshot.owned_targets],
    )


def snapshot_to_json(snapshot: Snapshot) -> dict[str, Any]:
    """The snapshot as JSON-ready data (times as ISO 8601 UTC; label sets as objects)."""
    return cast(dict[str, Any], msgspec.to_builtins(snapshot_document(snapshot)))


def snapshot_json_body(snapshot: Snapshot) -> bytes:
    """The /api/snapshot.json body: the document, one space of indent per level."""
    return msgspec.json.format(msgspec.json.encode(snapshot_document(snapshot)), indent=1)
