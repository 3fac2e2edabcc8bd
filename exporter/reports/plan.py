"""A `Plan` (engine/plan.py) as AWS CLI command lines, as text for people and as JSON for tools.

Nothing here runs anything: the commands are text a person reviews (`plan` prints them).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from exporter.engine.flows import PRESERVE_CLIENT_IP
from exporter.engine.plan import ControllerEvidence, Plan, Risk, RuleEdit, Step, StepAction, seconds_text
from exporter.engine.rules import ALL_PROTOCOLS, Rule
from exporter.reports.rules import rule_fields

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
        what = "; ".join(f"{e.rule.describe()} for {e.purpose}" for e in step.edits)
        return Command(step.action, line, f"before the change: {what}")
    what = "; ".join(
        f"{e.rule.rule_id or 'rule id unknown'}: {e.rule.describe()} (admitted {e.purpose} before)"
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
        why = "; ".join(r.detail for r in plan.risks if r.level == "blocker")
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


def _edit_json(edit: RuleEdit) -> dict[str, Any]:
    return {
        "security_group": edit.group_id,
        "rule_id": edit.rule.rule_id,
        **rule_fields(edit.rule),
        "purpose": edit.purpose,
    }


def _risk_json(risk: Risk) -> dict[str, Any]:
    return {
        "kind": risk.kind,
        "level": risk.level,
        "flows": list(risk.flows),
        "max_seconds": risk.max_seconds,
        "detail": risk.detail,
    }


def evidence_json(evidence: ControllerEvidence) -> dict[str, Any]:
    return {
        "versions": list(evidence.versions),
        "make_before_break_seen": evidence.make_before_break,
        "break_before_make_seen": evidence.break_before_make,
        "unknown_order_seen": evidence.unknown_order,
        "longest_exposure_seconds": evidence.longest_exposure_seconds,
        "longest_attribute_lag_seconds": evidence.longest_attribute_lag_seconds,
    }


def plan_json(plan: Plan) -> dict[str, Any]:
    """The JSON-able form, for tools (`plan --format json`)."""
    return {
        "target_group_arn": plan.target_group_arn,
        "target_group": plan.target_group,
        "service": plan.service,
        "load_balancer": plan.load_balancer,
        "scheme": plan.scheme,
        "mode": plan.mode,
        "region": plan.region,
        "attribute": PRESERVE_CLIENT_IP,
        "current": plan.current,
        "desired": plan.desired,
        "changes_attribute": plan.changes_attribute,
        "required_after": {
            k: [[f.describe() for f in alt] for alt in v] for k, v in plan.required_after.items()
        },
        "edit_groups": [{"security_group": g, "why": why} for g, why in plan.edit_groups],
        "authorize": [_edit_json(e) for e in plan.authorize],
        "revoke": [_edit_json(e) for e in plan.revoke],
        "steps": [{"action": c.action, "command": c.command, "comment": c.comment} for c in commands(plan)],
        "risks": [_risk_json(r) for r in plan.risks],
        "controller_evidence": evidence_json(plan.evidence),
        "safe_in_place": plan.safe_in_place,
        "recommendation": recommendation(plan),
        "notes": list(plan.notes),
    }


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
    for group_id, why in p.edit_groups:
        lines.append(f"  edit group     {group_id} ({why})")
    lines += ["", "Required after the change:"]
    for kind, alternatives in p.required_after.items():
        text = " | or | ".join(", ".join(f.describe() for f in alt) for alt in alternatives) or "nothing"
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
        lines.append(f"  {risk.kind}: {risk.level.upper()}{bound} - {risk.detail}")
    blockers = [r for r in p.risks if r.level == "blocker"]
    if blockers:
        lines += ["", "Blocks the in-place order:"]
        lines.extend(f"  {r.kind}: {r.detail}" for r in blockers)
    ev = p.evidence
    lines += [
        "",
        "Controller seen in the events: "
        + (", ".join(ev.versions) if ev.versions else "no version")
        + f"; replacements make-before-break {ev.make_before_break}, break-before-make {ev.break_before_make}",
    ]
    if p.notes:
        lines += ["", "Notes:"]
        lines.extend(f"  - {note}" for note in p.notes)
    lines += [
        "",
        f"Verdict: {'safe in place' if p.safe_in_place else 'NO safe in-place order'}",
        recommendation(p),
    ]
    return "\n".join(lines) + "\n"
