"""The required flows per setup (issue 12), through the pure engine: family, SG-mode CIDR rules,
targets outside the VPC, prefix lists, and the inventory file carrying them."""

from __future__ import annotations

import dataclasses

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from exporter.engine.explain import explain_target_group
from exporter.engine.flows import AdmissionChecker, expand_prefix_lists, flow_status, requirements
from exporter.engine.gaps import analyze
from exporter.engine.inventory import Inventory, NetworkInterface, PrefixList, Subnet, Target, Vpc
from exporter.engine.rules import Flow, Rule, Source, admits
from exporter.engine.timeline import RuleState
from tests.engine_world import NODE_PORT, T0, TG_ARN, incident_inventory, revoke, seconds

SUBNET6 = ("2600:1f18:aa00:1::/64", "2600:1f18:aa00:2::/64")


def dualstack(inventory: Inventory, *, family: str, scheme: str = "internet-facing") -> Inventory:
    """The incident world on a dual-stack NLB whose target group has the given IpAddressType."""
    lb = next(iter(inventory.load_balancers.values()))
    subnets = tuple(dataclasses.replace(s, ipv6_cidr=v6) for s, v6 in zip(lb.subnets, SUBNET6, strict=True))
    lb = dataclasses.replace(lb, ip_address_type="dualstack", subnets=subnets, scheme=scheme)
    tg = dataclasses.replace(inventory.target_groups[TG_ARN], ip_address_type=family)
    vpcs = {"vpc-1": Vpc("vpc-1", ("10.0.0.0/16",), ("2600:1f18:aa00::/56",))}
    return dataclasses.replace(inventory, load_balancers={lb.arn: lb}, target_groups={tg.arn: tg}, vpcs=vpcs)


def sources(inventory: Inventory, kind: str) -> set[str]:
    tg = inventory.target_groups[TG_ARN]
    lb = next(iter(inventory.load_balancers.values()))
    req = requirements(inventory, tg, lb, tg.attributes)[kind]  # type: ignore[index]
    return {src.value for alt in req.alternatives for _proto, src in alt}


def test_a_dualstack_nlb_talks_to_an_ipv4_target_group_over_ipv4_only() -> None:
    inventory = dualstack(incident_inventory(), family="ipv4")
    assert sources(inventory, "traffic") == {"0.0.0.0/0"}
    assert sources(inventory, "health_check") == {"10.0.1.0/24", "10.0.2.0/24"}
    assert analyze(inventory, []).gaps == []  # 0.0.0.0/0 on the NodePort admits it all


def test_an_ipv6_target_group_needs_ipv6_sources_only() -> None:
    world6 = Rule("tcp", NODE_PORT, NODE_PORT, Source.cidr("::/0"))
    inventory = dualstack(incident_inventory(node_rules=(world6,)), family="ipv6")
    assert sources(inventory, "traffic") == {"::/0"}
    assert sources(inventory, "health_check") == set(SUBNET6)
    assert analyze(inventory, []).gaps == []
    internal = dualstack(incident_inventory(node_rules=(world6,)), family="ipv6", scheme="internal")
    assert sources(internal, "traffic") == {"2600:1f18:aa00::/56"}  # the VPC's IPv6 CIDRs
    unpreserved = dualstack(incident_inventory(preserve="false", node_rules=(world6,)), family="ipv6")
    assert sources(unpreserved, "traffic") == set(SUBNET6)


def test_sg_mode_offers_the_reference_and_the_cidr_alternatives() -> None:
    inventory = incident_inventory(lb_security_groups=("sg-b", "sg-a"))
    tg = inventory.target_groups[TG_ARN]
    lb = next(iter(inventory.load_balancers.values()))
    req = requirements(inventory, tg, lb, tg.attributes)
    assert [[src.value for _p, src in alt] for alt in req["traffic"].alternatives] == [
        ["sg-a"],
        ["sg-b"],
        ["0.0.0.0/0"],
    ]
    unpreserved = requirements(inventory, tg, lb, {"preserve_client_ip.enabled": "false"})
    assert [src.value for _p, src in unpreserved["traffic"].alternatives[-1]] == [
        "10.0.1.0/24",
        "10.0.2.0/24",
    ]


def test_a_target_outside_the_vpc_is_not_evaluable_and_never_a_gap() -> None:
    base = incident_inventory(target_type="ip", preserve="false", node_rules=())
    tg = base.target_groups[TG_ARN]
    hybrid = Target("192.168.100.10", NODE_PORT, None, "healthy", "all")
    inventory = dataclasses.replace(base, target_groups={TG_ARN: dataclasses.replace(tg, targets=(hybrid,))})
    lb = next(iter(inventory.load_balancers.values()))
    checker = AdmissionChecker(inventory, RuleState.from_inventory(inventory).rules_by_group())
    status = flow_status(checker, inventory, inventory.target_groups[TG_ARN], lb, {})
    for kind in ("traffic", "health_check"):
        s = status[kind]  # type: ignore[index]
        assert (s.targets, s.admitted, s.not_evaluable, s.fully_admitted, s.ratio) == (1, 0, 1, True, 1.0)
        assert s.unadmitted_by_reason == {} and s.not_evaluable_by_reason == {"target_outside_vpc": 1}
    assert analyze(inventory, []).gaps == []
    # Beside it, an in-VPC target that is not admitted is still a gap, and the ratio counts it alone.
    mixed = dataclasses.replace(
        inventory,
        target_groups={TG_ARN: dataclasses.replace(tg, targets=(hybrid, tg.targets[0]))},
    )
    assert {g.flow for g in analyze(mixed, []).gaps} == {"traffic", "health_check"}


def test_a_pod_outside_the_vpc_registered_with_its_zone_is_not_evaluable_either() -> None:
    """LBC v2.17.0+ (still v3.5.0, pkg/targetgroupbinding/resource_manager.go registerPodEndpoints)
    registers a pod outside the VPC's CIDRs with its node's zone when AWS refuses "all": no ENI
    exists for it, so it is not evaluable, not a gap that never closes. An address inside the VPC
    with no ENI found is still a gap (target_eni_not_found), and without the VPC's CIDRs only the
    zone "all" says outside."""
    base = incident_inventory(target_type="ip", preserve="false", node_rules=())
    tg = base.target_groups[TG_ARN]
    zoned = Target("192.168.100.11", NODE_PORT, None, "healthy", "us-east-1a")
    zoned6 = Target("2600:1f18:bb00::11", NODE_PORT, None, "healthy", "us-east-1b")
    lost = Target("10.0.9.9", NODE_PORT, None, "healthy", "us-east-1a")  # in the VPC, no ENI known
    inventory = dataclasses.replace(
        base,
        target_groups={TG_ARN: dataclasses.replace(tg, targets=(zoned, zoned6, lost))},
        vpcs={"vpc-1": Vpc("vpc-1", ("10.0.0.0/16",), ("2600:1f18:aa00::/56",))},
    )
    lb = next(iter(inventory.load_balancers.values()))
    checker = AdmissionChecker(inventory, RuleState.from_inventory(inventory).rules_by_group())
    for kind, s in flow_status(checker, inventory, inventory.target_groups[TG_ARN], lb, {}).items():
        assert (kind, s.targets, s.admitted, s.not_evaluable_by_reason, s.unadmitted_by_reason) == (
            kind,
            3,
            0,
            {"target_outside_vpc": 2},
            {"target_eni_not_found": 1},
        )
    assert [
        (t.target_id, t.not_evaluable)
        for t in explain_target_group(inventory, TG_ARN, RuleState.from_inventory(inventory))
        .flow("traffic")
        .targets
    ] == [
        ("192.168.100.11", "target_outside_vpc"),
        ("2600:1f18:bb00::11", "target_outside_vpc"),
        ("10.0.9.9", None),
    ]
    unknown_vpc = dataclasses.replace(inventory, vpcs={})
    checker = AdmissionChecker(unknown_vpc, RuleState.from_inventory(unknown_vpc).rules_by_group())
    status = flow_status(checker, unknown_vpc, unknown_vpc.target_groups[TG_ARN], lb, {})
    assert status["traffic"].not_evaluable_by_reason == {}
    assert status["traffic"].unadmitted_by_reason == {"target_eni_not_found": 3}


def test_what_v3_authorizes_for_a_legacy_quic_target_group_leaves_its_health_checks_out() -> None:
    """LBC v3.5.0 pkg/service/model_build_target_group.go, QUIC on an NLB without groups, health
    check on the traffic port, no source ranges: udp from 0.0.0.0/0 and no subnet rule
    (buildHealthCheckSourceCIDRs exempts only UDP). NLB health checks are tcp from the subnets, so
    the health_check flow is not admitted (a real gap, docs/flows.md), the traffic flow is; the
    subnet rule the Gateway API path adds for QUIC closes it."""
    udp_world = Rule("udp", NODE_PORT, NODE_PORT, Source.cidr("0.0.0.0/0"))
    base = incident_inventory(preserve=None, node_rules=(udp_world,))
    quic = dataclasses.replace(base.target_groups[TG_ARN], protocol="QUIC")
    inventory = dataclasses.replace(base, target_groups={TG_ARN: quic})
    lb = next(iter(inventory.load_balancers.values()))
    checker = AdmissionChecker(inventory, RuleState.from_inventory(inventory).rules_by_group())
    status = flow_status(checker, inventory, quic, lb, quic.attributes)
    assert status["traffic"].fully_admitted
    assert status["health_check"].unadmitted_by_reason == {"no_rule_for_port": 2}
    subnet_rules = tuple(
        Rule("tcp", NODE_PORT, NODE_PORT, Source.cidr(c)) for c in ("10.0.1.0/24", "10.0.2.0/24")
    )
    fixed = dataclasses.replace(
        inventory,
        security_groups={
            "sg-node": dataclasses.replace(
                inventory.security_groups["sg-node"], rules=(udp_world, *subnet_rules)
            )
        },
    )
    checker = AdmissionChecker(fixed, RuleState.from_inventory(fixed).rules_by_group())
    assert all(s.fully_admitted for s in flow_status(checker, fixed, quic, lb, quic.attributes).values())


def test_a_prefix_list_rule_admits_its_entries_and_its_revoke_is_a_gap() -> None:
    listed = Rule("tcp", NODE_PORT, NODE_PORT, Source("prefix_list", "pl-subnets"), "sgr-pl")
    base = incident_inventory(preserve="false", node_rules=(listed,))
    assert {g.flow for g in analyze(base, []).gaps} == {"traffic", "health_check"}  # entries unknown
    pl = PrefixList("pl-subnets", "nlb-subnets", "IPv4", 10, ("10.0.1.0/24", "10.0.2.0/24"))
    inventory = dataclasses.replace(base, prefix_lists={pl.prefix_list_id: pl})
    assert analyze(inventory, []).gaps == []
    changes = [
        revoke("e1", T0 + seconds(10), listed),
        msgspec.structs.replace(revoke("e2", T0 + seconds(30), listed), action="authorize"),
    ]
    found = analyze(dataclasses.replace(inventory, taken_at=T0 + seconds(60)), changes).gaps
    assert [(g.flow, g.duration_seconds, g.cause) for g in found] == [
        ("health_check", 20.0, "revoke_before_authorize"),
        ("traffic", 20.0, "revoke_before_authorize"),
    ]


_cidrs = st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(8, 32)).map(
    lambda t: str(Source.cidr(f"10.{t[0]}.{t[1]}.0/{t[2]}"))
)


@given(entries=st.lists(_cidrs, max_size=5), wanted=_cidrs, port=st.sampled_from([80, 443]))
def test_a_prefix_list_reference_admits_exactly_what_its_entries_would(
    entries: list[str], wanted: str, port: int
) -> None:
    listed = Rule("tcp", 80, 80, Source("prefix_list", "pl-x"))
    expanded = expand_prefix_lists([listed], {"pl-x": PrefixList("pl-x", cidrs=tuple(entries))})
    flow = Flow("tcp", port, Source.cidr(wanted))
    as_cidrs = [Rule("tcp", 80, 80, Source.cidr(c)) for c in entries]
    assert admits(expanded, flow) == admits(as_cidrs, flow)


def test_the_inventory_file_keeps_family_zones_addresses_prefixes_and_prefix_lists() -> None:
    inventory = dualstack(incident_inventory(), family="ipv6")
    tg = inventory.target_groups[TG_ARN]
    eni = NetworkInterface(
        "eni-p",
        ("sg-node",),
        ("10.0.2.10", "10.0.2.11"),
        None,
        "pod eni",
        ("2600:1f18:aa00:2::10",),
        ("10.0.2.32/28",),
        ("2600:1f18:aa00:2:1::/80",),
        "vpc-1",
    )
    inventory = dataclasses.replace(
        inventory,
        target_groups={
            TG_ARN: dataclasses.replace(
                tg, targets=(*tg.targets, Target("192.168.1.1", 80, None, "healthy", "all"))
            )
        },
        network_interfaces={**inventory.network_interfaces, "eni-p": eni},
        prefix_lists={"pl-1": PrefixList("pl-1", "office", "IPv4", 5, ("192.0.2.0/24",))},
    )
    lb = next(iter(inventory.load_balancers.values()))
    assert lb.subnets[0] == Subnet("subnet-0", "10.0.1.0/24", SUBNET6[0])
    assert Inventory.from_dict(inventory.to_dict()) == inventory
