"""Sample snapshots for the /metrics and web tests: what a daemon mid-incident would hold.

`sample_snapshot(now)`: two target groups in one account; the legacy-mode one has an OPEN traffic
gap (2m 13s old at `now`) after a preserve_client_ip flip, and each group has one closed gap in
the last 6 hours. Every metric family has at least one series.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta

from exporter.daemon.snapshot import (
    BREAK_BEFORE_MAKE_LAST,
    GAP_DURATION_BUCKETS,
    IMPACT_CONFIRMED_LAST,
    JOB_DURATION_BUCKETS,
    AttributeChangeView,
    GapView,
    HistogramState,
    JobStats,
    Labels,
    Snapshot,
    SourceHealth,
    TargetGroupView,
    labels_of,
)
from exporter.engine.flows import FlowKind, FlowStatus
from exporter.engine.impact import ImpactResult

ACCOUNT = "123456789012"
REGION = "eu-west-1"
CHECKOUT_TG = "k8s-shop-checkout-1a2b3c4d5e"
PAYMENTS_TG = "k8s-payments-api-9f8e7d6c5b"
CONTROLLER = "aws-load-balancer-controller"
OPERATOR = "platform-admin"
#: How long the open gap has been open at `now`, and how the page must say it.
OPEN_FOR = timedelta(minutes=2, seconds=13)
OPEN_FOR_TEXT = "2m 13s"


def tg_arn(name: str, account: str = ACCOUNT, region: str = REGION) -> str:
    return f"arn:aws:elasticloadbalancing:{region}:{account}:targetgroup/{name}/0123456789abcdef"


def lb_arn(name: str, account: str = ACCOUNT, region: str = REGION) -> str:
    return f"arn:aws:elasticloadbalancing:{region}:{account}:loadbalancer/net/{name}/fedcba9876543210"


def cumulative(bounds: Sequence[float], observations: Sequence[float]) -> tuple[int, ...]:
    """Cumulative bucket counts of `observations` (upper bounds inclusive), +Inf last."""
    counts = [sum(1 for o in observations if o <= b) for b in bounds]
    return (*counts, len(observations))


def histogram(observations: Sequence[float]) -> HistogramState:
    return HistogramState(
        cumulative(GAP_DURATION_BUCKETS, observations), float(sum(observations)), len(observations)
    )


def flows(
    targets: int, traffic_ok: int, health_ok: int, reason: str = "source_not_covered", outside: int = 0
) -> dict[FlowKind, FlowStatus]:
    """Flow statuses; `outside` of the `targets` are not evaluable (outside the VPC)."""

    def status(kind: FlowKind, ok: int) -> FlowStatus:
        evaluable = targets - outside
        return FlowStatus(
            kind,
            targets,
            ok,
            {reason: evaluable - ok} if ok < evaluable else {},
            {"target_outside_vpc": outside} if outside else {},
        )

    return {"traffic": status("traffic", traffic_ok), "health_check": status("health_check", health_ok)}


def target_group(
    name: str,
    *,
    namespace: str,
    service: str,
    mode: str,
    scheme: str,
    target_type: str,
    preserve: bool,
    targets: int,
    traffic_ok: int,
    health_ok: int,
    account: str = ACCOUNT,
    region: str = REGION,
    outside: int = 0,
) -> TargetGroupView:
    lb_name = f"k8s-{namespace}-{service}"[:32]
    return TargetGroupView(
        aws_account_id=account,
        aws_region=region,
        arn=tg_arn(name, account, region),
        name=name,
        load_balancer=lb_arn(lb_name, account, region),
        scheme=scheme,
        mode=mode,
        target_type=target_type,
        protocol="TCP",
        namespace=namespace,
        service=service,
        cluster="prod-eu",
        mapped_by="targetgroupbinding",
        preserve_client_ip=preserve,
        targets=targets,
        flows=flows(targets, traffic_ok, health_ok, outside=outside),
    )


#: Who flipped preserve_client_ip before the checkout gap: a role and the session that assumed it.
TRIGGER_WHO = "AWSReservedSSO_PlatformAdmin_0123456789abcdef/alice@example.com"


def gap(
    tg: TargetGroupView,
    flow: FlowKind,
    start: datetime,
    end: datetime | None,
    cause: str,
    actor: str,
) -> GapView:
    return GapView(
        key=f"gapkey-{tg.arn}-{flow}-{start.timestamp():.0f}",
        aws_account_id=tg.aws_account_id,
        aws_region=tg.aws_region,
        target_group_arn=tg.arn,
        target_group=tg.name,
        namespace=tg.namespace,
        service=tg.service,
        flow=flow,
        start=start,
        end=end,
        cause=cause,
        actor=actor,
        actor_arn=f"arn:aws:iam::{tg.aws_account_id}:role/{actor}" if actor else "",
        explained=bool(actor),
    )


def identity_labels(tg: TargetGroupView, **extra: str) -> Labels:
    return labels_of(**tg.identity, **extra)


def fleet_labels(tg: TargetGroupView, flow: str) -> Labels:
    """The labels of sgchurn_rule_gap_duration_seconds: the target group's account and region, and a flow."""
    return labels_of(aws_account_id=tg.aws_account_id, aws_region=tg.aws_region, flow=flow)


def sample_snapshot(now: datetime, *, ready: bool = False) -> Snapshot:
    """The rich sample: every family populated, one open gap, two closed gaps."""
    checkout = target_group(
        CHECKOUT_TG,
        namespace="shop",
        service="checkout",
        mode="legacy",
        scheme="internet-facing",
        target_type="instance",
        preserve=True,
        targets=3,
        traffic_ok=0,
        health_ok=3,
    )
    payments = target_group(
        PAYMENTS_TG,
        namespace="payments",
        service="api",
        mode="sg",
        scheme="internal",
        target_type="ip",
        preserve=False,
        targets=5,
        traffic_ok=4,
        health_ok=4,
        outside=1,  # an EKS Hybrid Nodes pod: not evaluable, not a gap
    )
    open_gap = gap(checkout, "traffic", now - OPEN_FOR, None, "requirement_change", CONTROLLER)
    flipped_at = now - timedelta(hours=2) - timedelta(seconds=3)
    closed_checkout = dataclasses.replace(
        gap(
            checkout,
            "health_check",
            now - timedelta(hours=2),
            now - timedelta(hours=2) + timedelta(seconds=60),
            "revoke_before_authorize",
            CONTROLLER,
        ),
        trigger_who=TRIGGER_WHO,
        trigger_time=flipped_at,
        trigger_event_id="ev-flip-1",
        trigger_detail="preserve_client_ip.enabled=false",
        impact=ImpactResult(
            "confirmed",
            reasons=("unhealthy_hosts_rose", "flows_rejected"),
            peak_unhealthy_hosts=2.0,
            baseline_unhealthy_hosts=0.0,
            new_flows_during=40.0,
            new_flows_before=310.0,
            rejected_flows=3,
        ),
    )
    closed_payments = gap(
        payments,
        "traffic",
        now - timedelta(hours=4, minutes=30),
        now - timedelta(hours=4, minutes=30) + timedelta(seconds=45),
        "revoke_without_restore",
        "",
    )
    job_buckets = cumulative(JOB_DURATION_BUCKETS, [0.2, 0.3, 1.4, 0.08])
    return Snapshot(
        generated_at=now - timedelta(seconds=4),
        version="0.1.0",
        shard=0,
        total_shards=1,
        ready=ready,
        target_groups=(checkout, payments),
        open_gaps=(open_gap,),
        recent_gaps=(closed_checkout, closed_payments),
        counters={
            "rule_gaps": {
                identity_labels(checkout, flow="health_check", cause="revoke_before_authorize"): 1,
                identity_labels(payments, flow="traffic", cause="revoke_without_restore"): 1,
            },
            "rule_replacements": {
                labels_of(
                    aws_account_id=ACCOUNT,
                    aws_region=REGION,
                    security_group="sg-0a1b2c3d4e5f60718",
                    order="break_before_make",
                ): 2,
                labels_of(
                    aws_account_id=ACCOUNT,
                    aws_region=REGION,
                    security_group="sg-0a1b2c3d4e5f60718",
                    order="make_before_break",
                ): 1,
            },
            BREAK_BEFORE_MAKE_LAST: {
                labels_of(aws_account_id=ACCOUNT, aws_region=REGION, security_group="sg-0a1b2c3d4e5f60718"): (
                    closed_checkout.end or now
                ).timestamp(),
            },
            "target_group_attribute_changes": {
                identity_labels(checkout, attribute="preserve_client_ip.enabled"): 2,
            },
            "security_group_rule_changes": {
                labels_of(
                    aws_account_id=ACCOUNT,
                    aws_region=REGION,
                    security_group="sg-0a1b2c3d4e5f60718",
                    event_name="RevokeSecurityGroupIngress",
                    result="success",
                ): 3,
                labels_of(
                    aws_account_id=ACCOUNT,
                    aws_region=REGION,
                    security_group="sg-0a1b2c3d4e5f60718",
                    event_name="AuthorizeSecurityGroupIngress",
                    result="failed",
                ): 1,
            },
            "cloudtrail_events": {
                labels_of(event_name="RevokeSecurityGroupIngress"): 3,
                labels_of(event_name="AuthorizeSecurityGroupIngress"): 3,
                labels_of(event_name="ModifyTargetGroupAttributes"): 2,
            },
            "cloudtrail_records_rejected": {labels_of(reason="no_rule"): 5},
            "state_rows_rejected": {labels_of(table="gaps"): 1},
            "rule_gap_impact": {identity_labels(checkout, flow="health_check", impact="confirmed"): 1},
            IMPACT_CONFIRMED_LAST: {
                identity_labels(checkout, flow="health_check"): (
                    now - timedelta(hours=1, minutes=50)
                ).timestamp()
            },
        },
        gap_durations={
            fleet_labels(checkout, "health_check"): histogram([60.0]),
            fleet_labels(payments, "traffic"): histogram([45.0]),
        },
        last_gaps=(closed_checkout, closed_payments),
        sources=(
            SourceHealth("inventory", ACCOUNT, REGION, True, now - timedelta(seconds=12), None),
            SourceHealth("cloudtrail", ACCOUNT, REGION, True, now - timedelta(seconds=40), None),
            SourceHealth(
                "sqs",
                ACCOUNT,
                REGION,
                False,
                None,
                "AccessDenied: not authorized to perform sqs:ReceiveMessage",
            ),
        ),
        jobs=(
            JobStats("inventory", 4, 0, 0.3, now - timedelta(seconds=12), None, job_buckets, 1.98),
            JobStats(
                "cloudtrail",
                3,
                1,
                1.2,
                now - timedelta(seconds=40),
                "ThrottlingException: Rate exceeded",
                cumulative(JOB_DURATION_BUCKETS, [1.1, 1.2, 0.9]),
                3.2,
            ),
            JobStats("evaluate", 0, 0, None, None, None),
        ),
        api_requests={("ec2", "DescribeSecurityGroupRules"): 8, ("cloudtrail", "LookupEvents"): 12},
        api_errors={("cloudtrail", "LookupEvents", "ThrottlingException"): 1},
        cloudtrail_lag_seconds={(ACCOUNT, REGION): 310.0},
        owned_targets=((ACCOUNT, REGION),),
        attribute_changes=(
            AttributeChangeView(
                **checkout.identity,
                attribute="preserve_client_ip.enabled",
                value="false",
                actor=TRIGGER_WHO,
                time=flipped_at,
            ),
        ),
    )


def hostile_snapshot(now: datetime) -> Snapshot:
    """The sample with a target group (and its gaps) renamed to markup: pages must escape it."""
    base = sample_snapshot(now)
    name = "<script>alert('tg')</script>"
    tg = dataclasses.replace(base.target_groups[0], name=name, namespace="<b>ns</b>")

    def rename(g: GapView) -> GapView:
        if g.target_group_arn != tg.arn:
            return g
        return dataclasses.replace(g, target_group=name, namespace="<b>ns</b>", actor="<img src=x>")

    return dataclasses.replace(
        base,
        target_groups=(tg, *base.target_groups[1:]),
        open_gaps=tuple(rename(g) for g in base.open_gaps),
        recent_gaps=tuple(rename(g) for g in base.recent_gaps),
        last_gaps=tuple(rename(g) for g in base.last_gaps),
    )
