"""Fault tests for the state store: a full disk, a read-only file, file mode and what is stored.

The disk is a tmpfs of a few hundred KiB this module mounts itself, and the read-only file is
made immutable with `chattr +i` (root writes through a mode of 0444, not through the immutable
flag). Both need CAP_SYS_ADMIN / CAP_LINUX_IMMUTABLE: the tests say so and skip without them.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import generate_latest

from exporter.daemon.assemble import build_daemon
from exporter.daemon.state import STATE_FILE_MODE, StateError, StateStore
from exporter.engine.records import parse_record
from exporter.metrics import build_registry
from exporter.web import readiness
from tests import cloudtrail_samples as samples
from tests.awsworld import CloudTrailRecorder, LookupSink, ManualClock, MotoServer, build_incident_world
from tests.test_faults import _settings
from tests.test_faults_support import by_label, value

PERMISSION = [
    {"IpProtocol": "tcp", "FromPort": 31080, "ToPort": 31080, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
]


@contextmanager
def tiny_disk(root: Path, size: str = "512k") -> Iterator[Path]:
    """A tmpfs of `size` mounted at root/disk for the test's life."""
    mount = root / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], check=False)
    if done.returncode != 0:
        pytest.skip("mounting a tmpfs needs root with CAP_SYS_ADMIN (the container here has it)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk: Path) -> Path:
    """Write a filler file until the disk is full; returns it (delete it to free the space)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


def _immutable(path: Path, on: bool) -> None:
    done = subprocess.run(["chattr", "+i" if on else "-i", str(path)], check=False, capture_output=True)
    if done.returncode != 0 and on:
        pytest.skip(f"chattr +i needs CAP_LINUX_IMMUTABLE: {done.stderr.decode().strip()}")


def _metrics(daemon: Any) -> str:
    return generate_latest(build_registry(daemon.snapshot)).decode()


def _up(text: str, source: str) -> float | None:
    return by_label(text, "sgchurn_up", "source").get(source)


def test_a_full_disk_is_reported_as_state_down_until_a_write_succeeds(
    clean_moto: MotoServer, tmp_path: Path
) -> None:
    ec2, elbv2 = clean_moto.client("ec2"), clean_moto.client("elbv2")
    world = build_incident_world(ec2, elbv2, cluster="demo")
    clock = ManualClock(datetime.now(tz=UTC).replace(microsecond=0))
    CloudTrailRecorder(LookupSink(clean_moto), clock).attach(ec2, elbv2)
    with tiny_disk(tmp_path) as disk:
        assembly = build_daemon(
            _settings(disk / "state.sqlite3"), endpoint_url=clean_moto.url, clock=clock.now
        )
        daemon = assembly.daemon
        try:
            daemon.run_all_once()
            assert _up(_metrics(daemon), "state") == 1
            filler = _fill(disk)
            clock.advance(10)
            ec2.revoke_security_group_ingress(GroupId=world.node_sg_id, IpPermissions=PERMISSION)
            clock.advance(5)
            for _ in range(3):  # it stays down over every job, evaluate included
                daemon.run_all_once()
                text = _metrics(daemon)
                assert _up(text, "state") == 0
                assert _up(text, "lookup_events") == 1  # CloudTrail answered: it is not blamed
                assert _up(text, "inventory") == 1
                snapshot = daemon.snapshot()
                assert readiness(snapshot) == (True, "ready")  # readiness never depends on the store
                state = next(s for s in snapshot.sources if s.source == "state")
                assert state.last_error is not None and "full" in state.last_error
                assert by_label(text, "sgchurn_cloudtrail_events_total", "event_name") == {}
                clock.advance(5)
            # the gap is on /metrics from the poll even with no store
            assert {g.flow for g in daemon.snapshot().open_gaps} == {"traffic", "health_check"}
            filler.unlink()
            clock.advance(30)
            ec2.authorize_security_group_ingress(GroupId=world.node_sg_id, IpPermissions=PERMISSION)
            clock.advance(5)
            daemon.run_all_once()
            text = _metrics(daemon)
            assert _up(text, "state") == 1
            # nothing lost, nothing doubled: the revoke not stored while full is read again
            assert by_label(text, "sgchurn_cloudtrail_events_total", "event_name") == {
                "RevokeSecurityGroupIngress": 1.0,
                "AuthorizeSecurityGroupIngress": 1.0,
            }
            for flow in ("traffic", "health_check"):
                assert value(text, "sgchurn_rule_gaps_total", flow=flow, cause="revoke_before_authorize") == 1
        finally:
            assembly.store.close()


def test_a_read_only_state_file_is_a_permission_error_never_moved_aside(
    clean_moto: MotoServer, tmp_path: Path
) -> None:
    state = tmp_path / "state.sqlite3"
    StateStore(state).close()
    contents = state.read_bytes()
    _immutable(state, True)
    try:
        with pytest.raises(StateError) as caught:
            StateStore(state)
        assert caught.value.kind == "permission"
        assert str(caught.value) == f"cannot write {state}: permission denied"
        build_incident_world(clean_moto.client("ec2"), clean_moto.client("elbv2"), cluster="demo")
        assembly = build_daemon(_settings(state), endpoint_url=clean_moto.url, reset_state=True)
        try:
            assert assembly.store.path == ":memory:"
            assert assembly.state_error == f"cannot write {state}: permission denied"
            assert "another exporter" not in assembly.state_error
            assembly.daemon.run_all_once()
            text = _metrics(assembly.daemon)
            assert _up(text, "state") == 0
            assert readiness(assembly.daemon.snapshot())[0] is True
        finally:
            assembly.store.close()
    finally:
        _immutable(state, False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.sqlite3"]  # nothing moved aside
    assert state.read_bytes() == contents


def test_reset_state_moves_only_a_file_that_fails_the_integrity_check(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.sqlite3"
    corrupt.write_bytes(b"not a database" * 100)
    with pytest.raises(StateError) as caught:
        StateStore(corrupt)
    assert caught.value.kind == "corrupt" and "--reset-state" in str(caught.value)
    newer = tmp_path / "newer.sqlite3"
    StateStore(newer).close()
    with sqlite3.connect(newer) as db:
        db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    db.close()
    from exporter.daemon.assemble import open_store

    store, error = open_store(str(newer), reset=True)
    store.close()
    assert store.path == ":memory:" and error is not None and "schema version 99" in error
    assert not list(tmp_path.glob("newer.sqlite3.corrupt-*"))  # a newer schema is not corruption
    store, error = open_store(str(corrupt), reset=True)
    store.close()
    assert error is None and store.path == str(corrupt)
    assert len(list(tmp_path.glob("corrupt.sqlite3.corrupt-*"))) == 1


def test_state_files_are_created_mode_0600(tmp_path: Path) -> None:
    state = tmp_path / "sub" / "state.sqlite3"
    old = os.umask(0o022)
    try:
        store = StateStore(state)
        with store.transaction() as db:
            store.set_meta("probe", "1", db)
        made = sorted(tmp_path.joinpath("sub").iterdir())
        assert [p.name for p in made] == ["state.sqlite3", "state.sqlite3-shm", "state.sqlite3-wal"]
        for path in made:
            assert stat.S_IMODE(path.stat().st_mode) == STATE_FILE_MODE == 0o600, path
        store.close()
    finally:
        os.umask(old)


def test_stored_records_keep_no_access_key_id_and_parse_the_same(tmp_path: Path) -> None:
    from exporter.daemon.monitor import Monitor

    state = tmp_path / "state.sqlite3"
    store = StateStore(state)
    when = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    record = samples.revoke_record(
        f"ev-{uuid.uuid4()}", when, "sg-0123456789abcdef0", [samples.permission(cidrs=["0.0.0.0/0"])]
    )
    assert record["userIdentity"]["accessKeyId"]

    def describe(_: datetime) -> Any:
        raise AssertionError("not polled")

    monitor = Monitor(
        "default@us-east-1", "us-east-1", store, settle_seconds=0, retention_seconds=86400, describe=describe
    )
    assert monitor.ingest(when, [record]).new == 1
    store.close()
    with sqlite3.connect(state) as db:
        (blob,) = db.execute("SELECT record FROM records").fetchone()
    stored = orjson.loads(blob)
    assert "accessKeyId" not in stored["userIdentity"]
    assert b"ASIAEXAMPLEKEY" not in bytes(blob)
    assert {k: v for k, v in stored["userIdentity"].items()} == {
        k: v for k, v in record["userIdentity"].items() if k != "accessKeyId"
    }
    assert parse_record(stored) == parse_record(record)  # what the engine reads is all kept
