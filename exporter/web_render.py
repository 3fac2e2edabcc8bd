"""The landing page rendered in a worker process at a lower CPU priority, off the server's GIL.

Why (docs/benchmarks.md, figure 8): at 5,000 target groups the landing page was 18.7 MB of HTML
and 1.4 s of CPU per snapshot before it was paged (100 target groups a page, web_landing.py). Rendered in the server's process it held the GIL for seconds at a
time against the threads answering /metrics: every scrape over 100 ms in the soak overlapped one.

One worker per WebServer, started on the first render: `forkserver` (a fresh interpreter, not a
fork of this threaded process), niceness +10, so it takes the CPU the scrapes leave; it ends
when the server's process is gone. The snapshot
goes over by pickle (about 40 ms at 5,000 target groups), the page comes back as bytes. When the
worker cannot be started or dies (an OOM kill, say), that page is rendered in the server's
process with a warning, counted in `failures`, and the next render starts a new worker.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from typing import TypeVar

from exporter.daemon.snapshot import Snapshot
from exporter.web_landing import LandingQuery
from exporter.web_links import PageLinks
from exporter.web_page import render_landing

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How much nicer than the server the worker runs (Linux niceness; capped at 19 by the kernel).
WORKER_NICENESS = 10
#: How often the worker checks that the server's process is still there.
ORPHAN_CHECK_SECONDS = 1.0


def _start_worker(server_pid: int) -> None:
    """In the worker: lower its priority, ignore Ctrl-C, and end it when the server's process is
    gone (killed with -9, the worker would otherwise wait on its queue for ever: it holds the
    queue's writing end itself).

    A terminal's Ctrl-C reaches the whole process group, the worker too (the fork server ignores
    SIGINT, but restores the default handler in the processes it forks): the server stops on it
    and ends its worker, which would otherwise die first with a KeyboardInterrupt traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.nice(WORKER_NICENESS)

    def watch() -> None:
        while True:
            time.sleep(ORPHAN_CHECK_SECONDS)
            try:
                os.kill(server_pid, 0)
            except ProcessLookupError:
                os._exit(0)
            except OSError:  # alive, and not ours to signal
                pass

    threading.Thread(target=watch, name="orphan-check", daemon=True).start()


def landing_bytes(
    snapshot: Snapshot, now: datetime, links: PageLinks, query: LandingQuery | None = None
) -> bytes:
    """The landing page as sent (in the worker, or here when it failed)."""
    return render_landing(snapshot, now, links, query).encode()


class PageWorker:
    """A worker process for page renders; `run` falls back to this process when it fails."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._closed = False
        self.failures = 0  # renders done here because the worker could not be had or died

    def landing(
        self, snapshot: Snapshot, now: datetime, links: PageLinks, query: LandingQuery | None = None
    ) -> bytes:
        return self.run(landing_bytes, snapshot, now, links, query)

    def run(self, fn: Callable[..., T], *args: object) -> T:
        """fn(*args) in the worker; in this process when the worker cannot run it. An exception
        fn raises comes back as it is (a failing render is not a failing worker)."""
        try:
            return self._executor().submit(fn, *args).result()
        except (BrokenProcessPool, OSError) as exc:
            self.failures += 1
            log.warning("page worker unavailable (%s): rendering in the server's process", exc)
            self._discard()
            return fn(*args)

    def close(self) -> None:
        """Stop the worker (a render under way finishes first, in the background)."""
        with self._lock:
            self._closed = True
        self._discard()

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._closed:
                raise OSError("the page worker is closed")
            if self._pool is None:
                context = multiprocessing.get_context("forkserver")
                # Imported once by the fork server, so a new worker starts without importing.
                context.set_forkserver_preload([__name__])
                self._pool = ProcessPoolExecutor(
                    1, mp_context=context, initializer=_start_worker, initargs=(os.getpid(),)
                )
            return self._pool

    def _discard(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
