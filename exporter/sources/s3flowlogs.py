"""VPC Flow Logs delivered to S3: the REJECTs of one gap's window, read like the trail scan.

Keys (AWS VPC docs, "Flow log files" for S3): `<prefix>/AWSLogs/<account>/vpcflowlogs/<region>/
YYYY/MM/DD/[HH/]<account>_vpcflowlogs_<region>_<flow-log-id>_<YYYYMMDDTHHmmZ>_<hash>.log.gz`, the
time being when the file was written. Only the day folders of the window are listed, and only
files written from the window's start to FLOW_LOG_DELIVERY_LAG after its end are read (a record
is written after its capture window closes, so one overlapping the gap is in no earlier file), at
most MAX_OBJECTS of them. Each object is gunzipped (bounded), its header line gives the log
format (S3 flow-log files start with the field names), and only lines carrying ` REJECT ` are
parsed (the skim, as the CloudWatch Logs read filters on REJECT). Text (gzip) files only:
Parquet files and Hive-compatible key prefixes are not read (an object that is not gzip is
counted `not_gzip`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from exporter.engine.flowlogs import (
    FlowLogFormat,
    FormatError,
    ParsedFlowLogs,
    S3Location,
    parse_lines,
)
from exporter.engine.impact import FLOW_LOG_DELIVERY_LAG, FlowLogEvidence
from exporter.sources.envelopes import MAX_PAYLOAD_BYTES, PayloadRefused, gunzip
from exporter.sources.impact import FlowLogRequest, evidence_of
from exporter.sources.s3trail import days_between

#: Flow-log files read per gap at most: a window of ~20 minutes is 4-5 files per flow log and
#: writer; a read that would need more is cut short (and says so when it found no REJECT).
MAX_OBJECTS = 50
_FILE_TIME = re.compile(r"_(\d{8}T\d{4}Z)_[^/]*$")
_HEADER_FIELD = re.compile(r"^[a-z][a-z0-9-]*$")


def file_time(key: str) -> datetime | None:
    """When the flow-log file was written, from its name; None for a name of another form."""
    match = _FILE_TIME.search(key)
    if match is None:
        return None
    try:
        return datetime.strptime(match.group(1), "%Y%m%dT%H%MZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def header_format(line: str) -> FlowLogFormat | None:
    """The log format a file's header line names (`version account-id ...`); None when the
    line is not a header (a record: its fields are numbers, addresses, ids)."""
    names = line.split()
    if not names or not all(_HEADER_FIELD.match(name) for name in names):
        return None
    return FlowLogFormat.parse(" ".join(f"${{{name}}}" for name in names))


def object_keys(
    s3: Any, location: S3Location, account: str, region: str, request: FlowLogRequest
) -> list[str]:
    """The keys of the files that can hold records of the request's window, oldest first."""
    last = request.end + FLOW_LOG_DELIVERY_LAG
    keys: list[str] = []
    paginator = s3.get_paginator("list_objects_v2")
    for day in days_between(request.start, last):
        prefix = location.day_prefix(account, region, datetime(day.year, day.month, day.day, tzinfo=UTC))
        for page in paginator.paginate(Bucket=location.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                written = file_time(item["Key"])
                if written is not None and request.start <= written <= last:
                    keys.append(item["Key"])
    return sorted(keys, key=lambda key: (file_time(key), key))


def read_flow_logs_s3(
    s3: Any,
    location: S3Location,
    fmt: FlowLogFormat,
    request: FlowLogRequest,
    *,
    account: str,
    region: str,
    now: datetime,
    max_objects: int = MAX_OBJECTS,
    max_object_bytes: int = MAX_PAYLOAD_BYTES,
) -> tuple[FlowLogEvidence | None, ParsedFlowLogs]:
    """REJECTs to the targets over the window: None when the bounded read was cut short and found
    none. Objects refused whole (not gzip, too large, a header without the needed fields) are
    counted in `rejected` by reason, like hostile lines."""
    keys = object_keys(s3, location, account, region, request)
    truncated = len(keys) > max_objects
    parsed = ParsedFlowLogs()
    for key in keys[:max_objects]:
        body = s3.get_object(Bucket=location.bucket, Key=key)["Body"].read(max_object_bytes + 1)
        try:
            text = gunzip(body, max_object_bytes).decode("utf-8", errors="replace")
        except PayloadRefused as refused:
            parsed.rejected[f"object_{refused.reason}"] += 1
            continue
        lines = text.splitlines()
        file_fmt = fmt
        if lines:
            try:
                found = header_format(lines[0])
            except FormatError:
                parsed.rejected["object_bad_header"] += 1
                continue
            if found is not None:
                file_fmt, lines = found, lines[1:]
        one = parse_lines((line for line in lines if " REJECT " in f" {line} "), file_fmt)
        parsed.records.extend(one.records)
        parsed.rejected.update(one.rejected)
        parsed.skipped_no_data += one.skipped_no_data
    return evidence_of(parsed, request, truncated=truncated, now=now), parsed
