"""Where a gap's impact is shown: `explain --impact` (moto over HTTP), the landing page, the target
group's page and /api/snapshot.json."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from exporter.cli import main
from exporter.engine.impact import ImpactResult
from exporter.web_json import snapshot_to_json
from exporter.web_page import render_landing, render_target_group
from tests.awsworld import MotoServer
from tests.snapshot_samples import CHECKOUT_TG, sample_snapshot
from tests.test_replay_impact import GROUP, files, seed_flow_logs, seed_metrics

NOW = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)
__all__ = ["files"]  # the fixture, used by name


def explain(
    capsys: pytest.CaptureFixture[str], files: tuple[Path, Path], *extra: str
) -> tuple[int, str, str]:
    inventory, trail = files
    code = main(
        ["explain", "k8s-shop-web-abc", "--inventory", str(inventory), *extra, "--events", str(trail)]
    )
    out, err = capsys.readouterr()
    return code, out, err


def test_explain_shows_each_gaps_impact_only_when_asked(
    clean_moto: MotoServer, files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    seed_metrics(clean_moto, unhealthy_at_1201=2)
    seed_flow_logs(clean_moto, rejects=3)
    code, out, _ = explain(capsys, files)
    reads = {"GetMetricData", "FilterLogEvents"}
    assert code == 0 and "impact" not in out
    assert not [r for r in clean_moto.requests() if r["operation"] in reads]
    code, out, err = explain(capsys, files, "--impact", "--flow-log-group", GROUP)
    assert code == 0, err
    gap_lines = [line for line in out.splitlines() if "revoke_before_authorize" in line]
    assert len(gap_lines) == 2
    for line in gap_lines:
        assert line.endswith(
            "; impact confirmed: peak 2 unhealthy hosts, 3 rejected flows, 50 new flows (50 before)"
        ), line
    assert "flow-log lines rejected for k8s-shop-web-abc: field_count=1" in err
    code, out, _ = explain(capsys, files, "--impact", "--flow-log-group", GROUP, "--format", "json")
    gaps = json.loads(out)["target_groups"][0]["gaps"]
    assert [(g["impact"], g["peak_unhealthy_hosts"], g["rejected_flows"]) for g in gaps] == [
        ("confirmed", 2, 3)
    ] * 2


def test_explain_bad_impact_option_exits_2_naming_it(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = explain(capsys, files, "--flow-log-group", GROUP)
    assert code == 2 and "--flow-log-group/--flow-log-s3-uri/--flow-log-format: only with --impact" in err


def test_pages_and_api_show_a_checked_gaps_impact() -> None:
    snapshot = sample_snapshot(NOW)
    expected = "impact confirmed: peak 2 unhealthy hosts, 3 rejected flows, 40 new flows (310 before)"
    landing = render_landing(snapshot, NOW)
    assert f'<span class="impact confirmed">{expected}</span>' in landing
    page = render_target_group(snapshot, CHECKOUT_TG, NOW)
    assert page is not None and f'<span class="impact confirmed">{expected}</span>' in page
    gaps = {g["flow"]: g for g in snapshot_to_json(snapshot)["recent_gaps"]}
    checked = gaps["health_check"]["impact"]
    assert (checked["impact"], checked["rejected_flows"], checked["impact_reasons"]) == (
        "confirmed",
        3,
        ["unhealthy_hosts_rose", "flows_rejected"],
    )
    assert gaps["traffic"]["impact"] is None  # not checked: no impact claimed


def test_an_unknown_impact_names_what_is_missing() -> None:
    snapshot = sample_snapshot(NOW)
    unknown = ImpactResult("unknown", ("flow_logs_not_configured", "metrics_no_data_yet"))
    recent = tuple(replace(g, impact=unknown) for g in snapshot.recent_gaps)
    landing = render_landing(replace(snapshot, recent_gaps=recent), NOW)
    assert (
        '<span class="impact unknown">impact unknown: flow_logs_not_configured, metrics_no_data_yet</span>'
        in landing
    )
