"""The chart's guardrail: a ValidatingAdmissionPolicy that refuses flips of preserve_client_ip.

The policy is rendered by the real helm and run on old/new Service pairs by tests/admission_policy.py
(cel-expr-python, the strings extension Kubernetes loads). A Python model of the controller's annotation
parsing (pkg/annotations/parser.go and pkg/service/model_build_target_group.go, v3.5.0) is the oracle of
the property test. Rendered objects pass kubernetes-validate (1.33 schemas).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.admission_policy import AdmissionPolicy, compile_expression
from tests.test_helm_chart import (
    ALL_FEATURES,
    CHART,
    IMAGE,
    assert_kubernetes_valid,
    by_kind,
    one,
    render,
    run_helm,
    template,
)

ATTRS = "service.beta.kubernetes.io/aws-load-balancer-target-group-attributes"
TARGET_TYPE = "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type"
LB_TYPE = "service.beta.kubernetes.io/aws-load-balancer-type"
BYPASS = "sg-churn-exporter/allow-preserve-client-ip-change"
PRESERVE = "preserve_client_ip.enabled"
TRUE_WORDS = ("1", "t", "T", "TRUE", "true", "True")  # strconv.ParseBool
FALSE_WORDS = ("0", "f", "F", "FALSE", "false", "False")

Doc = dict[str, Any]


def guardrail_docs(values: dict[str, Any], tmp: Path) -> list[Doc]:
    docs = render({"guardrail": {"enabled": True, **values}}, tmp)
    return by_kind(docs, "ValidatingAdmissionPolicy") + by_kind(docs, "ValidatingAdmissionPolicyBinding")


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> AdmissionPolicy:
    vap, binding = guardrail_docs({}, tmp_path_factory.mktemp("guardrail"))
    return AdmissionPolicy(vap, binding)


@pytest.fixture(scope="module")
def soft_policy(tmp_path_factory: pytest.TempPathFactory) -> AdmissionPolicy:
    docs = guardrail_docs({"validationActions": ["Warn", "Audit"]}, tmp_path_factory.mktemp("soft"))
    return AdmissionPolicy(*docs)


def service(
    annotations: dict[str, str] | None = None,
    *,
    ports: tuple[int, ...] = (80,),
    type_: str = "LoadBalancer",
    labels: dict[str, str] | None = None,
) -> Doc:
    metadata: Doc = {"name": "web", "namespace": "shop"}
    if annotations is not None:
        metadata["annotations"] = dict(annotations)
    if labels:
        metadata["labels"] = labels
    spec: Doc = {"type": type_, "ports": [{"port": p, "protocol": "TCP", "targetPort": 8080} for p in ports]}
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec}


def attrs(text: str, **extra: str) -> dict[str, str]:
    return {ATTRS: text, **extra}


# --------------------------------------------------------------------------------------------- rendering


def test_off_by_default(tmp_path: Path) -> None:
    docs = render({}, tmp_path)
    assert not by_kind(docs, "ValidatingAdmissionPolicy")
    assert not by_kind(docs, "ValidatingAdmissionPolicyBinding")


def test_rendered_policy_and_binding(tmp_path: Path) -> None:
    vap, binding = guardrail_docs({}, tmp_path)
    assert vap["apiVersion"] == binding["apiVersion"] == "admissionregistration.k8s.io/v1"
    assert "namespace" not in vap["metadata"] and "namespace" not in binding["metadata"]
    assert vap["metadata"]["annotations"] == {
        "sg-churn-exporter/guardrail": "preserve-client-ip",
        "sg-churn-exporter/bypass-annotation": BYPASS,
    }
    assert vap["spec"]["failurePolicy"] == "Fail"
    assert vap["spec"]["matchConstraints"]["resourceRules"] == [
        {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["UPDATE"], "resources": ["services"]}
    ]
    assert binding["spec"] == {"policyName": vap["metadata"]["name"], "validationActions": ["Deny"]}
    assert len(vap["metadata"]["name"]) <= 63
    for validation in vap["spec"]["validations"]:
        assert "\n" not in validation["message"]  # the API server refuses a message with line breaks


def test_options_render(tmp_path: Path) -> None:
    values = {
        "validationActions": ["Warn", "Audit"],
        "bypassAnnotation": "example.com/flip-ok",
        "failurePolicy": "Ignore",
        "namespaceSelector": {"matchLabels": {"guardrail": "on"}},
    }
    vap, binding = guardrail_docs(values, tmp_path)
    assert binding["spec"]["validationActions"] == ["Warn", "Audit"]
    assert binding["spec"]["matchResources"] == {"namespaceSelector": {"matchLabels": {"guardrail": "on"}}}
    assert vap["spec"]["failurePolicy"] == "Ignore"
    assert vap["metadata"]["annotations"]["sg-churn-exporter/bypass-annotation"] == "example.com/flip-ok"
    policy = AdmissionPolicy(vap, binding)
    flip = (service(attrs(f"{PRESERVE}=false")), service(attrs(f"{PRESERVE}=true")))
    labels = {"guardrail": "on"}
    assert policy.review("UPDATE", *flip, namespace_labels=labels).warnings
    assert not policy.review("UPDATE", *flip, namespace_labels={}).matched
    bypassed = service(attrs(f"{PRESERVE}=false", **{"example.com/flip-ok": "true"}))
    assert not policy.review("UPDATE", bypassed, flip[1], namespace_labels=labels).matched


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"validationActions": ["Deny", "Warn"]}, "Deny and Warn cannot be used together"),
        ({"validationActions": ["Block"]}, "validationActions"),
        ({"validationActions": []}, "validationActions"),
        ({"defaultTargetType": "alb"}, "defaultTargetType"),
        ({"failurePolicy": "Maybe"}, "failurePolicy"),
        ({"bypassAnnotation": "not a key!"}, "bypassAnnotation"),
        ({"enable": True}, "enable"),
    ],
)
def test_bad_values_fail(values: dict[str, Any], complaint: str, tmp_path: Path) -> None:
    proc = template({"guardrail": {"enabled": True, **values}}, tmp_path, check=False)
    assert proc.returncode != 0
    assert complaint in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    ("kube_version", "renders"),
    [("1.29.8-eks-a737599", False), ("1.28.0", False), ("1.30.0", True), ("1.30.4-eks-a737599", True)],
)
def test_a_cluster_before_1_30_is_refused_with_a_clear_message(kube_version: str, renders: bool) -> None:
    """The policy's API is admissionregistration.k8s.io/v1 from Kubernetes 1.30; the chart allows
    1.25 and up, where the install failed with the API server's 'no matches for kind'."""
    args = [
        "template",
        "rel",
        str(CHART),
        "--kube-version",
        kube_version,
        "--set",
        f"image.repository={IMAGE}",
    ]
    proc = run_helm([*args, "--set", "guardrail.enabled=true"], check=False)
    if renders:
        assert proc.returncode == 0, proc.stderr
        assert "kind: ValidatingAdmissionPolicy\n" in proc.stdout
    else:
        assert proc.returncode != 0
        assert "guardrail.enabled needs Kubernetes >= 1.30" in proc.stderr
        assert f"the cluster is v{kube_version}" in proc.stderr, proc.stderr
        assert run_helm(args, check=False).returncode == 0  # the rest of the chart renders there


def test_rendered_objects_pass_kubernetes_validate(tmp_path: Path) -> None:
    sets = {
        name: guardrail_docs({**values, "namespaceSelector": {"matchLabels": {"a": "b"}}}, tmp_path / name)
        for name, values in {"deny": {}, "soft": {"validationActions": ["Warn", "Audit"]}}.items()
    }
    assert sum(len(docs) for docs in sets.values()) == 4
    assert_kubernetes_valid(sets, tmp_path)


def test_all_features_values_enable_the_guardrail(tmp_path: Path) -> None:
    """The chart-wide tests (lint, kubernetes-validate) cover the guardrail through all-features."""
    docs = render(yaml.safe_load(ALL_FEATURES.read_text()), tmp_path)
    one(docs, "ValidatingAdmissionPolicy")
    one(docs, "ValidatingAdmissionPolicyBinding")


#: The CEL functions and macros the policy may call: the standard library and the strings extension
#: (cel-go ext.Strings v2, in Kubernetes from 1.29; cel-expr-python ExtStrings(version=2)), the set
#: docs/guardrail.md lists. Anything else might be missing from one of the two.
ALLOWED_CALLS = {"has", "size", "string", "split", "trim", "join", "filter", "map", "exists"}


def test_every_expression_compiles_and_calls_only_the_documented_functions(policy: AdmissionPolicy) -> None:
    expressions = policy.expressions()
    assert len(expressions) >= 10
    called: set[str] = set()
    for expression in expressions:
        compile_expression(expression)
        without_strings = re.sub(r"'[^']*'", "''", expression)
        called |= set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(", without_strings))
    assert called <= ALLOWED_CALLS, called - ALLOWED_CALLS
    assert {"split", "trim", "join"} <= called  # the strings extension is really exercised


# --------------------------------------------------------------------------------------------- decisions


def test_flip_is_denied_with_a_message_pointing_at_plan(policy: AdmissionPolicy) -> None:
    decision = policy.review(
        "UPDATE", service(attrs(f"{PRESERVE}=false")), service(attrs(f"{PRESERVE}=true"))
    )
    assert decision.matched and not decision.allowed and not decision.error
    assert "80/instance=true->false" in decision.message
    assert "sg-churn-exporter plan shop/web --set preserve_client_ip=false" in decision.message
    assert f"{BYPASS}=true" in decision.message
    back = policy.review("UPDATE", service(attrs(f"{PRESERVE}=true")), service(attrs(f"{PRESERVE}=false")))
    assert not back.allowed and "--set preserve_client_ip=true" in back.message


def test_unrelated_changes_are_allowed(policy: AdmissionPolicy) -> None:
    old = service(attrs(f"{PRESERVE}=true,deregistration_delay.timeout_seconds=300"))
    for new in (
        service(attrs(f"{PRESERVE}=true,deregistration_delay.timeout_seconds=30")),
        service(attrs(f"{PRESERVE}=true,deregistration_delay.timeout_seconds=300", team="shop")),
        service(attrs(f"{PRESERVE}=true,deregistration_delay.timeout_seconds=300"), labels={"v": "2"}),
        service(attrs(f"{PRESERVE}=true,deregistration_delay.timeout_seconds=300"), ports=(80, 443)),
    ):
        decision = policy.review("UPDATE", new, old)
        assert decision.allowed and not decision.error, decision


def test_bypass_annotation(policy: AdmissionPolicy) -> None:
    old = service(attrs(f"{PRESERVE}=true"))
    bypassed = policy.review("UPDATE", service(attrs(f"{PRESERVE}=false", **{BYPASS: "true"})), old)
    assert bypassed.allowed and not bypassed.matched
    for value in ("false", "yes", ""):
        decision = policy.review("UPDATE", service(attrs(f"{PRESERVE}=false", **{BYPASS: value})), old)
        assert not decision.allowed, value
    # Removing the bypass afterwards (the value stays) is allowed.
    after = policy.review(
        "UPDATE", service(attrs(f"{PRESERVE}=false")), service(attrs(f"{PRESERVE}=false", **{BYPASS: "true"}))
    )
    assert after.allowed


def test_services_without_the_annotation(policy: AdmissionPolicy) -> None:
    assert policy.review("UPDATE", service(None, labels={"a": "b"}), service(None)).allowed
    assert policy.review("UPDATE", service({"team": "x"}), service({})).allowed
    assert policy.review("UPDATE", service({}), service(None)).allowed


def test_create_delete_and_other_types_are_not_matched(policy: AdmissionPolicy) -> None:
    created = policy.review("CREATE", service(attrs(f"{PRESERVE}=false")), None)
    assert created.allowed and not created.matched
    deleted = policy.review("DELETE", None, service(attrs(f"{PRESERVE}=false")))
    assert deleted.allowed and not deleted.matched
    old, new = service(attrs(f"{PRESERVE}=true")), service(attrs(f"{PRESERVE}=false"))
    for old_type, new_type in (
        ("ClusterIP", "ClusterIP"),
        ("LoadBalancer", "ClusterIP"),
        ("NodePort", "LoadBalancer"),
    ):
        old["spec"]["type"], new["spec"]["type"] = old_type, new_type
        assert not policy.review("UPDATE", new, old).matched, (old_type, new_type)
    assert not policy.review("UPDATE", new, old, resource="configmaps").matched


@pytest.mark.parametrize(
    ("old_text", "new_text", "allowed"),
    [
        (
            f"{PRESERVE}=true",
            f" stickiness.enabled=false , {PRESERVE} = True ,proxy_protocol_v2.enabled=true",
            True,
        ),
        (f"a=1,{PRESERVE}=true,b=2", f"b=2, a=1 ,  {PRESERVE}=1", True),
        (f"a=1,{PRESERVE}=true,b=2", f"b=2, a=1 ,  {PRESERVE}=  FALSE  ", False),
        (f"{PRESERVE}=false,{PRESERVE}=true", f"{PRESERVE}=true", True),  # the last pair wins
        (f"{PRESERVE}=true", f"{PRESERVE}=true,{PRESERVE}=false", False),
        (f"{PRESERVE}=true", f"{PRESERVE}=yes", False),  # not a ParseBool value: a change all the same
        (f"x.{PRESERVE}=false,{PRESERVE}=true", f"x.{PRESERVE}=true,{PRESERVE}=true", True),
        (f"{PRESERVE}=true,,", f",{PRESERVE}=true", True),
    ],
)
def test_attribute_strings(policy: AdmissionPolicy, old_text: str, new_text: str, allowed: bool) -> None:
    decision = policy.review("UPDATE", service(attrs(new_text)), service(attrs(old_text)))
    assert not decision.error
    assert decision.allowed is allowed, decision.message


@pytest.mark.parametrize(
    ("target", "added", "allowed"),
    [
        ({}, "true", True),  # instance targets default to true
        ({}, "false", False),
        ({TARGET_TYPE: "instance"}, "false", False),
        ({TARGET_TYPE: "ip"}, "false", True),  # ip targets default to false
        ({TARGET_TYPE: "ip"}, "true", False),
        ({LB_TYPE: "nlb-ip"}, "true", False),
        ({LB_TYPE: "external", TARGET_TYPE: "ip"}, "0", True),
    ],
)
def test_adding_or_removing_the_attribute(
    policy: AdmissionPolicy, target: dict[str, str], added: str, allowed: bool
) -> None:
    without, with_value = service(dict(target)), service(attrs(f"{PRESERVE}={added}", **target))
    assert policy.review("UPDATE", with_value, without).allowed is allowed
    assert policy.review("UPDATE", without, with_value).allowed is allowed


def test_target_type_change_is_a_new_target_group_not_a_flip(policy: AdmissionPolicy) -> None:
    old, new = service({}), service({TARGET_TYPE: "ip"})
    assert policy.review("UPDATE", new, old).allowed


def test_default_target_type_follows_the_controller_flag(tmp_path: Path) -> None:
    policy = AdmissionPolicy(*guardrail_docs({"defaultTargetType": "ip"}, tmp_path))
    assert policy.review("UPDATE", service(attrs(f"{PRESERVE}=false")), service({})).allowed
    assert not policy.review("UPDATE", service(attrs(f"{PRESERVE}=true")), service({})).allowed


def test_port_specific_annotation(policy: AdmissionPolicy) -> None:
    old = service(attrs(f"{PRESERVE}=true"), ports=(80, 443))
    new = service(attrs(f"{PRESERVE}=true", **{f"{ATTRS}.443": f"{PRESERVE}=false"}), ports=(80, 443))
    decision = policy.review("UPDATE", new, old)
    assert not decision.allowed
    assert "443/instance=true->false" in decision.message and "80/" not in decision.message
    empty = service(attrs(f"{PRESERVE}=true", **{f"{ATTRS}.443": f"{PRESERVE}="}), ports=(80, 443))
    assert policy.review("UPDATE", empty, old).allowed  # an empty port value keeps the Service-wide one
    # A port that is added or removed gets or loses its own target group: not a flip.
    assert policy.review(
        "UPDATE",
        service(attrs(f"{PRESERVE}=false"), ports=(443,)),
        service(attrs(f"{PRESERVE}=true"), ports=(80,)),
    ).allowed


def test_soft_rollout_warns_and_audits(soft_policy: AdmissionPolicy) -> None:
    decision = soft_policy.review(
        "UPDATE", service(attrs(f"{PRESERVE}=false")), service(attrs(f"{PRESERVE}=true"))
    )
    assert decision.allowed and decision.matched
    assert decision.warnings and decision.audit
    assert "sg-churn-exporter plan shop/web" in decision.warnings[0]


def test_odd_objects_do_not_error(policy: AdmissionPolicy) -> None:
    """failurePolicy Fail would refuse every update of the Service: no expression may fail at run time."""
    odd: list[tuple[Doc, Doc]] = []
    bare = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"type": "LoadBalancer"},
    }
    odd.append((bare, bare))
    odd.append((service(attrs("")), service(attrs(","))))
    odd.append(
        (service(attrs("=,==,preserve_client_ip.enabled")), service(attrs("preserve_client_ip.enabled==")))
    )
    odd.append((service(attrs(f"{PRESERVE}=true"), ports=()), service(attrs(f"{PRESERVE}=false"), ports=())))
    odd.append(
        (service({**attrs(f"{PRESERVE}=true"), TARGET_TYPE: ""}), service({LB_TYPE: "", f"{ATTRS}.": "x"}))
    )
    for new, old in odd:
        decision = policy.review("UPDATE", new, old)
        assert not decision.error, (decision.error, new, old)


# --------------------------------------------------------------------------------------------- property


def controller_map(raw: str) -> dict[str, str]:
    """ParseStringMapAnnotation (v3.5.0) for well-formed input: trimmed pairs, last key wins."""
    parsed: dict[str, str] = {}
    for part in raw.split(","):
        if part.strip():
            key, _, value = part.partition("=")
            parsed[key.strip()] = value.strip()
    return parsed


def effective(annotations: dict[str, str], port: int, default_ip: bool) -> tuple[str, str]:
    """(target type, effective preserve_client_ip) of one port's target group, per the controller."""
    ip = (
        annotations.get(TARGET_TYPE) == "ip"
        or annotations.get(LB_TYPE) == "nlb-ip"
        or (default_ip and TARGET_TYPE not in annotations)
    )
    value = controller_map(annotations.get(ATTRS, "")).get(PRESERVE)
    port_value = controller_map(annotations.get(f"{ATTRS}.{port}", "")).get(PRESERVE)
    if port_value:
        value = port_value
    if value is None or value == "":
        return ("ip" if ip else "instance", "false" if ip else "true")
    if value in TRUE_WORDS:
        value = "true"
    elif value in FALSE_WORDS:
        value = "false"
    return ("ip" if ip else "instance", value)


SPACE = st.sampled_from(["", " ", "  "])
VALUES = st.sampled_from([*TRUE_WORDS, *FALSE_WORDS, "yes"])
OTHER_KEYS = st.sampled_from(
    ["deregistration_delay.timeout_seconds", "stickiness.enabled", "proxy_protocol_v2.enabled"]
)


@st.composite
def attribute_string(draw: st.DrawFn) -> str:
    pairs = draw(st.lists(st.tuples(st.one_of(st.just(PRESERVE), OTHER_KEYS), VALUES), max_size=4))
    parts = [f"{draw(SPACE)}{key}{draw(SPACE)}={draw(SPACE)}{value}{draw(SPACE)}" for key, value in pairs]
    return ",".join(parts)


@st.composite
def annotations(draw: st.DrawFn) -> dict[str, str]:
    found: dict[str, str] = {}
    if draw(st.booleans()):
        found[ATTRS] = draw(attribute_string())
    if draw(st.booleans()):
        found[f"{ATTRS}.443"] = draw(attribute_string())
    target = draw(st.sampled_from([None, "ip", "instance"]))
    if target is not None:
        found[TARGET_TYPE] = target
    return found


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(old=annotations(), new=annotations())
def test_decision_matches_the_controller_model(
    policy: AdmissionPolicy, old: dict[str, str], new: dict[str, str]
) -> None:
    ports = (80, 443)
    decision = policy.review("UPDATE", service(new, ports=ports), service(old, ports=ports))
    assert not decision.error
    flips = [
        port
        for port in ports
        if effective(old, port, False)[0] == effective(new, port, False)[0]
        and effective(old, port, False) != effective(new, port, False)
    ]
    assert decision.allowed is (not flips), (flips, decision.message)
    for port in flips:
        assert f"{port}/" in decision.message
