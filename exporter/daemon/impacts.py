"""The impact job: each closed gap's impact, once its health-check settle time has passed.

Per watched (account, region): the committed gaps that ended within IMPACT_HORIZON and are due
(ended more than their target group's settle time ago, never checked or checked over
`recheck_seconds` ago with evidence still missing), at most `max_gaps_per_run` of them, oldest
first, checked in one bounded read (sources/gap_impact.py: one GetMetricData call per 125 gaps,
one FilterLogEvents read per gap with a flow-log group, or a bounded read of the window's flow-log
files with an S3 location). The result is kept in the state store; the
gap is counted in sgchurn_rule_gap_impact_total once, when its impact is known: at once when
confirmed (more evidence cannot undo harm seen), else when every source has been read, or as
`unknown` once GIVE_UP has passed since the gap ended.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from exporter.config import ImpactSettings
from exporter.daemon.monitor import Monitor
from exporter.daemon.snapshot import IMPACT_CONFIRMED_LAST, GapView, labels_of
from exporter.daemon.tracker import view_from_stored
from exporter.engine.flowlogs import FlowLogFormat, S3Location
from exporter.engine.impact import ImpactResult
from exporter.reports.impact import impact_record
from exporter.sources.aws import AwsClients
from exporter.sources.gap_impact import check_gaps, health_for

IMPACT_FAMILY = "rule_gap_impact"
#: After this long without every source read (flow logs still not delivered, AWS failing), a gap's
#: impact stays `unknown` and is counted so; it is still re-checked until IMPACT_HORIZON.
GIVE_UP = timedelta(hours=2)
#: Gaps that ended longer ago are not looked at (a daemon down for longer skips them).
IMPACT_HORIZON = timedelta(hours=6)


def is_final(result: ImpactResult) -> bool:
    """True when no later read can change the result: every configured source read, with data."""
    return not any(m.endswith(("_not_read", "_no_data_yet")) for m in result.missing)


class ImpactChecker:
    """The impact checks of one monitor's closed gaps, through its counted, read-only clients."""

    def __init__(
        self,
        monitor: Monitor,
        clients: AwsClients,
        settings: ImpactSettings,
        warn: Callable[[str], None] = lambda line: None,
    ) -> None:
        self.monitor = monitor
        self.clients = clients
        self.settings = settings
        self.fmt = FlowLogFormat.parse(settings.flow_logs.format)
        uri = settings.flow_logs.s3_uri
        self.flow_log_s3 = None if uri is None else S3Location.parse(uri)
        self.warn = warn

    def due(self, now: datetime) -> list[GapView]:
        """The gaps to check now, oldest end first, at most max_gaps_per_run."""
        monitor, inventory = self.monitor, self.monitor.inventory
        if inventory is None:
            return []
        stored = monitor.store.closed_gaps(monitor.key, (now - IMPACT_HORIZON).timestamp())
        known = monitor.store.gap_impacts(g.key for g in stored)
        out = []
        for gap in stored:
            view = view_from_stored(gap)
            assert view.end is not None
            settle = health_for(inventory.target_groups.get(view.target_group_arn)).settle
            if view.end + settle > now:
                continue
            prior = known.get(view.key)
            if prior is not None and (
                prior.final or now.timestamp() - prior.checked_at < self.settings.recheck_seconds
            ):
                continue
            out.append(view)
            if len(out) >= self.settings.max_gaps_per_run:
                break
        return out

    def run(self, now: datetime) -> list[GapView]:
        """Check the gaps due; returns those whose impact this run counted, with it (to log)."""
        inventory = self.monitor.inventory
        gaps = self.due(now)
        if inventory is None or not gaps:
            return []
        results = check_gaps(
            inventory,
            gaps,
            self.clients,
            flow_log_group=self.settings.flow_logs.log_group,
            fmt=self.fmt,
            now=now,
            warn=self.warn,
            flow_log_s3=self.flow_log_s3,
        )
        store = self.monitor.store
        counted: list[GapView] = []
        with store.transaction() as db:
            for gap in gaps:
                result = results[gap.key]
                assert gap.end is not None
                final = is_final(result) or now - gap.end >= GIVE_UP
                store.set_gap_impact(
                    db, gap.key, self.monitor.key, now.timestamp(), final, impact_record(result)
                )
                if (result.impact != "unknown" or final) and store.count_once(db, "gap_impact", gap.key):
                    labels = labels_of(**gap.identity, flow=gap.flow, impact=result.impact)
                    store.increment(db, IMPACT_FAMILY, labels)
                    if result.impact == "confirmed":
                        flow_labels = labels_of(**gap.identity, flow=gap.flow)
                        store.raise_to(db, IMPACT_CONFIRMED_LAST, flow_labels, now.timestamp())
                    counted.append(replace(gap, impact=result))
        return counted
