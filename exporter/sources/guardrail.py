"""The chart's guardrail as installed in a cluster: ValidatingAdmissionPolicies and their bindings.

`read_guardrails` lists admissionregistration.k8s.io/v1 validatingadmissionpolicies and
validatingadmissionpolicybindings (get/list only; docs/kubernetes-rbac.yaml). `guardrails_from` is the
pure part: it keeps the policies the chart rendered (annotation sg-churn-exporter/guardrail) with their
bypass annotation and the validationActions of the bindings that name them. A cluster that does not
serve the API (before Kubernetes 1.30) answers 404: `GuardrailScan.served` is then False.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

import kubernetes.client

from exporter.sources.kubernetes import (
    DEFAULT_PAGE_SIZE,
    DEFAULT_TIMEOUT,
    ClusterError,
    Timeout,
    _NotFound,
    _paginate,
)

#: Annotations the chart puts on its policy (helm/sg-churn-exporter/templates/guardrail.yaml).
GUARDRAIL_ANNOTATION = "sg-churn-exporter/guardrail"
GUARDRAIL_KIND = "preserve-client-ip"
BYPASS_ANNOTATION = "sg-churn-exporter/bypass-annotation"
API = "admissionregistration.k8s.io/v1"


@dataclass(frozen=True)
class Guardrail:
    policy: str
    bypass_annotation: str
    bindings: tuple[tuple[str, tuple[str, ...]], ...]  # (binding name, validationActions)

    @property
    def actions(self) -> tuple[str, ...]:
        """Every validationAction in force (Deny, Warn, Audit); () when no binding uses the policy."""
        return tuple(sorted({a for _, actions in self.bindings for a in actions}))

    @property
    def denies(self) -> bool:
        return "Deny" in self.actions


@dataclass(frozen=True)
class GuardrailScan:
    served: bool  # False: the cluster does not serve admissionregistration.k8s.io/v1 policies
    guardrails: tuple[Guardrail, ...]


def _strings(value: object) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def guardrails_from(policies: Iterable[Any], bindings: Iterable[Any]) -> tuple[Guardrail, ...]:
    """The chart's guardrail policies among `policies`, with the bindings (dicts) that name them."""
    actions_by_policy: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
    for binding in bindings:
        if not isinstance(binding, dict):
            continue
        spec = binding.get("spec") or {}
        name = str((binding.get("metadata") or {}).get("name") or "")
        policy_name = spec.get("policyName") if isinstance(spec, dict) else None
        if policy_name:
            actions = _strings(spec.get("validationActions"))
            actions_by_policy.setdefault(str(policy_name), []).append((name, actions))
    found: list[Guardrail] = []
    for policy in policies:
        if not isinstance(policy, dict):
            continue
        metadata = policy.get("metadata") or {}
        annotations = metadata.get("annotations") or {}
        if not isinstance(annotations, dict) or annotations.get(GUARDRAIL_ANNOTATION) != GUARDRAIL_KIND:
            continue
        name = str(metadata.get("name") or "")
        bypass = str(annotations.get(BYPASS_ANNOTATION) or "")
        found.append(Guardrail(name, bypass, tuple(sorted(actions_by_policy.get(name, [])))))
    return tuple(sorted(found, key=lambda g: g.policy))


def read_guardrails(
    api_client: kubernetes.client.ApiClient,
    *,
    page_size: int = DEFAULT_PAGE_SIZE,
    timeout: Timeout = DEFAULT_TIMEOUT,
) -> GuardrailScan:
    """List the policies and bindings (cluster-scoped); Cluster* errors as in sources.kubernetes."""
    api = kubernetes.client.AdmissionregistrationV1Api(api_client)
    host = str(getattr(api_client.configuration, "host", "?"))
    try:
        policies = list(
            _paginate(
                partial(api.list_validating_admission_policy),
                page_size,
                timeout,
                "list validatingadmissionpolicies",
                host,
            )
        )
        bindings = list(
            _paginate(
                partial(api.list_validating_admission_policy_binding),
                page_size,
                timeout,
                "list validatingadmissionpolicybindings",
                host,
            )
        )
    except _NotFound:
        return GuardrailScan(served=False, guardrails=())
    return GuardrailScan(served=True, guardrails=guardrails_from(policies, bindings))


__all__ = [
    "API",
    "BYPASS_ANNOTATION",
    "GUARDRAIL_ANNOTATION",
    "ClusterError",
    "Guardrail",
    "GuardrailScan",
    "guardrails_from",
    "read_guardrails",
]
