"""SG mode: the controller keeps one rule per (protocol, source group) spanning the lowest to the
highest NodePort (computeRestrictedIngressPermissionsPerSG, pkg/targetgroupbinding/
networking_manager.go, v2.13.0). A new NodePort is a revoke of the old range and an authorize of
a wider one from the same source: a replacement, counted with its order."""

from __future__ import annotations

from pathlib import Path

import msgspec

from benchmarks.synth_inventory import build_fleet, handful_of_changes
from exporter.engine.changes import Change
from exporter.engine.gaps import analyze, find_replacements, groups_by_target_group, required_ports
from exporter.engine.plan import controller_evidence
from exporter.engine.rules import Rule, Source
from tests.awsworld import CloudTrailRecorder, LookupSink, ManualClock, MotoServer, build_incident_world
from tests.engine_world import CONTROLLER, NODE_PORT, T0, authorize, incident_inventory, revoke, seconds
from tests.test_daemon_e2e import _daemon, _metrics, _sample

NEW_CONTROLLER = msgspec.structs.replace(CONTROLLER, user_agent="elbv2.k8s.aws/v2.13.0 aws-sdk-go-v2/1.32.2")
BACKEND = Source.group("sg-nlb")


def ranged(low: int, high: int) -> Rule:
    return Rule("tcp", low, high, BACKEND, None, "elbv2.k8s.aws/targetGroupBinding=shared")


OLD = ranged(31000, NODE_PORT)  # spans the NodePort 31080 in use
WIDER = ranged(31000, 31500)  # a Service with NodePort 31500 was added


def sg_mode() -> object:
    return incident_inventory(node_rules=(OLD,), lb_security_groups=("sg-nlb",))


def summary(changes: list[Change]) -> tuple[list[str], list[tuple[object, ...]]]:
    analysis = analyze(sg_mode(), changes)  # type: ignore[arg-type]
    return (
        [r.order for r in analysis.replacements],
        [(g.flow, g.duration_seconds, g.cause) for g in analysis.gaps],
    )


def test_required_ports_are_the_targets_traffic_and_health_check_ports_by_group() -> None:
    assert required_ports(sg_mode()) == {"sg-node": frozenset({("tcp", NODE_PORT)})}  # type: ignore[arg-type]


def test_required_ports_of_some_groups_walk_only_their_target_groups_and_are_the_same() -> None:
    fleet = build_fleet(150)  # three clusters: groups shared by a cluster's target groups
    inventory = fleet.inventory
    everything = required_ports(inventory)
    tgs_of_group: dict[str, set[str]] = {}
    for arn, groups in groups_by_target_group(inventory).items():
        for group_id in groups:
            tgs_of_group.setdefault(group_id, set()).add(arn)
    asked = [*sorted(inventory.security_groups)[::3], "sg-nowhere"]
    some = required_ports(inventory, {g: tgs_of_group.get(g, set()) for g in asked})
    assert some == {g: everything[g] for g in asked if g in everything}
    assert len(some) >= 5 and len(some) < len(everything)
    # Only the target groups named are walked: none named, no ports found.
    assert required_ports(inventory, dict.fromkeys(asked, frozenset[str]())) == {}
    # analyze asks for the groups of its rule changes only: the same replacements as with every
    # group's ports (a node group's rule for a required port widened, revoke first; and the fleet's flips).
    group = fleet.node_groups[1]
    merged = next(
        r for r in inventory.security_groups[group].rules if (r.protocol, r.from_port) in everything[group]
    )
    wider = msgspec.structs.replace(merged, from_port=merged.from_port - 5, to_port=merged.to_port + 5)
    at = inventory.taken_at - seconds(600)
    changes = [
        *handful_of_changes(fleet),
        revoke("w1", at, merged, group=group),
        authorize("w2", at + seconds(5), wider, group=group),
    ]
    replacements = find_replacements(changes, required=everything)
    assert [r.group_id for r in replacements] == [group]
    assert analyze(inventory, changes).replacements == replacements


def test_widening_revoke_first_is_a_break_before_make_replacement_and_a_gap() -> None:
    changes: list[Change] = [revoke("e1", T0 + seconds(10), OLD), authorize("e2", T0 + seconds(20), WIDER)]
    assert summary(changes) == (
        ["break_before_make"],
        [("health_check", 10.0, "revoke_before_authorize"), ("traffic", 10.0, "revoke_before_authorize")],
    )


def test_widening_authorize_first_is_make_before_break_without_a_gap() -> None:
    changes: list[Change] = [authorize("e1", T0 + seconds(10), WIDER), revoke("e2", T0 + seconds(20), OLD)]
    assert summary(changes) == (["make_before_break"], [])


def test_widening_in_one_second_is_ordered_by_the_controller_version_in_either_file_order() -> None:
    old_controller: list[Change] = [revoke("e1", T0, OLD), authorize("e2", T0, WIDER)]
    new_controller: list[Change] = [
        revoke("e1", T0, OLD, actor=NEW_CONTROLLER),
        authorize("e2", T0, WIDER, actor=NEW_CONTROLLER),
    ]
    for listed in (old_controller, old_controller[::-1]):
        orders, gaps = summary(listed)
        assert orders == ["break_before_make"] and {g[1] for g in gaps} == {0.0}
    for listed in (new_controller, new_controller[::-1]):
        assert summary(listed) == (["make_before_break"], [])


def test_narrowing_that_keeps_the_required_port_is_a_replacement() -> None:
    inventory = incident_inventory(node_rules=(WIDER,), lb_security_groups=("sg-nlb",))
    changes: list[Change] = [revoke("e1", T0 + seconds(10), WIDER), authorize("e2", T0 + seconds(12), OLD)]
    analysis = analyze(inventory, changes)
    assert [r.order for r in analysis.replacements] == ["break_before_make"]
    assert {(g.flow, g.duration_seconds) for g in analysis.gaps} == {("traffic", 2.0), ("health_check", 2.0)}


def test_a_range_that_misses_the_required_port_or_the_same_range_again_is_no_replacement() -> None:
    required = required_ports(sg_mode())  # type: ignore[arg-type]
    elsewhere = ranged(31200, 31500)
    misses: list[Change] = [revoke("e1", T0, OLD), authorize("e2", T0 + seconds(5), elsewhere)]
    restore: list[Change] = [revoke("e1", T0, OLD), authorize("e2", T0 + seconds(5), OLD)]
    other_protocol: list[Change] = [
        revoke("e1", T0, OLD),
        authorize("e2", T0 + seconds(5), msgspec.structs.replace(WIDER, protocol="udp")),
    ]
    for changes in (misses, restore, other_protocol):
        assert find_replacements(changes, required=required) == []
    # Without knowing the required ports, overlapping ranges of one source count.
    assert [r.order for r in find_replacements(misses)] == []
    assert [
        r.order for r in find_replacements([revoke("e1", T0, OLD), authorize("e2", T0 + seconds(5), WIDER)])
    ] == ["break_before_make"]


def test_plan_evidence_sees_the_merged_range_replacement() -> None:
    changes: list[Change] = [revoke("e1", T0 + seconds(10), OLD), authorize("e2", T0 + seconds(40), WIDER)]
    evidence = controller_evidence(sg_mode(), changes)  # type: ignore[arg-type]
    assert (evidence.break_before_make, evidence.make_before_break, evidence.longest_exposure_seconds) == (
        1,
        0,
        30.0,
    )


def test_daemon_counts_the_widened_range_as_a_replacement_with_its_order(
    clean_moto: MotoServer, tmp_path: Path
) -> None:
    ec2, elbv2 = clean_moto.client("ec2"), clean_moto.client("elbv2")
    clock = ManualClock()
    world = build_incident_world(ec2, elbv2, cluster="demo", with_sg_mode=True)
    CloudTrailRecorder(LookupSink(clean_moto), clock).attach(ec2, elbv2)  # the controller, v2.7.1
    assembly = _daemon(clean_moto, tmp_path / "state.sqlite3", clock)
    assembly.daemon.run_all_once()

    def permission(high: int) -> list[dict[str, object]]:
        pair = {"GroupId": world.backend_sg_id, "Description": "elbv2.k8s.aws/targetGroupBinding=shared"}
        return [{"IpProtocol": "tcp", "FromPort": 32000, "ToPort": high, "UserIdGroupPairs": [pair]}]

    clock.advance(10)
    ec2.revoke_security_group_ingress(GroupId=world.node_sg_id, IpPermissions=permission(32100))
    clock.advance(10)
    ec2.authorize_security_group_ingress(GroupId=world.node_sg_id, IpPermissions=permission(32500))
    clock.advance(5)
    for _ in range(2):
        assembly.daemon.run_all_once()
    text = _metrics(assembly)
    node_sg = world.node_sg_id
    assert (
        _sample(text, "sgchurn_rule_replacements_total", security_group=node_sg, order="break_before_make")
        == 1.0
    )
    # ... and its end (the authorize's eventTime) is what SGChurnBreakBeforeMakeReplacement reads.
    ended = _sample(
        text, "sgchurn_rule_replacement_last_break_before_make_timestamp_seconds", security_group=node_sg
    )
    assert ended is not None and ended > 1e9
    # No other order was counted: those series do not exist (counters appear with their first event).
    for order in ("make_before_break", "unknown"):
        assert _sample(text, "sgchurn_rule_replacements_total", security_group=node_sg, order=order) is None
    sg_gaps = {(g.flow, g.cause, g.duration_seconds) for g in assembly.daemon.snapshot().recent_gaps}
    assert ("traffic", "revoke_before_authorize", 10.0) in sg_gaps
