"""An `Explanation` (engine/explain.py) as text for people and as JSON for tools.

The text is what `explain` prints and what the landing page shows per target group; the JSON is
`explain --format json`'s per-target-group object.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from exporter.engine.changes import EventMeta
from exporter.engine.explain import Explanation, FlowResult, PreserveOrigin, RuleRef, TargetResult
from exporter.engine.flows import FlowKind, Reason, transport_protocols
from exporter.engine.inventory import LoadBalancer
from exporter.engine.rule_fields import RuleFields, rule_fields
from exporter.engine.timeutil import format_optional_time, format_time
from exporter.reports.words import flow_text, rule_text


def required_text(flow: FlowResult) -> tuple[tuple[str, ...], ...]:
    """The flow kind's alternatives as "protocol from source" (the port is each target's)."""
    return tuple(tuple(f"{proto} from {src}" for proto, src in alt) for alt in flow.required)


# --- JSON -----------------------------------------------------------------------------------------
# One declared shape per object, encoded by msgspec in the fields' declaration order.


class EventJson(msgspec.Struct, frozen=True):
    """The last recorded change to a rule: which event, when, and who made it."""

    event: str
    event_id: str
    time: str
    actor: str
    actor_arn: str | None
    user_agent: str | None
    controller: bool


class _RuleRefHead(RuleFields, frozen=True):
    security_group: str
    rule_id: str | None
    rule: str


class RuleRefJson(_RuleRefHead, frozen=True, kw_only=True):
    """One rule in one group: where, its text, its fields (engine/rule_fields.py, keyword-only:
    they encode after the positional head), then its last recorded change."""

    last_change: EventJson | None


class TargetJson(msgspec.Struct, frozen=True):
    not_evaluable: str | None
    target: str
    port: int
    eni: str | None
    security_groups: list[str]
    admitted: bool
    reason: Reason | None
    flow: str | None
    uncovered: list[str]
    also_not_admitted: list[str]  # the other flows of the requirement not admitted either
    rules: list[RuleRefJson]
    port_rules: list[RuleRefJson]


class FlowJson(msgspec.Struct, frozen=True):
    flow: FlowKind
    required: list[list[str]]
    targets_total: int
    targets_admitted: int
    targets_not_evaluable: int
    targets: list[TargetJson]


class ExplanationJson(msgspec.Struct, frozen=True):
    """`explain --format json`'s per-target-group object: the explanation, then the rule gaps in
    the events (reports/gaps.py lines, with their impact when asked for)."""

    target_group_arn: str
    target_group: str
    service: str | None
    load_balancer_arn: str
    load_balancer: str
    scheme: str
    mode: str
    target_type: str
    protocol: str
    preserve_client_ip: bool
    preserve_client_ip_from: PreserveOrigin
    intent: str
    intent_sources: list[str]
    at: str | None
    admitted: bool
    flows: list[FlowJson]
    gaps: list[dict[str, Any]]


def event_json(meta: EventMeta) -> EventJson:
    return EventJson(
        event=meta.event_name,
        event_id=meta.event_id,
        time=format_time(meta.event_time),
        actor=meta.actor.label,
        actor_arn=meta.actor.principal_arn,
        user_agent=meta.actor.user_agent,
        controller=meta.actor.is_controller,
    )


def rule_ref_json(ref: RuleRef) -> RuleRefJson:
    change = ref.last_change
    return RuleRefJson(
        ref.group_id,
        ref.rule.rule_id,
        rule_text(ref.rule),
        **rule_fields(ref.rule),
        last_change=None if change is None else event_json(change),
    )


def target_json(result: TargetResult) -> TargetJson:
    return TargetJson(
        not_evaluable=result.not_evaluable,
        target=result.target_id,
        port=result.port,
        eni=result.eni_id,
        security_groups=list(result.security_groups),
        admitted=result.admitted,
        reason=result.reason,
        flow=None if result.flow is None else flow_text(result.flow),
        uncovered=list(result.uncovered),
        also_not_admitted=[flow_text(f) for f in result.also_not_admitted],
        rules=[rule_ref_json(r) for r in result.rules],
        port_rules=[rule_ref_json(r) for r in result.port_rules],
    )


def flow_json(flow: FlowResult) -> FlowJson:
    return FlowJson(
        flow=flow.kind,
        required=[list(alt) for alt in required_text(flow)],
        targets_total=len(flow.targets),
        targets_admitted=flow.admitted,
        targets_not_evaluable=flow.not_evaluable,
        targets=[target_json(t) for t in flow.targets],
    )


def explanation_json(e: Explanation, gaps: Sequence[dict[str, Any]] = ()) -> ExplanationJson:
    """The declared JSON shape, for tools; `gaps`: the target group's gap lines."""
    return ExplanationJson(
        target_group_arn=e.target_group_arn,
        target_group=e.target_group,
        service=e.service,
        load_balancer_arn=e.load_balancer_arn,
        load_balancer=e.load_balancer,
        scheme=e.scheme,
        mode=e.mode,
        target_type=e.target_type,
        protocol=e.protocol,
        preserve_client_ip=e.preserve_client_ip,
        preserve_client_ip_from=e.preserve_origin,
        intent=e.intent,
        intent_sources=list(e.intent_sources),
        at=format_optional_time(e.at),
        admitted=e.fully_admitted,
        flows=[flow_json(f) for f in e.flows],
        gaps=list(gaps),
    )


# --- text -----------------------------------------------------------------------------------------
def mode_text(lb: LoadBalancer | Explanation) -> str:
    if lb.mode == "sg":
        return "SG mode: the NLB has security groups; node rules reference them"
    return "legacy mode: the NLB has no security groups; node rules name CIDRs"


def rule_line(ref: RuleRef, events_read: bool = True) -> str:
    rule = ref.rule
    parts = [f"{ref.group_id} {rule.rule_id or '(rule id unknown)'}: {rule_text(rule)}"]
    if rule.description:
        parts.append(f'"{rule.description}"')
    change = ref.last_change
    if change is None:
        parts.append(
            "- no change to it in the events" if events_read else "- last change unknown (no events read)"
        )
    else:
        verb = "failed " if change.failed else ""
        parts.append(
            f"- {verb}{change.event_name} by {change.actor.label} at {format_time(change.event_time)}"
            f" (event {change.event_id})"
        )
    return " ".join(parts)


def _outcome_key(result: TargetResult) -> tuple[object, ...]:
    return (
        result.not_evaluable,
        result.admitted,
        result.reason,
        result.flow,
        result.uncovered,
        result.also_not_admitted,
        tuple((r.group_id, r.rule, r.last_change) for r in result.rules),
        tuple((r.group_id, r.rule) for r in result.port_rules),
    )


def _target_label(result: TargetResult) -> str:
    where = result.eni_id or "no ENI"
    groups = ",".join(result.security_groups) or "-"
    return f"{result.target_id}:{result.port} ({where}; {groups})"


def _reason_text(result: TargetResult) -> str:
    also = result.also_not_admitted
    text = _first_reason_text(result)
    return f"{text}; nor {', '.join(flow_text(f) for f in also)}" if also else text


def _first_reason_text(result: TargetResult) -> str:
    flow = flow_text(result.flow) if result.flow is not None else "the flow"
    reason = result.reason
    if reason == "target_eni_not_found":
        return "no network interface is known for the target"
    if reason == "security_group_missing":
        return "none of the ENI's security groups exists"
    if reason == "no_rule_for_port":
        return f"no rule admits {flow}: nothing matches the protocol and port"
    if reason == "source_partly_covered":
        return f"{flow} is only partly admitted; not admitted: {', '.join(result.uncovered)}"
    return f"no rule admits {flow}"


_INTENT_TEXT = {
    "binding": "the TargetGroupBinding's networking (Kubernetes)",
    "managed_rules": "the rules the controller manages on the port (no Kubernetes access)",
    "default": "the controller's default for the scheme (no binding and no controller-managed client rule)",
}


def _intent_text(e: Explanation) -> str:
    sources = f": {', '.join(e.intent_sources)}" if e.intent_sources else ""
    return f"{e.intent}, {_INTENT_TEXT.get(e.intent, e.intent)}{sources}"


#: Why a target is not evaluable, in words (flows.NotEvaluableReason).
_NOT_EVALUABLE_TEXT = {
    "target_outside_vpc": "outside the VPC (AvailabilityZone all, or an address in none of the VPC's "
    "CIDRs: a peered VPC, on-premises, EKS Hybrid Nodes), so it has no ENI and no security group "
    "to check; never a gap",
    "target_is_alb": "an Application Load Balancer behind the NLB: its own security groups admit "
    "the NLB's traffic and health checks, and the exporter does not read them; never a gap",
}


def explanation_text(explanation: Explanation, *, events_read: bool = True) -> str:
    """A readable report: one block per flow kind, targets with the same outcome grouped.

    `events_read` False (no CloudTrail read, or read in part): a rule without a recorded change
    says its last change is unknown rather than that the events hold none.
    """
    e = explanation
    lines = [
        f"Target group {e.target_group}" + (f" (service {e.service})" if e.service else ""),
        f"  arn            {e.target_group_arn}",
        f"  load balancer  {e.load_balancer} ({e.scheme}; {mode_text(e)})",
        f"  targets        {e.target_type}, {e.protocol} ({'/'.join(transport_protocols(e.protocol))})",
        f"  preserve_client_ip  {'true' if e.preserve_client_ip else 'false'} "
        + {
            "attribute": "(target group attribute)",
            "default": "(attribute absent: the AWS default)",
            "protocol": "(always on for this protocol)",
        }[e.preserve_origin],
        f"  client intent  {_intent_text(e)}",
        f"  rules as of    {format_time(e.at) if e.at else 'the inventory'}",
        f"  verdict        {'all targets admitted' if e.fully_admitted else 'NOT all targets admitted'}",
    ]
    for flow in e.flows:
        lines.append("")
        required = " | or | ".join(", ".join(alt) for alt in required_text(flow)) or "nothing"
        outside = f" ({flow.not_evaluable} not evaluable)" if flow.not_evaluable else ""
        lines.append(f"{flow.kind}: {flow.admitted}/{len(flow.targets)} targets admitted{outside}")
        lines.append(f"  required: {required}")
        groups: dict[tuple[object, ...], list[TargetResult]] = {}
        for result in flow.targets:
            groups.setdefault(_outcome_key(result), []).append(result)
        for results in groups.values():
            first = results[0]
            names = ", ".join(_target_label(r) for r in results)
            if first.not_evaluable:
                lines.append(f"  NOT EVALUABLE [{first.not_evaluable}]  {names}")
                lines.append(f"    {_NOT_EVALUABLE_TEXT.get(first.not_evaluable, 'cannot be evaluated')}")
            elif first.admitted:
                lines.append(f"  ADMITTED  {names}")
                lines.extend(f"    by {rule_line(ref, events_read)}" for ref in first.rules)
            else:
                lines.append(f"  NOT ADMITTED [{first.reason}]  {names}")
                lines.append(f"    {_reason_text(first)}")
                lines.extend(f"    partly by {rule_line(ref, events_read)}" for ref in first.rules)
                if first.port_rules:
                    lines.append("    rules on the port admit other sources only:")
                    lines.extend(f"      {rule_line(ref, events_read)}" for ref in first.port_rules)
        if not flow.targets:
            lines.append("  (no registered targets)")
    return "\n".join(lines) + "\n"
