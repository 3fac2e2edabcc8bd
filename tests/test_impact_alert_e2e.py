"""A gap's confirmed impact pages through a real Prometheus and a real Alertmanager.

The daemon (jobs run by hand on a manual clock that starts 40 minutes in the past) makes the
incident's gap in moto's EC2, commits it, and after the settle time reads the seeded NLB metrics
and flow-log REJECTs over HTTP: `confirmed`. The exporter's /metrics is scraped by Prometheus with
the bundled rules as shipped; SGChurnRuleGapImpactConfirmed reaches the webhook for each flow,
with the rejected-flow count in its description, although the gap closed half an hour before.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from exporter.web import WebServer
from tests.awsworld import MotoServer
from tests.promstack import PromStack
from tests.test_daemon_impact import GROUP, make_gap, seed_flow_logs, seed_metrics, setup


@pytest.mark.e2e
def test_confirmed_impact_pages_after_the_gap_closed(clean_moto: MotoServer, tmp_path: Path) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=40)
    clock, world, assembly, ec2 = setup(
        clean_moto, tmp_path, start, enabled=True, flow_logs={"log_group": GROUP}
    )
    gap_start = clock.now() + timedelta(seconds=10)
    make_gap(ec2, clock, world, assembly)
    seed_metrics(clean_moto, world, gap_start.replace(second=0), unhealthy=2)
    seed_flow_logs(clean_moto, world, gap_start + timedelta(seconds=20), rejects=3)
    web = WebServer(assembly.daemon.snapshot, "127.0.0.1", 0)
    web.start()
    try:
        with PromStack.start(tmp_path / "stack", targets=[f"127.0.0.1:{web.port}"]) as stack:
            stack.wait_until_scraped(timeout=60)
            stack.wait_for(lambda: stack.value('sgchurn_ready{job="sg-churn-exporter"}') == 1, timeout=60)
            assert stack.prometheus_alerts(alertname="SGChurnRuleGapImpactConfirmed") == []  # not checked yet

            clock.advance(25 * 60)  # 15 minutes ago now: past the settle time and the flow-log delay
            assembly.daemon.run_job("impact")
            name = next(tg.name for tg in assembly.daemon.snapshot().target_groups)

            def paged() -> list[dict[str, object]]:
                return stack.webhook.alerts(
                    status="firing", alertname="SGChurnRuleGapImpactConfirmed", target_group=name
                )

            stack.wait_for(lambda: len({a["labels"]["flow"] for a in paged()}) == 2, timeout=60)
            for alert in paged():
                assert alert["labels"]["severity"] == "page"
                assert (
                    "VPC Flow Logs show 3 rejected flows during the last gap."
                    in alert["annotations"]["description"]
                )
    finally:
        web.stop()
        assembly.store.close()
