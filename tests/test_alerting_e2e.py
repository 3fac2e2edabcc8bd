"""Exporter + real Prometheus + real Alertmanager through the incident, at the chart's intervals.

The daemon runs on its own scheduler against a moto server with the Helm chart's default
intervals (inventory 30 s, targeted rules poll 5 s, evaluate 15 s); Prometheus scrapes it at the
chart's ServiceMonitor interval (15 s) and evaluates the bundled rules exactly as shipped (no
`for` shortened; the global evaluation interval is kube-prometheus-stack's 30 s, the rule files
set their own); Alertmanager posts to a webhook receiver in the test.

A 60 s break-before-make on a target group with 0% reachability pages while the gap is open,
within the paging budget of docs/runbooks.md#paging-latency, and resolves after it closes.
CloudTrail records are held back until then (CloudTrail delivers minutes late): the page owes
nothing to them. Released, they explain the gap and the change alerts fire; afterwards every
dashboard expression returns data.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.config import load_settings
from exporter.daemon.assemble import build_daemon
from exporter.web import WebServer
from tests.awsworld import CloudTrailRecorder, MotoServer, build_incident_world
from tests.promstack import PromStack, dashboard_expressions, grafana_to_promql

ROOT = Path(__file__).parent.parent
DASHBOARDS = sorted((ROOT / "dashboards").glob("*.json"))
CHART_VALUES = yaml.safe_load((ROOT / "helm" / "sg-churn-exporter" / "values.yaml").read_text())
CHART_INTERVALS: dict[str, Any] = CHART_VALUES["config"]["intervals"]
SCRAPE_INTERVAL = CHART_VALUES["serviceMonitor"]["interval"]
RULE_GROUP_INTERVAL = 15.0  # alerts/sgchurn.rules.yml, group sgchurn.rule-gaps
GAP_SECONDS = 60.0
#: Expressions over families that this incident does not exercise (no SQS source, no API error,
#: no failed authorize, impact checks off: tests/test_impact_alert_e2e.py has them): they are
#: checked for syntax elsewhere and may return nothing here.
MAY_BE_EMPTY = (
    "sgchurn_aws_api_errors_total",
    "sgchurn_cloudtrail_records_rejected_total",
    'result="failed"',
    "sgchurn_rule_gap_impact_total",
    "sgchurn_rule_gap_last_rejected_flows",
    "sgchurn_rule_gap_last_impact_confirmed_timestamp_seconds",
)


def _seconds(duration: str) -> float:
    assert duration.endswith("s"), duration
    return float(duration[:-1])


#: Worst case from the revoke to the page: the targeted poll sees it (one rules interval), the
#: next one confirms it (another), Prometheus scrapes it (one scrape interval) and the rule group
#: evaluates (one group interval); plus a few seconds for Alertmanager (group_wait 1 s here) and
#: the scheduler on a busy machine.
PAGE_BUDGET = 2 * float(CHART_INTERVALS["rules"]) + _seconds(SCRAPE_INTERVAL) + RULE_GROUP_INTERVAL + 5.0


class RealClock:
    """The recorder's clock: records carry the real call time, as CloudTrail's would."""

    def now(self) -> datetime:
        return datetime.now(tz=UTC)


@pytest.fixture
def exporter_url(clean_moto: MotoServer, tmp_path: Path) -> Iterator[tuple[str, MotoServer, object]]:
    world = build_incident_world(clean_moto.client("ec2"), clean_moto.client("elbv2"), cluster="demo")
    settings = load_settings(
        None,
        environ={},
        overrides={
            "cluster_name": "demo",
            "targets": [{"region": "us-east-1"}],
            "state": {"path": str(tmp_path / "state.db")},
            "kubernetes": {"enabled": "false"},
            # the chart's intervals; CloudTrail is read every 5 s so that the held-back records,
            # once released, explain the gap without a minute's wait (not part of the page path)
            "intervals": {**CHART_INTERVALS, "cloudtrail": 5},
            # the chart's settle window: the poll-only gap waits that long for CloudTrail's facts
            "cloudtrail": {
                "overlap_seconds": 300,
                "settle_seconds": CHART_VALUES["config"]["cloudtrail"]["settle_seconds"],
            },
        },
    )
    assembly = build_daemon(settings, endpoint_url=clean_moto.url)
    web = WebServer(assembly.daemon.snapshot, "127.0.0.1", 0)
    web.start()
    assembly.daemon.start()
    try:
        yield f"127.0.0.1:{web.port}", clean_moto, world
    finally:
        assembly.daemon.stop()
        web.stop()
        assembly.store.close()


def test_break_before_make_pages_while_the_gap_is_open_and_resolves_after(
    exporter_url: tuple[str, MotoServer, object], tmp_path: Path
) -> None:
    target, moto, world = exporter_url
    ec2, elbv2 = moto.client("ec2"), moto.client("elbv2")
    recorder = CloudTrailRecorder(None, RealClock())  # type: ignore[arg-type]  # held back: no sink
    recorder.attach(ec2, elbv2)
    with PromStack.start(
        tmp_path / "stack", targets=[target], scrape_interval=SCRAPE_INTERVAL, evaluation_interval="30s"
    ) as stack:
        stack.wait_until_scraped(timeout=60)
        stack.wait_for(lambda: stack.value('sgchurn_ready{job="sg-churn-exporter"}') == 1, timeout=60)
        assert stack.webhook.alerts(status="firing") == []

        # An operator flips preserve_client_ip to false; the controller replaces the rules
        # break-before-make, leaving tcp/31080 closed for 60 s.
        with recorder.acting_as():
            elbv2.modify_target_group_attributes(
                TargetGroupArn=world.tg_arn,  # type: ignore[attr-defined]
                Attributes=[{"Key": "preserve_client_ip.enabled", "Value": "false"}],
            )
        node_sg = world.node_sg_id  # type: ignore[attr-defined]
        revoked_at = time.monotonic()
        ec2.revoke_security_group_ingress(
            GroupId=node_sg,
            IpPermissions=[
                {
                    "IpProtocol": "tcp",
                    "FromPort": 31080,
                    "ToPort": 31080,
                    "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
                }
            ],
        )
        stack.wait_for(
            lambda: stack.webhook.alerts(
                status="firing", alertname="SGChurnTargetGroupUnreachable", namespace="shop", service="web"
            ),
            timeout=GAP_SECONDS,
        )
        paged_after = time.monotonic() - revoked_at
        print(f"paged {paged_after:.1f} s after the revoke (budget {PAGE_BUDGET:.0f} s)")
        assert paged_after <= PAGE_BUDGET, f"paged {paged_after:.1f} s after the revoke"
        page = stack.webhook.alerts(status="firing", alertname="SGChurnTargetGroupUnreachable")[0]
        assert page["labels"]["severity"] == "page"
        assert page["labels"]["target_group"]
        assert "runbook_url" in page["annotations"]
        assert not stack.webhook.alerts(status="resolved", alertname="SGChurnTargetGroupUnreachable")

        # The attribute flip is on /metrics within one inventory poll: its alert fires from the
        # gauge, long before CloudTrail (still held back) could say so.
        stack.wait_for(
            lambda: stack.webhook.alerts(status="firing", alertname="SGChurnPreserveClientIPChanged"),
            timeout=float(CHART_INTERVALS["inventory"])
            + _seconds(SCRAPE_INTERVAL)
            + RULE_GROUP_INTERVAL
            + 10,
        )

        # Dashboards are read during the gap and after it: "now" panels (open gaps, unadmitted
        # targets) have data only during it, history panels only after.
        with_data = _dashboard_queries_with_data(stack)
        time.sleep(max(0.0, GAP_SECONDS - (time.monotonic() - revoked_at)))
        assert not stack.webhook.alerts(status="resolved", alertname="SGChurnTargetGroupUnreachable")
        ec2.authorize_security_group_ingress(
            GroupId=node_sg,
            IpPermissions=[
                {
                    "IpProtocol": "tcp",
                    "FromPort": 31080,
                    "ToPort": 31080,
                    "IpRanges": [{"CidrIp": "10.0.1.0/24"}, {"CidrIp": "10.0.2.0/24"}],
                }
            ],
        )
        # resolves once the rules poll, a scrape and keep_firing_for (30 s) have passed
        stack.wait_for(
            lambda: stack.webhook.alerts(status="resolved", alertname="SGChurnTargetGroupUnreachable"),
            timeout=PAGE_BUDGET + 30,
        )
        # one page for the whole incident: no resolve-and-re-page in the middle
        firing = stack.webhook.alerts(
            status="firing", alertname="SGChurnTargetGroupUnreachable", flow="traffic"
        )
        assert len({a["startsAt"] for a in firing}) == 1

        # CloudTrail delivers, minutes late as it does: the gap gets its cause and actor.
        moto.add_records(recorder.records)
        stack.wait_for(
            lambda: stack.webhook.alerts(
                status="firing", alertname="SGChurnRuleGapClosedRecently", cause="revoke_before_authorize"
            ),
            timeout=90,
        )
        # ... and names who triggered it: the operator's flip (role/session) before the revoke
        closed = stack.wait_for(
            lambda: stack.webhook.alerts(
                status="firing",
                alertname="SGChurnRuleGapClosedRecently",
                trigger_actor="platform-admin/operator",
            ),
            timeout=30,
        )
        assert "triggered by platform-admin/operator" in closed[-1]["annotations"]["summary"]
        stack.wait_for(
            lambda: stack.webhook.alerts(status="firing", alertname="SGChurnBreakBeforeMakeReplacement"),
            timeout=90,
        )
        # The exporter's own health stayed quiet the whole time.
        noisy = {a["labels"]["alertname"] for a in stack.webhook.alerts(status="firing")}
        assert not noisy & {
            "SGChurnExporterAbsent",
            "SGChurnExporterDown",
            "SGChurnSourceDown",
            "SGChurnJobFailing",
            "SGChurnJobNeverSucceeded",
        }

        # History panels (rate/increase over $__rate_interval = 1m) need two scrapes of the new
        # counters, 15 s apart: give them a minute.
        def empty() -> list[str]:
            with_data.update(_dashboard_queries_with_data(stack))
            return [
                f"{q.dashboard} / {q.where}: {q.expr}"
                for q in dashboard_expressions(DASHBOARDS)
                if q.expr not in with_data and not any(m in q.expr for m in MAY_BE_EMPTY)
            ]

        assert DASHBOARDS
        stack.wait_for(
            lambda: not empty(),
            timeout=60,
            interval=5,
            message=lambda: "dashboard expressions without data:\n" + "\n".join(empty()),
        )


def _dashboard_queries_with_data(stack: PromStack) -> set[str]:
    return {q.expr for q in dashboard_expressions(DASHBOARDS) if stack.query(grafana_to_promql(q.expr))}
