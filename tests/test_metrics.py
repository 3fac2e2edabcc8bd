"""The /metrics contract: families declared once in SPECS, rendered from a snapshot, promtool-clean."""

from __future__ import annotations

import dataclasses
import logging
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from exporter.daemon.snapshot import Snapshot, labels_of
from exporter.engine.flows import REASONS
from exporter.metrics import (
    COUNTER_SOURCES,
    SPECS,
    SPECS_BY_NAME,
    SnapshotCollector,
    build_registry,
    render_markdown,
)
from tests.snapshot_samples import (
    ACCOUNT,
    CHECKOUT_TG,
    OPEN_FOR,
    PAYMENTS_TG,
    REGION,
    sample_snapshot,
)

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


def exposition(snapshot: Snapshot) -> str:
    return generate_latest(build_registry(lambda: snapshot)).decode()


def declared_types(text: str) -> dict[str, str]:
    """`# TYPE name type` lines: the exact family names exposed."""
    return {name: kind for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE)}


def samples(text: str) -> list[Sample]:
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def series(text: str, name: str) -> list[Sample]:
    return [s for s in samples(text) if s.name == name]


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: run scripts/install-tools.sh (Debian package prometheus)")
    return path


def promtool_check(text: str) -> str:
    """`promtool check metrics` output (it prints lint problems; a clean exposition prints nothing)."""
    done = subprocess.run(
        [promtool(), "check", "metrics"], input=text.encode(), capture_output=True, timeout=60, check=False
    )
    output = (done.stdout + done.stderr).decode()
    assert done.returncode == 0, output
    return output


# -- the specs themselves ---------------------------------------------------------------------


def test_specs_follow_the_naming_conventions() -> None:
    assert len(SPECS) == len(SPECS_BY_NAME), "a family is declared twice"
    for spec in SPECS:
        assert spec.name.startswith("sgchurn_"), spec.name
        assert re.fullmatch(r"[a-z][a-z0-9_]*", spec.name), spec.name
        assert spec.help.strip(), f"{spec.name} has no HELP"
        assert spec.stability in ("stable", "experimental")
        assert len(set(spec.labels)) == len(spec.labels), spec.name
        assert all(re.fullmatch(r"[a-z][a-z0-9_]*", label) for label in spec.labels), spec.name
        assert "le" not in spec.labels and "quantile" not in spec.labels
        assert spec.name.endswith("_total") == (spec.type == "counter"), spec.name
        assert spec.name.endswith("_info") == (spec.type == "info"), spec.name
        for unit in ("_ms", "_milliseconds", "_minutes", "_hours", "_percent"):
            assert unit not in spec.name, f"{spec.name}: use base units"
    assert set(COUNTER_SOURCES.values()) <= {s.name for s in SPECS if s.type == "counter"}


def test_docs_metrics_md_is_the_generator_output() -> None:
    committed = (ROOT / "docs" / "metrics.md").read_text()
    assert committed == render_markdown(), (
        "docs/metrics.md is stale: python -m exporter.metrics > docs/metrics.md"
    )
    printed = subprocess.run(
        [sys.executable, "-m", "exporter.metrics"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    assert printed.stdout == committed
    for spec in SPECS:
        assert f"`{spec.name}`" in committed


# -- the exposition of the rich sample --------------------------------------------------------


def test_every_spec_family_and_nothing_else_is_exposed() -> None:
    text = exposition(sample_snapshot(NOW))
    expected = {spec.name: ("gauge" if spec.type == "info" else spec.type) for spec in SPECS}
    assert declared_types(text) == expected
    helps = set(re.findall(r"^# HELP (\S+) ", text, re.MULTILINE))
    assert helps == set(expected)
    allowed = set()
    for spec in SPECS:
        if spec.type == "histogram":
            allowed |= {f"{spec.name}_bucket", f"{spec.name}_count", f"{spec.name}_sum"}
        else:
            allowed.add(spec.name)
    assert {s.name for s in samples(text)} <= allowed


def test_the_rich_sample_gives_every_family_series_with_their_spec_labels() -> None:
    text = exposition(sample_snapshot(NOW))
    for spec in SPECS:
        names = (
            {f"{spec.name}_bucket", f"{spec.name}_count", f"{spec.name}_sum"}
            if spec.type == "histogram"
            else {spec.name}
        )
        found = [s for s in samples(text) if s.name in names]
        assert found, f"{spec.name} has no series in the rich sample"
        for sample in found:
            extra = {"le"} if sample.name.endswith("_bucket") else set()
            assert set(sample.labels) == set(spec.labels) | extra, (spec.name, sample.labels)


def test_promtool_check_metrics_is_clean_on_the_rich_sample_and_an_empty_snapshot() -> None:
    assert promtool_check(exposition(sample_snapshot(NOW))) == ""
    assert promtool_check(exposition(Snapshot(generated_at=NOW))) == ""


ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
EPOCH = re.compile(r"^1\d{9}(\.\d+)?$")


def test_label_values_are_bounded() -> None:
    snapshot = sample_snapshot(NOW)
    text = exposition(snapshot)
    gap_keys = {g.key for g in (*snapshot.open_gaps, *snapshot.recent_gaps, *snapshot.last_gaps)}
    for key in gap_keys:
        assert key not in text
    for sample in samples(text):
        for label, value in sample.labels.items():
            assert "arn:" not in value, (sample.name, label, value)
            assert not ISO_TIME.search(value), (sample.name, label, value)
            assert not EPOCH.match(value), (sample.name, label, value)
    target_groups = {s.labels["target_group"] for s in samples(text) if "target_group" in s.labels}
    assert target_groups == {CHECKOUT_TG, PAYMENTS_TG}
    (info_checkout,) = [
        s for s in series(text, "sgchurn_target_group_info") if s.labels["target_group"] == CHECKOUT_TG
    ]
    assert info_checkout.labels["load_balancer"] == "k8s-shop-checkout"  # the name, not the ARN


def test_every_unadmitted_reason_is_exported_with_zero_when_none() -> None:
    text = exposition(sample_snapshot(NOW))
    unadmitted = series(text, "sgchurn_target_group_unadmitted_targets")
    assert len(unadmitted) == 2 * 2 * len(REASONS)  # target groups x flows x reasons
    values = {(s.labels["target_group"], s.labels["flow"], s.labels["reason"]): s.value for s in unadmitted}
    assert values[(CHECKOUT_TG, "traffic", "source_not_covered")] == 3
    assert values[(CHECKOUT_TG, "traffic", "no_rule_for_port")] == 0
    assert all(v == 0 for (tg, _, _), v in values.items() if tg == PAYMENTS_TG)
    ratios = {
        (s.labels["target_group"], s.labels["flow"]): s.value
        for s in series(text, "sgchurn_target_group_reachability_ratio")
    }
    assert ratios[(CHECKOUT_TG, "traffic")] == 0.0
    assert ratios[(CHECKOUT_TG, "health_check")] == 1.0


def test_open_gaps_show_as_open_with_their_start_and_the_rest_as_zero() -> None:
    text = exposition(sample_snapshot(NOW))
    opened = {
        (s.labels["target_group"], s.labels["flow"]): s.value for s in series(text, "sgchurn_rule_gap_open")
    }
    assert opened == {
        (CHECKOUT_TG, "traffic"): 1,
        (CHECKOUT_TG, "health_check"): 0,
        (PAYMENTS_TG, "traffic"): 0,
        (PAYMENTS_TG, "health_check"): 0,
    }
    (since,) = series(text, "sgchurn_rule_gap_open_since_timestamp_seconds")
    assert since.labels["target_group"] == CHECKOUT_TG and since.labels["flow"] == "traffic"
    assert since.value == (NOW - OPEN_FOR).timestamp()


def test_a_gap_of_a_target_group_no_longer_listed_is_still_open() -> None:
    snapshot = sample_snapshot(NOW)
    snapshot = dataclasses.replace(snapshot, target_groups=snapshot.target_groups[1:])
    text = exposition(snapshot)
    opened = [s for s in series(text, "sgchurn_rule_gap_open") if s.labels["target_group"] == CHECKOUT_TG]
    assert [(s.labels["flow"], s.value) for s in opened] == [("traffic", 1)]


def test_closed_gaps_feed_the_counter_histogram_and_last_gap_families() -> None:
    text = exposition(sample_snapshot(NOW))
    totals = {
        (s.labels["target_group"], s.labels["flow"], s.labels["cause"]): s.value
        for s in series(text, "sgchurn_rule_gaps_total")
    }
    assert totals == {
        (CHECKOUT_TG, "health_check", "revoke_before_authorize"): 1,
        (PAYMENTS_TG, "traffic", "revoke_without_restore"): 1,
    }
    buckets = {
        s.labels["le"]: s.value
        for s in series(text, "sgchurn_rule_gap_duration_seconds_bucket")
        if s.labels["target_group"] == CHECKOUT_TG
    }
    assert list(buckets)[-1] == "+Inf"
    assert buckets["30.0"] == 0 and buckets["60.0"] == 1 and buckets["+Inf"] == 1
    last = {s.labels["target_group"]: s.value for s in series(text, "sgchurn_rule_gap_last_duration_seconds")}
    assert last == {CHECKOUT_TG: 60.0, PAYMENTS_TG: 45.0}
    actors = {s.labels["target_group"]: s.labels["actor"] for s in series(text, "sgchurn_rule_gap_last_info")}
    assert actors == {CHECKOUT_TG: "aws-load-balancer-controller", PAYMENTS_TG: "unknown"}


def test_exporter_self_metrics() -> None:
    text = exposition(sample_snapshot(NOW, ready=True))
    up = {s.labels["source"]: s.value for s in series(text, "sgchurn_up")}
    assert up == {"inventory": 1, "cloudtrail": 1, "sqs": 0}
    assert [s.value for s in series(text, "sgchurn_ready")] == [1]
    assert [s.value for s in series(text, "sgchurn_snapshot_timestamp_seconds")] == [
        (NOW - timedelta(seconds=4)).timestamp()
    ]
    assert [s.labels for s in series(text, "sgchurn_shard_info")] == [{"shard": "0", "total_shards": "1"}]
    assert [s.labels for s in series(text, "sgchurn_shard_owned_targets")] == [
        {"aws_account_id": ACCOUNT, "aws_region": REGION}
    ]
    counts = {s.labels["job"]: s.value for s in series(text, "sgchurn_job_duration_seconds_count")}
    assert counts == {"inventory": 4, "cloudtrail": 3, "evaluate": 0}
    assert {s.labels["job"] for s in series(text, "sgchurn_job_last_success_timestamp_seconds")} == {
        "inventory",
        "cloudtrail",
    }


# -- behaviour of the collector ---------------------------------------------------------------


def test_absent_counters_yield_empty_families_with_help_and_type() -> None:
    text = exposition(Snapshot(generated_at=NOW))
    assert set(declared_types(text)) == {spec.name for spec in SPECS}
    for source, name in COUNTER_SOURCES.items():
        assert f"# HELP {name} " in text, source
        assert series(text, name) == []


def test_a_snapshot_swap_changes_the_output() -> None:
    holder = [sample_snapshot(NOW)]
    registry = build_registry(lambda: holder[0])
    before = generate_latest(registry).decode()
    holder[0] = dataclasses.replace(sample_snapshot(NOW + timedelta(minutes=5), ready=True), open_gaps=())
    after = generate_latest(registry).decode()
    assert before != after
    assert [s.value for s in series(before, "sgchurn_ready")] == [0]
    assert [s.value for s in series(after, "sgchurn_ready")] == [1]
    assert series(after, "sgchurn_rule_gap_open_since_timestamp_seconds") == []
    assert all(s.value == 0 for s in series(after, "sgchurn_rule_gap_open"))


def test_registering_does_not_read_a_snapshot_and_each_scrape_reads_one() -> None:
    calls: list[int] = []

    def get() -> Snapshot:
        calls.append(1)
        return sample_snapshot(NOW)

    registry = build_registry(get)
    assert calls == []
    generate_latest(registry)
    assert len(calls) == 1
    assert {m.name for m in SnapshotCollector(get).describe()} == {spec.base_name for spec in SPECS}


def test_series_with_unexpected_label_names_are_dropped_and_warned_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    snapshot = dataclasses.replace(
        Snapshot(generated_at=NOW),
        counters={
            "cloudtrail_events": {
                labels_of(event_name="RevokeSecurityGroupIngress"): 2,
                labels_of(event_name="AuthorizeSecurityGroupIngress", region="x"): 1,
            }
        },
    )
    registry = build_registry(lambda: snapshot)
    with caplog.at_level(logging.WARNING, logger="exporter.metrics"):
        text = generate_latest(registry).decode()
        generate_latest(registry)
    assert [s.labels for s in series(text, "sgchurn_cloudtrail_events_total")] == [
        {"event_name": "RevokeSecurityGroupIngress"}
    ]
    warnings = [r for r in caplog.records if "unexpected labels" in r.getMessage()]
    assert len(warnings) == 1
    assert promtool_check(text) == ""


def test_the_openmetrics_exposition_parses_with_the_same_families() -> None:
    registry = build_registry(lambda: sample_snapshot(NOW))
    text = generate_openmetrics(registry).decode()
    assert text.rstrip().endswith("# EOF")
    families = {f.name: f.type for f in parse_openmetrics(text)}
    assert families == {spec.base_name: spec.type for spec in SPECS}


def _names(samples_: Iterable[Sample]) -> set[str]:
    return {s.name for s in samples_}


def test_info_families_carry_value_one() -> None:
    text = exposition(sample_snapshot(NOW))
    info = [s for s in samples(text) if s.name.endswith("_info")]
    assert _names(info) == {s.name for s in SPECS if s.type == "info"}
    assert all(s.value == 1 for s in info)
