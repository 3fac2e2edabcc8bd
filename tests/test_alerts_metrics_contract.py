"""Alerts, dashboards and the runbooks' PromQL use only metric families and labels the exporter
declares (exporter.metrics.SPECS), and recording rules that exist."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from exporter.metrics import COUNTER_SOURCES, SPECS
from tests.promstack import dashboard_expressions

ROOT = Path(__file__).resolve().parent.parent
METRIC = re.compile(r"(?<![:\w])(sgchurn_[a-z_]+)\b")
SELECTOR = re.compile(r"(?<![:\w])(sgchurn_[a-z_]+)\{([^}]*)\}")
TARGET_LABELS = {"instance", "job"}  # added by Prometheus
RUNBOOKS = ROOT / "docs" / "runbooks.md"
RECORDED = re.compile(r"\b([a-z_]+:[a-z_]+:[a-z0-9_]+)\b")


def _runbook_expressions() -> list[tuple[str, str]]:
    """Every PromQL line of docs/runbooks.md (```promql blocks, comments cut) and every inline
    code span naming a family or a recording rule, with the section it is in."""
    exprs: list[tuple[str, str]] = []
    for section in RUNBOOKS.read_text(encoding="utf-8").split("\n## ")[1:]:
        title = "docs/runbooks.md " + section.splitlines()[0]
        for block in re.findall(r"```promql\n(.*?)```", section, flags=re.DOTALL):
            exprs += [(title, line.split("   #")[0]) for line in block.splitlines() if line.strip()]
        exprs += [(title, span) for span in re.findall(r"`([^`\n]*sgchurn_[^`\n]*)`", section)]
    return exprs


def _expressions() -> list[tuple[str, str]]:
    exprs = [
        (f"{q.dashboard} {q.where}", q.expr)
        for q in dashboard_expressions(sorted((ROOT / "dashboards").glob("*.json")))
    ]
    doc = yaml.safe_load((ROOT / "alerts" / "sgchurn.rules.yml").read_text(encoding="utf-8"))
    for group in doc["groups"]:
        for rule in group["rules"]:
            exprs.append((rule.get("alert") or rule["record"], rule["expr"]))
    return exprs + _runbook_expressions()


def _series_labels() -> dict[str, set[str]]:
    """Exposed series name -> its label names."""
    exposed: dict[str, set[str]] = {}
    for spec in SPECS:
        if spec.type == "histogram":
            exposed[spec.name + "_bucket"] = {*spec.labels, "le"}
            exposed[spec.name + "_count"] = set(spec.labels)
            exposed[spec.name + "_sum"] = set(spec.labels)
        else:
            exposed[spec.name] = set(spec.labels)
    return exposed


def test_every_metric_used_is_exposed() -> None:
    exposed = _series_labels()
    for where, expr in _expressions():
        for name in METRIC.findall(expr):
            assert name in exposed, f"{where}: {name} is not in exporter.metrics.SPECS"


def test_every_matcher_label_exists_on_its_metric() -> None:
    exposed = _series_labels()
    for where, expr in _expressions():
        for name, body in SELECTOR.findall(expr):
            for label in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", body):
                assert label in exposed[name] | TARGET_LABELS, f"{where}: {name} has no label {label}"


def test_the_families_alerts_depend_on_are_stable() -> None:
    stability = {spec.name: spec.stability for spec in SPECS}
    doc = yaml.safe_load((ROOT / "alerts" / "sgchurn.rules.yml").read_text(encoding="utf-8"))
    page_exprs = " ".join(
        rule["expr"]
        for group in doc["groups"]
        for rule in group["rules"]
        if rule.get("labels", {}).get("severity") == "page"
    )
    for name in set(METRIC.findall(page_exprs)):
        assert stability[name] == "stable", f"a page alert depends on experimental {name}"


def test_the_runbooks_name_recording_rules_that_exist() -> None:
    doc = yaml.safe_load((ROOT / "alerts" / "sgchurn.rules.yml").read_text(encoding="utf-8"))
    recorded = {rule["record"] for group in doc["groups"] for rule in group["rules"] if "record" in rule}
    used = [(where, name) for where, expr in _runbook_expressions() for name in RECORDED.findall(expr)]
    assert used, "the runbooks name no recording rule"
    assert [(where, name) for where, name in used if name not in recorded] == []


#: Counters of events an alert is about, where one increment is the news: their series appear
#: with their first event (docs/metrics.md#changelog), and increase()/rate() cannot see a series'
#: first value, so a runbook query built on them shows nothing for the very event that paged.
#: (The CloudTrail record counters are left out: thousands of increments, the first one is noise;
#: and so are the state file's unreadable rows: no alert is about them.)
EVENT_COUNTERS = set(COUNTER_SOURCES.values()) - {
    "sgchurn_cloudtrail_events_total",
    "sgchurn_cloudtrail_records_rejected_total",
    "sgchurn_state_rows_rejected_total",
}


def test_the_runbooks_count_events_with_queries_that_see_a_series_first_one() -> None:
    assert len(EVENT_COUNTERS) == 5
    misses = [
        (where, expr)
        for where, expr in _runbook_expressions()
        for name in re.findall(r"\b(?:increase|rate|irate|delta|resets|changes)\(\s*(sgchurn_\w+)", expr)
        if name in EVENT_COUNTERS
    ]
    assert misses == [], "use the raw counter or the *:increase15m recording rules instead"
