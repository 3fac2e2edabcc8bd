"""Where the landing page links to: the runbook section of each alert and each target group's dashboard.

Both bases are settings (`web.runbook_base_url`, `web.grafana_base_url`). Runbook anchors are the
alert names in lower case, as GitHub renders the `## <alert>` headings of docs/runbooks.md and as
the `runbook_url` annotations of alerts/*.rules.yml point (tests hold all three together).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from exporter.config import DEFAULT_RUNBOOK_BASE_URL
from exporter.daemon.snapshot import TargetGroupView

__all__ = ["DEFAULT_RUNBOOK_BASE_URL", "PAGE_ALERTS", "PageLinks"]
#: dashboards/generate.py: the target-group dashboard's uid and its variables.
TARGET_GROUP_DASHBOARD = "/d/sgchurn-target-group/sg-churn-target-group"

#: The alerts the page can see the condition of, and what it shows them for.
RULE_GAP_OPEN = "SGChurnRuleGapOpen"
TARGET_GROUP_UNREACHABLE = "SGChurnTargetGroupUnreachable"
RULE_GAP_CLOSED_RECENTLY = "SGChurnRuleGapClosedRecently"
SOURCE_DOWN = "SGChurnSourceDown"
JOB_FAILING = "SGChurnJobFailing"
PAGE_ALERTS = (RULE_GAP_OPEN, TARGET_GROUP_UNREACHABLE, RULE_GAP_CLOSED_RECENTLY, SOURCE_DOWN, JOB_FAILING)


@dataclass(frozen=True)
class PageLinks:
    runbook_base_url: str = DEFAULT_RUNBOOK_BASE_URL
    grafana_base_url: str | None = None

    def runbook(self, alert: str) -> str:
        """The runbook section of an alert."""
        return f"{self.runbook_base_url}#{alert.lower()}"

    def dashboard(self, tg: TargetGroupView) -> str | None:
        """The target-group dashboard with this target group selected, or None without a Grafana base."""
        if not self.grafana_base_url:
            return None
        query = urlencode(
            {
                "var-account": tg.aws_account_id,
                "var-region": tg.aws_region,
                "var-namespace": tg.namespace or "$__all",
                "var-service": tg.service or "$__all",
                "var-target_group": tg.name,
            }
        )
        return f"{self.grafana_base_url.rstrip('/')}{TARGET_GROUP_DASHBOARD}?{query}"
