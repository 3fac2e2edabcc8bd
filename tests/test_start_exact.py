"""A condition older than the records is not a gap that starts at the first record (issue 12, item 5)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from exporter.cli import main
from exporter.daemon.assemble import Assembly
from exporter.metrics import build_registry
from exporter.reports.gaps import gap_record
from tests import cloudtrail_samples as ct
from tests.awsworld import (
    CloudTrailRecorder,
    LookupSink,
    ManualClock,
    MotoServer,
    build_incident_world,
    moto_daemon,
)
from tests.engine_world import NODE_PORT, SUBNETS, T0, incident_inventory, seconds, tcp


def _replay(tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    inventory = tmp_path / "inventory.json"
    # Broken before the records: nothing admits the NodePort, and no record says why.
    inventory.write_text(json.dumps(incident_inventory(node_rules=(tcp(22, "10.0.0.0/8"),)).to_dict()))
    events = tmp_path / "events.jsonl"
    subnets = ct.permission(NODE_PORT, cidrs=list(SUBNETS))
    records = [ct.authorize_record("e1", T0 + seconds(30), "sg-node", [subnets], rule_ids=["sgr-1", "sgr-2"])]
    events.write_bytes(ct.json_lines(records))
    assert main(["replay", "--inventory", str(inventory), *extra, str(events)]) == 0
    return capsys.readouterr().out


def test_replay_says_a_gap_older_than_the_records_has_no_known_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [json.loads(line) for line in _replay(tmp_path, capsys).splitlines()]
    by_flow = {line["flow"]: line for line in lines}
    # Health checks: admitted once the subnets are authorized at +30 s; the start is unknown.
    health = by_flow["health_check"]
    # The start is the first moment the records show, marked as not known to be the start.
    assert (health["start"], health["end"], health["start_exact"]) == (
        "2026-11-20T12:00:30Z",
        "2026-11-20T12:00:30Z",
        False,
    )
    assert "already not admitted at the first moment the records cover" in health["note"]
    traffic = by_flow["traffic"]  # 0.0.0.0/0 never comes: open, start unknown
    assert (traffic["end"], traffic["start_exact"]) == (None, False)
    assert traffic["start"] == "2026-11-20T12:00:30Z"  # the first moment the records show


def test_a_gap_with_a_known_start_says_so(tmp_path: Path) -> None:
    from exporter.engine.gaps import analyze
    from tests.engine_world import authorize, revoke

    world = tcp(NODE_PORT, "0.0.0.0/0")
    found = analyze(
        incident_inventory(), [revoke("e1", T0 + seconds(5), world), authorize("e2", T0 + seconds(25), world)]
    )
    assert [(g.flow, g.start_exact, g.note) for g in found.gaps] == [
        ("health_check", True, None),
        ("traffic", True, None),
    ]
    assert all(gap_record(g)["start_exact"] is True for g in found.gaps)


def test_the_table_marks_an_unknown_start(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = _replay(tmp_path, capsys, "--format", "table")
    rows = [line for line in out.splitlines() if "k8s-shop-web-abc" in line]
    assert rows and all(row.startswith("<=2026-11-20T12:00:30Z") for row in rows)
    assert "start_exact false" in out


def test_replay_help_documents_start_exact(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["replay", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert '"start_exact": false when the real start is unknown' in text and "'<='" in text


def _daemon(moto: MotoServer, state: Path, clock: ManualClock) -> Assembly:
    return moto_daemon(moto, state, clock)  # type: ignore[no-any-return]


def _series(assembly: Assembly, name: str) -> list[str]:
    text = generate_latest(build_registry(assembly.daemon.snapshot)).decode()
    return [line for line in text.splitlines() if line.startswith(name + "{")]


def test_the_daemon_does_not_export_the_first_look_as_the_start(
    clean_moto: MotoServer, tmp_path: Path
) -> None:
    ec2, elbv2 = clean_moto.client("ec2"), clean_moto.client("elbv2")
    world = build_incident_world(ec2, elbv2, with_ip_targets=True)
    # The instance target group is broken before the exporter starts: no rule on the NodePort.
    perm = [
        {
            "IpProtocol": "tcp",
            "FromPort": NODE_PORT,
            "ToPort": NODE_PORT,
            "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
        }
    ]
    ec2.revoke_security_group_ingress(GroupId=world.node_sg_id, IpPermissions=perm)
    clock = ManualClock()
    state = tmp_path / "state.sqlite3"
    assembly = _daemon(clean_moto, state, clock)
    for _ in range(2):
        assembly.daemon.run_all_once()
        clock.advance(5)
    snap = assembly.daemon.snapshot()
    # Both target groups are broken at start-up (the ip one has no rule on its pod port either).
    assert {(g.target_group_arn, g.flow) for g in snap.open_gaps} == {
        (arn, flow) for arn in (world.tg_arn, world.ip_tg_arn) for flow in ("traffic", "health_check")
    }
    assert all(not g.start_exact and "first looked" in g.note for g in snap.open_gaps)
    assert len([s for s in _series(assembly, "sgchurn_rule_gap_open") if s.endswith(" 1.0")]) == 4
    assert _series(assembly, "sgchurn_rule_gap_open_since_timestamp_seconds") == []

    # A restart keeps the unknown start unknown.
    again = _daemon(clean_moto, state, clock)
    again.daemon.run_all_once()
    assert all(not g.start_exact and g.note for g in again.daemon.snapshot().open_gaps)

    # A gap that opens while the exporter watches has a known start: exported.
    recorder = CloudTrailRecorder(LookupSink(clean_moto), clock)
    recorder.attach(ec2, elbv2)
    pod = [{"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
    ec2.authorize_security_group_ingress(GroupId=world.node_sg_id, IpPermissions=pod)
    clock.advance(5)
    again.daemon.run_all_once()
    ec2.revoke_security_group_ingress(GroupId=world.node_sg_id, IpPermissions=pod)
    for _ in range(2):
        clock.advance(5)
        again.daemon.run_all_once()
    known = [g for g in again.daemon.snapshot().open_gaps if g.target_group_arn == world.ip_tg_arn]
    assert known and all(g.start_exact and not g.note for g in known)
    since = _series(again, "sgchurn_rule_gap_open_since_timestamp_seconds")
    assert since and all("k8s-shop-web-ip" in line for line in since)
