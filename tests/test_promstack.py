"""tests/promstack.py against a tiny exposition: a real Prometheus evaluates alerts/sgchurn.rules.yml
and a real Alertmanager delivers SGChurnTargetGroupUnreachable to the webhook, then its resolution."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from tests.promstack import PromStack, grafana_to_promql, rewrite_for

pytestmark = pytest.mark.e2e

TG = {
    "aws_account_id": "111122223333",
    "aws_region": "eu-west-1",
    "target_group": "k8s-shop-web-0a1b2c3d4e",
    "namespace": "shop",
    "service": "web",
}


class FakeExporter:
    """A prometheus_client exposition on 127.0.0.1 with a few sgchurn_* series of one target group."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        identity = list(TG)
        self.info = Gauge(
            "sgchurn_target_group_info",
            "info",
            [*identity, "load_balancer", "scheme", "mode", "target_type", "protocol", "cluster"],
            registry=self.registry,
        )
        self.ratio = Gauge(
            "sgchurn_target_group_reachability_ratio", "ratio", [*identity, "flow"], registry=self.registry
        )
        self.gap_open = Gauge("sgchurn_rule_gap_open", "open", [*identity, "flow"], registry=self.registry)
        self.ready = Gauge("sgchurn_ready", "ready", registry=self.registry)
        self.job_success = Gauge(
            "sgchurn_job_last_success_timestamp_seconds", "last success", ["task"], registry=self.registry
        )
        self.info.labels(
            **TG,
            load_balancer="k8s-shop-web-5f6e7d8c9b",
            scheme="internet-facing",
            mode="legacy",
            target_type="instance",
            protocol="TCP",
            cluster="prod",
        ).set(1)
        for flow in ("traffic", "health_check"):
            self.ratio.labels(**TG, flow=flow).set(1)
            self.gap_open.labels(**TG, flow=flow).set(0)
        self.ready.set(1)
        self.job_success.labels(task="inventory").set_to_current_time()
        self.server, self.thread = start_http_server(0, addr="127.0.0.1", registry=self.registry)
        self.address = f"127.0.0.1:{self.server.server_port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def exporter() -> Iterator[FakeExporter]:
    fake = FakeExporter()
    try:
        yield fake
    finally:
        fake.stop()


def _labels(alert: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = alert["labels"]
    return labels


def test_unreachable_alert_reaches_the_webhook_and_resolves(tmp_path: Path, exporter: FakeExporter) -> None:
    with PromStack.start(tmp_path, targets=[exporter.address], for_override="2s") as stack:
        stack.wait_until_scraped()
        # Under honor_labels the exporter's own labels survive (`task`, `namespace`, `service`)
        # and none of them is `job`: the scrape job stays what the alerts select.
        stack.wait_for(
            lambda: stack.query(
                'sgchurn_job_last_success_timestamp_seconds{task="inventory",job="sg-churn-exporter"}'
            ),
            timeout=20,
            message="sgchurn_job_* keeping task=inventory and the scrape job",
        )
        # A healthy target group raises nothing, not even while the stack starts.
        time.sleep(3)
        assert stack.webhook.alerts() == []
        assert stack.prometheus_alerts() == []
        # One poll saw half the targets unadmitted: not confirmed, no page.
        exporter.ratio.labels(**TG, flow="traffic").set(0.5)
        time.sleep(3)
        assert stack.webhook.alerts() == []
        # The next poll confirms it: the exporter opens the gap, and it pages.
        exporter.gap_open.labels(**TG, flow="traffic").set(1)

        firing = stack.wait_for(
            lambda: stack.webhook.alerts(status="firing", alertname="SGChurnTargetGroupUnreachable"),
            timeout=40,
            message=lambda: f"a firing notification; Prometheus alerts: {stack.prometheus_alerts()}",
        )
        alert = firing[0]
        assert _labels(alert) == {
            "alertname": "SGChurnTargetGroupUnreachable",
            "severity": "page",
            **TG,
            "flow": "traffic",
            "load_balancer": "k8s-shop-web-5f6e7d8c9b",
            "mode": "legacy",
            "cluster": "prod",
        }
        annotations = alert["annotations"]
        assert "Only 50% of the targets of target group k8s-shop-web-0a1b2c3d4e" in annotations["description"]
        assert annotations["summary"].startswith("Target group k8s-shop-web-0a1b2c3d4e (shop/web):")
        assert annotations["runbook_url"].endswith("/docs/runbooks.md#sgchurntargetgroupunreachable")

        exporter.ratio.labels(**TG, flow="traffic").set(1)
        exporter.gap_open.labels(**TG, flow="traffic").set(0)
        resolved = stack.wait_for(  # after keep_firing_for (30 s)
            lambda: stack.webhook.alerts(status="resolved", alertname="SGChurnTargetGroupUnreachable"),
            timeout=60,
            message="a resolved notification",
        )
        assert _labels(resolved[0]) == _labels(alert)

        # Nothing else was delivered, and every rule evaluates cleanly in a real Prometheus.
        assert {_labels(a)["alertname"] for a in stack.webhook.alerts()} == {"SGChurnTargetGroupUnreachable"}
        unhealthy = [rule for rule in stack.rule_health() if rule[1] != "ok"]
        assert unhealthy == []


def test_rewrite_for_changes_only_for(tmp_path: Path) -> None:
    import yaml

    from tests.promstack import DEFAULT_RULE_FILES, STARTUP_ALERTS

    (copy,) = rewrite_for(DEFAULT_RULE_FILES, tmp_path, "2s")
    original = yaml.safe_load(DEFAULT_RULE_FILES[0].read_text(encoding="utf-8"))
    rewritten = yaml.safe_load(copy.read_text(encoding="utf-8"))
    for group_a, group_b in zip(original["groups"], rewritten["groups"], strict=True):
        for rule_a, rule_b in zip(group_a["rules"], group_b["rules"], strict=True):
            if rule_a.get("alert") in STARTUP_ALERTS:
                assert rule_a == rule_b
            elif "for" in rule_a:
                assert rule_b.pop("for") == "2s"
                rule_a.pop("for")
            assert rule_a == rule_b


def test_grafana_to_promql() -> None:
    expr = (
        'sum by (flow) (rate(sgchurn_rule_gaps_total{aws_account_id=~"$account",'
        'target_group=~"${target_group}",service=~"${service:regex}"}[$__rate_interval]))'
        " / increase(x_total[$__range])"
    )
    assert grafana_to_promql(expr) == (
        'sum by (flow) (rate(sgchurn_rule_gaps_total{aws_account_id=~".*",'
        'target_group=~".*",service=~".*"}[1m])) / increase(x_total[1h])'
    )
