"""Request heads read on one selector thread: a slow client holds a socket, never a thread.

The listening socket and every connection still sending its request head (TLS handshake,
request line and headers) are watched by one selector. Only a complete head takes an answering
slot and a thread (`dispatch`); how many heads, how long and how large, and what is counted, is
exporter/web_limits.ConnectionLimiter's.

Why (docs/benchmarks.md, figure 8): with a thread per connection from accept on, 200 slowloris
clients kept all 64 slots taken; every new connection displaced one, which reconnected and queued
again, so a scrape waited in the listen queue behind up to 128 slow clients, each accept paying a
thread start (p99 0.6-1.5 s, SYN retries when the queue overflowed). Here an accept costs a
socket and a selector entry, and the queue drains at once.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any

from exporter.web_limits import ConnectionLimiter

log = logging.getLogger(__name__)

#: Connections taken from the listen queue per wake-up, before the readers get a turn.
ACCEPT_BATCH = 64
#: The longest the loop sleeps without a deadline due (stop() also wakes it at once).
IDLE_WAIT_SECONDS = 1.0

Dispatch = Callable[[socket.socket, Any, bytes], None]

_BUSY = (
    b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 16\r\nRetry-After: 1\r\nConnection: close\r\n\r\nbusy: try again\n"
)
_TOO_LARGE = (
    b"HTTP/1.0 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 24\r\nConnection: close\r\n\r\nrequest head too large\r\n"
)


def head_complete(buf: bytes | bytearray, start: int = 0) -> bool:
    """True when `buf` holds a whole request head: up to an empty line (CRLF or bare LF, as
    http.server reads them), or an empty request line, which the handler drops. `start` is
    where the last search left off."""
    if buf.startswith((b"\r\n", b"\n")):
        return True
    return buf.find(b"\n\r\n", start) >= 0 or buf.find(b"\n\n", start) >= 0


class _Head:
    """A connection still reading its request head."""

    __slots__ = ("address", "buf", "handshaking", "sock")

    def __init__(self, sock: socket.socket, address: Any) -> None:
        self.sock = sock
        self.address = address
        self.buf = bytearray()
        self.handshaking = isinstance(sock, ssl.SSLSocket)


class HeadReader:
    """Accepts connections and reads their request heads until `stop()`; runs in one thread."""

    def __init__(
        self,
        listener: socket.socket,
        limiter: ConnectionLimiter,
        dispatch: Dispatch,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._listener = listener
        self._limiter = limiter
        self._dispatch = dispatch
        self._ssl_context = ssl_context
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopped = threading.Event()
        self._selector = selectors.DefaultSelector()

    def stop(self) -> None:
        self._stopped.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def serve_forever(self) -> None:
        selector = self._selector
        self._listener.setblocking(False)
        selector.register(self._listener, selectors.EVENT_READ, None)
        selector.register(self._wake_r, selectors.EVENT_READ, self._wake_r)
        try:
            while not self._stopped.is_set():
                due = self._limiter.next_deadline()
                wait = IDLE_WAIT_SECONDS if due is None else min(due, IDLE_WAIT_SECONDS)
                for key, _events in selector.select(wait):
                    if key.data is None:
                        self._accept()
                    elif isinstance(key.data, _Head):
                        try:
                            self._progress(key.data)
                        except Exception:  # a bug here must cost one connection, not the server
                            log.exception("reading a request head from %s failed", key.data.address)
                            self._close(key.data)
                for head in self._limiter.expired():
                    self._close(head)
        finally:
            for key in list(selector.get_map().values()):
                if isinstance(key.data, _Head):
                    self._close(key.data)
            selector.close()
            self._wake_r.close()
            self._wake_w.close()

    # -- steps -----------------------------------------------------------------------------

    def _accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                sock, address = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # out of descriptors, or the client reset before we got to it
                log.debug("accept failed", exc_info=True)
                return
            try:
                sock.setblocking(False)
                if self._ssl_context is not None:
                    sock = self._ssl_context.wrap_socket(
                        sock, server_side=True, do_handshake_on_connect=False
                    )
            except OSError:  # reset before we got to it
                log.debug("connection from %s failed at accept", address, exc_info=True)
                sock.close()
                continue
            head = _Head(sock, address)
            displaced = self._limiter.reading(head)
            if displaced is not None:
                self._close(displaced)
            self._selector.register(sock, selectors.EVENT_READ, head)

    def _progress(self, head: _Head) -> None:
        """Read what the connection has sent; hand it over once its head is complete."""
        limit = self._limiter.head_limit
        try:
            if head.handshaking and isinstance(head.sock, ssl.SSLSocket):
                head.sock.do_handshake()
                head.handshaking = False
            while True:
                chunk = head.sock.recv(4096)
                if not chunk:  # the client went away before its head was complete
                    self._close(head)
                    return
                searched = max(0, len(head.buf) - 2)
                head.buf += chunk
                if len(head.buf) > limit:  # whether its end is in or not
                    self._limiter.oversized()
                    self._forget(head)
                    self._answer_and_close(head.sock, _TOO_LARGE)
                    return
                if head_complete(head.buf, searched):
                    self._complete(head)
                    return
        except ssl.SSLWantWriteError:  # a TLS handshake or record that must write first
            self._selector.modify(head.sock, selectors.EVENT_WRITE, head)
        except (ssl.SSLWantReadError, BlockingIOError, InterruptedError):
            self._selector.modify(head.sock, selectors.EVENT_READ, head)
        except OSError:  # reset, a failed TLS handshake: not worth more than a debug line
            log.debug("connection from %s failed before its request head", head.address, exc_info=True)
            self._close(head)

    def _complete(self, head: _Head) -> None:
        self._forget(head)
        if not self._limiter.admit(head.sock):
            log.debug("request from %s answered 503: every answering slot busy", head.address)
            self._answer_and_close(head.sock, _BUSY)
            return
        try:
            head.sock.setblocking(True)
            self._dispatch(head.sock, head.address, bytes(head.buf))
        except Exception:  # no thread to be had: the connection is closed, the server goes on
            log.warning("could not hand the request from %s over", head.address, exc_info=True)
            self._limiter.release(head.sock)
            head.sock.close()

    @staticmethod
    def _answer_and_close(sock: socket.socket, response: bytes) -> None:
        """A short answer, written without blocking (a client that does not read gets none), then
        the connection closed."""
        with contextlib.suppress(OSError):
            sock.send(response)
        sock.close()

    def _forget(self, head: _Head) -> None:
        self._limiter.head_done(head)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(head.sock)

    def _close(self, head: _Head) -> None:
        self._forget(head)
        head.sock.close()
