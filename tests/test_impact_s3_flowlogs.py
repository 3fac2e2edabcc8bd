"""VPC Flow Logs read from S3 (moto over HTTP): the daemon confirms the incident's gap from the
flow-log files of the gap's window only, each file's header giving its format; hostile lines and
objects are counted by reason; bad S3 settings exit 2 naming the field."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from exporter.cli import main
from exporter.config import ConfigError, load_settings
from exporter.engine.flowlogs import S3Location, S3UriError
from exporter.sources.s3flowlogs import file_time, header_format
from tests import cloudtrail_samples as ct
from tests.awsworld import NODE_PORT, IncidentWorld, MotoServer
from tests.engine_world import T0, incident_inventory
from tests.test_daemon_impact import impact_calls, make_gap, seed_metrics, setup
from tests.test_replay_cli import _incident_records
from tests.test_replay_impact import flow_line, replay
from tests.test_replay_impact import seed_metrics as replay_metrics

BUCKET = "flow-log-bucket"
ACCOUNT = "123456789012"  # moto's account
DEFAULT_HEADER = (
    "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action "
    "log-status"
)


def key(written: datetime) -> str:
    folder = f"vpc/AWSLogs/{ACCOUNT}/vpcflowlogs/us-east-1/{written:%Y/%m/%d}"
    return f"{folder}/{ACCOUNT}_vpcflowlogs_us-east-1_fl-0abc123_{written:%Y%m%dT%H%MZ}_0f1e2d3c.log.gz"


def target(moto: MotoServer, world: IncidentWorld) -> tuple[str, str]:
    """The first node's address and primary ENI."""
    found = moto.client("ec2").describe_instances(InstanceIds=world.instance_ids[:1])
    return found["Reservations"][0]["Instances"][0]["PrivateIpAddress"], world.instance_enis[
        world.instance_ids[0]
    ]


def seed_files(moto: MotoServer, world: IncidentWorld, gap_start: datetime, rejects: int) -> None:
    """Files written 5 and 10 minutes after the gap's minute (inside its window): `rejects` REJECTs
    to the node in the default format, one more in a custom format (fields in another order), an
    ACCEPT, REJECTs to another port and address and a hostile line; an object that is not gzip;
    and files written 10 minutes before and 40 after the gap, full of REJECTs, which are never read."""
    address, eni = target(moto, world)
    at = int((gap_start + timedelta(seconds=20)).timestamp())
    minute = gap_start.replace(second=0)

    def line(action: str, dst: str = address, port: int = NODE_PORT) -> str:
        return f"2 {ACCOUNT} {eni} 203.0.113.9 {dst} 51234 {port} 6 3 180 {at} {at + 30} {action} OK"

    default = [DEFAULT_HEADER, *[line("REJECT")] * rejects, line("ACCEPT"), line("REJECT", port=22)]
    default += [line("REJECT", dst="10.0.9.9"), "REJECT \x1b]0;owned\x07 not a record"]
    custom = [
        "action dstport dstaddr interface-id start end srcaddr",
        f"REJECT {NODE_PORT} {address} {eni} {at} {at + 30} 198.51.100.7",
        f"ACCEPT {NODE_PORT} {address} {eni} {at} {at + 30} 198.51.100.7",
    ]
    s3 = moto.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    files = {
        minute + timedelta(minutes=5): gzip.compress("\n".join(default).encode()),
        minute + timedelta(minutes=10): gzip.compress("\n".join(custom).encode()),
        minute + timedelta(minutes=6): b"PAR1 a parquet file is not read",
        minute - timedelta(minutes=10): gzip.compress("\n".join(default).encode()),
        minute + timedelta(minutes=40): gzip.compress("\n".join(default).encode()),
    }
    for written, body in files.items():
        s3.put_object(Bucket=BUCKET, Key=key(written), Body=body)


def s3_calls(moto: MotoServer) -> dict[str, int]:
    counts: dict[str, int] = {}
    for request in moto.requests():
        if request["service"] == "s3" and request["operation"] in ("ListObjectsV2", "GetObject"):
            counts[request["operation"]] = counts.get(request["operation"], 0) + 1
    return counts


def test_s3_flow_logs_confirm_the_gap_from_its_window_only(clean_moto: MotoServer, tmp_path: Path) -> None:
    clock, world, assembly, ec2 = setup(
        clean_moto, tmp_path, enabled=True, flow_logs={"s3_uri": f"s3://{BUCKET}/vpc/"}
    )
    gap_start = clock.now() + timedelta(seconds=10)
    make_gap(ec2, clock, world, assembly)
    seed_metrics(clean_moto, world, gap_start.replace(second=0), unhealthy=0)  # the metrics saw nothing
    seed_files(clean_moto, world, gap_start, rejects=3)
    before = s3_calls(clean_moto)
    clock.advance(25 * 60)
    with capture_logs() as logs:
        assembly.daemon.run_job("impact")
    snap = assembly.daemon.snapshot()
    results = [g.impact for g in snap.recent_gaps]
    assert [(r.impact, r.reasons, r.rejected_flows, r.missing) for r in results if r] == [
        ("confirmed", ("flows_rejected",), 4, ())
    ] * 2
    details = [e["detail"] for e in logs if e["event"] == "impact evidence"]
    assert any("field_count=1" in d and "object_not_gzip=1" in d for d in details), details
    # Per gap: one listing of the day folder, the three files written in the window (two flows).
    after = s3_calls(clean_moto)
    assert {op: after[op] - before.get(op, 0) for op in after} == {"ListObjectsV2": 2, "GetObject": 6}
    assert impact_calls(assembly) == {("cloudwatch", "GetMetricData"): 1}
    assert snap.api_requests[("s3", "GetObject")] == 6


def test_no_rejects_in_the_files_is_none_seen(clean_moto: MotoServer, tmp_path: Path) -> None:
    clock, world, assembly, ec2 = setup(
        clean_moto, tmp_path, enabled=True, flow_logs={"s3_uri": f"s3://{BUCKET}/vpc"}
    )
    gap_start = clock.now() + timedelta(seconds=10)
    make_gap(ec2, clock, world, assembly)
    seed_metrics(clean_moto, world, gap_start.replace(second=0), unhealthy=0)
    clean_moto.client("s3").create_bucket(Bucket=BUCKET)
    address, eni = target(clean_moto, world)
    at = int((gap_start + timedelta(seconds=20)).timestamp())
    accept = f"2 {ACCOUNT} {eni} 203.0.113.9 {address} 51234 {NODE_PORT} 6 3 180 {at} {at + 30} ACCEPT OK"
    body = gzip.compress(f"{DEFAULT_HEADER}\n{accept}\n".encode())
    clean_moto.client("s3").put_object(
        Bucket=BUCKET, Key=key(gap_start.replace(second=0) + timedelta(minutes=5)), Body=body
    )
    clock.advance(25 * 60)
    assembly.daemon.run_job("impact")
    results = [g.impact for g in assembly.daemon.snapshot().recent_gaps]
    assert [(r.impact, r.rejected_flows) for r in results if r] == [("none_seen", 0)] * 2


def test_file_names_headers_and_locations() -> None:
    assert file_time(key(datetime(2026, 11, 25, 12, 5, tzinfo=UTC))) == datetime(
        2026, 11, 25, 12, 5, tzinfo=UTC
    )
    assert file_time("AWSLogs/1/vpcflowlogs/r/2026/11/25/not-a-flow-log.txt") is None
    assert header_format(DEFAULT_HEADER) is not None
    assert header_format(f"2 {ACCOUNT} eni-1 10.0.0.1 10.0.0.2 1 2 6 1 1 1 2 REJECT OK") is None
    assert S3Location.parse("s3://flow-log-bucket") == S3Location("flow-log-bucket", "")
    assert S3Location.parse("s3://flow-log-bucket/a/b/") == S3Location("flow-log-bucket", "a/b/")
    for bad in ("flow-log-bucket/a", "s3://Bad_Bucket/a", "s3://b/x\x1b[2J"):
        with pytest.raises(S3UriError):
            S3Location.parse(bad)


@pytest.mark.parametrize(
    ("flow_logs", "field"),
    [
        ({"s3_uri": "https://flow-log-bucket/vpc"}, "impact.flow_logs.s3_uri"),
        ({"s3_uri": "s3://flow-log-bucket/vpc", "log_group": "vpc-flow-logs"}, "impact.flow_logs.s3_uri"),
    ],
)
def test_bad_s3_settings_name_the_field(flow_logs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(
            None,
            environ={"AWS_REGION": "us-east-1"},
            overrides={"impact": {"enabled": True, "flow_logs": flow_logs}},
        )
    assert caught.value.field == field
    with pytest.raises(ConfigError) as off:
        load_settings(
            None,
            environ={"AWS_REGION": "us-east-1"},
            overrides={"impact": {"flow_logs": {"s3_uri": "s3://flow-log-bucket/vpc"}}},
        )
    assert off.value.field == "impact.enabled"


def test_replay_reads_the_flow_logs_from_s3(
    clean_moto: MotoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = incident_inventory()
    files = (tmp_path / "inventory.json", tmp_path / "trail.json")
    files_ready(files, inventory)
    replay_metrics(clean_moto, unhealthy_at_1201=0)
    lines = [DEFAULT_HEADER, *[flow_line(T0 + timedelta(seconds=30), "REJECT")] * 2]
    folder = f"AWSLogs/{inventory.account_id}/vpcflowlogs/{inventory.region}/{T0:%Y/%m/%d}"
    name = f"{inventory.account_id}_vpcflowlogs_{inventory.region}_fl-1_{T0 + timedelta(minutes=5):%Y%m%dT%H%MZ}_ab.log.gz"
    clean_moto.client("s3").create_bucket(Bucket=BUCKET)
    clean_moto.client("s3").put_object(
        Bucket=BUCKET, Key=f"{folder}/{name}", Body=gzip.compress("\n".join(lines).encode())
    )
    gaps, _ = replay(capsys, files, "--flow-log-s3-uri", f"s3://{BUCKET}")
    assert [(g["impact"], g["impact_reasons"], g["rejected_flows"]) for g in gaps] == [
        ("confirmed", ["flows_rejected"], 2)
    ] * 2
    inventory_file, trail = files
    code = main(
        [
            "replay",
            "--inventory",
            str(inventory_file),
            "--impact",
            "--flow-log-s3-uri",
            "s3://Bad_Bucket",
            str(trail),
        ]
    )
    assert code == 2 and "--flow-log-s3-uri: not an S3 bucket name" in capsys.readouterr().err


def files_ready(files: tuple[Path, Path], inventory: Any) -> None:
    files[0].write_text(json.dumps(inventory.to_dict()))
    files[1].write_bytes(ct.json_lines(_incident_records()))
