"""Alerts and dashboards use only metric families and labels the exporter declares (exporter.metrics.SPECS)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from exporter.metrics import SPECS
from tests.promstack import dashboard_expressions

ROOT = Path(__file__).resolve().parent.parent
METRIC = re.compile(r"(?<![:\w])(sgchurn_[a-z_]+)\b")
SELECTOR = re.compile(r"(?<![:\w])(sgchurn_[a-z_]+)\{([^}]*)\}")
TARGET_LABELS = {"instance", "job"}  # added by Prometheus


def _expressions() -> list[tuple[str, str]]:
    exprs = [
        (f"{q.dashboard} {q.where}", q.expr)
        for q in dashboard_expressions(sorted((ROOT / "dashboards").glob("*.json")))
    ]
    doc = yaml.safe_load((ROOT / "alerts" / "sgchurn.rules.yml").read_text(encoding="utf-8"))
    for group in doc["groups"]:
        for rule in group["rules"]:
            exprs.append((rule.get("alert") or rule["record"], rule["expr"]))
    return exprs


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
