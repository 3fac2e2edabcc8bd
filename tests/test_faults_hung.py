"""Fault tests for endpoints that accept a connection and never answer (AWS and Kubernetes).

The exporter's clients have connect and read timeouts, but a read timeout times its retries
is longer than a poll interval. Each job has a deadline of one interval: a source it has not
reached by then is shown down (sgchurn_up 0, "DeadlineExceeded") while the call still hangs, and
gets its own outcome once the call ends.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.config import load_settings
from exporter.daemon.assemble import build_daemon
from exporter.daemon.service import MIN_JOB_DEADLINE_SECONDS, Daemon
from exporter.sources.aws import CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS, client_config
from exporter.sources.kubernetes import DEFAULT_TIMEOUT

GUARD = 60.0  # seconds: a hang guard
INTERVAL = MIN_JOB_DEADLINE_SECONDS  # the shortest deadline there is


@contextmanager
def silent_endpoint() -> Iterator[int]:
    """A TCP port that accepts connections (into its backlog) and never answers; closing it
    resets them, which ends the calls still waiting."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield listener.getsockname()[1]


def _settings(tmp_path: Path, **overrides: Any) -> Any:
    base = {"targets": [{"region": "us-east-1"}], "state": {"path": str(tmp_path / "state.sqlite3")}}
    return load_settings(None, environ={}, overrides={**base, **overrides})


def _source(daemon: Daemon, name: str) -> tuple[bool, str | None]:
    found = [s for s in daemon.snapshot().sources if s.source == name]
    return (found[0].up, found[0].last_error) if found else (True, None)  # nothing published yet


def _wait_down(daemon: Daemon, name: str, job: threading.Thread) -> str:
    deadline = time.monotonic() + GUARD
    while True:
        up, error = _source(daemon, name)
        if not up and error:
            assert job.is_alive(), "the job ended first: the deadline was not what turned it down"
            return error
        assert time.monotonic() < deadline, f"{name} still up after {GUARD} s"
        time.sleep(0.05)


def test_clients_have_connect_and_read_timeouts() -> None:
    config = client_config()
    assert (config.connect_timeout, config.read_timeout) == (CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS)
    assert 0 < CONNECT_TIMEOUT_SECONDS <= 5 and 0 < READ_TIMEOUT_SECONDS <= 15
    assert DEFAULT_TIMEOUT == (3.0, 10.0)


def test_a_hung_aws_endpoint_shows_down_within_one_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")  # the calls end soon after the endpoint closes
    settings = _settings(
        tmp_path, kubernetes={"enabled": "false"}, intervals={"inventory": INTERVAL, "cloudtrail": INTERVAL}
    )
    with silent_endpoint() as port:
        assembly = build_daemon(settings, endpoint_url=f"http://127.0.0.1:{port}")
        daemon = assembly.daemon
        jobs = [
            threading.Thread(target=daemon.run_job, args=(n,), daemon=True)
            for n in ("inventory", "cloudtrail")
        ]
        for job in jobs:
            job.start()
        job_name = {"inventory": "inventory", "lookup_events": "cloudtrail"}
        for name, job in zip(("inventory", "lookup_events"), jobs, strict=True):
            error = _wait_down(daemon, name, job)
            assert (
                error
                == f"DeadlineExceeded: no answer after {INTERVAL:g} s (the {job_name[name]} job's deadline)"
            )
        assert _source(daemon, "state") == (True, None)  # nothing else is blamed
    for job in jobs:  # the endpoint closed: the calls fail on their own now
        job.join(GUARD)
    assert not any(job.is_alive() for job in jobs)
    up, error = _source(daemon, "inventory")
    assert up is False and error is not None and not error.startswith("DeadlineExceeded")
    assembly.store.close()


def _kubeconfig(path: Path, port: int) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    return path


def test_a_hung_kubernetes_api_shows_down_within_one_interval(tmp_path: Path) -> None:
    with silent_endpoint() as port:
        kubeconfig = str(_kubeconfig(tmp_path / "kubeconfig", port))
        settings = _settings(
            tmp_path,
            kubernetes={"enabled": "true", "kubeconfig": kubeconfig},
            intervals={"kubernetes": INTERVAL},
        )
        assembly = build_daemon(settings, endpoint_url="http://127.0.0.1:9")
        daemon = assembly.daemon
        job = threading.Thread(target=daemon.run_job, args=("kubernetes",), daemon=True)
        job.start()
        error = _wait_down(daemon, "kubernetes", job)
        assert error == f"DeadlineExceeded: no answer after {INTERVAL:g} s (the kubernetes job's deadline)"
    job.join(GUARD)  # the endpoint closed: the call fails on its own, and its error replaces the deadline's
    assert not job.is_alive()
    up, error = _source(daemon, "kubernetes")
    assert up is False and error is not None and "unreachable" in error
    assembly.store.close()


def test_a_source_reached_before_the_deadline_keeps_its_own_outcome() -> None:
    release = threading.Event()
    calls = {"n": 0}

    def kube_sync() -> object:
        calls["n"] += 1
        if calls["n"] > 1:
            release.wait(GUARD)
        return lambda inventory: {}

    from exporter.daemon.state import StateStore

    store = StateStore(":memory:")
    daemon = Daemon(
        [],
        [],
        store,
        intervals={"inventory": 60, "cloudtrail": 60, "kubernetes": 0.5, "evaluate": 60},
        kube_sync=kube_sync,
    )  # type: ignore[arg-type]
    daemon.run_job("kubernetes")  # quick: up, and no deadline fires after it
    deadline = time.monotonic() + GUARD  # its deadline was cancelled, not left to fire later
    while any(t.name == "deadline-kubernetes" and t.is_alive() for t in threading.enumerate()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert _source(daemon, "kubernetes") == (True, None)
    job = threading.Thread(target=daemon.run_job, args=("kubernetes",), daemon=True)
    job.start()
    assert _wait_down(daemon, "kubernetes", job).startswith("DeadlineExceeded")
    release.set()
    job.join(GUARD)
    assert _source(daemon, "kubernetes") == (True, None)
    store.close()
