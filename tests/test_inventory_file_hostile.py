"""Hostile `snapshot` files read by replay, explain and plan: a value of the right JSON type but
no meaning (a port that is a word, a CIDR that is none) is an error naming its path, exit 2 and
one line, or it is read; never a traceback."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from exporter.cli import main
from tests.engine_world import incident_inventory
from tests.test_replay_cli import _incident_records

BASE: dict[str, Any] = json.loads(
    json.dumps(
        incident_inventory(source_ranges=("203.0.113.0/24",), lb_security_groups=("sg-nlb",)).to_dict()
    )
)
TARGET = "k8s-shop-web-abc"


def _paths(value: Any, prefix: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    if prefix:
        yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(item, (*prefix, i))


PATHS = list(_paths(BASE))
_ODD_TEXT = st.text(max_size=10) | st.sampled_from(
    ["", "all", "traffic-port", "-1", "99999", "0", "٣", "10.0.0.0/33", "300.1.1.1", "::/0", "icmpv6", "alb"]
)
_ODD_INT = st.integers(-3, 70_000) | st.sampled_from([-(2**63), 2**63, 2**70])


def _like(original: Any, draw: st.DrawFn) -> Any:
    """A value of the original's JSON type, of any content."""
    if isinstance(original, bool):
        return draw(st.booleans())
    if isinstance(original, int):
        return draw(_ODD_INT)
    if isinstance(original, str):
        return draw(_ODD_TEXT)
    if isinstance(original, list):
        return [_like(original[0], draw) for _ in range(draw(st.integers(0, 2)))] if original else []
    if isinstance(original, dict):
        return {key: _like(item, draw) for key, item in original.items()}
    return None


@st.composite
def plants(draw: st.DrawFn) -> list[tuple[tuple[str | int, ...], Any]]:
    out = []
    for path in draw(st.lists(st.sampled_from(PATHS), min_size=1, max_size=3)):
        original: Any = BASE
        for step in path:
            original = original[step]
        out.append((path, _like(original, draw)))
    return out


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("events") / "events.json"
    path.write_text(json.dumps({"Records": _incident_records()}))
    return path


def _run(command: str, inventory: Path, events: Path) -> list[str]:
    if command == "replay":
        return ["replay", "--inventory", str(inventory), str(events)]
    extra = ["--set", "preserve_client_ip=false"] if command == "plan" else []
    return [command, TARGET, "--inventory", str(inventory), "--events", str(events), *extra]


@settings(
    max_examples=90,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(planted=plants(), command=st.sampled_from(["replay", "explain", "plan"]))
@example(planted=[(("target_groups", 0, "health_check_port"), "all")], command="replay")
@example(planted=[(("target_groups", 0, "health_check_port"), "٣")], command="explain")
@example(planted=[(("target_groups", 0, "health_check_port"), "99999")], command="plan")
def test_a_file_of_odd_values_is_read_or_one_line_naming_the_field(
    planted: list[tuple[tuple[str | int, ...], Any]],
    command: str,
    events: Path,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = copy.deepcopy(BASE)
    for path, value in planted:
        node: Any = data
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = value
    inventory = tmp_path_factory.mktemp("inventory") / "inventory.json"
    inventory.write_text(json.dumps(data))
    code = main(_run(command, inventory, events))
    err = capsys.readouterr().err
    assert code in (0, 2), err
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"{command}: "), lines


@pytest.mark.parametrize("port", ["all", "٣", "99999", "0", "-1", "80 ", "1000080", "9" * 5000])
def test_a_health_check_port_that_is_no_port_is_named(
    port: str, events: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = copy.deepcopy(BASE)
    data["target_groups"][0]["health_check_port"] = port
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps(data))
    assert main(_run("replay", inventory, events)) == 2
    err = capsys.readouterr().err
    assert "$.target_groups[0].health_check_port" in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize(
    "content",
    ["[" * 100_000 + "]" * 100_000, '{"format": ' + "[" * 100_000 + "]" * 100_000 + "}"],
    ids=["deep array", "deep field"],
)
def test_a_file_nested_thousands_deep_is_one_line(
    content: str, events: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = tmp_path / "inventory.json"
    inventory.write_text(content)
    for command in ("replay", "explain", "plan"):
        assert main(_run(command, inventory, events)) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "nested too deeply" in err, err
