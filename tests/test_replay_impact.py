"""`replay --impact` against a moto server over HTTP: the seed incident's gap, hurt or not."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from exporter.cli import main
from exporter.sources.impact import dimension_value
from tests import cloudtrail_samples as ct
from tests.awsworld import MotoServer
from tests.engine_world import LB_ARN, NODE_PORT, T0, incident_inventory
from tests.test_replay_cli import _incident_records

MINUTE = timedelta(minutes=1)
GROUP = "vpc-flow-logs"


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps(incident_inventory().to_dict()))
    trail = tmp_path / "trail.json"
    trail.write_bytes(ct.json_lines(_incident_records()))
    return inventory, trail


def seed_metrics(server: MotoServer, unhealthy_at_1201: float) -> None:
    """UnHealthyHostCount per minute from 11:56 to 12:02, `unhealthy_at_1201` at 12:01."""
    dims = [
        {"Name": "TargetGroup", "Value": dimension_value(ct.TG_ARN, "targetgroup")},
        {"Name": "LoadBalancer", "Value": dimension_value(LB_ARN, "loadbalancer")},
    ]
    start = T0.replace(second=0) - 4 * MINUTE
    data = []
    for minute in range(7):
        moment = start + minute * MINUTE
        value = unhealthy_at_1201 if moment == T0.replace(second=0) + MINUTE else 0.0
        data.append(
            {"MetricName": "UnHealthyHostCount", "Dimensions": dims, "Timestamp": moment, "Value": value}
        )
        data.append({"MetricName": "NewFlowCount", "Dimensions": dims, "Timestamp": moment, "Value": 25.0})
    server.client("cloudwatch").put_metric_data(Namespace="AWS/NetworkELB", MetricData=data)


def flow_line(at: datetime, action: str, dst: str = "10.0.1.10", port: int = NODE_PORT) -> str:
    epoch = int(at.timestamp())
    return f"2 111122223333 eni-1 203.0.113.9 {dst} 51234 {port} 6 3 180 {epoch} {epoch + 40} {action} OK"


def seed_flow_logs(server: MotoServer, rejects: int) -> None:
    at = T0 + timedelta(seconds=30)  # inside the gap (12:00:20 - 12:01:20)
    lines = [flow_line(at, "REJECT")] * rejects + [
        flow_line(at, "ACCEPT"),
        flow_line(at, "REJECT", port=22),  # another port: not the target's
        flow_line(at, "REJECT", dst="10.0.9.9"),  # not a target
        "REJECT \x1b]0;owned\x07 not a record",  # hostile: rejected with a counted reason
    ]
    logs = server.client("logs")
    logs.create_log_group(logGroupName=GROUP)
    logs.create_log_stream(logGroupName=GROUP, logStreamName="eni-1-all")
    events = [{"timestamp": int(at.timestamp() * 1000), "message": text} for text in lines]
    logs.put_log_events(logGroupName=GROUP, logStreamName="eni-1-all", logEvents=events)


def replay(
    capsys: pytest.CaptureFixture[str], files: tuple[Path, Path], *extra: str
) -> tuple[list[dict], str]:  # type: ignore[type-arg]
    inventory, trail = files
    assert main(["replay", "--inventory", str(inventory), "--impact", *extra, str(trail)]) == 0
    out, err = capsys.readouterr()
    return [json.loads(line) for line in out.splitlines()], err


def test_unhealthy_hosts_and_rejects_confirm_the_seed_incident(
    clean_moto: MotoServer, files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    seed_metrics(clean_moto, unhealthy_at_1201=2)
    seed_flow_logs(clean_moto, rejects=3)
    gaps, err = replay(capsys, files, "--flow-log-group", GROUP)
    assert [g["flow"] for g in gaps] == ["health_check", "traffic"]
    for gap in gaps:
        assert gap["impact"] == "confirmed", gap
        assert gap["impact_reasons"] == ["unhealthy_hosts_rose", "flows_rejected"]
        assert (gap["peak_unhealthy_hosts"], gap["baseline_unhealthy_hosts"], gap["rejected_flows"]) == (
            2,
            0,
            3,
        )
        assert gap["new_flows_during"] == gap["new_flows_before"] == 50  # 12:00 and 12:01; 11:58 and 11:59
        assert (gap["impact_window_start"], gap["impact_window_end"]) == (
            "2026-11-20T12:00:00Z",
            "2026-11-20T12:02:00Z",
        )
    assert "impact of 2 closed gaps read in 3 AWS calls" in err  # one GetMetricData, one read per gap
    assert "flow-log lines rejected for k8s-shop-web-abc: field_count=1" in err


def test_quiet_metrics_and_no_rejects_are_none_seen(
    clean_moto: MotoServer, files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    seed_metrics(clean_moto, unhealthy_at_1201=0)
    seed_flow_logs(clean_moto, rejects=0)
    gaps, _ = replay(capsys, files, "--flow-log-group", GROUP)
    assert [(g["impact"], g["peak_unhealthy_hosts"], g["rejected_flows"]) for g in gaps] == [
        ("none_seen", 0, 0)
    ] * 2


def test_without_flow_logs_or_metrics_the_impact_is_unknown(
    clean_moto: MotoServer, files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    seed_metrics(clean_moto, unhealthy_at_1201=0)
    gaps, _ = replay(capsys, files)
    assert {(g["impact"], tuple(g["impact_missing"])) for g in gaps} == {
        ("unknown", ("flow_logs_not_configured",))
    }
    clean_moto.reset()
    gaps, err = replay(capsys, files, "--flow-log-group", GROUP)  # no metrics, no log group: no data
    assert "flow logs of k8s-shop-web-abc not read: ResourceNotFoundException" in err
    assert "flow_logs_not_read" in gaps[0]["impact_missing"]
    assert [g["impact"] for g in gaps] == ["unknown"] * 2 and gaps[0]["peak_unhealthy_hosts"] is None
    assert "metrics_no_data_yet" in gaps[0]["impact_missing"]
    inventory, trail = files
    assert main(["replay", "--inventory", str(inventory), "--impact", "--format", "table", str(trail)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[-5:] == ["impact", "peak", "unhealthy", "rejected", "flows"]
    assert all(line.split()[-3:] == ["unknown", "-", "-"] for line in table[1:3])


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--impact", "--flow-log-format", "${srcaddr}"], "--flow-log-format: the log format lacks"),
        (
            ["--impact", "--flow-log-group", "flow logs;rm"],
            "--flow-log-group: not a CloudWatch Logs group name",
        ),
        (["--flow-log-group", GROUP], "only with --impact"),
    ],
)
def test_bad_impact_options_exit_2_naming_the_option(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str], options: list[str], named: str
) -> None:
    inventory, trail = files
    assert main(["replay", "--inventory", str(inventory), *options, str(trail)]) == 2
    out, err = capsys.readouterr()
    assert named in err and len(err.splitlines()) == 1 and out == ""


def test_replay_without_impact_makes_no_aws_call(
    clean_moto: MotoServer, files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    inventory, trail = files
    assert main(["replay", "--inventory", str(inventory), str(trail)]) == 0
    assert "impact" not in capsys.readouterr().out
    assert clean_moto.requests() == []


def test_a_gap_without_a_load_balancer_is_unknown_and_costs_no_call(clean_moto: MotoServer) -> None:
    from dataclasses import replace

    from exporter.commands.impact_check import check
    from exporter.engine.flowlogs import DEFAULT_FORMAT, FlowLogFormat
    from exporter.engine.gaps import Gap
    from exporter.sources.aws import AwsClients, AwsTarget

    world = incident_inventory()
    detached = replace(
        world, target_groups={ct.TG_ARN: replace(world.target_groups[ct.TG_ARN], load_balancer_arns=())}
    )
    end = T0 + timedelta(seconds=60)
    gaps = [
        Gap(ct.TG_ARN, "k8s-shop-web-abc", "traffic", T0, end, "revoke_before_authorize"),
        Gap(
            "arn:aws:elasticloadbalancing:us-east-1:111122223333:targetgroup/gone/1",
            "gone",
            "traffic",
            T0,
            end,
            "undetermined",
        ),
        Gap(ct.TG_ARN, "k8s-shop-web-abc", "health_check", T0, None, "revoke_without_restore"),
    ]
    clients = AwsClients(AwsTarget("us-east-1"), endpoint_url=clean_moto.url)
    found = check(detached, gaps, clients, flow_log_group=GROUP, fmt=FlowLogFormat.parse(DEFAULT_FORMAT))
    assert [(found[g.key].impact, found[g.key].missing) for g in gaps[:2]] == [
        ("unknown", ("no_load_balancer",)),
        ("unknown", ("target_group_not_in_inventory",)),
    ]
    assert gaps[2].key not in found  # open: not known yet
    assert clean_moto.requests() == []
