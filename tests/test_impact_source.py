"""The impact evidence source (sources/impact.py) against a moto server over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from exporter.engine.flowlogs import DEFAULT_FORMAT, FlowLogFormat
from exporter.engine.impact import HealthCheck, window_for
from exporter.sources.aws import AwsClients, AwsTarget
from exporter.sources.impact import (
    MAX_QUERIES_PER_CALL,
    METRICS,
    FlowLogRequest,
    MetricRequest,
    dimension_value,
    read_flow_logs,
    read_metrics,
)
from tests.awsworld import REGION, MotoServer

NOW = datetime.now(UTC).replace(second=0, microsecond=0)
LB = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/net/k8s-web/50dc6c495c0c9188"


def tg_arn(number: int) -> str:
    return f"arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/k8s-tg{number}/{number:016x}"


def test_dimensions_are_the_arn_suffixes_cloudwatch_uses() -> None:
    assert dimension_value(LB, "loadbalancer") == "net/k8s-web/50dc6c495c0c9188"
    assert dimension_value(tg_arn(7), "targetgroup") == "targetgroup/k8s-tg7/0000000000000007"
    with pytest.raises(ValueError, match="not a targetgroup ARN"):
        dimension_value(LB, "targetgroup")


def test_one_call_batches_many_target_groups_within_the_query_limit(clean_moto: MotoServer) -> None:
    groups = 200  # 800 queries: two calls of at most 500
    window = window_for(NOW - timedelta(minutes=30), NOW - timedelta(minutes=29), HealthCheck())
    cloudwatch = clean_moto.client("cloudwatch")
    for number in (3, 150):
        dims = [
            {"Name": "TargetGroup", "Value": dimension_value(tg_arn(number), "targetgroup")},
            {"Name": "LoadBalancer", "Value": dimension_value(LB, "loadbalancer")},
        ]
        cloudwatch.put_metric_data(
            Namespace="AWS/NetworkELB",
            MetricData=[
                {
                    "MetricName": "UnHealthyHostCount",
                    "Dimensions": dims,
                    "Timestamp": window.start,
                    "Value": number,
                },
                {"MetricName": "NewFlowCount", "Dimensions": dims, "Timestamp": window.start, "Value": 10},
            ],
        )
    clients = AwsClients(AwsTarget(REGION), endpoint_url=clean_moto.url)
    requests = [MetricRequest(tg_arn(n), LB, window) for n in range(groups)]
    evidence = read_metrics(clients.client("cloudwatch"), requests)
    calls = clients.counter.snapshot().calls[("cloudwatch", "GetMetricData")]
    assert calls == -(-groups * len(METRICS) // MAX_QUERIES_PER_CALL) == 2
    assert [(n, e.unhealthy_hosts[0][1]) for n, e in enumerate(evidence) if e.unhealthy_hosts] == [
        (3, 3),
        (150, 150),
    ]
    assert evidence[150].new_flows[0][1] == 10 and evidence[150].unhealthy_hosts[0][0] == window.start
    assert evidence[4].unhealthy_hosts == ()


def seed_flow_logs(server: MotoServer, lines: list[str], moment: datetime) -> None:
    logs = server.client("logs")
    logs.create_log_group(logGroupName="vpc-flow-logs")
    logs.create_log_stream(logGroupName="vpc-flow-logs", logStreamName="eni-0a1b2c3d-all")
    events = [{"timestamp": int(moment.timestamp() * 1000), "message": text} for text in lines]
    logs.put_log_events(logGroupName="vpc-flow-logs", logStreamName="eni-0a1b2c3d-all", logEvents=events)


def flow_line(start: datetime, action: str = "REJECT", dst: str = "10.0.1.15") -> str:
    epoch = int(start.timestamp())
    return (
        f"2 123456789012 eni-0a1b2c3d 203.0.113.9 {dst} 51234 30080 6 3 180 {epoch} {epoch + 50} {action} OK"
    )


def test_flow_log_rejects_to_targets_are_counted_and_hostile_lines_named(clean_moto: MotoServer) -> None:
    start = NOW - timedelta(minutes=40)
    lines = [flow_line(start)] * 3 + [flow_line(start, "ACCEPT"), flow_line(start, dst="10.0.7.7")]
    seed_flow_logs(clean_moto, [*lines, "REJECT \x1b[2J not a record"], start)
    clients = AwsClients(AwsTarget(REGION), endpoint_url=clean_moto.url)
    request = FlowLogRequest(
        frozenset({"10.0.1.15"}),
        frozenset({"eni-0a1b2c3d"}),
        frozenset({30080}),
        start,
        start + timedelta(seconds=60),
    )
    evidence, parsed = read_flow_logs(
        clients.client("logs"), "vpc-flow-logs", FlowLogFormat.parse(DEFAULT_FORMAT), request, now=NOW
    )
    assert evidence is not None and evidence.rejected_flows == 3
    assert parsed.rejected == {"field_count": 1}
    assert clients.counter.snapshot().calls == {("logs", "FilterLogEvents"): 1}


def test_a_read_cut_short_without_a_reject_is_not_read(clean_moto: MotoServer) -> None:
    start = NOW - timedelta(minutes=40)
    seed_flow_logs(clean_moto, [flow_line(start, dst="10.0.7.7")] * 30, start)
    clients = AwsClients(AwsTarget(REGION), endpoint_url=clean_moto.url)
    logs = clients.client("logs")
    original = logs.filter_log_events

    def small_pages(**kwargs: object) -> dict[str, object]:
        return dict(original(limit=5, **kwargs))

    request = FlowLogRequest(frozenset({"10.0.1.15"}), frozenset(), frozenset({30080}), start, start)
    fmt = FlowLogFormat.parse(DEFAULT_FORMAT)

    class Pager:
        filter_log_events = staticmethod(small_pages)

    evidence, parsed = read_flow_logs(Pager(), "vpc-flow-logs", fmt, request, now=NOW, max_pages=2)
    assert evidence is None and len(parsed.records) == 10
    whole, _ = read_flow_logs(Pager(), "vpc-flow-logs", fmt, request, now=NOW, max_pages=10)
    assert whole is not None and whole.rejected_flows == 0 and whole.records_read == 30
