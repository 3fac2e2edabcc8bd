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
from collections.abc import Mapping
from datetime import datetime

from exporter.engine.changes import WATCHED_ATTRIBUTES
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


def _finished(entry: tuple[datetime, object]) -> datetime:
    return entry[0]
