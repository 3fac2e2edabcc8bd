"""Exporter + real Prometheus + real Alertmanager through the incident.

The daemon runs on its own scheduler against a moto server; Prometheus scrapes it every second
and evaluates the bundled rules (their `for:` shortened in a temp copy, for test speed only);
Alertmanager posts to a webhook receiver in the test. The break-before-make flip pages with the
right labels and resolves once the rules are back; afterwards every dashboard expression
returns data.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from exporter.config import load_settings
from exporter.daemon.assemble import build_daemon
from exporter.web import WebServer
from tests.awsworld import CloudTrailRecorder, LookupSink, MotoServer, build_incident_world
from tests.promstack import PromStack, dashboard_expressions, grafana_to_promql

DASHBOARDS = sorted((Path(__file__).parent.parent / "dashboards").glob("*.json"))
#: Expressions over families that this incident does not exercise (no SQS source, no API error,
#: no failed authorize): they are checked for syntax elsewhere and may return nothing here.
MAY_BE_EMPTY = (
    "sgchurn_aws_api_errors_total",
    "sgchurn_cloudtrail_records_rejected_total",
    'result="failed"',
)


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
            "intervals": {"inventory": 1, "cloudtrail": 2, "evaluate": 1, "kubernetes": 60},
            "cloudtrail": {"overlap_seconds": 300, "settle_seconds": 30},
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


def test_incident_pages_with_the_right_labels_and_resolves(
    exporter_url: tuple[str, MotoServer, object], tmp_path: Path
) -> None:
    target, moto, world = exporter_url
    ec2, elbv2 = moto.client("ec2"), moto.client("elbv2")
    recorder = CloudTrailRecorder(LookupSink(moto), RealClock())  # type: ignore[arg-type]
    recorder.attach(ec2, elbv2)
    with PromStack.start(tmp_path / "stack", targets=[target], for_override="2s") as stack:
        stack.wait_until_scraped(timeout=30)
        stack.wait_for(lambda: stack.value('sgchurn_ready{job="sg-churn-exporter"}') == 1, timeout=30)
        assert stack.webhook.alerts(status="firing") == []

        # An operator flips preserve_client_ip to false; the controller replaces the rules
        # break-before-make, leaving tcp/31080 closed for several seconds.
        with recorder.acting_as():
            elbv2.modify_target_group_attributes(
                TargetGroupArn=world.tg_arn,  # type: ignore[attr-defined]
                Attributes=[{"Key": "preserve_client_ip.enabled", "Value": "false"}],
            )
        node_sg = world.node_sg_id  # type: ignore[attr-defined]
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
            timeout=45,
        )
        page = stack.webhook.alerts(status="firing", alertname="SGChurnTargetGroupUnreachable")[0]
        assert page["labels"]["severity"] in ("page", "critical")
        assert page["labels"]["target_group"]
        assert "runbook_url" in page["annotations"]

        # Dashboards are read during the gap and after it: "now" panels (open gaps, unadmitted
        # targets) have data only during it, history panels only after.
        with_data = _dashboard_queries_with_data(stack)
        time.sleep(3)
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
        stack.wait_for(
            lambda: stack.webhook.alerts(status="resolved", alertname="SGChurnTargetGroupUnreachable"),
            timeout=45,
        )
        stack.wait_for(
            lambda: stack.webhook.alerts(
                status="firing", alertname="SGChurnRuleGapClosedRecently", cause="revoke_before_authorize"
            ),
            timeout=60,
        )
        stack.wait_for(
            lambda: stack.webhook.alerts(status="firing", alertname="SGChurnBreakBeforeMakeReplacement"),
            timeout=60,
        )
        stack.wait_for(
            lambda: stack.webhook.alerts(status="firing", alertname="SGChurnPreserveClientIPChanged"),
            timeout=60,
        )
        # The exporter's own health stayed quiet the whole time.
        noisy = {a["labels"]["alertname"] for a in stack.webhook.alerts(status="firing")}
        assert not noisy & {
            "SGChurnExporterAbsent",
            "SGChurnExporterDown",
            "SGChurnSourceDown",
            "SGChurnJobFailing",
        }

        with_data |= _dashboard_queries_with_data(stack)
        empty = [
            f"{q.dashboard} / {q.where}: {q.expr}"
            for q in dashboard_expressions(DASHBOARDS)
            if q.expr not in with_data and not any(m in q.expr for m in MAY_BE_EMPTY)
        ]
        assert DASHBOARDS and not empty, "dashboard expressions without data:\n" + "\n".join(empty)


def _dashboard_queries_with_data(stack: PromStack) -> set[str]:
    return {q.expr for q in dashboard_expressions(DASHBOARDS) if stack.query(grafana_to_promql(q.expr))}
