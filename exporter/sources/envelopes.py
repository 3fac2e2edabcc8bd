"""CloudTrail records inside their transport wrappers, handed one by one to the engine's parser.

Wrappers understood (and any JSON list of them, and JSON lines of them): a bare record; an S3
trail file ``{"Records": [...]}`` (gzip or plain bytes); a LookupEvents result or single event
(``CloudTrailEvent`` is the record as a JSON string); an EventBridge envelope (record under
``detail``); an SQS message, receive result or body holding one; an SNS notification holding one.
Pure like the engine (bytes, text or decoded JSON in; no files, no clock): the sources that
fetch payloads (S3, SQS, LookupEvents, files on disk) call it.

A pre-filter keeps big org trails cheap: records whose ``eventName`` is not watched are counted
as ignored before any typed object is built, and JSON lines or ``CloudTrailEvent`` strings
that do not even contain a watched name are skipped unparsed (so such text is counted as
ignored whether or not it is valid JSON).

S3 trail files (``{"Records": [...]}`` bytes) are skimmed: msgspec checks the whole document
and keeps each record as its raw bytes, reads only ``eventName`` (and whether ``detail-type``
is there) from each, and orjson decodes just the records that are not skipped. Anything the
skim is unsure of (a document of another shape, a record that is not an object, a non-string
``eventName``, a record orjson refuses, a raised recursion limit) goes through the full decode,
so the result is the same. One difference is known: msgspec accepts numbers too large for a
double (``1e400``), which orjson refuses; such a number inside a *skipped* record no longer
makes the whole file ``not_json`` (inside a record that is read, it still does).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import msgspec
import orjson
from zlib_ng import zlib_ng

from exporter.engine.changes import Change, Rejection, RejectionReason
from exporter.engine.record_shapes import UNSET, Record
from exporter.engine.records import (
    MAX_RECORD_BYTES,
    UNEXPECTED_DETAIL_PREFIX,
    WATCHED_EVENT_NAMES,
    JsonObject,
    ParseResult,
    decode_record,
    is_utf8,
    make_rejection,
    parse_decoded,
    parse_record,
    show_value,
)

#: A payload (after gzip decompression) larger than this is rejected as too_large.
MAX_PAYLOAD_BYTES = 512 * 1024 * 1024

GZIP_MAGIC = b"\x1f\x8b"

Payload = bytes | bytearray | memoryview | str | dict[str, Any] | list[Any]

_MAX_WRAPPER_DEPTH = 8
_WATCHED_NAMES_BYTES = tuple(name.encode() for name in sorted(WATCHED_EVENT_NAMES))
_RECORD_KEYS = ("eventVersion", "eventID", "eventName", "eventTime")


class _Refused(Exception):
    """A payload refused as a whole (corrupt gzip, over the size limit)."""

    def __init__(self, reason: RejectionReason, detail: str) -> None:
        super().__init__(detail)
        self.reason: RejectionReason = reason
        self.detail = detail


_INFLATE_ERROR = cast("type[Exception]", zlib_ng.error)  # the stub types it as an instance


#: A payload refused as a whole, for other readers of gzip objects (`.reason`: not_gzip | too_large).
PayloadRefused = _Refused


def _gunzip(data: bytes, limit: int) -> bytes:
    """Decompress gzip (several members allowed), refusing output over `limit` bytes.

    zlib-ng inflates about twice as fast as the zlib that CPython links, with zlib's API and
    results (the same output, errors and error messages on valid, truncated and corrupt data).
    """
    chunks: list[bytes] = []
    size = 0
    pending = data
    while pending:
        decompressor = zlib_ng.decompressobj(16 + zlib_ng.MAX_WBITS)
        chunk_input = pending
        while True:
            try:
                chunk = decompressor.decompress(chunk_input, limit - size + 1)
            except _INFLATE_ERROR as error:
                raise _Refused("not_gzip", f"corrupt gzip data: {error}") from None
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise _Refused("too_large", f"decompressed payload is over the {limit} byte limit")
            if not decompressor.unconsumed_tail:
                break
            chunk_input = decompressor.unconsumed_tail
        if not decompressor.eof:
            raise _Refused("not_gzip", "truncated gzip data")
        pending = decompressor.unused_data
        if pending and not pending.startswith(GZIP_MAGIC):
            break  # trailing padding after the last member, as gzip tools allow
    return b"".join(chunks)


def gunzip(data: bytes, limit: int = MAX_PAYLOAD_BYTES) -> bytes:
    """Decompress a gzip object (several members allowed); PayloadRefused when it is not gzip,
    corrupt or decompresses to over `limit` bytes."""
    if not data.startswith(GZIP_MAGIC):
        raise _Refused("not_gzip", "not a gzip object")
    return _gunzip(data, limit)


class _TrailFile(msgspec.Struct, gc=False):
    """The top of an S3 trail file: each record as raw JSON bytes; any other key read here would
    make the document something else (a record itself, an EventBridge event), which the skim
    leaves to the full decode."""

    Records: list[msgspec.Raw]
    eventVersion: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    eventID: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    eventName: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    eventTime: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    detail_type: msgspec.Raw | msgspec.UnsetType = msgspec.field(name="detail-type", default=msgspec.UNSET)


class _RecordHead(msgspec.Struct, gc=False):
    """What the skim reads of one record: a string eventName, and whether detail-type is there."""

    eventName: str | msgspec.UnsetType = msgspec.UNSET
    detail_type: msgspec.Raw | msgspec.UnsetType = msgspec.field(name="detail-type", default=msgspec.UNSET)


_TRAIL_DECODER = msgspec.json.Decoder(_TrailFile)
_HEAD_DECODER = msgspec.json.Decoder(_RecordHead)
#: msgspec nests as deep as the interpreter's recursion limit allows (orjson up to 1024 levels);
#: under this limit msgspec gives up first, and the full decode decides.
_SKIM_RECURSION_LIMIT = 1000


def _contains_watched_name(text: bytes | str) -> bool:
    if isinstance(text, str):
        return any(name in text for name in WATCHED_EVENT_NAMES)
    return any(name in text for name in _WATCHED_NAMES_BYTES)


#: What bytes.strip() removes (ASCII whitespace), for text too: str.strip() would also remove
#: Unicode spaces and separators (U+2028, U+0085, U+001D...), which bytes keep.
_ASCII_SPACE = " \t\n\r\x0b\x0c"
#: Where bytes.splitlines() splits: str.splitlines() also splits at U+2028, U+0085, U+001D...,
#: which JSON allows raw inside a string, so it would cut a record's line in two.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _strip(text: bytes | str) -> bytes | str:
    """The text without leading and trailing ASCII whitespace, for bytes and str alike."""
    return text.strip() if isinstance(text, bytes) else text.strip(_ASCII_SPACE)


def _split_lines(text: bytes | str) -> list[bytes | str]:
    """The lines of JSON lines, split at \\n, \\r and \\r\\n only, for bytes and str alike."""
    return list(text.splitlines()) if isinstance(text, bytes) else _LINE_BREAK.split(text)


def _json_error(error: Exception) -> str:
    return f"not JSON: {error}"


# an int: that many records skipped by the pre-filter; a Record: one decoded straight into its shape
_Item = JsonObject | Record | Rejection | int


@dataclass(frozen=True)
class _Walker:
    """Finds records inside wrappers; `watched_only` skips unwatched event names early."""

    watched_only: bool
    max_record_bytes: int
    max_payload_bytes: int
    skim: bool = True  # trail files through skim_trail (False: the full decode, for tests)
    lazy: bool = False  # skim record by record; the caller restarts on _SkimRestart
    typed: bool = False  # a record's own JSON text decoded straight into its shape (parse_payload)

    def payload(self, data: Any, depth: int = 0) -> Iterator[_Item]:
        if isinstance(data, bytes | bytearray | memoryview):
            raw = bytes(data)
            if len(raw) > self.max_payload_bytes:
                yield make_rejection("too_large", f"payload is over the {self.max_payload_bytes} byte limit")
                return
            if raw.startswith(GZIP_MAGIC):
                try:
                    raw = _gunzip(raw, self.max_payload_bytes)
                except _Refused as reject:
                    yield make_rejection(reject.reason, reject.detail)
                    return
            yield from self.text(raw, depth)
        elif isinstance(data, str):
            if len(data) > self.max_payload_bytes:
                yield make_rejection("too_large", f"payload is over the {self.max_payload_bytes} byte limit")
                return
            yield from self.text(data, depth)
        else:
            yield from self.value(data, depth)

    def text(self, text: bytes | str, depth: int) -> Iterator[_Item]:
        """A JSON document, or JSON lines when the whole does not parse but its first line does."""
        stripped = _strip(text)
        if not stripped:
            return
        if self.skim and self.watched_only and isinstance(stripped, bytes) and stripped[:1] == b"{":
            skimmed = self.skim_trail(stripped, depth)
            if skimmed is not None:
                yield from skimmed
                return
        if self.typed and (record := self.decoded(stripped, depth)) is not None:
            yield from self.typed_record(record)
            return
        try:
            document = orjson.loads(stripped)
        except orjson.JSONDecodeError as error:
            lines = [_strip(line) for line in _split_lines(stripped)]
            lines = [line for line in lines if line]
            if len(lines) > 1 and _parses(lines[0]):
                yield from self.lines(lines, depth)
            else:
                yield make_rejection("not_json", _json_error(error))
            return
        yield from self.value(document, depth)

    def skim_trail(self, document: bytes, depth: int) -> Iterable[_Item] | None:
        """The items of a `{"Records": [...]}` document, decoding only the records not skipped;
        None when the document is not one (or the skim is unsure), for the full decode to handle."""
        if depth + 1 > _MAX_WRAPPER_DEPTH or sys.getrecursionlimit() > _SKIM_RECURSION_LIMIT:
            return None
        if not is_utf8(document):  # msgspec does not check the UTF-8 of what it skips
            return None
        try:
            trail = _TRAIL_DECODER.decode(document)
        except (msgspec.DecodeError, RecursionError):
            return None
        unset = msgspec.UNSET
        if (
            trail.eventVersion is not unset
            or trail.eventID is not unset
            or trail.eventName is not unset
            or trail.eventTime is not unset
            or trail.detail_type is not unset
        ):
            return None
        if self.lazy:
            return self._skim_lazily(trail.Records, depth)
        try:
            return list(self._skim_lazily(trail.Records, depth))
        except _SkimRestart:
            return None  # the full decode rejects the whole document

    def _skim_lazily(self, records: list[msgspec.Raw], depth: int) -> Iterator[_Item]:
        """skim_trail's items one record at a time: memory for one decoded record, not all.

        msgspec has checked the document's syntax; orjson refuses a record msgspec skipped only
        for a number out of a double's range, and then the full decode rejects the whole document:
        _SkimRestart tells the caller (skim_trail, or parse_payload when lazy) to leave the document
        to the full decode.
        """
        skipped = 0
        decode_head = _HEAD_DECODER.decode
        unset = msgspec.UNSET
        for raw in records:
            try:
                head = decode_head(raw)
            except (msgspec.DecodeError, RecursionError):
                pass
            else:
                name = head.eventName
                if name is not unset and name not in WATCHED_EVENT_NAMES and head.detail_type is unset:
                    skipped += 1
                    continue
            try:
                value = orjson.loads(memoryview(raw))
            except orjson.JSONDecodeError:
                raise _SkimRestart from None
            if skipped:
                yield skipped
                skipped = 0
            yield from self.value(value, depth + 1)
        if skipped:
            yield skipped

    def lines(self, lines: list[bytes | str], depth: int) -> Iterator[_Item]:
        for number, line in enumerate(lines, start=1):
            yield from self.record_text(line, depth, f"line {number}", f"line {number}: ")

    def embedded(self, text: str, depth: int) -> Iterator[_Item]:
        """A record held as a JSON string (CloudTrailEvent)."""
        yield from self.record_text(text, depth, "embedded record", "CloudTrailEvent ")

    def record_text(self, text: bytes | str, depth: int, name: str, prefix: str) -> Iterator[_Item]:
        """One record's own JSON text (a JSON line, a CloudTrailEvent): skipped unparsed when it
        names no watched event, refused over the record limit; `name` and `prefix` place it in a
        rejection's detail."""
        if self.watched_only and not _contains_watched_name(text):
            yield 1
        elif len(text) > self.max_record_bytes:
            yield make_rejection("too_large", f"{name} is over the {self.max_record_bytes} byte limit")
        elif self.typed and (record := self.decoded(text, depth + 1)) is not None:
            yield from self.typed_record(record)
        else:
            try:
                document = orjson.loads(text)
            except orjson.JSONDecodeError as error:
                yield make_rejection("not_json", f"{prefix}{_json_error(error)}")
                return
            yield from self.value(document, depth + 1)

    def decoded(self, text: bytes | str, depth: int) -> Record | None:
        """The text as one record decoded into its shape (engine/records.py: decode_record), when
        it is one (an object with a record's keys, not an EventBridge event) within the depth."""
        if depth > _MAX_WRAPPER_DEPTH or text[:1] not in ("{", b"{"):
            return None
        return _typed_record(text, self.max_record_bytes)

    def typed_record(self, record: Record) -> Iterator[_Item]:
        name = record.eventName
        skip = self.watched_only and isinstance(name, str) and name not in WATCHED_EVENT_NAMES
        yield 1 if skip else record

    def record(self, record: JsonObject) -> Iterator[_Item]:
        name = record.get("eventName")
        skip = self.watched_only and isinstance(name, str) and name not in WATCHED_EVENT_NAMES
        yield 1 if skip else record

    def value(self, value: Any, depth: int) -> Iterator[_Item]:
        if depth > _MAX_WRAPPER_DEPTH:
            yield make_rejection("not_a_record", "wrappers nested too deeply")
        elif isinstance(value, list):
            for item in value:
                yield from self.value(item, depth + 1)
        elif isinstance(value, dict):
            yield from self.mapping(value, depth)
        elif isinstance(value, str):
            yield from self.text(value, depth + 1)
        elif isinstance(value, bytes | bytearray | memoryview):
            yield from self.payload(value, depth + 1)
        else:
            yield make_rejection("not_a_record", f"expected a record or a wrapper, got {show_value(value)}")

    def mapping(self, value: JsonObject, depth: int) -> Iterator[_Item]:
        if "detail-type" not in value and any(key in value for key in _RECORD_KEYS):
            yield from self.record(value)
        elif "Records" in value:
            yield from self.listed(value["Records"], "Records", depth)
        elif "Events" in value:
            yield from self.listed(value["Events"], "Events", depth)
        elif "CloudTrailEvent" in value:
            yield from self.lookup_event(value, depth)
        elif "detail-type" in value:
            yield from self.eventbridge(value, depth)
        elif "Messages" in value:
            yield from self.listed(value["Messages"], "Messages", depth)
        elif isinstance(body := value.get("Body", value.get("body")), str):
            yield from self.text(body, depth + 1)
        elif value.get("Type") == "Notification" and isinstance(value.get("Message"), str):
            yield from self.text(value["Message"], depth + 1)
        else:
            keys = ", ".join(show_value(key) for key in list(value)[:3])
            yield make_rejection("not_a_record", f"unknown object shape (keys {keys})")

    def listed(self, items: Any, key: str, depth: int) -> Iterator[_Item]:
        if not isinstance(items, list):
            yield make_rejection("wrong_type", f"{key} is {show_value(items)}, not a list")
            return
        for item in items:
            yield from self.value(item, depth + 1)

    def lookup_event(self, event: JsonObject, depth: int) -> Iterator[_Item]:
        name = event.get("EventName")
        if self.watched_only and isinstance(name, str) and name not in WATCHED_EVENT_NAMES:
            yield 1
            return
        body = event["CloudTrailEvent"]
        if isinstance(body, str):
            yield from self.embedded(body, depth)
        elif isinstance(body, dict):
            yield from self.record(body)
        else:
            yield make_rejection("wrong_type", f"CloudTrailEvent is {show_value(body)}, not a JSON string")

    def eventbridge(self, envelope: JsonObject, depth: int) -> Iterator[_Item]:
        kind = envelope.get("detail-type")
        if not isinstance(kind, str) or "via CloudTrail" not in kind:
            yield make_rejection("not_a_record", f"EventBridge event of type {show_value(kind)}")
            return
        detail = envelope.get("detail")
        if isinstance(detail, dict):
            yield from self.record(detail)
        else:
            yield make_rejection("wrong_type", f"EventBridge detail is {show_value(detail)}, not an object")


def _parses(line: bytes | str) -> bool:
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True


class _SkimRestart(Exception):
    """A lazy skim met a record the full decode would refuse with the whole document."""


def _typed_record(text: bytes | str, max_record_bytes: int) -> Record | None:
    """The text decoded into the Record shape when it holds a record (an object with one of a
    record's keys and no detail-type), else None: the full decode then reads it."""
    record = decode_record(text, max_record_bytes=max_record_bytes)
    if record is None or record.detail_type is not UNSET:
        return None
    if (
        record.eventName is UNSET
        and record.eventID is UNSET
        and record.eventTime is UNSET
        and record.eventVersion is UNSET
    ):
        return None
    return record


def _walk(
    data: Payload,
    watched_only: bool,
    max_record_bytes: int,
    max_payload_bytes: int,
    skim: bool = True,
    lazy: bool = False,
    typed: bool = False,
) -> Iterator[_Item]:
    walker = _Walker(watched_only, max_record_bytes, max_payload_bytes, skim, lazy, typed)
    try:
        yield from walker.payload(data)
    except (ArithmeticError, AttributeError, LookupError, RecursionError, TypeError, ValueError) as error:
        yield make_rejection("not_a_record", f"{UNEXPECTED_DETAIL_PREFIX}{type(error).__name__} in a wrapper")


def iter_raw_records(
    data: Payload,
    *,
    watched_only: bool = False,
    max_record_bytes: int = MAX_RECORD_BYTES,
    max_payload_bytes: int = MAX_PAYLOAD_BYTES,
) -> Iterator[JsonObject | Rejection]:
    """The raw record dicts inside any wrapper, and a Rejection for each unusable part.

    Bytes may be gzip (detected by its magic bytes) or plain JSON / JSON lines. With
    `watched_only`, records whose eventName is not watched are dropped unparsed.
    """
    for item in _walk(data, watched_only, max_record_bytes, max_payload_bytes):
        if not isinstance(item, int | Record):  # the walk decodes no Record unless typed
            yield item


def _add(result: ParseResult, parsed: Change | Rejection | None) -> None:
    if parsed is None:
        result.ignored += 1
    elif isinstance(parsed, Rejection):
        result.reject(parsed)
    else:
        result.changes.append(parsed)


def parse_payload(
    data: Payload,
    *,
    max_record_bytes: int = MAX_RECORD_BYTES,
    max_payload_bytes: int = MAX_PAYLOAD_BYTES,
) -> ParseResult:
    """Every record in a payload of any wrapper, parsed; unwatched records counted as ignored."""
    result = ParseResult.empty()
    items: Iterator[_Item] | None = None
    if isinstance(data, str):
        # The common case first: one record as JSON text (a CloudTrailEvent, a message body).
        # The same steps as the walk (payload, text, value, mapping, record), without generators.
        stripped = data.strip(_ASCII_SPACE) if len(data) <= max_payload_bytes else ""
        if stripped[:1] == "{" and (record := _typed_record(stripped, max_record_bytes)) is not None:
            name = record.eventName
            if isinstance(name, str) and name not in WATCHED_EVENT_NAMES:
                result.ignored += 1
            else:
                _add(result, parse_decoded(record))
            return result
        if stripped[:1] == "{":
            try:
                document = orjson.loads(stripped)
            except orjson.JSONDecodeError:
                document = None
            if document is not None and "detail-type" not in document:
                if (
                    "eventName" in document
                    or "eventID" in document
                    or "eventTime" in document
                    or "eventVersion" in document
                ):
                    name = document.get("eventName")
                    if isinstance(name, str) and name not in WATCHED_EVENT_NAMES:
                        result.ignored += 1
                    else:
                        _add(result, parse_record(document, max_record_bytes=max_record_bytes))
                    return result
                items = _walk(document, True, max_record_bytes, max_payload_bytes, typed=True)
    if items is None:
        # lazily: a trail file of a million records holds one decoded record at a time
        items = _walk(data, True, max_record_bytes, max_payload_bytes, lazy=True, typed=True)
    try:
        _collect(result, items, max_record_bytes)
    except _SkimRestart:
        result = ParseResult.empty()
        _collect(result, _walk(data, True, max_record_bytes, max_payload_bytes, typed=True), max_record_bytes)
    return result


def _collect(result: ParseResult, items: Iterator[_Item], max_record_bytes: int) -> None:
    for item in items:
        if isinstance(item, int):
            result.ignored += item
        elif isinstance(item, Rejection):
            result.reject(item)
        elif isinstance(item, Record):
            _add(result, parse_decoded(item))
        else:
            _add(result, parse_record(item, max_record_bytes=max_record_bytes))
