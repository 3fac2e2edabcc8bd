"""ISO 8601 UTC timestamps, the one textual time form the project reads and writes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import msgspec

#: A moment in a declared JSON shape: ISO 8601 with its zone (msgspec writes UTC with a `Z`, as
#: format_time does), a time without a zone refused.
AwareTime = Annotated[datetime, msgspec.Meta(tz=True)]


def parse_time(value: object) -> datetime:
    """Parse an ISO 8601 string (a trailing Z allowed) or epoch seconds into an aware UTC datetime;
    ValueError for anything else, a time off the calendar in UTC included (year 1 at +14:00)."""
    try:
        return _parse_time(value)
    except OverflowError as exc:  # datetime's range: fromtimestamp, astimezone
        raise ValueError(f"not a time in UTC: {exc}") from exc


def _parse_time(value: object) -> datetime:
    if isinstance(value, bool):
        raise ValueError("a boolean is not a time")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(float(value), tz=UTC)
    if not isinstance(value, str):
        raise ValueError(f"not a time: {type(value).__name__}")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_time(moment: datetime) -> str:
    """Format as ISO 8601 UTC with a Z, to the second (sub-second kept when present)."""
    # isoformat, not strftime: the C library's %Y writes the year 999 as "999", which
    # fromisoformat cannot read back; isoformat always writes four digits.
    moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="microseconds" if moment.microsecond else "seconds")[:-6] + "Z"


def format_optional_time(moment: datetime | None) -> str | None:
    """format_time, or None for no moment."""
    return None if moment is None else format_time(moment)
