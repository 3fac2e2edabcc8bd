"""What keeps the HTTP server answering /metrics under load: limits and per-snapshot caches.

- `ConnectionLimiter`: at most `max_connections` connections at once, and a total deadline for a
  connection to send its request head (TLS handshake, request line and headers). A client that
  dribbles its headers (slowloris) is cut off at the deadline, whatever its pace; when every slot
  is taken, a new connection displaces the one that has been reading its head the longest (a
  real client sends its head in milliseconds), or is closed if none is.
- `PagePool`: at most `workers` page renders at once (landing page, target-group pages,
  snapshot.json); /metrics, /healthz and /readyz never wait for one.
- `SnapshotCache`: a body rendered once per snapshot (and variant), like /metrics' cache.
- `PerSnapshot`: values built from a snapshot, each key at most once per snapshot (the
  target-group explanations).
"""

from __future__ import annotations

import contextlib
import gzip
import heapq
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from exporter.daemon.snapshot import Snapshot

T = TypeVar("T")

#: socketserver's default backlog of 5 made 2 of 10 simultaneous connects wait a second (SYN retry).
LISTEN_BACKLOG = 128
#: Connections handled at once (each has a thread).
MAX_CONNECTIONS = 64
#: Seconds a connection has to deliver its whole request head, TLS handshake included.
HEADER_DEADLINE_SECONDS = 10.0
#: Page renders at once, and how long a page request waits for a turn before a 503.
PAGE_WORKERS = 2
PAGE_WAIT_SECONDS = 10.0


def _cut(sock: Any) -> None:
    """Shut a socket down under a thread blocked reading it (the read returns at once).

    The plain socket's shutdown, also for a TLS socket: SSLSocket.shutdown would drop the TLS
    object the blocked thread is using.
    """
    with contextlib.suppress(OSError, ValueError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class ConnectionLimiter:
    """Connection slots and the request-head deadline, shared by the accept loop and handlers."""

    def __init__(
        self,
        max_connections: int = MAX_CONNECTIONS,
        header_deadline: float = HEADER_DEADLINE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_connections = max_connections
        self.header_deadline = header_deadline
        self._clock = clock
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._open: set[Any] = set()
        self._reading: dict[Any, float] = {}  # connection -> when it must have sent its head
        self._due: list[tuple[float, int, Any]] = []  # heap of (deadline, seq, connection)
        self._seq = 0
        self._stopped = False
        self.refused = 0  # connections closed at once: every slot busy answering
        self.displaced = 0  # connections still reading their head, cut for a newer one
        self.timed_out = 0  # connections cut at the head deadline

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._open)

    def admit(self, conn: Any) -> bool:
        """Take a slot for a new connection; False when none can be had (close it)."""
        with self._lock:
            if len(self._open) >= self.max_connections:
                if not self._reading:
                    self.refused += 1
                    return False
                oldest = min(self._reading, key=self._reading.__getitem__)
                del self._reading[oldest]
                self.displaced += 1
                _cut(oldest)  # its thread ends and gives the slot back; the new one goes ahead
            deadline = self._clock() + self.header_deadline
            self._open.add(conn)
            self._reading[conn] = deadline
            self._seq += 1
            heapq.heappush(self._due, (deadline, self._seq, conn))
            self._wake.notify()
            return True

    def head_read(self, conn: Any) -> None:
        """The connection delivered its request head: the deadline no longer applies."""
        with self._lock:
            self._reading.pop(conn, None)

    def release(self, conn: Any) -> None:
        with self._lock:
            self._open.discard(conn)
            self._reading.pop(conn, None)

    def reap_forever(self) -> None:
        """Cut connections past their head deadline until `stop()`; runs in its own thread."""
        with self._lock:
            while not self._stopped:
                now = self._clock()
                while self._due and self._due[0][0] <= now:
                    _deadline, _seq, conn = heapq.heappop(self._due)
                    if self._reading.pop(conn, None) is not None:
                        self.timed_out += 1
                        _cut(conn)
                wait = self._due[0][0] - now if self._due else None
                self._wake.wait(timeout=wait)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._wake.notify()


class PageBusy(Exception):
    """No page worker became free in time."""


class PagePool:
    """At most `workers` page renders at once; a request waits `wait` seconds for a turn."""

    def __init__(self, workers: int = PAGE_WORKERS, wait: float = PAGE_WAIT_SECONDS) -> None:
        self._slots = threading.BoundedSemaphore(workers)
        self.wait = wait
        self.busy = 0  # requests answered 503 for want of a worker

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        if not self._slots.acquire(timeout=self.wait):
            self.busy += 1
            raise PageBusy
        try:
            yield
        finally:
            self._slots.release()


class SnapshotCache:
    """One body per snapshot, rendered once even when many ask at once (plus its gzip, once)."""

    def __init__(self, render: Callable[[Snapshot], bytes]) -> None:
        self._render = render
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._bodies: dict[bool, bytes] = {}
        self.renders = 0

    def body(self, snapshot: Snapshot, *, gzipped: bool = False) -> bytes:
        with self._lock:
            if snapshot is not self._snapshot:
                self._snapshot, self._bodies = snapshot, {}
            body = self._bodies.get(gzipped)
            if body is None:
                plain = self._bodies.get(False)
                if plain is None:
                    plain = self._bodies[False] = self._render(snapshot)
                    self.renders += 1
                body = plain if not gzipped else gzip.compress(plain, compresslevel=6)
                self._bodies[gzipped] = body
            return body


class PerSnapshot(Generic[T]):
    """Values built from one snapshot, each key at most once, forgotten when the snapshot changes
    (by identity). A key is built under the lock: two requests for it wait for one build."""

    def __init__(self, build: Callable[[Snapshot, str], T]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._values: dict[str, T] = {}
        self.builds = 0

    def get(self, snapshot: Snapshot, key: str) -> T:
        with self._lock:
            if snapshot is not self._snapshot:
                self._snapshot, self._values = snapshot, {}
            if key not in self._values:
                self._values[key] = self._build(snapshot, key)
                self.builds += 1
            return self._values[key]
