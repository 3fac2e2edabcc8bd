"""`replay` end to end: an inventory file and trail files in every wrapper, through the CLI."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from exporter.cli import main
from tests import cloudtrail_samples as ct
from tests.engine_world import NODE_PORT, SUBNETS, T0, incident_inventory, seconds

OPERATOR = ct.actor(role="platform-admin", user_agent="aws-cli/2.15.0", source_ip="198.51.100.7")


def _incident_records() -> list[dict]:  # type: ignore[type-arg]
    world = ct.permission(NODE_PORT, cidrs=["0.0.0.0/0"])
    subnets = ct.permission(NODE_PORT, cidrs=list(SUBNETS))
    return [
        ct.modify_tg_attributes_record("e1", T0 + seconds(10), actor=OPERATOR),
        ct.revoke_record("e2", T0 + seconds(20), "sg-node", [world]),
        ct.authorize_record("e3", T0 + seconds(80), "sg-node", [subnets], rule_ids=["sgr-1", "sgr-2"]),
        ct.unwatched_record("e4", T0 + seconds(30)),
    ]


@pytest.fixture
def inventory_file(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps(incident_inventory().to_dict()))
    return path


def _replay(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["replay", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_replay_prints_one_json_line_per_gap_from_a_gzip_trail_file(
    tmp_path: Path, inventory_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trail = tmp_path / "AWSLogs" / "111122223333" / "CloudTrail" / "us-east-1" / "2026" / "11" / "20"
    trail.mkdir(parents=True)
    (trail / "file.json.gz").write_bytes(ct.trail_file_bytes(_incident_records()))
    code, out, _err = _replay(capsys, "--inventory", str(inventory_file), str(tmp_path / "AWSLogs"))
    assert code == 0
    gaps = [json.loads(line) for line in out.splitlines()]
    assert [(g["flow"], g["duration_seconds"], g["cause"]) for g in gaps] == [
        ("health_check", 60.0, "revoke_before_authorize"),
        ("traffic", 60.0, "revoke_before_authorize"),
    ]
    for gap in gaps:
        assert gap["start"] == "2026-11-20T12:00:20Z" and gap["end"] == "2026-11-20T12:01:20Z"
        assert gap["actor"] == ct.CONTROLLER_ROLE
        assert gap["target_group"] == "k8s-shop-web-abc"
        assert gap["target_group_arn"] == ct.TG_ARN
        # who revoked (the controller's session) and what triggered it: the flip 10 s before
        assert gap["actor_session"] == "1700000000000000000"
        assert gap["trigger"]["event"] == "ModifyTargetGroupAttributes"
        assert gap["trigger"]["event_id"] == "e1" and gap["trigger"]["time"] == "2026-11-20T12:00:10Z"
        assert gap["trigger"]["who"] == "platform-admin/1700000000000000000"
        assert gap["trigger"]["attributes"] == {"preserve_client_ip.enabled": "false"}


def test_every_wrapper_gives_the_same_gaps(
    tmp_path: Path, inventory_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = _incident_records()
    outputs = []
    wrappers = {
        "lines.jsonl": ct.json_lines(records),
        "lookup.json": json.dumps(ct.lookup_result(records)).encode(),
        "eventbridge.json": json.dumps([ct.eventbridge_envelope(r) for r in records]).encode(),
        "trail.json": gzip.decompress(ct.trail_file_bytes(records)),
    }
    for name, payload in wrappers.items():
        path = tmp_path / name
        path.write_bytes(payload)
        code, out, _err = _replay(capsys, "--inventory", str(inventory_file), str(path))
        assert code == 0, name
        outputs.append(out)
    assert outputs[0].count("\n") == 2
    assert all(o == outputs[0] for o in outputs)


def test_duplicated_and_reversed_files_give_the_same_gaps(
    tmp_path: Path, inventory_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = _incident_records()
    (tmp_path / "a.json").write_bytes(ct.json_lines(records))
    (tmp_path / "b.json").write_bytes(ct.json_lines(list(reversed(records))))
    _, once, _ = _replay(capsys, "--inventory", str(inventory_file), str(tmp_path / "a.json"))
    _, twice, _ = _replay(capsys, "--inventory", str(inventory_file), str(tmp_path))
    assert once and once == twice


def test_table_format_and_rejections_are_reported(
    tmp_path: Path, inventory_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "good.json").write_bytes(ct.json_lines(_incident_records()))
    (tmp_path / "bad.json.gz").write_bytes(b"not gzip at all")
    code, out, err = _replay(capsys, "--inventory", str(inventory_file), "--format", "table", str(tmp_path))
    assert code == 0
    assert "revoke_before_authorize" in out and "health_check" in out
    assert "rejected" in err and "not_gzip" in err
    # The file is named with its reason; the good one is not named.
    assert f"{tmp_path / 'bad.json.gz'}: 1 rejected (not_gzip=1), 0 used" in err
    assert "good.json" not in err


@pytest.mark.parametrize(
    ("taken_after_revoke_s", "cause"),
    [
        (30, "pending_restore"),
        (299, "pending_restore"),
        (300, "revoke_without_restore"),
        (3600, "revoke_without_restore"),
    ],
)
def test_an_open_revoke_gap_is_pending_restore_until_5_minutes_after_the_revoke_as_the_daemon_shows_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], taken_after_revoke_s: int, cause: str
) -> None:
    revoked_at = T0 + seconds(20)
    inventory = tmp_path / "inventory.json"
    later = incident_inventory(taken_at=revoked_at + seconds(taken_after_revoke_s))
    inventory.write_text(json.dumps(later.to_dict()))
    world = ct.permission(NODE_PORT, cidrs=["0.0.0.0/0"])
    (tmp_path / "trail.json").write_bytes(
        ct.json_lines([ct.revoke_record("e2", revoked_at, "sg-node", [world])])
    )
    code, out, _ = _replay(capsys, "--inventory", str(inventory), str(tmp_path / "trail.json"))
    assert code == 0
    gaps = [json.loads(line) for line in out.splitlines()]
    assert [(g["flow"], g["end"], g["cause"]) for g in gaps] == [
        ("health_check", None, cause),
        ("traffic", None, cause),
    ]
    code, out, _ = _replay(
        capsys, "--inventory", str(inventory), "--format", "table", str(tmp_path / "trail.json")
    )
    assert code == 0 and out.count(cause) == 2


def _events_cases(folder: Path) -> dict[str, tuple[list[Path], str]]:
    """Inputs of which not one record is usable, and what stderr must say about each."""
    (folder / "empty").mkdir()
    (folder / "blank.json").write_bytes(b"")
    (folder / "nothing.json").write_bytes(b'{"Records": []}')
    (folder / "garbage.json").write_bytes(b"{not json")
    rejected = ct.revoke_record("e9", T0, "sg-node", [ct.permission(NODE_PORT, cidrs=["0.0.0.0/0"])])
    rejected["eventTime"] = "yesterday"
    (folder / "rejected.json").write_bytes(
        ct.json_lines([rejected, {"eventName": "RevokeSecurityGroupIngress", "eventID": "e8"}])
    )
    (folder / "dangling").mkdir()
    (folder / "dangling" / "gone.json").symlink_to(folder / "deleted.json")
    return {
        "unreadable": ([folder / "dangling"], "gone.json: 1 rejected (unreadable=1), 0 used"),
        "empty folder": ([folder / "empty"], f"{folder / 'empty'}: no files in it"),
        "empty file": ([folder / "blank.json"], f"{folder / 'blank.json'}: no CloudTrail record in it"),
        "empty trail": ([folder / "nothing.json"], "nothing.json: no CloudTrail record in it"),
        "not JSON": ([folder / "garbage.json"], "garbage.json: 1 rejected (not_json=1), 0 used"),
        "all rejected": (
            [folder / "rejected.json"],
            "rejected.json: 2 rejected (bad_time=1, missing_field=1), 0 used",
        ),
    }


@pytest.mark.parametrize(
    "case", ["empty folder", "empty file", "empty trail", "not JSON", "all rejected", "unreadable"]
)
def test_no_usable_record_gives_no_verdict_and_exits_2(
    tmp_path: Path, inventory_file: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    paths, warning = _events_cases(tmp_path)[case]
    for fmt in ("json", "table"):
        code, out, err = _replay(
            capsys, "--inventory", str(inventory_file), "--format", fmt, *map(str, paths)
        )
        assert code == 2 and out == "", (case, out)
        assert warning in err
        assert "no usable CloudTrail record" in err and "no verdict" in err


def test_verbose_names_each_rejected_record(
    tmp_path: Path, inventory_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _events_cases(tmp_path)
    code, _, err = _replay(capsys, "--inventory", str(inventory_file), str(tmp_path / "rejected.json"))
    assert code == 2 and "[event e9]" not in err
    code, _, err = _replay(
        capsys, "--inventory", str(inventory_file), "--verbose", str(tmp_path / "rejected.json")
    )
    assert code == 2
    assert "replay:   bad_time [event e9]: rejected.json: " in err
    assert "replay:   missing_field [event e8]: rejected.json: " in err


def test_only_other_events_warn_that_the_rules_are_the_inventorys(
    tmp_path: Path, inventory_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "other.json").write_bytes(ct.json_lines([ct.unwatched_record("e4", T0)]))
    code, out, err = _replay(capsys, "--inventory", str(inventory_file), str(tmp_path / "other.json"))
    assert code == 0 and out == ""
    assert "none of the 1 records is a security-group rule or target-group attribute change" in err


def test_a_pipe_closed_early_exits_quietly(tmp_path: Path, inventory_file: Path) -> None:
    import subprocess
    import sys

    world = ct.permission(NODE_PORT, cidrs=["0.0.0.0/0"])
    records = []
    for i in range(1500):  # 3,000 gap lines: far more than a pipe buffer holds
        records.append(ct.revoke_record(f"r{i}", T0 + seconds(100 * i), "sg-node", [world]))
        records.append(ct.authorize_record(f"a{i}", T0 + seconds(100 * i + 50), "sg-node", [world]))
    (tmp_path / "many.json").write_bytes(ct.json_lines(records))
    command = [sys.executable, "-m", "exporter", "replay", "--inventory", str(inventory_file)]
    process = subprocess.Popen(
        [*command, str(tmp_path / "many.json")], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()
    process.stdout.close()  # like `| head -1`
    err = process.stderr.read()
    code = process.wait(timeout=60)
    assert json.loads(first)["cause"] == "revoke_before_authorize"
    assert err == b"" and code == 141  # 128 + SIGPIPE, as a shell reports a pipe writer cut short


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"{not json", "not JSON"), (b'{"format": "other"}', "format"), (b"[]", "JSON object")],
)
def test_unusable_inventory_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    bad = tmp_path / "inventory.json"
    bad.write_bytes(content)
    (tmp_path / "events.json").write_bytes(b"[]")
    code, out, err = _replay(capsys, "--inventory", str(bad), str(tmp_path / "events.json"))
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1


def test_missing_events_path_exits_2(inventory_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = _replay(capsys, "--inventory", str(inventory_file), "/nonexistent/trail")
    assert code == 2 and "no such file" in err


def test_inventory_round_trips_through_its_json_form() -> None:
    inventory = incident_inventory(source_ranges=("203.0.113.0/24",), lb_security_groups=("sg-nlb",))
    from exporter.engine.inventory import Inventory

    assert Inventory.from_dict(json.loads(json.dumps(inventory.to_dict()))) == inventory
    assert inventory.taken_at == T0


def test_replacements_are_printed_as_their_declared_lines_after_the_gaps(
    tmp_path: Path, inventory_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trail = tmp_path / "trail.json"
    trail.write_text(json.dumps({"Records": _incident_records()}))
    code, out, _err = _replay(capsys, "--inventory", str(inventory_file), "--replacements", str(trail))
    assert code == 0
    lines = out.splitlines()
    assert [json.loads(line)["flow"] for line in lines[:-1]] == ["health_check", "traffic"]
    assert lines[-1] == (
        '{"kind": "replacement", "security_group": "sg-node", "order": "break_before_make", '
        '"time": "2026-11-20T12:00:20Z", "exposure_seconds": 60.0, "revoke_event_id": "e2", '
        f'"authorize_event_id": "e3", "actor": "{ct.CONTROLLER_ROLE}"}}'
    )
