"""Intent (issue 12, item 4): what a target group's client sources are judged by, over time."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from exporter.daemon.monitor import Monitor
from exporter.daemon.state import StateStore
from exporter.engine.gaps import analyze
from exporter.engine.intent import SETTLE, is_managed
from exporter.engine.inventory import Intent, Inventory, ServiceBinding
from exporter.engine.rules import Rule, Source
from tests.engine_world import (
    NODE_PORT,
    OPERATOR,
    SUBNETS,
    T0,
    TG_ARN,
    authorize,
    incident_inventory,
    revoke,
    seconds,
    set_preserve,
    tcp,
)

A, B = "203.0.113.0/24", "198.51.100.0/24"
SUBNET_RULES = tuple(tcp(NODE_PORT, c) for c in SUBNETS)


def ranges_world(*ranges: str, taken_at_s: float = 3600, **kw: object) -> Inventory:
    rules = tuple(tcp(NODE_PORT, r) for r in ranges)
    return incident_inventory(node_rules=(*rules, *SUBNET_RULES), taken_at=T0 + seconds(taken_at_s), **kw)  # type: ignore[arg-type]


def test_the_marker_is_one_comma_separated_item() -> None:
    rule = tcp(NODE_PORT, A)
    assert is_managed(rule)
    other = Rule("tcp", 1, 1, Source.cidr(A), description="team=web, elbv2.k8s.aws/targetGroupBinding=shared")
    assert is_managed(other)
    assert not is_managed(
        Rule("tcp", 1, 1, Source.cidr(A), description="elbv2.k8s.aws/targetGroupBinding=sharedx")
    )
    assert not is_managed(Rule("tcp", 1, 1, Source.cidr(A)))


def test_without_kubernetes_the_managed_rules_are_the_intent_not_0_0_0_0() -> None:
    inventory = ranges_world(A, B)
    analysis = analyze(inventory, [])
    assert analysis.gaps == []
    assert analysis.intents[TG_ARN] == Intent("managed_rules", (B, A))  # collapsed and sorted


def test_a_revoke_restored_within_the_settle_time_is_a_gap_of_the_managed_intent() -> None:
    a = tcp(NODE_PORT, A)
    changes = [revoke("e1", T0 + seconds(10), a), authorize("e2", T0 + seconds(30), a)]
    found = analyze(ranges_world(A, B), changes).gaps
    assert [(g.flow, g.duration_seconds, g.cause) for g in found] == [
        ("traffic", 20.0, "revoke_before_authorize")
    ]
    # Revoked by an operator and never restored: a gap while it is young ...
    young = analyze(ranges_world(B, taken_at_s=120), [revoke("e1", T0 + seconds(10), a, actor=OPERATOR)])
    assert [(g.flow, g.is_open, g.cause) for g in young.gaps] == [("traffic", True, "revoke_without_restore")]
    # ... and, once the smaller set has held for SETTLE, the new intent (a narrowed Service).
    held = SETTLE.total_seconds() + 60
    settled = analyze(ranges_world(B, taken_at_s=held), [revoke("e1", T0 + seconds(10), a)])
    assert settled.gaps == [] and settled.intents[TG_ARN] == Intent("managed_rules", (B,))


def test_every_client_rule_revoked_is_never_learned() -> None:
    a, b = tcp(NODE_PORT, A), tcp(NODE_PORT, B)
    inventory = ranges_world(taken_at_s=7200)
    changes = [revoke("e1", T0 + seconds(10), a, b)]
    (gap,) = analyze(inventory, changes).gaps
    assert (gap.flow, gap.is_open, gap.start) == ("traffic", True, T0 + seconds(10))


def test_the_seed_incident_is_measured_the_same_without_kubernetes() -> None:
    world = tcp(NODE_PORT, "0.0.0.0/0")
    bbm = [
        set_preserve("e1", T0 + seconds(10), "false"),
        revoke("e2", T0 + seconds(20), world),
        authorize("e3", T0 + seconds(80), *SUBNET_RULES),
    ]
    after = incident_inventory(preserve="false", node_rules=SUBNET_RULES, taken_at=T0 + seconds(3600))
    assert [(g.flow, g.duration_seconds, g.cause) for g in analyze(after, bbm).gaps] == [
        ("health_check", 60.0, "revoke_before_authorize"),
        ("traffic", 60.0, "revoke_before_authorize"),
    ]
    back = [
        set_preserve("e1", T0 + seconds(10), "true", actor=OPERATOR),
        authorize("e2", T0 + seconds(55), world),
    ]
    later = incident_inventory(node_rules=(world, *SUBNET_RULES), taken_at=T0 + seconds(3600))
    found = analyze(later, back).gaps
    assert [(g.flow, g.duration_seconds, g.cause) for g in found] == [("traffic", 45.0, "requirement_change")]
    # With Kubernetes access: the TargetGroupBinding (subnets only while preservation is off,
    # 0.0.0.0/0 once on) gives the same measures.
    unpreserved = ServiceBinding("shop", "web", (), "targetgroupbinding", "demo", SUBNET_RULES)
    bound = analyze(after.with_services({TG_ARN: unpreserved}), bbm)
    assert [(g.flow, g.duration_seconds) for g in bound.gaps] == [("health_check", 60.0), ("traffic", 60.0)]
    assert bound.intents[TG_ARN].kind == "binding"
    preserved = ServiceBinding("shop", "web", (), "targetgroupbinding", "demo", (world, *SUBNET_RULES))
    found = analyze(later.with_services({TG_ARN: preserved}), back).gaps
    assert [(g.flow, g.duration_seconds, g.cause) for g in found] == [("traffic", 45.0, "requirement_change")]


def test_false_to_true_with_source_ranges_requires_the_ranges_not_everyone() -> None:
    """Attribute first with a Service's ranges and no Kubernetes: the gap ends when the ranges
    are authorized (the anchor's managed rules say so), not never (0.0.0.0/0 never comes)."""
    a, b = tcp(NODE_PORT, A), tcp(NODE_PORT, B)
    changes = [set_preserve("e1", T0 + seconds(10), "true"), authorize("e2", T0 + seconds(40), a, b)]
    found = analyze(ranges_world(A, B), changes).gaps
    assert [(g.flow, g.duration_seconds, g.cause) for g in found] == [("traffic", 30.0, "requirement_change")]


def binding(*ranges: str) -> ServiceBinding:
    rules = tuple(tcp(NODE_PORT, r) for r in ranges)
    return ServiceBinding("shop", "web", ranges, "targetgroupbinding", "demo", (*rules, *SUBNET_RULES))


def test_a_past_moment_is_judged_by_the_binding_of_that_moment() -> None:
    """The Service's range moved from A to B (make-before-break by the controller): with the
    recorded binding history no gap; judged by today's binding alone, A's era looks broken."""
    inventory = ranges_world(B).with_services({TG_ARN: binding(B)})
    a, b = tcp(NODE_PORT, A), tcp(NODE_PORT, B)
    changes = [authorize("e1", T0 + seconds(10), b), revoke("e2", T0 + seconds(20), a)]
    history = {
        TG_ARN: [
            (T0 - timedelta(hours=1), Intent("binding", (A,))),
            (T0 + seconds(10), Intent("binding", (B,))),
        ]
    }
    analysis = analyze(inventory, changes, binding_history=history)
    assert analysis.gaps == []
    assert analysis.intents[TG_ARN] == Intent("binding", (B,))
    assert analysis.intents_at(T0 + seconds(5))[TG_ARN] == Intent("binding", (A,))
    today_only = analyze(inventory, changes)  # B required from the start: A's era is a gap
    assert [(g.flow, g.end) for g in today_only.gaps] == [("traffic", T0 + seconds(10))]


def test_the_monitor_records_binding_intents_and_reads_them_back_after_a_restart(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.sqlite3")
    worlds = iter(
        [
            ranges_world(A, taken_at_s=0).with_services({TG_ARN: binding(A)}),
            ranges_world(B, taken_at_s=60).with_services({TG_ARN: binding(B)}),
            ranges_world(B, taken_at_s=90).with_services({TG_ARN: binding(B)}),
        ]
    )

    def monitor() -> Monitor:
        return Monitor(
            "k",
            "us-east-1",
            store,
            settle_seconds=60,
            retention_seconds=86400,
            describe=lambda now: next(worlds),
        )

    first = monitor()
    first.poll_inventory(T0, None)
    first.poll_inventory(T0 + seconds(60), None)
    first.poll_inventory(T0 + seconds(90), None)  # unchanged: not recorded again
    assert first.binding_history[TG_ARN] == [
        (T0, Intent("binding", (A,))),
        (T0 + seconds(60), Intent("binding", (B,))),
    ]
    second = monitor()
    second.restore(T0 + seconds(120))
    assert second.binding_history == first.binding_history
