"""Figure 5: AWS API cost, counted at the (moto) server on 127.0.0.1.

Inventory poll: a world of several legacy and SG-mode NLBs, an ALB (to be ignored), instance
and ip target groups, instances and pod ENIs (tests/awsworld.build_incident_world, a few times)
is described once by `describe_inventory` through the exporter's counted, read-only clients. The
requests the server logged are compared with the fewest pages the API needs for what the
inventory holds, from the resource counts and the page limits (400 load balancers or target
groups per ELBv2 page, 20 ARNs per DescribeTags, 200 filter values and 1,000 results per EC2
page, one DescribeTargetGroupAttributes and one DescribeTargetHealth per target group, since no
batch call exists). Target: requests / minimum <= 1.2.

LookupEvents: the server's store holds many pages of records for one event name; one poll by
`LookupEventsPoller` (the exporter's token bucket) reads them all. The figure is the most
requests the server saw in any one-second window (sliding, from its request log). Target: never
above 2 (the LookupEvents limit is 2 per second per account and region).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from benchmarks.common import Figure, loopback_aws, ratio

TARGET_RATIO = 1.2
LOOKUP_LIMIT_PER_SECOND = 2
ELBV2_PAGE = 400
TAGS_BATCH = 20
EC2_FILTER_VALUES = 200
EC2_PAGE = 1000


@dataclass(frozen=True)
class InventoryCost:
    requests: Counter[str]  # operation -> requests the server logged
    minimum: dict[str, int]  # operation -> fewest pages the API allows
    load_balancers: int
    nlbs: int
    target_groups: int
    targets: int
    security_groups: int
    rules: int

    @property
    def total(self) -> int:
        return sum(self.requests.values())

    @property
    def minimum_total(self) -> int:
        return sum(self.minimum.values())

    @property
    def ratio(self) -> float:
        return ratio(self.total, self.minimum_total)


@dataclass(frozen=True)
class LookupRate:
    requests: int
    records: int
    pages: int
    max_in_one_second: int
    mean_per_second: float
    seconds: float
    event_names: int = 0  # one LookupEvents call per watched event name, at least, every poll


def _pages(count: int, per_page: int) -> int:
    return math.ceil(count / per_page) if count else 0


def minimum_pages(inventory: Any, load_balancers_total: int, target_groups_total: int) -> dict[str, int]:
    """The fewest requests per operation that return everything `inventory` holds."""
    nlbs = list(inventory.load_balancers.values())
    tgs = list(inventory.target_groups.values())
    subnets = {s.subnet_id for lb in nlbs for s in lb.subnets}
    vpcs = {lb.vpc_id for lb in nlbs} | {tg.vpc_id for tg in tgs}
    instances = {t.target_id for tg in tgs if tg.target_type == "instance" for t in tg.targets}
    ips = {t.target_id for tg in tgs if tg.target_type == "ip" for t in tg.targets}
    groups = inventory.security_groups
    rules = sum(len(sg.rules) for sg in groups.values())
    minimum = {
        "DescribeLoadBalancers": max(1, _pages(load_balancers_total, ELBV2_PAGE)),
        "DescribeTargetGroups": min(len(nlbs), max(1, _pages(target_groups_total, ELBV2_PAGE))),
        "DescribeTargetGroupAttributes": len(tgs),
        "DescribeTargetHealth": len(tgs),
        "DescribeTags": _pages(len(nlbs) + len(tgs), TAGS_BATCH),
        "DescribeSubnets": _pages(len(subnets), EC2_FILTER_VALUES),
        "DescribeVpcs": _pages(len(vpcs), EC2_FILTER_VALUES),
        "DescribeInstances": _pages(len(instances), EC2_FILTER_VALUES),
        "DescribeNetworkInterfaces": _pages(len(ips), EC2_FILTER_VALUES),
        "DescribeSecurityGroupRules": max(_pages(len(groups), EC2_FILTER_VALUES), _pages(rules, EC2_PAGE)),
        "DescribeSecurityGroups": _pages(len(groups), EC2_FILTER_VALUES),
    }
    return {operation: pages for operation, pages in minimum.items() if pages}


def _log(url: str) -> list[dict[str, Any]]:
    response = requests.get(f"{url}/_sgchurn/requests", timeout=10)
    response.raise_for_status()
    return list(response.json()["requests"])


def _clear_log(url: str) -> None:
    requests.post(f"{url}/_sgchurn/reset", json={}, timeout=10).raise_for_status()


def _clients(url: str) -> Any:
    from exporter.sources.aws import AwsClients, AwsTarget

    return AwsClients(AwsTarget("us-east-1"), endpoint_url=url)


def measure_inventory_cost(worlds: int = 3) -> InventoryCost:
    from exporter.sources.inventory import describe_inventory
    from tests.awsworld import build_incident_world

    with loopback_aws() as server:
        ec2, elbv2 = server.client("ec2"), server.client("elbv2")
        for n in range(worlds):
            options = (
                {"with_alb": True, "with_sg_mode": True, "with_ip_targets": True}
                if n % 3 == 0
                else {"with_sg_mode": True}
                if n % 3 == 1
                else {"with_ip_targets": True}
            )
            build_incident_world(ec2, elbv2, cluster=f"c{n}", name=f"app{n}", **options)
        clients = _clients(server.url)
        _clear_log(server.url)
        inventory = describe_inventory(clients.client("ec2"), clients.client("elbv2"), datetime.now(UTC))
        logged = [entry for entry in _log(server.url) if entry["service"] in ("ec2", "elbv2")]
        load_balancers_total = len(elbv2.describe_load_balancers()["LoadBalancers"])
        target_groups_total = len(elbv2.describe_target_groups()["TargetGroups"])
    return InventoryCost(
        requests=Counter(str(entry["operation"]) for entry in logged),
        minimum=minimum_pages(inventory, load_balancers_total, target_groups_total),
        load_balancers=load_balancers_total,
        nlbs=len(inventory.load_balancers),
        target_groups=len(inventory.target_groups),
        targets=sum(len(tg.targets) for tg in inventory.target_groups.values()),
        security_groups=len(inventory.security_groups),
        rules=sum(len(sg.rules) for sg in inventory.security_groups.values()),
    )


def max_in_window(times: list[float], window: float = 1.0) -> int:
    """The most events in any half-open window [t, t + window) of the sorted `times`."""
    ordered = sorted(times)
    best = start = 0
    for end, moment in enumerate(ordered):
        while ordered[start] <= moment - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def measure_lookup_rate(records: int = 700) -> LookupRate:
    """One LookupEvents poll over `records` stored revokes (all of the last hour): server-side rate."""
    from exporter.sources.cloudtrail import LookupEventsPoller
    from exporter.sources.ratelimit import LOOKUP_EVENTS_RATE, TokenBucket
    from tests import cloudtrail_samples as samples

    now = datetime.now(UTC).replace(microsecond=0)
    stored = [
        samples.revoke_record(
            event_id=f"bench-lookup-{i:06d}",
            time=now - timedelta(seconds=5 + i * 3000 // max(1, records)),
            account="123456789012",
        )
        for i in range(records)
    ]
    with loopback_aws() as server:
        clients = _clients(server.url)
        poller = LookupEventsPoller(clients.client("cloudtrail"), TokenBucket(LOOKUP_EVENTS_RATE))
        _clear_log(server.url)
        server.add_records(stored)
        batch = poller.poll(now)
        logged = [e for e in _log(server.url) if e["operation"] == "LookupEvents"]
    times = [float(e["time"]) for e in logged]
    span = max(times) - min(times) if len(times) > 1 else 0.0
    return LookupRate(
        requests=len(times),
        records=len(batch.records),
        pages=batch.counts.get("pages", 0),
        max_in_one_second=max_in_window(times),
        mean_per_second=(len(times) - 1) / span if span else float(len(times)),
        seconds=span,
        event_names=len(poller.event_names),
    )


def figures(quick: bool) -> list[Figure]:
    cost = measure_inventory_cost(worlds=2 if quick else 3)
    rate = measure_lookup_rate(250 if quick else 700)
    extra = {
        op: cost.requests.get(op, 0) - cost.minimum.get(op, 0)
        for op in sorted(set(cost.requests) | set(cost.minimum))
        if cost.requests.get(op, 0) != cost.minimum.get(op, 0)
    }
    breakdown = (
        ", ".join(f"{op} {cost.requests.get(op, 0)}/{cost.minimum.get(op, 0)}" for op in extra) or "none"
    )
    return [
        Figure(
            key="inventory_requests",
            title="5 AWS requests per inventory poll",
            value=float(cost.total),
            unit="req",
            baseline=float(cost.minimum_total),
            baseline_label="fewest pages the API allows",
            ratio=cost.ratio,
            target=f"ratio <= {TARGET_RATIO}",
            passed=cost.ratio <= TARGET_RATIO,
            notes=(
                f"world: {cost.load_balancers} load balancers ({cost.nlbs} NLBs), {cost.target_groups} NLB target "
                f"groups, {cost.targets} targets, {cost.security_groups} security groups, {cost.rules} rules",
                f"operations off the minimum (made/minimum): {breakdown}",
                "counted at the moto server's request log (every HTTP request it received)",
            ),
        ),
        Figure(
            key="lookup_rate",
            title="5 LookupEvents requests in any 1 s",
            value=float(rate.max_in_one_second),
            unit="req",
            baseline=float(LOOKUP_LIMIT_PER_SECOND),
            baseline_label="the LookupEvents limit per second",
            ratio=ratio(rate.max_in_one_second, LOOKUP_LIMIT_PER_SECOND),
            target=f"<= {LOOKUP_LIMIT_PER_SECOND} in every 1 s window",
            passed=rate.max_in_one_second <= LOOKUP_LIMIT_PER_SECOND and rate.records > 0,
            notes=(
                f"one poll: {rate.requests} requests ({rate.pages} pages) over {rate.seconds:.1f} s "
                f"({rate.mean_per_second:.2f}/s on average), {rate.records} records read",
                "sliding 1 s windows over the server's request times",
                f"{rate.event_names} watched event names: a poll with nothing new still makes "
                f"{rate.event_names} requests ({rate.event_names / LOOKUP_LIMIT_PER_SECOND:.1f} s of the "
                f"{LOOKUP_LIMIT_PER_SECOND}/s budget per poll)",
            ),
        ),
    ]
