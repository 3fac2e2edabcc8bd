"""The /metrics contract: families declared once in SPECS, rendered from a snapshot, promtool-clean."""

from __future__ import annotations

import dataclasses
import gzip
import logging
import math
import re
import shutil
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from benchmarks.synth_snapshot import build_snapshot
from exporter.daemon.snapshot import (
    HistogramState,
    JobStats,
    Snapshot,
    TargetGroupView,
    labels_of,
    merge_histograms,
)
from exporter.engine.flows import FLOW_KINDS, REASONS, FlowKind, FlowStatus
from exporter.metrics import (
    COUNTER_SOURCES,
    GROUPS,
    SPECS,
    SPECS_BY_NAME,
    Exposition,
    ExpositionCache,
    SnapshotCollector,
    build_registry,
    render_exposition,
    render_markdown,
)
from exporter.metrics.samples import open_gaps_by_key
from tests.snapshot_samples import (
    ACCOUNT,
    CHECKOUT_TG,
    OPEN_FOR,
    PAYMENTS_TG,
    REGION,
    TRIGGER_WHO,
    fleet_labels,
    gap,
    histogram,
    hostile_snapshot,
    identity_labels,
    lb_arn,
    sample_snapshot,
    tg_arn,
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


def test_every_family_is_declared_by_the_family_group_that_yields_it() -> None:
    """samples.GROUPS is the one source of samples: every spec family belongs to a group (only
    sgchurn_rule_gap_open to two: target groups, then open gaps of unlisted ones), and a group
    yields samples of its own families only (the writer refuses any other: RuntimeError)."""
    declared = [name for group in GROUPS for name in group.families]
    assert set(declared) == set(SPECS_BY_NAME)
    assert sorted(name for name in set(declared) if declared.count(name) > 1) == ["sgchurn_rule_gap_open"]
    snapshot = sample_snapshot(NOW)
    open_gaps = open_gaps_by_key(snapshot)
    yielded = {group.name: {name for name, _, _ in group.samples(snapshot, open_gaps)} for group in GROUPS}
    for group in GROUPS:
        assert yielded[group.name] <= set(group.families), group.name
    assert set().union(*yielded.values()) == set(SPECS_BY_NAME)  # the rich sample has them all


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


def test_unadmitted_targets_are_exported_only_for_reasons_some_target_has() -> None:
    text = exposition(sample_snapshot(NOW))
    unadmitted = series(text, "sgchurn_target_group_unadmitted_targets")
    values = {(s.labels["target_group"], s.labels["flow"], s.labels["reason"]): s.value for s in unadmitted}
    # The checkout group's 3 targets do not admit traffic: one series; no zero for the other
    # reasons, flows or target groups (dashboards and runbooks select `> 0`).
    assert values == {(CHECKOUT_TG, "traffic", "source_not_covered"): 3}
    assert set(REASONS) >= {reason for _, _, reason in values}
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
        if s.labels["flow"]
        == "health_check"  # the checkout gap's flow: one histogram per account, region, flow
    }
    assert list(buckets)[-1] == "+Inf"
    assert buckets["30.0"] == 0 and buckets["60.0"] == 1 and buckets["+Inf"] == 1
    last = {s.labels["target_group"]: s.value for s in series(text, "sgchurn_rule_gap_last_duration_seconds")}
    assert last == {CHECKOUT_TG: 60.0, PAYMENTS_TG: 45.0}
    actors = {s.labels["target_group"]: s.labels["actor"] for s in series(text, "sgchurn_rule_gap_last_info")}
    assert actors == {CHECKOUT_TG: "aws-load-balancer-controller", PAYMENTS_TG: "unknown"}


def test_last_gap_names_its_trigger_and_the_last_attribute_change_its_actor() -> None:
    text = exposition(sample_snapshot(NOW))
    info = {
        (s.labels["target_group"], s.labels["flow"]): s.labels["trigger_actor"]
        for s in series(text, "sgchurn_rule_gap_last_info")
    }
    # explained with a preceding flip: role/session; poll-only (CloudTrail never said): unknown
    assert info == {(CHECKOUT_TG, "health_check"): TRIGGER_WHO, (PAYMENTS_TG, "traffic"): "unknown"}
    (change,) = series(text, "sgchurn_target_group_attribute_last_change_info")
    assert (change.labels["target_group"], change.labels["value"], change.labels["actor"]) == (
        CHECKOUT_TG,
        "false",
        TRIGGER_WHO,
    )
    # the counter gains no actor label (cardinality): the actor is on the info series only
    assert all("actor" not in s.labels for s in series(text, "sgchurn_target_group_attribute_changes_total"))


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
    counts = {s.labels["task"]: s.value for s in series(text, "sgchurn_job_duration_seconds_count")}
    assert counts == {"inventory": 4, "cloudtrail": 3, "evaluate": 0}
    assert all("job" not in s.labels for s in series(text, "sgchurn_job_duration_seconds_count"))
    assert {s.labels["task"] for s in series(text, "sgchurn_job_last_success_timestamp_seconds")} == {
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


def test_openmetrics_declares_the_unit_its_name_ends_in_and_the_text_format_none() -> None:
    """OpenMetrics 1.0: a family's unit goes in a UNIT line and must be the suffix of its name.
    Every family named in a base unit (seconds, bytes, ratio: Prometheus' naming practice) declares
    it, as prometheus_client's parser reads it; the text format 0.0.4 has no UNIT lines."""
    snapshot = sample_snapshot(NOW)
    parsed = {f.name: f.unit for f in parse_openmetrics(render_exposition(snapshot, "openmetrics").decode())}
    expected = {}
    for spec in SPECS:
        suffix = re.search(r"_(seconds|bytes|ratio)$", spec.base_name)
        expected[spec.base_name] = suffix.group(1) if suffix else ""
    assert parsed == expected
    assert "seconds" in parsed.values() and "ratio" in parsed.values()
    assert "# UNIT" not in render_exposition(snapshot).decode()


def _names(samples_: Iterable[Sample]) -> set[str]:
    return {s.name for s in samples_}


def test_info_families_carry_value_one() -> None:
    text = exposition(sample_snapshot(NOW))
    info = [s for s in samples(text) if s.name.endswith("_info")]
    assert _names(info) == {s.name for s in SPECS if s.type == "info"}
    assert all(s.value == 1 for s in info)


# -- the fast writer /metrics serves: the same exposition as prometheus_client's ----------------


def awkward_snapshot(now: datetime, *, twin: bool = False) -> Snapshot:
    """The rich sample plus everything the fast writer must get exactly right.

    Label values with backslashes, quotes, newlines, braces and non-ASCII; a target group with no
    flow statuses and one with a single flow and several reasons; open gaps of a target group no
    longer listed (two, the later one must lose) and of a listed one; malformed counter keys
    (unsorted, a label too many, a non-str value, two keys that are the same label set once
    str()'d); values -0.0, negative, NaN, +/-Inf, huge and inexact; a histogram with a bucket
    missing; a job without buckets. `twin`: a second target group with the identity of another
    (the first series of a label set wins).
    """
    base = sample_snapshot(now)
    checkout, payments = base.target_groups
    weird = dataclasses.replace(
        payments,
        name='tg "quoted" \\back\\ and\nnewline',
        namespace="espace-été",
        service="svc,{x}=y} 1",
        arn=tg_arn("weird"),
        load_balancer='arn:aws:elasticloadbalancing:eu-west-1:1:loadbalancer/net/lb-"x"/abc',
        cluster="",
        targets=0,
        flows={
            "traffic": FlowStatus("traffic", 9, 2, {"no_rule_for_port": 4, "source_not_covered": 3}),
        },
    )
    bare = dataclasses.replace(payments, name="no-flows", arn=tg_arn("no-flows"), flows={})
    groups: tuple[TargetGroupView, ...] = (checkout, weird, payments, bare)
    if twin:
        groups += (dataclasses.replace(checkout, arn=tg_arn("twin"), preserve_client_ip=False, targets=8),)
    gone = dataclasses.replace(checkout, name="gone", arn=tg_arn("gone"))
    open_gaps = (
        *base.open_gaps,
        gap(gone, "health_check", now - timedelta(minutes=3), None, "requirement_change", ""),
        gap(gone, "health_check", now - timedelta(minutes=1), None, "revoke_without_restore", "x"),
        gap(weird, "traffic", now - timedelta(seconds=5), None, "revoke_without_restore", 'a\\"b'),
    )
    odd = cast(Any, (("event_name", 7),))  # a non-str label value, the same label set as "7"
    counters = {
        **base.counters,
        "rule_gaps": {
            **base.counters["rule_gaps"],
            identity_labels(weird, flow="traffic", cause="revoke_without_restore"): -0.0,
            identity_labels(bare, flow="traffic", cause="revoke_without_restore"): 1e21,
        },
        "rule_replacements": {
            **base.counters["rule_replacements"],
            cast(Any, (("order", "make_before_break"), ("aws_account_id", ACCOUNT))): 1,  # unsorted, short
            cast(
                Any, (("aws_account_id", "2"), ("region", REGION), ("security_group", "sg-2"), ("order", "x"))
            ): 3,
            cast(  # every label, not sorted: a series all the same
                Any,
                (("security_group", "sg-3"), ("order", "y"), ("aws_region", REGION), ("aws_account_id", "3")),
            ): 4,
        },
        "security_group_rule_changes": {
            **base.counters["security_group_rule_changes"],
            labels_of(
                aws_account_id=ACCOUNT,
                aws_region=REGION,
                security_group="sg-1",
                event_name="RevokeSecurityGroupIngress",
                result="success",
                extra="1",
            ): 2,
        },
        "cloudtrail_events": {labels_of(event_name="7"): 0.1 + 0.2, odd: 5, labels_of(event_name="x"): -4.0},
        "cloudtrail_records_rejected": {
            labels_of(reason="not_json"): math.nan,
            labels_of(reason="y"): math.inf,
        },
    }
    durations = {
        **base.gap_durations,
        fleet_labels(weird, "traffic"): HistogramState((0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2), -0.0, 2),
        fleet_labels(bare, "traffic"): HistogramState((1, 2), 3.0, 2),  # buckets missing
    }
    return dataclasses.replace(
        base,
        target_groups=groups,
        open_gaps=open_gaps,
        counters=counters,
        gap_durations=durations,
        jobs=(*base.jobs, JobStats("kubernetes", 0, 3, None, None, "forbidden")),
        cloudtrail_lag_seconds={(ACCOUNT, REGION): -0.0, ("2", "us-east-1"): -3.5},
        api_requests={**base.api_requests, ("s3", "GetObject"): 2**60},
    )


def generated_snapshot() -> Snapshot:
    """The benchmark's synthetic fleet (as Daemon.publish builds it), at 300 target groups."""
    return build_snapshot(300)


EQUIVALENCE_CASES = {
    "rich sample": lambda: sample_snapshot(NOW),
    "rich sample, ready": lambda: sample_snapshot(NOW, ready=True),
    "hostile names": lambda: hostile_snapshot(NOW),
    "empty": lambda: Snapshot(generated_at=NOW),
    "awkward": lambda: awkward_snapshot(NOW),
    "awkward with a twin identity": lambda: awkward_snapshot(NOW, twin=True),
    "generated 300 target groups": generated_snapshot,
}


@pytest.mark.parametrize("case", sorted(EQUIVALENCE_CASES))
def test_the_fast_writer_writes_prometheus_clients_bytes(case: str) -> None:
    snapshot = EQUIVALENCE_CASES[case]()
    registry = build_registry(lambda: snapshot)
    text, openmetrics = generate_latest(registry), generate_openmetrics(registry)
    assert render_exposition(snapshot) == text
    assert render_exposition(snapshot, "openmetrics") == openmetrics
    assert gzip.decompress(Exposition(snapshot).gzip("openmetrics")) == openmetrics
    assert gzip.decompress(Exposition(snapshot).gzip("text")) == text


def test_the_gzip_body_is_one_member_any_gzip_reader_inflates_to_the_exact_bytes() -> None:
    """Exposition.gzip deflates with zlib-ng in a second thread, piece by piece: a body of several
    MiB (many pieces) is one gzip member that CPython's zlib inflates to the rendered bytes."""
    snapshot = build_snapshot(2_000)
    for fmt in ("text", "openmetrics"):
        body = render_exposition(snapshot, fmt)
        zipped = Exposition(snapshot).gzip(fmt)
        assert len(body) > 2_000_000 and len(zipped) < len(body) // 4
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)  # one gzip member, nothing after it
        assert inflater.decompress(zipped) == body and inflater.eof and inflater.unused_data == b""
        assert gzip.decompress(zipped) == body


@pytest.mark.parametrize("case", ["rich sample", "hostile names", "empty", "generated 300 target groups"])
def test_the_fast_writer_parses_to_the_same_families_and_samples(case: str) -> None:
    snapshot = EQUIVALENCE_CASES[case]()
    registry = build_registry(lambda: snapshot)
    fast = list(text_string_to_metric_families(render_exposition(snapshot).decode()))
    reference = list(text_string_to_metric_families(generate_latest(registry).decode()))
    assert [(f.name, f.type, f.documentation) for f in fast] == [
        (f.name, f.type, f.documentation) for f in reference
    ]
    assert fast == reference  # every sample: name, labels, value
    assert len(fast) == len(SPECS)
    fast_om = list(parse_openmetrics(render_exposition(snapshot, "openmetrics").decode()))
    assert fast_om == list(parse_openmetrics(generate_openmetrics(registry).decode()))


def test_the_awkward_snapshot_really_is_awkward() -> None:
    """The cases above exercise what they claim: escapes, drops, the general path's checks."""
    snapshot = awkward_snapshot(NOW, twin=True)
    text = render_exposition(snapshot).decode()
    assert 'target_group="tg \\"quoted\\" \\\\back\\\\ and\\nnewline"' in text
    assert "espace-été" in text and 'service="svc,{x}=y} 1"' in text
    assert "sgchurn_rule_gaps_total{" in text and "} -0.0\n" in text
    for value in ("NaN", "+Inf", "1e+21", "0.30000000000000004", "1.152921504606847e+18"):
        assert f"}} {value}\n" in text, value
    exposition_ = Exposition(snapshot)
    exposition_.render()
    assert {name for name, _ in exposition_.dropped} == {
        "sgchurn_rule_replacements_total",
        "sgchurn_security_group_rule_changes_total",
        "sgchurn_rule_gap_duration_seconds",
    }
    events = [s.labels["event_name"] for s in series(text, "sgchurn_cloudtrail_events_total")]
    assert sorted(events) == ["7", "x"]  # the int 7 lost to "7"
    opened = [s for s in series(text, "sgchurn_rule_gap_open") if s.labels["target_group"] == CHECKOUT_TG]
    assert len(opened) == 2  # one per flow, the twin's and the open gap's dropped
    gone = [
        s
        for s in series(text, "sgchurn_rule_gap_open_since_timestamp_seconds")
        if s.labels["target_group"] == "gone"
    ]
    assert [s.value for s in gone] == [(NOW - timedelta(minutes=3)).timestamp()]


def test_promtool_check_metrics_is_clean_on_the_fast_output() -> None:
    for snapshot in (sample_snapshot(NOW), Snapshot(generated_at=NOW), generated_snapshot()):
        assert promtool_check(render_exposition(snapshot).decode()) == ""


_label_value = st.text(st.characters(codec="utf-8"), max_size=6)
_number = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1.0, 0.5]),
)


@st.composite
def _snapshots(draw: st.DrawFn) -> Snapshot:
    """Small snapshots with arbitrary label values, numbers, repeated identities and odd keys."""
    names = draw(st.lists(st.sampled_from(["a", "b", 'c"', "d\\", "e\n"]), max_size=5))
    groups = []
    for i, name in enumerate(names):
        flows: dict[FlowKind, FlowStatus] = {}
        for kind in draw(st.sets(st.sampled_from(FLOW_KINDS))):
            reasons = draw(st.dictionaries(st.sampled_from([*REASONS, "unknown"]), st.integers(0, 3)))
            flows[kind] = FlowStatus(kind, draw(st.integers(0, 5)), draw(st.integers(0, 5)), reasons)
        groups.append(
            dataclasses.replace(
                sample_snapshot(NOW).target_groups[0],
                name=name,
                namespace=draw(st.sampled_from(["ns", "ns2"])),
                service=draw(_label_value),
                arn=tg_arn(f"tg{i}"),
                load_balancer=draw(st.sampled_from([lb_arn("lb"), "plain", "arn:x:y"])),
                scheme=draw(_label_value),
                preserve_client_ip=draw(st.booleans()),
                targets=draw(st.integers(0, 10)),
                flows=flows,
            )
        )
    open_gaps = tuple(
        gap(
            tg,
            draw(st.sampled_from(FLOW_KINDS)),
            NOW - timedelta(seconds=draw(st.integers(1, 99))),
            None,
            "c",
            "",
        )
        for tg in draw(st.lists(st.sampled_from(groups), max_size=3) if groups else st.just([]))
    )
    counter_keys = st.one_of(
        st.builds(lambda v: labels_of(event_name=v), _label_value),
        st.builds(lambda v: cast(Any, (("event_name", v), ("x", "y"))), _label_value),
        st.builds(lambda v: cast(Any, (("event_name", v),)), st.integers(0, 3)),
    )
    events = draw(st.dictionaries(counter_keys, _number, max_size=4))
    durations = {
        fleet_labels(tg, draw(st.sampled_from(FLOW_KINDS))): HistogramState(
            tuple(draw(st.lists(st.integers(0, 9), min_size=11, max_size=11) | st.just([1, 2]))),
            draw(_number),
            0,
        )
        for tg in draw(st.lists(st.sampled_from(groups), max_size=3) if groups else st.just([]))
    }
    return Snapshot(
        generated_at=NOW,
        target_groups=tuple(groups),
        open_gaps=open_gaps,
        counters={"cloudtrail_events": events},
        gap_durations=durations,
        cloudtrail_lag_seconds=draw(
            st.dictionaries(st.tuples(_label_value, _label_value), _number, max_size=2)
        ),
        api_requests=draw(
            st.dictionaries(st.tuples(_label_value, _label_value), st.integers(0, 9), max_size=2)
        ),
        version=draw(_label_value),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_snapshots())
def test_the_fast_writer_matches_prometheus_client_on_generated_snapshots(snapshot: Snapshot) -> None:
    registry = build_registry(lambda: snapshot)
    assert render_exposition(snapshot) == generate_latest(registry)
    assert render_exposition(snapshot, "openmetrics") == generate_openmetrics(registry)


# -- the cache /metrics reads -------------------------------------------------------------------


def test_the_cache_renders_each_snapshot_once_per_variant_and_reuses_the_bytes() -> None:
    holder = [sample_snapshot(NOW)]
    cache = ExpositionCache(lambda: holder[0])
    first = cache.body("text")
    assert cache.body("text") is first and cache.renders == 1
    zipped = cache.body("openmetrics", gzipped=True)
    assert cache.body("openmetrics", gzipped=True) is zipped and cache.renders == 2
    assert gzip.decompress(zipped) == render_exposition(holder[0], "openmetrics")
    holder[0] = sample_snapshot(NOW, ready=True)  # the daemon swaps a new snapshot in
    second = cache.body("text")
    assert second != first and cache.renders == 3
    assert second == render_exposition(holder[0])


def test_the_cache_knows_snapshots_by_identity_not_by_equality() -> None:
    """An equal but new snapshot object is another snapshot (the daemon builds a new one each
    publish), so nothing stale is served even if an id were reused."""
    cache = ExpositionCache(lambda: sample_snapshot(NOW))  # a new object on every read
    cache.body("text")
    cache.body("text")
    assert cache.renders == 2


def test_concurrent_scrapes_of_a_new_snapshot_render_it_once() -> None:
    snapshot = generated_snapshot()
    cache = ExpositionCache(lambda: snapshot)
    barrier = threading.Barrier(6)
    bodies: list[bytes] = []

    def scrape() -> None:
        barrier.wait()
        bodies.append(cache.body("openmetrics", gzipped=True))

    threads = [threading.Thread(target=scrape) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cache.renders == 1 and len(bodies) == 6 and all(body is bodies[0] for body in bodies)


def test_the_cache_warns_once_about_dropped_series(caplog: pytest.LogCaptureFixture) -> None:
    holder = [awkward_snapshot(NOW)]
    cache = ExpositionCache(lambda: holder[0])
    with caplog.at_level(logging.WARNING, logger="exporter.metrics"):
        cache.body("text")
        holder[0] = awkward_snapshot(NOW + timedelta(seconds=1))
        cache.body("text")
    warnings = [r.getMessage() for r in caplog.records if "unexpected labels" in r.getMessage()]
    dropped = Exposition(holder[0])
    dropped.render()
    assert cache.renders == 2 and len(warnings) == len(set(warnings)) == len(set(dropped.dropped)) == 4


def histogram_of(flow: str) -> HistogramState:
    return HistogramState((0, 0, 1, 1, 1, 2, 2, 2, 2, 2, 3), 99.5 if flow == "traffic" else -0.0, 3)


def test_histograms_put_le_among_their_labels_as_prometheus_client_does() -> None:
    """`le` sorts before every label of the job histograms (`task`) and after those of the gap
    durations; a -0.0 sum is written as such (not as the memoized 0.0)."""
    base = sample_snapshot(NOW)
    checkout = base.target_groups[0]
    jobs = tuple(
        JobStats(
            name, 5, 0, 0.2, NOW, None, (0, 1, 2, 2, 3, 3, 3, 4, 4, 4, 4, 5), 7.5 if name == "a" else -0.0
        )
        for name in "ab"
    )
    durations = {fleet_labels(checkout, flow): histogram_of(flow) for flow in FLOW_KINDS}
    snapshot = dataclasses.replace(base, jobs=jobs, gap_durations=durations)
    registry = build_registry(lambda: snapshot)
    assert render_exposition(snapshot) == generate_latest(registry)
    assert render_exposition(snapshot, "openmetrics") == generate_openmetrics(registry)
    text = render_exposition(snapshot).decode()
    assert 'sgchurn_job_duration_seconds_bucket{le="0.01",task="a"} 0.0' in text
    assert 'sgchurn_job_duration_seconds_sum{task="b"} -0.0' in text
    assert 'sgchurn_rule_gap_duration_seconds_sum{aws_account_id="' in text


def _warm_blocked_on(
    monkeypatch: pytest.MonkeyPatch, cache: ExpositionCache, holder: list[Snapshot], new: Snapshot, fmt: str
) -> tuple[threading.Thread, threading.Event]:
    """Swap `new` in and start `cache.warm` in a thread that blocks inside the render of `new` in
    `fmt` until the returned event is set (returns once that render has begun)."""
    started, release = threading.Event(), threading.Event()
    original = Exposition.render

    def slow_render(self: Exposition, fmt_: Any = "text") -> bytes:
        if self.snapshot is new and fmt_ == fmt:
            started.set()
            assert release.wait(10)
        return original(self, fmt_)

    monkeypatch.setattr(Exposition, "render", slow_render)
    holder[0] = new
    warming = threading.Thread(target=cache.warm)
    warming.start()
    assert started.wait(10)
    return warming, release


def test_a_scrape_during_a_render_gets_the_previous_body_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """While the publishing job renders a new snapshot, scrapes are answered with the previous
    snapshot's body without waiting for the render (the tail of benchmark figure 8), and the
    next scrape after the render gets the new one."""
    old, new = sample_snapshot(NOW), sample_snapshot(NOW, ready=True)
    holder = [old]
    cache = ExpositionCache(lambda: holder[0])
    old_body = cache.body("text")
    warming, release = _warm_blocked_on(monkeypatch, cache, holder, new, "text")
    served: list[bytes] = []
    scraper = threading.Thread(target=lambda: served.append(cache.body("text")))
    scraper.start()
    scraper.join(5)
    alive = scraper.is_alive()  # it waited for the render: the fault this test is about
    release.set()
    warming.join(10)
    scraper.join(10)
    assert not alive and served == [old_body] and cache.stale_served == 1
    assert cache.body("text") == render_exposition(new) != old_body and cache.renders == 2


def test_while_warm_renders_one_variant_scrapes_of_the_others_do_not_render(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """warm takes every variant's render lock first: a scrape of a variant warm has not reached
    yet gets its previous body instead of rendering the new snapshot alongside it."""
    old, new = sample_snapshot(NOW), sample_snapshot(NOW, ready=True)
    holder = [old]
    cache = ExpositionCache(lambda: holder[0])
    cache.body("text")
    old_openmetrics = cache.body("openmetrics")
    warming, release = _warm_blocked_on(monkeypatch, cache, holder, new, "text")  # text is warmed first
    renders = cache.renders
    served = cache.body("openmetrics")  # the previous body, without rendering the new snapshot
    assert cache.renders == renders
    release.set()
    warming.join(10)
    assert served == old_openmetrics and cache.stale_served == 1
    assert cache.body("openmetrics") == render_exposition(new, "openmetrics") and cache.renders == 4


def test_gap_durations_are_merged_per_account_region_and_flow() -> None:
    """The daemon publishes sgchurn_rule_gap_duration_seconds across target groups (merge_histograms):
    buckets, sums and counts add up; a histogram with other buckets than its group's is left out."""
    checkout, payments = sample_snapshot(NOW).target_groups
    merged = merge_histograms(
        {
            identity_labels(checkout, flow="traffic"): histogram([3.0, 45.0]),
            identity_labels(payments, flow="traffic"): histogram([700.0]),
            identity_labels(payments, flow="health_check"): histogram([12.0]),
            identity_labels(checkout, flow="health_check"): HistogramState((1, 2), 3.0, 2),
        }
    )
    assert merged == {
        fleet_labels(checkout, "traffic"): histogram([3.0, 45.0, 700.0]),
        fleet_labels(checkout, "health_check"): histogram([12.0]),
    }


# -- each target group's lines kept until it changes ----------------------------------------------


def _changed_fleet(base: Snapshot) -> Snapshot:
    """`base` with one target group changed (targets), one gone, one new, and a gap opened on another."""
    groups = list(base.target_groups)
    changed = dataclasses.replace(groups[3], targets=groups[3].targets + 1)
    born = dataclasses.replace(groups[5], arn=groups[5].arn + "-new", name=groups[5].name + "-new")
    opened = gap(groups[7], "health_check", NOW - timedelta(seconds=40), None, "requirement_change", "x")
    return dataclasses.replace(
        base,
        target_groups=(*groups[:3], changed, *groups[4:9], born, *groups[10:]),  # groups[9] is gone
        open_gaps=(*base.open_gaps, opened),
    )


def test_a_new_snapshot_renders_only_the_target_groups_that_changed() -> None:
    """The first render makes every target group's lines; the next snapshot re-renders the changed,
    the new and the one whose gap opened (3), reuses the others' lines (equal views, new objects
    too), drops the one gone, and writes exactly prometheus_client's bytes."""
    base = generated_snapshot()
    holder = [base]
    cache = ExpositionCache(lambda: holder[0])
    assert cache.body("openmetrics") == render_exposition(base, "openmetrics")
    assert cache.target_groups_rendered == len(base.target_groups)
    holder[0] = dataclasses.replace(base)  # a new snapshot object, nothing changed
    assert cache.body("openmetrics") == render_exposition(base, "openmetrics")
    assert cache.target_groups_rendered == 0
    rebuilt = [dataclasses.replace(tg) for tg in base.target_groups]  # equal views, new objects
    holder[0] = dataclasses.replace(base, target_groups=tuple(rebuilt))
    cache.body("openmetrics")
    assert cache.target_groups_rendered == 0
    holder[0] = _changed_fleet(base)
    registry = build_registry(lambda: holder[0])
    assert cache.body("openmetrics") == generate_openmetrics(registry)
    assert cache.target_groups_rendered == 3
    assert gzip.decompress(cache.body("text", gzipped=True)) == generate_latest(registry)


def test_kept_lines_follow_publishes_that_keep_the_target_groups_in_place() -> None:
    """The daemon's publishes keep the target groups in place (unchanged views the same objects):
    each render looks only at the views that are new objects and at those with a gap open now or
    before. A changed view, a gap opening and closing, a renamed target group (its identity
    changed), two target groups with one identity (served series by series) and the way back:
    each body is what prometheus_client writes, rendering only what changed."""
    base = generated_snapshot()
    groups = base.target_groups
    holder = [base]
    cache = ExpositionCache(lambda: holder[0])
    opened = gap(groups[7], "traffic", NOW - timedelta(seconds=30), None, "requirement_change", "x")
    twin = dataclasses.replace(groups[6], name=groups[8].name, namespace=groups[8].namespace)
    twin = dataclasses.replace(
        twin,
        service=groups[8].service,
        aws_account_id=groups[8].aws_account_id,
        aws_region=groups[8].aws_region,
    )
    with_targets = dataclasses.replace(groups[3], targets=groups[3].targets + 1)
    steps: list[tuple[Snapshot, int]] = [
        (base, len(groups)),
        (dataclasses.replace(base, target_groups=(*groups[:3], with_targets, *groups[4:])), 1),
        (dataclasses.replace(base, target_groups=(*groups[:3], with_targets, *groups[4:])), 0),
        (dataclasses.replace(base, open_gaps=(*base.open_gaps, opened)), 2),  # groups[3] back; 7 opened
        (dataclasses.replace(base, open_gaps=(*base.open_gaps, opened)), 0),
        (base, 1),  # the gap closed
        (
            dataclasses.replace(
                base, target_groups=(*groups[:5], dataclasses.replace(groups[5], name="renamed"), *groups[6:])
            ),
            1,
        ),
        (dataclasses.replace(base, target_groups=(*groups[:6], twin, *groups[7:])), 2),  # groups[5] back
        (base, 1),  # groups[6] back: the rest was kept through the series-by-series render
    ]
    for i, (snapshot, rendered) in enumerate(steps):
        holder[0] = snapshot
        assert cache.body("openmetrics") == generate_openmetrics(build_registry(lambda s=snapshot: s)), i
        assert cache.target_groups_rendered == rendered, i


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_snapshots(), _snapshots())
def test_kept_lines_give_prometheus_clients_bytes_for_any_next_snapshot(
    first: Snapshot, second: Snapshot
) -> None:
    """Whatever the snapshot before, the next one's body is what prometheus_client writes for it."""
    holder = [first]
    cache = ExpositionCache(lambda: holder[0])
    assert cache.body("text") == generate_latest(build_registry(lambda: first))
    holder[0] = second
    assert cache.body("text") == generate_latest(build_registry(lambda: second))
    holder[0] = dataclasses.replace(first, open_gaps=second.open_gaps)
    assert cache.body("text") == generate_latest(build_registry(lambda: holder[0]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_snapshots(), _snapshots(), st.lists(st.booleans(), min_size=5, max_size=5))
def test_kept_lines_give_prometheus_clients_bytes_for_target_groups_changed_in_place(
    first: Snapshot, second: Snapshot, take_second: list[bool]
) -> None:
    """Publishes that keep the target groups in place (the same ARNs in the same order, some views
    the same objects, others changed, gaps opening and closing): each body is prometheus_client's."""
    second_groups = second.target_groups
    mixed = tuple(
        second_groups[i] if i < len(second_groups) and take_second[i] else tg
        for i, tg in enumerate(first.target_groups)
    )
    holder = [first]
    cache = ExpositionCache(lambda: holder[0])
    for snapshot in (
        first,
        dataclasses.replace(first, target_groups=mixed),
        dataclasses.replace(first, target_groups=mixed, open_gaps=second.open_gaps),
        first,
        dataclasses.replace(first, open_gaps=second.open_gaps),
    ):
        holder[0] = snapshot
        assert cache.body("text") == generate_latest(build_registry(lambda s=snapshot: s))


def test_docs_metrics_md_names_the_sources_whose_sgchurn_up_has_no_account_or_region() -> None:
    """The kubernetes and state sources are not per account and region: a daemon exposes their
    sgchurn_up with empty aws_account_id and aws_region (in PromQL the same as no label), and
    docs/metrics.md says so, naming exactly those sources."""
    from exporter.daemon.service import Daemon
    from exporter.daemon.state import StateStore

    store = StateStore(":memory:")
    try:
        daemon = Daemon([], [], store, intervals={"kubernetes": 60}, kube_sync=lambda: None)  # type: ignore[arg-type,return-value]
        text = render_exposition(daemon.publish()).decode()
    finally:
        store.close()
    placeless = {
        up.labels["source"]
        for up in series(text, "sgchurn_up")
        if up.labels["aws_account_id"] == "" and up.labels["aws_region"] == ""
    }
    assert placeless == {"kubernetes", "state"}, text
    doc = (ROOT / "docs" / "metrics.md").read_text()
    note = next(
        (line for line in doc.splitlines() if line.startswith("- `aws_account_id`, `aws_region` of")), ""
    )
    assert "sgchurn_up" in note, "docs/metrics.md has no note on sgchurn_up's empty account and region"
    assert set(re.findall(r"source=\"(\w+)\"", note)) == placeless, note
