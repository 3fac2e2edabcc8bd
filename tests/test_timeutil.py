"""The one textual time form: format_time writes what parse_time reads back, for every moment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from exporter.engine.timeutil import format_time, parse_time

utc_moments = st.datetimes(timezones=st.just(UTC))


@given(utc_moments)
def test_every_moment_reads_back_as_written(moment: datetime) -> None:
    text = format_time(moment)
    assert parse_time(text) == moment
    assert text.endswith("Z") and text[4] == "-" and text[10] == "T"  # four-digit year, always


@given(utc_moments)
def test_whole_seconds_are_written_without_a_fraction(moment: datetime) -> None:
    whole = moment.replace(microsecond=0)
    assert format_time(whole) == f"{whole:%Y-%m-%dT%H:%M:%S}Z".rjust(20, "0")


def test_the_forms_written() -> None:
    assert format_time(datetime(2026, 11, 20, 8, 0, 16, tzinfo=UTC)) == "2026-11-20T08:00:16Z"
    assert format_time(datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC)) == "0999-01-02T03:04:05Z"
    east = timezone(timedelta(hours=2))
    assert format_time(datetime(2026, 11, 20, 8, 0, 16, 120, tzinfo=east)) == "2026-11-20T06:00:16.000120Z"
