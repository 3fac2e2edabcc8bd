"""A `Plan` (engine/plan.py) as AWS CLI command lines, as text for people and as JSON for tools.

Nothing here runs anything: the commands are text a person reviews (`plan` prints them). Every
sentence of a plan is here: the engine hands over codes and the facts they rest on.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import assert_never

import msgspec

from exporter.engine.flows import PRESERVE_CLIENT_IP, FlowKind
from exporter.engine.plan import (
    CLUSTER_TAG_PREFIX,
    LBC_DESCRIPTION,
    TARGET_GROUP_ATTRIBUTES_ANNOTATION,
    ControllerEvidence,
    EditGroup,
    Note,
    Plan,
    Risk,
    RiskKind,
    RiskLevel,
    RuleEdit,
    Step,
    StepAction,
    UndecidedEni,
)
from exporter.engine.rule_fields import RuleFields, rule_fields
from exporter.engine.rules import ALL_PROTOCOLS, Rule
from exporter.reports.words import flow_text, rule_text

# --- the plan's facts in words ---------------------------------------------------------------------


def seconds_text(value: float) -> str:
    return f"{value:g} s"


def _value(preserve: bool) -> str:
    return "true" if preserve else "false"


def _quoted(text: str | None) -> str:
    """A value in quotes as repr() quotes it, but not escaped again: the text outputs escape values
    before they are rendered (exporter/textsafe.py), and JSON escapes its own."""
    if text is None:
        return "None"
    quote = '"' if "'" in text and '"' not in text else "'"
    return quote + text + quote


def purpose_text(edit: RuleEdit, action: StepAction) -> str:
    """The flow kinds an authorize is for ("traffic and health_check") or a revoke admitted
    ("traffic, health_check")."""
    return (" and " if action == "authorize" else ", ").join(edit.flows)


def edit_group_text(group: EditGroup) -> str:
    """Why the controller edits this group, and the ENIs it is chosen on."""
    if group.reason == "only_group":
        why = "the only security group on the ENI"
    else:
        why = f"tagged {group.tag} among {group.groups_on_eni} groups on the ENI"
    return f"{why}: {', '.join(group.enis)}"


def _undecided_text(eni: UndecidedEni) -> str:
    if eni.groups == 0:
        return f"{eni.eni_id} has no security groups"
    wanted = CLUSTER_TAG_PREFIX + (eni.cluster or "<name>")
    return f"{eni.groups} groups on {eni.eni_id} and {eni.tagged} of them tagged {wanted}"


def risk_detail(risk: Risk) -> str:
    """What a risk's level rests on, in words (the controller's fix cited by its PR, #3952)."""
    flows = " and ".join(risk.flows)
    basis = risk.basis
    if basis == "admitted_already":
        return (
            "the current rules already admit every flow required after the change, so changing the "
            "attribute before the rules opens no gap"
        )
    if basis == "lag_seen" or basis == "lag_not_seen":  # (mypy narrows ==, not in)
        how_long = (
            "the longest the controller took from an attribute change to its authorize in the events: "
            f"{seconds_text(risk.max_seconds or 0.0)}"
            if basis == "lag_seen"
            else "how long is unknown: no attribute change followed by a controller authorize in the events"
        )
        return (
            f"the controller changes the attribute first and the rules later: {flows} "
            f"not admitted from the attribute change until it authorizes the new sources; {how_long}"
        )
    if basis == "admitted_by_kept_rules":
        return (
            "even if the old rules go first, the rules that stay admit every flow required after the change"
        )
    if basis == "revoke_first_seen":
        return (
            f"the controller was seen revoking before authorizing ({risk.seen} time(s): "
            f"its order before v2.12.0, PR #3952, or at the rule quota); "
            f"{flows} not admitted between its revoke and its authorize; longest exposure seen: "
            f"{seconds_text(risk.max_seconds or 0.0)}"
        )
    if basis == "authorize_first_seen":
        return (
            f"the controller was seen authorizing before revoking ({risk.seen} time(s); its "
            "order since v2.12.0, PR #3952); it still revokes first when the group is at its rule quota "
            "(RulesPerSecurityGroupLimitExceeded)"
        )
    if basis == "version_revokes_first":
        return (
            f"no replacement by the controller in the events, but its version {risk.version} revokes "
            f"before it authorizes (fixed in v2.12.0 by PR #3952): {flows} not admitted in between; how long "
            "is unknown (about a minute in the reported incidents)"
        )
    if basis == "version_authorizes_first":
        return (
            f"no replacement by the controller in the events; its version {risk.version} authorizes "
            "before it revokes (since v2.12.0, PR #3952), except at the rule quota"
        )
    if basis == "no_evidence":
        return (
            "no replacement by the controller and no controller version in the events: if it revokes first "
            f"(before v2.12.0, PR #3952), {flows} are not admitted until it authorizes; how long is unknown"
        )
    if basis == "eni_not_found":
        return (
            f"no network interface known for target(s) {', '.join(risk.targets)}: "
            "their rules cannot be planned"
        )
    if basis == "group_undecided":
        return "cannot tell which security group the controller edits: " + "; ".join(
            sorted({_undecided_text(eni) for eni in risk.undecided})
        )
    if basis == "over_quota":
        over = "; ".join(
            f"{o.group_id} would hold {o.rules} {o.family} inbound rules" for o in risk.over_quota
        )
        quota = risk.over_quota[0].quota if risk.over_quota else 0
        return (
            f"authorizing before revoking needs room: {over}, over the default quota of "
            f"{quota} (unless the account's quota was raised, the authorize fails and "
            "the controller falls back to revoking first)"
        )
    assert_never(basis)


def note_text(plan: Plan, note: Note) -> str:
    """One note of the plan in words."""
    value = _value(plan.desired)
    kind = note.kind
    if kind == "always_preserving":
        return f"client IP preservation is always on for {note.protocol} target groups: the attribute does not change it"
    if kind == "attribute_already_set":
        return f"{PRESERVE_CLIENT_IP} is already {value}: no attribute change"
    if kind == "sg_mode":
        return (
            "SG mode: node rules reference the NLB's security groups whatever the attribute, so no rule "
            "changes and no rule gap; client CIDRs are enforced on the NLB's own security group"
        )
    if kind == "controller_managed":
        return (
            "this target group is managed by the AWS Load Balancer Controller: make the attribute change in "
            f"the Service annotation {TARGET_GROUP_ATTRIBUTES_ANNOTATION}: {PRESERVE_CLIENT_IP}={value} "
            "after the authorize step (at its next reconcile the controller sets the attribute back to what "
            "the annotation says)"
        )
    if kind == "early_rules":
        return (
            f"the controller owns rules described {LBC_DESCRIPTION} and does not want "
            + ", ".join(rule_text(rule) for rule in note.rules)
            + " until the attribute changes: a reconcile between the authorize step and the change may "
            "revoke them, so make the change right after the authorize step and check with `explain`"
        )
    if kind == "not_managed":
        rule = note.rules[0]
        return (
            f"{note.group_id} {rule.rule_id or ''} {rule_text(rule)} is not controller-managed (description "
            f"{_quoted(rule.description)}); it is left alone".replace("  ", " ")
        )
    if kind == "kept_for_others":
        return f"a rule on {note.group_id} is kept: target group(s) {', '.join(note.names)} rely on it"
    if kind == "no_targets":
        return "the target group has no registered targets: no rules could be checked"
    if kind == "new_connections_only":
        return "client IP preservation changes apply to new connections only"
    if kind == "cidr_targets_in_sg_mode":
        return (
            "SG mode, but target(s) "
            + ", ".join(note.names)
            + " are not admitted by a rule referencing the NLB's security groups: their CIDR rules "
            "admit under the legacy semantics (client sources with preservation on, the NLB subnets "
            "with it off), so the flip needs their rules changed as in legacy mode"
        )
    if kind == "not_evaluable_targets":
        return (
            "target(s) "
            + ", ".join(note.names)
            + " cannot be evaluated (outside the VPC, or an ALB behind the NLB): they have no node "
            "or pod security group to edit, and this plan does not cover them"
        )
    assert_never(kind)


def notes_text(plan: Plan) -> list[str]:
    return [note_text(plan, note) for note in plan.notes]


# --- AWS CLI command lines ------------------------------------------------------------------------

_PERMISSION_LISTS = {
    "cidr4": ("IpRanges", "CidrIp"),
    "cidr6": ("Ipv6Ranges", "CidrIpv6"),
    "sg": ("UserIdGroupPairs", "GroupId"),
    "prefix_list": ("PrefixListIds", "PrefixListId"),
}


@dataclass(frozen=True)
class Command:
    """One step as shown: the AWS CLI command line and what it is for."""

    action: StepAction
    command: str
    comment: str


def _permission(rules: Sequence[Rule], *, with_description: bool) -> str:
    """The --ip-permissions shorthand of rules sharing one protocol and port range."""
    first = rules[0]
    parts = [f"IpProtocol={first.protocol}"]
    if first.protocol != ALL_PROTOCOLS:
        parts += [f"FromPort={first.from_port}", f"ToPort={first.to_port}"]
    lists: dict[str, list[str]] = {}
    for rule in rules:
        name, field_name = _PERMISSION_LISTS[rule.source.kind]
        entry = f"{field_name}={rule.source.value}"
        if with_description and rule.description:
            entry += ',Description="' + rule.description.replace('"', '\\"') + '"'
        lists.setdefault(name, []).append("{" + entry + "}")
    for name, _ in _PERMISSION_LISTS.values():
        if name in lists:
            parts.append(f"{name}=[{','.join(lists[name])}]")
    return ",".join(parts)


def _region(region: str) -> str:
    return f" --region {shlex.quote(region)}" if region else ""


def command(plan: Plan, step: Step) -> Command:
    """The AWS CLI command line of one step of `plan`, with its comment."""
    region = _region(plan.region)
    if step.action == "modify_attribute":
        value = "true" if step.value else "false"
        return Command(
            step.action,
            f"aws elbv2 modify-target-group-attributes{region} --target-group-arn "
            f"{shlex.quote(plan.target_group_arn)} --attributes Key={PRESERVE_CLIENT_IP},Value={value}",
            f"the change itself: {PRESERVE_CLIENT_IP}={value}",
        )
    authorize = step.action == "authorize"
    permission = _permission([e.rule for e in step.edits], with_description=authorize)
    line = (
        f"aws ec2 {step.action}-security-group-ingress{region} --group-id {shlex.quote(step.edits[0].group_id)} "
        f"--ip-permissions {shlex.quote(permission)}"
    )
    if authorize:
        what = "; ".join(f"{rule_text(e.rule)} for {purpose_text(e, step.action)}" for e in step.edits)
        return Command(step.action, line, f"before the change: {what}")
    what = "; ".join(
        f"{e.rule.rule_id or 'rule id unknown'}: {rule_text(e.rule)} (admitted {purpose_text(e, step.action)} before)"
        for e in step.edits
    )
    return Command(step.action, line, f"after the change, no longer needed: {what}")


def commands(plan: Plan) -> list[Command]:
    return [command(plan, step) for step in plan.steps]


def recommendation(plan: Plan) -> str:
    """What to do, in words: the plan's advice with its reasons."""
    value = "true" if plan.desired else "false"
    blue_green = (
        f"blue/green: create a new Service (a new NLB) with {PRESERVE_CLIENT_IP}={value}, move traffic "
        "with weighted DNS, then delete the old Service"
    )
    if plan.advice == "blue_green":
        why = "; ".join(risk_detail(r) for r in plan.risks if r.level == "blocker")
        return f"No safe in-place order: {why}. Use {blue_green}."
    if plan.advice == "nothing":
        return "Nothing to do."
    if plan.advice == "repair":
        return "No attribute change; the authorize commands add flows the targets do not admit now."
    if plan.advice == "in_place_no_rule_change":
        return "Change it in place: no rule change is needed, so no rule gap."
    controller_gap = plan.controller_gap_risks
    alone = (
        " Leaving it to the controller alone risks a gap ("
        + ", ".join(f"{r.kind}: {r.level}" for r in controller_gap)
        + ")."
        if controller_gap
        else ""
    )
    return (
        "In place is possible in this order: authorize, check with `explain` that every target admits the "
        f"new flows, change the attribute, then revoke.{alone} Do it in a maintenance window; the option "
        f"without any window is {blue_green}."
    )


# --- JSON -----------------------------------------------------------------------------------------
# One declared shape per object, encoded by msgspec in the fields' declaration order.


class EditGroupJson(msgspec.Struct, frozen=True):
    security_group: str
    why: str


class _RuleEditHead(RuleFields, frozen=True):
    security_group: str
    rule_id: str | None


class RuleEditJson(_RuleEditHead, frozen=True, kw_only=True):
    """One rule to authorize or revoke: where, its fields (engine/rule_fields.py, keyword-only:
    they encode after the positional head), then what it is for."""

    purpose: str


class StepJson(msgspec.Struct, frozen=True):
    action: StepAction
    command: str
    comment: str


class RiskJson(msgspec.Struct, frozen=True):
    kind: RiskKind
    level: RiskLevel
    flows: list[FlowKind]
    max_seconds: float | None
    detail: str


class EvidenceJson(msgspec.Struct, frozen=True):
    versions: list[str]
    make_before_break_seen: int
    break_before_make_seen: int
    unknown_order_seen: int
    longest_exposure_seconds: float | None
    longest_attribute_lag_seconds: float | None


class PlanJson(msgspec.Struct, frozen=True):
    """`plan --format json`'s per-target-group object."""

    target_group_arn: str
    target_group: str
    service: str | None
    load_balancer: str
    scheme: str
    mode: str
    region: str
    attribute: str
    current: bool
    desired: bool
    changes_attribute: bool
    required_after: dict[FlowKind, list[list[str]]]
    edit_groups: list[EditGroupJson]
    authorize: list[RuleEditJson]
    revoke: list[RuleEditJson]
    steps: list[StepJson]
    risks: list[RiskJson]
    controller_evidence: EvidenceJson
    safe_in_place: bool
    recommendation: str
    notes: list[str]


def _edit_json(edit: RuleEdit, action: StepAction) -> RuleEditJson:
    return RuleEditJson(
        edit.group_id,
        edit.rule.rule_id,
        **rule_fields(edit.rule),
        purpose=purpose_text(edit, action),
    )


def _risk_json(risk: Risk) -> RiskJson:
    return RiskJson(
        kind=risk.kind,
        level=risk.level,
        flows=list(risk.flows),
        max_seconds=risk.max_seconds,
        detail=risk_detail(risk),
    )


def evidence_json(evidence: ControllerEvidence) -> EvidenceJson:
    return EvidenceJson(
        versions=list(evidence.versions),
        make_before_break_seen=evidence.make_before_break,
        break_before_make_seen=evidence.break_before_make,
        unknown_order_seen=evidence.unknown_order,
        longest_exposure_seconds=evidence.longest_exposure_seconds,
        longest_attribute_lag_seconds=evidence.longest_attribute_lag_seconds,
    )


def plan_json(plan: Plan) -> PlanJson:
    """The declared JSON shape, for tools (`plan --format json`)."""
    return PlanJson(
        target_group_arn=plan.target_group_arn,
        target_group=plan.target_group,
        service=plan.service,
        load_balancer=plan.load_balancer,
        scheme=plan.scheme,
        mode=plan.mode,
        region=plan.region,
        attribute=PRESERVE_CLIENT_IP,
        current=plan.current,
        desired=plan.desired,
        changes_attribute=plan.changes_attribute,
        required_after={
            k: [[flow_text(f) for f in alt] for alt in v] for k, v in plan.required_after.items()
        },
        edit_groups=[EditGroupJson(g.group_id, edit_group_text(g)) for g in plan.edit_groups],
        authorize=[_edit_json(e, "authorize") for e in plan.authorize],
        revoke=[_edit_json(e, "revoke") for e in plan.revoke],
        steps=[StepJson(c.action, c.command, c.comment) for c in commands(plan)],
        risks=[_risk_json(r) for r in plan.risks],
        controller_evidence=evidence_json(plan.evidence),
        safe_in_place=plan.safe_in_place,
        recommendation=recommendation(plan),
        notes=notes_text(plan),
    )


# --- text -----------------------------------------------------------------------------------------


def plan_text(plan: Plan) -> str:
    """The plan for people: what is required, the commands in order, the risks and the verdict."""
    p = plan
    old, new = ("true" if p.current else "false"), ("true" if p.desired else "false")
    mode = "SG mode" if p.mode == "sg" else "legacy mode: no security groups on the NLB"
    lines = [
        f"Plan: {PRESERVE_CLIENT_IP} {old} -> {new} on {p.target_group}"
        + (f" (service {p.service})" if p.service else ""),
        f"  target group   {p.target_group_arn}",
        f"  load balancer  {p.load_balancer} ({p.scheme}; {mode})",
    ]
    for group in p.edit_groups:
        lines.append(f"  edit group     {group.group_id} ({edit_group_text(group)})")
    lines += ["", "Required after the change:"]
    for kind, alternatives in p.required_after.items():
        text = " | or | ".join(", ".join(flow_text(f) for f in alt) for alt in alternatives) or "nothing"
        lines.append(f"  {kind:<13} {text}")
    lines += ["", "Commands, make-before-break (read-only: nothing has been run; review first):"]
    if not p.steps:
        lines.append("  (none)")
    for number, step in enumerate(commands(p), start=1):
        lines.append(f"  # {number}. {step.comment}")
        lines.append(f"  {step.command}")
    if not p.authorize and not p.revoke and p.changes_attribute:
        lines.append("  (no rule change needed)")
    lines += ["", "If the controller applies the change by itself:"]
    controller = [r for r in p.risks if r.kind in ("attribute_first", "break_before_make")]
    if not controller:
        lines.append("  no rule change, no gap")
    for risk in controller:
        bound = "" if risk.max_seconds is None else f", up to {seconds_text(risk.max_seconds)} seen"
        lines.append(f"  {risk.kind}: {risk.level.upper()}{bound} - {risk_detail(risk)}")
    blockers = [r for r in p.risks if r.level == "blocker"]
    if blockers:
        lines += ["", "Blocks the in-place order:"]
        lines.extend(f"  {r.kind}: {risk_detail(r)}" for r in blockers)
    ev = p.evidence
    lines += [
        "",
        "Controller seen in the events: "
        + (", ".join(ev.versions) if ev.versions else "no version")
        + f"; replacements make-before-break {ev.make_before_break}, break-before-make {ev.break_before_make}",
    ]
    if p.notes:
        lines += ["", "Notes:"]
        lines.extend(f"  - {note}" for note in notes_text(p))
    lines += [
        "",
        f"Verdict: {'safe in place' if p.safe_in_place else 'NO safe in-place order'}",
        recommendation(p),
    ]
    return "\n".join(lines) + "\n"
