"""Each gap linked to the attribute change that preceded it on its target group (engine/triggers.py)."""

from __future__ import annotations

import msgspec

from exporter.engine.changes import Actor
from exporter.engine.gaps import analyze
from exporter.engine.triggers import TRIGGER_WINDOW, triggers_for
from exporter.reports.gaps import gap_record
from tests.engine_world import (
    CONTROLLER,
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

WORLD = tcp(NODE_PORT, "0.0.0.0/0")
SUBNET_RULES = tuple(tcp(NODE_PORT, c) for c in SUBNETS)


def flip_then_replace(flip_before: float) -> list:  # type: ignore[type-arg]
    """The operator flips preserve_client_ip `flip_before` s before the controller revokes first."""
    revoke_at = T0 + seconds(60)
    return [
        set_preserve("flip", revoke_at - seconds(flip_before), "false"),
        revoke("r1", revoke_at, WORLD),
        authorize("a1", revoke_at + seconds(60), *SUBNET_RULES),
    ]


def test_the_flip_a_moment_before_is_the_trigger_with_role_and_session() -> None:
    changes = flip_then_replace(2)
    analysis = analyze(incident_inventory(), changes)
    triggers = triggers_for(analysis.gaps, changes)
    assert analysis.gaps and all(g.actor == CONTROLLER for g in analysis.gaps)
    for gap in analysis.gaps:
        record = gap_record(gap, triggers)
        assert record["actor"] == "eks-aws-load-balancer-controller"
        assert record["actor_session"] == "1700000000"
        assert record["trigger"] == {
            "source": "cloudtrail",
            "field_manager": None,
            "event": "ModifyTargetGroupAttributes",
            "event_id": "flip",
            "time": "2026-11-20T12:00:58Z",
            "actor": "platform-admin",
            "who": "platform-admin/alice",
            "actor_arn": OPERATOR.principal_arn,
            "user_agent": "aws-cli/2.15.0",
            "attributes": {"preserve_client_ip.enabled": "false"},
        }


def test_no_trigger_when_the_change_is_too_old_after_the_gap_or_failed_or_on_another_group() -> None:
    too_old = flip_then_replace(TRIGGER_WINDOW.total_seconds() + 1)
    after = flip_then_replace(-5)  # the flip after the revoke did not trigger it
    failed = flip_then_replace(2)
    failed[0] = msgspec.structs.replace(
        failed[0], meta=msgspec.structs.replace(failed[0].meta, error_code="AccessDenied")
    )
    other = flip_then_replace(2)
    other[0] = msgspec.structs.replace(
        other[0], target_group_arn=TG_ARN.replace("k8s-shop-web-abc", "k8s-other")
    )
    for changes in (too_old, after, failed, other):
        analysis = analyze(incident_inventory(), changes)
        assert analysis.gaps
        assert triggers_for(analysis.gaps, changes) == {}
        assert all(gap_record(g, {})["trigger"] is None for g in analysis.gaps)


def test_the_latest_change_before_the_gap_wins_and_the_window_is_inclusive() -> None:
    changes = [set_preserve("early", T0 + seconds(60 - 200), "true"), *flip_then_replace(2)]
    analysis = analyze(incident_inventory(), changes)
    assert {t.event_id for t in triggers_for(analysis.gaps, changes).values()} == {"flip"}
    edge = flip_then_replace(TRIGGER_WINDOW.total_seconds())
    analysis = analyze(incident_inventory(), edge)
    assert {t.event_id for t in triggers_for(analysis.gaps, edge).values()} == {"flip"}


def test_session_names() -> None:
    assert OPERATOR.session == "alice" and OPERATOR.who == "platform-admin/alice"
    user = Actor(principal_arn="arn:aws:iam::111122223333:user/bob", identity_type="IAMUser")
    assert user.session is None and user.who == user.label
    sso = Actor(
        principal_arn="arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_Admin_0a1b/carol@example.com",
        identity_type="AssumedRole",
        issuer="AWSReservedSSO_Admin_0a1b",
    )
    assert sso.who == "AWSReservedSSO_Admin_0a1b/carol@example.com"
    assert Actor(principal_arn="arn:aws:sts::111122223333:assumed-role/no-session").session is None
