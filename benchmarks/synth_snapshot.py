"""A synthetic daemon snapshot at scale, as `Daemon.publish` builds it (seeded).

`target_groups` target groups in one account-region (two flows each, 10 targets, almost all
admitted), 0.4 security groups per target group on their ENIs, a few open gaps, closed gaps in
the last day for 1% of the target groups and a past gap for 10% (counters, histograms, last-gap
series), CloudTrail and API counters, as `Daemon.publish` builds them (counter series only where
something happened, gap-duration histograms merged per account, region and flow), so /metrics
has the series count a real exporter of that size serves.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from exporter.daemon.snapshot import (
    GAP_DURATION_BUCKETS,
    JOB_DURATION_BUCKETS,
    GapView,
    HistogramState,
    JobStats,
    Labels,
    Snapshot,
    SourceHealth,
    TargetGroupView,
    labels_of,
    merge_histograms,
)
from exporter.engine.flows import FlowKind, FlowStatus

ACCOUNT = "111122223333"
REGION = "eu-west-1"
NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
CONTROLLER = "eks-prod-aws-load-balancer-controller"


def _cumulative(observations: Sequence[float], bounds: Sequence[float]) -> tuple[int, ...]:
    return (*(sum(1 for o in observations if o <= b) for b in bounds), len(observations))


def _flows(targets: int, traffic_ok: int, health_ok: int) -> dict[FlowKind, FlowStatus]:
    def status(kind: FlowKind, ok: int) -> FlowStatus:
        return FlowStatus(kind, targets, ok, {"source_not_covered": targets - ok} if ok < targets else {})

    return {"traffic": status("traffic", traffic_ok), "health_check": status("health_check", health_ok)}


def build_snapshot(target_groups: int = 5_000, seed: int = 11, now: datetime = NOW) -> Snapshot:
    rng = random.Random(seed)
    groups = [f"sg-0{rng.getrandbits(64):016x}" for _ in range(max(1, target_groups * 2 // 5))]
    open_every = max(1, target_groups // 10) if target_groups < 500 else 500
    views: list[TargetGroupView] = []
    for i in range(target_groups):
        namespace, service = f"team{i % 60}", f"svc{i}"
        name = f"k8s-{namespace}-{service}-{rng.getrandbits(40):010x}"[:32]
        failing = i % open_every == open_every - 1
        views.append(
            TargetGroupView(
                aws_account_id=ACCOUNT,
                aws_region=REGION,
                arn=f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:targetgroup/{name}/{rng.getrandbits(64):016x}",
                name=name,
                load_balancer=f"k8s-{namespace}-{service}"[:32],
                scheme=rng.choice(("internet-facing", "internal")),
                mode=rng.choice(("legacy", "sg")),
                target_type=rng.choice(("instance", "ip")),
                protocol=rng.choice(("TCP", "TCP", "TCP", "UDP", "TCP_UDP")),
                namespace=namespace,
                service=service,
                cluster=f"prod-{i % 7}",
                mapped_by="targetgroupbinding",
                preserve_client_ip=rng.random() < 0.5,
                targets=10,
                flows=_flows(10, 0 if failing else 10, 10),
            )
        )

    def gap(tg: TargetGroupView, flow: FlowKind, start: datetime, end: datetime | None) -> GapView:
        return GapView(
            key=f"{tg.arn}|{flow}|{start.timestamp():.0f}",
            aws_account_id=ACCOUNT,
            aws_region=REGION,
            target_group_arn=tg.arn,
            target_group=tg.name,
            namespace=tg.namespace,
            service=tg.service,
            flow=flow,
            start=start,
            end=end,
            cause="revoke_before_authorize" if end else "revoke_without_restore",
            actor=CONTROLLER,
            actor_arn=f"arn:aws:iam::{ACCOUNT}:role/{CONTROLLER}",
            explained=True,
        )

    open_gaps = tuple(
        gap(tg, "traffic", now - timedelta(seconds=rng.randrange(30, 600)), None)
        for tg in views
        if tg.flows["traffic"].admitted < tg.targets
    )
    with_history = views[:: max(1, 10)]  # 10% of target groups had a gap once
    last_gaps: list[GapView] = []
    counters: dict[str, dict[Labels, float]] = {
        "rule_gaps": {},
        "target_group_attribute_changes": {},
        "rule_replacements": {},
        "security_group_rule_changes": {},
        "cloudtrail_events": {},
        "cloudtrail_records_rejected": {labels_of(reason="not_json"): 2.0, labels_of(reason="bad_rule"): 1.0},
    }
    histograms: dict[Labels, HistogramState] = {}
    for tg in with_history:
        durations = [float(rng.choice((12, 45, 61, 75, 130))) for _ in range(rng.randrange(1, 4))]
        start = now - timedelta(hours=rng.randrange(1, 24 * 30))
        last_gaps.append(gap(tg, "traffic", start, start + timedelta(seconds=durations[-1])))
        counters["rule_gaps"][labels_of(**tg.identity, flow="traffic", cause="revoke_before_authorize")] = (
            float(len(durations))
        )
        counters["target_group_attribute_changes"][
            labels_of(**tg.identity, attribute="preserve_client_ip.enabled")
        ] = float(2 * len(durations))
        histograms[labels_of(**tg.identity, flow="traffic")] = HistogramState(
            _cumulative(durations, GAP_DURATION_BUCKETS), sum(durations), len(durations)
        )
    recent = tuple(g for g in last_gaps if g.end is not None and now - g.end < timedelta(days=1))
    for group in groups[:: max(1, 3)]:  # a third of the groups saw rule changes
        for event in ("AuthorizeSecurityGroupIngress", "RevokeSecurityGroupIngress"):
            key = labels_of(
                aws_account_id=ACCOUNT,
                aws_region=REGION,
                security_group=group,
                event_name=event,
                result="success",
            )
            counters["security_group_rule_changes"][key] = float(rng.randrange(1, 40))
        counters["rule_replacements"][
            labels_of(
                aws_account_id=ACCOUNT, aws_region=REGION, security_group=group, order="make_before_break"
            )
        ] = float(rng.randrange(1, 20))
    for event in (
        "AuthorizeSecurityGroupIngress",
        "RevokeSecurityGroupIngress",
        "ModifyTargetGroupAttributes",
    ):
        counters["cloudtrail_events"][labels_of(event_name=event)] = float(rng.randrange(100, 5000))
    job_buckets = _cumulative([0.2, 0.4, 1.1], JOB_DURATION_BUCKETS)
    return Snapshot(
        generated_at=now,
        version="0.1.0",
        ready=True,
        target_groups=tuple(views),
        open_gaps=open_gaps,
        recent_gaps=recent,
        counters=counters,
        gap_durations=merge_histograms(histograms),
        last_gaps=tuple(last_gaps),
        sources=(
            SourceHealth("inventory", ACCOUNT, REGION, True, now - timedelta(seconds=9), None),
            SourceHealth("lookup_events", ACCOUNT, REGION, True, now - timedelta(seconds=40), None),
        ),
        jobs=tuple(
            JobStats(job, 100, 0, 0.4, now - timedelta(seconds=5), None, job_buckets, 1.7)
            for job in ("inventory", "cloudtrail", "kubernetes", "evaluate")
        ),
        api_requests={
            ("elbv2", op): 1000
            for op in (
                "DescribeLoadBalancers",
                "DescribeTargetGroups",
                "DescribeTargetHealth",
                "DescribeTags",
            )
        }
        | {("ec2", op): 500 for op in ("DescribeInstances", "DescribeSecurityGroupRules", "DescribeSubnets")}
        | {("cloudtrail", "LookupEvents"): 3000},
        api_errors={("cloudtrail", "LookupEvents", "ThrottlingException"): 3},
        cloudtrail_lag_seconds={(ACCOUNT, REGION): 290.0},
        owned_targets=((ACCOUNT, REGION),),
    )
