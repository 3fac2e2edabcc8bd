"""Why a target group's targets are (or are not) admitted, rule by rule, at one moment.

Pure: works on an inventory, a `RuleState` and changes handed in; reads no clock, does no I/O.

`explain_target_group` answers, for each flow kind (traffic, health_check) and each target:
admitted or not; when admitted, the rules that admit it (security group, rule id, description
and the last recorded change of each rule: who and when); when not, the reason code from
`flows.REASONS` and, for a partly covered source, the exact CIDRs left uncovered.
`state_at` rebuilds the rule state at a past moment from an anchor inventory and changes, with
the same rewind/apply the gap sweep uses. The words and the JSON form are exporter/reports/explain.py.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from exporter.engine.changes import Change, EventMeta, RuleChange
from exporter.engine.flows import (
    FLOW_KINDS,
    PRESERVE_CLIENT_IP,
    AdmissionChecker,
    FlowKind,
    Reason,
    health_check_port,
    preserve_client_ip,
    requirements,
    why_not_evaluable,
)
from exporter.engine.gaps import analyze, groups_by_target_group, load_balancer_of
from exporter.engine.intent import anchor_intents
from exporter.engine.inventory import Inventory, TargetGroup
from exporter.engine.rules import Flow, Rule, Source, uncovered
from exporter.engine.timeline import RuleKey, RuleState, affected_group, ordered_changes, rewind

STACK_TAG = "service.k8s.aws/stack"

PreserveOrigin = Literal["attribute", "default", "protocol"]


class TargetNotFound(LookupError):
    """No target group (or more than one, where one is needed) matches what was asked for."""


class NotExplainable(ValueError):
    """The target group exists but cannot be evaluated (for example: no load balancer known)."""


# --- finding the target group -----------------------------------------------------------------


def service_of(inventory: Inventory, target_group: TargetGroup) -> str | None:
    """`namespace/service` of a target group: its Kubernetes binding, else its stack tag."""
    binding = inventory.services.get(target_group.arn)
    if binding is not None:
        return f"{binding.namespace}/{binding.service}"
    stack = target_group.tags.get(STACK_TAG)
    return stack or None


def find_target_groups(inventory: Inventory, target: str) -> list[TargetGroup]:
    """Target groups matching a target group ARN, name, or `namespace/service` (all of its ports).

    Raises TargetNotFound with a one-line message when nothing matches.
    """
    wanted = target.strip()
    if not wanted:
        raise TargetNotFound("empty target: give a target group name or ARN, or namespace/service")
    found: list[TargetGroup] = []
    if wanted.startswith("arn:"):
        tg = inventory.target_groups.get(wanted)
        found = [tg] if tg is not None else []
    else:
        found = [tg for tg in inventory.target_groups.values() if tg.name == wanted]
        if not found and "/" in wanted:
            found = [tg for tg in inventory.target_groups.values() if service_of(inventory, tg) == wanted]
    if not found:
        raise TargetNotFound(
            f"no target group matches {wanted!r} (by ARN, name or namespace/service) "
            f"among {len(inventory.target_groups)} known"
        )
    return sorted(found, key=lambda tg: (tg.name, tg.arn))


# --- the state at a moment ---------------------------------------------------------------------


def _watched_groups(inventory: Inventory) -> set[str]:
    return {g for groups in groups_by_target_group(inventory).values() for g in groups}


def state_at(inventory: Inventory, changes: Iterable[Change], at: datetime) -> RuleState:
    """Rules and attributes in force at `at`: rewound to before the earliest change, then every
    change with eventTime <= `at` applied (changes of one second are applied together).

    Tracks the groups on the inventory's target ENIs, like the gap sweep; `last_change` holds,
    for each rule touched by an applied change, the change's metadata.
    """
    ordered = ordered_changes(changes)
    state = RuleState.from_inventory(inventory, watched_groups=_watched_groups(inventory))
    rewind(state, ordered, inventory.taken_at)
    for change in ordered:
        if change.meta.event_time > at:
            break
        state.apply(change)
    _adopt_inventory_ids(state, inventory, ordered, at)
    return state


def _adopt_inventory_ids(state: RuleState, inventory: Inventory, ordered: list[Change], at: datetime) -> None:
    """Give rules rebuilt from records without rule ids the id the inventory knows, when it is the
    same rule: nothing touched that group and key between `at` and the inventory's time.

    (A rule revoked and re-authorized in between is another rule with another id.)
    """
    low, high = sorted((at, inventory.taken_at))
    touched_keys: set[tuple[str, object]] = set()
    touched_groups: set[str] = set()
    for change in ordered:
        if not low < change.meta.event_time <= high or change.meta.failed:
            continue
        if isinstance(change, RuleChange) and not change.rule_ids:
            touched_keys.update((change.group_id, r.key) for r in change.rules)
        elif (group_id := affected_group(change)) is not None:
            touched_groups.add(group_id)  # by rule id, modification, deletion: any rule of it
    for group_id, rules in state.rules.items():
        sg = inventory.security_groups.get(group_id)
        if sg is None or group_id in touched_groups:
            continue
        known: dict[RuleKey, Rule] = {r.key: r for r in sg.rules}
        for key, rule in list(rules.items()):
            anchor = known.get(key)
            if rule.rule_id is None and anchor is not None and (group_id, key) not in touched_keys:
                rules[key] = Rule(
                    rule.protocol,
                    rule.from_port,
                    rule.to_port,
                    rule.source,
                    anchor.rule_id,
                    rule.description if rule.description is not None else anchor.description,
                )


def with_intents(inventory: Inventory, changes: Iterable[Change], at: datetime | None = None) -> Inventory:
    """The inventory with each target group's intent at `at` (else now), as the sweep learns it
    from the records (engine/intent.py): what `explain` and `plan` judge client sources by."""
    analysis = analyze(inventory, changes)
    return inventory.with_intents(analysis.intents if at is None else analysis.intents_at(at))


def current_state(inventory: Inventory, changes: Iterable[Change]) -> RuleState:
    """The state after every change: the anchor, or later when changes follow it."""
    ordered = ordered_changes(changes)
    latest = max([inventory.taken_at, *(c.meta.event_time for c in ordered)])
    return state_at(inventory, ordered, latest)


# --- the explanation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleRef:
    """One rule in one security group, with the last recorded change to it (None: not in the events)."""

    group_id: str
    rule: Rule
    last_change: EventMeta | None = None


@dataclass(frozen=True)
class TargetResult:
    """One flow kind at one target.

    `rules`: when admitted, the rules that admit it; when not, the rules that admit part of the
    failing flow's source. `port_rules`: for source_not_covered, the rules on the port that admit
    other sources. `uncovered`: the CIDRs of the failing flow's source that nothing admits.
    `also_not_admitted`: the other flows of the same requirement (other sources, other ports)
    that are not admitted either; `flow` is the first, and adding a rule for it alone is not
    enough while these remain.
    """

    target_id: str
    port: int
    eni_id: str | None
    security_groups: tuple[str, ...]
    admitted: bool
    reason: Reason | None = None
    flow: Flow | None = None
    uncovered: tuple[str, ...] = ()
    rules: tuple[RuleRef, ...] = ()
    port_rules: tuple[RuleRef, ...] = ()
    not_evaluable: str | None = None  # flows.NOT_EVALUABLE_REASONS: neither admitted nor a gap
    also_not_admitted: tuple[Flow, ...] = ()


@dataclass(frozen=True)
class FlowResult:
    kind: FlowKind
    required: tuple[tuple[tuple[str, Source], ...], ...]  # alternatives of (protocol, source); port aside
    targets: tuple[TargetResult, ...]

    @property
    def admitted(self) -> int:
        return sum(1 for t in self.targets if t.admitted)

    @property
    def not_evaluable(self) -> int:
        return sum(1 for t in self.targets if t.not_evaluable)


@dataclass(frozen=True)
class Explanation:
    target_group_arn: str
    target_group: str
    load_balancer_arn: str
    load_balancer: str
    scheme: str
    mode: str  # "sg" | "legacy"
    target_type: str
    protocol: str
    preserve_client_ip: bool
    preserve_origin: PreserveOrigin
    service: str | None
    at: datetime | None
    flows: tuple[FlowResult, ...]
    intent: str = "default"  # what the client sources are judged by (engine/intent.py)
    intent_sources: tuple[str, ...] = ()

    @property
    def fully_admitted(self) -> bool:
        return all(f.admitted + f.not_evaluable == len(f.targets) for f in self.flows)

    def flow(self, kind: FlowKind) -> FlowResult:
        return next(f for f in self.flows if f.kind == kind)


def _preserve_origin(target_group: TargetGroup, attributes: Mapping[str, str]) -> PreserveOrigin:
    if target_group.protocol.upper() in ("UDP", "TCP_UDP", "QUIC", "TCP_QUIC"):
        return "protocol"
    return "attribute" if PRESERVE_CLIENT_IP in attributes else "default"


def _size(networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> int:
    return sum(n.num_addresses for n in networks)


def contributing_rules(rules_by_group: Mapping[str, Sequence[Rule]], flow: Flow) -> list[tuple[str, Rule]]:
    """The (group, rule) pairs that admit some of the flow, without redundant ones.

    Security-group and prefix-list sources: every exact match. CIDR sources: widest first, a
    rule kept only when it admits addresses the rules kept before it do not (so 0.0.0.0/0 alone
    explains traffic from 0.0.0.0/0 even when subnet rules exist too).
    """
    candidates: list[tuple[str, Rule]] = []
    for group_id in sorted(rules_by_group):
        for rule in sorted(rules_by_group[group_id]):
            if not rule.matches_port(flow.protocol, flow.port) or rule.source.kind != flow.source.kind:
                continue
            if flow.source.kind in ("sg", "prefix_list"):
                if rule.source == flow.source:
                    candidates.append((group_id, rule))
            elif rule.source.network.overlaps(flow.source.network):
                candidates.append((group_id, rule))
    if flow.source.kind in ("sg", "prefix_list"):
        return candidates
    whole = [pair for pair in candidates if pair[1].source.network.supernet_of(flow.source.network)]  # type: ignore[arg-type]
    if whole:
        # One rule admits all of it: name the closest one (the subnet rule, not 0.0.0.0/0).
        return [max(whole, key=lambda pair: (pair[1].source.network.prefixlen, pair[0]))]
    candidates.sort(key=lambda pair: (pair[1].source.network.prefixlen, pair[0], pair[1]))
    kept: list[tuple[str, Rule]] = []
    missing = _size(uncovered([], flow))
    for group_id, rule in candidates:
        after = _size(uncovered([r for _, r in kept] + [rule], flow))
        if after < missing:
            kept.append((group_id, rule))
            missing = after
        if missing == 0:
            break
    return kept


def _refs(pairs: Iterable[tuple[str, Rule]], state: RuleState) -> tuple[RuleRef, ...]:
    seen: set[tuple[str, object]] = set()
    refs: list[RuleRef] = []
    for group_id, rule in pairs:
        if (group_id, rule.key) in seen:
            continue
        seen.add((group_id, rule.key))
        refs.append(RuleRef(group_id, rule, state.last_change.get((group_id, rule.key))))
    return tuple(refs)


def _explain_target(
    checker: AdmissionChecker,
    state: RuleState,
    rules_by_group: Mapping[str, Sequence[Rule]],
    target_id: str,
    eni_id: str | None,
    port: int,
    alternatives: tuple[tuple[Flow, ...], ...],
) -> TargetResult:
    groups = checker.groups_of(eni_id) or ()
    admission = checker.check(eni_id, alternatives)
    present = {g: rules_by_group[g] for g in groups if g in rules_by_group}
    if admission.admitted:
        union = [r for rules in present.values() for r in rules]
        chosen = next(
            (alt for alt in alternatives if all(not uncovered(union, f) for f in alt)),
            alternatives[0] if alternatives else (),
        )
        pairs = [pair for flow in chosen for pair in contributing_rules(present, flow)]
        return TargetResult(target_id, port, eni_id, groups, True, rules=_refs(pairs, state))
    flow = admission.flow
    cidr_flow = flow is not None and flow.source.kind in ("cidr4", "cidr6")
    partial: tuple[RuleRef, ...] = ()
    others: tuple[RuleRef, ...] = ()
    if flow is not None:
        partial = _refs(contributing_rules(present, flow), state)
        if admission.reason == "source_not_covered":
            others = _refs(
                (
                    (g, r)
                    for g, rules in sorted(present.items())
                    for r in sorted(rules)
                    if r.matches_port(flow.protocol, flow.port)
                ),
                state,
            )
    return TargetResult(
        target_id,
        port,
        eni_id,
        groups,
        False,
        reason=admission.reason,
        flow=flow,
        uncovered=tuple(str(n) for n in admission.uncovered) if cidr_flow else (),
        rules=partial,
        port_rules=others,
        also_not_admitted=_also_not_admitted(checker, eni_id, alternatives, flow),
    )


def _also_not_admitted(
    checker: AdmissionChecker,
    eni_id: str | None,
    alternatives: tuple[tuple[Flow, ...], ...],
    flow: Flow | None,
) -> tuple[Flow, ...]:
    """The flows of `flow`'s alternative, other than `flow`, that the target does not admit either
    (checked as the admission was, prefix lists expanded)."""
    alternative = next((alt for alt in alternatives if flow is not None and flow in alt), ())
    return tuple(f for f in alternative if f != flow and not checker.check(eni_id, ((f,),)).admitted)


def explain_target_group(
    inventory: Inventory, tg_arn: str, state: RuleState, *, at: datetime | None = None
) -> Explanation:
    """Every target of the group, per flow kind, under the rules and attributes of `state`.

    `at` is only recorded in the result (the moment `state` stands for). Raises TargetNotFound
    for an unknown ARN and NotExplainable when none of the group's load balancers is known.
    When `state` was built from this inventory, its targets, ENI groups, health-check port and
    load balancer are those of that moment (engine/overlay.py).
    """
    if state.overlay is not None and state.overlay.anchor is inventory:
        inventory = state.overlay.view().inventory
    target_group = inventory.target_groups.get(tg_arn)
    if target_group is None:
        raise TargetNotFound(f"no target group {tg_arn!r} in the inventory")
    lb = load_balancer_of(inventory, target_group)
    if lb is None:
        raise NotExplainable(f"target group {target_group.name} is not attached to a known load balancer")
    attributes = state.attributes.get(tg_arn, dict(target_group.attributes))
    if tg_arn not in inventory.intents:  # not given (with_intents): the anchor's
        inventory = inventory.with_intents(anchor_intents(inventory, inventory.intents))
    intent = inventory.intent_of(tg_arn)
    reqs = requirements(inventory, target_group, lb, attributes)
    rules_by_group = state.rules_by_group()
    checker = AdmissionChecker(inventory, rules_by_group)
    flows: list[FlowResult] = []
    for kind in FLOW_KINDS:
        results = []
        for target in target_group.targets:
            port = target.port if kind == "traffic" else health_check_port(target_group, target.port)
            why_not = why_not_evaluable(inventory, target_group, target)
            if why_not:
                results.append(TargetResult(target.target_id, port, None, (), False, not_evaluable=why_not))
                continue
            results.append(
                _explain_target(
                    checker,
                    state,
                    rules_by_group,
                    target.target_id,
                    target.eni_id,
                    port,
                    reqs[kind].flows(port),
                )
            )
        flows.append(FlowResult(kind, reqs[kind].alternatives, tuple(results)))
    return Explanation(
        target_group_arn=tg_arn,
        target_group=target_group.name,
        load_balancer_arn=lb.arn,
        load_balancer=lb.name,
        scheme=lb.scheme,
        mode=lb.mode,
        target_type=target_group.target_type,
        protocol=target_group.protocol,
        preserve_client_ip=preserve_client_ip(target_group, attributes),
        preserve_origin=_preserve_origin(target_group, attributes),
        service=service_of(inventory, target_group),
        at=at,
        flows=tuple(flows),
        intent=intent.kind,
        intent_sources=intent.sources,
    )
