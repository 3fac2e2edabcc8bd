"""The seed incident and its variants, through the pure engine."""

from __future__ import annotations

import random

from exporter.engine.gaps import PENDING_CAUSE, RESTORE_WAIT, analyze, find_replacements
from exporter.engine.rules import Rule, Source
from exporter.reports.gaps import gap_record
from tests.engine_world import (
    CONTROLLER,
    NODE_PORT,
    OPERATOR,
    SUBNETS,
    T0,
    authorize,
    delete_group,
    incident_inventory,
    revoke,
    seconds,
    set_preserve,
    tcp,
)

WORLD = tcp(NODE_PORT, "0.0.0.0/0")
SUBNET_RULES = tuple(tcp(NODE_PORT, c) for c in SUBNETS)


def break_before_make_true_to_false() -> list:  # type: ignore[type-arg]
    return [
        set_preserve("e1", T0 + seconds(10), "false"),
        revoke("e2", T0 + seconds(20), WORLD),
        authorize("e3", T0 + seconds(80), *SUBNET_RULES),
    ]


def test_a_break_before_make_gives_traffic_and_health_check_gaps_of_60s() -> None:
    analysis = analyze(incident_inventory(), break_before_make_true_to_false())
    assert [(g.flow, g.duration_seconds, g.cause) for g in analysis.gaps] == [
        ("health_check", 60.0, "revoke_before_authorize"),
        ("traffic", 60.0, "revoke_before_authorize"),
    ]
    for gap in analysis.gaps:
        assert gap.start == T0 + seconds(20)
        assert gap.actor == CONTROLLER
        assert gap.opened_by is not None and gap.opened_by.event_id == "e2"
        assert gap.closed_by is not None and gap.closed_by.event_id == "e3"
    assert [r.order for r in analysis.replacements] == ["break_before_make"]


def test_a_postmortem_from_a_later_anchor_rebuilds_the_same_gaps() -> None:
    later = incident_inventory(preserve="false", node_rules=SUBNET_RULES, taken_at=T0 + seconds(3600))
    today = analyze(later, break_before_make_true_to_false())
    then = analyze(incident_inventory(), break_before_make_true_to_false())
    assert [gap_record(g) for g in today.gaps] == [gap_record(g) for g in then.gaps]


def test_b_make_before_break_has_no_gap_and_is_classified() -> None:
    changes = [
        set_preserve("e1", T0 + seconds(10), "false"),
        authorize("e2", T0 + seconds(20), *SUBNET_RULES),
        revoke("e3", T0 + seconds(80), WORLD),
    ]
    analysis = analyze(incident_inventory(), changes)
    assert analysis.gaps == []
    assert [(r.order, r.group_id) for r in analysis.replacements] == [("make_before_break", "sg-node")]


def test_c_false_to_true_attribute_first_is_a_requirement_change_traffic_gap_only() -> None:
    inventory = incident_inventory(preserve="false", node_rules=SUBNET_RULES)
    changes = [
        set_preserve("e1", T0 + seconds(10), "true", actor=OPERATOR),
        authorize("e2", T0 + seconds(55), WORLD),
    ]
    analysis = analyze(inventory, changes)
    assert [(g.flow, g.duration_seconds, g.cause) for g in analysis.gaps] == [
        ("traffic", 45.0, "requirement_change")
    ]
    assert analysis.gaps[0].actor == OPERATOR


def test_d_sg_mode_flip_either_way_has_no_gap() -> None:
    ref = Rule("tcp", NODE_PORT, NODE_PORT, Source.group("sg-nlb"))
    for start, flipped in (("true", "false"), ("false", "true")):
        inventory = incident_inventory(preserve=start, node_rules=(ref,), lb_security_groups=("sg-nlb",))
        analysis = analyze(inventory, [set_preserve("e1", T0 + seconds(10), flipped)])
        assert analysis.gaps == []
        assert all(s.fully_admitted for s in analysis.status[next(iter(analysis.status))].values())


def test_sg_mode_without_a_reference_or_cidr_rule_is_not_admitted() -> None:
    other = Rule("tcp", NODE_PORT, NODE_PORT, Source.group("sg-somebody-else"))
    inventory = incident_inventory(node_rules=(other,), lb_security_groups=("sg-nlb",))
    analysis = analyze(inventory, [])
    assert {g.flow for g in analysis.gaps} == {"traffic", "health_check"}
    assert all(g.is_open and g.cause == "undetermined" for g in analysis.gaps)


def test_sg_mode_admits_by_cidr_too_with_the_legacy_semantics() -> None:
    """A CIDR node rule admits in SG mode as in legacy mode (issue 12, item 3): no gap in steady
    state, and a flip with break-before-make CIDR rules is a gap as in legacy mode."""
    inventory = incident_inventory(node_rules=(WORLD,), lb_security_groups=("sg-nlb",))
    assert analyze(inventory, []).gaps == []
    analysis = analyze(inventory, break_before_make_true_to_false())
    assert [(g.flow, g.duration_seconds, g.cause) for g in analysis.gaps] == [
        ("health_check", 60.0, "revoke_before_authorize"),
        ("traffic", 60.0, "revoke_before_authorize"),
    ]


def test_late_duplicated_and_out_of_order_records_give_the_same_gaps() -> None:
    ordered = break_before_make_true_to_false()
    expected = [gap_record(g) for g in analyze(incident_inventory(), ordered).gaps]
    rng = random.Random(7)
    for _ in range(20):
        shuffled = ordered + rng.sample(ordered, k=2)
        rng.shuffle(shuffled)
        assert [gap_record(g) for g in analyze(incident_inventory(), shuffled).gaps] == expected


def test_failed_calls_change_nothing() -> None:
    changes = [
        revoke("e1", T0 + seconds(20), WORLD, error="Client.UnauthorizedOperation"),
        authorize("e2", T0 + seconds(80), *SUBNET_RULES, error="Client.InvalidPermission.Duplicate"),
    ]
    analysis = analyze(incident_inventory(), changes)
    assert analysis.gaps == []
    assert analysis.replacements == []


def test_another_group_on_the_eni_that_still_admits_means_no_gap() -> None:
    inventory = incident_inventory(extra_group_rules=(tcp(NODE_PORT, "0.0.0.0/0"),))
    analysis = analyze(inventory, break_before_make_true_to_false())
    assert analysis.gaps == []
    # The replacement is still classified, even though redundancy hid the outage.
    assert [r.order for r in analysis.replacements] == ["break_before_make"]


def test_revoke_never_restored_stays_open() -> None:
    analysis = analyze(incident_inventory(), [revoke("e1", T0 + seconds(20), WORLD, actor=OPERATOR)])
    assert {(g.flow, g.cause, g.end) for g in analysis.gaps} == {
        ("traffic", "revoke_without_restore", None),
        ("health_check", "revoke_without_restore", None),
    }
    assert all(g.duration_seconds is None and g.actor == OPERATOR for g in analysis.gaps)
    # While a restore may still come it is shown as pending; after RESTORE_WAIT as what it is.
    revoked = T0 + seconds(20)
    assert {g.cause_at(revoked + seconds(30)) for g in analysis.gaps} == {PENDING_CAUSE}
    assert {g.cause_at(revoked + RESTORE_WAIT - seconds(1)) for g in analysis.gaps} == {PENDING_CAUSE}
    assert {g.cause_at(revoked + RESTORE_WAIT) for g in analysis.gaps} == {"revoke_without_restore"}


def test_revoke_closed_by_an_attribute_change_is_without_restore() -> None:
    # Revoke the world rule while subnet rules exist; traffic (preserve on) fails until the
    # attribute flips to false, which the subnet rules satisfy.
    inventory = incident_inventory(node_rules=(WORLD, *SUBNET_RULES))
    changes = [revoke("e1", T0 + seconds(20), WORLD), set_preserve("e2", T0 + seconds(50), "false")]
    analysis = analyze(inventory, changes)
    assert [(g.flow, g.cause, g.duration_seconds) for g in analysis.gaps] == [
        ("traffic", "revoke_without_restore", 30.0)
    ]


def test_security_group_deleted_cause() -> None:
    inventory = incident_inventory(extra_group_rules=())
    changes = [
        delete_group("e1", T0 + seconds(5), "sg-extra"),
        delete_group("e2", T0 + seconds(9), "sg-node"),
    ]
    analysis = analyze(inventory, changes)
    assert {(g.flow, g.cause, g.start) for g in analysis.gaps} == {
        ("traffic", "security_group_deleted", T0 + seconds(9)),
        ("health_check", "security_group_deleted", T0 + seconds(9)),
    }


def test_partial_revoke_of_a_split_world_rule_opens_a_gap() -> None:
    halves = (tcp(NODE_PORT, "0.0.0.0/1"), tcp(NODE_PORT, "128.0.0.0/1"))
    inventory = incident_inventory(node_rules=(*halves, *SUBNET_RULES))
    analysis = analyze(inventory, [revoke("e1", T0 + seconds(5), halves[1])])
    assert [(g.flow, g.is_open) for g in analysis.gaps] == [("traffic", True)]
    status = analysis.status[next(iter(analysis.status))]["traffic"]
    assert status.unadmitted_by_reason == {"source_partly_covered": 2}


def test_service_source_ranges_define_the_client_flow() -> None:
    narrow = tcp(NODE_PORT, "203.0.113.0/24")
    inventory = incident_inventory(node_rules=(narrow, *SUBNET_RULES), source_ranges=("203.0.113.0/24",))
    assert analyze(inventory, []).gaps == []
    analysis = analyze(
        inventory, [revoke("e1", T0 + seconds(5), narrow), authorize("e2", T0 + seconds(65), narrow)]
    )
    assert [(g.flow, g.duration_seconds, g.cause) for g in analysis.gaps] == [
        ("traffic", 60.0, "revoke_before_authorize")
    ]


def test_same_second_replacement_of_unknown_order_is_no_gap() -> None:
    # An operator's pair in one second: nothing says which came first (tests/test_same_second.py
    # has the controller's known orders).
    changes = [
        revoke("e1", T0 + seconds(20), WORLD, actor=OPERATOR),
        authorize("e2", T0 + seconds(20), *SUBNET_RULES, actor=OPERATOR),
    ]
    inventory = incident_inventory(preserve="false")
    for listed in (changes, changes[::-1]):
        assert analyze(inventory, listed).gaps == []
        assert [r.order for r in find_replacements(listed)] == ["unknown"]


def test_restoring_the_same_rule_is_not_a_replacement() -> None:
    changes = [revoke("e1", T0 + seconds(20), WORLD), authorize("e2", T0 + seconds(30), WORLD)]
    assert find_replacements(changes) == []
