"""What every CloudTrail event feed hands the daemon: a `FeedBatch` from `poll(now)`, and `commit()`
after. (A feed is where records come from; a `Source` - engine/rules.py - is where traffic comes from.)

A batch's side effects on the source (cursor moves, seen event ids, SQS deletes) are staged and
applied by `commit()`, which the caller runs once the records are durably processed. A batch
that is never committed is read again on the next poll: delivery is at least once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from exporter.engine.changes import Rejection


@dataclass
class FeedBatch:
    """Raw CloudTrail records (dicts, for engine/records.py) and what the poll saw."""

    feed: str  # the feed's name
    records: list[dict[str, Any]] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    lag_seconds: float | None = None
    complete: bool = True  # False when part of the poll failed and will be read again
    on_commit: Callable[[], None] | None = field(default=None, repr=False)

    def count(self, key: str, amount: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + amount

    def commit(self) -> None:
        """Apply the staged effects (once); call after the records are durably processed."""
        action, self.on_commit = self.on_commit, None
        if action is not None:
            action()


class EventFeed(Protocol):
    """A CloudTrail event feed the daemon runs: a bounded name and one poll per tick."""

    name: str

    def poll(self, now: datetime) -> FeedBatch: ...
