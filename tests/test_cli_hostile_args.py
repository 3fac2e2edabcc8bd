"""Hostile command-line values: a duration too long for any clock is one line and exit 2, never a
traceback (the commands' bad input, exit codes: exporter/commands/common.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.cli import main
from exporter.commands.common import MAX_DURATION, parse_duration


@pytest.mark.parametrize(
    "text", ["99999999999d", "999999999999999999h", "9" * 5000 + "d", "36501d", "876001h", "9" * 20 + "s"]
)
@pytest.mark.parametrize("command", ["backfill", "explain"])
def test_a_duration_past_any_calendar_is_one_line_and_exit_2(
    text: str, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = (
        ["backfill", "--since", text, "--bucket", "b"]
        if command == "backfill"
        else ["explain", "tg", "--lookback", text, "--region", "us-east-1"]
    )
    assert main(args) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "--since" in lines[0] or "--lookback" in lines[0]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.text(alphabet="0123456789dhms ", max_size=30))
def test_parse_duration_returns_a_bounded_duration_or_raises_value_error(text: str) -> None:
    try:
        duration = parse_duration(text)
    except ValueError:
        return
    assert timedelta(0) <= duration <= MAX_DURATION
