"""Fault tests on the real daemon process (`python -m exporter run`) against a moto server.

Every daemon here runs on real time with short intervals (inventory 2 s, cloudtrail 2 s,
evaluate 1 s, overlap 600 s). The test's own boto3 clients drive EC2 on moto directly and a
CloudTrailRecorder puts the matching records into moto's LookupEvents store; the daemon reaches
moto either directly or through a FaultProxy the test can switch off. Waits are bounded; each
process is stopped by its PID in teardown.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.awsworld import CloudTrailRecorder, IncidentWorld, LookupSink, MotoServer, build_incident_world
from tests.support import wait_for
from tests.test_faults_support import (
    DaemonProcess,
    FaultProxy,
    Scraper,
    WallClock,
    by_label,
    daemon_env,
    total,
    value,
    write_config,
)

PERMISSION = [
    {"IpProtocol": "tcp", "FromPort": 31080, "ToPort": 31080, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
]
FLOWS = ("traffic", "health_check")

StartDaemon = Callable[..., DaemonProcess]


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[StartDaemon]:
    """start_daemon(endpoint, state, *flags, name=..., **config) -> a serving DaemonProcess."""
    started: list[DaemonProcess] = []

    def start(endpoint: str, state: Path, *flags: str, name: str = "daemon", **config: Any) -> DaemonProcess:
        cfg = write_config(tmp_path / f"{name}.yaml", state, **config)
        daemon = DaemonProcess(cfg, tmp_path / f"{name}.log", daemon_env(endpoint, tmp_path), *flags)
        started.append(daemon)
        return daemon.start()

    yield start
    for daemon in started:
        daemon.stop()


@pytest.fixture
def proxy(moto_server: MotoServer) -> Iterator[FaultProxy]:
    with FaultProxy(moto_server.url) as running:
        yield running


def _world(moto: MotoServer) -> tuple[Any, IncidentWorld, CloudTrailRecorder]:
    ec2, elbv2 = moto.client("ec2"), moto.client("elbv2")
    world = build_incident_world(ec2, elbv2, cluster="demo")
    recorder = CloudTrailRecorder(LookupSink(moto), WallClock())
    recorder.attach(ec2, elbv2)
    return ec2, world, recorder


def _up(text: str, source: str) -> float | None:
    found = [v for k, v in by_label(text, "sgchurn_up", "source").items() if k == source]
    return found[0] if found else None


def _serving_target_group(daemon: DaemonProcess) -> str | None:
    text = daemon.metrics()
    if _up(text, "inventory") == 1 and value(text, "sgchurn_target_group_reachability_ratio", flow="traffic"):
        return text
    return None


def _event_seconds(record: dict[str, Any]) -> float:
    from exporter.engine.timeutil import parse_time

    return parse_time(record["eventTime"]).timestamp()


# --- 1. the AWS endpoint goes away mid-run and comes back ----------------------------------------


def test_endpoint_outage_keeps_serving_and_ingests_outage_records_once(
    clean_moto: MotoServer, proxy: FaultProxy, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    ec2, world, recorder = _world(clean_moto)
    daemon = start_daemon(proxy.url, tmp_path / "state.sqlite3")
    wait_for(lambda: _serving_target_group(daemon), timeout=30, what="the first inventory")

    with Scraper(daemon.url + "/metrics") as scraper:
        proxy.down()

        def both_down() -> bool:
            text = daemon.metrics()
            return _up(text, "inventory") == 0 and _up(text, "lookup_events") == 0

        wait_for(both_down, timeout=40, what="sgchurn_up 0 for inventory and lookup_events")
        # While the endpoint is gone the controller replaces the rule, with an operator's
        # unrelated change in between: four records the daemon cannot read yet.
        ec2.revoke_security_group_ingress(GroupId=world.node_sg_id, IpPermissions=PERMISSION)
        extra = [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.9.0.0/16"}]}]
        with recorder.acting_as():
            ec2.authorize_security_group_ingress(GroupId=world.node_sg_id, IpPermissions=extra)
            ec2.revoke_security_group_ingress(GroupId=world.node_sg_id, IpPermissions=extra)
        time.sleep(2)  # the controller's break-before-make gap
        ec2.authorize_security_group_ingress(GroupId=world.node_sg_id, IpPermissions=PERMISSION)
        assert len(recorder.records) == 4
        # Stay down for two more failing inventory runs: still 0, and no new log line per run.
        _wait_runs(daemon, "inventory", 2)
        text = daemon.metrics()
        assert _up(text, "inventory") == 0 and _up(text, "lookup_events") == 0
        assert total(text, "sgchurn_cloudtrail_events_total") == 0

        proxy.up()

        def recovered() -> str | None:
            text = daemon.metrics()
            done = (
                _up(text, "inventory") == 1
                and _up(text, "lookup_events") == 1
                and total(text, "sgchurn_cloudtrail_events_total") >= 4
                and all(total(text, "sgchurn_rule_gaps_total", flow=f) >= 1 for f in FLOWS)
            )
            return text if done else None

        wait_for(recovered, timeout=40, what="recovery and ingestion of the outage records")
        # The next CloudTrail poll (it starts after the one that ingested) re-reads the same
        # 600 s overlap: nothing may count twice.
        _wait_runs(daemon, "cloudtrail", 1)
        text = daemon.metrics()

    assert scraper.failures() == [] and len(scraper.results) > 20
    assert by_label(text, "sgchurn_cloudtrail_events_total", "event_name") == {
        "RevokeSecurityGroupIngress": 2.0,
        "AuthorizeSecurityGroupIngress": 2.0,
    }
    for flow in FLOWS:
        assert total(text, "sgchurn_rule_gaps_total", flow=flow) == 1
        assert value(text, "sgchurn_rule_gaps_total", flow=flow, cause="revoke_before_authorize") == 1
        assert value(text, "sgchurn_rule_gap_open", flow=flow) == 0
    assert total(text, "sgchurn_cloudtrail_records_rejected_total") == 0
    assert daemon.alive()
    # A line per change of error, not per failing run (the first poll cut may name other events).
    failed = [(e["source"], e["error"]) for e in daemon.log_lines() if e.get("event") == "source failed"]
    assert {source for source, _ in failed} == {"inventory", "lookup_events"}
    assert len(failed) == len(set(failed)) <= 4, failed
    recovered = sorted(
        str(e.get("source")) for e in daemon.log_lines() if e.get("event") == "source recovered"
    )
    assert recovered == ["inventory", "lookup_events"]  # each recovery line names its source


def _job_runs(snapshot: dict[str, Any], job: str) -> int:
    for entry in snapshot["jobs"]:
        if entry["job"] == job:
            return int(entry["runs"])
    raise AssertionError(f"no job {job} in the snapshot")


def _wait_runs(daemon: DaemonProcess, job: str, more: int) -> None:
    """Wait until `job` has finished `more` further runs."""
    runs = _job_runs(daemon.snapshot(), job)
    wait_for(
        lambda: _job_runs(daemon.snapshot(), job) >= runs + more,
        timeout=20 * more,
        what=f"{more} more {job} runs",
    )


# --- 3. kill -9 during a gap, restart; SIGTERM ------------------------------------------------------


def _open_gaps(daemon: DaemonProcess) -> dict[str, dict[str, Any]]:
    return {g["flow"]: g for g in daemon.snapshot()["open_gaps"]}


def test_kill_9_during_a_gap_then_restart_keeps_the_start_and_counts_once(
    clean_moto: MotoServer, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    ec2, world, recorder = _world(clean_moto)
    state = tmp_path / "state.sqlite3"
    first = start_daemon(clean_moto.url, state, name="first")
    wait_for(lambda: _serving_target_group(first), timeout=30, what="the first inventory")

    ec2.revoke_security_group_ingress(GroupId=world.node_sg_id, IpPermissions=PERMISSION)
    revoked_at = _event_seconds(recorder.records[-1])

    def explained_open_gaps(daemon: DaemonProcess) -> str | None:
        gaps = _open_gaps(daemon)
        if set(gaps) != set(FLOWS) or not all(g["explained"] for g in gaps.values()):
            return None
        text = daemon.metrics()
        starts = {f: value(text, "sgchurn_rule_gap_open_since_timestamp_seconds", flow=f) for f in FLOWS}
        return text if all(s == revoked_at for s in starts.values()) else None

    before = wait_for(lambda: explained_open_gaps(first), timeout=40, what="the explained open gaps")
    assert {g["cause"] for g in _open_gaps(first).values()} == {
        "pending_restore"
    }  # the controller may still restore it
    assert first.kill() == -9

    second = start_daemon(clean_moto.url, state, name="second")
    after = wait_for(lambda: explained_open_gaps(second), timeout=40, what="the open gaps after restart")
    for flow in FLOWS:
        name = "sgchurn_rule_gap_open_since_timestamp_seconds"
        assert value(after, name, flow=flow) == value(before, name, flow=flow) == revoked_at
    assert total(after, "sgchurn_rule_gaps_total") == 0

    ec2.authorize_security_group_ingress(GroupId=world.node_sg_id, IpPermissions=PERMISSION)

    def closed() -> str | None:
        text = second.metrics()
        done = not _open_gaps(second) and all(
            total(text, "sgchurn_rule_gaps_total", flow=f) >= 1 for f in FLOWS
        )
        return text if done else None

    wait_for(closed, timeout=40, what="the gaps to close")
    _wait_runs(second, "cloudtrail", 1)  # one more poll re-reads the overlap: no double counts
    text = second.metrics()
    for flow in FLOWS:
        assert value(text, "sgchurn_rule_gaps_total", flow=flow, cause="revoke_before_authorize") == 1
        assert total(text, "sgchurn_rule_gaps_total", flow=flow) == 1
        assert value(text, "sgchurn_rule_gap_open", flow=flow) == 0
    assert by_label(text, "sgchurn_cloudtrail_events_total", "event_name") == {
        "RevokeSecurityGroupIngress": 1.0,
        "AuthorizeSecurityGroupIngress": 1.0,
    }
    recent = {g["flow"]: g for g in second.snapshot()["recent_gaps"]}
    assert set(recent) == set(FLOWS)
    assert {g["duration_seconds"] for g in recent.values()} == {
        _event_seconds(recorder.records[-1]) - revoked_at
    }

    code, seconds = second.terminate(timeout=10)
    assert code == 0 and seconds < 10


# --- 4. a corrupt or locked state file ----------------------------------------------------------------


def _state_up(text: str) -> float | None:
    return value(text, "sgchurn_up", source="state", aws_account_id="", aws_region="")


def test_corrupt_state_serves_with_one_clear_line_and_reset_state_starts_fresh(
    clean_moto: MotoServer, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    _world(clean_moto)
    state = tmp_path / "state.sqlite3"
    garbage = b"this is not a database" * 200
    state.write_bytes(garbage)

    degraded = start_daemon(clean_moto.url, state, name="degraded")
    text = wait_for(lambda: _serving_target_group(degraded), timeout=30, what="inventory on memory state")
    assert _state_up(text) == 0
    assert degraded.get("/healthz").status_code == 200
    advice = [e for e in degraded.log_lines() if "--reset-state" in str(e)]
    assert len(advice) == 1, advice
    assert advice[0]["level"] == "error" and "corrupt" in advice[0]["error"]
    assert str(state) in advice[0]["error"]
    assert state.read_bytes() == garbage  # never touched without --reset-state
    code, _ = degraded.terminate()
    assert code == 0

    fresh = start_daemon(clean_moto.url, state, "--reset-state", name="fresh")
    text = fresh.metrics()
    assert _state_up(text) is None
    aside = list(tmp_path.glob("state.sqlite3.corrupt-*"))
    assert [p.read_bytes() for p in aside if not p.name.endswith(("-wal", "-shm"))] == [garbage]
    moved = [e for e in fresh.log_lines() if e.get("event") == "state file moved aside; starting fresh"]
    assert len(moved) == 1 and moved[0]["moved_to"] == str(aside[0])
    with sqlite3.connect(state) as db:
        assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == ("1",)
    assert fresh.terminate()[0] == 0


@pytest.mark.parametrize("history", ["new-file", "used-by-an-exporter"])
def test_locked_state_file_is_a_clear_error_and_the_daemon_keeps_serving(
    history: str, clean_moto: MotoServer, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    _world(clean_moto)
    state = tmp_path / "state.sqlite3"
    if history == "used-by-an-exporter":
        from exporter.daemon.state import StateStore

        StateStore(state).close()  # WAL mode, schema in place, as a previous run leaves it
    holder = sqlite3.connect(state, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        daemon = start_daemon(clean_moto.url, state)
        text = wait_for(
            lambda: _serving_target_group(daemon), timeout=30, what="inventory with a locked state"
        )
        assert _state_up(text) == 0
        assert daemon.get("/healthz").status_code == 200
        errors = [e for e in daemon.log_lines() if e.get("level") == "error"]
        assert len(errors) == 1, errors
        assert "locked" in errors[0]["error"] and str(state) in errors[0]["error"]
        failed = [e for e in daemon.log_lines() if e.get("event") == "source failed"]
        assert failed == []
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert daemon.terminate()[0] == 0


def test_reset_state_never_moves_a_locked_file_aside(tmp_path: Path) -> None:
    """--reset-state is for a corrupt file; a locked one belongs to a live process and stays put."""
    from exporter.config import load_settings
    from exporter.daemon.assemble import build_daemon
    from exporter.daemon.state import StateStore

    state = tmp_path / "state.sqlite3"
    StateStore(state).close()
    before = sorted(p.name for p in tmp_path.iterdir())
    settings = load_settings(
        None,
        environ={},
        overrides={"targets": [{"region": "us-east-1"}], "state": {"path": str(state)}},
    )
    holder = sqlite3.connect(state, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        assembly = build_daemon(settings, endpoint_url="http://127.0.0.1:9", reset_state=True)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert assembly.store.path == ":memory:"
    assert assembly.state_error is not None and "locked" in assembly.state_error
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_operations_doc_matches_the_state_advice(tmp_path: Path) -> None:
    """The log line's advice (--reset-state) and the fresh-start settings are what the doc describes."""
    from exporter.config import CloudTrailSettings
    from exporter.daemon.state import StateError, StateStore

    doc = (Path(__file__).resolve().parents[1] / "docs" / "operations.md").read_text()
    (tmp_path / "state.sqlite3").write_text("not a database\n" * 100)
    with pytest.raises(StateError) as corrupt:
        StateStore(tmp_path / "state.sqlite3")
    assert "--reset-state" in str(corrupt.value) and "--reset-state" in doc
    for setting in ("start_lookback_seconds", "overlap_seconds", "retention_seconds"):
        assert hasattr(CloudTrailSettings, setting) and f"cloudtrail.{setting}" in doc
    defaults = CloudTrailSettings()
    assert (defaults.start_lookback_seconds, defaults.overlap_seconds) == (3600, 900)  # "1 h + 15 min"
    assert "state file moved aside; starting fresh" in doc


def test_sigterm_exits_within_10_s_while_lookup_events_is_throttled(
    clean_moto: MotoServer, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """A job deep in throttling backoff must not hold the process past the 10 s drain."""
    _world(clean_moto)
    clean_moto.throttle(10_000)
    daemon = start_daemon(clean_moto.url, tmp_path / "state.sqlite3")
    wait_for(  # every LookupEvents is throttled: this job would back off for minutes
        lambda: len([r for r in clean_moto.requests() if r["operation"] == "LookupEvents"]) >= 2,
        timeout=30,
        what="the poller to be in its retry loop",
    )
    code, seconds = daemon.terminate(timeout=15)
    assert code == 0 and seconds < 10, seconds
    assert [e["event"] for e in daemon.log_lines()][-2:] == [
        "stopping",
        "stopped with a job still running; leaving it",
    ]
