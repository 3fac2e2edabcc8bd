"""Every benchmark function runs at a tiny size and returns well-formed numbers.

No timing is asserted here (figures come from `python -m benchmarks`, judged against their
targets there); these tests only keep the benchmarks runnable and their numbers sane.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from benchmarks import __main__ as bench_main
from benchmarks.aws_cost import max_in_window, measure_inventory_cost, measure_lookup_rate, minimum_pages
from benchmarks.common import Figure, describe, fmt, table
from benchmarks.detection import measure_detection
from benchmarks.evaluation import measure_scaling
from benchmarks.impact_cost import measure as measure_impact_cost
from benchmarks.ingest import measure_ingest
from benchmarks.scrape import measure_scrape
from benchmarks.synth_inventory import build_fleet, handful_of_changes
from benchmarks.synth_records import lookup_events_strings, trail_files
from benchmarks.synth_snapshot import build_snapshot
from benchmarks.trail_scan import measure_trail_scan
from benchmarks.web_soak import landing_page_note
from benchmarks.web_soak import measure as measure_soak
from exporter.engine.gaps import analyze
from exporter.engine.records import WATCHED_EVENT_NAMES
from exporter.sources.envelopes import parse_payload


def _rate(value: float) -> bool:
    return math.isfinite(value) and value > 0


def test_synthetic_records_parse_cleanly_and_are_mostly_unwatched_in_trails() -> None:
    strings = lookup_events_strings(200)
    assert len(strings) == 200 and len(set(strings)) == 200
    parsed = [parse_payload(text) for text in strings]
    assert all(len(p.changes) == 1 and not p.rejections for p in parsed)
    names = {p.changes[0].meta.event_name for p in parsed}
    assert names >= {
        "AuthorizeSecurityGroupIngress",
        "RevokeSecurityGroupIngress",
        "ModifyTargetGroupAttributes",
    }
    files = list(trail_files(3, 400, watched_share=0.01))
    assert [len(f) for f in files] == [400, 400, 400]
    watched = sum(1 for f in files for r in f if r["eventName"] in WATCHED_EVENT_NAMES)
    assert 0 < watched < 40


def test_ingest_at_a_tiny_size() -> None:
    result = measure_ingest(60, rounds=1)
    assert result.records == result.changes == 60 and result.rejections == 0
    assert _rate(result.ours_per_second) and _rate(result.baseline_per_second) and _rate(result.ratio)


def test_trail_scan_at_a_tiny_size() -> None:
    result = measure_trail_scan(files=2, records_per_file=150, rounds=1)
    assert result.records == 300
    assert result.changes + result.ignored + result.rejections == result.records
    assert result.changes == result.watched and result.rejections == 0
    assert _rate(result.ours_per_second) and _rate(result.baseline_per_second)


def test_fleet_is_shaped_as_described_and_every_flow_is_admitted_before_the_changes() -> None:
    fleet = build_fleet(100)
    inventory = fleet.inventory
    assert len(inventory.target_groups) == 100 and fleet.targets == 1_000
    assert len(inventory.security_groups) == 40 and fleet.rules == 40 * 60
    assert {lb.mode for lb in inventory.load_balancers.values()} == {"legacy", "sg"}
    settled = analyze(inventory, [])
    assert all(s.fully_admitted for kinds in settled.status.values() for s in kinds.values())
    swept = analyze(inventory, handful_of_changes(fleet))
    assert swept.gaps and all(not gap.is_open for gap in swept.gaps)


def test_evaluation_scaling_at_tiny_sizes() -> None:
    points = measure_scaling((50, 100), rounds=1)
    assert [p.target_groups for p in points] == [50, 100]
    for point in points:
        assert point.seconds >= 0 and math.isfinite(point.per_target_group_ms)
        assert point.targets == 10 * point.target_groups and point.changes == 6


def test_synthetic_snapshot_has_counters_only_where_gaps_were_and_a_few_open_gaps() -> None:
    snapshot = build_snapshot(50)
    assert len(snapshot.target_groups) == 50 and snapshot.ready
    assert 0 < len(snapshot.open_gaps) < 50
    gaps = snapshot.counters["rule_gaps"]
    assert 0 < len(gaps) == len(snapshot.last_gaps) < 50 and all(value > 0 for value in gaps.values())
    assert {dict(labels)["flow"] for labels in snapshot.gap_durations} == {
        "traffic"
    }  # per account, region, flow


@pytest.mark.e2e
def test_scrape_at_a_tiny_size() -> None:
    result = measure_scrape(20, scrapes=2, max_seconds=1)
    assert result.scrapes >= 2 and result.series > 0 and result.text_bytes > 0
    assert result.content_type == "application/openmetrics-text"
    assert _rate(result.ours_median_ms) and _rate(result.baseline_median_ms)
    assert result.ours_peak_rss_mb > 0 and result.baseline_peak_rss_mb > 0


@pytest.mark.e2e
def test_inventory_cost_at_a_tiny_size() -> None:
    cost = measure_inventory_cost(worlds=1)
    assert cost.nlbs >= 1 and cost.target_groups >= 1 and cost.minimum_total > 0
    assert cost.total >= cost.minimum_total  # the minimum is a floor
    assert set(cost.minimum) <= set(cost.requests)


@pytest.mark.e2e
def test_impact_cost_at_a_tiny_size() -> None:
    found = measure_impact_cost(130)  # 520 metric queries: two GetMetricData calls
    assert found["by_operation"] == {"GetMetricData": 2, "FilterLogEvents": 130}
    assert found["requests"] >= found["minimum"] and found["confirmed"] == 130


@pytest.mark.e2e
def test_lookup_rate_at_a_tiny_size() -> None:
    rate = measure_lookup_rate(records=60)
    assert rate.records == 60 and rate.requests >= 6 and rate.pages == rate.requests
    assert 1 <= rate.max_in_one_second <= rate.requests and rate.mean_per_second > 0


@pytest.mark.e2e
def test_detection_at_a_tiny_size() -> None:
    result = measure_detection(trials=1, inventory_seconds=1, evaluate_seconds=1)
    assert len(result.open_latencies) == len(result.close_latencies) == 1
    assert all(_rate(s) for s in (*result.open_latencies, *result.close_latencies))


def test_sliding_window_and_minimum_pages() -> None:
    assert max_in_window([]) == 0
    assert max_in_window([0.0, 0.5, 0.99, 1.0, 1.6]) == 3
    assert max_in_window([0.0, 0.6, 1.2, 1.8]) == 2
    fleet = build_fleet(50)
    minimum = minimum_pages(fleet.inventory, load_balancers_total=30, target_groups_total=60)
    assert minimum["DescribeTargetGroupAttributes"] == minimum["DescribeTargetHealth"] == 50
    assert minimum["DescribeLoadBalancers"] == 1 and minimum["DescribeTags"] == 4  # 25 NLBs + 50 TGs
    assert minimum["DescribeSecurityGroupRules"] == 2  # 20 groups, 1,200 rules


def test_figures_table_and_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fake(quick: bool) -> list[Figure]:
        return [
            Figure("a", "A figure", 12.5, "ms", "< 100 ms", True, 10.0, "ref", 1.25, ("a note",)),
            Figure("b", "B figure", 1500.0, "rec/s", "ratio >= 1", False, 3000.0, "ref", 0.5),
        ]

    def broken(quick: bool) -> list[Figure]:
        raise RuntimeError("no server")

    monkeypatch.setattr(bench_main, "BENCHMARKS", {"fake": fake, "broken": broken})
    out = tmp_path / "figures.json"
    assert bench_main.main(["--quick", "--json", str(out)]) == 1  # one benchmark could not run
    printed = capsys.readouterr().out
    assert "PASS" in printed and "MISS" in printed and "broken (did not run)" in printed
    assert "a note" in printed
    data = json.loads(out.read_text())
    assert [d["verdict"] for d in data] == ["PASS", "MISS", "MISS"]
    assert fmt(1234.5, "ms") == "1,234 ms" and fmt(2.0, "req") == "2 req" and fmt(0.0123, "s") == "0.0123 s"
    assert "1.25x" in table([fake(True)[0]]) and "ref" in describe(fake(True)[0])


def test_web_soak_at_a_tiny_size() -> None:
    result = measure_soak(200, seconds=2.0, publish_every=1.0)
    assert result.baseline and result.soaked and all(math.isfinite(v) and v > 0 for v in result.soaked)
    assert any(key.startswith("/") and key.endswith(" 200") for key in result.load), result.load
    assert result.server["landing_renders"] >= 1 and result.server["json_renders"] >= 1
    assert result.server["landing_query_renders"] >= 1


def test_the_landing_page_note_measures_both_pages() -> None:
    note = landing_page_note(150)
    assert re.fullmatch(
        r"landing page at 150 TGs \(.*\): / 0\.\d\d MB in \d+ ms of CPU; /\?q=team1&page=2 0\.\d\d MB in \d+ ms of CPU",
        note,
    ), note
