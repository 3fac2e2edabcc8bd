"""The /metrics bodies of the current snapshot, rendered once per snapshot (writer.py)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from exporter.daemon.snapshot import Snapshot
from exporter.metrics.writer import Exposition, ExpositionFormat, TargetGroupLines

log = logging.getLogger("exporter.metrics")


class ExpositionCache:
    """The /metrics bodies of the current snapshot: rendered once per snapshot, then reused; a
    scrape never waits for another thread's render when it has a body to serve meanwhile.

    The daemon swaps immutable snapshots in whole, so a snapshot's identity is its version. Per
    variant asked for (format, gzip or not) the cache keeps the last body it rendered and the
    snapshot it rendered it from (a reference: its id cannot be reused meanwhile). A scrape of a
    snapshot whose body is ready gets it. While another thread renders a variant (the daemon's
    `warm` after a publish, or another scrape), a scrape of that variant gets the previous
    snapshot's body at once instead of waiting for the lock, as YACE serves the last completed
    poll: the body is at most one publish old, never half made. Only a variant with no body yet
    waits for its first render, so concurrent scrapes of a new variant render it once. Series
    dropped for unexpected label names are logged once per family and label names.
    """

    def __init__(self, get_snapshot: Callable[[], Snapshot]) -> None:
        self._get_snapshot = get_snapshot
        self._lock = threading.Lock()  # guards the dicts below, held for no render
        self._bodies: dict[tuple[ExpositionFormat, bool], tuple[Snapshot, bytes]] = {}
        self._rendering: dict[tuple[ExpositionFormat, bool], threading.Lock] = {}
        #: per variant (used under its render lock): the target groups' lines of its last render
        self._kept: dict[tuple[ExpositionFormat, bool], TargetGroupLines] = {}
        self._warned: set[tuple[str, tuple[str, ...]]] = set()
        self.renders = 0  # snapshots rendered so far
        self.stale_served = 0  # scrapes answered with the previous body while a render ran
        self.target_groups_rendered = 0  # by the last render: the others' lines were kept

    def body(self, fmt: ExpositionFormat = "text", *, gzipped: bool = False) -> bytes:
        variant = (fmt, gzipped)
        with self._lock:
            snapshot = self._get_snapshot()
            done = self._bodies.get(variant)
            if done is not None and done[0] is snapshot:
                return done[1]
            render_lock = self._rendering.setdefault(variant, threading.Lock())
        if done is not None and not render_lock.acquire(blocking=False):
            with self._lock:  # another thread renders this variant: serve what it replaces
                self.stale_served += 1
                return self._bodies[variant][1]
        if done is None:
            render_lock.acquire()  # nothing to serve yet: wait for (or make) the first body
        try:
            return self._render(variant)
        finally:
            render_lock.release()

    def _render(self, variant: tuple[ExpositionFormat, bool]) -> bytes:
        """The current snapshot's body of `variant`, rendered unless a render finished meanwhile
        (the caller holds the variant's render lock)."""
        with self._lock:
            snapshot = self._get_snapshot()
            done = self._bodies.get(variant)
            if done is not None and done[0] is snapshot:
                return done[1]
        # Only the variants asked for are kept (a Prometheus server asks for one: its format,
        # gzipped); another variant of the same snapshot renders it again.
        fmt, gzipped = variant
        kept = self._kept.setdefault(variant, TargetGroupLines())
        exposition = Exposition(snapshot, kept)
        body = exposition.gzip(fmt) if gzipped else exposition.render(fmt)
        with self._lock:
            self.renders += 1
            self.target_groups_rendered = kept.rendered
            self._warn(exposition.dropped)
            self._bodies[variant] = (snapshot, body)
        return body

    def warm(self) -> None:
        """Render the current snapshot's bodies ahead of the next scrape (called after a publish).

        Renders the variants scrapes asked for so far (text by default), so the background job
        pays for the rendering. It takes every variant's render lock first, so that meanwhile a
        scrape of any of them gets its previous body at once rather than rendering it too.
        """
        with self._lock:
            wanted = list(self._bodies) or [("text", False)]
            locks = [self._rendering.setdefault(variant, threading.Lock()) for variant in wanted]
        held = []
        try:
            for lock in locks:
                lock.acquire()
                held.append(lock)
            for variant, lock in zip(wanted, locks, strict=True):
                self._render(variant)
                lock.release()
                held.remove(lock)
        finally:
            for lock in held:
                lock.release()

    def _warn(self, dropped: Iterable[tuple[str, tuple[str, ...]]]) -> None:
        for item in dropped:
            if item not in self._warned:  # once per family and label-name set, not every render
                self._warned.add(item)
                log.warning("dropped series with unexpected labels: family %s, labels %s", *item)
