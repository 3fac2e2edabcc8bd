"""Evidence for the impact of closed gaps, read-only: NLB CloudWatch metrics and VPC Flow Logs.

Metrics: CloudWatch GetMetricData, one call batching many target groups (at most 500 metric
queries per call, the API's limit; pages by NextToken). Flow logs: CloudWatch Logs
FilterLogEvents on the configured group, over a bounded window and a bounded number of pages.
Every call goes through the counted, guarded clients of sources/aws.py.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from exporter.engine.flowlogs import FlowLogFormat, ParsedFlowLogs, count_rejects, parse_lines
from exporter.engine.impact import Datapoint, FlowLogEvidence, MetricEvidence, Window

#: GetMetricData accepts at most 500 MetricDataQuery structures per call (CloudWatch API reference).
MAX_QUERIES_PER_CALL = 500
NAMESPACE = "AWS/NetworkELB"
#: metric name -> (statistic, MetricEvidence field): the peak of unhealthy hosts, the least healthy
#: hosts, and sums of resets and new flows per period.
METRICS: tuple[tuple[str, str, str], ...] = (
    ("UnHealthyHostCount", "Maximum", "unhealthy_hosts"),
    ("HealthyHostCount", "Minimum", "healthy_hosts"),
    ("TCP_Target_Reset_Count", "Sum", "target_resets"),
    ("NewFlowCount", "Sum", "new_flows"),
)
#: Flow log records are aggregated over up to 10 minutes (AWS VPC docs): a record overlapping the
#: gap may carry a start up to this long before it.
FLOW_LOG_AGGREGATION = timedelta(minutes=10)
#: FilterLogEvents pages read per gap at most; a truncated read that found no REJECT is not read.
MAX_LOG_PAGES = 20


@dataclass(frozen=True)
class MetricRequest:
    """One target group's metrics over a gap's window (and the same length before it)."""

    target_group_arn: str
    load_balancer_arn: str
    window: Window


def dimension_value(arn: str, marker: str) -> str:
    """The CloudWatch dimension of an ELB ARN: `targetgroup/NAME/ID` or `net/NAME/ID`."""
    resource = arn.split(":", 5)[-1]
    if not resource.startswith(marker + "/"):
        raise ValueError(f"not a {marker} ARN: {arn}")
    return resource if marker == "targetgroup" else resource[len(marker) + 1 :]


def _chunks(requests: Sequence[MetricRequest]) -> Iterator[list[tuple[int, MetricRequest]]]:
    per_call = MAX_QUERIES_PER_CALL // len(METRICS)
    indexed = list(enumerate(requests))
    for first in range(0, len(indexed), per_call):
        yield indexed[first : first + per_call]


def read_metrics(cloudwatch: Any, requests: Sequence[MetricRequest]) -> list[MetricEvidence]:
    """Evidence per request (same order), ceil(4 x requests / 500) calls plus any NextToken pages."""
    found: dict[str, list[Datapoint]] = {}
    for chunk in _chunks(requests):
        queries = []
        for index, request in chunk:
            dimensions = [
                {"Name": "TargetGroup", "Value": dimension_value(request.target_group_arn, "targetgroup")},
                {"Name": "LoadBalancer", "Value": dimension_value(request.load_balancer_arn, "loadbalancer")},
            ]
            for number, (metric, stat, _) in enumerate(METRICS):
                queries.append(
                    {
                        "Id": f"q{index}m{number}",
                        "MetricStat": {
                            "Metric": {
                                "Namespace": NAMESPACE,
                                "MetricName": metric,
                                "Dimensions": dimensions,
                            },
                            "Period": 60,
                            "Stat": stat,
                        },
                        "ReturnData": True,
                    }
                )
        start = min(request.window.before_start for _, request in chunk)
        end = max(request.window.end for _, request in chunk)
        kwargs: dict[str, Any] = {"MetricDataQueries": queries, "StartTime": start, "EndTime": end}
        while True:
            answer = cloudwatch.get_metric_data(**kwargs)
            for result in answer.get("MetricDataResults", []):
                points = zip(result.get("Timestamps", []), result.get("Values", []), strict=False)
                found.setdefault(result["Id"], []).extend((moment, float(value)) for moment, value in points)
            token = answer.get("NextToken")
            if not token:
                break
            kwargs["NextToken"] = token
    out = []
    for index, _ in enumerate(requests):
        series = {
            name: tuple(sorted(found.get(f"q{index}m{number}", [])))
            for number, (_, _, name) in enumerate(METRICS)
        }
        out.append(MetricEvidence(**series))
    return out


@dataclass(frozen=True)
class FlowLogRequest:
    addresses: frozenset[str]
    interfaces: frozenset[str]
    ports: frozenset[int]
    start: datetime
    end: datetime


def read_flow_logs(
    logs: Any,
    group: str,
    fmt: FlowLogFormat,
    request: FlowLogRequest,
    *,
    now: datetime,
    max_pages: int = MAX_LOG_PAGES,
) -> tuple[FlowLogEvidence | None, ParsedFlowLogs]:
    """REJECTs to the targets over the gap: None when the bounded read was cut short and found none."""
    kwargs: dict[str, Any] = {
        "logGroupName": group,
        "startTime": int((request.start - FLOW_LOG_AGGREGATION).timestamp() * 1000),
        "endTime": int(request.end.timestamp() * 1000),
        "filterPattern": "REJECT",
    }
    lines: list[str] = []
    truncated = False
    for page in range(max_pages):
        answer = logs.filter_log_events(**kwargs)
        lines.extend(str(event.get("message", "")) for event in answer.get("events", []))
        token = answer.get("nextToken")
        if not token:
            break
        if page == max_pages - 1:
            truncated = True
        kwargs["nextToken"] = token
    parsed = parse_lines(lines, fmt)
    return evidence_of(parsed, request, truncated=truncated, now=now), parsed


def evidence_of(
    parsed: ParsedFlowLogs, request: FlowLogRequest, *, truncated: bool, now: datetime
) -> FlowLogEvidence | None:
    """The REJECTs among the records read that match the request; None when the bounded read was
    cut short (`truncated`) and found none: what was not read may have held some."""
    rejected = count_rejects(
        parsed.records,
        addresses=request.addresses,
        interfaces=request.interfaces,
        ports=request.ports,
        start=request.start,
        end=request.end,
    )
    if truncated and not rejected:
        return None
    return FlowLogEvidence(rejected_flows=rejected, records_read=len(parsed.records), read_until=now)
