"""Rule gaps and replacement orders, found by sweeping the timeline.

A gap is a maximal interval in which some target of a target group does not admit a required
flow kind (traffic or health_check). The sweep re-evaluates only the target groups a change
touches: those whose targets sit behind the changed group, or whose attributes changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from exporter.engine.changes import (
    Actor,
    AttributeChange,
    Change,
    EventMeta,
    GroupDeletion,
    RuleChange,
    RuleModification,
)
from exporter.engine.flows import FLOW_KINDS, AdmissionChecker, FlowKind, FlowStatus, flow_status
from exporter.engine.inventory import Inventory, LoadBalancer, TargetGroup
from exporter.engine.timeline import RuleState, affected_group, batches, ordered_changes, rewind
from exporter.engine.timeutil import format_time

Cause = Literal[
    "revoke_before_authorize",
    "revoke_without_restore",
    "requirement_change",
    "security_group_deleted",
    "undetermined",
]
CAUSES: tuple[Cause, ...] = (
    "revoke_before_authorize",
    "revoke_without_restore",
    "requirement_change",
    "security_group_deleted",
    "undetermined",
)
Order = Literal["make_before_break", "break_before_make"]
ORDERS: tuple[Order, ...] = ("make_before_break", "break_before_make")

#: A revoke and an authorize on one group this close together form one replacement.
REPLACEMENT_WINDOW = timedelta(minutes=5)


@dataclass(frozen=True)
class Gap:
    target_group_arn: str
    target_group: str
    flow: FlowKind
    start: datetime
    end: datetime | None
    cause: Cause
    opened_by: EventMeta | None = None
    closed_by: EventMeta | None = None
    aws_account_id: str = ""
    aws_region: str = ""

    @property
    def is_open(self) -> bool:
        return self.end is None

    @property
    def duration_seconds(self) -> float | None:
        return None if self.end is None else (self.end - self.start).total_seconds()

    @property
    def actor(self) -> Actor | None:
        return self.opened_by.actor if self.opened_by else None

    @property
    def key(self) -> tuple[str, str, str]:
        """Stable identity: the same gap found again (a later evaluation) has the same key."""
        return (self.target_group_arn, self.flow, format_time(self.start))

    def to_dict(self) -> dict[str, Any]:
        actor = self.actor
        return {
            "target_group_arn": self.target_group_arn,
            "target_group": self.target_group,
            "aws_account_id": self.aws_account_id,
            "aws_region": self.aws_region,
            "flow": self.flow,
            "start": format_time(self.start),
            "end": None if self.end is None else format_time(self.end),
            "duration_seconds": self.duration_seconds,
            "cause": self.cause,
            "actor": actor.label if actor else None,
            "actor_arn": actor.principal_arn if actor else None,
            "user_agent": actor.user_agent if actor else None,
            "controller": actor.is_controller if actor else None,
            "opened_by_event": self.opened_by.event_name if self.opened_by else None,
            "opened_by_event_id": self.opened_by.event_id if self.opened_by else None,
            "closed_by_event": self.closed_by.event_name if self.closed_by else None,
            "closed_by_event_id": self.closed_by.event_id if self.closed_by else None,
        }


@dataclass(frozen=True)
class Replacement:
    """A revoke and an authorize of different sources for the same ports on one group."""

    group_id: str
    order: Order
    revoke: EventMeta
    authorize: EventMeta

    @property
    def time(self) -> datetime:
        return min(self.revoke.event_time, self.authorize.event_time)

    @property
    def exposure_seconds(self) -> float:
        """How long the revoked rules were gone before their replacement arrived (0 when made first)."""
        return max(0.0, (self.authorize.event_time - self.revoke.event_time).total_seconds())


@dataclass
class Analysis:
    gaps: list[Gap] = field(default_factory=list)
    replacements: list[Replacement] = field(default_factory=list)
    status: dict[str, dict[FlowKind, FlowStatus]] = field(default_factory=dict)  # at the end of the sweep
    final_state: RuleState | None = None


def load_balancer_of(inventory: Inventory, target_group: TargetGroup) -> LoadBalancer | None:
    for arn in target_group.load_balancer_arns:
        lb = inventory.load_balancers.get(arn)
        if lb is not None:
            return lb
    return None


def groups_by_target_group(inventory: Inventory) -> dict[str, set[str]]:
    """For each served target group, the security groups on its targets' ENIs."""
    result: dict[str, set[str]] = {}
    for tg in inventory.target_groups.values():
        groups: set[str] = set()
        for target in tg.targets:
            eni = inventory.network_interfaces.get(target.eni_id or "")
            if eni is not None:
                groups.update(eni.security_group_ids)
        result[tg.arn] = groups
    return result


def _classify(opener: Change | None, closer: Change | None) -> Cause:
    if opener is None:
        return "undetermined"
    if isinstance(opener, GroupDeletion):
        return "security_group_deleted"
    if isinstance(opener, AttributeChange):
        return "requirement_change"
    if isinstance(opener, RuleModification) or (isinstance(opener, RuleChange) and opener.action == "revoke"):
        restored = isinstance(closer, RuleModification) or (
            isinstance(closer, RuleChange) and closer.action == "authorize"
        )
        if closer is not None and restored:
            return "revoke_before_authorize"
        return "revoke_without_restore"
    return "undetermined"


def _pick(batch: list[Change], group_ids: set[str], tg_arn: str, *, opening: bool) -> Change:
    """The change in a batch that explains a target group's transition.

    Opening a gap: deletions first, then modifications, revokes, attribute changes. Closing
    one: authorizes first. Only changes touching the target group count, when there are any.
    """

    def relevant(change: Change) -> bool:
        if isinstance(change, AttributeChange):
            return change.target_group_arn == tg_arn
        return change.group_id in group_ids

    candidates = [c for c in batch if relevant(c) and not c.meta.failed] or batch
    if opening:
        rank = {GroupDeletion: 0, RuleModification: 1, RuleChange: 2, AttributeChange: 3}
        action = "revoke"
    else:
        rank = {RuleChange: 0, RuleModification: 1, AttributeChange: 2, GroupDeletion: 3}
        action = "authorize"
    return min(candidates, key=lambda c: (rank[type(c)], 0 if getattr(c, "action", "") == action else 1))


def analyze(
    inventory: Inventory,
    changes: Iterable[Change],
    *,
    evaluate_from: datetime | None = None,
) -> Analysis:
    """Find every gap and replacement in the changes, given the anchor inventory.

    The sweep starts before the earliest change (or at `evaluate_from`, or at the anchor when
    there are no changes) and ends at the last change or the anchor, whichever is later; a gap
    still failing there is open (end None). A target group failing already at the start opens
    a gap at that start with cause "undetermined".
    """
    ordered = ordered_changes(changes)
    groups_of_tg = groups_by_target_group(inventory)
    tgs_of_group: dict[str, list[str]] = {}
    for tg_arn, group_ids in groups_of_tg.items():
        for gid in group_ids:
            tgs_of_group.setdefault(gid, []).append(tg_arn)
    served = {
        arn: (tg, lb)
        for arn, tg in inventory.target_groups.items()
        if (lb := load_balancer_of(inventory, tg)) is not None
    }

    state = RuleState.from_inventory(inventory, watched_groups=tgs_of_group.keys())
    rewind(state, ordered, inventory.taken_at)

    def evaluate(tg_arns: Iterable[str]) -> dict[str, dict[FlowKind, FlowStatus]]:
        checker = AdmissionChecker(inventory, state.rules_by_group())
        return {
            arn: flow_status(
                checker, inventory, served[arn][0], served[arn][1], state.attributes.get(arn, {})
            )
            for arn in tg_arns
            if arn in served
        }

    start_time = ordered[0].meta.event_time if ordered else inventory.taken_at
    if evaluate_from is not None:
        start_time = min(start_time, evaluate_from)
    status = evaluate(served.keys())
    open_gaps: dict[tuple[str, FlowKind], tuple[datetime, Change | None]] = {}
    for arn, kinds in status.items():
        for kind in FLOW_KINDS:
            if not kinds[kind].fully_admitted:
                open_gaps[(arn, kind)] = (start_time, None)

    gaps: list[Gap] = []
    for moment, batch in batches(ordered):
        touched: set[str] = set()
        for change in batch:
            state.apply(change)
            if isinstance(change, AttributeChange):
                if change.target_group_arn in served:
                    touched.add(change.target_group_arn)
            else:
                touched.update(tgs_of_group.get(affected_group(change) or "", ()))
        if not touched:
            continue
        fresh = evaluate(sorted(touched))
        for arn, kinds in fresh.items():
            status[arn] = kinds
            for kind in FLOW_KINDS:
                key = (arn, kind)
                admitted = kinds[kind].fully_admitted
                if not admitted and key not in open_gaps:
                    open_gaps[key] = (moment, _pick(batch, groups_of_tg[arn], arn, opening=True))
                elif admitted and key in open_gaps:
                    started, opener = open_gaps.pop(key)
                    closer = _pick(batch, groups_of_tg[arn], arn, opening=False)
                    gaps.append(_gap(inventory, arn, kind, started, moment, opener, closer))
    for (arn, kind), (started, opener) in open_gaps.items():
        gaps.append(_gap(inventory, arn, kind, started, None, opener, None))
    gaps.sort(key=lambda g: (g.start, g.target_group, g.flow))
    return Analysis(gaps, find_replacements(ordered), status, state)


def _gap(
    inventory: Inventory,
    arn: str,
    kind: FlowKind,
    start: datetime,
    end: datetime | None,
    opener: Change | None,
    closer: Change | None,
) -> Gap:
    tg = inventory.target_groups[arn]
    return Gap(
        target_group_arn=arn,
        target_group=tg.name,
        flow=kind,
        start=start,
        end=end,
        cause=_classify(opener, closer),
        opened_by=opener.meta if opener else None,
        closed_by=closer.meta if closer else None,
        aws_account_id=inventory.account_id,
        aws_region=inventory.region,
    )


def _port_sets(change: RuleChange) -> set[tuple[str, int, int]]:
    return {(r.protocol, r.from_port, r.to_port) for r in change.rules}


def find_replacements(changes: Iterable[Change], window: timedelta = REPLACEMENT_WINDOW) -> list[Replacement]:
    """Pair each successful revoke with the nearest authorize on the same group and ports.

    Sources must differ (re-authorizing the very rule that was revoked is a restore, not a
    replacement). Classified by which came first; redundancy elsewhere does not matter.
    """
    by_group: dict[str, list[RuleChange]] = {}
    for change in ordered_changes(changes):
        if isinstance(change, RuleChange) and not change.meta.failed and change.rules:
            by_group.setdefault(change.group_id, []).append(change)
    found: list[Replacement] = []
    for group_id, group_changes in by_group.items():
        authorizes = [c for c in group_changes if c.action == "authorize"]
        used: set[str] = set()
        for revoke in (c for c in group_changes if c.action == "revoke"):
            ports = _port_sets(revoke)
            sources = {r.source for r in revoke.rules}
            best: RuleChange | None = None
            for auth in authorizes:
                if auth.meta.event_id in used:
                    continue
                if abs(auth.meta.event_time - revoke.meta.event_time) > window:
                    continue
                if not ports & _port_sets(auth) or {r.source for r in auth.rules} <= sources:
                    continue
                distance = abs(auth.meta.event_time - revoke.meta.event_time)
                if best is None or distance < abs(best.meta.event_time - revoke.meta.event_time):
                    best = auth
            if best is None:
                continue
            used.add(best.meta.event_id)
            order: Order = (
                "break_before_make" if revoke.meta.event_time < best.meta.event_time else "make_before_break"
            )
            if revoke.meta.event_time == best.meta.event_time:
                position = group_changes.index
                order = "break_before_make" if position(revoke) < position(best) else "make_before_break"
            found.append(Replacement(group_id, order, revoke.meta, best.meta))
    found.sort(key=lambda r: r.time)
    return found


def summarize_status(
    inventory: Inventory, rules_state: RuleState
) -> Mapping[str, dict[FlowKind, FlowStatus]]:
    """Flow status of every served target group under a given rule state."""
    checker = AdmissionChecker(inventory, rules_state.rules_by_group())
    result: dict[str, dict[FlowKind, FlowStatus]] = {}
    for arn, tg in inventory.target_groups.items():
        lb = load_balancer_of(inventory, tg)
        if lb is not None:
            result[arn] = flow_status(checker, inventory, tg, lb, rules_state.attributes.get(arn, {}))
    return result
