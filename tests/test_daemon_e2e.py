"""The daemon end to end against a moto server: the incident driven through real API calls.

Jobs are run by hand (not on the scheduler) with a manual clock, so the test says "60 s later"
without sleeping; everything else is the real code path: boto3 over HTTP, LookupEvents,
SQLite state, the snapshot, and the Prometheus exposition.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from structlog.testing import capture_logs

from exporter.config import load_settings
from exporter.daemon.assemble import Assembly, build_daemon
from exporter.daemon.explainer import explain
from exporter.daemon.service import gap_facts
from exporter.metrics import build_registry
from tests.awsworld import CloudTrailRecorder, LookupSink, ManualClock, MotoServer, build_incident_world


def _daemon(moto: MotoServer, state: Path, clock: ManualClock) -> Assembly:
    settings = load_settings(
        None,
        environ={},
        overrides={
            "cluster_name": "demo",
            "targets": [{"region": "us-east-1"}],
            "state": {"path": str(state)},
            "kubernetes": {"enabled": "false"},
            "cloudtrail": {"settle_seconds": 120, "overlap_seconds": 600},
        },
    )
    return build_daemon(settings, endpoint_url=moto.url, clock=clock.now)


def _metrics(assembly: Assembly) -> str:
    return generate_latest(build_registry(assembly.daemon.snapshot)).decode()


def _sample(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if not line.startswith(name + "{") and line.split(" ")[0] != name:
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_incident_open_gap_then_explained_then_closed_survives_restart(
    clean_moto: MotoServer, tmp_path: Path
) -> None:
    ec2, elbv2 = clean_moto.client("ec2"), clean_moto.client("elbv2")
    clock = ManualClock()
    world = build_incident_world(ec2, elbv2, cluster="demo")
    recorder = CloudTrailRecorder(LookupSink(clean_moto), clock)
    recorder.attach(ec2, elbv2)
    state = tmp_path / "state.sqlite3"

    first = _daemon(clean_moto, state, clock)
    first.daemon.run_all_once()
    snap = first.daemon.snapshot()
    assert snap.ready
    assert [(tg.name, tg.mode, tg.namespace, tg.service) for tg in snap.target_groups] == [
        (snap.target_groups[0].name, "legacy", "shop", "web")
    ]
    assert snap.open_gaps == ()
    text = _metrics(first)
    assert _sample(text, "sgchurn_target_group_reachability_ratio", flow="traffic") == 1.0
    # The Kubernetes source is off: its job exports nothing (SGChurnJobNeverSucceeded stays quiet).
    assert {j.job for j in snap.jobs} == {"inventory", "rules", "cloudtrail", "evaluate"}
    assert _sample(text, "sgchurn_job_duration_seconds_count", task="inventory") == 1.0
    assert 'task="kubernetes"' not in text and 'job="' not in text

    # An operator (a role assumed by a named session) sets preserve_client_ip (the trigger), then
    # the controller revokes 0.0.0.0/0 (break-before-make). The poll sees it before CloudTrail does.
    clock.advance(8)
    flipped_at = clock.now()
    with recorder.acting_as():
        elbv2.modify_target_group_attributes(
            TargetGroupArn=world.tg_arn, Attributes=[{"Key": "preserve_client_ip.enabled", "Value": "true"}]
        )
    clock.advance(2)
    revoked_at = clock.now()
    perm = [{"IpProtocol": "tcp", "FromPort": 31080, "ToPort": 31080, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
    ec2.revoke_security_group_ingress(GroupId=world.node_sg_id, IpPermissions=perm)
    clock.advance(2)
    first.daemon.run_job("inventory")  # the poll's change is evaluated at once, no evaluate job needed
    snap = first.daemon.snapshot()
    text = _metrics(first)
    # One poll is not yet a confirmed gap (it could be a describe that missed a rule) ...
    assert _sample(text, "sgchurn_target_group_reachability_ratio", flow="traffic") == 0.0
    assert snap.open_gaps == ()
    # ... the targeted rules poll a few seconds later confirms it: the gap is open (and pages).
    clock.advance(3)
    first.daemon.run_job("rules")
    snap = first.daemon.snapshot()
    assert {(g.flow, g.cause, g.explained, g.start) for g in snap.open_gaps} == {
        ("traffic", "undetermined", False, revoked_at + timedelta(seconds=2)),
        ("health_check", "undetermined", False, revoked_at + timedelta(seconds=2)),
    }
    first.daemon.run_job("evaluate")
    snap = first.daemon.snapshot()
    assert {(g.flow, g.cause, g.explained) for g in snap.open_gaps} == {
        ("traffic", "undetermined", False),
        ("health_check", "undetermined", False),
    }
    text = _metrics(first)
    assert _sample(text, "sgchurn_rule_gap_open", flow="traffic", namespace="shop", service="web") == 1.0
    assert _sample(text, "sgchurn_target_group_reachability_ratio", flow="traffic") == 0.0

    # CloudTrail delivers: the same open gaps now have exact start, cause and actor. No restore
    # yet, but the controller may still authorize: pending_restore, not revoke_without_restore.
    first.daemon.run_job("cloudtrail")
    first.daemon.run_job("evaluate")
    snap = first.daemon.snapshot()
    assert {(g.flow, g.cause, g.start, g.actor) for g in snap.open_gaps} == {
        ("traffic", "pending_restore", revoked_at, "eks-demo-aws-load-balancer-controller"),
        ("health_check", "pending_restore", revoked_at, "eks-demo-aws-load-balancer-controller"),
    }

    explained = explain(snap, snap.open_gaps[0].target_group)  # from the published snapshot alone
    assert explained is not None and "0.0.0.0/0" in explained
    assert explain(snap, "no-such-target-group") is None

    # kill -9 stand-in: the process state is dropped without any shutdown; SQLite keeps what committed.
    del first
    second = _daemon(clean_moto, state, clock)
    second.daemon.run_all_once()
    assert {(g.flow, g.start) for g in second.daemon.snapshot().open_gaps} == {
        ("traffic", revoked_at),
        ("health_check", revoked_at),
    }

    # 60 s after the revoke the rule is authorized again: both gaps close, each counted once.
    clock.advance(55)
    ec2.authorize_security_group_ingress(GroupId=world.node_sg_id, IpPermissions=perm)
    clock.advance(5)
    with capture_logs() as logs:  # conftest gives each test structlog's configuration as it was
        for _ in range(2):
            second.daemon.run_all_once()
    snap = second.daemon.snapshot()
    assert snap.open_gaps == ()
    closed = {(g.flow, g.cause, g.duration_seconds, g.actor) for g in snap.recent_gaps}
    assert closed == {
        ("traffic", "revoke_before_authorize", 60.0, "eks-demo-aws-load-balancer-controller"),
        ("health_check", "revoke_before_authorize", 60.0, "eks-demo-aws-load-balancer-controller"),
    }
    # Each gap names its trigger: the flip 2 s before, by role/session, in the view, the
    # gap-closed log line and sgchurn_rule_gap_last_info{trigger_actor}.
    assert {(g.trigger_who, g.trigger_time, g.trigger_detail) for g in snap.recent_gaps} == {
        ("platform-admin/operator", flipped_at, "preserve_client_ip.enabled=true")
    }
    closed_lines = [e for e in logs if e["event"] == "rule gap closed"]
    assert [gap_facts(g) for g in sorted(snap.recent_gaps, key=lambda g: g.flow)] == [
        {k: v for k, v in e.items() if k not in ("event", "log_level")}
        for e in sorted(closed_lines, key=lambda e: str(e["flow"]))
    ]  # one line per closed gap, its fields those of the gap
    # Times in the project's one textual form (engine/timeutil.py), as the rest of the line's.
    assert all(e["start"].endswith("Z") and e["trigger_time"].endswith("Z") for e in closed_lines)
    assert {(e["flow"], e["trigger_actor"], e["trigger"]) for e in closed_lines} == {
        ("traffic", "platform-admin/operator", "preserve_client_ip.enabled=true"),
        ("health_check", "platform-admin/operator", "preserve_client_ip.enabled=true"),
    }
    text = _metrics(second)
    assert _sample(
        text, "sgchurn_rule_gap_last_info", flow="traffic", trigger_actor="platform-admin/operator"
    )
    assert _sample(
        text,
        "sgchurn_target_group_attribute_last_change_info",
        attribute="preserve_client_ip.enabled",
        actor="platform-admin/operator",
        value="true",
    )
    for flow in ("traffic", "health_check"):
        assert _sample(text, "sgchurn_rule_gaps_total", flow=flow, cause="revoke_before_authorize") == 1.0
        assert _sample(text, "sgchurn_rule_gap_last_duration_seconds", flow=flow) == 60.0
    assert _sample(text, "sgchurn_rule_gap_open", flow="traffic") == 0.0
    assert _sample(text, "sgchurn_cloudtrail_events_total", event_name="RevokeSecurityGroupIngress") == 1.0

    # A third process on the same state: counters and history are intact, nothing is counted twice.
    third = _daemon(clean_moto, state, clock)
    third.daemon.run_all_once()
    text = _metrics(third)
    assert _sample(text, "sgchurn_rule_gaps_total", flow="traffic", cause="revoke_before_authorize") == 1.0
    assert _sample(text, "sgchurn_cloudtrail_events_total", event_name="AuthorizeSecurityGroupIngress") == 1.0


def test_unreachable_aws_keeps_serving_and_marks_the_source_down(tmp_path: Path) -> None:
    clock = ManualClock()
    settings = load_settings(
        None,
        environ={},
        overrides={"targets": [{"region": "us-east-1"}], "state": {"path": str(tmp_path / "s.db")}},
    )
    with pytest.MonkeyPatch.context() as patch:
        for key, value in {
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "x",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            patch.setenv(key, value)
        assembly = build_daemon(settings, endpoint_url="http://127.0.0.1:9", clock=clock.now)
        assembly.daemon.run_all_once()
    snap = assembly.daemon.snapshot()
    assert not snap.ready
    assert {s.source for s in snap.sources if not s.up} >= {"inventory"}
    assert all(s.last_error for s in snap.sources if not s.up)
    text = _metrics(assembly)
    assert _sample(text, "sgchurn_up", source="inventory") == 0.0


def test_corrupt_state_file_falls_back_to_memory_and_reset_moves_it_aside(tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite3"
    state.write_bytes(b"this is not a database" * 100)
    settings = load_settings(
        None, environ={}, overrides={"targets": [{"region": "us-east-1"}], "state": {"path": str(state)}}
    )
    degraded = build_daemon(settings, endpoint_url="http://127.0.0.1:9")
    assert (
        degraded.state_error and "corrupt" in degraded.state_error and "--reset-state" in degraded.state_error
    )
    assert degraded.store.path == ":memory:"
    fresh = build_daemon(settings, endpoint_url="http://127.0.0.1:9", reset_state=True)
    assert fresh.state_error is None and fresh.store.path == str(state)
    assert list(tmp_path.glob("state.sqlite3.corrupt-*"))


def test_a_state_file_locked_mid_run_is_reported_as_state_and_gaps_stay_visible(
    clean_moto: MotoServer, tmp_path: Path
) -> None:
    import sqlite3

    ec2, elbv2 = clean_moto.client("ec2"), clean_moto.client("elbv2")
    clock = ManualClock()
    world = build_incident_world(ec2, elbv2, cluster="demo")
    state = tmp_path / "state.sqlite3"
    assembly = _daemon(clean_moto, state, clock)
    assembly.daemon.run_all_once()
    perm = [{"IpProtocol": "tcp", "FromPort": 31080, "ToPort": 31080, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
    ec2.revoke_security_group_ingress(GroupId=world.node_sg_id, IpPermissions=perm)

    other = sqlite3.connect(state, timeout=0.1, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        clock.advance(5)
        assembly.daemon.run_job("inventory")
        assembly.daemon.run_job("rules")  # the second sighting confirms the gap
        assembly.daemon.run_job("evaluate")
        snap = assembly.daemon.snapshot()
        health = {s.source: s for s in snap.sources}
        assert health["inventory"].up and not health["state"].up
        assert "locked" in (health["state"].last_error or "")
        assert {g.flow for g in snap.open_gaps} == {"traffic", "health_check"}
        assert snap.ready  # a broken store is reported, it does not hide the exporter from scrapes
    finally:
        other.execute("ROLLBACK")
        other.close()
    clock.advance(5)
    assembly.daemon.run_all_once()
    snap = assembly.daemon.snapshot()
    assert {s.source: s.up for s in snap.sources}["state"]
    assert {g.flow for g in snap.open_gaps} == {"traffic", "health_check"}


def test_stored_records_are_pruned_after_their_ttl_but_not_inside_retention(
    clean_moto: MotoServer, tmp_path: Path
) -> None:
    ec2, elbv2 = clean_moto.client("ec2"), clean_moto.client("elbv2")
    clock = ManualClock()
    world = build_incident_world(ec2, elbv2, cluster="demo")
    CloudTrailRecorder(LookupSink(clean_moto), clock).attach(ec2, elbv2)
    assembly = _daemon(clean_moto, tmp_path / "state.sqlite3", clock)
    perm = [{"IpProtocol": "tcp", "FromPort": 31080, "ToPort": 31080, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
    ec2.revoke_security_group_ingress(GroupId=world.node_sg_id, IpPermissions=perm)
    clock.advance(5)
    assembly.daemon.run_all_once()
    key = assembly.daemon.monitors[0].key
    assert len(assembly.store.records(key, 0)) == 1
    ttl = assembly.daemon.record_ttl
    assert ttl is not None and ttl.total_seconds() >= 86400  # never shorter than the retention window

    clock.advance(ttl.total_seconds() - 60)
    assembly.daemon.run_job("evaluate")
    assert len(assembly.store.records(key, 0)) == 1  # still inside its TTL
    clock.advance(3600 + 120)
    assembly.daemon.run_job("evaluate")
    assert assembly.store.records(key, 0) == []
