"""Event ids already delivered: bounded in size, each forgotten after a TTL; persistable."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from exporter.engine.timeutil import format_time, parse_time


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "ttl_seconds": self.ttl.total_seconds(),
            "max_size": self.max_size,
            "events": [[event_id, format_time(at)] for event_id, at in self._seen.items()],
        }

    @staticmethod
    def from_dict(data: dict[str, Any]) -> SeenEvents:
        seen = SeenEvents(timedelta(seconds=float(data["ttl_seconds"])), int(data.get("max_size", 200_000)))
        for event_id, at in sorted(data.get("events", []), key=lambda item: parse_time(item[1])):
            seen._seen[str(event_id)] = parse_time(at)
        return seen
