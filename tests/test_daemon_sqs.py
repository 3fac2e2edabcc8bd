"""The daemon fed by EventBridge -> SQS instead of LookupEvents: same incident, same gaps."""

from __future__ import annotations

from pathlib import Path

from exporter.config import load_settings
from exporter.daemon.assemble import build_daemon
from tests.awsworld import CloudTrailRecorder, ManualClock, MotoServer, SqsSink, build_incident_world


def test_incident_through_sqs(clean_moto: MotoServer, tmp_path: Path) -> None:
    ec2, elbv2, sqs = clean_moto.client("ec2"), clean_moto.client("elbv2"), clean_moto.client("sqs")
    queue_url = sqs.create_queue(QueueName="sgchurn-events")["QueueUrl"]
    clock = ManualClock()
    world = build_incident_world(ec2, elbv2, cluster="demo")
    CloudTrailRecorder(SqsSink(sqs, queue_url), clock).attach(ec2, elbv2)
    settings = load_settings(
        None,
        environ={},
        overrides={
            "targets": [{"region": "us-east-1"}],
            "state": {"path": str(tmp_path / "state.db")},
            "kubernetes": {"enabled": "false"},
            "cloudtrail": {"lookup_events": False, "sqs_queue_url": queue_url},
        },
    )
    assembly = build_daemon(settings, endpoint_url=clean_moto.url, clock=clock.now)
    assembly.daemon.run_all_once()
    assert {s.source for s in assembly.daemon.snapshot().sources} == {"inventory", "sqs", "state"}

    perm = [{"IpProtocol": "tcp", "FromPort": 31080, "ToPort": 31080, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
    clock.advance(10)
    ec2.revoke_security_group_ingress(GroupId=world.node_sg_id, IpPermissions=perm)
    clock.advance(60)
    ec2.authorize_security_group_ingress(GroupId=world.node_sg_id, IpPermissions=perm)
    clock.advance(5)
    assembly.daemon.run_all_once()

    snap = assembly.daemon.snapshot()
    assert {(g.flow, g.cause, g.duration_seconds) for g in snap.recent_gaps} == {
        ("traffic", "revoke_before_authorize", 60.0),
        ("health_check", "revoke_before_authorize", 60.0),
    }
    assert all(s.up for s in snap.sources)
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert attributes == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}
