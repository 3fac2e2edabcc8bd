"""Inputs of reachability that change over time, against moto over HTTP: the daemon and `replay`.

The test's own boto3 calls (ModifyTargetGroup, ModifyNetworkInterfaceAttribute, DeleteSecurityGroup,
Register/DeregisterTargets, rule changes) are turned into CloudTrail records (tests/awsworld.py)
and reach the daemon through LookupEvents; `replay` reads the same records from a trail file with
an inventory described from moto before the changes and one described after them.

moto quirk: an instance's primary ENI reports the instance's groups besides its own, so the ENI
move is done on a standalone (pod) ENI behind an ip target group.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from exporter.cli import main
from exporter.config import Settings, load_settings
from exporter.daemon.assemble import Assembly, build_daemon
from exporter.engine.inventory import Inventory
from exporter.metrics import build_registry
from exporter.sources.inventory import describe_inventory
from tests.awsworld import (
    MOTO_ACCOUNT,
    NODE_PORT,
    REGION,
    CloudTrailRecorder,
    IncidentWorld,
    LookupSink,
    ManualClock,
    MotoServer,
    build_incident_world,
)


@dataclass
class Scene:
    server: MotoServer
    ec2: Any
    elbv2: Any
    world: IncidentWorld
    clock: ManualClock
    recorder: CloudTrailRecorder
    assembly: Assembly
    before: Inventory
    settings: Settings

    def run(self, *jobs: str) -> Any:
        for job in jobs:
            self.assembly.daemon.run_job(job)
        return self.assembly.daemon.snapshot()

    def metrics(self) -> str:
        return generate_latest(build_registry(self.assembly.daemon.snapshot)).decode()

    def describe(self) -> Inventory:
        return describe_inventory(
            self.ec2, self.elbv2, self.clock.now(), account_id=MOTO_ACCOUNT, region=REGION
        )

    def replay(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], anchor: Inventory
    ) -> list[dict[str, Any]]:
        inventory = tmp_path / f"inventory-{anchor.taken_at:%H%M%S}.json"
        inventory.write_text(json.dumps(anchor.to_dict()))
        trail = tmp_path / "trail.json"
        trail.write_text(json.dumps({"Records": self.recorder.records}))
        capsys.readouterr()
        assert main(["replay", "--inventory", str(inventory), str(trail)]) == 0
        return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def _scene(server: MotoServer, tmp_path: Path, arrange: Any = None, *, sg_mode_world: bool = False) -> Scene:
    ec2, elbv2 = server.client("ec2"), server.client("elbv2")
    world = build_incident_world(ec2, elbv2, cluster="demo", with_sg_mode=sg_mode_world)
    if arrange is not None:
        arrange(ec2, elbv2, world)  # made before the daemon starts: not recorded
    clock = ManualClock()
    recorder = CloudTrailRecorder(LookupSink(server), clock)
    recorder.attach(ec2, elbv2)
    settings = load_settings(
        None,
        environ={},
        overrides={
            "cluster_name": "demo",
            "targets": [{"region": REGION}],
            "state": {"path": str(tmp_path / "state.sqlite3")},
            "kubernetes": {"enabled": "false"},
            "cloudtrail": {"settle_seconds": 120, "overlap_seconds": 600},
        },
    )
    assembly = build_daemon(settings, endpoint_url=server.url, clock=clock.now)
    assembly.daemon.run_all_once()
    snap = assembly.daemon.snapshot()
    assert snap.ready and snap.open_gaps == ()
    scene = Scene(
        server,
        ec2,
        elbv2,
        world,
        clock,
        recorder,
        assembly,
        describe_inventory(ec2, elbv2, clock.now(), account_id=MOTO_ACCOUNT, region=REGION),
        settings,
    )
    return scene


def _events(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith("sgchurn_cloudtrail_events_total{") and f'event_name="{name}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _perm(port: int, cidrs: list[str]) -> list[dict[str, Any]]:
    return [
        {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "IpRanges": [{"CidrIp": c} for c in cidrs]}
    ]


def _at(line: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(line["start"].replace("Z", "+00:00"))


# --- a health-check port moved 30 s before its rule ---------------------------------------------


def test_a_health_check_port_moved_before_its_rule_is_a_30s_requirement_change_gap(
    clean_moto: MotoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scene = _scene(clean_moto, tmp_path)
    modified_at = scene.clock.advance(10)
    scene.elbv2.modify_target_group(TargetGroupArn=scene.world.tg_arn, HealthCheckPort="32000")
    scene.clock.advance(30)
    scene.ec2.authorize_security_group_ingress(
        GroupId=scene.world.node_sg_id, IpPermissions=_perm(32000, scene.world.subnet_cidrs)
    )
    scene.clock.advance(5)
    scene.run("inventory", "cloudtrail", "evaluate", "evaluate")
    snap = scene.assembly.daemon.snapshot()
    assert snap.open_gaps == ()
    # The daemon anchors on its latest poll (the port already moved) and the record carries only
    # the new port; its own poll before the modify (at start-up) saw the old one, so the start is
    # exact. `replay` from the same later anchor has no earlier poll: not exact there (below).
    assert {(g.flow, g.cause, g.start, g.duration_seconds, g.start_exact) for g in snap.recent_gaps} == {
        ("health_check", "requirement_change", modified_at, 30.0, True)
    }
    assert all(g.note == "" for g in snap.recent_gaps)
    assert _events(scene.metrics(), "ModifyTargetGroup") == 1.0

    after = scene.describe()
    for anchor, exact in ((scene.before, True), (after, False)):
        lines = scene.replay(tmp_path, capsys, anchor)
        assert [(g["flow"], g["cause"], g["duration_seconds"], g["start_exact"]) for g in lines] == [
            ("health_check", "requirement_change", 30.0, exact)
        ]
        assert _at(lines[0]) == modified_at and lines[0]["opened_by_event"] == "ModifyTargetGroup"


def test_a_restart_keeps_what_the_earlier_polls_saw(clean_moto: MotoServer, tmp_path: Path) -> None:
    """The health-check port moved and no rule follows: an open gap from the modify, exact
    because the poll at start-up saw the old port. A restart reads that poll back from the state
    file; without it (the stored rows deleted) the restarted daemon does not know the old port."""
    scene = _scene(clean_moto, tmp_path)
    modified_at = scene.clock.advance(10)
    scene.elbv2.modify_target_group(TargetGroupArn=scene.world.tg_arn, HealthCheckPort="32000")
    scene.clock.advance(30)
    scene.run("inventory", "cloudtrail", "evaluate")

    def opened(assembly: Assembly) -> set[tuple[str, str, datetime, bool]]:
        return {(g.flow, g.cause, g.start, g.start_exact) for g in assembly.daemon.snapshot().open_gaps}

    assert opened(scene.assembly) == {("health_check", "requirement_change", modified_at, True)}
    state = tmp_path / "state.sqlite3"
    for forget, exact in ((False, True), (True, False)):
        if forget:
            with contextlib.closing(sqlite3.connect(state)) as db, db:
                assert db.execute("DELETE FROM polled").rowcount > 0
        restarted = build_daemon(scene.settings, endpoint_url=clean_moto.url, clock=scene.clock.now)
        restarted.daemon.run_all_once()
        assert opened(restarted) == {("health_check", "requirement_change", modified_at, exact)}


# --- ENIs moved to an admitting group, then the old group deleted -------------------------------


def _pod_target(ec2: Any, elbv2: Any, world: IncidentWorld) -> None:
    """A pod ENI in its own group sg-old (admitting tcp 8080 from the VPC) behind an ip target group."""
    old = ec2.create_security_group(GroupName="pods-old", Description="old", VpcId=world.vpc_id)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=old, IpPermissions=_perm(8080, ["10.0.0.0/16"]))
    eni = ec2.create_network_interface(SubnetId=world.subnet_ids[1], Groups=[old], Description="pod")[
        "NetworkInterface"
    ]
    tg = elbv2.create_target_group(
        Name="k8s-shop-pods", Protocol="TCP", Port=8080, VpcId=world.vpc_id, TargetType="ip"
    )["TargetGroups"][0]["TargetGroupArn"]
    elbv2.create_listener(
        LoadBalancerArn=world.nlb_arn,
        Protocol="TCP",
        Port=8080,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}],
    )
    elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": eni["PrivateIpAddress"], "Port": 8080}])
    world.extra.update(old_sg=old, pod_eni=eni["NetworkInterfaceId"], pod_tg=tg)


def test_enis_moved_to_an_admitting_group_then_the_old_group_deleted_is_no_gap(
    clean_moto: MotoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scene = _scene(clean_moto, tmp_path, _pod_target)
    extra = scene.world.extra
    new = scene.ec2.create_security_group(GroupName="pods-new", Description="new", VpcId=scene.world.vpc_id)[
        "GroupId"
    ]
    scene.ec2.authorize_security_group_ingress(GroupId=new, IpPermissions=_perm(8080, ["10.0.0.0/16"]))
    scene.clock.advance(10)
    scene.ec2.modify_network_interface_attribute(NetworkInterfaceId=extra["pod_eni"], Groups=[new])
    scene.clock.advance(10)
    scene.ec2.delete_security_group(GroupId=extra["old_sg"])
    scene.clock.advance(5)
    # CloudTrail first, judged against the inventory from before the move (the anchor is earlier) ...
    snap = scene.run("cloudtrail", "evaluate")
    assert snap.open_gaps == () and snap.recent_gaps == ()
    # ... then against a fresh one (the anchor is later).
    snap = scene.run("inventory", "evaluate", "evaluate")
    assert snap.open_gaps == () and snap.recent_gaps == ()
    text = scene.metrics()
    assert (
        _events(text, "ModifyNetworkInterfaceAttribute") == 1.0
        and _events(text, "DeleteSecurityGroup") == 1.0
    )
    for anchor in (scene.before, scene.describe()):
        assert scene.replay(tmp_path, capsys, anchor) == []


# --- targets over time --------------------------------------------------------------------------


def _third_instance(rules: bool, registered: bool) -> Any:
    def arrange(ec2: Any, elbv2: Any, world: IncidentWorld) -> None:
        own = ec2.create_security_group(GroupName="node-3", Description="n3", VpcId=world.vpc_id)["GroupId"]
        if rules:
            ec2.authorize_security_group_ingress(GroupId=own, IpPermissions=_perm(NODE_PORT, ["0.0.0.0/0"]))
        instance = ec2.run_instances(
            ImageId="ami-0abcdef1234567890",
            MinCount=1,
            MaxCount=1,
            SubnetId=world.subnet_ids[0],
            SecurityGroupIds=[own],
        )["Instances"][0]["InstanceId"]
        if registered:
            elbv2.register_targets(TargetGroupArn=world.tg_arn, Targets=[{"Id": instance, "Port": NODE_PORT}])
        world.extra.update(own_sg=own, instance=instance)

    return arrange


def test_deregistering_a_target_whose_rules_are_then_gone_is_no_gap(
    clean_moto: MotoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scene = _scene(clean_moto, tmp_path, _third_instance(rules=True, registered=True))
    extra = scene.world.extra
    scene.clock.advance(10)
    scene.elbv2.deregister_targets(
        TargetGroupArn=scene.world.tg_arn, Targets=[{"Id": extra["instance"], "Port": NODE_PORT}]
    )
    scene.clock.advance(10)
    scene.ec2.revoke_security_group_ingress(
        GroupId=extra["own_sg"], IpPermissions=_perm(NODE_PORT, ["0.0.0.0/0"])
    )
    scene.clock.advance(5)
    snap = scene.run("cloudtrail", "evaluate")  # the anchor still lists the target
    assert snap.open_gaps == () and snap.recent_gaps == ()
    snap = scene.run("inventory", "evaluate", "evaluate")
    assert snap.open_gaps == () and snap.recent_gaps == ()
    assert _events(scene.metrics(), "DeregisterTargets") == 1.0
    for anchor in (scene.before, scene.describe()):
        assert scene.replay(tmp_path, capsys, anchor) == []


def test_registering_a_target_that_is_not_admitted_is_a_gap_from_the_registration(
    clean_moto: MotoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scene = _scene(clean_moto, tmp_path, _third_instance(rules=False, registered=False))
    registered_at = scene.clock.advance(10)
    scene.elbv2.register_targets(
        TargetGroupArn=scene.world.tg_arn, Targets=[{"Id": scene.world.extra["instance"], "Port": NODE_PORT}]
    )
    scene.clock.advance(5)
    scene.run("inventory", "cloudtrail", "evaluate", "evaluate")
    snap = scene.assembly.daemon.snapshot()
    assert {(g.flow, g.cause, g.start, g.explained) for g in snap.open_gaps} == {
        ("traffic", "requirement_change", registered_at, True),
        ("health_check", "requirement_change", registered_at, True),
    }
    assert _events(scene.metrics(), "RegisterTargets") == 1.0
    lines = scene.replay(tmp_path, capsys, scene.describe())
    assert sorted((g["flow"], g["cause"], g["end"], g["opened_by_event"]) for g in lines) == [
        ("health_check", "requirement_change", None, "RegisterTargets"),
        ("traffic", "requirement_change", None, "RegisterTargets"),
    ]
    assert all(_at(g) == registered_at for g in lines)


# --- the load balancer's security groups --------------------------------------------------------


def test_the_load_balancer_moved_off_the_referenced_group_is_a_requirement_change_gap(
    clean_moto: MotoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SG mode: the node rule admits the NLB's backend group; SetSecurityGroups keeps only the
    frontend group, and 20 s later a rule from the frontend group follows."""

    scene = _scene(clean_moto, tmp_path, sg_mode_world=True)
    world = scene.world
    assert world.sg_nlb_arn and world.nlb_sg_id
    moved_at = scene.clock.advance(10)
    scene.elbv2.set_security_groups(LoadBalancerArn=world.sg_nlb_arn, SecurityGroups=[world.nlb_sg_id])
    scene.clock.advance(20)
    frontend = [
        {
            "IpProtocol": "tcp",
            "FromPort": 32000,
            "ToPort": 32000,
            "UserIdGroupPairs": [{"GroupId": world.nlb_sg_id}],
        }
    ]
    scene.ec2.authorize_security_group_ingress(GroupId=world.node_sg_id, IpPermissions=frontend)
    scene.clock.advance(5)
    scene.run("inventory", "cloudtrail", "evaluate", "evaluate")
    snap = scene.assembly.daemon.snapshot()
    assert snap.open_gaps == ()
    assert {(g.flow, g.cause, g.start, g.duration_seconds) for g in snap.recent_gaps} == {
        ("traffic", "requirement_change", moved_at, 20.0),
        ("health_check", "requirement_change", moved_at, 20.0),
    }
    assert _events(scene.metrics(), "SetSecurityGroups") == 1.0
    lines = scene.replay(tmp_path, capsys, scene.before)
    assert sorted((g["flow"], g["cause"], g["duration_seconds"], g["opened_by_event"]) for g in lines) == [
        ("health_check", "requirement_change", 20.0, "SetSecurityGroups"),
        ("traffic", "requirement_change", 20.0, "SetSecurityGroups"),
    ]


def test_a_poll_whose_history_the_store_refused_is_stored_with_the_next_poll(
    clean_moto: MotoServer, tmp_path: Path
) -> None:
    """The port moved (no record of it here); the poll that saw it could not store its history
    (another process held the state file's write lock). The next poll, the store writable again,
    stores it: the state file holds what memory holds, and a restart reads back the same history
    (a stale row would give a later record's old value wrongly, as a fact)."""
    scene = _scene(clean_moto, tmp_path)
    unrecorded = clean_moto.client("elbv2")
    scene.clock.advance(60)
    unrecorded.modify_target_group(TargetGroupArn=scene.world.tg_arn, HealthCheckPort="32000")
    scene.clock.advance(60)
    state = tmp_path / "state.sqlite3"
    monitor = scene.assembly.daemon.monitors[0]
    with contextlib.closing(sqlite3.connect(state, isolation_level=None)) as blocker:
        blocker.execute("BEGIN IMMEDIATE")
        scene.run("inventory")
        blocker.execute("ROLLBACK")
    key = ("hc_port", scene.world.tg_arn)
    assert [value for _, value in monitor.polls[key]] == ["traffic-port", "32000"]
    scene.clock.advance(60)
    scene.run("inventory")  # nothing changed since
    assert scene.assembly.daemon.store.polled(monitor.key) == monitor.polls
    restarted = build_daemon(scene.settings, endpoint_url=clean_moto.url, clock=scene.clock.now)
    assert restarted.daemon.monitors[0].polls == monitor.polls
