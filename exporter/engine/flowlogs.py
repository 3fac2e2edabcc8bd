"""VPC Flow Log records: the default format (version 2, 14 fields) and custom `${field}` formats.

AWS VPC docs, "Flow log records": fields are space-separated, in the order of the log format;
`-` means no value for that record (e.g. NODATA and SKIPDATA records). A line that does not fit
the format is rejected with a counted reason, never half-read.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

#: The default format: ${version} ${account-id} ${interface-id} ${srcaddr} ${dstaddr} ${srcport}
#: ${dstport} ${protocol} ${packets} ${bytes} ${start} ${end} ${action} ${log-status}.
DEFAULT_FORMAT = (
    "${version} ${account-id} ${interface-id} ${srcaddr} ${dstaddr} ${srcport} ${dstport} "
    "${protocol} ${packets} ${bytes} ${start} ${end} ${action} ${log-status}"
)
#: The fields a format must carry for REJECTs to be matched to a target and a gap.
REQUIRED_FIELDS = ("dstaddr", "dstport", "start", "end", "action")
#: A record is a few hundred characters even with every field (about 50) chosen.
MAX_LINE_CHARS = 4096
#: CloudWatch Logs API reference, CreateLogGroup: logGroupName is 1-512 of [.-_/#A-Za-z0-9].
LOG_GROUP_NAME = re.compile(r"^[.\-_/#A-Za-z0-9]{1,512}$")
_TOKEN = re.compile(r"\$\{([a-z0-9-]+)\}")
_INT_FIELDS = frozenset({"srcport", "dstport", "protocol", "packets", "bytes", "start", "end", "version"})
_ADDRESS_FIELDS = frozenset({"srcaddr", "dstaddr", "pkt-srcaddr", "pkt-dstaddr"})
_ACTIONS = frozenset({"ACCEPT", "REJECT"})
_PRINTABLE = re.compile(r"^[\x21-\x7e]+$")

RejectReason = Literal[
    "too_long", "field_count", "not_printable", "bad_number", "bad_address", "bad_action", "no_data"
]


class FormatError(ValueError):
    """A log format string that is not a space-separated list of ${field} tokens."""


@dataclass(frozen=True)
class FlowLogFormat:
    fields: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> FlowLogFormat:
        tokens = text.split()
        fields = []
        for token in tokens:
            match = _TOKEN.fullmatch(token)
            if match is None:
                raise FormatError(f"not a ${{field}} token: {token[:40]!r}")
            fields.append(match.group(1))
        if len(set(fields)) != len(fields):
            raise FormatError("a field appears twice in the log format")
        absent = [name for name in REQUIRED_FIELDS if name not in fields]
        if absent:
            raise FormatError(f"the log format lacks {', '.join(absent)}")
        return cls(tuple(fields))


@dataclass(frozen=True)
class FlowRecord:
    dstaddr: str
    dstport: int
    start: datetime
    end: datetime
    action: str
    interface_id: str | None = None
    srcaddr: str | None = None
    protocol: int | None = None


@dataclass
class ParsedFlowLogs:
    records: list[FlowRecord] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)
    skipped_no_data: int = 0


def _value(name: str, raw: str) -> int | str:
    if name in _INT_FIELDS:
        if not raw.isdigit() or len(raw) > 20:
            raise _Bad("bad_number")
        return int(raw)
    if name in _ADDRESS_FIELDS:
        try:
            return str(ipaddress.ip_address(raw))
        except ValueError:
            raise _Bad("bad_address") from None
    return raw


class _Bad(Exception):
    def __init__(self, reason: RejectReason) -> None:
        super().__init__(reason)
        self.reason: RejectReason = reason


def parse_line(line: str, fmt: FlowLogFormat) -> FlowRecord | None:
    """One record, None for a record without data (`-` in a required field); raises _Bad."""
    if len(line) > MAX_LINE_CHARS:
        raise _Bad("too_long")
    parts = line.split(" ")
    if len(parts) != len(fmt.fields):
        raise _Bad("field_count")
    values: dict[str, int | str] = {}
    for name, raw in zip(fmt.fields, parts, strict=True):
        if not _PRINTABLE.match(raw):
            raise _Bad("not_printable")
        if raw != "-":
            values[name] = _value(name, raw)
    if any(name not in values for name in REQUIRED_FIELDS):
        return None
    action = values["action"]
    if action not in _ACTIONS:
        raise _Bad("bad_action")
    start, end = int(values["start"]), int(values["end"])
    if end < start or end > 2**33:
        raise _Bad("bad_number")
    interface = values.get("interface-id")
    source = values.get("srcaddr")
    protocol = values.get("protocol")
    return FlowRecord(
        dstaddr=str(values["dstaddr"]),
        dstport=int(values["dstport"]),
        start=datetime.fromtimestamp(start, tz=UTC),
        end=datetime.fromtimestamp(end, tz=UTC),
        action=str(action),
        interface_id=None if interface is None else str(interface),
        srcaddr=None if source is None else str(source),
        protocol=None if protocol is None else int(protocol),
    )


def parse_lines(lines: Iterable[str], fmt: FlowLogFormat) -> ParsedFlowLogs:
    """Every line parsed; hostile ones counted by reason in `rejected`, none dropped silently."""
    out = ParsedFlowLogs()
    for line in lines:
        try:
            record = parse_line(line.rstrip("\r\n"), fmt)
        except _Bad as bad:
            out.rejected[bad.reason] += 1
            continue
        if record is None:
            out.skipped_no_data += 1
        else:
            out.records.append(record)
    return out


def count_rejects(
    records: Iterable[FlowRecord],
    *,
    addresses: frozenset[str],
    interfaces: frozenset[str],
    ports: frozenset[int],
    start: datetime,
    end: datetime,
) -> int:
    """REJECT records to a target address (on its ENI when both are known) on one of `ports`, whose
    capture interval overlaps [start, end]. Outbound records from a target have another dstaddr."""
    return sum(
        1
        for record in records
        if record.action == "REJECT"
        and record.dstport in ports
        and record.dstaddr in addresses
        and (not interfaces or record.interface_id is None or record.interface_id in interfaces)
        and record.start <= end
        and record.end >= start
    )


#: The bucket name rules of S3 (3-63 of lower-case letters, digits, dots and hyphens).
_S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class S3UriError(ValueError):
    """Not an s3://bucket[/prefix] location."""


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # "" or ending with "/"

    @classmethod
    def parse(cls, uri: str) -> S3Location:
        if not uri.startswith("s3://"):
            raise S3UriError("must start with s3://")
        bucket, _, prefix = uri[len("s3://") :].partition("/")
        if not _S3_BUCKET.match(bucket):
            raise S3UriError(f"not an S3 bucket name: {bucket[:70]!r}")
        prefix = prefix.strip("/")
        if any(ord(c) < 0x20 or c == "\x7f" for c in prefix) or len(prefix) > 900:
            raise S3UriError("the prefix holds control characters or is too long")
        return cls(bucket, prefix + "/" if prefix else "")

    def day_prefix(self, account: str, region: str, day: datetime) -> str:
        """The day folder of one account's and region's flow-log files (AWS VPC docs, "Flow log
        files": AWSLogs/<account>/vpcflowlogs/<region>/YYYY/MM/DD/)."""
        return f"{self.prefix}AWSLogs/{account}/vpcflowlogs/{region}/{day:%Y/%m/%d}/"
