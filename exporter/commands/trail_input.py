"""The CloudTrail records `explain`, `plan` and `replay` rest on, and what they say about them.

Two ways in: files named on the command line (`read_files`), or, for live `explain`/`plan`, a
bounded LookupEvents read of one target group's security groups and attribute changes
(`read_lookup_events`, one request at a time through the shared token bucket, under the 2 req/s
LookupEvents limit). Both return `EventsRead`, which says what was read so a command never
answers as if it had read events it did not: a warning on stderr per file with rejected records
(per record with --verbose), and `NoUsableRecords` when nothing usable was read at all.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO

import msgspec

from exporter.engine.changes import Change, Rejection
from exporter.engine.timeutil import format_optional_time, format_time

if TYPE_CHECKING:  # the parser is imported where it is used: keeps `--help` light
    from exporter.engine.records import ParseResult

#: Rule authorizes and revokes are looked up by the security group's id (ResourceName), which is
#: what CloudTrail's event history lists for them; the rarer changes that also decide reachability
#: (rule modifications, attributes, health-check settings, an ENI's or NLB's groups, NLB subnets)
#: by event name. Target (de)registrations are not read: in a busy cluster they are many pages.
EVENT_NAME_LOOKUPS = (
    "ModifySecurityGroupRules",
    "ModifyTargetGroupAttributes",
    "ModifyTargetGroup",
    "ModifyNetworkInterfaceAttribute",
    "SetSecurityGroups",
    "SetSubnets",
)


class NoUsableRecords(Exception):
    """Events were asked for but not one record could be used: no verdict (exit 2)."""


EventsKind = Literal["files", "lookup_events", "none"]


class EventsReadJson(msgspec.Struct, frozen=True):
    """The `cloudtrail` object of the explain and plan JSON documents."""

    source: EventsKind
    records: int
    changes: int
    rejected: int
    complete: bool
    start: str | None
    end: str | None
    requests: int
    errors: list[str]


@dataclass
class EventsRead:
    """The changes a command uses and where they came from."""

    kind: EventsKind
    changes: list[Change] = field(default_factory=list)
    records: int = 0  # usable records: changes plus well-formed records of other events
    rejected: int = 0
    complete: bool = True
    start: datetime | None = None
    end: datetime | None = None
    requests: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def read_any(self) -> bool:
        """True when the changes rest on events actually read (so "no change" means something)."""
        return self.kind != "none" and self.complete

    def summary(self) -> str:
        """One line for the top of a text report."""
        if self.kind == "none":
            return "CloudTrail: not read (no --events): who last changed each rule is unknown"
        if self.kind == "files":
            what = f"CloudTrail files: {self.records} records used, {len(self.changes)} changes"
            return what + (f", {self.rejected} rejected" if self.rejected else "")
        window = f"{format_time(self.start)} .. {format_time(self.end)}" if self.start and self.end else ""
        line = (
            f"CloudTrail LookupEvents {window}: {self.records} records, {len(self.changes)} changes, "
            f"{self.requests} requests"
        )
        if not self.complete:
            line += "; INCOMPLETE (" + "; ".join(self.errors) + "): last changes may be missing"
        return line

    def to_json(self) -> EventsReadJson:
        return EventsReadJson(
            source=self.kind,
            records=self.records,
            changes=len(self.changes),
            rejected=self.rejected,
            complete=self.complete,
            start=format_optional_time(self.start),
            end=format_optional_time(self.end),
            requests=self.requests,
            errors=list(self.errors),
        )


def _reasons(counts: Counter[str]) -> str:
    return ", ".join(f"{reason}={count}" for reason, count in sorted(counts.items()))


def _report_file(name: str, result: ParseResult, prog: str, verbose: bool, stream: TextIO) -> None:
    used = len(result.changes) + result.ignored
    if result.rejected:
        print(
            f"{prog}: warning: {name}: {result.rejected_total} rejected ({_reasons(result.rejected)}), "
            f"{used} used",
            file=stream,
        )
        if verbose:  # the first MAX_KEPT_REJECTIONS of them: a file of a million is counted, not kept
            for rejection in result.rejections:
                where = f" [event {rejection.event_id}]" if rejection.event_id else ""
                print(f"{prog}:   {rejection.reason}{where}: {rejection.detail}", file=stream)
    elif used == 0:
        print(f"{prog}: warning: {name}: no CloudTrail record in it", file=stream)


def read_files(paths: Iterable[Path], prog: str, *, verbose: bool, stream: TextIO) -> EventsRead:
    """Every file named or found under the named folders, each one's rejections reported."""
    from exporter.engine.records import ParseResult
    from exporter.sources.trailfiles import iter_files, load_file

    total = ParseResult()
    files = 0
    for given in paths:
        found = 0
        for item in iter_files([given]):
            if isinstance(item, ParseResult):
                result, name = item, str(given)
            else:
                found += 1
                result, name = load_file(item), str(item)
            _report_file(name, result, prog, verbose, stream)
            total.extend(result)
        if found == 0 and Path(given).is_dir():
            print(f"{prog}: warning: {given}: no files in it", file=stream)
        files += found
    events = EventsRead(
        "files", list(total.changes), len(total.changes) + total.ignored, total.rejected_total
    )
    if events.records == 0:
        raise NoUsableRecords(
            f"no usable CloudTrail record in {files} file(s) ({events.rejected} rejected): no verdict"
        )
    if not events.changes:
        print(
            f"{prog}: warning: none of the {events.records} records is a security-group rule or "
            "target-group attribute change: the rules are the inventory's",
            file=stream,
        )
    return events


def read_lookup_events(
    client: Any,
    group_ids: Iterable[str],
    *,
    now: datetime,
    lookback: timedelta,
    prog: str,
    stream: TextIO,
    max_retries: int | None = None,
) -> EventsRead:
    """LookupEvents over [now - lookback, now] for each security group and the attribute changes;
    a page throttled more than `max_retries` times (default: the poller's) leaves the read
    incomplete, said on `stream` as a warning and in the report's summary."""
    from exporter.engine.records import ParseResult, parse_record
    from exporter.sources.cloudtrail import LookupEventsPoller
    from exporter.sources.ratelimit import LOOKUP_EVENTS_RATE, LOOKUP_MAX_RETRIES, TokenBucket

    bucket = TokenBucket(LOOKUP_EVENTS_RATE)
    groups = sorted(set(group_ids))
    lookups = [("ResourceName", groups), ("EventName", list(EVENT_NAME_LOOKUPS))]
    calls = len(groups) + len(EVENT_NAME_LOOKUPS)
    start = now - lookback
    print(
        f"{prog}: reading CloudTrail LookupEvents since {format_time(start)} for {len(groups)} "
        f"security group(s) and attribute changes: {calls} lookups, at most {LOOKUP_EVENTS_RATE:g} "
        "requests/s ...",
        file=stream,
        flush=True,
    )
    events = EventsRead("lookup_events", start=start, end=now)
    raw: dict[str, dict[str, Any]] = {}
    unnamed: list[dict[str, Any]] = []
    rejections: list[Rejection] = []
    for key, values in lookups:
        poller = LookupEventsPoller(
            client,
            bucket,
            event_names=values,
            attribute_key=key,
            overlap=timedelta(0),
            initial_lookback=lookback,
            max_retries=LOOKUP_MAX_RETRIES if max_retries is None else max_retries,
        )
        batch = poller.poll(now)
        events.requests += batch.counts.get("requests", 0)
        events.errors.extend(batch.errors)
        events.complete = events.complete and batch.complete
        rejections.extend(batch.rejections)
        for record in batch.records:
            event_id = record.get("eventID")
            if isinstance(event_id, str) and event_id:
                raw.setdefault(event_id, record)
            else:
                unnamed.append(record)
    result = ParseResult(rejections=rejections)
    for record in [*raw.values(), *unnamed]:
        parsed = parse_record(record)
        if isinstance(parsed, Rejection):
            result.reject(parsed)
        elif parsed is None:
            result.ignored += 1
        else:
            result.changes.append(parsed)
    events.changes = list(result.changes)
    events.records = len(result.changes) + result.ignored
    events.rejected = result.rejected_total
    if result.rejected:
        print(
            f"{prog}: warning: {events.rejected} records rejected ({_reasons(result.rejected)})",
            file=stream,
        )
    if not events.complete:
        # The report carries the summary line (text at its top, JSON under "cloudtrail"); an
        # incomplete read is also a warning here, where it is seen whatever the format.
        print(f"{prog}: warning: {events.summary()}", file=stream)
    return events
