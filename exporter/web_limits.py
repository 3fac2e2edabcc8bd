"""What keeps the HTTP server answering /metrics under load: limits and per-snapshot caches.

- `ConnectionLimiter`: the policy of exporter/web_heads.py's head reader. A connection first
  reads its request head (TLS handshake, request line and headers) on the one selector thread,
  holding no thread: at most `max_heads` at once, at most `HEAD_LIMIT_BYTES` each, and a total
  deadline for the whole head, so a client that dribbles its headers (slowloris) is cut off at
  the deadline whatever its pace; when `max_heads` are reading, a new connection displaces the
  one that has been reading the longest (a real client sends its head in milliseconds). Only a
  complete head takes one of `max_connections` answering slots (a thread each), or is answered
  503 at once when none is free.
- `PagePool`: at most `workers` page renders at once (landing page, target-group pages,
  snapshot.json); /metrics, /healthz and /readyz never wait for one.
- `SnapshotCache`: a body rendered once per snapshot (and variant), like /metrics' cache.
- `PerSnapshot`: values built from a snapshot, each key at most once per snapshot, for keys
  clients choose freely (the target-group explanations, the landing page's `?page=&q=`): only
  the most recently used few are kept, so no URL grows it.
"""

from __future__ import annotations

import contextlib
import gzip
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from exporter.daemon.snapshot import Snapshot

T = TypeVar("T")
K = TypeVar("K")

#: socketserver's default backlog of 5 made 2 of 10 simultaneous connects wait a second (SYN retry).
LISTEN_BACKLOG = 128
#: Connections answered at once (each has a thread).
MAX_CONNECTIONS = 64
#: Connections reading their request head at once (no thread each: a socket and its head so far).
MAX_HEADS = 512
#: The longest request head read; a longer one is answered 431. Prometheus sends well under 1 KiB.
HEAD_LIMIT_BYTES = 16 * 1024
#: Seconds a connection has to deliver its whole request head, TLS handshake included.
HEADER_DEADLINE_SECONDS = 10.0
#: Page renders at once, and how long a page request waits for a turn before a 503.
PAGE_WORKERS = 2
PAGE_WAIT_SECONDS = 10.0


class ConnectionLimiter:
    """Head readers (oldest first, with their deadlines) and answering slots, with their counts.

    The head-reader calls (`reading`, `head_done`, `expired`, `next_deadline`) come from the head
    reader's one thread; `admit` too; `release` from the answering threads.
    """

    def __init__(
        self,
        max_connections: int = MAX_CONNECTIONS,
        header_deadline: float = HEADER_DEADLINE_SECONDS,
        max_heads: int = MAX_HEADS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_connections = max_connections
        self.header_deadline = header_deadline
        self.max_heads = max_heads
        self.head_limit = HEAD_LIMIT_BYTES
        self._clock = clock
        self._lock = threading.Lock()
        self._answering: set[Any] = set()
        #: connection -> when it must have sent its head; insertion order is age and deadline order
        self._reading: OrderedDict[Any, float] = OrderedDict()
        self.refused = 0  # complete heads answered 503: every answering slot busy
        self.displaced = 0  # connections still reading their head, cut for a newer one
        self.timed_out = 0  # connections cut at the head deadline
        self.too_large = 0  # heads over `head_limit`, answered 431

    @property
    def open_connections(self) -> int:
        """Connections being answered (each holding a thread)."""
        with self._lock:
            return len(self._answering)

    @property
    def heads_reading(self) -> int:
        with self._lock:
            return len(self._reading)

    # -- head readers ------------------------------------------------------------------------

    def reading(self, conn: Any) -> Any | None:
        """A new connection starts reading its head; returns the oldest reader it displaces
        (the caller closes it) when `max_heads` are already reading."""
        with self._lock:
            displaced = None
            if len(self._reading) >= self.max_heads:
                displaced, _deadline = self._reading.popitem(last=False)
                self.displaced += 1
            self._reading[conn] = self._clock() + self.header_deadline
            return displaced

    def head_done(self, conn: Any) -> None:
        """The connection delivered its head, or went away: the deadline no longer applies."""
        with self._lock:
            self._reading.pop(conn, None)

    def expired(self) -> list[Any]:
        """The readers past their deadline, forgotten and counted (the caller closes them)."""
        now = self._clock()
        out = []
        with self._lock:
            while self._reading:
                conn, deadline = next(iter(self._reading.items()))
                if deadline > now:
                    break
                del self._reading[conn]
                out.append(conn)
            self.timed_out += len(out)
        return out

    def next_deadline(self) -> float | None:
        """Seconds until the oldest reader's deadline (0 when past), None when none is reading."""
        with self._lock:
            if not self._reading:
                return None
            return max(0.0, next(iter(self._reading.values())) - self._clock())

    def oversized(self) -> None:
        with self._lock:
            self.too_large += 1

    # -- answering slots ---------------------------------------------------------------------

    def admit(self, conn: Any) -> bool:
        """Take an answering slot for a connection whose head is complete; False when none is free."""
        with self._lock:
            if len(self._answering) >= self.max_connections:
                self.refused += 1
                return False
            self._answering.add(conn)
            return True

    def release(self, conn: Any) -> None:
        with self._lock:
            self._answering.discard(conn)
            self._reading.pop(conn, None)


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


#: Values kept per snapshot by a PerSnapshot: 32 landing pages of 100 target groups are about
#: 12 MB at most; 32 explanations are a few hundred KB.
RECENT_QUERIES = 32


class PerSnapshot(Generic[K, T]):
    """Values built from one snapshot for the `size` most recently used keys (the least recently
    used forgotten first), all forgotten when the snapshot changes (by identity). The keys come
    from clients (a target group's name in a URL, the landing page's `?page=&q=`): however many
    distinct ones arrive, at most `size` values are held. A key is built under the lock: two
    requests for it wait for one build."""

    def __init__(self, build: Callable[[Snapshot, K], T], size: int = RECENT_QUERIES) -> None:
        if size < 1:
            raise ValueError("PerSnapshot needs a size of at least 1")
        self._build = build
        self.size = size
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._values: OrderedDict[K, T] = OrderedDict()
        self.builds = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._values)

    def get(self, snapshot: Snapshot, key: K) -> T:
        with self._lock:
            if snapshot is not self._snapshot:
                self._snapshot, self._values = snapshot, OrderedDict()
            if key in self._values:
                self._values.move_to_end(key)
                return self._values[key]
            value = self._values[key] = self._build(snapshot, key)
            self.builds += 1
            while len(self._values) > self.size:
                self._values.popitem(last=False)
            return value
