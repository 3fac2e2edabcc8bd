"""Hostile command-line values: a duration too long for any clock is one line and exit 2, never a
traceback (the commands' bad input, exit codes: exporter/commands/common.py)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.cli import main
from exporter.commands.common import MAX_DURATION, parse_duration
from tests.engine_world import incident_inventory
from tests.test_replay_cli import _incident_records


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


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_an_at_time_off_the_calendar_in_utc_is_one_line_and_exit_2(
    moment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps(incident_inventory().to_dict()))
    events = tmp_path / "events.json"
    events.write_text(json.dumps({"Records": _incident_records()}))
    code = main(
        [
            "explain",
            "k8s-shop-web-abc",
            "--inventory",
            str(inventory),
            "--events",
            str(events),
            "--at",
            moment,
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--at" in err, err
