"""CloudTrail LookupEvents poller: one event name per call, every page, overlap window, rate limit.

Each poll reads, for every watched event name, [position - overlap, now] page by page (MaxResults
50, NextToken followed). Every request takes a token from the account-region's shared bucket;
ThrottlingException retries the same page after full-jitter backoff. Event ids seen before are
dropped. Positions and seen ids move only when the batch is committed; an event name whose pages
could not all be read keeps its position, so nothing is skipped. `attribute_key` looks values up
under another lookup attribute (live `explain`/`plan` read ResourceName=<security group id>).

The EventBridge -> SQS consumer lives in sources/eventbridge.py and the S3 trail backfill in
sources/s3trail.py; both are re-exported here.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from botocore.exceptions import BotoCoreError, ClientError

from exporter.engine.changes import Rejection
from exporter.engine.records import WATCHED_EVENT_NAMES
from exporter.engine.timeutil import AwareTime, parse_time
from exporter.sources.envelopes import iter_raw_records
from exporter.sources.eventbridge import SqsConsumer
from exporter.sources.feed import EventFeed, FeedBatch
from exporter.sources.ratelimit import LOOKUP_MAX_RETRIES, TokenBucket, full_jitter
from exporter.sources.s3trail import S3TrailBackfill
from exporter.sources.seen import SeenEvents

__all__ = ["EventFeed", "FeedBatch", "LookupCursor", "LookupEventsPoller", "S3TrailBackfill", "SqsConsumer"]

MAX_RESULTS = 50
THROTTLE_CODES = frozenset(
    {"ThrottlingException", "Throttling", "RequestLimitExceeded", "TooManyRequestsException"}
)


class _GaveUp(Exception):
    """Throttled more times than allowed; the event name is read again next poll."""


class LookupCursor(msgspec.Struct):
    """Per event name: everything up to this time was read. Plus the newest eventTime seen.

    The state store keeps it as its JSON (`encode`/`decode`, meta `cursor:lookup_events:<target>`):
    `{"newest_event_time": ..., "positions": {event name: time}}`, keys sorted.
    """

    positions: dict[str, AwareTime] = msgspec.field(default_factory=dict)
    newest_event_time: AwareTime | None = None

    def encode(self) -> str:
        return msgspec.json.encode(self, order="sorted").decode()

    @staticmethod
    def decode(text: str | bytes) -> LookupCursor:
        """What `encode` wrote, or the same object spaced as json.dumps wrote it before; raises
        ValueError (msgspec.ValidationError) naming the field that is not what it should be."""
        return msgspec.json.decode(text, type=LookupCursor)


def _aware(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        return parse_time(value)
    except ValueError:
        return None


class LookupEventsPoller:
    """An `EventFeed` over LookupEvents for one account-region."""

    name = "lookup_events"

    def __init__(
        self,
        client: Any,
        bucket: TokenBucket,
        *,
        event_names: Iterable[str] = sorted(WATCHED_EVENT_NAMES),
        attribute_key: str = "EventName",
        overlap: timedelta = timedelta(minutes=15),
        initial_lookback: timedelta = timedelta(hours=1),
        cursor: LookupCursor | None = None,
        seen: SeenEvents | None = None,
        backoff_base: float = 0.5,
        backoff_cap: float = 20.0,
        max_retries: int = LOOKUP_MAX_RETRIES,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.event_names = tuple(event_names)  # the values looked up under `attribute_key`
        self.attribute_key = attribute_key
        self.overlap = overlap
        self.initial_lookback = initial_lookback
        self.cursor = cursor if cursor is not None else LookupCursor()
        self.seen = seen if seen is not None else SeenEvents()
        if self.seen.ttl < overlap:
            raise ValueError(
                "the seen-event TTL must be at least the overlap window, or re-read events repeat"
            )
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_retries = max_retries
        self._sleep = sleep
        self._rng = rng or random.Random()

    def lag_seconds(self, now: datetime) -> float | None:
        """Now minus the newest eventTime seen (None before any event)."""
        newest = self._newest(now)
        return None if newest is None else (now - newest).total_seconds()

    def _newest(self, now: datetime) -> datetime | None:
        """The cursor's newest eventTime; None when past now (a corrupt state file, a clock set
        back): it would hold the lag negative, and no record read would ever replace it."""
        newest = self.cursor.newest_event_time
        return None if newest is None or newest > now else newest

    def _page(self, batch: FeedBatch, kwargs: dict[str, Any]) -> dict[str, Any]:
        attempt = 0
        while True:
            batch.count("requests")
            try:
                with self.bucket.request():
                    response: dict[str, Any] = self.client.lookup_events(**kwargs)
                return response
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                if code not in THROTTLE_CODES:
                    raise
                batch.count("throttled")
                if attempt >= self.max_retries:
                    raise _GaveUp(f"{code}: throttled {attempt + 1} times, given up") from exc
                self._sleep(full_jitter(attempt, self.backoff_base, self.backoff_cap, self._rng))
                attempt += 1

    def poll(self, now: datetime) -> FeedBatch:
        """Read every watched event name since its position minus the overlap; stage the moves."""
        batch = FeedBatch(feed=self.name)
        taken: dict[str, datetime] = {}
        positions: dict[str, datetime] = {}
        newest = self._newest(now)
        for event_name in self.event_names:
            # a position past now (a corrupt state file, a clock set back) reads from now
            start = (
                min(self.cursor.positions.get(event_name, now - self.initial_lookback), now) - self.overlap
            )
            kwargs: dict[str, Any] = {
                "LookupAttributes": [{"AttributeKey": self.attribute_key, "AttributeValue": event_name}],
                "StartTime": start,
                "EndTime": now,
                "MaxResults": MAX_RESULTS,
            }
            try:
                while True:
                    response = self._page(batch, kwargs)
                    batch.count("pages")
                    for event in response.get("Events", []):
                        newest = self._take(batch, event, taken, now, newest)
                    token = response.get("NextToken")
                    if not token:
                        break
                    kwargs["NextToken"] = token
            except (_GaveUp, ClientError, BotoCoreError) as exc:
                batch.complete = False
                batch.count("failed_names")
                # an AWS error by its code, never by our exception class (_GaveUp names the code)
                detail = str(exc) if isinstance(exc, _GaveUp) else f"{type(exc).__name__}: {exc}"
                batch.errors.append(f"{event_name}: {detail}")
                continue
            positions[event_name] = now
        if newest is not None:
            batch.lag_seconds = (now - newest).total_seconds()

        def commit() -> None:
            self.cursor.positions.update(positions)
            stored = self._newest(now)
            if newest is not None and (stored is None or newest > stored):
                self.cursor.newest_event_time = newest
            self.seen.add_all(taken, now)

        batch.on_commit = commit
        return batch

    def _take(
        self,
        batch: FeedBatch,
        event: dict[str, Any],
        taken: dict[str, datetime],
        now: datetime,
        newest: datetime | None,
    ) -> datetime | None:
        batch.count("events")
        event_id = str(event.get("EventId", ""))
        if event_id and (event_id in taken or self.seen.contains(event_id, now)):
            batch.count("duplicates")
            return newest
        event_time = _aware(event.get("EventTime"))
        if event_id:
            taken[event_id] = event_time or now
        if event_time is not None and (newest is None or event_time > newest):
            newest = event_time
        for item in iter_raw_records(event):
            if isinstance(item, Rejection):
                batch.rejections.append(item)
            else:
                batch.records.append(item)
        return newest
