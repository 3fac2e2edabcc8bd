"""Event ids already delivered: bounded in size, each forgotten after a TTL; persistable."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from datetime import datetime, timedelta

import msgspec

from exporter.engine.timeutil import AwareTime


class SeenEventsJson(msgspec.Struct, frozen=True):
    """SeenEvents as JSON: its limits and each (event id, first seen)."""

    ttl_seconds: float
    max_size: int = 200_000
    events: list[tuple[str, AwareTime]] = []


class SeenEvents:
    """Event id -> when it was first seen. The oldest go first, past `ttl` or beyond `max_size`."""

    def __init__(self, ttl: timedelta = timedelta(days=7), max_size: int = 200_000) -> None:
        if max_size < 1:
            raise ValueError("max_size must be >= 1")
        self.ttl = ttl
        self.max_size = max_size
        self._seen: OrderedDict[str, datetime] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def contains(self, event_id: str, now: datetime) -> bool:
        seen_at = self._seen.get(event_id)
        return seen_at is not None and now - seen_at < self.ttl

    def add_all(self, event_ids: Iterable[str], now: datetime) -> None:
        for event_id in event_ids:
            if event_id not in self._seen:
                self._seen[event_id] = now
        self.expire(now)

    def expire(self, now: datetime) -> None:
        """Forget ids older than the TTL, then the oldest beyond max_size."""
        while self._seen:
            oldest_id, seen_at = next(iter(self._seen.items()))
            if now - seen_at < self.ttl and len(self._seen) <= self.max_size:
                break
            del self._seen[oldest_id]

    def items(self) -> list[tuple[str, datetime]]:
        """(event id, first seen), oldest first: what a state store persists."""
        return list(self._seen.items())

    def encode(self) -> str:
        return msgspec.json.encode(
            SeenEventsJson(self.ttl.total_seconds(), self.max_size, self.items())
        ).decode()

    @staticmethod
    def decode(text: str | bytes) -> SeenEvents:
        """What `encode` wrote (the object `to_dict` wrote before, the same fields); raises ValueError
        (msgspec.ValidationError) naming the field that is not what it should be."""
        data = msgspec.json.decode(text, type=SeenEventsJson)
        seen = SeenEvents(timedelta(seconds=data.ttl_seconds), data.max_size)
        for event_id, at in sorted(data.events, key=lambda item: item[1]):
            seen._seen[event_id] = at
        return seen
