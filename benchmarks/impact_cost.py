"""Figure 9: AWS requests per closed gap checked for impact (`replay --impact`), at the moto server.

A fleet of target groups, one closed gap each at a different time, NLB metrics seeded with
PutMetricData and VPC Flow Log lines (REJECTs to the targets among others) in a CloudWatch Logs
group. `commands.impact_check.check` reads the evidence through the exporter's counted, read-only
clients; the requests the server logged are divided by the gaps checked. Baseline: the fewest
the APIs allow, ceil(4 x gaps / 500) GetMetricData calls (4 metric queries per gap, at most 500
per call) plus one FilterLogEvents page per gap (each gap has its own window, addresses and
ports). Target: ratio <= 1.2.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from benchmarks.common import Figure, loopback_aws, ratio

TARGET_RATIO = 1.2
GROUP = "vpc-flow-logs"
LB_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/net/k8s-fleet/0123456789abcdef"


def _fleet(count: int, now: datetime) -> tuple[Any, list[Any]]:
    from exporter.engine.gaps import Gap
    from exporter.engine.inventory import Inventory, LoadBalancer, NetworkInterface, Target, TargetGroup

    groups, enis, gaps = {}, {}, []
    for n in range(count):
        arn = f"arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/k8s-tg{n}/{n:016x}"
        eni = f"eni-{n:08x}"
        enis[eni] = NetworkInterface(eni, ("sg-node",), (f"10.{n // 250}.{n % 250}.10",), f"i-{n:08x}")
        groups[arn] = TargetGroup(
            arn,
            f"k8s-tg{n}",
            "TCP",
            30000 + n,
            "instance",
            "vpc-1",
            load_balancer_arns=(LB_ARN,),
            targets=(Target(f"i-{n:08x}", 30000 + n, eni, "healthy"),),
        )
        start = now - timedelta(hours=2) + timedelta(seconds=37 * n)
        gaps.append(
            Gap(arn, f"k8s-tg{n}", "traffic", start, start + timedelta(seconds=45), "revoke_before_authorize")
        )
    lb = LoadBalancer(arn=LB_ARN, name="k8s-fleet", type="network", scheme="internal", vpc_id="vpc-1")
    inventory = Inventory(
        taken_at=now,
        region="us-east-1",
        load_balancers={LB_ARN: lb},
        target_groups=groups,
        network_interfaces=enis,
    )
    return inventory, gaps


def _seed(server: Any, inventory: Any, gaps: list[Any]) -> None:
    from exporter.sources.impact import dimension_value

    cloudwatch, logs = server.client("cloudwatch"), server.client("logs")
    data = []
    for gap in gaps:
        dims = [
            {"Name": "TargetGroup", "Value": dimension_value(gap.target_group_arn, "targetgroup")},
            {"Name": "LoadBalancer", "Value": dimension_value(LB_ARN, "loadbalancer")},
        ]
        data.append(
            {"MetricName": "UnHealthyHostCount", "Dimensions": dims, "Timestamp": gap.start, "Value": 1.0}
        )
    for first in range(0, len(data), 500):
        cloudwatch.put_metric_data(Namespace="AWS/NetworkELB", MetricData=data[first : first + 500])
    logs.create_log_group(logGroupName=GROUP)
    logs.create_log_stream(logGroupName=GROUP, logStreamName="all")
    events = []
    for gap in sorted(gaps, key=lambda g: g.start):
        tg = inventory.target_groups[gap.target_group_arn]
        address = inventory.network_interfaces[tg.targets[0].eni_id].private_ips[0]
        epoch = int(gap.start.timestamp())
        for action in ("REJECT", "ACCEPT"):
            line = f"2 123456789012 {tg.targets[0].eni_id} 203.0.113.9 {address} 40000 {tg.port} 6 2 120 {epoch} {epoch + 30} {action} OK"
            events.append({"timestamp": epoch * 1000, "message": line})
    for first in range(0, len(events), 1000):
        logs.put_log_events(logGroupName=GROUP, logStreamName="all", logEvents=events[first : first + 1000])


def measure(count: int) -> dict[str, Any]:
    from exporter.commands.impact_check import check
    from exporter.engine.flowlogs import DEFAULT_FORMAT, FlowLogFormat
    from exporter.sources.aws import AwsClients, AwsTarget

    now = datetime.now(UTC).replace(microsecond=0)
    inventory, gaps = _fleet(count, now)
    with loopback_aws() as server:
        _seed(server, inventory, gaps)
        requests.post(f"{server.url}/_sgchurn/reset", json={}, timeout=10).raise_for_status()
        clients = AwsClients(AwsTarget("us-east-1"), endpoint_url=server.url)
        results = check(
            inventory, gaps, clients, flow_log_group=GROUP, fmt=FlowLogFormat.parse(DEFAULT_FORMAT), now=now
        )
        logged = server.requests()
    by_operation: dict[str, int] = {}
    for entry in logged:
        by_operation[str(entry["operation"])] = by_operation.get(str(entry["operation"]), 0) + 1
    return {
        "gaps": count,
        "requests": len(logged),
        "minimum": math.ceil(4 * count / 500) + count,
        "by_operation": by_operation,
        "confirmed": sum(1 for r in results.values() if r.impact == "confirmed"),
    }


def figures(quick: bool) -> list[Figure]:
    found = measure(60 if quick else 300)
    per_gap = found["requests"] / found["gaps"]
    minimum = found["minimum"] / found["gaps"]
    share = ratio(found["requests"], found["minimum"])
    return [
        Figure(
            key="impact_requests_per_gap",
            title="9 AWS requests per gap checked for impact",
            value=per_gap,
            unit="req",
            baseline=minimum,
            baseline_label="fewest the APIs allow",
            ratio=share,
            target=f"ratio <= {TARGET_RATIO}",
            passed=share <= TARGET_RATIO and found["confirmed"] == found["gaps"],
            notes=(
                f"{found['gaps']} closed gaps on as many target groups: {found['requests']} requests "
                f"({', '.join(f'{op} {n}' for op, n in sorted(found['by_operation'].items()))}), "
                f"{found['confirmed']} confirmed (each was seeded with an unhealthy host and a REJECT)",
                "counted at the moto server's request log (every HTTP request it received)",
            ),
        )
    ]
