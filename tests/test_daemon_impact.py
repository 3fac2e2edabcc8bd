"""The daemon's impact job against a moto server over HTTP: the incident's closed gaps, hurt or not.

The gap is made in moto's EC2 (revoke, then authorize 60 s later), CloudTrail delivers it through
LookupEvents, the daemon commits it; after the settle time the impact job reads NLB metrics
(seeded with PutMetricData) and VPC Flow Log REJECTs (seeded with PutLogEvents).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from exporter.config import load_settings
from exporter.daemon.assemble import Assembly, build_daemon
from exporter.daemon.impacts import GIVE_UP
from exporter.metrics import build_registry, render_exposition
from exporter.sources.impact import dimension_value
from tests.awsworld import (
    NODE_PORT,
    CloudTrailRecorder,
    IncidentWorld,
    LookupSink,
    ManualClock,
    MotoServer,
    build_incident_world,
)

GROUP = "vpc-flow-logs"
MINUTE = timedelta(minutes=1)
WORLD_PERMISSION = [
    {"IpProtocol": "tcp", "FromPort": NODE_PORT, "ToPort": NODE_PORT, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
]


def daemon(moto: MotoServer, state: Path, clock: ManualClock, **impact: Any) -> Assembly:
    settings = load_settings(
        None,
        environ={},
        overrides={
            "targets": [{"region": "us-east-1"}],
            "state": {"path": str(state)},
            "kubernetes": {"enabled": "false"},
            "cloudtrail": {"settle_seconds": 120, "overlap_seconds": 600},
            "impact": impact,
        },
    )
    return build_daemon(settings, endpoint_url=moto.url, clock=clock.now)


def make_gap(ec2: Any, clock: ManualClock, world: IncidentWorld, assembly: Assembly) -> None:
    """Revoke the node rule, authorize it again 60 s later (through the recorded client); the
    daemon sees and commits the gap."""
    clock.advance(10)
    ec2.revoke_security_group_ingress(GroupId=world.node_sg_id, IpPermissions=WORLD_PERMISSION)
    for _ in range(2):  # two polls see it open
        clock.advance(5)
        assembly.daemon.run_job("inventory")
    clock.advance(50)
    ec2.authorize_security_group_ingress(GroupId=world.node_sg_id, IpPermissions=WORLD_PERMISSION)
    clock.advance(5)
    assembly.daemon.run_all_once()


def seed_metrics(moto: MotoServer, world: IncidentWorld, gap_minute: datetime, unhealthy: float) -> None:
    """One datapoint a minute from 20 minutes before the gap to 20 after: `unhealthy` in the minute
    after the gap's, 0 elsewhere; 25 new flows a minute."""
    dims = [
        {"Name": "TargetGroup", "Value": dimension_value(world.tg_arn, "targetgroup")},
        {"Name": "LoadBalancer", "Value": dimension_value(world.nlb_arn, "loadbalancer")},
    ]
    data = []
    for offset in range(-20, 21):
        moment = gap_minute + offset * MINUTE
        value = unhealthy if offset == 1 else 0.0
        data.append(
            {"MetricName": "UnHealthyHostCount", "Dimensions": dims, "Timestamp": moment, "Value": value}
        )
        data.append({"MetricName": "NewFlowCount", "Dimensions": dims, "Timestamp": moment, "Value": 25.0})
    cloudwatch = moto.client("cloudwatch")
    for first in range(0, len(data), 20):
        cloudwatch.put_metric_data(Namespace="AWS/NetworkELB", MetricData=data[first : first + 20])


def seed_flow_logs(moto: MotoServer, world: IncidentWorld, at: datetime, rejects: int) -> None:
    """`rejects` REJECTs to the first node (its primary ENI and address) on the node port at `at`,
    and lines that must not count: an ACCEPT, a REJECT to another port, one to another address,
    a hostile line."""
    instance = moto.client("ec2").describe_instances(InstanceIds=world.instance_ids[:1])
    address = instance["Reservations"][0]["Instances"][0]["PrivateIpAddress"]
    eni = world.instance_enis[world.instance_ids[0]]
    epoch = int(at.timestamp())

    def line(action: str, dst: str = address, port: int = NODE_PORT) -> str:
        return f"2 123456789012 {eni} 203.0.113.9 {dst} 51234 {port} 6 3 180 {epoch} {epoch + 30} {action} OK"

    lines = [line("REJECT")] * rejects + [
        line("ACCEPT"),
        line("REJECT", port=22),
        line("REJECT", dst="10.0.9.9"),
        "REJECT \x1b]0;owned\x07 not a record",
    ]
    logs = moto.client("logs")
    logs.create_log_group(logGroupName=GROUP)
    logs.create_log_stream(logGroupName=GROUP, logStreamName="eni-x-all")
    events = [{"timestamp": epoch * 1000, "message": text} for text in lines]
    logs.put_log_events(logGroupName=GROUP, logStreamName="eni-x-all", logEvents=events)


def impact_calls(assembly: Assembly) -> dict[tuple[str, str], int]:
    requests = assembly.daemon.snapshot().api_requests
    return {key: n for key, n in requests.items() if key[0] in ("cloudwatch", "logs")}


IMPACT_FAMILIES = (
    "sgchurn_rule_gap_impact_total",
    "sgchurn_rule_gap_last_rejected_flows",
    "sgchurn_rule_gap_last_impact_confirmed_timestamp_seconds",
)


def impact_series(assembly: Assembly) -> dict[tuple[str, str, str], float]:
    """The impact series of /metrics as (family, flow, impact) -> value; the same from the
    exposition writer and from the prometheus_client registry."""
    snapshot = assembly.daemon.snapshot()
    found = []
    for text in (
        render_exposition(snapshot).decode(),
        generate_latest(build_registry(lambda: snapshot)).decode(),
    ):
        series = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name in IMPACT_FAMILIES:
                    key = (sample.name, sample.labels["flow"], sample.labels.get("impact", ""))
                    series[key] = sample.value
        found.append(series)
    assert found[0] == found[1]
    return found[0]


def setup(
    moto: MotoServer, tmp_path: Path, start: datetime | None = None, **impact: Any
) -> tuple[ManualClock, IncidentWorld, Assembly, Any]:
    clock = ManualClock(start)
    ec2, elbv2 = moto.client("ec2"), moto.client("elbv2")
    world = build_incident_world(ec2, elbv2, cluster="demo")
    CloudTrailRecorder(LookupSink(moto), clock).attach(ec2, elbv2)
    assembly = daemon(moto, tmp_path / "state.db", clock, **impact)
    assembly.daemon.run_all_once()
    return clock, world, assembly, ec2


def test_unhealthy_hosts_and_rejects_confirm_the_gap_once(clean_moto: MotoServer, tmp_path: Path) -> None:
    clock, world, assembly, ec2 = setup(clean_moto, tmp_path, enabled=True, flow_logs={"log_group": GROUP})
    start = clock.now() + timedelta(seconds=10)
    with capture_logs() as logs:
        make_gap(ec2, clock, world, assembly)
    gaps = assembly.daemon.snapshot().recent_gaps
    assert sorted(g.flow for g in gaps) == ["health_check", "traffic"]
    assert all(g.impact is None for g in gaps)  # the settle time has not passed: not asked yet
    closed = [e for e in logs if e["event"] == "rule gap closed"]
    assert [e["impact"] for e in closed] == ["pending", "pending"]
    assert impact_calls(assembly) == {}

    seed_metrics(clean_moto, world, start.replace(second=0), unhealthy=2)
    seed_flow_logs(clean_moto, world, start + timedelta(seconds=20), rejects=3)
    clock.advance(25 * 60)  # past the settle time and the flow logs' delivery delay
    with capture_logs() as logs:
        assembly.daemon.run_job("impact")
    snap = assembly.daemon.snapshot()
    for gap in snap.recent_gaps:
        assert gap.impact is not None
        assert (gap.impact.impact, gap.impact.reasons) == (
            "confirmed",
            ("unhealthy_hosts_rose", "flows_rejected"),
        )
        assert (gap.impact.peak_unhealthy_hosts, gap.impact.rejected_flows) == (2, 3)
        assert gap.impact.missing == ()
    lines = [e for e in logs if e["event"] == "rule gap impact"]
    assert sorted(
        (e["flow"], e["impact"], e["rejected_flows"], e["peak_unhealthy_hosts"]) for e in lines
    ) == [
        ("health_check", "confirmed", 3, 2),
        ("traffic", "confirmed", 3, 2),
    ]
    assert any(
        "flow-log lines rejected" in e.get("detail", "") for e in logs if e["event"] == "impact evidence"
    )
    counted = snap.counters["rule_gap_impact"]
    assert sorted((dict(k)["flow"], dict(k)["impact"], v) for k, v in counted.items()) == [
        ("health_check", "confirmed", 1.0),
        ("traffic", "confirmed", 1.0),
    ]
    exposed = impact_series(assembly)
    assert exposed == {
        ("sgchurn_rule_gap_impact_total", "health_check", "confirmed"): 1.0,
        ("sgchurn_rule_gap_impact_total", "traffic", "confirmed"): 1.0,
        ("sgchurn_rule_gap_last_rejected_flows", "health_check", ""): 3.0,
        ("sgchurn_rule_gap_last_rejected_flows", "traffic", ""): 3.0,
        (
            "sgchurn_rule_gap_last_impact_confirmed_timestamp_seconds",
            "health_check",
            "",
        ): clock.now().timestamp(),
        ("sgchurn_rule_gap_last_impact_confirmed_timestamp_seconds", "traffic", ""): clock.now().timestamp(),
    }
    # One GetMetricData call for both gaps, one bounded FilterLogEvents read per gap.
    assert impact_calls(assembly) == {("cloudwatch", "GetMetricData"): 1, ("logs", "FilterLogEvents"): 2}

    clock.advance(3600)
    assembly.daemon.run_job("impact")  # final: never asked again, never counted twice
    assert impact_calls(assembly) == {("cloudwatch", "GetMetricData"): 1, ("logs", "FilterLogEvents"): 2}
    assert sum(assembly.daemon.snapshot().counters["rule_gap_impact"].values()) == 2


def test_quiet_metrics_and_no_rejects_are_none_seen(clean_moto: MotoServer, tmp_path: Path) -> None:
    clock, world, assembly, ec2 = setup(clean_moto, tmp_path, enabled=True, flow_logs={"log_group": GROUP})
    start = clock.now() + timedelta(seconds=10)
    make_gap(ec2, clock, world, assembly)
    seed_metrics(clean_moto, world, start.replace(second=0), unhealthy=0)
    seed_flow_logs(clean_moto, world, start + timedelta(seconds=20), rejects=0)
    clock.advance(25 * 60)
    assembly.daemon.run_job("impact")
    snap = assembly.daemon.snapshot()
    assert [
        (g.impact.impact, g.impact.peak_unhealthy_hosts, g.impact.rejected_flows)
        for g in snap.recent_gaps
        if g.impact
    ] == [("none_seen", 0, 0)] * 2
    assert {dict(k)["impact"] for k in snap.counters["rule_gap_impact"]} == {"none_seen"}
    assert impact_series(assembly) == {
        ("sgchurn_rule_gap_impact_total", "health_check", "none_seen"): 1.0,
        ("sgchurn_rule_gap_impact_total", "traffic", "none_seen"): 1.0,
        ("sgchurn_rule_gap_last_rejected_flows", "health_check", ""): 0.0,
        ("sgchurn_rule_gap_last_rejected_flows", "traffic", ""): 0.0,
    }


def test_evidence_not_yet_there_is_asked_again_then_unknown(clean_moto: MotoServer, tmp_path: Path) -> None:
    """No flow logs delivered and no metrics: unknown, not counted, asked again after recheck_seconds;
    counted as unknown once GIVE_UP has passed since the gap ended."""
    clock, world, assembly, ec2 = setup(
        clean_moto, tmp_path, enabled=True, recheck_seconds=600, flow_logs={"log_group": GROUP}
    )
    make_gap(ec2, clock, world, assembly)
    clean_moto.client("logs").create_log_group(logGroupName=GROUP)
    clock.advance(5 * 60)
    assembly.daemon.run_job("impact")
    snap = assembly.daemon.snapshot()
    assert {g.impact.impact for g in snap.recent_gaps if g.impact} == {"unknown"}
    missing = {m for g in snap.recent_gaps if g.impact for m in g.impact.missing}
    assert missing == {"metrics_no_data_yet", "flow_logs_no_data_yet"}
    assert "rule_gap_impact" not in snap.counters or not snap.counters["rule_gap_impact"]
    calls = impact_calls(assembly)
    clock.advance(60)
    assembly.daemon.run_job("impact")  # within recheck_seconds: no call
    assert impact_calls(assembly) == calls
    clock.advance(GIVE_UP.total_seconds())
    assembly.daemon.run_job("impact")
    assert impact_calls(assembly)[("cloudwatch", "GetMetricData")] == 2
    counted = assembly.daemon.snapshot().counters["rule_gap_impact"]
    assert sorted((dict(k)["impact"], v) for k, v in counted.items()) == [("unknown", 1.0)] * 2


def test_off_by_default_no_job_no_call_no_series(clean_moto: MotoServer, tmp_path: Path) -> None:
    clock, world, assembly, ec2 = setup(clean_moto, tmp_path)
    make_gap(ec2, clock, world, assembly)
    clock.advance(25 * 60)
    assembly.daemon.run_all_once()
    assert "impact" not in assembly.daemon.jobs
    assert impact_calls(assembly) == {}
    assert impact_series(assembly) == {}
    assert (
        "# TYPE sgchurn_rule_gap_impact_total counter"
        in render_exposition(assembly.daemon.snapshot()).decode()
    )


@pytest.mark.parametrize(
    ("impact", "field"),
    [
        ({"flow_logs": {"log_group": GROUP}}, "impact.enabled"),
        ({"enabled": True, "flow_logs": {"log_group": "flow logs;rm"}}, "impact.flow_logs.log_group"),
        ({"enabled": True, "flow_logs": {"format": "${srcaddr} ${dstaddr}"}}, "impact.flow_logs.format"),
        ({"enabled": True, "max_gaps_per_run": 0}, "impact.max_gaps_per_run"),
        ({"enabled": "sometimes"}, "impact.enabled"),
    ],
)
def test_bad_impact_settings_name_the_field(tmp_path: Path, impact: dict[str, Any], field: str) -> None:
    from exporter.config import ConfigError

    with pytest.raises(ConfigError) as caught:
        load_settings(None, environ={"AWS_REGION": "us-east-1"}, overrides={"impact": impact})
    assert caught.value.field == field
