"""A thread-safe token bucket per key (account-region) and full-jitter exponential backoff.

`TokenBucket.request()` is the form callers use around one API request: one request in flight
per bucket, and the refill counted from when the request finished, not from when it was sent. A
request that leaves late (GIL, slow signing) then cannot bunch up with the next ones: with
burst 1 and rate r, request k+2 starts at least 2/r after request k ended, so the service never
sees more than two requests in any 2/r-second window, whatever the client-side delays.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager

#: LookupEvents allows 2 requests/s per account-region; `request()` already keeps any one-second
#: window at two requests at this rate; the 10% margin covers clock differences.
LOOKUP_EVENTS_RATE = 1.8
#: Retries of a throttled LookupEvents page (full-jitter backoff) before its lookup is given up
#: (the daemon's poller reads it again next poll; explain/plan report the read INCOMPLETE).
LOOKUP_MAX_RETRIES = 8
_EPSILON = 1e-9


class TokenBucket:
    """`acquire()` blocks until a token is free; `rate` tokens per second, at most `burst` stored."""

    def __init__(
        self,
        rate: float,
        burst: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._in_flight = threading.Lock()
        self._tokens = burst
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def acquire(self) -> float:
        """Take one token, sleeping as long as needed; returns the seconds waited."""
        waited = 0.0
        with self._lock:  # held while sleeping: waiters are served one at a time
            self._refill()
            while self._tokens < 1 - _EPSILON:  # rounding must not leave 0.999... waiting forever
                delay = (1 - self._tokens) / self.rate
                self._sleep(delay)
                waited += delay
                self._refill()
            self._tokens = max(0.0, self._tokens - 1)
        return waited

    @contextmanager
    def request(self) -> Iterator[float]:
        """Around one request: wait for a token (and for any request in flight), then refill from its end."""
        with self._in_flight:
            waited = self.acquire()
            try:
                yield waited
            finally:
                with self._lock:
                    self._stamp = self._clock()  # the time spent in flight earns no tokens


class RateLimiters:
    """One shared TokenBucket per key, e.g. (account_id, region), created on first use."""

    def __init__(
        self,
        rate: float = LOOKUP_EVENTS_RATE,
        burst: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._args = (rate, burst)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._buckets: dict[Hashable, TokenBucket] = {}

    def bucket(self, key: Hashable) -> TokenBucket:
        with self._lock:
            found = self._buckets.get(key)
            if found is None:
                found = TokenBucket(*self._args, clock=self._clock, sleep=self._sleep)
                self._buckets[key] = found
            return found


def full_jitter(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Backoff before retry number `attempt` (0-based): uniform in [0, min(cap, base * 2**attempt)]."""
    ceiling = min(cap, base * (2 ** min(attempt, 62)))
    return (rng or random).uniform(0.0, ceiling)
