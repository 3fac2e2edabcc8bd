"""CloudTrail files and folders on disk, parsed into changes (the file side of sources/envelopes.py).

Folders are walked recursively (hidden entries and symlinked folders skipped, names sorted);
every file found is read: *.json, *.json.gz, *.jsonl and anything else, tried as JSON (gzip is
recognised by its magic bytes). A file that cannot be read becomes a rejection, never an
exception. Rejection details are prefixed with the file name.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

from exporter.engine.changes import Rejection, RejectionReason
from exporter.engine.records import MAX_DETAIL_CHARS, MAX_RECORD_BYTES, ParseResult
from exporter.sources.envelopes import GZIP_MAGIC, MAX_PAYLOAD_BYTES, parse_payload

_MAX_NAME_CHARS = 60


def _label(path: Path) -> str:
    name = path.name or str(path)
    return name if len(name) <= _MAX_NAME_CHARS else "..." + name[-(_MAX_NAME_CHARS - 3) :]


def _prefixed(path: Path, rejection: Rejection) -> Rejection:
    detail = f"{_label(path)}: {rejection.detail}"
    if len(detail) > MAX_DETAIL_CHARS:
        detail = detail[: MAX_DETAIL_CHARS - 3] + "..."
    return replace(rejection, detail=detail)


def _failed(path: Path, reason: RejectionReason, detail: str) -> ParseResult:
    return ParseResult(rejections=[_prefixed(path, Rejection(reason, " ".join(detail.split())))])


def _os_error(error: OSError) -> str:
    return error.strerror or type(error).__name__


def iter_files(paths: Iterable[Path]) -> Iterator[Path | ParseResult]:
    """Each file named or found under a named folder; a ParseResult for each path that failed."""
    for given in paths:
        path = Path(given)
        if path.is_dir():
            errors: list[OSError] = []
            for folder, dirs, files in os.walk(path, onerror=errors.append):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if not name.startswith("."):
                        yield Path(folder) / name
            for error in errors:
                where = Path(error.filename) if error.filename else path
                yield _failed(where, "unreadable", f"cannot list folder: {_os_error(error)}")
        elif path.exists():
            yield path
        else:
            yield _failed(path, "unreadable", "no such file or folder")


def load_file(
    path: Path,
    *,
    max_record_bytes: int = MAX_RECORD_BYTES,
    max_payload_bytes: int = MAX_PAYLOAD_BYTES,
) -> ParseResult:
    """One file (any wrapper, gzip or plain) parsed; unreadable or oversized files are rejections."""
    try:
        if not path.is_file():
            return _failed(path, "unreadable", "not a regular file")
        if path.stat().st_size > max_payload_bytes:  # refused unread
            return _failed(path, "too_large", f"file is over the {max_payload_bytes} byte limit")
        with path.open("rb") as handle:
            data = handle.read(max_payload_bytes + 1)
    except OSError as error:
        return _failed(path, "unreadable", f"cannot read: {_os_error(error)}")
    if len(data) > max_payload_bytes:
        return _failed(path, "too_large", f"file is over the {max_payload_bytes} byte limit")
    if path.name.lower().endswith(".gz") and not data.startswith(GZIP_MAGIC):
        return _failed(path, "not_gzip", "named .gz but not gzip data")
    parsed = parse_payload(data, max_record_bytes=max_record_bytes, max_payload_bytes=max_payload_bytes)
    parsed.rejections = [_prefixed(path, rejection) for rejection in parsed.rejections]
    return parsed


def load_paths(
    paths: Iterable[Path],
    *,
    max_record_bytes: int = MAX_RECORD_BYTES,
    max_payload_bytes: int = MAX_PAYLOAD_BYTES,
) -> ParseResult:
    """Every file named or found under the named folders, parsed and aggregated."""
    total = ParseResult()
    for item in iter_files(paths):
        if isinstance(item, ParseResult):
            total.extend(item)
        else:
            total.extend(
                load_file(item, max_record_bytes=max_record_bytes, max_payload_bytes=max_payload_bytes)
            )
    return total
