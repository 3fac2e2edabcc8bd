"""The Helm chart, rendered by the real helm (.tools/bin/helm, installed by scripts/install-tools.sh).

Core kinds are validated by kubernetes-validate against the Kubernetes 1.33 schemas; the CRD kinds
(ServiceMonitor, PrometheusRule) are checked structurally here. The rendered config.yaml is checked by the
exporter's own `check-config`. Tests FAIL when helm is missing: run `make tools`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "sg-churn-exporter"
HELM = ROOT / ".tools" / "bin" / "helm"
ALL_FEATURES = CHART / "ci" / "all-features-values.yaml"
KUBE_VERSION = "1.33.0"
RELEASE = "rel"
NAMESPACE = "sgchurn"
FULLNAME = f"{RELEASE}-sg-churn-exporter"
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
WORKLOAD_KINDS = {"Deployment", "StatefulSet"}
CLUSTER_SCOPED_KINDS = {
    "ClusterRole",
    "ClusterRoleBinding",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
}
STATE_DIR = "/var/lib/sg-churn-exporter"
CONFIG_PATH = "/etc/sg-churn-exporter/config.yaml"

Doc = dict[str, Any]

#: Every rendering names an image (the chart has no default: tests below check the message).
IMAGE = "registry.example.com/sg-churn-exporter"

# The value sets every rendering test runs over.
VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "persistence": {"persistence": {"enabled": True, "storageClass": "gp3", "size": "5Gi"}},
    "sharded": {
        "sharding": {"enabled": True, "totalShards": 3},
        "persistence": {"enabled": True},
    },
    "observability": {
        "serviceMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True},
        "dashboards": {"enabled": True},
        "networkPolicy": {"enabled": True},
    },
    "all-features": yaml.safe_load(ALL_FEATURES.read_text()),
}


# --------------------------------------------------------------------------------------------- helpers


def helm_bin() -> str:
    if not (HELM.is_file() and os.access(HELM, os.X_OK)):
        pytest.fail(
            f"helm is not installed at {HELM.relative_to(ROOT)}: run `make tools` (scripts/install-tools.sh)"
        )
    return str(HELM)


def run_helm(args: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([helm_bin(), *args], capture_output=True, text=True, timeout=120)
    if check:
        assert proc.returncode == 0, f"helm {' '.join(args)} failed:\n{proc.stderr}"
    return proc


def template(
    values: dict[str, Any] | None,
    tmp: Path,
    chart: Path = CHART,
    extra: Sequence[str] = (),
    check: bool = True,
    image: str | None = IMAGE,
) -> subprocess.CompletedProcess[str]:
    args = ["template", RELEASE, str(chart), "--namespace", NAMESPACE, "--kube-version", KUBE_VERSION]
    if image is not None:
        args += ["--set", f"image.repository={image}"]
    if values is not None:
        tmp.mkdir(parents=True, exist_ok=True)
        values_file = tmp / "values.yaml"
        values_file.write_text(yaml.safe_dump(values))
        args += ["--values", str(values_file)]
    return run_helm([*args, *extra], check=check)


def docs_of(text: str) -> list[Doc]:
    return [d for d in yaml.safe_load_all(text) if d]


def render(values: dict[str, Any], tmp: Path, chart: Path = CHART) -> list[Doc]:
    return docs_of(template(values, tmp, chart).stdout)


def by_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[Doc], kind: str) -> Doc:
    found = by_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def workload(docs: list[Doc]) -> Doc:
    found = [d for d in docs if d["kind"] in WORKLOAD_KINDS]
    assert len(found) == 1, [d["kind"] for d in found]
    return found[0]


def pod_spec(docs: list[Doc]) -> Doc:
    spec: Doc = workload(docs)["spec"]["template"]["spec"]
    return spec


def rendered_config(docs: list[Doc]) -> Doc:
    cm = next(d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"] == FULLNAME)
    config: Doc = yaml.safe_load(cm["data"]["config.yaml"])
    return config


def source_files(directory: str, pattern: str) -> list[Path]:
    return sorted((ROOT / directory).glob(pattern))


def source_rule_groups() -> list[Doc]:
    groups: list[Doc] = []
    for path in source_files("alerts", "*.rules.yml"):
        groups.extend(yaml.safe_load(path.read_text())["groups"])
    return groups


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Doc]]:
    base = tmp_path_factory.mktemp("values")
    return {name: render(values, base / name) for name, values in VALUE_SETS.items()}


@pytest.fixture(params=sorted(VALUE_SETS))
def value_set(
    request: pytest.FixtureRequest, rendered: dict[str, list[Doc]]
) -> Iterator[tuple[str, list[Doc]]]:
    name: str = request.param
    yield name, rendered[name]


# --------------------------------------------------------------------------------------------- lint + schema


@pytest.mark.parametrize("values_file", [None, ALL_FEATURES], ids=["default", "all-features"])
def test_helm_lint_strict(values_file: Path | None) -> None:
    args = ["lint", "--strict", str(CHART), "--set", f"image.repository={IMAGE}"]
    if values_file is not None:
        args += ["--values", str(values_file)]
    proc = run_helm(args, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize(
    ("override", "complaint"),
    [
        ({"replicaCoutn": 2}, "replicaCoutn"),
        ({"serviceMonitor": {"enable": True}}, "enable"),
        ({"persistance": {"enabled": True}}, "persistance"),
        ({"config": {"cluster_nmae": "x"}}, "cluster_nmae"),
        ({"config": {"listen_port": 9000}}, "listen_port"),  # owned by the chart
        ({"config": {"state": {"path": "/x"}}}, "path"),  # owned by the chart
        ({"sharding": {"enabled": True, "totalShards": 0}}, "totalShards"),
        ({"irsa": {"roleArn": "my-role"}}, "roleArn"),
    ],
)
def test_schema_rejects_bad_values(override: dict[str, Any], complaint: str, tmp_path: Path) -> None:
    proc = template(override, tmp_path, check=False)
    assert proc.returncode != 0, f"helm template accepted {override}"
    assert complaint in proc.stderr, proc.stderr
    lint = run_helm(["lint", "--strict", str(CHART), "--values", str(tmp_path / "values.yaml")], check=False)
    assert lint.returncode != 0 and complaint in lint.stdout + lint.stderr


# --------------------------------------------------------------------------------------------- validation


def assert_kubernetes_valid(sets: dict[str, list[Doc]], tmp_path: Path) -> None:
    """kubernetes-validate (strict, KUBE_VERSION schemas) passes every object of every set."""
    files: list[str] = []
    for name, docs in sets.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump_all(docs))
        files.append(str(path))
    tool = Path(sys.executable).parent / "kubernetes-validate"
    proc = subprocess.run(
        [str(tool), "-k", KUBE_VERSION, "--strict", *files], capture_output=True, text=True, timeout=120
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "ERROR" not in out and "Couldn't find schema" not in out, out
    assert out.count(" passed for resource ") == sum(len(docs) for docs in sets.values()), out


def test_core_kinds_pass_kubernetes_validate(rendered: dict[str, list[Doc]], tmp_path: Path) -> None:
    core = {name: [d for d in docs if d["kind"] not in CRD_KINDS] for name, docs in rendered.items()}
    assert_kubernetes_valid(core, tmp_path)


def test_expected_objects_per_value_set(rendered: dict[str, list[Doc]]) -> None:
    kinds = {name: Counter(d["kind"] for d in docs) for name, docs in rendered.items()}
    base = {"ServiceAccount": 1, "ClusterRole": 1, "ClusterRoleBinding": 1, "ConfigMap": 1, "Service": 1}
    assert kinds["default"] == Counter({**base, "Deployment": 1})
    assert kinds["persistence"] == Counter({**base, "Deployment": 1, "PersistentVolumeClaim": 1})
    assert kinds["sharded"] == Counter({**base, "StatefulSet": 1, "PodDisruptionBudget": 1})
    observability = kinds["observability"]
    for kind in ("ServiceMonitor", "NetworkPolicy", "Deployment"):
        assert observability[kind] == 1, observability
    assert observability["PrometheusRule"] == (1 if source_rule_groups() else 0)
    assert observability["ConfigMap"] == 1 + len(source_files("dashboards", "*.json"))
    for docs in rendered.values():
        for doc in docs:
            if doc["kind"] not in CLUSTER_SCOPED_KINDS:
                assert doc["metadata"]["namespace"] == NAMESPACE, doc["metadata"]


def test_serviceaccount_irsa_annotation(rendered: dict[str, list[Doc]]) -> None:
    default_sa = one(rendered["default"], "ServiceAccount")
    assert "eks.amazonaws.com/role-arn" not in (default_sa["metadata"].get("annotations") or {})
    sa = one(rendered["all-features"], "ServiceAccount")
    annotations = sa["metadata"]["annotations"]
    assert annotations["eks.amazonaws.com/role-arn"] == VALUE_SETS["all-features"]["irsa"]["roleArn"]
    assert annotations["eks.amazonaws.com/sts-regional-endpoints"] == "true"
    for docs in rendered.values():
        assert pod_spec(docs)["serviceAccountName"] == one(docs, "ServiceAccount")["metadata"]["name"]


def test_cluster_role_grants_only_reads(
    value_set: tuple[str, list[Doc]],
) -> None:
    _, docs = value_set
    role = one(docs, "ClusterRole")
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    admission = ("validatingadmissionpolicies", "validatingadmissionpolicybindings")
    assert granted == {
        (group, resource, verb)
        for group, resource in (("", "services"), ("elbv2.k8s.aws", "targetgroupbindings"))
        for verb in ("get", "list", "watch")
    } | {
        ("admissionregistration.k8s.io", resource, verb) for resource in admission for verb in ("get", "list")
    }
    for rule in role["rules"]:
        assert set(rule) == {"apiGroups", "resources", "verbs"}, rule  # no nonResourceURLs, resourceNames
    assert not [d for d in docs if d["kind"] in {"Role", "RoleBinding"}]
    binding = one(docs, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    sa = one(docs, "ServiceAccount")["metadata"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": sa["name"], "namespace": sa["namespace"]}
    ]


def test_cluster_role_mirrors_docs_rbac(rendered: dict[str, list[Doc]]) -> None:
    """docs/kubernetes-rbac.yaml says the chart mirrors its rules: keep them equal."""
    documented = yaml.safe_load((ROOT / "docs" / "kubernetes-rbac.yaml").read_text())
    assert documented["kind"] == "ClusterRole"
    assert one(rendered["default"], "ClusterRole")["rules"] == documented["rules"]


def test_every_container_is_locked_down(value_set: tuple[str, list[Doc]]) -> None:
    _, docs = value_set
    spec = pod_spec(docs)
    pod_sc = spec["securityContext"]
    assert pod_sc["runAsNonRoot"] is True and pod_sc["runAsUser"] == 10001
    assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}
    containers = spec["containers"] + spec.get("initContainers", [])
    assert containers
    for container in containers:
        sc = container["securityContext"]
        assert sc["runAsNonRoot"] is True
        assert sc["runAsUser"] == 10001
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc.get("privileged", False) is False
        assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add")
        assert sc.get("seccompProfile", pod_sc["seccompProfile"]) == {"type": "RuntimeDefault"}


def _volume_for_mount(docs: list[Doc], mount_path: str) -> Doc:
    spec = pod_spec(docs)
    (mount,) = [m for m in spec["containers"][0]["volumeMounts"] if m["mountPath"] == mount_path]
    volumes: dict[str, Doc] = {v["name"]: v for v in spec["volumes"]}
    if mount["name"] in volumes:
        return volumes[mount["name"]]
    templates = {t["metadata"]["name"]: t for t in workload(docs)["spec"].get("volumeClaimTemplates", [])}
    return {"name": mount["name"], "volumeClaimTemplate": templates[mount["name"]]}


def test_writable_paths_are_volumes(rendered: dict[str, list[Doc]]) -> None:
    """readOnlyRootFilesystem: /tmp (HOME/TMPDIR in the image) and the state dir must be mounts."""
    for name, docs in rendered.items():
        container = pod_spec(docs)["containers"][0]
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert mounts["/etc/sg-churn-exporter"].get("readOnly") is True
        assert "emptyDir" in _volume_for_mount(docs, "/tmp")
        state = _volume_for_mount(docs, STATE_DIR)
        if VALUE_SETS[name].get("persistence", {}).get("enabled"):
            assert "emptyDir" not in state, name
        else:
            assert "emptyDir" in state, name
        assert rendered_config(docs)["state"]["path"].startswith(STATE_DIR + "/")


def test_persistence_claims(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["persistence"]
    pvc = one(docs, "PersistentVolumeClaim")
    assert _volume_for_mount(docs, STATE_DIR)["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    assert pvc["spec"]["storageClassName"] == "gp3"
    assert pvc["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert workload(docs)["spec"]["strategy"] == {"type": "Recreate"}

    sharded = rendered["sharded"]
    (claim,) = workload(sharded)["spec"]["volumeClaimTemplates"]
    assert _volume_for_mount(sharded, STATE_DIR)["volumeClaimTemplate"] is claim
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert not by_kind(sharded, "PersistentVolumeClaim")


def test_existing_claim_is_used_as_is(tmp_path: Path) -> None:
    docs = render({"persistence": {"enabled": True, "existingClaim": "my-state"}}, tmp_path)
    assert not by_kind(docs, "PersistentVolumeClaim")
    assert _volume_for_mount(docs, STATE_DIR)["persistentVolumeClaim"]["claimName"] == "my-state"


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        (
            {"replicaCount": 2, "persistence": {"enabled": True}},
            "persistence.enabled with replicaCount 2: the replicas would share one SQLite state file",
        ),
        (
            {"replicaCount": 3, "persistence": {"enabled": True, "existingClaim": "my-state"}},
            "persistence.enabled with replicaCount 3",
        ),
        (
            {"sharding": {"enabled": True}, "persistence": {"enabled": True, "existingClaim": "my-state"}},
            "persistence.existingClaim is for the unsharded Deployment",
        ),
    ],
)
def test_one_state_file_per_exporter_process(values: dict[str, Any], complaint: str, tmp_path: Path) -> None:
    """docs/operations.md: one file belongs to one exporter process. Two replicas on one claim
    (a second pod stuck on the ReadWriteOnce attach, or both on one node and the file locked) and
    a claim ignored under sharding rendered without a word."""
    proc = template(values, tmp_path, check=False)
    assert proc.returncode != 0
    assert complaint in proc.stderr, proc.stderr
    # without persistence (an emptyDir each) or with one replica, they render
    render({**values, "persistence": {"enabled": False}}, tmp_path / "no-persistence")
    if "replicaCount" in values:
        render({**values, "replicaCount": 1}, tmp_path / "one-replica")


def test_sharded_statefulset(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["sharded"]
    sts = one(docs, "StatefulSet")
    assert not by_kind(docs, "Deployment")
    assert sts["spec"]["replicas"] == 3
    assert sts["spec"]["serviceName"] == one(docs, "Service")["metadata"]["name"]
    container = sts["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    assert args[:3] == ["run", "--config", CONFIG_PATH]
    assert args[args.index("--total-shards") + 1] == "3"
    assert {"name": "SGCHURN_SHARD_FROM_HOSTNAME", "value": "true"} in container["env"]
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"] == sts["spec"]["selector"]["matchLabels"]


def _config_env(container: Doc) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    env.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
    return env


def test_sharded_pods_derive_their_shard(rendered: dict[str, list[Doc]], tmp_path: Path) -> None:
    """Each StatefulSet pod (HOSTNAME <name>-N) gets shard N of --total-shards, via exporter.config."""
    from exporter.config import load_settings

    docs = rendered["sharded"]
    sts = one(docs, "StatefulSet")
    container = sts["spec"]["template"]["spec"]["containers"][0]
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(rendered_config(docs)))
    args = container["args"]
    total = int(args[args.index("--total-shards") + 1])
    for ordinal in range(sts["spec"]["replicas"]):
        environ = {
            **_config_env(container),
            "HOSTNAME": f"{sts['metadata']['name']}-{ordinal}",
            "AWS_REGION": "eu-west-1",  # set on IRSA pods by the EKS pod identity webhook
        }
        settings = load_settings(
            config_file, environ=environ, overrides={"sharding": {"total_shards": total}}
        )
        assert (settings.sharding.shard, settings.sharding.total_shards) == (ordinal, 3)


def test_probes_ports_and_service(value_set: tuple[str, list[Doc]]) -> None:
    _, docs = value_set
    spec = pod_spec(docs)
    container = spec["containers"][0]
    assert container["ports"] == [{"name": "http-metrics", "containerPort": 9877, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] == "http-metrics"
    assert container["args"][:3] == ["run", "--config", CONFIG_PATH]
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    service = one(docs, "Service")
    assert service["spec"]["ports"] == [
        {"name": "http-metrics", "port": 9877, "targetPort": "http-metrics", "protocol": "TCP"}
    ]
    labels = workload(docs)["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert workload(docs)["spec"]["selector"]["matchLabels"].items() <= labels.items()
    config = rendered_config(docs)
    assert (config["listen_address"], config["listen_port"]) == ("0.0.0.0", 9877)


def test_tls_switches_probe_scheme(rendered: dict[str, list[Doc]]) -> None:
    assert pod_spec(rendered["default"])["containers"][0]["livenessProbe"]["httpGet"]["scheme"] == "HTTP"
    container = pod_spec(rendered["all-features"])["containers"][0]
    assert container["livenessProbe"]["httpGet"]["scheme"] == "HTTPS"
    assert container["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"


def test_rendered_config_passes_check_config(value_set: tuple[str, list[Doc]], tmp_path: Path) -> None:
    """The exporter's own validator accepts every config.yaml the chart renders."""
    name, docs = value_set
    config = rendered_config(docs)
    web = config.get("web") or {}
    if web.get("tls_cert_file"):
        # check-config reads the certificate and key: stand in for the Secret the pod mounts there.
        from tests.test_web import self_signed

        cert, key = self_signed(tmp_path)
        web["tls_cert_file"], web["tls_key_file"] = str(cert), str(key)
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SGCHURN_", "AWS_"))}

    def check(environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "exporter", "check-config", str(config_file)],
            capture_output=True,
            text=True,
            timeout=60,
            env=environ,
            cwd=ROOT,
        )

    # As on an IRSA pod, where the EKS pod identity webhook sets AWS_REGION.
    proc = check({**env, "AWS_REGION": "eu-west-1"})
    assert proc.returncode == 0, f"{name}: {proc.stderr}"
    if not rendered_config(docs)["targets"]:
        # No targets and no region in the pod: exit 2 naming the field, never a guessed region.
        proc = check(env)
        assert proc.returncode == 2 and proc.stderr.startswith("config error: targets:"), proc.stderr
    else:
        # Targets name their regions: no AWS_REGION needed (the assertion here looked for
        # "region = eu-west-1" in the output, which no output format ever printed).
        proc = check(env)
        assert proc.returncode == 0, f"{name}: {proc.stderr}"


def test_config_values_merge_with_defaults(tmp_path: Path) -> None:
    docs = render({"config": {"cluster_name": "prod", "intervals": {"inventory": 45}}}, tmp_path)
    config = rendered_config(docs)
    assert config["cluster_name"] == "prod"
    assert config["intervals"] == {
        "inventory": 45,
        "rules": 5,
        "cloudtrail": 60,
        "kubernetes": 60,
        "evaluate": 15,
    }
    assert config["targets"] == []  # the pod's region (AWS_REGION): no silent default
    assert config["state"] == {"path": f"{STATE_DIR}/state.sqlite3", "seen_event_ttl_seconds": 604800}
    assert rendered_config(render({"config": {"kubernetes": {"enabled": False}}}, tmp_path / "k"))[
        "kubernetes"
    ] == {"enabled": "false"}


def test_checksum_annotation_follows_config(rendered: dict[str, list[Doc]], tmp_path: Path) -> None:
    def checksum(docs: list[Doc]) -> str:
        value: str = workload(docs)["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        return value

    default = checksum(rendered["default"])
    assert re.fullmatch(r"[0-9a-f]{64}", default)
    assert checksum(render({}, tmp_path / "same")) == default
    assert checksum(render({"config": {"cluster_name": "other"}}, tmp_path / "other")) != default


def test_pod_disruption_budget(rendered: dict[str, list[Doc]], tmp_path: Path) -> None:
    assert not by_kind(rendered["default"], "PodDisruptionBudget")
    assert one(render({"replicaCount": 2}, tmp_path / "r2"), "PodDisruptionBudget")["spec"] == {
        "maxUnavailable": 1,
        "selector": {
            "matchLabels": {
                "app.kubernetes.io/name": "sg-churn-exporter",
                "app.kubernetes.io/instance": RELEASE,
            }
        },
    }
    forced = render({"podDisruptionBudget": {"enabled": True, "minAvailable": 1}}, tmp_path / "forced")
    assert one(forced, "PodDisruptionBudget")["spec"]["minAvailable"] == 1


def test_network_policy(rendered: dict[str, list[Doc]]) -> None:
    assert not by_kind(rendered["default"], "NetworkPolicy")
    for name in ("observability", "all-features"):
        docs = rendered[name]
        policy = one(docs, "NetworkPolicy")["spec"]
        assert policy["podSelector"]["matchLabels"] == workload(docs)["spec"]["selector"]["matchLabels"]
        assert policy["policyTypes"] == ["Ingress", "Egress"]
        (ingress,) = policy["ingress"]
        assert ingress["ports"] == [{"port": "http-metrics", "protocol": "TCP"}]
        wanted_from = VALUE_SETS[name].get("networkPolicy", {}).get("ingressFrom")
        assert ingress.get("from") == wanted_from
        egress_ports = [(p["port"], p["protocol"]) for rule in policy["egress"] for p in rule["ports"]]
        assert egress_ports[:3] == [(443, "TCP"), (53, "UDP"), (53, "TCP")]
        assert all("to" not in rule for rule in policy["egress"][:2])
        assert policy["egress"][2:] == VALUE_SETS[name].get("networkPolicy", {}).get("extraEgress", [])


# --------------------------------------------------------------------------------------------- CRD kinds

ENDPOINT_KEYS = {
    "port", "path", "scheme", "interval", "scrapeTimeout", "honorLabels", "honorTimestamps", "tlsConfig",
    "relabelings", "metricRelabelings", "params", "bearerTokenSecret", "basicAuth", "authorization",
    "oauth2", "followRedirects", "enableHttp2", "filterRunning", "proxyUrl", "targetPort",
    "trackTimestampsStaleness",
}  # fmt: skip
RELABEL_KEYS = {"sourceLabels", "separator", "targetLabel", "regex", "modulus", "replacement", "action"}
RULE_KEYS = {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}
GROUP_KEYS = {"name", "interval", "rules", "limit", "partial_response_strategy", "query_offset", "labels"}
DURATION = re.compile(
    r"^(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?$"
)


def _check_metadata(doc: Doc, kind: str) -> None:
    assert doc["apiVersion"] == "monitoring.coreos.com/v1" and doc["kind"] == kind
    assert set(doc) == {"apiVersion", "kind", "metadata", "spec"}
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"])
    assert all(isinstance(v, str) for v in doc["metadata"]["labels"].values())


def test_service_monitor_structure(rendered: dict[str, list[Doc]]) -> None:
    assert not by_kind(rendered["default"], "ServiceMonitor")
    for name in ("observability", "all-features"):
        docs = rendered[name]
        monitor = one(docs, "ServiceMonitor")
        _check_metadata(monitor, "ServiceMonitor")
        spec = monitor["spec"]
        assert set(spec) == {"namespaceSelector", "selector", "endpoints"}
        service = one(docs, "Service")
        assert spec["namespaceSelector"] == {"matchNames": [service["metadata"]["namespace"]]}
        assert spec["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        (endpoint,) = spec["endpoints"]
        assert set(endpoint) <= ENDPOINT_KEYS, set(endpoint) - ENDPOINT_KEYS
        assert endpoint["port"] == service["spec"]["ports"][0]["name"]
        assert endpoint["path"] == "/metrics" and endpoint["honorLabels"] is True
        assert DURATION.match(endpoint["interval"]) and DURATION.match(endpoint["scrapeTimeout"])
        for relabel in endpoint.get("relabelings", []) + endpoint.get("metricRelabelings", []):
            assert set(relabel) <= RELABEL_KEYS, relabel
        job = next(r["replacement"] for r in endpoint["relabelings"] if r.get("targetLabel") == "job")
        # The alert rules find the exporter by job name: the ServiceMonitor must produce that job.
        for group in source_rule_groups():
            for rule in group["rules"]:
                for used in re.findall(r'\bup\{[^}]*job="([^"]+)"', rule["expr"]):
                    assert used == job, rule.get("alert")
    assert one(rendered["all-features"], "ServiceMonitor")["metadata"]["labels"]["release"] == (
        "kube-prometheus-stack"
    )


def _check_rule_groups(groups: list[Doc]) -> None:
    names = [g["name"] for g in groups]
    assert len(names) == len(set(names)), "duplicate rule group names"
    for group in groups:
        assert set(group) <= GROUP_KEYS, group.keys()
        for rule in group["rules"]:
            assert set(rule) <= RULE_KEYS, rule.keys()
            assert ("alert" in rule) != ("record" in rule)
            assert isinstance(rule["expr"], str) and rule["expr"].strip()
            assert DURATION.match(str(rule.get("for", "0s")))
            for mapping in ("labels", "annotations"):
                assert all(isinstance(v, str) for v in rule.get(mapping, {}).values()), rule.get(mapping)


def test_prometheus_rule_equals_alert_files(rendered: dict[str, list[Doc]]) -> None:
    expected = source_rule_groups()
    assert not by_kind(rendered["default"], "PrometheusRule")
    docs = rendered["observability"]
    if not expected:
        assert not by_kind(docs, "PrometheusRule")
        return
    rule = one(docs, "PrometheusRule")
    _check_metadata(rule, "PrometheusRule")
    assert set(rule["spec"]) == {"groups"}
    assert rule["spec"]["groups"] == expected
    _check_rule_groups(rule["spec"]["groups"])


def test_prometheus_rule_runbook_base_url(rendered: dict[str, list[Doc]]) -> None:
    expected = source_rule_groups()
    if not expected:
        assert not by_kind(rendered["all-features"], "PrometheusRule")
        return
    base = VALUE_SETS["all-features"]["prometheusRule"]["runbookBaseUrl"]
    for group in expected:
        for rule in group["rules"]:
            url = rule.get("annotations", {}).get("runbook_url")
            if url:
                anchor = url.partition("#")[2]
                rule["annotations"]["runbook_url"] = f"{base}#{anchor}" if anchor else base
    rule = one(rendered["all-features"], "PrometheusRule")
    assert rule["spec"]["groups"] == expected
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def _dashboard_maps(docs: list[Doc], label: str = "grafana_dashboard", value: str = "1") -> list[Doc]:
    return [d for d in by_kind(docs, "ConfigMap") if d["metadata"]["labels"].get(label) == value]


def test_dashboard_configmaps_equal_dashboard_files(rendered: dict[str, list[Doc]]) -> None:
    sources = source_files("dashboards", "*.json")
    assert not _dashboard_maps(rendered["default"])
    maps = _dashboard_maps(rendered["observability"])
    assert len(maps) == len(sources)
    names = [m["metadata"]["name"] for m in maps]
    assert len(set(names)) == len(names)
    data = {key: text for m in maps for key, text in m["data"].items()}
    for source in sources:
        assert source.name in data, f"no ConfigMap carries {source.name}"
        assert json.loads(data[source.name]) == json.loads(source.read_text()), source.name
        assert len(data[source.name].encode()) < 1024 * 1024, "a ConfigMap holds at most 1 MiB"
    for m in _dashboard_maps(rendered["all-features"]):
        assert m["metadata"]["annotations"] == {"grafana_folder": "AWS"}


def test_chart_templates_with_several_files(tmp_path: Path) -> None:
    """Independent of the real alerts/dashboards: two rule files concatenate in name order, one
    ConfigMap per dashboard, the sidecar label is configurable."""
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    for sub in ("alerts", "dashboards"):
        shutil.rmtree(chart / "files" / sub, ignore_errors=True)
        (chart / "files" / sub).mkdir(parents=True)
    groups_b = [{"name": "b", "rules": [{"record": "job:up:sum", "expr": "sum by (job) (up)"}]}]
    groups_a = [
        {
            "name": "a",
            "rules": [
                {
                    "alert": "A",
                    "expr": 'up{job="x"} == 0\n',
                    "for": "5m",
                    "labels": {"severity": "warning"},
                    "annotations": {"summary": "{{ $labels.instance }} down", "runbook_url": "https://x/r#a"},
                }
            ],
        }
    ]
    (chart / "files" / "alerts" / "b.rules.yml").write_text(yaml.safe_dump({"groups": groups_b}))
    (chart / "files" / "alerts" / "a.rules.yml").write_text(yaml.safe_dump({"groups": groups_a}))
    (chart / "files" / "alerts" / "ignored.yml").write_text("not: [a rule file\n")
    dashboards = {"Overview.json": {"title": "Overview", "panels": []}, "gaps_detail.json": {"uid": "g"}}
    for file_name, body in dashboards.items():
        (chart / "files" / "dashboards" / file_name).write_text(json.dumps(body, indent=2))
    values = {
        "prometheusRule": {"enabled": True},
        "dashboards": {"enabled": True, "label": "sidecar_dashboard", "labelValue": "yes"},
    }
    docs = render(values, tmp_path / "v", chart=chart)
    assert one(docs, "PrometheusRule")["spec"]["groups"] == groups_a + groups_b
    maps = _dashboard_maps(docs, "sidecar_dashboard", "yes")
    assert {m["metadata"]["name"] for m in maps} == {
        f"{FULLNAME}-dashboard-overview",
        f"{FULLNAME}-dashboard-gaps-detail",
    }
    got = {k: json.loads(v) for m in maps for k, v in m["data"].items()}
    assert got == dashboards


# --------------------------------------------------------------------------------------------- chart copies


def test_chart_copies_match_alerts_and_dashboards() -> None:
    """helm/sg-churn-exporter/files holds byte-identical copies (scripts/sync-chart-files.py)."""
    for source_dir, pattern in (("alerts", "*.rules.yml"), ("dashboards", "*.json")):
        sources = {p.name: p for p in source_files(source_dir, pattern)}
        copies = {p.name: p for p in sorted((CHART / "files" / source_dir).glob(pattern))}
        for file_name, source in sources.items():
            assert file_name in copies, (
                f"{source_dir}/{file_name} has no chart copy: run scripts/sync-chart-files.py"
            )
            assert copies[file_name].read_bytes() == source.read_bytes(), (
                f"chart copy of {source_dir}/{file_name} is stale: run scripts/sync-chart-files.py"
            )
        orphans = set(copies) - set(sources)
        assert not orphans, f"chart copies without a source: {orphans}"


def test_sync_script_detects_and_repairs(tmp_path: Path) -> None:
    script = ROOT / "scripts" / "sync-chart-files.py"
    (tmp_path / "alerts").mkdir()
    (tmp_path / "dashboards").mkdir()
    (tmp_path / "alerts" / "x.rules.yml").write_text("groups: []\n")
    (tmp_path / "dashboards" / "d.json").write_text("{}\n")
    orphan = tmp_path / "helm" / "sg-churn-exporter" / "files" / "dashboards" / "old.json"
    orphan.parent.mkdir(parents=True)
    orphan.write_text("{}\n")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, str(script), "--root", str(tmp_path), *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60)

    stale = run("--check")
    assert stale.returncode == 1
    assert "missing: helm/sg-churn-exporter/files/alerts/x.rules.yml" in stale.stderr
    assert "orphan: helm/sg-churn-exporter/files/dashboards/old.json" in stale.stderr
    assert run().returncode == 0
    assert run("--check").returncode == 0
    assert not orphan.exists()
    (tmp_path / "alerts" / "x.rules.yml").write_text("groups: [{name: g, rules: []}]\n")
    assert "stale:" in run("--check").stderr


# --------------------------------------------------------------------------------------------- NOTES


def _render_notes(values: dict[str, Any], tmp_path: Path) -> str:
    """helm template skips NOTES.txt (helm install needs a cluster): render it through tpl in a copy."""
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    shutil.copyfile(chart / "templates" / "NOTES.txt", chart / "files" / "NOTES.txt")
    (chart / "templates" / "zz-notes.yaml").write_text(
        'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: {{ tpl (.Files.Get "files/NOTES.txt") . | toJson }}\n'
    )
    proc = template(values, tmp_path / "v", chart=chart, extra=["--show-only", "templates/zz-notes.yaml"])
    notes: str = docs_of(proc.stdout)[0]["data"]["notes"]
    return notes


def test_notes_explain_access_and_iam(tmp_path: Path) -> None:
    notes = _render_notes({}, tmp_path / "default")
    assert f"port-forward svc/{FULLNAME} 9877:9877" in notes
    assert "config.targets is empty, so the exporter watches the pod's own region" in notes
    assert "release=kube-prometheus-stack" in notes
    assert "http://127.0.0.1:9877/metrics" in notes and "http://127.0.0.1:9877/ " in notes
    assert "docs/iam-policy.json" in notes
    assert "irsa.roleArn is empty" in notes and "config.cluster_name is empty" in notes
    notes = _render_notes(VALUE_SETS["all-features"], tmp_path / "all")
    assert "arn:aws:iam::123456789012:role/sg-churn-exporter" in notes
    assert "https://127.0.0.1:9877/metrics" in notes and "3 shards" in notes
    assert "is empty" not in notes


def test_an_image_is_required_with_a_clear_message(tmp_path: Path) -> None:
    for values in ({}, {"image": {"repository": ""}}):
        proc = template(values, tmp_path / "v", check=False, image=None)
        assert proc.returncode != 0
        assert "image.repository is required: build the image from the Dockerfile, push it" in proc.stderr
        assert "Build and push the image" in proc.stderr
    # helm lint reports a missing `required` value but does not fail on it (helm's lint mode).
    lint = run_helm(["lint", "--strict", str(CHART)], check=False)
    assert "image.repository is required" in lint.stdout + lint.stderr
    readme = (ROOT / "README.md").read_text()
    assert "### Build and push the image" in readme and "--set image.repository=" in readme
    container = pod_spec(render({"image": {"tag": "9.9.9"}}, tmp_path / "ok"))["containers"][0]
    assert container["image"] == f"{IMAGE}:9.9.9"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            {},
            {
                "ServiceMonitor": "kube-prometheus-stack",
                "PrometheusRule": "kube-prometheus-stack",
                "ConfigMap": "kube-prometheus-stack",
            },
        ),
        (
            {"prometheusRelease": "kps"},
            {"ServiceMonitor": "kps", "PrometheusRule": "kps", "ConfigMap": "kps"},
        ),
        (
            {"prometheusRelease": "kps", "serviceMonitor": {"labels": {"release": "mine"}}},
            {"ServiceMonitor": "mine", "PrometheusRule": "kps", "ConfigMap": "kps"},
        ),
        ({"prometheusRelease": ""}, {"ServiceMonitor": None, "PrometheusRule": None, "ConfigMap": None}),
    ],
)
def test_kube_prometheus_stack_release_label(
    values: dict[str, Any], expected: dict[str, str | None], tmp_path: Path
) -> None:
    """kube-prometheus-stack selects ServiceMonitors and PrometheusRules by release=<its release>."""
    enabled = {"enabled": True}
    docs = render(
        {
            **values,
            "serviceMonitor": {**values.get("serviceMonitor", {}), **enabled},
            "prometheusRule": enabled,
            "dashboards": enabled,
        },
        tmp_path,
    )
    for kind, release in expected.items():
        objects = by_kind(docs, kind)
        if kind == "ConfigMap":
            objects = [d for d in objects if "-dashboard-" in d["metadata"]["name"]]
            assert all(d["metadata"]["labels"]["grafana_dashboard"] == "1" for d in objects)
        assert objects
        for doc in objects:
            assert doc["metadata"]["labels"].get("release") == release, (kind, doc["metadata"]["labels"])
    values_doc = (CHART / "values.yaml").read_text()
    assert "serviceMonitorSelector" in values_doc and "ruleSelector" in values_doc


def test_notes_and_operations_agree_on_what_a_restart_re_reads(tmp_path: Path) -> None:
    operations = " ".join((ROOT / "docs" / "operations.md").read_text().split())
    # docs/operations.md: a fresh start reads LookupEvents from start_lookback + overlap back; a
    # restart on a kept file reads the stored records of the retention window.
    assert "now - cloudtrail.start_lookback_seconds - cloudtrail.overlap_seconds" in operations
    assert "reads the records of the last `cloudtrail.retention_seconds`" in operations
    notes = " ".join(_render_notes({}, tmp_path / "default").split())
    assert "cloudtrail.start_lookback_seconds + cloudtrail.overlap_seconds back (4500 s here)" in notes
    assert "counters restart from 0" in notes and "retention_seconds" not in notes
    custom = {"config": {"cloudtrail": {"start_lookback_seconds": 600, "overlap_seconds": 300}}}
    notes = " ".join(_render_notes(custom, tmp_path / "custom").split())
    assert "(900 s here)" in notes
    notes = " ".join(_render_notes(VALUE_SETS["persistence"], tmp_path / "kept").split())
    assert "re-reads the stored records of the last cloudtrail.retention_seconds (86400 s here)" in notes
    assert "counters continue" in notes and "fresh start" not in notes


# --------------------------------------------------------------------------------------------- README


def _readme_block(language: str, containing: str) -> str:
    readme = (ROOT / "README.md").read_text()
    blocks = [b for b in re.findall(rf"```{language}\n(.*?)```", readme, flags=re.DOTALL) if containing in b]
    assert len(blocks) == 1, f"expected one ```{language} block with {containing!r}, got {len(blocks)}"
    return blocks[0]


def test_readme_install_renders_and_its_irsa_setup_names_the_charts_service_account(tmp_path: Path) -> None:
    """The README's helm install, trust policy, eksctl and Terraform snippets agree with the chart."""
    import shlex

    command = shlex.split(_readme_block("sh", "helm install").replace("\\\n", " "))
    assert command[:4] == ["helm", "install", "sg-churn-exporter", "helm/sg-churn-exporter"]
    flags = command[4:]
    namespace = flags[flags.index("--namespace") + 1]
    sets = dict(flags[i + 1].split("=", 1) for i, flag in enumerate(flags) if flag == "--set")
    proc = run_helm(
        ["template", "sg-churn-exporter", str(CHART), "--kube-version", KUBE_VERSION, *flags[:]],
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    docs = docs_of(proc.stdout)
    sa = one(docs, "ServiceAccount")
    subject = f"system:serviceaccount:{sa['metadata']['namespace']}:{sa['metadata']['name']}"
    assert sa["metadata"]["namespace"] == namespace
    role_arn = sets["irsa.roleArn"]
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == role_arn
    assert pod_spec(docs)["containers"][0]["image"].startswith(sets["image.repository"] + ":")
    assert one(docs, "ServiceMonitor")["metadata"]["labels"]["release"] == sets["prometheusRelease"]

    trust = json.loads(_readme_block("json", "AssumeRoleWithWebIdentity"))
    [statement] = trust["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    provider = statement["Principal"]["Federated"].split(":oidc-provider/", 1)[1]
    conditions = statement["Condition"]["StringEquals"]
    assert conditions == {f"{provider}:sub": subject, f"{provider}:aud": "sts.amazonaws.com"}
    account = role_arn.split(":")[4]
    assert statement["Principal"]["Federated"].startswith(f"arn:aws:iam::{account}:oidc-provider/")

    eksctl = shlex.split(_readme_block("sh", "eksctl create iamserviceaccount").replace("\\\n", " "))
    options = {eksctl[i]: eksctl[i + 1] for i in range(len(eksctl) - 1) if eksctl[i].startswith("--")}
    assert (options["--namespace"], options["--name"]) == (namespace, sa["metadata"]["name"])
    assert role_arn.endswith(f":role/{options['--role-name']}") and "--role-only" in eksctl

    terraform = _readme_block("hcl", "aws_iam_role")
    assert f'"${{local.oidc}}:sub" = "{subject}"' in terraform
    assert '"${local.oidc}:aud" = "sts.amazonaws.com"' in terraform
    assert f'name = "{options["--role-name"]}"' in terraform and "iam-policy.json" in terraform


def test_the_page_links_runbooks_where_the_alerts_do(tmp_path: Path) -> None:
    base = "https://wiki.example.com/runbooks"
    config = rendered_config(render({"prometheusRule": {"runbookBaseUrl": base}}, tmp_path / "a"))
    assert config["web"]["runbook_base_url"] == base
    own = {
        "prometheusRule": {"runbookBaseUrl": base},
        "config": {"web": {"runbook_base_url": "https://x.example/r"}},
    }
    assert rendered_config(render(own, tmp_path / "b"))["web"]["runbook_base_url"] == "https://x.example/r"
    assert "runbook_base_url" not in (rendered_config(render({}, tmp_path / "c")).get("web") or {})


# --------------------------------------------------------------------------------------------- runbooks


def test_the_runbooks_kubectl_commands_find_the_exporter_as_the_readme_installs_it(tmp_path: Path) -> None:
    """Release and namespace as README's `helm install` (sg-churn-exporter in monitoring), with and
    without sharding (a StatefulSet then, not a Deployment): every object the runbooks' kubectl
    commands name in that namespace exists, and every label selector matches the exporter's pods."""
    runbooks = (ROOT / "docs" / "runbooks.md").read_text(encoding="utf-8")
    commands = [line for line in runbooks.splitlines() if line.startswith("kubectl -n monitoring ")]
    assert commands
    for name, values in (("default", {}), ("sharded", VALUE_SETS["sharded"])):
        values_file = tmp_path / f"{name}.yaml"
        values_file.write_text(yaml.safe_dump(values))
        args = ["template", "sg-churn-exporter", str(CHART), "--namespace", "monitoring"]
        args += [
            "--kube-version",
            KUBE_VERSION,
            "--set",
            f"image.repository={IMAGE}",
            "--values",
            str(values_file),
        ]
        docs = docs_of(run_helm(args).stdout)
        objects = {(d["kind"], d["metadata"]["name"]) for d in docs}
        pod_labels = workload(docs)["spec"]["template"]["metadata"]["labels"]
        kinds = {
            "deploy": "Deployment",
            "deployment": "Deployment",
            "sts": "StatefulSet",
            "sa": "ServiceAccount",
        }
        for command in commands:
            for key, value in re.findall(r"-l (\S+?)=(\S+)", command):
                assert pod_labels.get(key) == value, f"{name}: {command}"
            for kind, obj in re.findall(r"\b(deploy|deployment|sts|sa)[/ ]([a-z0-9-]+)", command):
                assert (kinds[kind], obj) in objects, f"{name}: no {kinds[kind]} {obj}: {command}"
