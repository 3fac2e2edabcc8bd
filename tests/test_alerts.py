"""The alert rules: promtool accepts them and their unit tests pass, every alert is documented.

promtool is a real dependency (scripts/install-tools.sh installs it): a missing binary fails these
tests, it does not skip them.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "alerts" / "sgchurn.rules.yml"
UNIT_TESTS = sorted((ROOT / "alerts" / "tests").glob("*.yml"))
RUNBOOKS = ROOT / "docs" / "runbooks.md"
RUNBOOK_BASE = "https://github.com/sg-churn-exporter/sg-churn-exporter/blob/main/docs/runbooks.md"
SEVERITIES = {"page", "warning", "info"}


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: run `make tools` (scripts/install-tools.sh)")
    return path


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _alerts() -> list[dict[str, Any]]:
    return [rule for rule in _rules() if "alert" in rule]


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _runbook_anchors() -> set[str]:
    anchors: set[str] = set()
    for line in RUNBOOKS.read_text(encoding="utf-8").splitlines():
        m = re.match(r"#{1,6} (.+)", line)
        if m:
            anchors.add(github_anchor(m.group(1)))
    return anchors


def _load_renderer() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "render_prometheusrule", ROOT / "alerts" / "render_prometheusrule.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_promtool_check_rules() -> None:
    result = subprocess.run(
        [_promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    assert len(UNIT_TESTS) >= 4
    result = subprocess.run(
        [_promtool(), "test", "rules", *map(str, UNIT_TESTS)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT / "alerts" / "tests",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(UNIT_TESTS), result.stdout


def test_every_alert_is_tested_firing_and_silent() -> None:
    fired: set[str] = set()
    silent: set[str] = set()
    for path in UNIT_TESTS:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert doc["rule_files"] == ["../sgchurn.rules.yml"], path
        for test in doc["tests"]:
            for case in test.get("alert_rule_test", []):
                (fired if case.get("exp_alerts") else silent).add(case["alertname"])
    names = {rule["alert"] for rule in _alerts()}
    assert names - fired == set(), "never seen firing in alerts/tests"
    assert names - silent == set(), "never seen staying silent in alerts/tests"


def test_every_alert_has_severity_summary_description_and_runbook() -> None:
    anchors = _runbook_anchors()
    alerts = _alerts()
    assert len({rule["alert"] for rule in alerts}) >= 13
    for rule in alerts:
        name = rule["alert"]
        assert rule.get("labels", {}).get("severity") in SEVERITIES, name
        annotations = rule.get("annotations", {})
        for key in ("summary", "description", "runbook_url"):
            assert str(annotations.get(key, "")).strip(), f"{name}: no {key}"
        base, _, anchor = annotations["runbook_url"].partition("#")
        assert base == RUNBOOK_BASE, name
        assert anchor == name.lower(), f"{name}: runbook anchor {anchor!r}"
        assert anchor in anchors, f"{name}: docs/runbooks.md has no section #{anchor}"


def test_page_alerts_are_the_outage_ones() -> None:
    """Outages now, and a gap confirmed to have hurt traffic (issue 17: a page-worthy postmortem
    item even when it closed before anyone looked)."""
    pages = {rule["alert"] for rule in _alerts() if rule["labels"]["severity"] == "page"}
    assert pages == {"SGChurnTargetGroupUnreachable", "SGChurnRuleGapOpen", "SGChurnRuleGapImpactConfirmed"}
    closed = next(rule for rule in _alerts() if rule["alert"] == "SGChurnRuleGapClosedRecently")
    assert "for" not in closed, "even a short gap is an outage: no `for`"


def test_runbooks_have_one_section_per_alert_and_links_resolve() -> None:
    text = RUNBOOKS.read_text(encoding="utf-8")
    sections = set(re.findall(r"^## (SGChurn\w+)$", text, flags=re.MULTILINE))
    assert sections == {rule["alert"] for rule in _alerts()}
    anchors = _runbook_anchors()
    for link in re.findall(r"\]\(#([^)]+)\)", text):
        assert link in anchors, f"docs/runbooks.md links to missing #{link}"


def test_recording_rules_are_used() -> None:
    records = [rule["record"] for rule in _rules() if "record" in rule]
    exprs = " ".join(rule["expr"] for rule in _alerts())
    for record in records:
        assert record in exprs, f"recording rule {record} is not used by any alert"


def test_rendered_prometheusrule_wraps_the_same_groups(tmp_path: Path) -> None:
    renderer = _load_renderer()
    out = tmp_path / "prometheusrule.yaml"
    assert renderer.main(["--namespace", "monitoring", "--label", "release=kps", "--output", str(out)]) == 0
    manifest = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert manifest["apiVersion"] == "monitoring.coreos.com/v1"
    assert manifest["kind"] == "PrometheusRule"
    assert manifest["metadata"]["namespace"] == "monitoring"
    assert manifest["metadata"]["labels"]["release"] == "kps"
    source = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    assert manifest["spec"]["groups"] == source["groups"]
    # and what it wraps is still a valid rule file
    rules_copy = tmp_path / "copy.rules.yml"
    rules_copy.write_text(yaml.safe_dump({"groups": manifest["spec"]["groups"]}), encoding="utf-8")
    result = subprocess.run(
        [_promtool(), "check", "rules", str(rules_copy)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_rendered_prometheusrule_rebases_runbook_urls() -> None:
    renderer = _load_renderer()
    text = renderer.render([RULES], runbook_base_url="https://wiki.example.com/sgchurn")
    manifest = yaml.safe_load(text)
    urls = [
        rule["annotations"]["runbook_url"]
        for group in manifest["spec"]["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]
    assert urls
    for url in urls:
        assert re.fullmatch(r"https://wiki\.example\.com/sgchurn#sgchurn\w+", url), url


def test_renderer_cli_runs_standalone() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "alerts" / "render_prometheusrule.py")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["kind"] == "PrometheusRule"


def test_job_failing_names_every_job_and_where_its_interval_is_set() -> None:
    """The runbook names every `task` value the job families carry, and for each one the setting
    that sets its interval (a setting of the config schema)."""
    from exporter.config import Settings
    from exporter.daemon.service import JOBS

    section = RUNBOOKS.read_text(encoding="utf-8").split("## SGChurnJobFailing", 1)[1].split("\n## ", 1)[0]
    listed = section.split("(`task` label:", 1)[1].split(")", 1)[0]
    assert re.findall(r"`(\w+)`", listed) == list(JOBS), listed
    defaults = Settings()
    for job in JOBS:
        [setting] = re.findall(rf"`((?:intervals\.{job}|{job}\.interval_seconds))`", section) or [""]
        assert setting, f"SGChurnJobFailing: no interval setting named for the {job} job"
        owner, name = setting.split(".")
        assert hasattr(getattr(defaults, owner), name), setting


def test_the_alert_unit_tests_feed_tasks_the_exporter_has() -> None:
    """promtool's input series carry `task` values the exporter exports (daemon JOBS), so an
    alert is proven on what it will see: there is no `sqs` job (the cloudtrail job reads SQS)."""
    from exporter.daemon.service import JOBS

    tasks = {
        t for path in UNIT_TESTS for t in re.findall(r'task[=:] ?"(\w+)"', path.read_text(encoding="utf-8"))
    }
    assert tasks and tasks <= set(JOBS), tasks - set(JOBS)


def test_the_runbooks_grep_the_exporters_logs_for_events_it_logs() -> None:
    """A `grep '...'` over the exporter's logs looks for an event the exporter writes."""
    lines = [
        line for line in RUNBOOKS.read_text(encoding="utf-8").splitlines() if "sg-churn-exporter" in line
    ]
    wanted = [m for line in lines if " logs " in line for m in re.findall(r"grep '([^']+)'", line)]
    assert wanted, "the runbooks grep no exporter log"
    code = "\n".join(path.read_text(encoding="utf-8") for path in (ROOT / "exporter").rglob("*.py"))
    for event in wanted:
        assert re.search(rf"log\.\w+\(\s*\"{re.escape(event)}\"", code), f"no log event {event!r}"


def test_source_down_names_the_sources_exactly_as_sgchurn_up_does() -> None:
    """The runbook and the alert's description name every `source` value sgchurn_up can carry."""
    from exporter.daemon import service
    from exporter.sources.cloudtrail import LookupEventsPoller
    from exporter.sources.eventbridge import SqsConsumer

    code = Path(service.__file__).read_text(encoding="utf-8")
    exported = set(re.findall(r'self\._health\("(\w+)"', code)) | {service.STATE_KEY[0]}
    exported |= {LookupEventsPoller.name, SqsConsumer.name}
    assert exported >= {"inventory", "kubernetes", "state", "lookup_events", "sqs"}
    section = RUNBOOKS.read_text(encoding="utf-8").split("## SGChurnSourceDown", 1)[1].split("\n## ", 1)[0]
    listed = section.split("names it exactly as `sgchurn_up` does:", 1)[1].split("\n\n", 1)[0]
    assert set(re.findall(r"`(\w+)`", listed)) == exported
    (rule,) = [r for r in _alerts() if r["alert"] == "SGChurnSourceDown"]
    words = set(re.findall(r"[a-z_]+", rule["annotations"]["description"]))
    assert exported <= words, exported - words
