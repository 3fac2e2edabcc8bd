"""A ValidatingAdmissionPolicy evaluator for tests: the rendered policy and binding, run on an admission
request the way kube-apiserver does, with the CEL expressions evaluated by cel-expr-python (Google's CEL
runtime, cel-cpp) and its strings extension, the library Kubernetes loads as cel-go ext.Strings v2.

    policy = AdmissionPolicy(vap_doc, binding_doc)
    decision = policy.review("UPDATE", new_service, old_service)
    decision.allowed, decision.warnings, decision.message

What it models (admissionregistration.k8s.io/v1): matchConstraints.resourceRules (core group,
operations, resource), the binding's matchResources.namespaceSelector (matchLabels only),
matchConditions (all true, else the policy does not apply), variables (evaluated in order, stricter than
the API server's lazy evaluation: an error in any variable counts), validations with message and
messageExpression, validationActions (Deny, Warn, Audit) and failurePolicy for evaluation errors. Not
modelled: params, authorizer, cost budgets, type checking against the OpenAPI schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from cel_expr_python import cel
from cel_expr_python.ext import ext_strings

Doc = dict[str, Any]

#: The variables Kubernetes declares for admission policy expressions (all dynamically typed here).
DECLARED = ("object", "oldObject", "request", "params", "namespaceObject", "variables")


@cache
def _env() -> Any:
    return cel.NewEnv(
        variables={name: cel.Type.DYN for name in DECLARED},
        extensions=[ext_strings.ExtStrings(version=2)],
    )


@cache
def compile_expression(text: str) -> Any:
    """Compile one CEL expression (cached); raises RuntimeError naming the problem."""
    return _env().compile(text)


def evaluate(text: str, data: dict[str, Any]) -> Any:
    """The plain Python value of `text` over `data`; raises RuntimeError on a CEL error."""
    result = compile_expression(text).eval(data=data)
    value = result.plain_value()
    if result.type() == cel.Type.ERROR:
        raise RuntimeError(f"CEL error in {text[:80]!r}: {value}")
    return value


class EvaluationError(Exception):
    """An expression failed at run time (the policy's failurePolicy decides)."""


@dataclass
class Decision:
    matched: bool
    allowed: bool
    message: str = ""
    warnings: list[str] = field(default_factory=list)
    audit: list[str] = field(default_factory=list)
    error: str = ""


class AdmissionPolicy:
    def __init__(self, policy: Doc, binding: Doc) -> None:
        assert policy["kind"] == "ValidatingAdmissionPolicy", policy["kind"]
        assert binding["kind"] == "ValidatingAdmissionPolicyBinding", binding["kind"]
        assert binding["spec"]["policyName"] == policy["metadata"]["name"]
        self.spec: Doc = policy["spec"]
        self.binding: Doc = binding["spec"]
        self.actions: list[str] = list(self.binding["validationActions"])

    def expressions(self) -> list[str]:
        """Every CEL expression of the policy, for compile checks."""
        spec = self.spec
        found = [c["expression"] for c in spec.get("matchConditions", [])]
        found += [v["expression"] for v in spec.get("variables", [])]
        for validation in spec.get("validations", []):
            found.append(validation["expression"])
            if "messageExpression" in validation:
                found.append(validation["messageExpression"])
        return found

    def _matches_request(self, operation: str, resource: str, namespace_labels: dict[str, str]) -> bool:
        rules = self.spec["matchConstraints"]["resourceRules"]
        hit = any(
            "" in r["apiGroups"]
            and resource in r["resources"]
            and (operation in r["operations"] or "*" in r["operations"])
            for r in rules
        )
        selector = (self.binding.get("matchResources") or {}).get("namespaceSelector") or {}
        assert set(selector) <= {"matchLabels"}, "only matchLabels is modelled"
        wanted = selector.get("matchLabels") or {}
        return hit and all(namespace_labels.get(k) == v for k, v in wanted.items())

    def review(
        self,
        operation: str,
        obj: Doc | None,
        old: Doc | None,
        *,
        resource: str = "services",
        namespace_labels: dict[str, str] | None = None,
    ) -> Decision:
        if not self._matches_request(operation, resource, namespace_labels or {}):
            return Decision(matched=False, allowed=True)
        data: dict[str, Any] = {
            "object": obj,
            "oldObject": old,
            "request": {"operation": operation},
            "params": None,
            "namespaceObject": None,
        }
        try:
            return self._run(data)
        except (RuntimeError, EvaluationError) as exc:
            allowed = self.spec.get("failurePolicy", "Fail") == "Ignore"
            return Decision(matched=True, allowed=allowed, error=str(exc))

    def _run(self, data: dict[str, Any]) -> Decision:
        for condition in self.spec.get("matchConditions", []):
            value = evaluate(condition["expression"], data)
            if not isinstance(value, bool):
                raise EvaluationError(f"matchCondition {condition['name']} is not a bool: {value!r}")
            if not value:
                return Decision(matched=False, allowed=True)
        variables: dict[str, Any] = {}
        for variable in self.spec.get("variables", []):
            variables[variable["name"]] = evaluate(variable["expression"], {**data, "variables": variables})
        data = {**data, "variables": variables}
        failures: list[str] = []
        for validation in self.spec.get("validations", []):
            value = evaluate(validation["expression"], data)
            if not isinstance(value, bool):
                raise EvaluationError(f"validation is not a bool: {value!r}")
            if not value:
                failures.append(self._message(validation, data))
        if not failures:
            return Decision(matched=True, allowed=True)
        message = failures[0]
        return Decision(
            matched=True,
            allowed="Deny" not in self.actions,
            message=message if "Deny" in self.actions else "",
            warnings=failures if "Warn" in self.actions else [],
            audit=failures if "Audit" in self.actions else [],
        )

    @staticmethod
    def _message(validation: Doc, data: dict[str, Any]) -> str:
        """messageExpression when it yields a non-empty one-line string, else message (as Kubernetes)."""
        fallback = str(validation.get("message") or "failed expression: " + validation["expression"])
        text = validation.get("messageExpression")
        if not text:
            return fallback
        try:
            value = evaluate(text, data)
        except RuntimeError:
            return fallback
        if not isinstance(value, str) or not value.strip() or "\n" in value:
            return fallback
        return value
