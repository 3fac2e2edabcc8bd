"""`plan` finds the chart's guardrail policy in the cluster (kmock serving admissionregistration.k8s.io/v1)
and prints its bypass step; what it cannot read it reports as unknown."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from exporter.sources.guardrail import guardrails_from
from tests.awsworld import MotoServer, build_incident_world
from tests.engine_world import incident_inventory
from tests.kube_emulator import KubeEmulator
from tests.test_guardrail import BYPASS, guardrail_docs
from tests.test_plan import run_cli, write_inventory

SET_FALSE = ("--set", "preserve_client_ip=false")
Doc = dict[str, Any]


def install(kube: KubeEmulator, docs: list[Doc]) -> None:
    for doc in docs:
        plural = {
            "ValidatingAdmissionPolicy": "validatingadmissionpolicies",
            "ValidatingAdmissionPolicyBinding": "validatingadmissionpolicybindings",
        }[doc["kind"]]
        kube.add_cluster_object(plural, doc)


def plan_offline(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, kubeconfig: Path | None, *extra: str
) -> tuple[int, str, str]:
    inventory = write_inventory(tmp_path / "inventory.json", incident_inventory())
    argv = ["plan", "shop/web", *SET_FALSE, "--inventory", str(inventory), *extra]
    if kubeconfig is not None:
        argv += ["--kubeconfig", str(kubeconfig)]
    return run_cli(capsys, *argv)


def test_installed_policy_prints_the_bypass_steps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    docs = guardrail_docs({}, tmp_path / "chart")
    with KubeEmulator() as kube:
        install(kube, docs)
        kube.add_cluster_object(
            "validatingadmissionpolicies", {"metadata": {"name": "someone-elses"}, "spec": {}}
        )
        kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")
        code, out, err = plan_offline(capsys, tmp_path, kubeconfig)
        assert code == 0, err
        code, json_out, err = plan_offline(capsys, tmp_path, kubeconfig, "--format", "json")
        assert code == 0, err
        verbs = {verb for verb, _, _ in kube.seen_requests()}
    assert verbs == {"list"}
    name = docs[0]["metadata"]["name"]
    assert f"Guardrail: ValidatingAdmissionPolicy {name} is installed (Deny)." in out
    assert "It refuses a change of preserve_client_ip.enabled" in out
    on = f"  kubectl annotate service --namespace shop web {BYPASS}=true"
    off = f"  kubectl annotate service --namespace shop web {BYPASS}-"
    lines = out.splitlines()
    assert on in lines and off in lines and lines.index(on) < lines.index(off)
    # The guardrail section follows the plan's own steps (authorize ... revoke).
    assert out.index("aws ec2 revoke-security-group-ingress") < out.index(on)
    guardrail = json.loads(json_out)["guardrail"]
    assert guardrail["state"] == "installed"
    assert list(guardrail) == ["state", "detail", "policies"]  # keys in order, as printed
    assert [list(p) for p in guardrail["policies"]] == [["policy", "bypass_annotation", "bindings", "denies"]]
    assert [list(b) for b in guardrail["policies"][0]["bindings"]] == [["name", "validation_actions"]]
    assert guardrail["policies"] == [
        {
            "policy": name,
            "bypass_annotation": BYPASS,
            "bindings": [{"name": name, "validation_actions": ["Deny"]}],
            "denies": True,
        }
    ]


def test_soft_rollout_policy_warns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    docs = guardrail_docs(
        {"validationActions": ["Warn", "Audit"], "bypassAnnotation": "example.com/ok"}, tmp_path
    )
    with KubeEmulator() as kube:
        install(kube, docs)
        code, out, err = plan_offline(capsys, tmp_path, kube.write_kubeconfig(tmp_path / "kubeconfig"))
    assert code == 0, err
    assert "is installed (Audit, Warn)." in out and "It warns about a change" in out
    assert "kubectl annotate service --namespace shop web example.com/ok=true" in out


def test_policy_without_binding_checks_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = guardrail_docs({}, tmp_path)[0]
    with KubeEmulator() as kube:
        install(kube, [policy])
        code, out, _ = plan_offline(capsys, tmp_path, kube.write_kubeconfig(tmp_path / "kubeconfig"))
    assert code == 0
    assert "is installed (no binding: it checks nothing)." in out and "kubectl annotate" not in out


@pytest.mark.parametrize(
    ("admission", "forbid", "expected"),
    [
        (True, False, "Guardrail: absent (no sg-churn-exporter guardrail policy in the cluster)"),
        (False, False, "Guardrail: absent (the cluster does not serve admissionregistration.k8s.io/v1"),
        (True, True, "Guardrail: unknown (kubernetes API http://127.0.0.1:"),
    ],
)
def test_absent_or_unknown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], admission: bool, forbid: bool, expected: str
) -> None:
    with KubeEmulator(admission=admission) as kube:
        if forbid:
            kube.forbid("validatingadmissionpolicies")
        code, out, err = plan_offline(capsys, tmp_path, kube.write_kubeconfig(tmp_path / "kubeconfig"))
    assert code == 0, err
    assert expected in out
    if forbid:
        assert "forbidden (403)" in out
    assert "kubectl annotate" not in out


def test_offline_plan_does_not_look_without_kubeconfig(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = plan_offline(capsys, tmp_path, None)
    assert code == 0 and "Guardrail" not in out
    code, out, _ = plan_offline(capsys, tmp_path, None, "--format", "json")
    assert json.loads(out)["guardrail"] is None


def test_unreadable_kubeconfig_is_unknown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "kubeconfig"
    broken.write_text("not: [a kubeconfig\n")
    code, out, _ = plan_offline(capsys, tmp_path, broken)
    assert code == 0 and "Guardrail: unknown (no usable Kubernetes configuration: kubeconfig" in out


def test_live_plan_reads_the_default_kubeconfig(
    clean_moto: MotoServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = build_incident_world(clean_moto.client("ec2"), clean_moto.client("elbv2"))
    docs = guardrail_docs({}, tmp_path / "chart")
    with KubeEmulator() as kube:
        install(kube, docs)
        monkeypatch.setenv("KUBECONFIG", str(kube.write_kubeconfig(tmp_path / "kubeconfig")))
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        code, out, err = run_cli(capsys, "plan", world.tg_arn, *SET_FALSE)
    assert code == 0, err
    assert "is installed (Deny)" in out and f"{BYPASS}=true" in out


def test_guardrails_from_ignores_malformed_objects() -> None:
    policies: list[Any] = [
        None,
        "x",
        {"metadata": {"name": "p", "annotations": {"sg-churn-exporter/guardrail": "preserve-client-ip"}}},
        {"metadata": {"name": "q", "annotations": ["not", "a", "map"]}},
    ]
    bindings: list[Any] = [
        {"metadata": {"name": "b"}, "spec": {"policyName": "p", "validationActions": "Deny"}},
        {"metadata": {"name": "c"}, "spec": None},
        7,
    ]
    (found,) = guardrails_from(policies, bindings)
    assert (found.policy, found.bypass_annotation, found.bindings, found.actions) == (
        "p",
        "",
        (("b", ()),),
        (),
    )
