"""What the exporter's own inventory polls saw: old values the records do not carry.

A ModifyTargetGroup, ModifyTargetGroupAttributes, ModifyNetworkInterfaceAttribute,
SetSecurityGroups or SetSubnets record carries only the new value. Walking back from the anchor, `overlay.priors` takes the old value
from an earlier record of the same object; when no record gives it, a poll that finished before
the record's moment saw the value in force then (no record changed it in between, or that
record would be the earlier one). The daemon keeps the values its polls saw (`remember`); the
one-shot commands (replay, backfill, explain, plan) have no earlier polls, so for them such a
value stays unknown.

Records win over polls: a record is exact, and a poll describes EC2 and ELB, which are only
eventually consistent.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

import msgspec

from exporter.engine.changes import WATCHED_ATTRIBUTES, Change, InterfaceGroupsChange
from exporter.engine.inventory import Inventory
from exporter.engine.overlay import UNKNOWN, PriorKey

#: One key's polled values: (the poll finished at, the value), oldest first, one entry per
#: value seen (a poll that saw the same value as the one before adds nothing).
Polled = tuple[tuple[datetime, object], ...]
PollHistory = Mapping[PriorKey, Polled]


def inventory_values(inventory: Inventory) -> dict[PriorKey, object]:
    """The inventory's value of every key a record can set (overlay.prior_keys), in the form
    the records give it: health-check port and protocol as text, groups and subnets as ids."""
    values: dict[PriorKey, object] = {}
    for arn, tg in inventory.target_groups.items():
        values[("hc_port", arn)] = tg.health_check_port
        values[("hc_protocol", arn)] = tg.health_check_protocol
        for name in WATCHED_ATTRIBUTES:
            if name in tg.attributes:
                values[attribute_key(arn, name)] = tg.attributes[name]
    for eni_id, eni in inventory.network_interfaces.items():
        values[("eni_groups", eni_id)] = eni.security_group_ids
    for arn, lb in inventory.load_balancers.items():
        values[("lb_groups", arn)] = lb.security_groups
        values[("lb_subnets", arn)] = tuple(s.subnet_id for s in lb.subnets)
    return values


def attribute_key(target_group_arn: str, name: str) -> PriorKey:
    """The key of a watched target-group attribute (ModifyTargetGroupAttributes carries only the
    new value too)."""
    return (f"attribute:{name}", target_group_arn)


def remember(
    history: PollHistory, finished: datetime, values: Mapping[PriorKey, object], cutoff: datetime
) -> dict[PriorKey, Polled]:
    """The history with one more poll, which finished at `finished` and saw `values`.

    A new mapping (the one given is not changed, so a reader holding it is never disturbed).
    Kept per key: what was seen after `cutoff`, and the value in force at it; a key the poll
    did not see (the object is gone) is dropped once its last value is older than the cutoff.
    """
    kept: dict[PriorKey, Polled] = {}
    for key, seen in history.items():
        if key not in values and seen[-1][0] <= cutoff:
            continue
        start = 0
        while start + 1 < len(seen) and seen[start + 1][0] <= cutoff:
            start += 1
        kept[key] = seen[start:] if start else seen
    for key, value in values.items():
        seen = kept.get(key, ())
        if not seen or seen[-1][1] != value:
            kept[key] = (*seen, (finished, value))
    return kept


def polled_before(history: PollHistory, key: PriorKey, moment: datetime) -> object:
    """The value the last poll that finished before `moment` saw for `key`; UNKNOWN when none
    did. `functools.partial(polled_before, history)` is what `overlay.priors` asks."""
    seen = history.get(key)
    if not seen:
        return UNKNOWN
    index = bisect_left(seen, moment, key=_finished)
    return seen[index - 1][1] if index else UNKNOWN


def eni_groups_before(history: PollHistory, changes: Iterable[Change]) -> dict[str, set[str]]:
    """For each ENI a record gives groups, the groups the polls saw on it before that record
    (the groups undoing it can put back: their rules must be followed too)."""
    found: dict[str, set[str]] = {}
    for change in changes:
        if isinstance(change, InterfaceGroupsChange):
            seen = polled_before(history, ("eni_groups", change.eni_id), change.meta.event_time)
            if isinstance(seen, tuple):
                found.setdefault(change.eni_id, set()).update(seen)
    return found


def _finished(entry: tuple[datetime, object]) -> datetime:
    return entry[0]


def delta(before: PollHistory, after: PollHistory) -> tuple[list[PriorKey], list[PriorKey]]:
    """What `remember` changed: (keys added or moved, keys dropped); what the daemon stores."""
    moved = [key for key, seen in after.items() if seen is not before.get(key)]
    dropped = [key for key in before if key not in after]
    return moved, dropped


# --- the stored form: one key's values as JSON, [[finished (Unix time), value], ...] (the daemon
# keeps a row per key in its state file, so a restart keeps what its earlier polls saw) -------

_STORED = msgspec.json.Decoder(tuple[tuple[float, str | tuple[str, ...]], ...])


def seen_to_json(seen: Polled) -> str:
    """One key's polled values as JSON."""
    return msgspec.json.encode([(at.timestamp(), _stored(value)) for at, value in seen]).decode()


def seen_from_json(text: str) -> Polled | None:
    """One key's polled values read back (oldest first); None when the text does not read."""
    try:
        entries = _STORED.decode(text)
        seen = sorted(((datetime.fromtimestamp(at, tz=UTC), value) for at, value in entries), key=_finished)
    except (msgspec.DecodeError, ValueError, OverflowError, OSError):
        return None
    return tuple(seen) or None


def _stored(value: object) -> str | tuple[str, ...]:
    if isinstance(value, str):
        return value
    if isinstance(value, tuple) and all(isinstance(v, str) for v in value):
        return value
    raise TypeError(f"a polled value is text or a tuple of ids, not {type(value).__name__}")
