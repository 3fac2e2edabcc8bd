"""Hostile Kubernetes objects: one odd Service or TargetGroupBinding is skipped (counted in
ClusterView.skipped), never an exception that loses the whole read of the cluster."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from exporter.engine.bindings import bind_services
from exporter.engine.cluster import ClusterView, binding_from_dict, service_from_dict
from exporter.engine.timeutil import parse_time
from exporter.sources.kubernetes import load_kube_client, read_cluster
from tests.kube_emulator import KubeEmulator
from tests.test_kubernetes_source import CLUSTER, TG_ARN, WEB_SERVICE, WEB_TGB, lbc_tags, target_group

#: Text where an integer is read: non-ASCII digits (str.isdigit() is true for them, int() refuses
#: them), more digits than int() converts, out of any port's range.
ODD_NUMBERS = ["²", "٣٤", "1" * 5000, "99999999999999999999", " 80 ", "", "-1", "0x50", "8_0"]

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=10)
    | st.sampled_from([*ODD_NUMBERS, "TCP", "all", "10.0.0.0/8", "sg-1", "web", "9999-12-31T23:59:59Z"])
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=20,
)
#: Where a value is planted: each field the parsers read.
_PATHS = [
    ("metadata",),
    ("metadata", "name"),
    ("metadata", "annotations"),
    ("metadata", "managedFields"),
    ("spec", "ports"),
    ("spec", "ports", 0, "port"),
    ("spec", "ports", 0, "nodePort"),
    ("spec", "ports", 0, "targetPort"),
    ("spec", "loadBalancerSourceRanges"),
    ("spec", "type"),
    ("spec", "serviceRef", "port"),
    ("spec", "networking", "ingress"),
    ("spec", "networking", "ingress", 0, "ports", 0, "port"),
    ("spec", "networking", "ingress", 0, "ports", 0, "protocol"),
    ("spec", "networking", "ingress", 0, "from", 0, "ipBlock", "cidr"),
]


def _plant(obj: dict[str, Any], path: tuple[str | int, ...], value: Any) -> None:
    node: Any = obj
    for step in path[:-1]:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            return  # the path is not in this object
    if isinstance(node, dict) or (isinstance(node, list) and isinstance(path[-1], int) and node):
        node[path[-1]] = value


def _with(base: dict[str, Any], plants: list[tuple[tuple[str | int, ...], Any]]) -> dict[str, Any]:
    obj = copy.deepcopy(base)
    for path, value in plants:
        _plant(obj, path, value)
    return obj


_PLANTS = st.lists(st.tuples(st.sampled_from(_PATHS), _VALUES), max_size=3)


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(service_plants=_PLANTS, binding_plants=_PLANTS, anything=_VALUES)
@example(service_plants=[(("spec", "ports", 0, "port"), "²")], binding_plants=[], anything=None)
@example(service_plants=[(("spec", "ports", 0, "nodePort"), "1" * 5000)], binding_plants=[], anything=None)
@example(service_plants=[], binding_plants=[(("spec", "serviceRef", "port"), "٣٤")], anything=None)
@example(
    service_plants=[],
    binding_plants=[(("spec", "networking", "ingress", 0, "ports", 0, "port"), "²")],
    anything=None,
)
def test_any_object_parses_or_is_skipped_and_binding_never_raises(
    service_plants: list[tuple[tuple[str | int, ...], Any]],
    binding_plants: list[tuple[tuple[str | int, ...], Any]],
    anything: Any,
) -> None:
    service = _with(WEB_SERVICE, service_plants)
    binding = _with(WEB_TGB, binding_plants)
    for obj in (service, binding, anything):
        service_from_dict(obj)
        binding_from_dict(obj)
    view = ClusterView(
        services=tuple(s for s in (service_from_dict(service), service_from_dict(anything)) if s),
        bindings=tuple(b for b in (binding_from_dict(binding), binding_from_dict(anything)) if b),
    )
    bound = bind_services({TG_ARN: target_group(**lbc_tags())}, view, CLUSTER)
    assert bound[TG_ARN].service == (view.bindings[0].service_name if view.bindings else "web")


def test_a_port_in_other_digits_is_no_port_and_the_rest_of_the_cluster_still_reads(
    tmp_path: Path,
) -> None:
    odd_service = copy.deepcopy(WEB_SERVICE)
    odd_service["metadata"]["name"] = "odd"
    odd_service["spec"]["ports"] = [{"port": 80, "nodePort": "²", "targetPort": "1" * 5000}]
    odd_binding = copy.deepcopy(WEB_TGB)
    odd_binding["metadata"]["name"] = "odd"
    odd_binding["spec"]["serviceRef"]["port"] = "٣٤"
    odd_binding["spec"]["networking"]["ingress"][0]["ports"] = [{"protocol": "TCP", "port": "²"}]
    with KubeEmulator() as kube:
        for obj in (WEB_SERVICE, odd_service):
            kube.add_service(obj)
        for obj in (WEB_TGB, odd_binding):
            kube.add_tgb(obj)
        client = load_kube_client("true", str(kube.write_kubeconfig(tmp_path / "kubeconfig")), environ={})
        assert client is not None
        view = read_cluster(client)
    by_name = {s.name: s for s in view.services}
    assert set(by_name) == {"web", "odd"}
    (odd_port,) = by_name["odd"].ports
    # no number: a nodePort unknown, a targetPort a name (IntOrString), as the API means them
    assert (odd_port.port, odd_port.node_port, odd_port.target_port) == (80, None, "1" * 5000)
    odd = next(b for b in view.bindings if b.name == "odd")
    assert odd.service_port == "٣٤"
    assert odd.rules("shop") == ()  # a named port is not resolved here: no rule (not all ports)
    web = next(b for b in view.bindings if b.name != "odd")
    assert len(web.rules("shop")) == 1


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_a_managed_fields_time_off_the_calendar_in_utc_is_no_time(moment: str) -> None:
    """An offset that moves the time past year 1 or 9999 in UTC: parse_time raised OverflowError
    (not ValueError), and one such Service failed the whole read of the cluster."""
    service = copy.deepcopy(WEB_SERVICE)
    service["metadata"]["managedFields"] = [
        {"manager": "odd", "operation": "Update", "time": moment},
        {"manager": "kubectl", "operation": "Update", "time": "2026-11-20T12:00:00Z"},
    ]
    parsed = service_from_dict(service)
    assert parsed is not None and parsed.last_change is not None
    assert parsed.last_change.manager == "kubectl"
    with pytest.raises(ValueError):
        parse_time(moment)
