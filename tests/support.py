"""Small helpers every kind of test uses: a free TCP port, and waiting for a condition. No tests here."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TypeVar

import requests

T = TypeVar("T")

#: What a probe may raise while the thing it asks is still starting: "not yet", not a failure.
STARTING_ERRORS: tuple[type[BaseException], ...] = (OSError, requests.RequestException)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, then release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(
    probe: Callable[[], T | None],
    timeout: float,
    interval: float = 0.2,
    what: str | Callable[[], str] = "condition",
    tolerate: tuple[type[BaseException], ...] = STARTING_ERRORS,
) -> T:
    """Call `probe` until it returns something truthy and return that; TimeoutError after `timeout` s.

    An exception of a `tolerate` type counts as "not yet" (the last one is chained to the timeout);
    any other exception fails at once. `what` (or what it returns) names the condition."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = probe()
        except tolerate as exc:
            value, last_error = None, exc
        if value:
            return value
        if time.monotonic() >= deadline:
            text = what() if callable(what) else what
            raise TimeoutError(
                f"timed out after {timeout:g} s waiting for {text} (last error: {last_error})"
            ) from last_error
        time.sleep(interval)
