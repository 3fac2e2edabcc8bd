"""A gap's impact in JSON (reports/impact.py): the declared shape written, the lenient reader of
what the daemon's state file holds (values written by earlier versions included), and the impact
on explain's gap lines (reports/gaps.py GapLine)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from exporter.engine.impact import ImpactResult
from exporter.reports.gaps import GapJson, GapLine, gaps_text
from exporter.reports.impact import impact_record, read_impact

START = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
END = datetime(2026, 11, 20, 3, 2, 30, 500000, tzinfo=UTC)

#: A state-file value exactly as the version before the declared shape wrote it (ImpactResult.to_dict).
STORED_BEFORE = (
    '{"impact": "confirmed", "impact_missing": ["flow_logs_no_data_yet"], "impact_reasons": '
    '["unhealthy_hosts_rose", "flows_rejected"], "peak_unhealthy_hosts": 2.0, "baseline_unhealthy_hosts": 0.0, '
    '"min_healthy_hosts": 1.0, "target_resets": null, "new_flows_during": 40.0, "new_flows_before": 310.0, '
    '"rejected_flows": 3, "impact_window_start": "2026-11-20T03:00:00Z", '
    '"impact_window_end": "2026-11-20T03:02:30.500000Z"}'
)
RESULT = ImpactResult(
    "confirmed",
    ("flow_logs_no_data_yet",),
    peak_unhealthy_hosts=2.0,
    baseline_unhealthy_hosts=0.0,
    min_healthy_hosts=1.0,
    new_flows_during=40.0,
    new_flows_before=310.0,
    rejected_flows=3,
    window_start=START,
    window_end=END,
    reasons=("unhealthy_hosts_rose", "flows_rejected"),
)


def test_a_value_stored_by_the_version_before_reads_as_it_was_meant() -> None:
    assert read_impact(json.loads(STORED_BEFORE)) == RESULT


def test_the_written_shape_is_byte_identical_to_what_was_written_before() -> None:
    assert json.dumps(impact_record(RESULT)) == STORED_BEFORE


def test_an_open_gap_says_its_impact_is_not_known_yet() -> None:
    assert impact_record(None) == {"impact": "unknown", "impact_missing": ["gap_open"]}
    assert read_impact(impact_record(None)) == ImpactResult("unknown", ("gap_open",))


def test_each_bad_stored_value_reads_as_absent_and_the_rest_is_kept() -> None:
    stored = json.loads(STORED_BEFORE) | {
        "impact": "catastrophic",  # not an impact: unknown
        "peak_unhealthy_hosts": "2",  # a string, not a number
        "min_healthy_hosts": True,  # a boolean is not a count
        "rejected_flows": 3.0,  # a count is an integer
        "impact_window_start": "yesterday",  # not a time
        "impact_window_end": 1e300,  # epoch seconds out of range
        "impact_missing": "metrics_not_read",  # not a list
        "impact_reasons": ["flows_rejected", 7],  # items are read as text
        "target_resets": 4,  # an integer is a number
    }
    assert read_impact(stored) == ImpactResult(
        "unknown",
        (),
        baseline_unhealthy_hosts=0.0,
        new_flows_during=40.0,
        new_flows_before=310.0,
        target_resets=4.0,
        reasons=("flows_rejected", "7"),
    )
    assert read_impact({}) == ImpactResult("unknown")


numbers = st.none() | st.floats(allow_nan=False, allow_infinity=False)
#: Gap windows of this century (format_time's %Y writes years before 1000 in fewer than 4 digits).
times = st.none() | st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC))
texts = st.lists(st.text(max_size=8), max_size=3).map(tuple)


@given(
    st.builds(
        ImpactResult,
        impact=st.sampled_from(["confirmed", "none_seen", "unknown"]),
        missing=texts,
        peak_unhealthy_hosts=numbers,
        baseline_unhealthy_hosts=numbers,
        min_healthy_hosts=numbers,
        target_resets=numbers,
        new_flows_during=numbers,
        new_flows_before=numbers,
        rejected_flows=st.none() | st.integers(0, 2**40),
        window_start=times,
        window_end=times,
        reasons=texts,
    )
)
def test_what_is_written_reads_back_the_same(result: ImpactResult) -> None:
    assert read_impact(json.loads(json.dumps(impact_record(result)))) == result


OPEN_GAP = GapJson(
    target_group_arn="arn:aws:elasticloadbalancing:eu-west-1:111122223333:targetgroup/k8s-shop-web/abc",
    target_group="k8s-shop-web",
    aws_account_id="111122223333",
    aws_region="eu-west-1",
    flow="traffic",
    start="2026-11-20T03:00:00Z",
    end=None,
    duration_seconds=None,
    under_one_second=False,
    cause="revoke_before_authorize",
    actor="aws-load-balancer-controller",
    actor_arn=None,
    user_agent=None,
    controller=True,
    opened_by_event="RevokeSecurityGroupIngress",
    opened_by_event_id="e-1",
    closed_by_event=None,
    closed_by_event_id=None,
    start_exact=True,
    note=None,
    actor_session="lbc",
    trigger=None,
)


def test_explains_gap_lines_say_an_open_gaps_impact_is_not_known_yet_only_when_asked() -> None:
    line = "  2026-11-20T03:00:00Z  still open  traffic  revoke_before_authorize  by aws-load-balancer-controller/lbc"
    assert gaps_text([GapLine(OPEN_GAP)]).splitlines()[-1] == line
    assert (
        gaps_text([GapLine(OPEN_GAP, impact_asked=True)]).splitlines()[-1]
        == line + "; impact unknown: gap_open"
    )
    assert GapLine(OPEN_GAP).record() == msgspec.to_builtins(OPEN_GAP)
    assert GapLine(OPEN_GAP, impact_asked=True).record() == {
        **msgspec.to_builtins(OPEN_GAP),
        "impact": "unknown",
        "impact_missing": ["gap_open"],
    }
    closed = GapLine(OPEN_GAP, impact_asked=True, impact=RESULT).record()
    assert list(closed)[-12:] == list(impact_record(RESULT)) and read_impact(closed) == RESULT
