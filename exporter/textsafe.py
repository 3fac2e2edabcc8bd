"""Values from AWS or CloudTrail made safe for a terminal: control characters shown, never obeyed.

A role or session name in a CloudTrail record (or a forged trail file) can carry terminal escape
sequences, carriage returns and newlines: printed raw, they rewrite or fake lines of a report or
a log. Text outputs (`replay --format table`, explain/plan text, console logs) show each such
character as an escape (`\\x1b`, `\\n`, `\\u202e`) instead. JSON outputs escape them already.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import MutableMapping
from typing import Any

import msgspec

#: C0 and C1 controls, DEL, line/paragraph separators and the bidirectional overrides and
#: isolates ("Trojan Source", CVE-2021-42574) that reorder what a terminal shows.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_UNSAFE_BUT_NEWLINE = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: str) -> str:
    """One value: every control character (newlines too) as a visible escape."""
    return _UNSAFE.sub(_escape, value)


def printable_lines(text: str) -> str:
    """Whole report text: its own newlines kept, every other control character escaped."""
    return _UNSAFE_BUT_NEWLINE.sub(_escape, text)


def printable_fields(value: Any) -> Any:
    """A copy of a report object (dataclasses, msgspec Structs, tuples, lists, dicts) with every
    string made printable, so a value cannot break the lines of the text rendered from it."""
    if isinstance(value, str):
        return printable(value) if _UNSAFE.search(value) else value
    if isinstance(value, msgspec.Struct):
        fields = value.__struct_fields__
        return msgspec.structs.replace(
            value, **{name: printable_fields(getattr(value, name)) for name in fields}
        )
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {
            f.name: printable_fields(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init
        }
        return dataclasses.replace(value, **changes)
    if isinstance(value, tuple):
        items = [printable_fields(v) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    if isinstance(value, frozenset):
        return frozenset(printable_fields(v) for v in value)
    if isinstance(value, list):
        return [printable_fields(v) for v in value]
    if isinstance(value, dict):
        return {printable_fields(k): printable_fields(v) for k, v in value.items()}
    return value


def printable_log_event(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> dict[str, Any]:
    """structlog processor for console output: string values shown, never obeyed (a traceback
    keeps its own line breaks)."""
    return {
        key: (printable_lines(v) if key == "exception" else printable(v)) if isinstance(v, str) else v
        for key, v in event.items()
    }
