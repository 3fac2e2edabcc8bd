"""The CLI's record shape (top-level ipProtocol/fromPort/toPort/cidrIp beside an empty
"ipPermissions": {}) through every wrapper, the engine, `replay`, `backfill --gaps` and the daemon.

`aws ec2 revoke-security-group-ingress --group-id G --protocol tcp --port N --cidr C` is logged in
this shape; before it was read, such a revoke became a change with no rule and the gap was lost.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from exporter.cli import main
from exporter.config import load_settings
from exporter.daemon.assemble import build_daemon
from exporter.engine.gaps import analyze
from exporter.sources.envelopes import parse_payload
from tests import cloudtrail_samples as ct
from tests.awsworld import (
    CloudTrailRecorder,
    EventBridgeSink,
    LookupSink,
    ManualClock,
    MotoServer,
    RecordSink,
    S3TrailSink,
    SqsSink,
    build_incident_world,
)
from tests.engine_world import NODE_PORT, T0, incident_inventory, seconds
from tests.test_cloudtrail_sources import event_queue

OPERATOR = ct.actor(
    role="platform-admin", session="alice", user_agent="aws-cli/2.15.0", source_ip="198.51.100.7"
)
WORLD_PERMISSION = ct.permission(NODE_PORT, cidrs=["0.0.0.0/0"], description=None)


def cli_revoke(event_id: str, at: datetime) -> dict[str, Any]:
    return ct.cli_shape(ct.revoke_record(event_id, at, "sg-node", [WORLD_PERMISSION], actor=OPERATOR))


def cli_authorize(event_id: str, at: datetime) -> dict[str, Any]:
    record = ct.authorize_record(
        event_id, at, "sg-node", [WORLD_PERMISSION], rule_ids=["sgr-0back"], actor=OPERATOR
    )
    return ct.cli_shape(record)


WRAPPERS: dict[str, Callable[[list[dict[str, Any]]], Any]] = {
    "s3-trail-file": ct.trail_file_bytes,
    "lookup-events": lambda rs: json.dumps(ct.lookup_result(rs)),
    "eventbridge": lambda rs: [ct.eventbridge_envelope(r) for r in rs],
    "sqs": lambda rs: {"Messages": [ct.sqs_message(r) for r in rs]},
}


@pytest.mark.parametrize("wrapper", WRAPPERS)
def test_cli_revoke_restored_30s_later_is_a_30s_gap_with_cause_and_actor(wrapper: str) -> None:
    records = [cli_revoke("e-rev", T0 + seconds(20)), cli_authorize("e-auth", T0 + seconds(50))]
    result = parse_payload(WRAPPERS[wrapper](records))
    assert result.rejections == [] and [len(c.rules) for c in result.changes] == [1, 1]  # type: ignore[union-attr]
    gaps = analyze(incident_inventory(), result.changes).gaps
    assert [(g.flow, g.duration_seconds, g.cause) for g in gaps] == [
        ("health_check", 30.0, "revoke_before_authorize"),
        ("traffic", 30.0, "revoke_before_authorize"),
    ]
    for gap in gaps:
        assert gap.start == T0 + seconds(20)
        assert gap.actor is not None and gap.actor.issuer == "platform-admin"
        assert gap.actor.user_agent == "aws-cli/2.15.0"
        assert (gap.opened_by and gap.opened_by.event_id, gap.closed_by and gap.closed_by.event_id) == (
            "e-rev",
            "e-auth",
        )


@pytest.mark.parametrize("wrapper", WRAPPERS)
def test_cli_authorize_closes_the_gap_a_revoke_opened(wrapper: str) -> None:
    revoke = ct.revoke_record("e-rev", T0 + seconds(20), "sg-node", [WORLD_PERMISSION])
    records = [revoke, cli_authorize("e-auth", T0 + seconds(45))]
    gaps = analyze(incident_inventory(), parse_payload(WRAPPERS[wrapper](records)).changes).gaps
    assert {(g.flow, g.duration_seconds, g.closed_by and g.closed_by.event_id) for g in gaps} == {
        ("health_check", 25.0, "e-auth"),
        ("traffic", 25.0, "e-auth"),
    }


def test_replay_reads_the_cli_shape_from_files_of_every_wrapper(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps(incident_inventory().to_dict()))
    records = [cli_revoke("e-rev", T0 + seconds(20)), cli_authorize("e-auth", T0 + seconds(50))]
    files = {
        "trail.json.gz": ct.trail_file_bytes(records),
        "lookup.json": json.dumps(ct.lookup_result(records)).encode(),
        "eventbridge.json": json.dumps([ct.eventbridge_envelope(r) for r in records]).encode(),
        "sqs.json": json.dumps({"Messages": [ct.sqs_message(r) for r in records]}).encode(),
    }
    for name, payload in files.items():
        path = tmp_path / name
        path.write_bytes(payload)
        assert main(["replay", "--inventory", str(inventory), str(path)]) == 0, name
        gaps = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [(g["flow"], g["duration_seconds"], g["cause"], g["actor"]) for g in gaps] == [
            ("health_check", 30.0, "revoke_before_authorize", "platform-admin"),
            ("traffic", 30.0, "revoke_before_authorize", "platform-admin"),
        ], name


# --- through the real API: the CLI-shaped calls made on moto, their records delivered ------------


def _cli_incident(ec2: Any, recorder: CloudTrailRecorder, clock: ManualClock, group_id: str) -> None:
    """An operator revokes tcp/31080 from 0.0.0.0/0 the CLI way and restores it 30 s later."""
    cli = {
        "GroupId": group_id,
        "IpProtocol": "tcp",
        "FromPort": 31080,
        "ToPort": 31080,
        "CidrIp": "0.0.0.0/0",
    }
    with recorder.acting_as():
        clock.advance(10)
        ec2.revoke_security_group_ingress(**cli)
        clock.advance(30)
        ec2.authorize_security_group_ingress(**cli)
        clock.advance(5)


def _sink(kind: str, moto: MotoServer) -> tuple[RecordSink, dict[str, Any]]:
    if kind == "lookup-events":
        return LookupSink(moto), {}
    if kind == "eventbridge":
        return EventBridgeSink(moto.client("events")), {
            "lookup_events": False,
            "sqs_queue_url": event_queue(moto),
        }
    sqs = moto.client("sqs")
    url = sqs.create_queue(QueueName="sgchurn-events")["QueueUrl"]
    return SqsSink(sqs, url), {"lookup_events": False, "sqs_queue_url": url}


@pytest.mark.parametrize("kind", ["lookup-events", "eventbridge", "sqs"])
def test_daemon_sees_the_cli_shaped_gap(kind: str, clean_moto: MotoServer, tmp_path: Path) -> None:
    ec2, elbv2 = clean_moto.client("ec2"), clean_moto.client("elbv2")
    clock = ManualClock()
    world = build_incident_world(ec2, elbv2, cluster="demo")
    sink, cloudtrail = _sink(kind, clean_moto)
    recorder = CloudTrailRecorder(sink, clock)
    recorder.attach(ec2, elbv2)
    settings = load_settings(
        None,
        environ={},
        overrides={
            "targets": [{"region": "us-east-1"}],
            "state": {"path": str(tmp_path / "state.db")},
            "kubernetes": {"enabled": "false"},
            "cloudtrail": cloudtrail,
        },
    )
    assembly = build_daemon(settings, endpoint_url=clean_moto.url, clock=clock.now)
    assembly.daemon.run_all_once()
    _cli_incident(ec2, recorder, clock, world.node_sg_id)
    assert [r["requestParameters"]["ipPermissions"] for r in recorder.records] == [{}, {}]
    assembly.daemon.run_all_once()
    snap = assembly.daemon.snapshot()
    assert {(g.flow, g.cause, g.duration_seconds, g.actor) for g in snap.recent_gaps} == {
        ("traffic", "revoke_before_authorize", 30.0, "platform-admin"),
        ("health_check", "revoke_before_authorize", 30.0, "platform-admin"),
    }


def test_backfill_of_an_s3_trail_sees_the_cli_shaped_gap(
    clean_moto: MotoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ec2, elbv2, s3 = clean_moto.client("ec2"), clean_moto.client("elbv2"), clean_moto.client("s3")
    world = build_incident_world(ec2, elbv2)
    s3.create_bucket(Bucket="trail")
    sink = S3TrailSink(s3, "trail")
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0) - seconds(3600))
    recorder = CloudTrailRecorder(sink, clock)
    recorder.attach(ec2, elbv2)
    _cli_incident(ec2, recorder, clock, world.node_sg_id)
    sink.flush()
    inventory = tmp_path / "inventory.json"
    assert main(["snapshot", "--output", str(inventory)]) == 0
    assert (
        main(["backfill", "--bucket", "trail", "--since", "1d", "--gaps", "--inventory", str(inventory)]) == 0
    )
    found = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    gaps = sorted(
        (g["flow"], g["cause"], g["duration_seconds"], g["actor"])
        for g in found
        if g["target_group_arn"] == world.tg_arn
    )
    assert gaps == [
        ("health_check", "revoke_before_authorize", 30.0, "platform-admin"),
        ("traffic", "revoke_before_authorize", 30.0, "platform-admin"),
    ]
