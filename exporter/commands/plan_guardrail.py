"""`plan`'s view of the guardrail: is the chart's admission policy installed, and its bypass step.

`check_guardrail` asks the cluster (get/list on admissionregistration.k8s.io/v1 policies and
bindings); what it cannot find out is reported as unknown with the reason, never as absent.
`render_guardrail` prints the kubectl steps that let a reviewed plan through the policy.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from exporter.engine.plan import PRESERVE_CLIENT_IP, TARGET_GROUP_ATTRIBUTES_ANNOTATION, Plan

State = Literal["installed", "absent", "unknown"]


@dataclass(frozen=True)
class GuardrailStatus:
    state: State
    detail: str
    guardrails: tuple[Any, ...] = field(default=())  # exporter.sources.guardrail.Guardrail


class BindingJson(msgspec.Struct, frozen=True):
    name: str
    validation_actions: list[str]


class PolicyJson(msgspec.Struct, frozen=True):
    policy: str
    bypass_annotation: str
    bindings: list[BindingJson]
    denies: bool


class GuardrailJson(msgspec.Struct, frozen=True):
    """The `guardrail` object of the plan JSON document."""

    state: State
    detail: str
    policies: list[PolicyJson]


def guardrail_json(status: GuardrailStatus) -> GuardrailJson:
    return GuardrailJson(
        state=status.state,
        detail=status.detail,
        policies=[
            PolicyJson(
                policy=g.policy,
                bypass_annotation=g.bypass_annotation,
                bindings=[BindingJson(name, list(actions)) for name, actions in g.bindings],
                denies=g.denies,
            )
            for g in status.guardrails
        ],
    )


def check_guardrail(kubeconfig: str | None) -> GuardrailStatus:
    """Look for the chart's policy in the cluster of `kubeconfig` (else in-cluster / default kubeconfig)."""
    from exporter.sources.guardrail import read_guardrails  # late: keeps `--help` light
    from exporter.sources.kubernetes import ClusterError, load_kube_client

    try:
        client = load_kube_client("auto", kubeconfig)
    except ClusterError as exc:
        return GuardrailStatus("unknown", f"no usable Kubernetes configuration: {exc}")
    if client is None:
        return GuardrailStatus("unknown", "no Kubernetes configuration (in-cluster or kubeconfig) found")
    try:
        scan = read_guardrails(client)
    except ClusterError as exc:
        return GuardrailStatus("unknown", str(exc))
    finally:
        client.close()
    if not scan.served:
        return GuardrailStatus(
            "absent", "the cluster does not serve admissionregistration.k8s.io/v1 admission policies"
        )
    if not scan.guardrails:
        return GuardrailStatus("absent", "no sg-churn-exporter guardrail policy in the cluster")
    names = ", ".join(g.policy for g in scan.guardrails)
    return GuardrailStatus("installed", f"ValidatingAdmissionPolicy {names}", scan.guardrails)


def _service_words(service: str | None) -> list[str]:
    if service and "/" in service:
        namespace, name = service.split("/", 1)
        return ["--namespace", namespace, name]
    return ["--namespace", "<namespace>", "<service>"]


def render_guardrail(status: GuardrailStatus, plans: Sequence[Plan]) -> str:
    """The guardrail section of the text output."""
    if status.state != "installed":
        return f"Guardrail: {status.state} ({status.detail})\n"
    lines: list[str] = []
    for guardrail in status.guardrails:
        actions = ", ".join(guardrail.actions) or "no binding: it checks nothing"
        lines.append(f"Guardrail: ValidatingAdmissionPolicy {guardrail.policy} is installed ({actions}).")
        if not guardrail.actions:
            continue
        effect = "refuses" if guardrail.denies else "warns about"
        bypass = guardrail.bypass_annotation
        if not bypass:
            lines.append(
                f"  It {effect} {PRESERVE_CLIENT_IP} changes; its bypass annotation is not recorded on the "
                "policy (sg-churn-exporter/bypass-annotation): read it from the policy's matchConditions."
            )
            continue
        lines.append(
            f"  It {effect} a change of {PRESERVE_CLIENT_IP} in a Service's {TARGET_GROUP_ATTRIBUTES_ANNOTATION} "
            f"annotation unless the Service is annotated {bypass}=true. For a reviewed plan:"
        )
        for plan in plans:
            if not plan.changes_attribute:
                continue
            words = _service_words(plan.service)
            value = "true" if plan.desired else "false"
            annotate = " ".join(shlex.quote(w) for w in ["kubectl", "annotate", "service", *words])
            lines += [
                f"  # {plan.target_group}: after the authorize step(s), before the annotation change "
                f"({PRESERVE_CLIENT_IP}={value}):",
                f"  {annotate} {shlex.quote(bypass + '=true')}",
                "  # after the revoke step(s): put the guardrail back",
                f"  {annotate} {shlex.quote(bypass + '-')}",
            ]
    return "\n".join(lines) + "\n"
