"""Fault tests for the HTTP server: page floods, slow and idle clients, full tables of request heads
and of answering slots, oversized heads, the listen backlog, and basic auth with bcrypt hashes.

Every wait here is a hang guard, not a performance figure; the soak with figures is
benchmarks/web_soak.py.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import bcrypt
import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from exporter.config import ConfigError, load_settings
from exporter.daemon.snapshot import Snapshot
from exporter.web import WebServer
from exporter.web_heads import head_complete
from exporter.web_limits import HEAD_LIMIT_BYTES, LISTEN_BACKLOG, ConnectionLimiter, PagePool
from exporter.web_render import WORKER_NICENESS, landing_bytes
from tests.snapshot_samples import CHECKOUT_TG, sample_snapshot

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
GUARD = 30.0  # seconds: a hang guard


class Holder:
    def __init__(self) -> None:
        self.snapshot: Snapshot = sample_snapshot(NOW)

    def get(self) -> Snapshot:
        return self.snapshot


@pytest.fixture
def holder() -> Holder:
    return Holder()


def _serve(holder: Holder, **kwargs: Any) -> WebServer:
    web = WebServer(holder.get, "127.0.0.1", 0, clock=lambda: NOW, **kwargs)
    web.start()
    return web


@pytest.fixture
def web(holder: Holder) -> Iterator[WebServer]:
    server = _serve(holder)
    yield server
    server.stop()


def _get(web: WebServer, path: str, **kwargs: Any) -> requests.Response:
    return requests.get(web.url + path, timeout=GUARD, **kwargs)


def _wait(probe: Any, what: str, timeout: float = GUARD) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_listen_backlog_is_at_least_128(web: WebServer) -> None:
    assert LISTEN_BACKLOG >= 128
    listing = subprocess.run(
        ["ss", "-ltnH", f"sport = :{web.port}"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert int(listing[2]) >= 128, listing  # Send-Q of a listening socket is its backlog


def test_landing_page_and_snapshot_json_are_rendered_once_per_snapshot(
    holder: Holder, web: WebServer
) -> None:
    pages = [_get(web, "/") for _ in range(5)]
    bodies = [_get(web, "/api/snapshot.json") for _ in range(5)]
    zipped = _get(web, "/api/snapshot.json", headers={"Accept-Encoding": "gzip"})
    assert {p.status_code for p in pages + bodies} == {200}
    assert len({p.text for p in pages}) == 1 and len({b.text for b in bodies}) == 1
    assert zipped.headers["Content-Encoding"] == "gzip" and zipped.json() == bodies[0].json()
    assert (web.landing.renders, web.snapshot_json.renders) == (1, 1)
    holder.snapshot = sample_snapshot(NOW, ready=True)  # the daemon publishes a new one
    assert _get(web, "/api/snapshot.json").json()["ready"] is True
    _get(web, "/")
    assert (web.landing.renders, web.snapshot_json.renders) == (2, 2)


class _BlockingExplain:
    """An explain provider that holds its page's render until `release` is set."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.rendering = threading.Event()

    def __call__(self, snapshot: Snapshot, name: str) -> str:
        self.rendering.set()
        self.release.wait(GUARD)
        return "explained"


def test_a_page_flood_never_makes_metrics_wait(holder: Holder) -> None:
    """Renders are held open (explain blocks): /metrics answers meanwhile; extra pages get 503."""
    slow_explain = _BlockingExplain()
    release, rendering = slow_explain.release, slow_explain.rendering
    web = _serve(holder, explain_provider=slow_explain, pages=PagePool(workers=1, wait=0.2))
    try:
        results: list[int] = []
        first = threading.Thread(
            target=lambda: results.append(_get(web, f"/target-groups/{CHECKOUT_TG}").status_code)
        )
        first.start()
        _wait(rendering.is_set, "the first page to start rendering")
        turned_away = [_get(web, "/") for _ in range(3)]
        assert [r.status_code for r in turned_away] == [503] * 3
        assert all(r.headers["Retry-After"] == "1" for r in turned_away)
        for _ in range(10):
            scrape = _get(web, "/metrics")
            assert scrape.status_code == 200 and "sgchurn_up" in scrape.text
        assert _get(web, "/healthz").status_code == 200
        assert first.is_alive()  # all of that happened while the page was still rendering
        release.set()
        first.join(GUARD)
        assert results == [200]
        assert web.pages.busy == 3
    finally:
        release.set()
        web.stop()


def test_the_landing_page_renders_in_a_nicer_worker_process_and_survives_its_death(holder: Holder) -> None:
    """The landing page (seconds of CPU at thousands of target groups) is rendered in another
    process, niced, so it never holds the GIL the /metrics threads need; a dead worker costs
    one render in the server's process, then a new worker takes over."""
    web = _serve(holder)
    try:
        page = _get(web, "/")
        assert page.status_code == 200 and page.content == landing_bytes(holder.snapshot, NOW, web.links)
        pid = web.page_worker.run(os.getpid)
        assert pid != os.getpid() and web.page_worker.failures == 0
        nice = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, pid) == min(19, nice + WORKER_NICENESS)
        os.kill(pid, signal.SIGKILL)
        holder.snapshot = sample_snapshot(NOW, ready=True)  # a new snapshot: the page renders again
        page = _get(web, "/")
        assert page.status_code == 200 and page.content == landing_bytes(holder.snapshot, NOW, web.links)
        assert web.page_worker.failures == 1
        holder.snapshot = sample_snapshot(NOW)
        assert _get(web, "/").status_code == 200
        assert web.page_worker.run(os.getpid) not in (pid, os.getpid())
        assert web.page_worker.failures == 1
    finally:
        web.stop()


_CTRL_C_SERVER = """
import os, signal, sys
from exporter.web import WebServer
# As a terminal's shell leaves it (a background job of a script ignores SIGINT, and so would the
# worker: the test would pass whatever the worker does); `exporter run` installs its own handler.
signal.signal(signal.SIGINT, signal.default_int_handler)
web = WebServer(lambda: None, "127.0.0.1", 0)  # not read: no page is asked for
web.start()
print(web.page_worker.run(os.getpid), flush=True)
sys.stdin.readline()
print(web.page_worker.run(os.getpid), web.page_worker.failures, flush=True)
web.stop()
"""


def test_the_page_worker_leaves_ctrl_c_to_its_server() -> None:
    """A terminal's Ctrl-C reaches every process of its group: the worker ignores it (no
    KeyboardInterrupt traceback on the terminal, no broken pool); it ends when its server stops."""
    server = subprocess.Popen(
        [sys.executable, "-c", _CTRL_C_SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdin is not None and server.stdout is not None
        worker = int(server.stdout.readline())
        os.kill(worker, signal.SIGINT)
        time.sleep(0.5)  # time for a default handler to raise in the worker's queue read
        server.stdin.write("\n")
        server.stdin.flush()
        assert server.stdout.readline().split() == [str(worker), "0"]  # the same worker, no failure
        _, stderr = server.communicate(timeout=GUARD)
        assert server.returncode == 0 and "KeyboardInterrupt" not in stderr, stderr
        _wait(lambda: _gone(worker), "the page worker to end with its server")
    finally:
        server.kill()
        server.wait(GUARD)


_KILLED_SERVER = """
import os, sys, requests
from datetime import UTC, datetime
from exporter.web import WebServer
from tests.snapshot_samples import sample_snapshot
snapshot = sample_snapshot(datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC))
web = WebServer(lambda: snapshot, "127.0.0.1", 0)
web.start()
assert requests.get(web.url + "/", timeout=30).status_code == 200
print(web.page_worker.run(os.getpid), flush=True)
sys.stdin.read()
"""


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"  # ended, not yet reaped
    except FileNotFoundError:
        return True


def test_the_page_worker_ends_when_the_server_is_killed() -> None:
    server = subprocess.Popen(
        [sys.executable, "-c", _KILLED_SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        worker = int(server.stdout.readline())
        assert not _gone(worker)
        server.kill()  # -9: no shutdown, no atexit
        server.wait(GUARD)
        _wait(lambda: _gone(worker), "the orphaned page worker to end")
    finally:
        server.kill()
        server.wait(GUARD)


def _slow_client(port: int, stop: threading.Event, pace: float) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=GUARD)

    def dribble() -> None:
        try:
            sock.sendall(b"GET /metrics HTTP/1.1\r\n")
            while not stop.is_set():
                sock.sendall(b"X-a: b\r\n")
                stop.wait(pace)
        except OSError:
            pass

    threading.Thread(target=dribble, daemon=True).start()
    return sock


def _closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(GUARD)
    try:
        while sock.recv(4096):
            pass
    except OSError:
        return True
    return True


def test_slowloris_is_cut_at_the_header_deadline_whatever_its_pace(holder: Holder) -> None:
    web = _serve(holder, limiter=ConnectionLimiter(header_deadline=1.0))
    stop = threading.Event()
    try:
        sock = _slow_client(web.port, stop, pace=0.1)  # a header line every 0.1 s: never idle
        started = time.monotonic()
        assert _closed_by_server(sock)
        assert time.monotonic() - started < GUARD
        assert web.limiter.timed_out == 1
        _wait(lambda: web.limiter.heads_reading == 0, "the head reader to forget it")
        assert _get(web, "/metrics").status_code == 200
        sock.close()
    finally:
        stop.set()
        web.stop()


def _handler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("Thread-") and "process_request" in t.name]


def test_two_hundred_slow_clients_hold_no_thread_and_metrics_answers_before_their_deadline(
    holder: Holder,
) -> None:
    """Slow clients wait for their heads on the one selector thread: none is cut while there is
    room, none holds an answering thread, and /metrics answers meanwhile, each scrape well before
    the head deadline (the bound is that deadline, not a performance figure: see figure 8)."""
    deadline = 20.0
    web = _serve(holder, limiter=ConnectionLimiter(max_connections=4, header_deadline=deadline))
    stop = threading.Event()
    socks: list[socket.socket] = []
    try:
        for _ in range(200):
            socks.append(_slow_client(web.port, stop, pace=0.5))
        _wait(lambda: web.limiter.heads_reading == 200, "the 200 slow clients to be reading their heads")
        assert len(_handler_threads()) == 0
        for _ in range(10):
            started = time.monotonic()
            scrape = _get(web, "/metrics")
            assert scrape.status_code == 200 and "sgchurn_up" in scrape.text
            assert time.monotonic() - started < deadline
        limiter = web.limiter
        assert (limiter.heads_reading, limiter.displaced, limiter.timed_out, limiter.refused) == (
            200,
            0,
            0,
            0,
        )
    finally:
        stop.set()
        for sock in socks:
            sock.close()
        web.stop()


def test_more_slow_clients_than_head_room_displace_the_oldest_and_metrics_answers(
    holder: Holder,
) -> None:
    web = _serve(holder, limiter=ConnectionLimiter(max_connections=4, header_deadline=60, max_heads=16))
    stop = threading.Event()
    socks: list[socket.socket] = []
    before = threading.active_count()
    try:
        for _ in range(200):
            socks.append(_slow_client(web.port, stop, pace=5))
        _wait(lambda: web.limiter.displaced >= 200 - 16, "the newest to displace the oldest slow clients")
        assert web.limiter.heads_reading <= 16
        assert len(_handler_threads()) == 0 and web.limiter.open_connections == 0
        for _ in range(5):
            scrape = _get(web, "/metrics")
            assert scrape.status_code == 200
        assert threading.active_count() < before + 200 + 40  # the 200 dribblers are ours, not the server's
    finally:
        stop.set()
        for sock in socks:
            sock.close()
        web.stop()


def test_a_full_table_of_answering_slots_refuses_new_requests() -> None:
    limiter = ConnectionLimiter(max_connections=2, header_deadline=60)
    a, b, c = object(), object(), object()
    assert limiter.admit(a) and limiter.admit(b)
    assert limiter.admit(c) is False and limiter.refused == 1
    limiter.release(a)
    assert limiter.admit(c) is True and limiter.open_connections == 2


def test_head_readers_are_displaced_oldest_first_and_expire_at_the_deadline() -> None:
    now = [100.0]
    limiter = ConnectionLimiter(header_deadline=10, max_heads=2, clock=lambda: now[0])
    a, b, c = object(), object(), object()
    assert limiter.reading(a) is None and limiter.next_deadline() == 10
    now[0] = 104.0
    assert limiter.reading(b) is None
    assert limiter.reading(c) is a and limiter.displaced == 1  # the oldest makes room
    limiter.head_done(b)  # its head is in: no deadline any more
    assert limiter.next_deadline() == 10
    now[0] = 113.9
    assert limiter.expired() == []
    now[0] = 114.0
    assert limiter.expired() == [c] and limiter.timed_out == 1
    assert limiter.heads_reading == 0 and limiter.next_deadline() is None


def test_a_request_while_every_answering_slot_is_busy_gets_503_at_once(holder: Holder) -> None:
    slow_explain = _BlockingExplain()
    release, rendering = slow_explain.release, slow_explain.rendering
    web = _serve(holder, explain_provider=slow_explain, limiter=ConnectionLimiter(max_connections=1))
    try:
        first = threading.Thread(target=lambda: _get(web, f"/target-groups/{CHECKOUT_TG}"))
        first.start()
        _wait(rendering.is_set, "the page to hold the only answering slot")
        busy = _get(web, "/metrics")
        assert busy.status_code == 503 and busy.headers["Retry-After"] == "1"
        assert web.limiter.refused == 1
        release.set()
        first.join(GUARD)
        _wait(lambda: web.limiter.open_connections == 0, "the slot to be given back")
        assert _get(web, "/metrics").status_code == 200
    finally:
        release.set()
        web.stop()


def test_a_request_head_over_the_limit_is_answered_431(web: WebServer) -> None:
    start = b"GET /metrics HTTP/1.1\r\nX-Big: "
    with socket.create_connection(("127.0.0.1", web.port), timeout=GUARD) as sock:
        # One byte over the limit and no end of head: the server reads it all, answers, closes.
        sock.sendall(start + b"a" * (HEAD_LIMIT_BYTES + 1 - len(start)))
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.0 431 ")
    assert web.limiter.too_large == 1
    assert _get(web, "/metrics").status_code == 200


@given(
    headers=st.lists(st.from_regex(r"X-[a-z]{1,8}: [ -~]{0,20}", fullmatch=True), max_size=5),
    cuts=st.lists(st.integers(min_value=1, max_value=200), max_size=10),
    newline=st.sampled_from([b"\r\n", b"\n"]),
)
def test_a_head_is_complete_exactly_at_its_empty_line_however_it_is_cut(
    headers: list[str], cuts: list[int], newline: bytes
) -> None:
    head = newline.join([b"GET /metrics HTTP/1.1", *(h.encode() for h in headers), b"", b""])
    buf = bytearray()
    points = sorted({c for c in cuts if c < len(head)} | {len(head)})
    previous = 0
    for point in points:
        searched = max(0, len(buf) - 2)  # as HeadReader searches only the new bytes and two before
        buf += head[previous:point]
        previous = point
        assert head_complete(buf, searched) is (point == len(head)), (bytes(buf), point)


def _hashes(password: str) -> dict[str, str]:
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    digest = hashlib.sha256(password.encode()).hexdigest()
    return {
        "b2b": hashed,
        "b2a": "$2a$" + hashed[4:],
        "b2y": "$2y$" + hashed[4:],
        "lower": digest,
        "upper": digest.upper(),
    }


def test_basic_auth_takes_bcrypt_hashes_and_sha256_in_either_case(holder: Holder) -> None:
    users = _hashes("s3cret:with colon")
    settings = load_settings(
        None, environ={"AWS_REGION": "eu-west-1"}, overrides={"web": {"basic_auth_users": users}}
    )
    web = _serve(holder, basic_auth_users=settings.web.basic_auth_users)
    try:
        for user in users:
            assert _get(web, "/metrics", auth=(user, "s3cret:with colon")).status_code == 200, user
            assert _get(web, "/metrics", auth=(user, "wrong")).status_code == 401, user
            assert _get(web, "/", auth=(user, "s3cret:with colon")).status_code == 200, user
        assert _get(web, "/metrics", auth=("nobody", "s3cret:with colon")).status_code == 401
        assert _get(web, "/metrics", auth=("b2b", "x" * 100)).status_code == 401  # over bcrypt's 72 bytes
        assert _get(web, "/healthz").status_code == 200
    finally:
        web.stop()


@pytest.mark.parametrize(
    "value", ["plaintext", "$2b$04$short", "$1$md5crypt$abcdefghijklmnopqrstuv", "0" * 63]
)
def test_anything_but_a_hash_is_refused_by_the_loader(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(
            None,
            environ={},
            overrides={"targets": [{"region": "us-east-1"}], "web": {"basic_auth_users": {"oncall": value}}},
        )
    assert caught.value.field == "web.basic_auth_users.oncall"
    assert "bcrypt" in str(caught.value)
