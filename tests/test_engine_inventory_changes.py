"""Inputs of reachability that change over time, through the pure engine (issue 13).

Health-check ports, ENI group sets, load balancer groups and subnets, and targets move with
records; each moment is judged by the inventory of that moment, from an anchor before or after
the changes, and what no record says is reported as not known, never guessed.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from exporter.engine.changes import (
    HealthCheckChange,
    InterfaceGroupsChange,
    LoadBalancerGroupsChange,
    LoadBalancerSubnetsChange,
    RuleModification,
    TargetsChange,
)
from exporter.engine.explain import explain_target_group, state_at
from exporter.engine.gaps import Gap, analyze
from exporter.engine.inventory import Inventory, NetworkInterface, SecurityGroup, Target
from exporter.engine.overlay import PriorKey
from exporter.engine.polls import Polled, inventory_values, remember
from exporter.engine.rules import Rule, Source
from exporter.reports.gaps import gap_record
from tests.engine_world import (
    LB_ARN,
    NODE_PORT,
    OPERATOR,
    SUBNETS,
    T0,
    TG_ARN,
    authorize,
    delete_group,
    incident_inventory,
    meta,
    revoke,
    seconds,
    tcp,
)

HC_PORT = 32000
LATER = T0 + seconds(3600)


def hc_port(event_id: str, at: datetime, port: str, arn: str = TG_ARN) -> HealthCheckChange:
    return HealthCheckChange(meta(event_id, at, "ModifyTargetGroup"), arn, port, None)


def eni_groups(event_id: str, at: datetime, eni: str, *groups: str) -> InterfaceGroupsChange:
    return InterfaceGroupsChange(meta(event_id, at, "ModifyNetworkInterfaceAttribute", OPERATOR), eni, groups)


def targets(event_id: str, at: datetime, action: str, *ids: str) -> TargetsChange:
    name = "RegisterTargets" if action == "register" else "DeregisterTargets"
    return TargetsChange(meta(event_id, at, name), TG_ARN, action, tuple((i, None) for i in ids))  # type: ignore[arg-type]


def summary(gaps: list[Gap]) -> list[tuple[str, float | None, str, bool]]:
    return [(g.flow, g.duration_seconds, g.cause, g.start_exact) for g in gaps]


# --- ModifyTargetGroup: the health-check port ---------------------------------------------------

HC_RULES = tuple(tcp(HC_PORT, c) for c in SUBNETS)


def moved_health_check(taken_at: datetime, *, after: bool) -> Inventory:
    """The incident world, its health-check port moved to HC_PORT (and admitted) when `after`."""
    world = incident_inventory(
        node_rules=(tcp(NODE_PORT, "0.0.0.0/0"), *HC_RULES) if after else (tcp(NODE_PORT, "0.0.0.0/0"),),
        taken_at=taken_at,
    )
    if not after:
        return world
    tg = replace(world.target_groups[TG_ARN], health_check_port=str(HC_PORT))
    return replace(world, target_groups={TG_ARN: tg})


def port_moved_then_rule() -> list:  # type: ignore[type-arg]
    return [hc_port("m1", T0 + seconds(10), str(HC_PORT)), authorize("a1", T0 + seconds(40), *HC_RULES)]


def test_a_health_check_port_moved_before_its_rule_is_a_30s_requirement_change_gap_from_the_modify() -> None:
    analysis = analyze(moved_health_check(T0, after=False), port_moved_then_rule())
    assert summary(analysis.gaps) == [("health_check", 30.0, "requirement_change", True)]
    gap = analysis.gaps[0]
    assert gap.start == T0 + seconds(10)
    assert gap.opened_by is not None and gap.opened_by.event_name == "ModifyTargetGroup"
    assert gap.closed_by is not None and gap.closed_by.event_id == "a1"


def test_from_a_later_anchor_the_same_gap_is_found_but_its_start_is_not_exact() -> None:
    """The record does not carry the old port: before the modify, the health check is not known."""
    analysis = analyze(moved_health_check(LATER, after=True), port_moved_then_rule())
    assert summary(analysis.gaps) == [("health_check", 30.0, "requirement_change", False)]
    gap = analysis.gaps[0]
    assert gap.start == T0 + seconds(10)
    assert gap.note is not None and "ModifyTargetGroup" in gap.note and "not known" in gap.note
    assert gap_record(gap)["start_exact"] is False and gap_record(gap)["note"] == gap.note


def test_an_earlier_record_of_the_same_target_group_gives_the_old_port() -> None:
    changes = [hc_port("m0", T0 + seconds(1), "traffic-port"), *port_moved_then_rule()]
    analysis = analyze(moved_health_check(LATER, after=True), changes)
    assert summary(analysis.gaps) == [("health_check", 30.0, "requirement_change", True)]
    assert analysis.gaps[0].note is None


# The daemon's own polls (engine/polls.py): a poll that finished before the first record of an
# object saw the value that record replaced.


def polled(finished: datetime, inventory: Inventory) -> dict[PriorKey, Polled]:
    return remember({}, finished, inventory_values(inventory), cutoff=T0 - seconds(3600))


def test_a_poll_that_finished_before_the_modify_gives_the_old_port() -> None:
    polls = polled(T0 + seconds(9), moved_health_check(T0, after=False))
    analysis = analyze(moved_health_check(LATER, after=True), port_moved_then_rule(), polls=polls)
    assert summary(analysis.gaps) == [("health_check", 30.0, "requirement_change", True)]
    assert analysis.gaps[0].note is None and analysis.gaps[0].start == T0 + seconds(10)


def test_a_poll_that_had_not_finished_before_the_modify_gives_nothing() -> None:
    """A poll still reading at the modify's second may have seen either port: not used."""
    for finished in (T0 + seconds(10), T0 + seconds(11)):
        polls = polled(finished, moved_health_check(T0, after=False))
        analysis = analyze(moved_health_check(LATER, after=True), port_moved_then_rule(), polls=polls)
        assert summary(analysis.gaps) == [("health_check", 30.0, "requirement_change", False)], finished


def test_a_polled_port_that_was_not_admitted_is_a_gap_from_before_the_modify() -> None:
    """The poll saw port 31111, which nothing admitted: the health check failed before the
    modify too, so the modify opened nothing; the gap began before the records (undetermined)."""
    world = moved_health_check(T0, after=False)
    unadmitted = replace(
        world, target_groups={TG_ARN: replace(world.target_groups[TG_ARN], health_check_port="31111")}
    )
    analysis = analyze(
        moved_health_check(LATER, after=True), port_moved_then_rule(), polls=polled(T0, unadmitted)
    )
    assert [(g.flow, g.cause, g.start_exact, g.end) for g in analysis.gaps] == [
        ("health_check", "undetermined", False, T0 + seconds(40))
    ]


def test_a_poll_before_an_eni_move_gives_its_old_groups() -> None:
    changes = [
        eni_groups("n1", T0 + seconds(10), "eni-1", "sg-new"),
        authorize("a1", T0 + seconds(35), tcp(NODE_PORT, "0.0.0.0/0"), group="sg-new"),
    ]
    before = two_groups(T0, enis_on="sg-old", new_rules=())
    after = replace(
        before,
        taken_at=LATER,
        network_interfaces={
            **before.network_interfaces,
            "eni-1": replace(before.network_interfaces["eni-1"], security_group_ids=("sg-new",)),
        },
        security_groups={
            **before.security_groups,
            "sg-new": SecurityGroup("sg-new", "new", "vpc-1", {}, ADMITTING),
        },
    )
    expected = [("health_check", 25.0, "eni_groups_changed"), ("traffic", 25.0, "eni_groups_changed")]
    without = analyze(after, changes)
    assert [s[:3] for s in summary(without.gaps)] == expected
    assert {g.start_exact for g in without.gaps} == {False}
    with_polls = analyze(after, changes, polls=polled(T0 + seconds(1), before))
    assert summary(with_polls.gaps) == [(*e, True) for e in expected]


def test_a_poll_gives_the_old_groups_of_every_target_eni_moved_and_their_rules_are_followed() -> None:
    """Both targets' ENIs moved off sg-old: at the later anchor no ENI holds it, yet undoing the
    moves puts it back, so its rules (and their changes) must be followed from the start."""
    changes = [
        eni_groups("n1", T0 + seconds(10), "eni-1", "sg-new"),
        eni_groups("n2", T0 + seconds(12), "eni-2", "sg-new"),
        authorize("a1", T0 + seconds(30), tcp(NODE_PORT, "0.0.0.0/0"), group="sg-new"),
    ]
    before = two_groups(T0, enis_on="sg-old", new_rules=())
    after = replace(
        two_groups(LATER, enis_on="sg-new"),
        security_groups={
            **before.security_groups,
            "sg-new": SecurityGroup("sg-new", "new", "vpc-1", {}, ADMITTING),
        },
    )
    expected = [
        ("health_check", 20.0, "eni_groups_changed", True),
        ("traffic", 20.0, "eni_groups_changed", True),
    ]
    assert summary(analyze(before, changes).gaps) == expected
    assert summary(analyze(after, changes, polls=polled(T0 + seconds(1), before)).gaps) == expected


def test_a_health_check_port_moved_back_to_an_admitted_port_closes_the_gap() -> None:
    changes = [hc_port("m1", T0 + seconds(10), str(HC_PORT)), hc_port("m2", T0 + seconds(25), "traffic-port")]
    analysis = analyze(moved_health_check(T0, after=False), changes)
    assert summary(analysis.gaps) == [("health_check", 15.0, "requirement_change", True)]
    assert analysis.gaps[0].closed_by is not None and analysis.gaps[0].closed_by.event_id == "m2"


def test_a_failed_modify_changes_nothing() -> None:
    failed = HealthCheckChange(
        meta("m1", T0 + seconds(10), "ModifyTargetGroup", error="ValidationError"), TG_ARN, "1"
    )
    assert analyze(moved_health_check(T0, after=False), [failed]).gaps == []


# --- ModifyNetworkInterfaceAttribute and DeleteSecurityGroup -----------------------------------

ADMITTING = (tcp(NODE_PORT, "0.0.0.0/0"),)


def two_groups(
    taken_at: datetime, *, enis_on: str, new_rules: tuple[Rule, ...] = ADMITTING, old: bool = True
) -> Inventory:
    """Targets' ENIs on `enis_on`; sg-new described with `new_rules`; sg-old described when `old`."""
    world = incident_inventory(taken_at=taken_at)
    groups = {"sg-new": SecurityGroup("sg-new", "new", "vpc-1", {}, new_rules)}
    if old:
        groups["sg-old"] = SecurityGroup("sg-old", "old", "vpc-1", {}, ADMITTING)
    enis = {k: replace(e, security_group_ids=(enis_on,)) for k, e in world.network_interfaces.items()}
    # sg-new is on another ENI at the anchor (so the inventory describes it), not a target's
    enis["eni-9"] = NetworkInterface("eni-9", ("sg-new",), ("10.0.9.9",))
    return replace(world, network_interfaces=enis, security_groups=groups)


def moved_then_deleted() -> list:  # type: ignore[type-arg]
    return [
        eni_groups("n1", T0 + seconds(10), "eni-1", "sg-new"),
        eni_groups("n2", T0 + seconds(12), "eni-2", "sg-new"),
        delete_group("d1", T0 + seconds(20), "sg-old"),
    ]


def test_enis_moved_to_an_admitting_group_then_the_old_group_deleted_is_no_gap() -> None:
    before = two_groups(T0, enis_on="sg-old")
    after = two_groups(LATER, enis_on="sg-new", old=False)  # sg-old is gone: not described
    for anchor in (before, after):
        analysis = analyze(anchor, moved_then_deleted())
        assert analysis.gaps == [], anchor.taken_at
        assert all(s.fully_admitted for s in analysis.status[TG_ARN].values())


def test_deleting_a_group_an_eni_still_uses_is_blamed_on_the_deletion() -> None:
    analysis = analyze(two_groups(T0, enis_on="sg-old"), [delete_group("d1", T0 + seconds(20), "sg-old")])
    assert {(g.flow, g.cause, g.start) for g in analysis.gaps} == {
        ("traffic", "security_group_deleted", T0 + seconds(20)),
        ("health_check", "security_group_deleted", T0 + seconds(20)),
    }


def test_enis_moved_to_a_group_that_does_not_admit_open_a_gap_until_its_rule_arrives() -> None:
    world = two_groups(T0, enis_on="sg-old", new_rules=())
    changes = [
        eni_groups("n1", T0 + seconds(10), "eni-1", "sg-new"),
        authorize("a1", T0 + seconds(35), tcp(NODE_PORT, "0.0.0.0/0"), group="sg-new"),
    ]
    analysis = analyze(world, changes)
    assert summary(analysis.gaps) == [
        ("health_check", 25.0, "eni_groups_changed", True),
        ("traffic", 25.0, "eni_groups_changed", True),
    ]
    assert all(g.opened_by is not None and g.opened_by.actor == OPERATOR for g in analysis.gaps)
    # the authorize on sg-new is seen although no target's ENI had sg-new at the anchor
    assert all(g.closed_by is not None and g.closed_by.event_id == "a1" for g in analysis.gaps)


def test_an_eni_moved_to_a_group_the_inventory_never_described_is_not_known() -> None:
    world = two_groups(T0, enis_on="sg-old")
    analysis = analyze(world, [eni_groups("n1", T0 + seconds(10), "eni-1", "sg-unseen")])
    assert analysis.gaps == []  # eni-1 is left out; eni-2 still admits


# --- RegisterTargets / DeregisterTargets -------------------------------------------------------


def own_groups(taken_at: datetime, *, registered: tuple[int, ...], rules_2: tuple[Rule, ...]) -> Inventory:
    """Each target's ENI has its own group (sg-1 admits; sg-2 has `rules_2`); `registered` targets."""
    world = incident_inventory(taken_at=taken_at)
    enis = {
        f"eni-{i}": replace(world.network_interfaces[f"eni-{i}"], security_group_ids=(f"sg-{i}",))
        for i in (1, 2)
    }
    groups = {
        "sg-1": SecurityGroup("sg-1", "one", "vpc-1", {}, ADMITTING),
        "sg-2": SecurityGroup("sg-2", "two", "vpc-1", {}, rules_2),
    }
    tg = world.target_groups[TG_ARN]
    listed = tuple(Target(f"i-{i}", NODE_PORT, f"eni-{i}", "healthy") for i in registered)
    # an instance registered in another target group keeps eni-2 described at the anchor
    other = replace(
        tg,
        arn=TG_ARN + "-other",
        name="other",
        load_balancer_arns=(),
        targets=(Target("i-2", NODE_PORT, "eni-2"),),
    )
    return replace(
        world,
        network_interfaces=enis,
        security_groups=groups,
        target_groups={TG_ARN: replace(tg, targets=listed), other.arn: other},
    )


def test_deregistering_a_target_whose_rules_are_then_gone_is_no_gap() -> None:
    changes = [
        targets("x1", T0 + seconds(10), "deregister", "i-2"),
        revoke("r1", T0 + seconds(20), *ADMITTING, group="sg-2"),
    ]
    before = own_groups(T0, registered=(1, 2), rules_2=ADMITTING)
    after = own_groups(LATER, registered=(1,), rules_2=())
    for anchor in (before, after):
        assert analyze(anchor, changes).gaps == [], anchor.taken_at


def test_rules_gone_before_the_deregistration_are_a_gap_until_it() -> None:
    changes = [
        revoke("r1", T0 + seconds(10), *ADMITTING, group="sg-2"),
        targets("x1", T0 + seconds(25), "deregister", "i-2"),
    ]
    before = own_groups(T0, registered=(1, 2), rules_2=ADMITTING)
    after = own_groups(LATER, registered=(1,), rules_2=())
    for anchor in (before, after):
        analysis = analyze(anchor, changes)
        assert summary(analysis.gaps) == [
            ("health_check", 15.0, "revoke_without_restore", True),
            ("traffic", 15.0, "revoke_without_restore", True),
        ], anchor.taken_at
        assert all(g.closed_by is not None and g.closed_by.event_id == "x1" for g in analysis.gaps)


def test_registering_a_target_that_is_not_admitted_is_a_gap_from_the_registration() -> None:
    changes = [targets("g1", T0 + seconds(10), "register", "i-2")]
    before = own_groups(T0, registered=(1,), rules_2=())
    after = own_groups(LATER, registered=(1, 2), rules_2=())
    for anchor in (before, after):
        analysis = analyze(anchor, changes)
        assert summary(analysis.gaps) == [
            ("health_check", None, "requirement_change", True),
            ("traffic", None, "requirement_change", True),
        ], anchor.taken_at
        assert all(
            g.start == T0 + seconds(10) and g.opened_by is not None and g.opened_by.event_id == "g1"
            for g in analysis.gaps
        )


def test_without_the_registration_record_the_same_target_is_a_gap_of_unknown_cause() -> None:
    analysis = analyze(own_groups(LATER, registered=(1, 2), rules_2=()), [])
    assert {g.cause for g in analysis.gaps} == {"undetermined"}


def test_registering_a_target_whose_eni_the_inventory_does_not_know_is_not_judged() -> None:
    changes = [targets("g1", T0 + seconds(10), "register", "i-77")]
    assert analyze(own_groups(T0, registered=(1,), rules_2=()), changes).gaps == []


# --- SetSecurityGroups / SetSubnets on the load balancer -------------------------------------

SG_RULE = Rule("tcp", NODE_PORT, NODE_PORT, Source.group("sg-lb"))


def sg_mode(taken_at: datetime) -> Inventory:
    world = incident_inventory(
        node_rules=(SG_RULE,), lb_security_groups=("sg-lb", "sg-lb2"), taken_at=taken_at
    )
    lb = replace(world.load_balancers[LB_ARN], security_groups=("sg-lb",))
    return replace(world, load_balancers={LB_ARN: lb})


def test_moving_the_load_balancer_to_another_group_is_a_requirement_change_until_the_rule_follows() -> None:
    changes = [
        LoadBalancerGroupsChange(meta("s1", T0 + seconds(10), "SetSecurityGroups"), LB_ARN, ("sg-lb2",)),
        authorize("a1", T0 + seconds(22), Rule("tcp", NODE_PORT, NODE_PORT, Source.group("sg-lb2"))),
    ]
    analysis = analyze(sg_mode(T0), changes)
    assert summary(analysis.gaps) == [
        ("health_check", 12.0, "requirement_change", True),
        ("traffic", 12.0, "requirement_change", True),
    ]


def test_set_subnets_to_a_subnet_never_described_leaves_the_target_group_not_known() -> None:
    world = incident_inventory(preserve="false", node_rules=tuple(tcp(NODE_PORT, c) for c in SUBNETS))
    change = LoadBalancerSubnetsChange(
        meta("s1", T0 + seconds(10), "SetSubnets"), LB_ARN, ("subnet-0", "subnet-zzz")
    )
    assert analyze(world, [change]).gaps == []
    narrowed = LoadBalancerSubnetsChange(meta("s2", T0 + seconds(20), "SetSubnets"), LB_ARN, ("subnet-0",))
    assert analyze(world, [narrowed]).gaps == []  # fewer health-check sources: still admitted


def _widened(taken_at: datetime) -> Inventory:
    """Preservation off (traffic and health checks from the NLB subnets); the NLB in both subnets
    and a node rule for each subnet's CIDR: the world after a subnet was added and admitted."""
    return incident_inventory(
        preserve="false", node_rules=tuple(tcp(NODE_PORT, c) for c in SUBNETS), taken_at=taken_at
    )


def _subnet_added_then_admitted(*, earlier_record: bool) -> list:  # type: ignore[type-arg]
    added = LoadBalancerSubnetsChange(
        meta("s1", T0 + seconds(10), "SetSubnets"), LB_ARN, ("subnet-0", "subnet-1")
    )
    admitted = authorize("a1", T0 + seconds(40), tcp(NODE_PORT, SUBNETS[1]))
    if not earlier_record:
        return [added, admitted]
    before = LoadBalancerSubnetsChange(meta("s0", T0 + seconds(1), "SetSubnets"), LB_ARN, ("subnet-0",))
    return [before, added, admitted]


def test_a_subnet_added_before_its_rule_is_a_requirement_change_gap_from_set_subnets() -> None:
    """SetSubnets carries only the new subnets: from an anchor after it, the subnets before it are
    not known (start not exact) unless an earlier SetSubnets of the same NLB gives them."""
    guessed = analyze(_widened(LATER), _subnet_added_then_admitted(earlier_record=False))
    assert summary(guessed.gaps) == [
        ("health_check", 30.0, "requirement_change", False),
        ("traffic", 30.0, "requirement_change", False),
    ]
    assert all(g.opened_by is not None and g.opened_by.event_id == "s1" for g in guessed.gaps)
    assert all(g.note is not None and "SetSubnets" in g.note for g in guessed.gaps)

    known = analyze(_widened(LATER), _subnet_added_then_admitted(earlier_record=True))
    assert summary(known.gaps) == [
        ("health_check", 30.0, "requirement_change", True),
        ("traffic", 30.0, "requirement_change", True),
    ]
    assert [g.start for g in known.gaps] == [T0 + seconds(10)] * 2


# --- ModifySecurityGroupRules: only the new definition is in the record ------------------------


def modify_rule(event_id: str, at: datetime, rule_id: str, rule: Rule) -> RuleModification:
    return RuleModification(
        meta(event_id, at, "ModifySecurityGroupRules", OPERATOR), "sg-node", ((rule_id, rule),)
    )


WORLD_RULE = tcp(NODE_PORT, "0.0.0.0/0", "sgr-0world")
MOVED_RULE = tcp(31999, "0.0.0.0/0", "sgr-0world")


def modified_then_restored() -> list:  # type: ignore[type-arg]
    return [
        modify_rule("m1", T0 + seconds(10), "sgr-0world", MOVED_RULE),
        authorize("a1", T0 + seconds(40), tcp(NODE_PORT, "0.0.0.0/0", "sgr-0new")),
    ]


def test_a_rule_modified_away_then_restored_is_a_30s_gap_from_the_modification() -> None:
    analysis = analyze(incident_inventory(), modified_then_restored())
    assert summary(analysis.gaps) == [
        ("health_check", 30.0, "revoke_before_authorize", True),
        ("traffic", 30.0, "revoke_before_authorize", True),
    ]
    assert all(g.start == T0 + seconds(10) for g in analysis.gaps)


def test_from_a_later_anchor_the_old_definition_is_not_guessed() -> None:
    """The anchor holds the modified rule; its definition before is in no record: not known."""
    later = incident_inventory(
        node_rules=(MOVED_RULE, tcp(NODE_PORT, "0.0.0.0/0", "sgr-0new")), taken_at=LATER
    )
    analysis = analyze(later, modified_then_restored())
    assert summary(analysis.gaps) == [
        ("health_check", 30.0, "revoke_before_authorize", False),
        ("traffic", 30.0, "revoke_before_authorize", False),
    ]
    assert all(
        g.start == T0 + seconds(10) and g.note and "ModifySecurityGroupRules" in g.note for g in analysis.gaps
    )
    # an earlier record of the same rule id gives the old definition: the start is exact again
    earlier = [modify_rule("m0", T0 + seconds(1), "sgr-0world", WORLD_RULE), *modified_then_restored()]
    assert summary(analyze(later, earlier).gaps) == [
        ("health_check", 30.0, "revoke_before_authorize", True),
        ("traffic", 30.0, "revoke_before_authorize", True),
    ]


def test_explain_at_a_moment_uses_that_moments_health_check_port() -> None:
    anchor = moved_health_check(LATER, after=True)
    changes = [hc_port("m0", T0 + seconds(1), "traffic-port"), *port_moved_then_rule()]
    for at, port, admitted in (
        (T0 + seconds(5), NODE_PORT, 2),
        (T0 + seconds(20), HC_PORT, 0),
        (T0 + seconds(50), HC_PORT, 2),
    ):
        explained = explain_target_group(anchor, TG_ARN, state_at(anchor, changes, at), at=at)
        health = next(f for f in explained.flows if f.kind == "health_check")
        assert {t.port for t in health.targets} == {port} and health.admitted == admitted, at


def test_a_registered_address_two_enis_hold_in_the_vpc_is_not_judged_on_either() -> None:
    """Addresses are unique only within a VPC, and an inventory can list one twice: no guess."""
    world = own_groups(T0, registered=(1,), rules_2=())
    tg = world.target_groups[TG_ARN]
    ip_tg = replace(
        tg, arn=TG_ARN + "-ip", name="ip", target_type="ip", targets=(), load_balancer_arns=(LB_ARN,)
    )
    a = replace(
        tg,
        arn=TG_ARN + "-a",
        name="a",
        target_type="ip",
        load_balancer_arns=(),
        targets=(Target("10.0.9.9", 80, "eni-1"),),
    )
    b = replace(a, arn=TG_ARN + "-b", name="b", targets=(Target("10.0.9.9", 80, "eni-2"),))
    world = replace(
        world, target_groups={**world.target_groups, ip_tg.arn: ip_tg, b.arn: b, a.arn: a}
    )  # eni-2 first
    change = TargetsChange(
        meta("g1", T0 + seconds(10), "RegisterTargets"), ip_tg.arn, "register", (("10.0.9.9", 80),)
    )
    analysis = analyze(world, [change])
    assert [g for g in analysis.gaps if g.target_group_arn == ip_tg.arn] == []
    # with one holder (eni-2, whose group admits nothing) the registration is judged: a gap
    world = replace(world, target_groups={k: v for k, v in world.target_groups.items() if k != a.arn})
    gaps = [g for g in analyze(world, [change]).gaps if g.target_group_arn == ip_tg.arn]
    assert {(g.flow, g.cause) for g in gaps} == {
        ("traffic", "requirement_change"),
        ("health_check", "requirement_change"),
    }
