"""Rule gaps and replacement orders, found by sweeping the timeline.

A gap is a maximal interval in which some target of a target group does not admit a required
flow kind (traffic or health_check). The sweep re-evaluates only the target groups a change
touches: those whose targets sit behind the changed group, or whose attributes changed.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Literal, get_args

from exporter.engine.changes import (
    INVENTORY_CHANGES,
    Actor,
    AttributeChange,
    Change,
    EventMeta,
    GroupDeletion,
    InterfaceGroupsChange,
    RuleChange,
    RuleModification,
)
from exporter.engine.flows import (
    FLOW_KINDS,
    AdmissionChecker,
    FlowKind,
    FlowStatus,
    flow_status,
    health_check_port,
    transport_protocols,
)
from exporter.engine.intent import (
    BindingHistory,
    IntentTimeline,
    anchor_intents,
    final_intents,
    intents_at,
    learn_if_moved,
)
from exporter.engine.inventory import Intent, Inventory, LoadBalancer, TargetGroup
from exporter.engine.ordering import ORDERS as ORDERS  # re-exported: metrics and the daemon read them here
from exporter.engine.ordering import Order as Order
from exporter.engine.ordering import (
    QuotaRefusals,
    batch_steps,
    in_time_order,
    same_second_order,
)
from exporter.engine.overlay import View
from exporter.engine.polls import PollHistory, eni_groups_before, polled_before
from exporter.engine.rules import ALL_PROTOCOLS, Rule
from exporter.engine.timeline import RuleState, affected_group, moments, rewind
from exporter.engine.timeutil import format_time

Cause = Literal[
    "revoke_before_authorize",
    "revoke_without_restore",
    "requirement_change",
    "security_group_deleted",
    "eni_groups_changed",  # ModifyNetworkInterfaceAttribute gave a target's ENI groups that do not admit
    "undetermined",
]
CAUSES: tuple[Cause, ...] = get_args(Cause)

#: A revoke and an authorize on one group this close together form one replacement.
REPLACEMENT_WINDOW = timedelta(minutes=5)

#: The cause an open gap opened by a revoke shows while a restore may still come: a controller
#: replacing rules authorizes within seconds to a minute, so calling the gap
#: revoke_without_restore (whose runbook says "re-authorize by hand") earlier would make on-call
#: race the controller. Never counted: only closed gaps are, with their final cause.
PENDING_CAUSE = "pending_restore"
#: How long an open revoke gap stays `pending_restore` before it is called revoke_without_restore
#: (the replacement window: a later authorize would not be paired with the revoke any more).
RESTORE_WAIT = REPLACEMENT_WINDOW


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
    # False when the real start is not known: the flow was already not admitted at the first
    # moment the records cover, or what preceded the opening change is not known (its record
    # carries only the new value and no earlier record gives the old one). `note` says which.
    start_exact: bool = True
    note: str | None = None

    @property
    def is_open(self) -> bool:
        return self.end is None

    @property
    def duration_seconds(self) -> float | None:
        return None if self.end is None else (self.end - self.start).total_seconds()

    @property
    def under_one_second(self) -> bool:
        """Opened and closed within one CloudTrail second (a same-second pair in a known order)."""
        return self.end is not None and self.end == self.start

    @property
    def actor(self) -> Actor | None:
        return self.opened_by.actor if self.opened_by else None

    def cause_at(self, now: datetime) -> str:
        """The cause to show at `now`: `pending_restore` for a revoke gap younger than RESTORE_WAIT."""
        if self.is_open and self.cause == "revoke_without_restore" and now - self.start < RESTORE_WAIT:
            return PENDING_CAUSE
        return self.cause

    @property
    def key(self) -> tuple[str, str, str]:
        """Stable identity: the same gap found again (a later evaluation) has the same key."""
        return (self.target_group_arn, self.flow, format_time(self.start))


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
    intents: dict[str, Intent] = field(default_factory=dict)  # at the end of the sweep (engine/intent.py)
    anchor_intents: dict[str, Intent] = field(default_factory=dict)
    intent_timeline: IntentTimeline = field(default_factory=IntentTimeline)
    binding_history: BindingHistory = field(default_factory=dict)
    #: The moment the sweep ends (the last change or the anchor, whichever is later): what an
    #: open gap's cause is shown as of (Gap.cause_at) in replay, backfill and explain.
    end: datetime | None = None

    def intents_at(self, moment: datetime) -> dict[str, Intent]:
        """Every target group's intent at a moment of the sweep (explain --at)."""
        return intents_at(self.anchor_intents, self.intent_timeline, self.binding_history, moment)


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


#: For each security group, the (IP protocol, port) pairs the target groups behind it need.
RequiredPorts = Mapping[str, frozenset[tuple[str, int]]]


def required_ports(
    inventory: Inventory, only: Mapping[str, Collection[str]] | None = None
) -> dict[str, frozenset[tuple[str, int]]]:
    """Traffic and health-check ports of every target, by the security groups on its ENI.

    `only`: just these groups, each with the ARNs of (at least) the target groups whose targets'
    ENIs hold it (analyze's `tgs_of_group`): their ports are the same, and only the target groups
    behind them are walked, not the whole inventory.
    """
    target_groups: Iterable[TargetGroup] = inventory.target_groups.values()
    if only is not None:
        arns = {arn for tg_arns in only.values() for arn in tg_arns}
        target_groups = [tg for arn in arns if (tg := inventory.target_groups.get(arn)) is not None]
    found: dict[str, set[tuple[str, int]]] = {}
    for tg in target_groups:
        protocols = transport_protocols(tg.protocol)
        for target in tg.targets:
            eni = inventory.network_interfaces.get(target.eni_id or "")
            if eni is None:
                continue
            needed = {(p, target.port) for p in protocols}
            needed.add(("tcp", health_check_port(tg, target.port)))  # health checks are TCP-based
            for group_id in eni.security_group_ids:
                if only is None or group_id in only:
                    found.setdefault(group_id, set()).update(needed)
    return {group_id: frozenset(ports) for group_id, ports in found.items()}


def _classify(opener: Change | None, closer: Change | None) -> Cause:
    if opener is None:
        return "undetermined"
    if isinstance(opener, GroupDeletion):
        return "security_group_deleted"
    if isinstance(opener, InterfaceGroupsChange):
        return "eni_groups_changed"
    if isinstance(opener, (AttributeChange, *INVENTORY_CHANGES)):
        return "requirement_change"  # attributes, health-check port, LB groups or subnets, a new target
    if isinstance(opener, RuleModification) or (isinstance(opener, RuleChange) and opener.action == "revoke"):
        restored = isinstance(closer, RuleModification) or (
            isinstance(closer, RuleChange) and closer.action == "authorize"
        )
        if closer is not None and restored:
            return "revoke_before_authorize"
        return "revoke_without_restore"
    return "undetermined"


def _pick(
    batch: list[Change],
    group_ids: set[str],
    tg_arn: str,
    *,
    opening: bool,
    touches: Mapping[str, set[str]] | None = None,
) -> Change:
    """The change in a batch that explains a target group's transition.

    Opening a gap: deletions first, then modifications, revokes, ENI group changes, attribute
    and other inventory changes. Closing one: authorizes first. Only changes touching the target
    group count, when there are any (`touches`: target groups of each inventory change, by eventID).
    """

    def relevant(change: Change) -> bool:
        if isinstance(change, AttributeChange):
            return change.target_group_arn == tg_arn
        group_id = affected_group(change)
        if group_id is not None:
            return group_id in group_ids
        return tg_arn in (touches or {}).get(change.meta.event_id, ())

    candidates = [c for c in batch if relevant(c) and not c.meta.failed] or batch
    rank: dict[type[Change], int]
    if opening:
        rank = {GroupDeletion: 0, RuleModification: 1, RuleChange: 2, InterfaceGroupsChange: 3}
        action = "revoke"
    else:
        rank = {RuleChange: 0, RuleModification: 1, InterfaceGroupsChange: 2, AttributeChange: 3}
        action = "authorize"
    return min(
        candidates, key=lambda c: (rank.get(type(c), 4), 0 if getattr(c, "action", "") == action else 1)
    )


def analyze(
    inventory: Inventory,
    changes: Iterable[Change],
    *,
    evaluate_from: datetime | None = None,
    binding_history: BindingHistory | None = None,
    polls: PollHistory | None = None,
) -> Analysis:
    """Find every gap and replacement in the changes, given the anchor inventory.

    Client sources follow each target group's intent at each moment (engine/intent.py): the
    anchor's `inventory.intents`, the TargetGroupBinding intents recorded over time
    (`binding_history`), and the controller-managed rules learned along the records. An old
    value a record does not carry (a health-check port, an ENI's groups, ...) comes from an
    earlier record, else from `polls` (the daemon's own earlier inventory polls), else it is
    not known.

    The sweep starts before the earliest change (or at `evaluate_from`, or at the anchor when
    there are no changes) and ends at the last change or the anchor, whichever is later; a gap
    still failing there is open (end None). A target group failing already at the start opens
    a gap at that start with cause "undetermined" and `start_exact` False (its real start
    predates the records). Each moment is judged against the inventory
    of that moment (overlay.py: health-check ports, targets, ENI groups, load balancer groups
    and subnets as the records move them); a flow whose requirement or targets are not known
    at a moment neither opens nor closes a gap, and a gap found when it becomes known has
    `start_exact` False.
    """
    ordered = in_time_order(changes)
    inventory = inventory.with_intents(anchor_intents(inventory, inventory.intents))
    quota = QuotaRefusals(ordered)
    groups_of_tg = groups_by_target_group(inventory)
    tgs_of_group: dict[str, set[str]] = {}
    for tg_arn, group_ids in groups_of_tg.items():
        for gid in group_ids:
            tgs_of_group.setdefault(gid, set()).add(tg_arn)
    served = {
        arn: (tg, lb)
        for arn, tg in inventory.target_groups.items()
        if (lb := load_balancer_of(inventory, tg)) is not None
    }
    moved = {g for c in ordered if isinstance(c, InterfaceGroupsChange) for g in c.group_ids}
    held_before = eni_groups_before(polls, ordered) if polls else {}
    moved.update(g for groups in held_before.values() for g in groups)
    watched = tgs_of_group.keys() | (moved & inventory.security_groups.keys())
    state = RuleState.from_inventory(inventory, watched_groups=watched)
    overlay = state.overlay
    assert overlay is not None
    if len(ordered) != sum(1 for c in ordered if not isinstance(c, INVENTORY_CHANGES)):
        # Targets and ENI groups move: a rule change on a group an ENI is given (or a registered
        # target's ENI has) re-evaluates the target groups behind that ENI.
        for gid, tg_arn in overlay.group_edges(ordered, held_before):
            tgs_of_group.setdefault(gid, set()).add(tg_arn)
            groups_of_tg.setdefault(tg_arn, set()).add(gid)
    rewind(state, ordered, inventory.taken_at, partial(polled_before, polls) if polls else None)
    start_time = ordered[0].meta.event_time if ordered else inventory.taken_at
    if evaluate_from is not None:
        start_time = min(start_time, evaluate_from)
    end_time = max(inventory.taken_at, ordered[-1].meta.event_time) if ordered else inventory.taken_at
    timeline: IntentTimeline = learn_if_moved(inventory, ordered, start_time, end_time, tgs_of_group)
    history = binding_history or {}

    def evaluate(
        tg_arns: Iterable[str], moment: datetime
    ) -> tuple[dict[str, dict[FlowKind, FlowStatus]], View]:
        view = overlay.view()
        now = view.inventory
        if timeline.adopted or history:
            now = now.with_intents(intents_at(now.intents, timeline, history, moment))
        checker = AdmissionChecker(now, state.rules_by_group())
        result: dict[str, dict[FlowKind, FlowStatus]] = {}
        for arn in tg_arns:
            if arn not in served:
                continue
            tg, lb = served[arn]
            if (
                now.target_groups is not inventory.target_groups
                or now.load_balancers is not inventory.load_balancers
            ):
                tg, lb = now.target_groups[arn], now.load_balancers.get(lb.arn, lb)
            result[arn] = flow_status(checker, now, tg, lb, state.attributes.get(arn, {}))
        return result, view

    # The state before the first change: the intents just before its moment too.
    status, view = evaluate(served.keys(), start_time - timedelta(microseconds=1))
    open_gaps: dict[tuple[str, FlowKind], _Opening] = {}
    unknown: set[tuple[str, FlowKind]] = set()
    for arn, kinds in status.items():
        not_known = _not_known(view, arn, kinds, state)
        for kind in FLOW_KINDS:
            if kind in not_known:
                unknown.add((arn, kind))
            elif not kinds[kind].fully_admitted:
                # Not admitted before the first record: no record says when that began.
                open_gaps[(arn, kind)] = _Opening(start_time, None, False)

    gaps: list[Gap] = []
    for moment, batch in moments(ordered):
        # Same-second changes in a known order happen in steps: a gap can open and close
        # within the second (ordering.py); otherwise the second is applied as one step.
        for step in batch_steps(batch, quota):
            touched: set[str] = set()
            touches: dict[str, set[str]] = {}
            for change in step:
                state.apply(change)
                if isinstance(change, AttributeChange):
                    if change.target_group_arn in served:
                        touched.add(change.target_group_arn)
                elif isinstance(change, INVENTORY_CHANGES):
                    hit = touches[change.meta.event_id] = overlay.touched(change)
                    touched.update(hit & served.keys())
                else:
                    touched.update(tgs_of_group.get(affected_group(change) or "", ()))
            if not touched:
                continue
            fresh, view = evaluate(sorted(touched), moment)
            for arn, kinds in fresh.items():
                status[arn] = kinds
                not_known = _not_known(view, arn, kinds, state)
                for kind in FLOW_KINDS:
                    key = (arn, kind)
                    if kind in not_known:
                        unknown.add(key)  # neither opens nor closes a gap
                        continue
                    was_unknown = key in unknown
                    unknown.discard(key)
                    admitted = kinds[kind].fully_admitted
                    groups = groups_of_tg.get(arn, set())
                    if not admitted and key not in open_gaps:
                        opener = _pick(step, groups, arn, opening=True, touches=touches)
                        open_gaps[key] = _Opening(moment, opener, not was_unknown)
                    elif admitted and key in open_gaps:
                        opening = open_gaps.pop(key)
                        closer = _pick(step, groups, arn, opening=False, touches=touches)
                        gaps.append(_gap(inventory, arn, kind, opening, moment, closer))
    for (arn, kind), opening in open_gaps.items():
        gaps.append(_gap(inventory, arn, kind, opening, None, None))
    gaps.sort(key=lambda g: (g.start, g.target_group, g.flow))
    # The ports of the groups find_replacements can ask about (those of rule changes), by the
    # target groups behind them: a walk of every target's ENI cost 7-9 us per target group.
    replaced_groups = {
        c.group_id: tgs_of_group.get(c.group_id, set()) for c in ordered if isinstance(c, RuleChange)
    }
    return Analysis(
        gaps,
        find_replacements(ordered, quota=quota, required=required_ports(inventory, replaced_groups)),
        status,
        state,
        final_intents(inventory.intents, timeline, history),
        inventory.intents,
        timeline,
        history,
        end_time,
    )


@dataclass(frozen=True)
class _Opening:
    start: datetime
    opener: Change | None
    start_exact: bool = True


def _not_known(
    view: View, arn: str, kinds: Mapping[FlowKind, FlowStatus], state: RuleState
) -> frozenset[str]:
    """Flow kinds of a target group whose state at this moment is not known: its requirement is
    not, or targets were left out and the rest all admit it (with one left out not admitting,
    the flow is known to fail), or it fails while a target's ENI holds a group with a rule whose
    definition no record gives (that rule might have admitted it)."""
    found = view.unknown.get(arn, frozenset())
    if arn in view.partial:
        found = found | {kind for kind in FLOW_KINDS if kinds[kind].fully_admitted}
    if state.incomplete:
        failing = {kind for kind in FLOW_KINDS if not kinds[kind].fully_admitted} - found
        if failing and _holds_incomplete_group(view, arn, state.incomplete.keys()):
            found = found | failing
    return found


def _holds_incomplete_group(view: View, arn: str, groups: Iterable[str]) -> bool:
    incomplete = set(groups)
    tg = view.inventory.target_groups.get(arn)
    enis = view.inventory.network_interfaces
    for target in tg.targets if tg is not None else ():
        eni = enis.get(target.eni_id or "")
        if eni is not None and not incomplete.isdisjoint(eni.security_group_ids):
            return True
    return False


_INEXACT_NOTE = (
    "what preceded {event} at {time} is not known: its record carries only the new value and no "
    "earlier record gives the old one, so the gap may have begun earlier"
)


_BEFORE_RECORDS_NOTE = (
    "already not admitted at the first moment the records cover, and no record says why: the gap "
    "began then or earlier"
)


def _gap(
    inventory: Inventory,
    arn: str,
    kind: FlowKind,
    opening: _Opening,
    end: datetime | None,
    closer: Change | None,
) -> Gap:
    tg = inventory.target_groups[arn]
    opener = opening.opener
    note = None
    if not opening.start_exact and opener is not None:
        note = _INEXACT_NOTE.format(event=opener.meta.event_name, time=format_time(opener.meta.event_time))
    elif not opening.start_exact:
        note = _BEFORE_RECORDS_NOTE
    return Gap(
        target_group_arn=arn,
        target_group=tg.name,
        flow=kind,
        start=opening.start,
        end=end,
        cause=_classify(opener, closer),
        opened_by=opener.meta if opener else None,
        closed_by=closer.meta if closer else None,
        aws_account_id=inventory.account_id,
        aws_region=inventory.region,
        start_exact=opening.start_exact,
        note=note,
    )


def _port_sets(change: RuleChange) -> set[tuple[str, int, int]]:
    return {(r.protocol, r.from_port, r.to_port) for r in change.rules}


def _covers(rule: Rule, protocol: str, port: int) -> bool:
    if rule.protocol == ALL_PROTOCOLS:
        return True
    return rule.protocol == protocol and rule.from_port <= port <= rule.to_port


def _readmits(revoke: RuleChange, authorize: RuleChange, required: frozenset[tuple[str, int]] | None) -> bool:
    """True when the authorize gives back, under another port range, what a revoked rule of the
    same protocol and source admitted: the required ports it removed (all of them, and at least
    one), or any of its ports when the required ports are not known.

    The controller keeps one rule per (protocol, source group) on a node group, spanning the
    lowest to the highest NodePort of all its target groups (computeRestrictedIngressPermissionsPerSG
    in pkg/targetgroupbinding/networking_manager.go from v2.3.0, moved to
    pkg/networking/networking_manager.go in v2.13.3, still there at v3.5.0): a new NodePort
    is a revoke of the old range and an authorize of a wider one from the same source.
    """
    for old in revoke.rules:
        for new in authorize.rules:
            if new.protocol != old.protocol or new.source != old.source:
                continue
            if (new.from_port, new.to_port) == (old.from_port, old.to_port):
                continue  # the very same rule again: a restore, not a replacement
            if required is None:
                if max(old.from_port, new.from_port) <= min(old.to_port, new.to_port):
                    return True
                continue
            removed = [(protocol, port) for protocol, port in required if _covers(old, protocol, port)]
            if removed and all(_covers(new, protocol, port) for protocol, port in removed):
                return True
    return False


def find_replacements(
    changes: Iterable[Change],
    window: timedelta = REPLACEMENT_WINDOW,
    *,
    quota: QuotaRefusals | None = None,
    required: RequiredPorts | None = None,
) -> list[Replacement]:
    """Pair each successful revoke with the nearest authorize on the same group that replaces it.

    A replacement either admits the same ports from other sources (re-authorizing the very rule
    that was revoked is a restore, not a replacement), or re-admits from the same source, under
    another range, the required ports the revoke removed (`_readmits`; `required`: the ports
    each group's target groups need, from `required_ports`). Classified by which came first;
    redundancy elsewhere does not matter. A pair in the same second is ordered by what its actor
    is known to do, else `unknown` (ordering.py).
    """
    ordered = in_time_order(changes)
    quota = quota if quota is not None else QuotaRefusals(ordered)
    by_group: dict[str, list[RuleChange]] = {}
    for change in ordered:
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
                other_sources = (
                    bool(ports & _port_sets(auth)) and not {r.source for r in auth.rules} <= sources
                )
                group_required = None if required is None else required.get(group_id, frozenset())
                if not other_sources and not _readmits(revoke, auth, group_required):
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
                order = same_second_order(revoke, best, quota)
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
