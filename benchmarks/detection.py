"""Figure 6: detection latency, from a revoke to the open gap on /metrics of a running exporter.

A moto server on 127.0.0.1 holds the incident world (a legacy NLB whose node security group
admits tcp/31080 from 0.0.0.0/0). The exporter runs for real in this process: the daemon from
`build_daemon` on its scheduler (`daemon.start()`, inventory every 5 s, evaluate every 2.5 s, the
same 2:1 as the defaults of 30 s and 15 s) and its `WebServer`. Each trial waits part of an
inventory interval (the trials' waits are spread over the whole interval, so the revokes land at
every phase of the poll cycle), revokes the rule with a real boto3 call, and scrapes /metrics every 0.1 s
until `sgchurn_rule_gap_open{flow="traffic"}` is 1; then authorizes the rule again and waits for
the gap to close. The figure is the median latency over the inventory interval. Target: within
one inventory interval plus one evaluate interval (ratio <= 1.5), its worst case.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import Figure, loopback_aws

INVENTORY_SECONDS = 5.0
EVALUATE_SECONDS = 2.5
PERMISSION = [
    {"IpProtocol": "tcp", "FromPort": 31080, "ToPort": 31080, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
]


@dataclass(frozen=True)
class DetectionResult:
    inventory_seconds: float
    evaluate_seconds: float
    open_latencies: tuple[float, ...]
    close_latencies: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.open_latencies)

    @property
    def worst(self) -> float:
        return max(self.open_latencies)

    @property
    def bound(self) -> float:
        """What the design promises: one inventory poll, then one evaluation."""
        return self.inventory_seconds + self.evaluate_seconds


def gap_open(metrics_url: str, target_group: str) -> float | None:
    """sgchurn_rule_gap_open for the target group's traffic flow, None when not exposed."""
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        text = response.read().decode()
    for line in text.splitlines():
        if (
            line.startswith("sgchurn_rule_gap_open{")
            and f'target_group="{target_group}"' in line
            and 'flow="traffic"' in line
        ):
            return float(line.rsplit(" ", 1)[1])
    return None


def _wait(predicate: Any, timeout: float, interval: float = 0.1) -> float:
    """Seconds until `predicate()` holds (polled every `interval`); raises on timeout."""
    started = time.perf_counter()
    while True:
        if predicate():
            return time.perf_counter() - started
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"not seen within {timeout} s")
        time.sleep(interval)


def measure_detection(
    trials: int = 3,
    inventory_seconds: float = INVENTORY_SECONDS,
    evaluate_seconds: float = EVALUATE_SECONDS,
    seed: int = 5,
) -> DetectionResult:
    from exporter.config import load_settings
    from exporter.daemon.assemble import build_daemon
    from exporter.logsetup import configure_logging
    from exporter.web import WebServer
    from tests.awsworld import build_incident_world

    configure_logging("json", "error")  # the exporter's gap logs would interleave with the figures
    rng = random.Random(seed)
    opened: list[float] = []
    closed: list[float] = []
    timeout = 4 * (inventory_seconds + evaluate_seconds) + 10
    with loopback_aws() as server, tempfile.TemporaryDirectory(prefix="sgchurn-bench-") as folder:
        ec2, elbv2 = server.client("ec2"), server.client("elbv2")
        world = build_incident_world(ec2, elbv2, cluster="demo")
        target_group = elbv2.describe_target_groups(TargetGroupArns=[world.tg_arn])["TargetGroups"][0][
            "TargetGroupName"
        ]
        settings = load_settings(
            None,
            environ={},
            overrides={
                "cluster_name": "demo",
                "targets": [{"region": "us-east-1"}],
                "state": {"path": str(Path(folder) / "state.sqlite3")},
                "kubernetes": {"enabled": "false"},
                "intervals": {
                    "inventory": inventory_seconds,
                    "evaluate": evaluate_seconds,
                    "cloudtrail": 60,
                    "kubernetes": 60,
                },
            },
        )
        assembly = build_daemon(settings, endpoint_url=server.url)
        web = WebServer(assembly.daemon.snapshot, "127.0.0.1", 0)
        web.start()
        assembly.daemon.start()
        metrics = f"{web.url}/metrics"
        try:
            _wait(lambda: gap_open(metrics, target_group) == 0.0, timeout)
            # Revoke at phases spread over the poll cycle (one random point in each 1/trials of it).
            phases = [(k + rng.random()) / trials * inventory_seconds for k in range(trials)]
            rng.shuffle(phases)
            for phase in phases:
                time.sleep(phase)
                ec2.revoke_security_group_ingress(GroupId=world.node_sg_id, IpPermissions=PERMISSION)
                opened.append(_wait(lambda: gap_open(metrics, target_group) == 1.0, timeout))
                ec2.authorize_security_group_ingress(GroupId=world.node_sg_id, IpPermissions=PERMISSION)
                closed.append(_wait(lambda: gap_open(metrics, target_group) == 0.0, timeout))
        finally:
            assembly.daemon.stop()
            web.stop()
            assembly.store.close()
    return DetectionResult(inventory_seconds, evaluate_seconds, tuple(opened), tuple(closed))


def figures(quick: bool) -> list[Figure]:
    result = measure_detection(trials=1 if quick else 3)
    limit = result.bound / result.inventory_seconds
    return [
        Figure(
            key="detection",
            title="6 Detection latency, revoke -> /metrics",
            value=result.median,
            unit="s",
            baseline=result.inventory_seconds,
            baseline_label="inventory poll interval",
            ratio=result.median / result.inventory_seconds,
            target=f"worst <= {limit:.1f} intervals",
            passed=result.worst <= result.bound,
            notes=(
                f"{len(result.open_latencies)} trials: opened after "
                + ", ".join(f"{s:.1f} s" for s in result.open_latencies)
                + f"; worst {result.worst:.1f} s = {result.worst / result.inventory_seconds:.2f} intervals",
                f"bound: inventory {result.inventory_seconds:g} s + evaluate {result.evaluate_seconds:g} s = "
                f"{result.bound:g} s",
                "closed again after " + ", ".join(f"{s:.1f} s" for s in result.close_latencies),
            ),
        )
    ]
