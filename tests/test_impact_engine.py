"""The impact engine (engine/impact.py) and the VPC Flow Log parser (engine/flowlogs.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.engine.flowlogs import (
    DEFAULT_FORMAT,
    FlowLogFormat,
    FormatError,
    count_rejects,
    parse_lines,
)
from exporter.engine.impact import (
    METRIC_PERIOD,
    FlowLogEvidence,
    HealthCheck,
    MetricEvidence,
    assess,
    window_for,
)
from exporter.reports.impact import impact_record

T0 = datetime(2026, 11, 20, 3, 0, 12, tzinfo=UTC)
HEALTH = HealthCheck(healthy_threshold=3, unhealthy_threshold=2, interval_seconds=10)
LATER = T0 + timedelta(hours=2)


def minutes(start: datetime, end: datetime, value: float) -> tuple[tuple[datetime, float], ...]:
    out, moment = [], start
    while moment < end:
        out.append((moment, value))
        moment += METRIC_PERIOD
    return tuple(out)


def test_the_window_is_whole_minutes_from_start_to_end_plus_settle() -> None:
    window = window_for(T0, T0 + timedelta(seconds=60), HEALTH)
    assert window.start == datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
    # 03:01:12 + 3 x 10 s = 03:01:42 -> up to 03:02:00
    assert window.end == datetime(2026, 11, 20, 3, 2, tzinfo=UTC)
    assert window.before_start == datetime(2026, 11, 20, 2, 58, tzinfo=UTC)
    with pytest.raises(ValueError, match="before it starts"):
        window_for(T0, T0 - timedelta(seconds=1), HEALTH)
    with pytest.raises(ValueError, match="positive"):
        HealthCheck(interval_seconds=0)


def quiet(window_start: datetime, window_end: datetime, before: datetime) -> MetricEvidence:
    return MetricEvidence(
        unhealthy_hosts=minutes(before, window_end, 0),
        healthy_hosts=minutes(before, window_end, 3),
        target_resets=minutes(before, window_end, 0),
        new_flows=minutes(before, window_end, 40),
    )


def test_unhealthy_hosts_rising_in_the_window_confirm_with_the_numbers() -> None:
    window = window_for(T0, T0 + timedelta(seconds=90), HEALTH)
    base = quiet(window.start, window.end, window.before_start)
    sick = MetricEvidence(
        unhealthy_hosts=tuple(
            (m, 2.0 if m >= window.start + METRIC_PERIOD else 0.0) for m, _ in base.unhealthy_hosts
        ),
        healthy_hosts=base.healthy_hosts,
        target_resets=base.target_resets,
        new_flows=base.new_flows,
    )
    flows = FlowLogEvidence(rejected_flows=0, records_read=10, read_until=LATER)
    result = assess(window, sick, flows, flow_logs_configured=True, now=LATER)
    assert result.impact == "confirmed" and result.reasons == ("unhealthy_hosts_rose",)
    assert result.peak_unhealthy_hosts == 2 and result.baseline_unhealthy_hosts == 0
    assert result.new_flows_during == 40 * 3 and result.new_flows_before == 40 * 3
    assert impact_record(result)["impact"] == "confirmed"


def test_quiet_metrics_and_no_rejects_are_none_seen_only_when_everything_was_read() -> None:
    window = window_for(T0, T0 + timedelta(seconds=30), HEALTH)
    metrics = quiet(window.start, window.end, window.before_start)
    flows = FlowLogEvidence(rejected_flows=0, records_read=4, read_until=LATER)
    assert assess(window, metrics, flows, flow_logs_configured=True, now=LATER).impact == "none_seen"
    unconfigured = assess(window, metrics, None, flow_logs_configured=False, now=LATER)
    assert unconfigured.impact == "unknown" and unconfigured.missing == ("flow_logs_not_configured",)
    unread = assess(window, None, flows, flow_logs_configured=True, now=LATER)
    assert unread.impact == "unknown" and unread.missing == ("metrics_not_read",)
    fresh = assess(window, metrics, flows, flow_logs_configured=True, now=window.end)
    assert fresh.impact == "unknown" and "flow_logs_no_data_yet" in fresh.missing
    no_points = assess(window, MetricEvidence(), flows, flow_logs_configured=True, now=LATER)
    assert no_points.impact == "unknown" and no_points.missing == ("metrics_no_data_yet",)
    assert no_points.peak_unhealthy_hosts is None  # no number made up


def test_rejected_flows_confirm_even_before_metrics_arrive() -> None:
    window = window_for(T0, T0 + timedelta(seconds=5), HEALTH)
    flows = FlowLogEvidence(rejected_flows=7, records_read=9, read_until=LATER)
    result = assess(window, MetricEvidence(), flows, flow_logs_configured=True, now=LATER)
    assert result.impact == "confirmed" and result.rejected_flows == 7
    assert result.reasons == ("flows_rejected",) and result.missing == ("metrics_no_data_yet",)


@given(
    before=st.lists(st.integers(0, 5), min_size=1, max_size=10),
    during=st.lists(st.integers(0, 5), min_size=1, max_size=10),
    rejects=st.integers(0, 3),
    configured=st.booleans(),
)
def test_the_verdict_follows_the_evidence(
    before: list[int], during: list[int], rejects: int, configured: bool
) -> None:
    window = window_for(T0, T0 + timedelta(seconds=60 * (len(during) - 1)), HealthCheck(1, 1, 1))
    length = int((window.end - window.start) / METRIC_PERIOD)
    values = (during * length)[:length]
    points = tuple((window.start + i * METRIC_PERIOD, float(v)) for i, v in enumerate(values))
    prior = tuple((window.start - (i + 1) * METRIC_PERIOD, float(v)) for i, v in enumerate(before))
    metrics = MetricEvidence(unhealthy_hosts=prior + points)
    flows = FlowLogEvidence(rejects, rejects, LATER) if configured else None
    result = assess(window, metrics, flows, flow_logs_configured=configured, now=LATER)
    in_before = [v for m, v in prior if m >= window.before_start]
    rose = max(values) > (max(in_before) if in_before else 0)
    if rose or (configured and rejects):
        assert result.impact == "confirmed"
    elif configured:
        assert result.impact == "none_seen"
    else:
        assert result.impact == "unknown"
    assert result.peak_unhealthy_hosts == max(values)


# --- flow logs ---------------------------------------------------------------------------------

DEFAULT = FlowLogFormat.parse(DEFAULT_FORMAT)
START = int(T0.timestamp())


def line(dst: str = "10.0.1.15", port: int = 30080, action: str = "REJECT", eni: str = "eni-0a1b2c3d") -> str:
    return f"2 123456789012 {eni} 203.0.113.9 {dst} 51234 {port} 6 3 180 {START} {START + 58} {action} OK"


def test_the_default_format_reads_the_documented_example_and_counts_rejects_to_targets() -> None:
    # The AWS docs' example record, unchanged: an accepted SSH flow.
    documented = "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK"
    parsed = parse_lines(
        [documented, line(), line(action="ACCEPT"), line(dst="10.0.9.9"), line(port=22)], DEFAULT
    )
    assert not parsed.rejected and len(parsed.records) == 5
    assert parsed.records[0].dstport == 22 and parsed.records[0].action == "ACCEPT"
    count = count_rejects(
        parsed.records,
        addresses=frozenset({"10.0.1.15"}),
        interfaces=frozenset({"eni-0a1b2c3d"}),
        ports=frozenset({30080}),
        start=T0,
        end=T0 + timedelta(seconds=30),
    )
    assert count == 1
    assert (
        count_rejects(
            parsed.records,
            addresses=frozenset({"10.0.1.15"}),
            interfaces=frozenset(),
            ports=frozenset({30080}),
            start=T0 + timedelta(hours=1),
            end=T0 + timedelta(hours=2),
        )
        == 0
    )  # outside the window


def test_a_custom_format_in_another_order() -> None:
    fmt = FlowLogFormat.parse("${action} ${dstport} ${dstaddr} ${vpc-id} ${start} ${end} ${flow-direction}")
    parsed = parse_lines([f"REJECT 30080 10.0.1.15 vpc-0abc {START} {START + 10} ingress"], fmt)
    assert parsed.records[0].dstaddr == "10.0.1.15" and parsed.records[0].interface_id is None
    for bad in (
        "${action} ${dstport}",
        "${a} $b",
        "${action} ${action} ${dstport} ${dstaddr} ${start} ${end}",
    ):
        with pytest.raises(FormatError):
            FlowLogFormat.parse(bad)


def test_hostile_lines_are_rejected_with_a_counted_reason_and_nodata_is_skipped() -> None:
    nodata = f"2 123456789012 eni-0a1b2c3d - - - - - - - {START} {START + 60} - NODATA"
    hostile = [
        "x" * 5000,
        "2 123",
        line().replace("30080", "30O80"),
        line().replace("10.0.1.15", "10.0.1.999"),
        line(action="DROP"),
        line().replace("eni-0a1b2c3d", "eni-\x1b[31m"),
        line().replace(f"{START} {START + 58}", f"{START + 58} {START}"),
        line().replace("30080", "9" * 30),
    ]
    parsed = parse_lines([*hostile, nodata, line()], DEFAULT)
    assert len(parsed.records) == 1 and parsed.skipped_no_data == 1
    assert parsed.rejected == {
        "too_long": 1,
        "field_count": 1,
        "bad_number": 3,
        "bad_address": 1,
        "bad_action": 1,
        "not_printable": 1,
    }


@given(st.text(max_size=300))
def test_no_line_escapes_the_parser(text: str) -> None:
    parsed = parse_lines([text], DEFAULT)
    assert len(parsed.records) + sum(parsed.rejected.values()) + parsed.skipped_no_data == 1
