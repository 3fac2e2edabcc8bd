"""S3 trail backfill: list CloudTrail log files for each day since a time and parse each one.

Keys follow AWSLogs/[o-<org>/]<account>/CloudTrail/<region>/YYYY/MM/DD/<file>.json.gz under an
optional bucket prefix. Organisation, account and region folders are discovered with Delimiter
listings; then each day folder is listed (all pages) and every object fetched and handed to the
parser. An object that is not gzip is a `not_gzip` rejection, one over the size limit `too_large`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from exporter.engine.changes import Rejection
from exporter.engine.records import ParseResult
from exporter.sources.envelopes import GZIP_MAGIC, MAX_PAYLOAD_BYTES, parse_payload

_ACCOUNT = re.compile(r"^[0-9]{12}$")
_ORG = re.compile(r"^o-[a-z0-9]{10,32}$")


@dataclass(frozen=True)
class TrailObject:
    key: str
    size: int


@dataclass(frozen=True)
class BackfillProgress:
    files_done: int
    files_total: int
    records: int  # changes + rejections + ignored records so far
    changes: int
    rejections: int


def days_between(since: datetime, now: datetime) -> list[date]:
    """Every UTC calendar day from since's to now's, inclusive."""
    first, last = since.date(), now.date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


class S3TrailBackfill:
    """Read CloudTrail files from one bucket for [since, now] (by delivery day folder)."""

    def __init__(
        self,
        client: Any,
        bucket: str,
        *,
        since: datetime,
        now: datetime,
        prefix: str = "",
        accounts: Iterable[str] | None = None,
        regions: Iterable[str] | None = None,
        max_object_bytes: int = MAX_PAYLOAD_BYTES,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.since = since
        self.now = now
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.accounts = set(accounts) if accounts is not None else None
        self.regions = set(regions) if regions is not None else None
        self.max_object_bytes = max_object_bytes

    def _folders(self, prefix: str) -> list[str]:
        """Names of the sub-folders directly under `prefix` (Delimiter listing, all pages)."""
        names: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
            for common in page.get("CommonPrefixes", []):
                names.append(common["Prefix"][len(prefix) :].rstrip("/"))
        return names

    def region_prefixes(self) -> list[str]:
        """Every .../CloudTrail/<region>/ folder for the wanted accounts and regions."""
        root = f"{self.prefix}AWSLogs/"
        account_roots: list[tuple[str, str]] = []
        for name in self._folders(root):
            if _ORG.match(name):
                account_roots.extend((f"{root}{name}/", acct) for acct in self._folders(f"{root}{name}/"))
            elif _ACCOUNT.match(name):
                account_roots.append((root, name))
        found: list[str] = []
        for parent, account in account_roots:
            if not _ACCOUNT.match(account) or (self.accounts is not None and account not in self.accounts):
                continue
            trail_root = f"{parent}{account}/CloudTrail/"
            for region in self._folders(trail_root):
                if self.regions is None or region in self.regions:
                    found.append(f"{trail_root}{region}/")
        return found

    def objects(self) -> list[TrailObject]:
        """Every object in the day folders from since to now, in key order."""
        found: list[TrailObject] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for region_prefix in self.region_prefixes():
            for day in days_between(self.since, self.now):
                day_prefix = f"{region_prefix}{day:%Y/%m/%d}/"
                for page in paginator.paginate(Bucket=self.bucket, Prefix=day_prefix):
                    for item in page.get("Contents", []):
                        if not item["Key"].endswith("/"):
                            found.append(TrailObject(item["Key"], int(item.get("Size", 0))))
        return sorted(found, key=lambda o: o.key)

    def parse_object(self, obj: TrailObject) -> ParseResult:
        """Fetch one object and parse it; a non-gzip or oversized object becomes a rejection."""
        if obj.size > self.max_object_bytes:
            return ParseResult(rejections=[Rejection("too_large", f"{obj.key}: {obj.size} bytes")])
        data = self.client.get_object(Bucket=self.bucket, Key=obj.key)["Body"].read()
        if not data.startswith(GZIP_MAGIC):
            return ParseResult(rejections=[Rejection("not_gzip", f"{obj.key}: not a gzip object")])
        return parse_payload(data)

    def run(
        self, on_progress: Callable[[BackfillProgress], None] | None = None
    ) -> Iterator[tuple[TrailObject, ParseResult]]:
        """Each object with its parse result, in key order, reporting progress after each."""
        objects = self.objects()
        changes = rejections = records = 0
        if on_progress is not None:
            on_progress(BackfillProgress(0, len(objects), 0, 0, 0))
        for done, obj in enumerate(objects, start=1):
            result = self.parse_object(obj)
            changes += len(result.changes)
            rejections += result.rejected_total
            records += len(result.changes) + result.rejected_total + result.ignored
            yield obj, result
            if on_progress is not None:
                on_progress(BackfillProgress(done, len(objects), records, changes, rejections))
