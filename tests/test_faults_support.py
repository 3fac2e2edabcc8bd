"""Helpers for the fault tests (tests/test_faults.py, tests/test_faults_process.py). No tests here.

- `FaultProxy(upstream)`: an HTTP proxy on 127.0.0.1 (a free port) between the exporter and moto.
  `.down()` / `.up()` switch the endpoint off and on (while down, every connection is reset
  without an answer); `.throttle(services, seconds=|count=)` answers AWS throttling errors
  for that long or that many requests; `.replace_event(event_id, body)` swaps the
  CloudTrailEvent of one LookupEvents result (truncated JSON, wrong types, huge records: things
  moto's store cannot hold).
- `DaemonProcess`: `python -m exporter run --config FILE` as a subprocess, its log and its web
  endpoints; stopped by PID.
- Metric helpers over the Prometheus text format, and `WallClock` (a recorder clock
  on real time, for daemons that run on real time).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.awsworld import REPO, TEST_ENV, ManualClock
from tests.support import wait_for

T = TypeVar("T")

_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection", "upgrade", "te"}
)
_SERVICE_ALIASES = {"elasticloadbalancing": "elbv2"}


# --- waiting and time ------------------------------------------------------------------------


class WallClock(ManualClock):
    """A recorder clock that reads real UTC time (for a daemon that runs on real time)."""

    def now(self) -> datetime:
        return datetime.now(tz=UTC)

    def advance(self, seconds: float) -> datetime:  # pragma: no cover - real time cannot be moved
        raise NotImplementedError("WallClock follows real time")


# --- metrics -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def parse_samples(text: str) -> list[Sample]:
    return [
        Sample(s.name, dict(s.labels), float(s.value))
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def matching(text: str, name: str, **labels: str) -> list[Sample]:
    return [
        s
        for s in parse_samples(text)
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]


def value(text: str, name: str, **labels: str) -> float | None:
    """The one sample of `name` with these labels (None when absent); fails if several match."""
    found = matching(text, name, **labels)
    assert len(found) <= 1, f"{name} {labels} matches several samples: {found}"
    return found[0].value if found else None


def total(text: str, name: str, **labels: str) -> float:
    """The sum of every sample of `name` with these labels (0 when none)."""
    return sum(s.value for s in matching(text, name, **labels))


def by_label(text: str, name: str, label: str) -> dict[str, float]:
    """{label value: sample value} for every sample of `name`."""
    return {s.labels[label]: s.value for s in matching(text, name) if label in s.labels}


# --- the proxy ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProxyEntry:
    time: float
    service: str
    operation: str
    outcome: str  # forwarded | reset | throttled


def _service(headers: Mapping[str, str]) -> str:
    auth = headers.get("Authorization", "")
    try:
        scope = auth.split("Credential=", 1)[1].split(",", 1)[0]
        service = scope.split("/")[3]
    except IndexError:
        return "unknown"
    return _SERVICE_ALIASES.get(service, service)


def _operation(headers: Mapping[str, str], body: bytes) -> str:
    target = headers.get("X-Amz-Target")
    if target:
        return target.rsplit(".", 1)[-1]
    action = parse_qs(body.decode("utf-8", "replace")).get("Action")
    return action[0] if action else "?"


def throttling_response(service: str) -> tuple[int, str, bytes]:
    """(status, content type, body) of the error AWS answers when a caller is throttled."""
    if service == "ec2":
        body = (
            "<Response><Errors><Error><Code>RequestLimitExceeded</Code>"
            "<Message>Request limit exceeded.</Message></Error></Errors>"
            "<RequestID>00000000-0000-0000-0000-000000000000</RequestID></Response>"
        )
        return 503, "text/xml", body.encode()
    if service in ("cloudtrail",):
        data = {"__type": "ThrottlingException", "message": "Rate exceeded"}
        return 400, "application/x-amz-json-1.1", json.dumps(data).encode()
    body = (
        "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>"
        "<Message>Rate exceeded</Message></Error>"
        "<RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
    )
    return 400, "text/xml", body.encode()


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ProxyServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def _reset(self) -> None:
        """Drop the connection without an answer (RST): the endpoint is gone."""
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True

    def _handle(self) -> None:
        proxy = self.server.fault_proxy
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers_in = {k: v for k, v in self.headers.items()}
        service, operation = _service(headers_in), _operation(headers_in, body)
        outcome = proxy.decide(service)
        proxy.note(ProxyEntry(time.time(), service, operation, outcome))
        if outcome == "reset":
            self._reset()
            return
        if outcome == "throttled":
            status, content_type, data = throttling_response(service)
            self._answer(status, [("Content-Type", content_type)], data)
            return
        upstream = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            upstream.request(self.command, self.path, body=body or None, headers=headers)
            response = upstream.getresponse()
            data = response.read()
            reply_headers = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
            status = response.status
        except OSError:
            self._reset()
            return
        finally:
            upstream.close()
        if operation == "LookupEvents" and status == 200:
            data = proxy.rewrite_lookup(data)
        self._answer(status, reply_headers, data)

    def _answer(self, status: int, headers: Iterable[tuple[str, str]], data: bytes) -> None:
        self.send_response(status)
        for key, header_value in headers:
            self.send_header(key, header_value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    fault_proxy: FaultProxy


class FaultProxy:
    """An HTTP proxy to one upstream (the moto server) that can go away, throttle and rewrite."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = int(parts.port or 80)
        self._lock = threading.Lock()
        self._down = False
        self._throttle_until = 0.0
        self._throttle_count = 0
        self._throttled_services: frozenset[str] = frozenset()
        self._replacements: dict[str, Any] = {}
        self.log: list[ProxyEntry] = []
        self._server = _ProxyServer(("127.0.0.1", 0), _ProxyHandler)
        self._server.fault_proxy = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fault-proxy", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- faults ---------------------------------------------------------------------------
    def down(self) -> None:
        with self._lock:
            self._down = True

    def up(self) -> None:
        with self._lock:
            self._down = False

    def throttle(self, services: Iterable[str], *, seconds: float = 0.0, count: int = 0) -> None:
        """Answer requests to these services with a throttling error: for `seconds`, or the next `count`."""
        with self._lock:
            self._throttled_services = frozenset(services)
            self._throttle_until = time.monotonic() + seconds
            self._throttle_count = count

    def replace_event(self, event_id: str, body: Any) -> None:
        """Serve `body` (any JSON value) as the CloudTrailEvent of the result with this EventId."""
        with self._lock:
            self._replacements[event_id] = body

    # --- used by the handler ------------------------------------------------------------------
    def decide(self, service: str) -> str:
        with self._lock:
            if self._down:
                return "reset"
            if service in self._throttled_services:
                if self._throttle_count > 0:
                    self._throttle_count -= 1
                    return "throttled"
                if time.monotonic() < self._throttle_until:
                    return "throttled"
        return "forwarded"

    def note(self, entry: ProxyEntry) -> None:
        with self._lock:
            self.log.append(entry)

    def entries(self) -> list[ProxyEntry]:
        with self._lock:
            return list(self.log)

    def rewrite_lookup(self, data: bytes) -> bytes:
        with self._lock:
            replacements = dict(self._replacements)
        if not replacements:
            return data
        body = json.loads(data)
        for event in body.get("Events", []):
            event_id = str(event.get("EventId"))
            if event_id in replacements:
                event["CloudTrailEvent"] = replacements[event_id]
        return json.dumps(body).encode()


# --- the daemon as a process -------------------------------------------------------------------


def daemon_env(endpoint_url: str, folder: Path) -> dict[str, str]:
    """The environment for an exporter subprocess: test credentials and one AWS endpoint only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(TEST_ENV)
    env["AWS_ENDPOINT_URL"] = endpoint_url
    env["AWS_CONFIG_FILE"] = str(folder / "no-aws-config")
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(folder / "no-aws-credentials")
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("KUBECONFIG", None)
    return env


def write_config(path: Path, state: Path, **overrides: Any) -> Path:
    """A fast-cycling daemon config: inventory 2 s, cloudtrail 2 s, evaluate 1 s, overlap 600 s."""
    config: dict[str, Any] = {
        "listen_address": "127.0.0.1",
        "listen_port": 0,
        "cluster_name": "demo",
        "log_format": "json",
        "targets": [{"region": "us-east-1"}],
        "intervals": {"inventory": 2, "cloudtrail": 2, "evaluate": 1, "kubernetes": 60},
        "cloudtrail": {"overlap_seconds": 600, "settle_seconds": 120},
        "state": {"path": str(state)},
        "kubernetes": {"enabled": "false"},
    }
    config.update(overrides)
    path.write_text(yaml.safe_dump(config))
    return path


class DaemonProcess:
    """`python -m exporter run` in a subprocess, started once; its own log file; stopped by PID."""

    def __init__(self, config: Path, log: Path, env: Mapping[str, str], *extra_args: str) -> None:
        self.config = config
        self.log_path = log
        self.env = dict(env)
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, timeout: float = 30.0) -> DaemonProcess:
        assert self.process is None, "a DaemonProcess starts once; make a new one to restart"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "exporter", "run", "--config", str(self.config), *self.extra_args],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        started = self.process

        def serving() -> str | None:
            if started.poll() is not None:
                raise AssertionError(f"daemon exited with {started.returncode}:\n{self.log_text()[-3000:]}")
            for line in self.log_lines():
                if line.get("event") == "serving":
                    return str(line["url"]).rstrip("/")
            return None

        self.url = wait_for(serving, timeout=timeout, what="the daemon to serve")
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def log_lines(self) -> list[dict[str, Any]]:
        """The JSON log lines (structlog events) of this process."""
        lines = []
        for raw in self.log_text().splitlines():
            if raw.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):
                    entry = json.loads(raw)
                    if isinstance(entry, dict):
                        lines.append(entry)
        return lines

    def get(self, path: str, timeout: float = 5.0) -> requests.Response:
        return requests.get(self.url + path, timeout=timeout)

    def metrics(self) -> str:
        response = self.get("/metrics")
        assert response.status_code == 200, response.status_code
        return response.text

    def snapshot(self) -> dict[str, Any]:
        response = self.get("/api/snapshot.json")
        assert response.status_code == 200, response.status_code
        data: dict[str, Any] = response.json()
        return data

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> int:
        """SIGKILL: no shutdown code runs."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        return self.process.wait(timeout=10)

    def terminate(self, timeout: float = 10.0) -> tuple[int, float]:
        """SIGTERM; (exit code, seconds to exit). Fails if it does not exit within `timeout`."""
        assert self.process is not None
        started = time.monotonic()
        os.kill(self.process.pid, signal.SIGTERM)
        code = self.process.wait(timeout=timeout)
        return code, time.monotonic() - started

    def stop(self) -> None:
        """Teardown: SIGTERM, then SIGKILL after 10 s; safe to call twice."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


class Scraper:
    """Scrapes a URL every `interval` s in a thread; `.results` holds each status (or error).

    `watch`: applied to each answered body, its results kept in `.watched` (what a scrape saw,
    even a state shorter than the gaps between a test's own polls)."""

    def __init__(
        self, url: str, interval: float = 0.25, watch: Callable[[str], object] | None = None
    ) -> None:
        self.url = url
        self.interval = interval
        self.watch = watch
        self.results: list[int | str] = []
        self.watched: list[object] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scraper", daemon=True)

    def __enter__(self) -> Scraper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                response = requests.get(self.url, timeout=5)
                self.results.append(response.status_code)
                if self.watch is not None and response.status_code == 200:
                    self.watched.append(self.watch(response.text))
            except requests.RequestException as exc:
                self.results.append(f"{type(exc).__name__}: {exc}")
            self._stop.wait(self.interval)

    def failures(self) -> list[int | str]:
        return [r for r in self.results if r != 200]
