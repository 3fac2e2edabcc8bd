"""Kubernetes correlation against kmock's API emulator over HTTP, read with the official client."""

from __future__ import annotations

import copy
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
import yaml

from exporter.engine.bindings import bind_services
from exporter.engine.inventory import ServiceBinding, TargetGroup
from exporter.engine.rules import Rule, Source
from exporter.sources.guardrail import read_guardrails
from exporter.sources.kubernetes import (
    ClusterConfigError,
    ClusterForbidden,
    ClusterUnreachable,
    ClusterView,
    load_kube_client,
    read_cluster,
)
from tests.kube_emulator import KubeEmulator
from tests.support import free_port

CLUSTER = "prod-eks"
ACCOUNT_ARN = "arn:aws:elasticloadbalancing:us-east-1:111122223333"
TG_ARN = f"{ACCOUNT_ARN}:targetgroup/k8s-shop-web-5d3c1b7a2e/0123456789abcdef"
TGB_NAME = "k8s-shop-web-5d3c1b7a2e"

#: A Service as the user applies it and the API server returns it (status filled by LBC).
WEB_SERVICE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {
        "name": "web",
        "namespace": "shop",
        "uid": "5b0c4f8e-2f4e-4c31-9f0a-2d5b7f1e9a10",
        "resourceVersion": "918273",
        "annotations": {
            "service.beta.kubernetes.io/aws-load-balancer-type": "external",
            "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "instance",
            "service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing",
        },
        "finalizers": ["service.k8s.aws/resources"],
    },
    "spec": {
        "type": "LoadBalancer",
        "loadBalancerClass": "service.k8s.aws/nlb",
        "selector": {"app": "web"},
        "clusterIP": "10.100.23.7",
        "externalTrafficPolicy": "Cluster",
        "loadBalancerSourceRanges": ["203.0.113.0/24"],
        "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080, "nodePort": 31080}],
    },
    "status": {
        "loadBalancer": {
            "ingress": [{"hostname": "k8s-shop-web-5d3c1b7a2e-0123456789abcdef.elb.us-east-1.amazonaws.com"}]
        }
    },
}

#: The TargetGroupBinding the controller writes for that Service (legacy mode, instance targets).
WEB_TGB: dict[str, Any] = {
    "apiVersion": "elbv2.k8s.aws/v1beta1",
    "kind": "TargetGroupBinding",
    "metadata": {
        "name": TGB_NAME,
        "namespace": "shop",
        "labels": {"service.k8s.aws/stack-name": "web", "service.k8s.aws/stack-namespace": "shop"},
        "finalizers": ["elbv2.k8s.aws/resources"],
    },
    "spec": {
        "targetGroupARN": TG_ARN,
        "targetType": "instance",
        "ipAddressType": "ipv4",
        "serviceRef": {"name": "web", "port": 80},
        "networking": {
            "ingress": [
                {
                    "from": [{"ipBlock": {"cidr": "203.0.113.0/24"}}],
                    "ports": [{"protocol": "TCP", "port": 31080}],
                }
            ]
        },
    },
    "status": {"observedGeneration": 1},
}


def target_group(arn: str = TG_ARN, **tags: str) -> TargetGroup:
    return TargetGroup(
        arn=arn,
        name=arn.split("/")[1],
        protocol="TCP",
        port=31080,
        target_type="instance",
        vpc_id="vpc-1",
        tags=tags,
    )


def lbc_tags(cluster: str = CLUSTER, stack: str = "shop/web") -> dict[str, str]:
    """The tags the controller puts on a target group it creates for a Service."""
    return {
        "elbv2.k8s.aws/cluster": cluster,
        "service.k8s.aws/stack": stack,
        "service.k8s.aws/resource": f"{stack}:80",
    }


@pytest.fixture
def kube() -> Iterator[KubeEmulator]:
    with KubeEmulator() as emulator:
        yield emulator


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """An environment with no in-cluster variables and no kubeconfig."""
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return {"HOME": str(tmp_path / "home")}


# --- reading --------------------------------------------------------------------------------


def test_read_cluster_returns_services_and_bindings(
    kube: KubeEmulator, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    kube.add_service(WEB_SERVICE)
    kube.add_tgb(WEB_TGB)
    client = load_kube_client("true", str(kube.write_kubeconfig(tmp_path / "kubeconfig")), environ=clean_env)
    assert client is not None

    view = read_cluster(client)

    (service,) = view.services
    assert (service.namespace, service.name, service.type) == ("shop", "web", "LoadBalancer")
    assert service.annotations["service.beta.kubernetes.io/aws-load-balancer-nlb-target-type"] == "instance"
    assert service.load_balancer_source_ranges == ("203.0.113.0/24",)
    (port,) = service.ports
    assert (port.port, port.node_port, port.target_port, port.protocol, port.name) == (
        80,
        31080,
        8080,
        "TCP",
        "http",
    )
    (binding,) = view.bindings
    assert (binding.namespace, binding.name, binding.target_group_arn) == ("shop", TGB_NAME, TG_ARN)
    assert (binding.target_type, binding.service_name, binding.service_port) == ("instance", "web", 80)
    assert view.bindings_available


def test_bind_services_prefers_the_targetgroupbinding(kube: KubeEmulator) -> None:
    kube.add_service(WEB_SERVICE)
    kube.add_tgb(WEB_TGB)
    view = read_cluster(kube.api_client())
    # Tags that disagree with the binding: the binding wins and makes the target group ours.
    tgs = {TG_ARN: target_group(**lbc_tags(cluster="someone-else", stack="old/name"))}

    bindings = bind_services(tgs, view, CLUSTER)

    assert bindings == {
        TG_ARN: ServiceBinding(
            namespace="shop",
            service="web",
            source_ranges=("203.0.113.0/24",),
            mapped_by="targetgroupbinding",
            cluster=CLUSTER,
            ingress_rules=(
                Rule(
                    "tcp",
                    31080,
                    31080,
                    Source.cidr("203.0.113.0/24"),
                    description=f"targetgroupbinding:shop/{TGB_NAME}",
                ),
            ),
        )
    }


def test_source_ranges_fall_back_to_the_annotation(kube: KubeEmulator) -> None:
    service = copy.deepcopy(WEB_SERVICE)
    del service["spec"]["loadBalancerSourceRanges"]
    service["metadata"]["annotations"]["service.beta.kubernetes.io/load-balancer-source-ranges"] = (
        " 198.51.100.0/24 , 192.0.2.0/25,"
    )
    kube.add_service(service)
    plain = copy.deepcopy(WEB_SERVICE)
    plain["metadata"]["name"] = "api"
    del plain["spec"]["loadBalancerSourceRanges"]
    kube.add_service(plain)
    view = read_cluster(kube.api_client())
    tgs = {
        TG_ARN: target_group(**lbc_tags()),
        f"{ACCOUNT_ARN}:targetgroup/k8s-shop-api/1": target_group(
            f"{ACCOUNT_ARN}:targetgroup/k8s-shop-api/1", **lbc_tags(stack="shop/api")
        ),
    }

    bindings = bind_services(tgs, view, CLUSTER)

    assert bindings[TG_ARN].source_ranges == ("198.51.100.0/24", "192.0.2.0/25")
    assert bindings[TG_ARN].mapped_by == "tags"
    assert bindings[f"{ACCOUNT_ARN}:targetgroup/k8s-shop-api/1"].source_ranges == ()


def test_ingress_rules_one_per_peer_and_port(kube: KubeEmulator) -> None:
    tgb = copy.deepcopy(WEB_TGB)
    tgb["spec"]["networking"]["ingress"] = [
        {  # traffic and health checks from two CIDRs and a security group
            "from": [{"ipBlock": {"cidr": "203.0.113.0/24"}}, {"ipBlock": {"cidr": "2001:db8::/64"}}],
            "ports": [
                {"protocol": "TCP", "port": 31080},
                {"protocol": "UDP"},
                {"port": 31081},
                {"port": "http"},
            ],
        },
        {"from": [{"securityGroup": {"groupID": "sg-0123456789abcdef0"}}], "ports": []},
    ]
    kube.add_tgb(tgb)
    view = read_cluster(kube.api_client())
    description = f"targetgroupbinding:shop/{TGB_NAME}"
    v4, v6, sg = (
        Source.cidr("203.0.113.0/24"),
        Source.cidr("2001:db8::/64"),
        Source.group("sg-0123456789abcdef0"),
    )

    rules = bind_services({TG_ARN: target_group()}, view, CLUSTER)[TG_ARN].ingress_rules

    assert rules == (
        Rule("tcp", 31080, 31080, v4, description=description),
        Rule("udp", 0, 65535, v4, description=description),  # no port: every port of the protocol
        Rule("tcp", 31081, 31081, v4, description=description),  # no protocol: TCP (the CRD default)
        Rule("tcp", 31080, 31080, v6, description=description),
        Rule("udp", 0, 65535, v6, description=description),
        Rule("tcp", 31081, 31081, v6, description=description),
        Rule("tcp", 0, 65535, sg, description=description),  # no ports: all TCP ports
    )  # the named pod port "http" cannot be resolved without pods and is left out


def test_pagination_follows_continue_tokens(kube: KubeEmulator) -> None:
    for name in ("web", "api", "admin"):
        service = copy.deepcopy(WEB_SERVICE)
        service["metadata"]["name"] = name
        kube.add_service(service)
    for index in range(3):
        tgb = copy.deepcopy(WEB_TGB)
        tgb["metadata"]["name"] = f"{TGB_NAME}-{index}"
        tgb["spec"]["targetGroupARN"] = f"{TG_ARN}{index}"
        kube.add_tgb(tgb)
    kube.paginate("services", page_size=2)
    kube.paginate("targetgroupbindings", page_size=2)

    view = read_cluster(kube.api_client(), page_size=1)

    assert sorted(s.name for s in view.services) == ["admin", "api", "web"]
    assert sorted(b.name for b in view.bindings) == [f"{TGB_NAME}-{i}" for i in range(3)]
    assert kube.list_requests("services") == [
        {"limit": "1"},
        {"limit": "1", "continue": "1"},
        {"limit": "1", "continue": "2"},
    ]
    assert len(kube.list_requests("targetgroupbindings")) == 3


def test_listing_per_namespace_knows_the_namespace(kube: KubeEmulator) -> None:
    kube.add_service(WEB_SERVICE, fill_namespace=False)
    kube.add_tgb(WEB_TGB, fill_namespace=False)
    other = copy.deepcopy(WEB_SERVICE)
    other["metadata"]["namespace"] = "blog"
    kube.add_service(other, fill_namespace=False)

    view = read_cluster(kube.api_client(), namespaces=["shop"])

    assert [(s.namespace, s.name) for s in view.services] == [("shop", "web")]
    assert [(b.namespace, b.name) for b in view.bindings] == [("shop", TGB_NAME)]


def test_cluster_wide_listing_without_namespaces_resolves_them(kube: KubeEmulator) -> None:
    """kmock leaves metadata.namespace empty: the stack tag, else a unique Service name, decides."""
    kube.add_service(WEB_SERVICE, fill_namespace=False)
    kube.add_tgb(WEB_TGB, fill_namespace=False)
    view = read_cluster(kube.api_client())
    assert view.services[0].namespace is None and view.bindings[0].namespace is None

    tagged = bind_services({TG_ARN: target_group(**lbc_tags())}, view, CLUSTER)[TG_ARN]
    untagged = bind_services({TG_ARN: target_group()}, view, CLUSTER)[TG_ARN]

    assert (tagged.namespace, tagged.service, tagged.source_ranges) == ("shop", "web", ("203.0.113.0/24",))
    assert tagged.ingress_rules[0].description == f"targetgroupbinding:shop/{TGB_NAME}"
    # No tag, and the only Service named "web" has no namespace either: the name still binds.
    assert (untagged.namespace, untagged.service, untagged.source_ranges) == ("", "web", ("203.0.113.0/24",))


# --- failures -------------------------------------------------------------------------------


def test_closed_port_raises_cluster_unreachable_quickly(tmp_path: Path, clean_env: dict[str, str]) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    with KubeEmulator() as kube:
        kube.write_kubeconfig(kubeconfig)
    kubeconfig.write_text(kubeconfig.read_text().replace(kube.url, f"http://127.0.0.1:{free_port()}"))
    client = load_kube_client("auto", str(kubeconfig), environ=clean_env)
    assert client is not None

    started = time.monotonic()
    with pytest.raises(ClusterUnreachable) as caught:
        read_cluster(client, timeout=(0.5, 0.5))

    assert time.monotonic() - started < 5
    assert "unreachable" in str(caught.value) and "\n" not in str(caught.value)


def test_silent_server_raises_cluster_unreachable_on_timeout(tmp_path: Path) -> None:
    with socket.socket() as listener:  # accepts connections (backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        config = kubernetes.client.Configuration()
        config.host = f"http://127.0.0.1:{listener.getsockname()[1]}"
        # as the exporter's clients are made (sources/kubernetes.py): one retry, not urllib3's three
        # (four 0.5 s reads took 9.8 s on a loaded 2-core machine)
        config.retries = 1
        client = kubernetes.client.ApiClient(config)

        started = time.monotonic()
        with pytest.raises(ClusterUnreachable) as caught:
            read_cluster(client, timeout=(0.5, 0.5))

    assert time.monotonic() - started < 5
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("resource", ["services", "targetgroupbindings"])
def test_forbidden_raises_cluster_forbidden(kube: KubeEmulator, resource: str) -> None:
    kube.add_service(WEB_SERVICE)
    kube.forbid(resource)

    with pytest.raises(ClusterForbidden) as caught:
        read_cluster(kube.api_client())

    message = str(caught.value)
    assert "forbidden (403)" in message and f'cannot list resource "{resource}"' in message
    assert "\n" not in message


def test_missing_crd_means_no_bindings() -> None:
    with KubeEmulator(crd=False) as kube:
        kube.add_service(WEB_SERVICE)
        view = read_cluster(kube.api_client())

    assert [s.name for s in view.services] == ["web"]
    assert view.bindings == () and not view.bindings_available


# --- mapping --------------------------------------------------------------------------------


def test_cluster_off_falls_back_to_tags() -> None:
    bindings = bind_services({TG_ARN: target_group(**lbc_tags())}, None, CLUSTER)

    assert bindings == {
        TG_ARN: ServiceBinding(namespace="shop", service="web", mapped_by="tags", cluster=CLUSTER)
    }


def test_two_clusters_sharing_an_account_only_ours_is_attributed(kube: KubeEmulator) -> None:
    kube.add_service(WEB_SERVICE)
    kube.add_tgb(WEB_TGB)
    view = read_cluster(kube.api_client())
    staging_arn = f"{ACCOUNT_ARN}:targetgroup/k8s-shop-web-99aa88bb77/fedcba9876543210"
    ours_untracked = f"{ACCOUNT_ARN}:targetgroup/k8s-shop-web-11cc22dd33/1111111111111111"
    manual_arn = f"{ACCOUNT_ARN}:targetgroup/hand-made/2222222222222222"
    tgs = {
        TG_ARN: target_group(TG_ARN, **lbc_tags()),
        staging_arn: target_group(staging_arn, **lbc_tags(cluster="staging-eks")),  # same ns/name elsewhere
        ours_untracked: target_group(ours_untracked, **lbc_tags()),  # ours, but no binding (yet)
        manual_arn: target_group(manual_arn),  # no tags, no binding: nobody's
    }

    bindings = bind_services(tgs, view, CLUSTER)

    assert set(bindings) == {TG_ARN, staging_arn, ours_untracked}
    assert (bindings[TG_ARN].cluster, bindings[TG_ARN].mapped_by) == (CLUSTER, "targetgroupbinding")
    assert bindings[staging_arn] == ServiceBinding(
        namespace="shop", service="web", mapped_by="tags", cluster="staging-eks"
    )
    assert bindings[ours_untracked] == ServiceBinding(
        namespace="shop", service="web", source_ranges=("203.0.113.0/24",), mapped_by="tags", cluster=CLUSTER
    )


def test_empty_view_binds_nothing_but_tags() -> None:
    bindings = bind_services({TG_ARN: target_group(**lbc_tags(stack="bad-tag"))}, ClusterView(), CLUSTER)

    assert bindings == {}


def test_rbac_document_allows_exactly_what_the_exporter_does(kube: KubeEmulator) -> None:
    kube.add_service(WEB_SERVICE)
    kube.add_tgb(WEB_TGB)
    read_cluster(kube.api_client())
    read_cluster(kube.api_client(), namespaces=["shop"])
    read_guardrails(kube.api_client())  # `plan` looks for the guardrail policy
    role = yaml.safe_load((Path(__file__).parent.parent / "docs" / "kubernetes-rbac.yaml").read_text())
    granted = {
        (verb, group, resource)
        for rule in role["rules"]
        for verb in rule["verbs"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }

    assert role["kind"] == "ClusterRole"
    assert {verb for verb, _, _ in granted} == {"get", "list", "watch"}  # read-only
    assert {(group, resource) for _, group, resource in granted} == {
        ("", "services"),
        ("elbv2.k8s.aws", "targetgroupbindings"),
        ("admissionregistration.k8s.io", "validatingadmissionpolicies"),
        ("admissionregistration.k8s.io", "validatingadmissionpolicybindings"),
    }
    seen = set(kube.seen_requests())
    assert seen == {
        ("list", "", "services"),
        ("list", "elbv2.k8s.aws", "targetgroupbindings"),
        ("list", "admissionregistration.k8s.io", "validatingadmissionpolicies"),
        ("list", "admissionregistration.k8s.io", "validatingadmissionpolicybindings"),
    }
    assert seen <= granted


# --- client configuration -------------------------------------------------------------------


def test_mode_false_is_off(kube: KubeEmulator, tmp_path: Path) -> None:
    assert load_kube_client("false", str(kube.write_kubeconfig(tmp_path / "kubeconfig"))) is None
    assert load_kube_client(False, None) is None


def test_auto_without_any_configuration_is_off(clean_env: dict[str, str]) -> None:
    assert load_kube_client("auto", None, environ=clean_env) is None


def test_true_without_any_configuration_raises(clean_env: dict[str, str]) -> None:
    with pytest.raises(ClusterConfigError, match="no client configuration"):
        load_kube_client("true", None, environ=clean_env)


def test_explicit_broken_kubeconfig_raises_even_in_auto(tmp_path: Path, clean_env: dict[str, str]) -> None:
    with pytest.raises(ClusterConfigError, match="kubeconfig"):
        load_kube_client("auto", str(tmp_path / "missing"), environ=clean_env)


def test_kubeconfig_from_the_environment(
    kube: KubeEmulator, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    kube.add_service(WEB_SERVICE)
    environ = {**clean_env, "KUBECONFIG": str(kube.write_kubeconfig(tmp_path / "kubeconfig"))}

    client = load_kube_client("auto", None, environ=environ)

    assert client is not None
    assert [s.name for s in read_cluster(client).services] == ["web"]


def test_in_cluster_service_account(tmp_path: Path, clean_env: dict[str, str]) -> None:
    token, ca = tmp_path / "token", tmp_path / "ca.crt"
    token.write_text("service-account-token")
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    environ = {**clean_env, "KUBERNETES_SERVICE_HOST": "10.100.0.1", "KUBERNETES_SERVICE_PORT": "443"}

    client = load_kube_client("true", None, environ=environ, token_file=str(token), ca_file=str(ca))

    assert client is not None
    assert client.configuration.host == "https://10.100.0.1:443"
    assert client.configuration.api_key["BearerToken"] == "bearer service-account-token"


def test_invalid_mode_is_rejected() -> None:
    with pytest.raises(ValueError, match="auto, true or false"):
        load_kube_client("sometimes", None)
