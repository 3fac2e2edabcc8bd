"""A revoke and an authorize in the same CloudTrail second: ordered by what the actor is known to
do (the controller's version, a quota refusal), never by file order; `unknown` otherwise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from msgspec.structs import replace

from exporter.cli import main
from exporter.engine.changes import Actor, Change
from exporter.engine.gaps import ORDERS, analyze, find_replacements
from exporter.engine.ordering import controller_release
from exporter.engine.plan import controller_evidence
from exporter.reports.gaps import gap_record
from exporter.reports.plan import evidence_json
from tests import cloudtrail_samples as ct
from tests.awsworld import CloudTrailRecorder, ManualClock, MotoServer, build_incident_world
from tests.engine_world import (
    CONTROLLER,
    NODE_PORT,
    OPERATOR,
    SUBNETS,
    T0,
    authorize,
    incident_inventory,
    revoke,
    seconds,
    tcp,
)
from tests.test_daemon_e2e import _daemon, _metrics, _sample

WORLD = tcp(NODE_PORT, "0.0.0.0/0")
SUBNET_RULES = tuple(tcp(NODE_PORT, c) for c in SUBNETS)
NEW_CONTROLLER = replace(CONTROLLER, user_agent="elbv2.k8s.aws/v2.13.0 aws-sdk-go-v2/1.32.2")
AT = T0 + seconds(20)


def pair(actor: Actor) -> list[Change]:
    """The controller's preserve-off replacement (0.0.0.0/0 -> the NLB subnets), both at AT."""
    return [revoke("e-rev", AT, WORLD, actor=actor), authorize("e-auth", AT, *SUBNET_RULES, actor=actor)]


def classified(changes: list[Change]) -> tuple[list[str], list[tuple[object, ...]]]:
    analysis = analyze(incident_inventory(preserve="false"), changes)
    gaps = [
        (
            g.flow,
            g.cause,
            g.start,
            g.duration_seconds,
            g.under_one_second,
            g.opened_by and g.opened_by.event_id,
        )
        for g in analysis.gaps
    ]
    return [r.order for r in analysis.replacements], gaps


def test_unknown_is_a_documented_order() -> None:
    assert ORDERS == ("make_before_break", "break_before_make", "unknown")
    assert "`unknown`" in (Path(__file__).parents[1] / "docs" / "metrics.md").read_text()


@pytest.mark.parametrize(
    ("agent", "release"),
    [
        ("elbv2.k8s.aws/v2.7.1 aws-sdk-go/1.50.0 (go1.21.6; linux; amd64)", (2, 7, 1)),
        ("elbv2.k8s.aws/v2.12.0 aws-sdk-go-v2/1.32.2", (2, 12, 0)),
        ("elbv2.k8s.aws/v0.0.0-dev aws-sdk-go/1.50.0", None),  # a development build says nothing
        ("aws-cli/2.15.0", None),
        (None, None),
    ],
)
def test_controller_release_from_the_user_agent(agent: str | None, release: tuple[int, ...] | None) -> None:
    assert controller_release(agent) == release


def test_a_controller_before_v2_12_revokes_first_a_gap_under_one_second_in_either_file_order() -> None:
    expected = (
        ["break_before_make"],
        [
            ("health_check", "revoke_before_authorize", AT, 0.0, True, "e-rev"),
            ("traffic", "revoke_before_authorize", AT, 0.0, True, "e-rev"),
        ],
    )
    changes = pair(CONTROLLER)
    assert classified(changes) == expected
    assert classified(changes[::-1]) == expected
    gap = analyze(incident_inventory(preserve="false"), changes).gaps[0]
    assert gap.actor == CONTROLLER and gap_record(gap)["under_one_second"] is True


def test_a_controller_from_v2_12_authorizes_first_no_gap_in_either_file_order() -> None:
    changes = pair(NEW_CONTROLLER)
    assert classified(changes) == (["make_before_break"], [])
    assert classified(changes[::-1]) == (["make_before_break"], [])


def test_a_rule_quota_refusal_just_before_means_revoke_first_even_from_v2_12() -> None:
    refused = authorize(
        "e-refused",
        AT - seconds(1),
        *SUBNET_RULES,
        actor=NEW_CONTROLLER,
        error="Client.RulesPerSecurityGroupLimitExceeded",
    )
    for changes in ([refused, *pair(NEW_CONTROLLER)], [*pair(NEW_CONTROLLER)[::-1], refused]):
        orders, gaps = classified(changes)
        assert orders == ["break_before_make"]
        assert [(flow, under) for flow, _cause, _start, _duration, under, _opener in gaps] == [
            ("health_check", True),
            ("traffic", True),
        ]
    stale = replace(refused, meta=replace(refused.meta, event_time=AT - seconds(600)))
    assert classified([stale, *pair(NEW_CONTROLLER)])[0] == ["make_before_break"]


@pytest.mark.parametrize(
    "actors",
    [
        pytest.param((OPERATOR, OPERATOR), id="operator"),
        pytest.param((CONTROLLER, OPERATOR), id="mixed"),
        pytest.param((CONTROLLER, NEW_CONTROLLER), id="two-versions"),
    ],
)
def test_without_knowledge_the_order_is_unknown_and_no_gap_is_claimed(actors: tuple[Actor, Actor]) -> None:
    changes: list[Change] = [
        revoke("e-rev", AT, WORLD, actor=actors[0]),
        authorize("e-auth", AT, *SUBNET_RULES, actor=actors[1]),
    ]
    assert classified(changes) == (["unknown"], [])
    assert classified(changes[::-1]) == (["unknown"], [])
    assert [r.order for r in find_replacements(changes[::-1])] == ["unknown"]


def test_replay_classifies_a_same_second_pair_the_same_whatever_the_file_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps(incident_inventory(preserve="false").to_dict()))
    world = ct.permission(NODE_PORT, cidrs=["0.0.0.0/0"])
    subnets = ct.permission(NODE_PORT, cidrs=list(SUBNETS))
    records = [
        ct.revoke_record("e-rev", AT, "sg-node", [world]),
        ct.authorize_record("e-auth", AT, "sg-node", [subnets], rule_ids=["sgr-1", "sgr-2"]),
    ]
    outputs = []
    for name, listed in (("forward.json", records), ("reversed.json", records[::-1])):
        (tmp_path / name).write_bytes(ct.trail_file_bytes(listed))
        assert main(["replay", "--inventory", str(inventory), str(tmp_path / name)]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]
    gaps = [json.loads(line) for line in outputs[0].splitlines()]
    assert [(g["flow"], g["duration_seconds"], g["under_one_second"], g["cause"]) for g in gaps] == [
        ("health_check", 0.0, True, "revoke_before_authorize"),
        ("traffic", 0.0, True, "revoke_before_authorize"),
    ]


def test_plan_evidence_counts_an_unknown_order_as_neither_kind() -> None:
    changes: list[Change] = [
        revoke("e-rev", AT, WORLD, actor=CONTROLLER),
        authorize("e-auth", AT, *SUBNET_RULES, actor=NEW_CONTROLLER),
    ]
    evidence = controller_evidence(incident_inventory(preserve="false"), changes)
    assert (evidence.make_before_break, evidence.break_before_make, evidence.unknown_order) == (0, 0, 1)
    assert evidence_json(evidence).unknown_order_seen == 1
    known = controller_evidence(incident_inventory(preserve="false"), pair(CONTROLLER)[::-1])
    assert (known.make_before_break, known.break_before_make, known.unknown_order) == (0, 1, 0)


@pytest.mark.parametrize("delivered", ["as-made", "reversed"])
def test_the_daemon_classifies_a_same_second_pair_whatever_the_delivery_order(
    delivered: str, clean_moto: MotoServer, tmp_path: Path
) -> None:
    ec2, elbv2 = clean_moto.client("ec2"), clean_moto.client("elbv2")
    clock = ManualClock()
    world = build_incident_world(ec2, elbv2, cluster="demo")
    recorder = CloudTrailRecorder(None, clock)  # the controller, v2.7.1; records delivered below
    recorder.attach(ec2, elbv2)
    assembly = _daemon(clean_moto, tmp_path / "state.sqlite3", clock)
    assembly.daemon.run_all_once()
    clock.advance(10)
    elbv2.modify_target_group_attributes(
        TargetGroupArn=world.tg_arn, Attributes=[{"Key": "preserve_client_ip.enabled", "Value": "false"}]
    )
    clock.advance(10)
    everyone = [
        {"IpProtocol": "tcp", "FromPort": 31080, "ToPort": 31080, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
    ]
    subnets = [{"CidrIp": c} for c in world.subnet_cidrs]
    ec2.revoke_security_group_ingress(GroupId=world.node_sg_id, IpPermissions=everyone)
    ec2.authorize_security_group_ingress(
        GroupId=world.node_sg_id,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 31080, "ToPort": 31080, "IpRanges": subnets}],
    )
    pair_records = recorder.records[-2:]
    assert pair_records[0]["eventTime"] == pair_records[1]["eventTime"]
    records = recorder.records if delivered == "as-made" else [*recorder.records[:-2], *pair_records[::-1]]
    clean_moto.add_records(records)
    clock.advance(5)
    for _ in range(2):
        assembly.daemon.run_all_once()
    text = _metrics(assembly)
    # Lean exposition (issue 15): a counter series exists once it has counted, so the orders that
    # did not happen have no series at all (absent, not 0).
    for order, count in (("break_before_make", 1.0), ("make_before_break", None), ("unknown", None)):
        assert (
            _sample(text, "sgchurn_rule_replacements_total", security_group=world.node_sg_id, order=order)
            == count
        )
    gaps = {(g.flow, g.cause, g.duration_seconds) for g in assembly.daemon.snapshot().recent_gaps}
    assert gaps == {
        ("traffic", "revoke_before_authorize", 0.0),
        ("health_check", "revoke_before_authorize", 0.0),
    }
