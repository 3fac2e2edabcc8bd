"""Property: the inventory overlay's undo is the inverse of its apply.

Any sequence of health-check, ENI group, load balancer group and subnet, and target changes
applied forward from an inventory A gives an inventory B; undoing the same changes from B, each
with the old value it replaced, gives A back (targets, ENI groups, health-check port, load
balancer groups and subnets).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.engine.changes import (
    Change,
    HealthCheckChange,
    InterfaceGroupsChange,
    LoadBalancerGroupsChange,
    LoadBalancerSubnetsChange,
    TargetsChange,
)
from exporter.engine.inventory import Inventory, LoadBalancer, NetworkInterface, SecurityGroup, Subnet, Target
from exporter.engine.overlay import InventoryOverlay, PriorKey
from tests.engine_world import LB_ARN, NODE_PORT, T0, TG_ARN, incident_inventory, meta, seconds

GROUPS = ("sg-node", "sg-a", "sg-b")
ENIS = ("eni-1", "eni-2", "eni-3")
INSTANCES = ("i-1", "i-2", "i-3")
SUBNET_IDS = ("subnet-0", "subnet-1", "subnet-2")
OTHER = TG_ARN + "-other"


def anchor() -> Inventory:
    world = incident_inventory()
    enis = dict(world.network_interfaces)
    enis["eni-3"] = NetworkInterface("eni-3", ("sg-node",), ("10.0.3.10",), "i-3")
    groups = dict(world.security_groups)
    groups.update({g: SecurityGroup(g, g, "vpc-1") for g in ("sg-a", "sg-b")})
    tg = world.target_groups[TG_ARN]
    # every instance is a target of another group too, so the inventory knows each one's ENI
    other = replace(
        tg,
        arn=OTHER,
        name="other",
        load_balancer_arns=(),
        targets=tuple(Target(i, NODE_PORT, f"eni-{i[-1]}") for i in INSTANCES),
    )
    # a subnet's CIDR is known only when the inventory described it (on some load balancer)
    described = (*world.load_balancers[LB_ARN].subnets, Subnet("subnet-2", "10.0.3.0/24"))
    spare = LoadBalancer("lb-spare", "spare", "network", "internal", "vpc-1", described)
    return replace(
        world,
        network_interfaces=enis,
        security_groups=groups,
        target_groups={TG_ARN: tg, OTHER: other},
        load_balancers={**world.load_balancers, spare.arn: spare},
    )


def _change(draw: Any, n: int) -> Change:
    kind = draw(st.sampled_from(("hc", "eni", "lbg", "lbs", "reg", "dereg")))
    m = meta(f"e{n}", T0 + seconds(n), kind)
    subset = st.lists(st.sampled_from(GROUPS), min_size=1, max_size=3, unique=True).map(tuple)
    if kind == "hc":
        return HealthCheckChange(m, TG_ARN, draw(st.sampled_from(("traffic-port", "32000", "32001"))), None)
    if kind == "eni":
        return InterfaceGroupsChange(m, draw(st.sampled_from(ENIS)), draw(subset))
    if kind == "lbg":
        return LoadBalancerGroupsChange(
            m, LB_ARN, draw(st.lists(st.sampled_from(GROUPS), max_size=2, unique=True).map(tuple))
        )
    if kind == "lbs":
        ids = draw(st.lists(st.sampled_from(SUBNET_IDS), min_size=1, max_size=3, unique=True).map(tuple))
        return LoadBalancerSubnetsChange(m, LB_ARN, ids)
    action = "register" if kind == "reg" else "deregister"
    return TargetsChange(m, TG_ARN, action, ((draw(st.sampled_from(INSTANCES)), None),))  # type: ignore[arg-type]


@st.composite
def change_lists(draw: Any) -> list[Change]:
    return [_change(draw, n) for n in range(draw(st.integers(0, 12)))]


def _registered(overlay: InventoryOverlay) -> set[str]:
    return {t.target_id for t in overlay.view().inventory.target_groups[TG_ARN].targets}


def _old_values(overlay: InventoryOverlay, change: Change) -> dict[PriorKey, object]:
    now = overlay.view().inventory
    if isinstance(change, HealthCheckChange):
        return {("hc_port", TG_ARN): now.target_groups[TG_ARN].health_check_port}
    if isinstance(change, InterfaceGroupsChange):
        return {("eni_groups", change.eni_id): now.network_interfaces[change.eni_id].security_group_ids}
    if isinstance(change, LoadBalancerGroupsChange):
        return {("lb_groups", LB_ARN): now.load_balancers[LB_ARN].security_groups}
    if isinstance(change, LoadBalancerSubnetsChange):
        return {("lb_subnets", LB_ARN): tuple(s.subnet_id for s in now.load_balancers[LB_ARN].subnets)}
    return {}


def _parts(inventory: Inventory) -> object:
    tg = inventory.target_groups[TG_ARN]
    lb = inventory.load_balancers[LB_ARN]
    return (
        sorted((t.target_id, t.port, t.eni_id) for t in tg.targets),
        tg.health_check_port,
        {e.eni_id: e.security_group_ids for e in inventory.network_interfaces.values()},
        lb.security_groups,
        tuple(s.subnet_id for s in lb.subnets),
    )


@settings(max_examples=300, deadline=None)
@given(change_lists())
def test_undo_with_the_old_values_is_the_inverse_of_apply(changes: list[Change]) -> None:
    start = anchor()
    forward = InventoryOverlay(start)
    applied: list[tuple[Change, dict[PriorKey, object]]] = []
    for change in changes:
        if isinstance(change, TargetsChange):
            present = change.targets[0][0] in _registered(forward)
            if present == (change.action == "register"):
                continue  # registering a registered target changes nothing: no record says so to undo
        applied.append((change, _old_values(forward, change)))
        forward.apply(change)
        forward.view()  # views built step by step (incrementally) ...
    at_once = InventoryOverlay(start)
    for change, _old in applied:
        at_once.apply(change)
    assert _parts(forward.view().inventory) == _parts(at_once.view().inventory)  # ... equal one built once
    assert forward.view().unknown == at_once.view().unknown
    later = replace(forward.view().inventory, taken_at=T0 + seconds(3600))
    backward = InventoryOverlay(later)
    for change, old in reversed(applied):
        backward.undo(change, old)
    assert _parts(backward.view().inventory) == _parts(start)
    assert backward.view().unknown == {} and backward.view().partial == frozenset()
