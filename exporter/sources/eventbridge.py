"""EventBridge -> SQS consumer: long poll, unwrap each body, delete only what was processed.

A rule matching "AWS API Call via CloudTrail" (sources aws.ec2 and aws.elasticloadbalancing) targets
the queue; each message body is the EventBridge envelope with the record under `detail` (SNS
notifications and bare records are understood too). Messages yielding records are deleted when
the batch is committed, i.e. after the records were processed; a malformed body (no record, a
rejection) is counted with its reason and deleted at once: it will never parse.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from exporter.engine.changes import Rejection
from exporter.sources.aws import AwsClients
from exporter.sources.envelopes import iter_raw_records
from exporter.sources.feed import FeedBatch
from exporter.sources.seen import SeenEvents

MAX_WAIT_SECONDS = 20
MAX_MESSAGES = 10


class SqsConsumer:
    """An `EventFeed` over one SQS queue of EventBridge CloudTrail events."""

    name = "sqs"

    def __init__(
        self,
        client: Any,
        queue_url: str,
        *,
        wait_seconds: int = MAX_WAIT_SECONDS,
        max_messages: int = MAX_MESSAGES,
        visibility_timeout: int | None = None,
        seen: SeenEvents | None = None,
    ) -> None:
        if not 0 <= wait_seconds <= MAX_WAIT_SECONDS:
            raise ValueError(f"wait_seconds must be 0..{MAX_WAIT_SECONDS}")
        if not 1 <= max_messages <= MAX_MESSAGES:
            raise ValueError(f"max_messages must be 1..{MAX_MESSAGES}")
        self.client = client
        self.queue_url = queue_url
        self.wait_seconds = wait_seconds
        self.max_messages = max_messages
        self.visibility_timeout = visibility_timeout
        self.seen = seen

    @classmethod
    def for_clients(cls, clients: AwsClients, queue_url: str, **kwargs: Any) -> SqsConsumer:
        """A consumer on the target's SQS client; allows DeleteMessage on this queue in its guard."""
        clients.guard.allow_queue(queue_url)
        return cls(clients.client("sqs"), queue_url, **kwargs)

    def _delete(self, receipt_handle: str) -> None:
        self.client.delete_message(QueueUrl=self.queue_url, ReceiptHandle=receipt_handle)

    def poll(self, now: datetime) -> FeedBatch:
        """One long poll. Records are returned; their messages are deleted by `batch.commit()`."""
        batch = FeedBatch(feed=self.name)
        kwargs: dict[str, Any] = {
            "QueueUrl": self.queue_url,
            "MaxNumberOfMessages": self.max_messages,
            "WaitTimeSeconds": self.wait_seconds,
        }
        if self.visibility_timeout is not None:
            kwargs["VisibilityTimeout"] = self.visibility_timeout
        messages = self.client.receive_message(**kwargs).get("Messages", [])
        batch.count("messages", len(messages))
        to_delete: list[str] = []
        taken: set[str] = set()
        for message in messages:
            records: list[dict[str, Any]] = []
            rejections: list[Rejection] = []
            for item in iter_raw_records(message.get("Body", "")):
                (rejections if isinstance(item, Rejection) else records).append(item)  # type: ignore[arg-type]
            batch.rejections.extend(rejections)
            if not records:
                reason = rejections[0].reason if rejections else "ignored"
                batch.count(f"dropped_{reason}")
                batch.count("dropped")
                self._delete(message["ReceiptHandle"])
                continue
            for record in records:
                event_id = str(record.get("eventID") or "")
                if event_id and (
                    event_id in taken or (self.seen is not None and self.seen.contains(event_id, now))
                ):
                    batch.count("duplicates")
                    continue
                if event_id:
                    taken.add(event_id)
                batch.records.append(record)
            to_delete.append(message["ReceiptHandle"])

        def commit() -> None:
            for handle in to_delete:
                self._delete(handle)
            if self.seen is not None:
                self.seen.add_all(taken, now)

        batch.on_commit = commit
        return batch

    def consume(self, handler: Callable[[list[dict[str, Any]]], None], now: datetime) -> FeedBatch:
        """Poll, hand the records to `handler`, then delete their messages; if it raises, none are."""
        batch = self.poll(now)
        handler(batch.records)
        batch.commit()
        return batch
