"""Security-group rules and target-group attributes over time.

A `RuleState` starts from an anchor (the inventory described at time T). Changes after T are
applied forward; changes at or before T are undone in reverse order to reach the state before
the earliest change, so a run today can rebuild last week. `ordered_changes` sorts by
eventTime, drops duplicate eventIDs, and batches changes of the same second (CloudTrail's
resolution), which are applied together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter

from exporter.engine.changes import (
    INVENTORY_CHANGES,
    AttributeChange,
    Change,
    EventMeta,
    GroupDeletion,
    RuleChange,
    RuleModification,
)
from exporter.engine.inventory import Inventory
from exporter.engine.overlay import InventoryOverlay, PriorKey, priors
from exporter.engine.polls import attribute_key
from exporter.engine.rules import Rule

RuleKey = tuple[str, int, int, object]
_EVENT_TIME = attrgetter("meta.event_time")


def ordered_changes(changes: Iterable[Change]) -> list[Change]:
    """Changes sorted by eventTime (stable for equal times), each eventID once."""
    seen: set[str] = set()
    unique: list[Change] = []
    for change in changes:
        event_id = change.meta.event_id
        if event_id in seen:
            continue
        seen.add(event_id)
        unique.append(change)
    unique.sort(key=_EVENT_TIME)
    return unique


def moments(changes: list[Change]) -> Iterator[tuple[datetime, list[Change]]]:
    """Consecutive changes grouped by identical eventTime: (that moment, its changes)."""
    current: list[Change] = []
    for change in changes:
        if current and change.meta.event_time != current[0].meta.event_time:
            yield current[0].meta.event_time, current
            current = []
        current.append(change)
    if current:
        yield current[0].meta.event_time, current


def affected_group(change: Change) -> str | None:
    """The security group whose rules a change moves (None for the other kinds of change)."""
    if isinstance(change, RuleChange | RuleModification | GroupDeletion):
        return change.group_id
    return None


@dataclass
class RuleState:
    """Mutable rule and attribute state; `apply` moves it forward, `undo` back."""

    rules: dict[str, dict[RuleKey, Rule]] = field(default_factory=dict)
    attributes: dict[str, dict[str, str]] = field(default_factory=dict)
    last_change: dict[tuple[str, RuleKey], EventMeta] = field(default_factory=dict)
    deleted_groups: dict[str, dict[RuleKey, Rule]] = field(default_factory=dict)
    watched_groups: frozenset[str] | None = None  # None: track every group
    overlay: InventoryOverlay | None = None  # the inventory's changeable parts (overlay.py)
    # group -> ids of rules whose definition before a ModifySecurityGroupRules no record gives:
    # left out of the group until the modification is applied, so the group's rules are a lower bound
    incomplete: dict[str, set[str]] = field(default_factory=dict)

    @staticmethod
    def from_inventory(inventory: Inventory, watched_groups: Iterable[str] | None = None) -> RuleState:
        watched = None if watched_groups is None else frozenset(watched_groups)
        state = RuleState(watched_groups=watched, overlay=InventoryOverlay(inventory))
        for sg in inventory.security_groups.values():
            if watched is None or sg.group_id in watched:
                state.rules[sg.group_id] = {r.key: r for r in sg.rules}
        for tg in inventory.target_groups.values():
            state.attributes[tg.arn] = dict(tg.attributes)
        return state

    def rules_by_group(self) -> dict[str, list[Rule]]:
        return {gid: list(rules.values()) for gid, rules in self.rules.items()}

    def group_rules(self, group_id: str) -> list[Rule] | None:
        rules = self.rules.get(group_id)
        return None if rules is None else list(rules.values())

    def _tracks(self, group_id: str) -> bool:
        return self.watched_groups is None or group_id in self.watched_groups

    def _resolve_ids(self, group_id: str, rule_ids: Iterable[str]) -> list[Rule]:
        wanted = set(rule_ids)
        if not wanted:
            return []
        return [r for r in self.rules.get(group_id, {}).values() if r.rule_id in wanted]

    def apply(self, change: Change) -> None:
        """Apply a change forward. Failed calls change nothing."""
        meta = change.meta
        if meta.error_code is not None:  # meta.failed
            return
        if isinstance(change, RuleChange) and change.action == "authorize":
            # The most common change, first (the only place an authorize is applied).
            group_id = change.group_id
            if self.watched_groups is not None and group_id not in self.watched_groups:
                return
            rules = self.rules.get(group_id)
            if rules is None:
                rules = self.rules[group_id] = {}
            last_change = self.last_change
            for rule in change.rules:
                key = rule.key
                known = rules.get(key)
                if known is not None and rule.rule_id is None:
                    rule = known
                rules[key] = rule
                last_change[(group_id, key)] = meta
            return
        if isinstance(change, AttributeChange):
            self.attributes.setdefault(change.target_group_arn, {}).update(dict(change.attributes))
            return
        if isinstance(change, INVENTORY_CHANGES):
            if self.overlay is not None:
                self.overlay.apply(change)
            return
        group_id = change.group_id
        if not self._tracks(group_id):
            return
        if isinstance(change, GroupDeletion):
            if group_id in self.rules:
                self.deleted_groups[group_id] = self.rules.pop(group_id)
            return
        rules = self.rules.setdefault(group_id, {})
        if isinstance(change, RuleModification):
            for rule_id, new_rule in change.modifications:
                for old in self._resolve_ids(group_id, [rule_id]):
                    rules.pop(old.key, None)
                rule = _with_id(new_rule, rule_id)
                rules[rule.key] = rule
                self.last_change[(group_id, rule.key)] = change.meta
                missing = self.incomplete.get(group_id)
                if missing is not None:
                    missing.discard(rule_id)
                    if not missing:
                        del self.incomplete[group_id]
            return
        # A revoke (an authorize was applied first, above).
        for rule in [*change.rules, *self._resolve_ids(group_id, change.rule_ids)]:
            rules.pop(rule.key, None)
            self.last_change[(group_id, rule.key)] = change.meta

    def undo(
        self,
        change: Change,
        previous_value: dict[str, str] | None = None,
        prior: Mapping[PriorKey, object] | None = None,
    ) -> None:
        """Undo a change that the anchor already includes (walking back in time).

        `previous_value` gives, for an attribute change, the attribute values in force before it
        when known (from an earlier record, else the daemon's earlier poll: `rewind`); otherwise
        a watched boolean attribute is taken to have held the opposite value (a record of a
        change is taken to be a change). `prior`
        does the same for a change of the inventory (overlay.priors); none is guessed.
        """
        if change.meta.failed:
            return
        if isinstance(change, INVENTORY_CHANGES):
            if self.overlay is not None:
                self.overlay.undo(change, prior)
            return
        if isinstance(change, AttributeChange):
            attrs = self.attributes.setdefault(change.target_group_arn, {})
            for key, value in change.attributes:
                if previous_value and key in previous_value:
                    attrs[key] = previous_value[key]
                elif value in ("true", "false"):
                    attrs[key] = "false" if value == "true" else "true"
            return
        group_id = change.group_id
        if not self._tracks(group_id):
            return
        if isinstance(change, GroupDeletion):
            self.rules[group_id] = self.deleted_groups.pop(group_id, {})
            return
        rules = self.rules.setdefault(group_id, {})
        if isinstance(change, RuleModification):
            # The record holds only the new definition: the old one comes from an earlier record
            # of the same rule id, else it is not known (the group is incomplete until then).
            for rule_id, new_rule in change.modifications:
                for now in self._resolve_ids(group_id, [rule_id]):
                    rules.pop(now.key, None)
                rules.pop(new_rule.key, None)
                old = (prior or {}).get(("rule", rule_id))
                if isinstance(old, Rule):
                    rules[old.key] = old
                else:
                    self.incomplete.setdefault(group_id, set()).add(rule_id)
            return
        if change.action == "authorize":
            for rule in change.rules:
                rules.pop(rule.key, None)
        else:
            for rule in change.rules:
                rules.setdefault(rule.key, rule)


def _with_id(rule: Rule, rule_id: str) -> Rule:
    if rule.rule_id == rule_id:
        return rule
    return Rule(rule.protocol, rule.from_port, rule.to_port, rule.source, rule_id, rule.description)


def rewind(
    state: RuleState,
    changes: list[Change],
    anchor_time: datetime,
    polled: Callable[[PriorKey, datetime], object] | None = None,
) -> list[Change]:
    """Undo every change at or before the anchor (newest first); return the changes undone.

    After this the state is the one in force before the earliest change, and replaying the
    ordered changes forward passes through the anchor state again. An old value no earlier
    record gives comes from `polled` when given (overlay.priors), else it is unknown.
    """
    earlier = [c for c in changes if c.meta.event_time <= anchor_time]
    before = priors(earlier, polled)
    for event_id, definitions in _rule_priors(earlier).items():
        before.setdefault(event_id, {}).update(definitions)
    previous: dict[tuple[str, str], list[str]] = {}
    for change in earlier:
        if isinstance(change, AttributeChange) and not change.meta.failed:
            for key, value in change.attributes:
                previous.setdefault((change.target_group_arn, key), []).append(value)
    for change in reversed(earlier):
        prior: dict[str, str] | None = None
        if isinstance(change, AttributeChange) and not change.meta.failed:
            prior = {}
            for key, _value in change.attributes:
                values = previous[(change.target_group_arn, key)]
                values.pop()
                if values:
                    prior[key] = values[-1]
                elif polled is not None:
                    seen = polled(attribute_key(change.target_group_arn, key), change.meta.event_time)
                    if isinstance(seen, str):
                        prior[key] = seen
        state.undo(change, prior, before.get(change.meta.event_id))
    return earlier


def _rule_priors(earlier: list[Change]) -> dict[str, dict[PriorKey, object]]:
    """For each ModifySecurityGroupRules (by eventID), each modified rule's definition before it,
    from an earlier record of the same rule id (an authorize whose response named it, or an
    earlier modification); absent when no record gives it."""
    known: dict[tuple[str, str], Rule] = {}
    found: dict[str, dict[PriorKey, object]] = {}
    for change in earlier:
        if change.meta.failed:
            continue
        if isinstance(change, RuleModification):
            found[change.meta.event_id] = {
                ("rule", rule_id): known[(change.group_id, rule_id)]
                for rule_id, _rule in change.modifications
                if (change.group_id, rule_id) in known
            }
            for rule_id, rule in change.modifications:
                known[(change.group_id, rule_id)] = _with_id(rule, rule_id)
        elif isinstance(change, RuleChange):
            for rule in change.rules:
                if rule.rule_id is None:
                    continue
                if change.action == "authorize":
                    known[(change.group_id, rule.rule_id)] = rule
                else:
                    known.pop((change.group_id, rule.rule_id), None)
    return found
