"""A read-only plan for flipping preserve_client_ip on one target group, in make-before-break order.

Pure: works on an inventory, the current `RuleState` and the changes seen; no I/O, no clock.
Nothing here is ever applied: the plan is shown as AWS CLI text a person reviews. The plan holds
facts only (codes from the Literal vocabularies below, with the ids, ports and counts involved);
every sentence about it is exporter/reports/plan.py's.

What the plan holds (DOMAIN.md):
- the flows required after the change, and the rules to authorize BEFORE the attribute change
  (on the security group the controller edits: the only one on the ENI, else the one tagged
  kubernetes.io/cluster/<name>) and the controller-managed rules that become unneeded AFTER it;
- what would happen if the controller applied the change itself: it changes the attribute
  first and the rules later (attribute-first gap when the new sources are not admitted yet),
  and before v2.12 (PR #3952) it revokes before it authorizes (break-before-make gap) - judged from the
  replacements and attribute-to-authorize lags it was seen doing in the given changes;
- whether a safe in-place order exists; when not, blue/green is recommended.

The plan as text, as JSON and as AWS CLI command lines is exporter/reports/plan.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from exporter.engine import ordering
from exporter.engine.changes import AttributeChange, Change, RuleChange
from exporter.engine.explain import NotExplainable, TargetNotFound, service_of
from exporter.engine.flows import (
    FLOW_KINDS,
    PRESERVE_CLIENT_IP,
    FlowKind,
    health_check_port,
    preserve_client_ip,
    requirements,
    why_not_evaluable,
)
from exporter.engine.gaps import (
    REPLACEMENT_WINDOW,
    find_replacements,
    groups_by_target_group,
    load_balancer_of,
    required_ports,
)
from exporter.engine.inventory import Inventory, NetworkInterface, PrefixList, TargetGroup
from exporter.engine.rules import Flow, Rule, admitting_rules, uncovered
from exporter.engine.timeline import RuleKey, RuleState, ordered_changes

LBC_DESCRIPTION = "elbv2.k8s.aws/targetGroupBinding=shared"
CLUSTER_TAG_PREFIX = "kubernetes.io/cluster/"
#: EC2's default quota of inbound rules per security group (per IP family); accounts may raise it.
DEFAULT_RULES_PER_GROUP = 60
#: The first controller release that authorizes before it revokes: PR #3952, commit 31ffe10 "bug fix:
#: try SG permission add prior to revoke" (it fixes issue #3822; a maintainer points issue #3639 to
#: it too, naming v2.10, but no tag before v2.12.0 holds it: pkg/networking/security_group_reconciler.go
#: at v2.10.0-v2.11.0 has no shouldRemoveSGRulesFirst); at the rule quota it still retries
#: revoke-first. ordering.py orders same-second pairs by it.
MAKE_BEFORE_BREAK_SINCE = ordering.MAKE_BEFORE_BREAK_SINCE
TARGET_GROUP_ATTRIBUTES_ANNOTATION = "service.beta.kubernetes.io/aws-load-balancer-target-group-attributes"
_ALWAYS_PRESERVING = frozenset({"UDP", "TCP_UDP", "QUIC", "TCP_QUIC"})
_VERSION = re.compile(r"elbv2\.k8s\.aws/v?(\d+)\.(\d+)(?:\.(\d+))?")

#: Why a group is the one the controller edits on an ENI: the only group on it, or the one group
#: among several tagged kubernetes.io/cluster/<name> (DOMAIN.md).
EditGroupReason = Literal["only_group", "cluster_tag"]
RiskKind = Literal[
    "attribute_first",
    "break_before_make",
    "rule_quota",
    "edit_group_unknown",
    "target_eni_unknown",
]
#: none: no gap; gap: a gap is expected (seen); likely_gap: expected from the controller version,
#: duration not seen; unknown: cannot judge; blocker: the in-place order itself cannot be done safely.
RiskLevel = Literal["none", "gap", "likely_gap", "unknown", "blocker"]
#: What a risk's level rests on. attribute_first: admitted_already (the rules admit the new flows
#: now), lag_seen / lag_not_seen (attribute change -> controller authorize in the events or not).
#: break_before_make: admitted_by_kept_rules (the rules that stay admit them), revoke_first_seen /
#: authorize_first_seen (replacements by the controller in the events), version_revokes_first /
#: version_authorizes_first (the controller version seen, against MAKE_BEFORE_BREAK_SINCE),
#: no_evidence. Blockers: eni_not_found, group_undecided, over_quota.
RiskBasis = Literal[
    "admitted_already",
    "lag_seen",
    "lag_not_seen",
    "admitted_by_kept_rules",
    "revoke_first_seen",
    "authorize_first_seen",
    "version_revokes_first",
    "version_authorizes_first",
    "no_evidence",
    "eni_not_found",
    "group_undecided",
    "over_quota",
]
StepAction = Literal["authorize", "modify_attribute", "revoke"]
#: nothing: the value is set and the rules admit it; repair: no attribute change, but rules to
#: authorize; in_place_no_rule_change: SG mode, the rules do not depend on the attribute;
#: in_place: make-before-break in a maintenance window; blue_green: no safe in-place order.
Advice = Literal["nothing", "repair", "in_place_no_rule_change", "in_place", "blue_green"]
#: What the reader should know beside the steps: the protocol always preserves; the attribute is
#: already the value wanted; SG mode; the target group is the controller's (change its annotation);
#: rules authorized early that the controller does not want yet; rules not controller-managed, left
#: alone; rules kept because other target groups rely on them; no registered targets; new
#: connections only; SG-mode targets admitted by CIDR rules (planned as in legacy mode); targets
#: that cannot be evaluated (outside the VPC, an ALB: flows.why_not_evaluable), not planned.
NoteKind = Literal[
    "always_preserving",
    "attribute_already_set",
    "sg_mode",
    "controller_managed",
    "early_rules",
    "not_managed",
    "kept_for_others",
    "no_targets",
    "new_connections_only",
    "cidr_targets_in_sg_mode",
    "not_evaluable_targets",
]


@dataclass(frozen=True)
class RuleEdit:
    """One rule to authorize or revoke on one group, and the flow kinds it is for (authorize) or
    admitted before (revoke), in the order found."""

    group_id: str
    rule: Rule
    flows: tuple[FlowKind, ...]


@dataclass(frozen=True)
class EditGroup:
    """A group the controller edits, why (`tag`: the cluster tag found; `groups_on_eni`: how many
    groups the first ENI holds), and the ENIs it is chosen on."""

    group_id: str
    reason: EditGroupReason
    groups_on_eni: int = 1
    tag: str | None = None
    enis: tuple[str, ...] = ()


@dataclass(frozen=True)
class UndecidedEni:
    """An ENI on which the group the controller edits cannot be told: `groups` on it, `tagged` of
    them with the cluster tag (`cluster`: the cluster's name, None when unknown)."""

    eni_id: str
    groups: int
    tagged: int
    cluster: str | None


@dataclass(frozen=True)
class QuotaExcess:
    """A group that would hold `rules` inbound rules of one IP family, over `quota`."""

    group_id: str
    rules: int
    family: str
    quota: int


@dataclass(frozen=True)
class Step:
    """One call of the plan, in order: authorize or revoke `edits` (one group, one protocol and
    port range: one API call), or set the attribute to `value` (modify_attribute). The AWS CLI
    command lines are exporter/reports/plan.py's."""

    action: StepAction
    edits: tuple[RuleEdit, ...] = ()
    value: bool | None = None


@dataclass(frozen=True)
class Risk:
    """One risk and what its level rests on: `flows` not admitted in the gap, `max_seconds` the
    longest seen, `seen` how many replacements in that order, `version` the controller version
    judged by; blockers name `targets` without an ENI, `undecided` ENIs or groups `over_quota`."""

    kind: RiskKind
    level: RiskLevel
    basis: RiskBasis
    flows: tuple[FlowKind, ...] = ()
    max_seconds: float | None = None
    seen: int = 0
    version: str | None = None
    targets: tuple[str, ...] = ()
    undecided: tuple[UndecidedEni, ...] = ()
    over_quota: tuple[QuotaExcess, ...] = ()


@dataclass(frozen=True)
class Note:
    """One note of the plan: `protocol` (always_preserving), `group_id` and `rules` (early_rules,
    not_managed, kept_for_others), `names` (kept_for_others: target groups; cidr_targets_in_sg_mode,
    not_evaluable_targets: targets)."""

    kind: NoteKind
    protocol: str = ""
    group_id: str = ""
    rules: tuple[Rule, ...] = ()
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class ControllerEvidence:
    """What the changes show about the controller: versions, replacement orders, attribute lags."""

    versions: tuple[str, ...] = ()  # in event order, each once
    make_before_break: int = 0
    break_before_make: int = 0
    unknown_order: int = 0  # same-second pairs whose order nothing known decides
    longest_exposure_seconds: float | None = None  # of the break-before-make replacements
    longest_attribute_lag_seconds: float | None = None  # attribute change -> controller authorize

    @property
    def latest_version(self) -> tuple[int, int, int] | None:
        return _version_tuple(self.versions[-1]) if self.versions else None


@dataclass(frozen=True)
class Plan:
    target_group_arn: str
    target_group: str
    service: str | None
    load_balancer: str
    scheme: str
    mode: str
    region: str
    current: bool
    desired: bool
    required_after: Mapping[FlowKind, tuple[tuple[Flow, ...], ...]]  # alternatives over all targets' ports
    edit_groups: tuple[EditGroup, ...]
    authorize: tuple[RuleEdit, ...]
    revoke: tuple[RuleEdit, ...]
    steps: tuple[Step, ...]
    risks: tuple[Risk, ...]  # if the controller applies the change, and blockers of the in-place order
    evidence: ControllerEvidence
    safe_in_place: bool
    advice: Advice  # what to do: reports/plan.py words it
    notes: tuple[Note, ...] = field(default=())

    @property
    def changes_attribute(self) -> bool:
        return self.current != self.desired

    @property
    def controller_gap_risks(self) -> tuple[Risk, ...]:
        return tuple(r for r in self.risks if r.level in ("gap", "likely_gap", "unknown"))


# --- controller evidence -----------------------------------------------------------------------


def controller_version(user_agent: str | None) -> str | None:
    """ "v2.7.1" from a user agent carrying elbv2.k8s.aws/v2.7.1, else None."""
    match = _VERSION.search(user_agent or "")
    if match is None:
        return None
    major, minor, patch = match.group(1), match.group(2), match.group(3) or "0"
    return f"v{major}.{minor}.{patch}"


def _version_tuple(text: str) -> tuple[int, int, int]:
    parts = [int(p) for p in text.lstrip("v").split(".")]
    return (parts[0], parts[1], parts[2])


def controller_evidence(inventory: Inventory, changes: Iterable[Change]) -> ControllerEvidence:
    """The controller's behaviour as the changes show it (controller: by its user agent)."""
    ordered = ordered_changes(changes)
    versions: list[str] = []
    for change in ordered:
        version = controller_version(change.meta.actor.user_agent)
        if version is not None and version not in versions:
            versions.append(version)
    replacements = [
        r
        for r in find_replacements(ordered, required=required_ports(inventory))
        if r.revoke.actor.is_controller or r.authorize.actor.is_controller
    ]
    bbm = [r for r in replacements if r.order == "break_before_make"]
    groups_of_tg = groups_by_target_group(inventory)
    lags: list[float] = []
    for change in ordered:
        if not isinstance(change, AttributeChange) or change.meta.failed:
            continue
        groups = groups_of_tg.get(change.target_group_arn, set())
        start = change.meta.event_time
        follow = next(
            (
                c
                for c in ordered
                if isinstance(c, RuleChange)
                and c.action == "authorize"
                and not c.meta.failed
                and c.meta.actor.is_controller
                and c.group_id in groups
                and start <= c.meta.event_time <= start + REPLACEMENT_WINDOW
            ),
            None,
        )
        if follow is not None:
            lags.append((follow.meta.event_time - start).total_seconds())
    return ControllerEvidence(
        versions=tuple(versions),
        make_before_break=sum(r.order == "make_before_break" for r in replacements),
        break_before_make=len(bbm),
        unknown_order=sum(r.order == "unknown" for r in replacements),
        longest_exposure_seconds=max((r.exposure_seconds for r in bbm), default=None),
        longest_attribute_lag_seconds=max(lags, default=None),
    )


# --- which group to edit ----------------------------------------------------------------------


def cluster_name(inventory: Inventory, target_group: TargetGroup) -> str | None:
    binding = inventory.services.get(target_group.arn)
    if binding is not None and binding.cluster:
        return binding.cluster
    return target_group.tags.get("elbv2.k8s.aws/cluster") or None


def edit_group(inventory: Inventory, eni: NetworkInterface, cluster: str | None) -> EditGroup | UndecidedEni:
    """The group the controller edits on this ENI (DOMAIN.md) and why, else why it cannot be told
    (LBC resolveEndpointSGForENI in pkg/networking/networking_manager.go, unchanged from v2.13.4 to
    v3.5.0: the only group, else exactly one tagged kubernetes.io/cluster/<cluster>, and with the
    controller's --service-target-eni-security-group-tags, which the exporter does not know)."""
    groups = tuple(eni.security_group_ids)
    if len(groups) == 1:
        return EditGroup(groups[0], "only_group")
    if not groups:
        return UndecidedEni(eni.eni_id, 0, 0, cluster)
    tagged: list[tuple[str, str]] = []
    for group_id in groups:
        sg = inventory.security_groups.get(group_id)
        for key in sorted(sg.tags) if sg else ():
            if key.startswith(CLUSTER_TAG_PREFIX) and (
                cluster is None or key == CLUSTER_TAG_PREFIX + cluster
            ):
                tagged.append((group_id, key))
                break
    if len(tagged) == 1:
        return EditGroup(tagged[0][0], "cluster_tag", len(groups), tagged[0][1])
    return UndecidedEni(eni.eni_id, len(groups), len(tagged), cluster)


# --- the plan ----------------------------------------------------------------------------------


def _rule_for(flow: Flow) -> Rule:
    return Rule(flow.protocol, flow.port, flow.port, flow.source, None, LBC_DESCRIPTION)


def _flow_key(flow: Flow) -> RuleKey:
    return (flow.protocol, flow.port, flow.port, flow.source)


@dataclass
class _Target:
    target_id: str
    eni: NetworkInterface
    group: str
    ports: dict[FlowKind, int]


def plan_attribute_change(
    inventory: Inventory,
    tg_arn: str,
    state: RuleState,
    changes: Sequence[Change] = (),
    *,
    preserve: bool,
) -> Plan:
    """Plan setting preserve_client_ip.enabled to `preserve` on one target group.

    `state` is the rule and attribute state now (see explain.current_state); `changes` are the
    events seen, used only to judge how the controller behaves. Raises TargetNotFound for an
    unknown ARN and NotExplainable when the group's load balancer is unknown.
    """
    tg = inventory.target_groups.get(tg_arn)
    if tg is None:
        raise TargetNotFound(f"no target group {tg_arn!r} in the inventory")
    lb = load_balancer_of(inventory, tg)
    if lb is None:
        raise NotExplainable(f"target group {tg.name} is not attached to a known load balancer")
    attrs_now = dict(state.attributes.get(tg_arn, tg.attributes))
    attrs_after = {**attrs_now, PRESERVE_CLIENT_IP: "true" if preserve else "false"}
    current = preserve_client_ip(tg, attrs_now)
    desired = preserve_client_ip(tg, attrs_after)
    before = requirements(inventory, tg, lb, attrs_now)
    after = requirements(inventory, tg, lb, attrs_after)
    rules_by_group = state.rules_by_group()
    evidence = controller_evidence(inventory, changes)
    blockers: list[Risk] = []

    # Targets, their ENIs and the group the controller edits on each.
    cluster = cluster_name(inventory, tg)
    targets: list[_Target] = []
    edit_groups: dict[str, tuple[EditGroup, list[str]]] = {}
    # Targets outside the VPC and ALBs have no node or pod group to edit (the controller skips
    # hybrid pods: LBC v3.5.0 pkg/networking/networking_manager.go,
    # computeIngressPermissionsPerSGWithPodEndpoints): noted, neither planned nor a blocker.
    skipped = [t.target_id for t in tg.targets if why_not_evaluable(inventory, tg, t)]
    skipped_ids = set(skipped)
    unknown_eni = [
        t.target_id
        for t in tg.targets
        if t.target_id not in skipped_ids and inventory.network_interfaces.get(t.eni_id or "") is None
    ]
    undecided: set[UndecidedEni] = set()
    for target in tg.targets:
        eni = inventory.network_interfaces.get(target.eni_id or "")
        if eni is None or target.target_id in skipped_ids:
            continue
        choice = edit_group(inventory, eni, cluster)
        if isinstance(choice, UndecidedEni):
            undecided.add(choice)
            continue
        group = choice.group_id
        enis = edit_groups.setdefault(group, (choice, []))[1]
        if eni.eni_id not in enis:
            enis.append(eni.eni_id)
        ports: dict[FlowKind, int] = {
            "traffic": target.port,
            "health_check": health_check_port(tg, target.port),
        }
        targets.append(_Target(target.target_id, eni, group, ports))
    if unknown_eni:
        blockers.append(
            Risk("target_eni_unknown", "blocker", "eni_not_found", targets=tuple(sorted(unknown_eni)))
        )
    if undecided:
        blockers.append(
            Risk(
                "edit_group_unknown",
                "blocker",
                "group_undecided",
                undecided=tuple(sorted(undecided, key=lambda u: (u.eni_id, u.groups, u.tagged))),
            )
        )

    def union(eni: NetworkInterface, without: set[tuple[str, RuleKey]]) -> list[Rule]:
        return [
            r for g in eni.security_group_ids for r in rules_by_group.get(g, []) if (g, r.key) not in without
        ]

    # SG mode: a target admitted by a rule referencing the NLB's groups does not care about the
    # attribute; one admitted by CIDR rules (or not at all) gets the legacy semantics, so its
    # rules are planned from the CIDR alternative (the last one; see flows.requirements).
    by_cidr = sorted(
        {t.target_id for t in targets if lb.mode == "sg" and not _admitted_by_reference(t, before, union)}
    )
    mode = "sg_cidr" if by_cidr else lb.mode

    def chosen(alternatives: tuple[tuple[Flow, ...], ...], target: _Target) -> tuple[tuple[Flow, ...], ...]:
        """The alternative that matters for a target: one its rules admit now, else the CIDR one
        for a target admitted by CIDR in SG mode, else the first."""
        rules = union(target.eni, set())
        for alternative in alternatives:
            if all(not uncovered(rules, f) for f in alternative):
                return (alternative,)
        if target.target_id in by_cidr and alternatives and _is_cidr(alternatives[-1]):
            return alternatives[-1:]
        return alternatives[:1]

    # What the controller wants on each edited group after the change (exact keys), and before.
    desired_after: dict[str, set[RuleKey]] = {}
    desired_before: dict[str, set[RuleKey]] = {}
    for t in targets:
        for kind in FLOW_KINDS:
            for alt in chosen(after[kind].flows(t.ports[kind]), t):
                desired_after.setdefault(t.group, set()).update(_flow_key(f) for f in alt)
            for alt in chosen(before[kind].flows(t.ports[kind]), t):
                desired_before.setdefault(t.group, set()).update(_flow_key(f) for f in alt)

    # Rules other served target groups on the same ENIs rely on now: never planned for revoke.
    others = _rules_used_by_others(inventory, state, tg_arn, set(edit_groups))

    # Revoke: controller-managed rules of the edited groups that admitted this group's flows
    # before and that the controller does not want after.
    revoke: dict[tuple[str, RuleKey], RuleEdit] = {}
    left_alone: dict[tuple[str, RuleKey], Rule] = {}
    protected: dict[tuple[str, RuleKey], list[str]] = {}
    for t in targets:
        group_rules = rules_by_group.get(t.group, [])
        for kind in FLOW_KINDS:
            for alt in before[kind].flows(t.ports[kind]):
                for flow in alt:
                    for rule in admitting_rules(group_rules, flow):
                        key = (t.group, rule.key)
                        if rule.key in desired_after.get(t.group, set()):
                            continue
                        if rule.description != LBC_DESCRIPTION:
                            left_alone[key] = rule
                            continue
                        if key in others:
                            protected[key] = others[key]
                            continue
                        found = revoke.get(key)
                        kinds = found.flows if found else ()
                        if kind not in kinds:
                            kinds = (*kinds, kind)
                        revoke[key] = RuleEdit(t.group, rule, kinds)
    revoked = set(revoke)

    # Authorize: flows required after that the rules left after the revokes do not admit.
    authorize: dict[tuple[str, RuleKey], RuleEdit] = {}
    purposes: dict[tuple[str, RuleKey], list[FlowKind]] = {}
    for t in targets:
        remaining = union(t.eni, revoked)
        for kind in FLOW_KINDS:
            alternatives = after[kind].flows(t.ports[kind])
            if not alternatives or any(all(not uncovered(remaining, f) for f in alt) for alt in alternatives):
                continue
            for flow in chosen(alternatives, t)[0]:
                if uncovered(remaining, flow):
                    wanted = (t.group, _flow_key(flow))
                    authorize.setdefault(wanted, RuleEdit(t.group, _rule_for(flow), ()))
                    if kind not in purposes.setdefault(wanted, []):
                        purposes[wanted].append(kind)
    authorize = {
        key: RuleEdit(edit.group_id, edit.rule, tuple(purposes[key])) for key, edit in authorize.items()
    }

    # Risks if the controller applies the change itself (legacy mode; SG mode needs no rule change).
    risks: list[Risk] = []
    if current != desired:
        first = _attribute_first_risk(targets, after, union, evidence)
        if first is not None:
            risks.append(first)
        bbm = _break_before_make_risk(targets, after, union, revoked, evidence)
        if bbm is not None:
            risks.append(bbm)
    quota = _quota_risk(rules_by_group, authorize.values(), inventory.prefix_lists)
    if quota is not None:
        blockers.append(quota)
    risks.extend(blockers)
    safe = not blockers

    steps = _steps(current != desired, desired, authorize, revoke)
    notes = _notes(inventory, tg, mode, current, desired, authorize, desired_before, left_alone, protected)
    if by_cidr:
        notes.append(Note("cidr_targets_in_sg_mode", names=tuple(by_cidr)))
    if skipped:
        notes.append(Note("not_evaluable_targets", names=tuple(skipped)))
    required_after = {
        kind: _required(after[kind].flows, [t.ports[kind] for t in targets]) for kind in FLOW_KINDS
    }
    return Plan(
        target_group_arn=tg_arn,
        target_group=tg.name,
        service=service_of(inventory, tg),
        load_balancer=lb.name,
        scheme=lb.scheme,
        mode=lb.mode,
        region=inventory.region,
        current=current,
        desired=desired,
        required_after=required_after,
        edit_groups=tuple(
            replace(choice, enis=tuple(sorted(enis))) for _, (choice, enis) in sorted(edit_groups.items())
        ),
        authorize=tuple(sorted(authorize.values(), key=_edit_order)),
        revoke=tuple(sorted(revoke.values(), key=_edit_order)),
        steps=steps,
        risks=tuple(risks),
        evidence=evidence,
        safe_in_place=safe,
        advice=_advice(mode, current, desired, safe, bool(authorize)),
        notes=tuple(notes),
    )


def _is_cidr(alternative: tuple[Flow, ...]) -> bool:
    return bool(alternative) and all(f.source.kind in ("cidr4", "cidr6") for f in alternative)


def _admitted_by_reference(target: _Target, before: Mapping[FlowKind, Any], union: Any) -> bool:
    """True when a rule referencing one of the NLB's groups admits every flow kind of the target."""
    rules = union(target.eni, set())
    for kind in FLOW_KINDS:
        references = [alt for alt in before[kind].flows(target.ports[kind]) if not _is_cidr(alt)]
        if not any(all(not uncovered(rules, f) for f in alt) for alt in references):
            return False
    return True


def _edit_order(edit: RuleEdit) -> tuple[object, ...]:
    return (edit.group_id, edit.rule.protocol, edit.rule.from_port, edit.rule.to_port, edit.rule.source)


def _required(flows_for: Any, ports: Sequence[int]) -> tuple[tuple[Flow, ...], ...]:
    """Alternatives of required flows over all targets' ports, each flow once."""
    per_alt: dict[int, list[Flow]] = {}
    for port in sorted(set(ports)):
        for index, alt in enumerate(flows_for(port)):
            flows = per_alt.setdefault(index, [])
            flows.extend(f for f in alt if f not in flows)
    return tuple(tuple(flows) for _, flows in sorted(per_alt.items()))


def _rules_used_by_others(
    inventory: Inventory, state: RuleState, tg_arn: str, groups: set[str]
) -> dict[tuple[str, RuleKey], list[str]]:
    """(group, rule key) -> names of other target groups whose current flows those rules admit."""
    used: dict[tuple[str, RuleKey], list[str]] = {}
    rules_by_group = state.rules_by_group()
    for other in inventory.target_groups.values():
        if other.arn == tg_arn:
            continue
        lb = load_balancer_of(inventory, other)
        if lb is None:
            continue
        reqs = requirements(inventory, other, lb, state.attributes.get(other.arn, other.attributes))
        for target in other.targets:
            eni = inventory.network_interfaces.get(target.eni_id or "")
            if eni is None:
                continue
            for group_id in set(eni.security_group_ids) & groups:
                for kind in FLOW_KINDS:
                    port = target.port if kind == "traffic" else health_check_port(other, target.port)
                    for alt in reqs[kind].flows(port):
                        for flow in alt:
                            for rule in admitting_rules(rules_by_group.get(group_id, []), flow):
                                names = used.setdefault((group_id, rule.key), [])
                                if other.name not in names:
                                    names.append(other.name)
    return used


def _not_admitted_kinds(
    targets: Sequence[_Target],
    after: Mapping[FlowKind, Any],
    union: Any,
    without: set[tuple[str, RuleKey]],
) -> list[FlowKind]:
    kinds: list[FlowKind] = []
    for kind in FLOW_KINDS:
        for t in targets:
            rules = union(t.eni, without)
            alternatives = after[kind].flows(t.ports[kind])
            if alternatives and not any(all(not uncovered(rules, f) for f in alt) for alt in alternatives):
                kinds.append(kind)
                break
    return kinds


def _attribute_first_risk(
    targets: Sequence[_Target], after: Mapping[FlowKind, Any], union: Any, evidence: ControllerEvidence
) -> Risk | None:
    kinds = _not_admitted_kinds(targets, after, union, set())
    if not kinds:
        return Risk("attribute_first", "none", "admitted_already")
    lag = evidence.longest_attribute_lag_seconds
    return Risk("attribute_first", "gap", "lag_not_seen" if lag is None else "lag_seen", tuple(kinds), lag)


def _break_before_make_risk(
    targets: Sequence[_Target],
    after: Mapping[FlowKind, Any],
    union: Any,
    revoked: set[tuple[str, RuleKey]],
    evidence: ControllerEvidence,
) -> Risk | None:
    if not revoked:
        return None
    kinds = tuple(_not_admitted_kinds(targets, after, union, revoked))
    if not kinds:
        return Risk("break_before_make", "none", "admitted_by_kept_rules")
    if evidence.break_before_make:
        return Risk(
            "break_before_make",
            "gap",
            "revoke_first_seen",
            kinds,
            evidence.longest_exposure_seconds,
            seen=evidence.break_before_make,
        )
    if evidence.make_before_break:
        return Risk(
            "break_before_make", "none", "authorize_first_seen", kinds, seen=evidence.make_before_break
        )
    version = evidence.latest_version
    if version is not None:
        revokes_first = version < MAKE_BEFORE_BREAK_SINCE
        return Risk(
            "break_before_make",
            "likely_gap" if revokes_first else "none",
            "version_revokes_first" if revokes_first else "version_authorizes_first",
            kinds,
            version=evidence.versions[-1],
        )
    return Risk("break_before_make", "unknown", "no_evidence", kinds)


def rule_weight(rule: Rule, prefix_lists: Mapping[str, PrefixList]) -> tuple[str, int]:
    """The quota family a rule counts against and how many rules it counts as: a prefix-list
    reference counts as the list's max entries (EC2 user guide, "Security group quotas" and
    "Reference prefix lists in your AWS resources"); a list not described counts as one."""
    if rule.source.kind == "prefix_list":
        found = prefix_lists.get(rule.source.value)
        if found is not None:
            family = "IPv6" if found.address_family.lower() == "ipv6" else "IPv4"
            return family, max(1, found.max_entries)
    return ("IPv6" if rule.source.kind == "cidr6" else "IPv4"), 1


def _quota_risk(
    rules_by_group: Mapping[str, Sequence[Rule]],
    added: Iterable[RuleEdit],
    prefix_lists: Mapping[str, PrefixList] | None = None,
) -> Risk | None:
    lists = prefix_lists or {}
    extra: dict[tuple[str, str], int] = {}
    for edit in added:
        family, weight = rule_weight(edit.rule, lists)
        extra[(edit.group_id, family)] = extra.get((edit.group_id, family), 0) + weight
    over: list[QuotaExcess] = []
    for (group_id, family), count in sorted(extra.items()):
        existing = 0
        for r in rules_by_group.get(group_id, []):
            rule_family, weight = rule_weight(r, lists)
            if rule_family == family:
                existing += weight
        if existing + count > DEFAULT_RULES_PER_GROUP:
            over.append(QuotaExcess(group_id, existing + count, family, DEFAULT_RULES_PER_GROUP))
    if not over:
        return None
    return Risk("rule_quota", "blocker", "over_quota", over_quota=tuple(over))


def _by_call(edits: Iterable[RuleEdit]) -> list[tuple[RuleEdit, ...]]:
    """Edits grouped as one API call each: one group, one protocol and port range."""
    calls: dict[tuple[str, str, int, int], list[RuleEdit]] = {}
    for edit in sorted(edits, key=_edit_order):
        rule = edit.rule
        calls.setdefault((edit.group_id, rule.protocol, rule.from_port, rule.to_port), []).append(edit)
    return [tuple(group) for group in calls.values()]


def _steps(
    flips: bool,
    desired: bool,
    authorize: Mapping[tuple[str, RuleKey], RuleEdit],
    revoke: Mapping[tuple[str, RuleKey], RuleEdit],
) -> tuple[Step, ...]:
    steps = [Step("authorize", edits) for edits in _by_call(authorize.values())]
    if flips:
        steps.append(Step("modify_attribute", value=desired))
    steps += [Step("revoke", edits) for edits in _by_call(revoke.values())]
    return tuple(steps)


def _notes(
    inventory: Inventory,
    tg: TargetGroup,
    mode: str,
    current: bool,
    desired: bool,
    authorize: Mapping[tuple[str, RuleKey], RuleEdit],
    desired_before: Mapping[str, set[RuleKey]],
    left_alone: Mapping[tuple[str, RuleKey], Rule],
    protected: Mapping[tuple[str, RuleKey], list[str]],
) -> list[Note]:
    notes: list[Note] = []
    if tg.protocol.upper() in _ALWAYS_PRESERVING:
        notes.append(Note("always_preserving", protocol=tg.protocol))
    elif current == desired:
        notes.append(Note("attribute_already_set"))
    if mode == "sg":
        notes.append(Note("sg_mode"))
    managed = tg.arn in inventory.services or any(
        key in tg.tags
        for key in ("elbv2.k8s.aws/cluster", "service.k8s.aws/stack", "service.k8s.aws/resource")
    )
    if managed and current != desired:
        notes.append(Note("controller_managed"))
    early = [e for key, e in authorize.items() if key[1] not in desired_before.get(e.group_id, set())]
    if early:
        notes.append(Note("early_rules", rules=tuple(e.rule for e in sorted(early, key=_edit_order))))
    for (group_id, _key), rule in sorted(left_alone.items(), key=lambda item: (item[0][0], item[1])):
        notes.append(Note("not_managed", group_id=group_id, rules=(rule,)))
    for (group_id, _key), names in sorted(protected.items(), key=lambda item: (item[0][0], str(item[0][1]))):
        notes.append(Note("kept_for_others", group_id=group_id, names=tuple(sorted(names))))
    if not tg.targets:
        notes.append(Note("no_targets"))
    notes.append(Note("new_connections_only"))
    return notes


def _advice(mode: str, current: bool, desired: bool, safe: bool, has_authorize: bool) -> Advice:
    if not safe:
        return "blue_green"
    if current == desired:
        return "repair" if has_authorize else "nothing"
    if mode == "sg":
        return "in_place_no_rule_change"
    return "in_place"
