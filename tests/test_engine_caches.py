"""The caches and shortcuts added for speed (benchmarks/) change no answer.

- rules.py: normalize_protocol's fast path, cached CIDR parsing (Source.cidr, Source.network,
  integer spans in `uncovered`), Rule.key cached on the instance;
- flows.py: targets sharing a port and security groups share one admission check;
- timeline.py / records.py: see the tests at the end.
"""

from __future__ import annotations

import dataclasses
import gc
import ipaddress

import msgspec
import pytest

from exporter.engine.changes import Rejection, RuleChange, RuleModification
from exporter.engine.flows import AdmissionChecker, requirements, target_admissions
from exporter.engine.inventory import NetworkInterface, SecurityGroup, Target
from exporter.engine.records import parse_record
from exporter.engine.rules import Flow, Rule, Source, normalize_protocol, uncovered
from exporter.engine.timeline import RuleState
from tests import cloudtrail_samples as samples
from tests.engine_world import LB_ARN, NODE_PORT, T0, TG_ARN, incident_inventory, meta, revoke, tcp


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("tcp", "tcp"),
        ("-1", "-1"),
        ("TCP", "tcp"),
        (" udp ", "udp"),
        (6, "tcp"),
        ("17", "udp"),
        ("all", "-1"),
        ("ALL", "-1"),
        ("58", "icmpv6"),
        ("50", "50"),
        (" Icmp", "icmp"),
    ],
)
def test_normalize_protocol_with_and_without_the_fast_path(given: str | int, expected: str) -> None:
    assert normalize_protocol(given) == expected
    assert Rule(given, 1, 1, Source.group("sg-1")).protocol == expected  # type: ignore[arg-type]
    assert Flow(given, 1, Source.group("sg-1")).protocol == expected  # type: ignore[arg-type]


def test_cidr_parsing_is_cached_but_answers_as_before() -> None:
    assert Source.cidr("10.0.0.5/24") == Source("cidr4", "10.0.0.0/24")
    assert Source.cidr(" 10.0.0.5/24 ") == Source.cidr("10.0.0.5/24")
    assert Source.cidr("2600:1f18::1/56") == Source("cidr6", "2600:1f18::/56")
    for _ in range(2):  # a failure is not cached as a success
        with pytest.raises(ValueError):
            Source.cidr("10.0.0.0/33")
        with pytest.raises(ValueError):
            Source.cidr("sg-0123")
    with pytest.raises((AttributeError, ValueError)):
        Source.cidr(12345)  # type: ignore[arg-type]
    net = Source.cidr("192.168.0.0/16").network
    assert net == ipaddress.ip_network("192.168.0.0/16")
    assert Source.cidr("192.168.0.0/16").network is net
    with pytest.raises(ValueError):
        _ = Source.group("sg-1").network


def test_uncovered_with_cached_spans_and_unnormalized_flow_protocols() -> None:
    rules = [Rule("6", 80, 80, Source.cidr("0.0.0.0/1")), Rule("tcp", 80, 80, Source.cidr("128.0.0.0/2"))]
    assert uncovered(rules, Flow("TCP", 80, Source.cidr("0.0.0.0/0"))) == [
        ipaddress.ip_network("192.0.0.0/2")
    ]
    assert uncovered(rules, Flow("udp", 80, Source.cidr("10.0.0.0/8"))) == [
        ipaddress.ip_network("10.0.0.0/8")
    ]
    assert uncovered(rules, Flow("tcp", 80, Source.cidr("10.1.0.0/16"))) == []


def test_rule_key_is_cached_per_instance_and_fresh_after_replace() -> None:
    rule = Rule("tcp", 80, 80, Source.cidr("10.0.0.0/8"), "sgr-1", "web")
    assert rule.key == ("tcp", 80, 80, Source("cidr4", "10.0.0.0/8"))
    assert rule.key is rule.key
    moved = msgspec.structs.replace(rule, from_port=81, to_port=81)
    assert moved.key == ("tcp", 81, 81, Source("cidr4", "10.0.0.0/8"))
    forged = Rule(
        "tcp", 80, 80, Source.cidr("10.0.0.0/8"), "sgr-1", "web", ("udp", 1, 1, Source.group("sg-x"))
    )
    assert forged.key == rule.key  # derived from the fields, whatever was given
    twin = Rule("TCP", 80, 80, Source.cidr("10.0.0.0/8"), "sgr-1", "web")
    assert twin == rule and hash(twin) == hash(rule)
    assert sorted([moved, rule]) == [rule, moved]
    decoded = msgspec.convert(
        {"protocol": "6", "from_port": 80, "to_port": 80, "source": {"kind": "cidr4", "value": "10.0.0.0/8"}},
        Rule,
    )
    assert decoded.key == rule.key


def test_targets_sharing_a_port_and_groups_share_an_admission_and_others_do_not() -> None:
    base = incident_inventory(node_rules=(tcp(NODE_PORT, "0.0.0.0/0"), tcp(9000, "10.0.0.0/16")))
    closed = SecurityGroup("sg-closed", "closed", "vpc-1", {}, ())
    enis = {
        **base.network_interfaces,
        "eni-3": NetworkInterface("eni-3", ("sg-closed",)),
        "eni-4": NetworkInterface("eni-4", ("sg-gone",)),
    }
    tg = dataclasses.replace(
        base.target_groups[TG_ARN],
        targets=(
            Target("i-1", NODE_PORT, "eni-1"),
            Target("i-2", NODE_PORT, "eni-2"),  # same port and groups as i-1
            Target("i-3", NODE_PORT, "eni-3"),  # same port, other groups
            Target("i-4", NODE_PORT, "eni-4"),  # its only group does not exist
            Target("i-5", NODE_PORT, None),  # no ENI known
            Target("i-6", NODE_PORT, "eni-missing"),
            Target("i-7", 9000, "eni-1"),  # other port
        ),
    )
    inventory = dataclasses.replace(
        base,
        target_groups={TG_ARN: tg},
        network_interfaces=enis,
        security_groups={**base.security_groups, "sg-closed": closed},
    )
    lb = inventory.load_balancers[LB_ARN]
    rules_by_group = {g: list(sg.rules) for g, sg in inventory.security_groups.items()}
    shared = target_admissions(AdmissionChecker(inventory, rules_by_group), inventory, tg, lb, tg.attributes)
    reqs = requirements(inventory, tg, lb, tg.attributes)
    for kind in ("traffic", "health_check"):
        one_by_one = []
        for target in tg.targets:
            port = target.port
            one_by_one.append(
                AdmissionChecker(inventory, rules_by_group).check(target.eni_id, reqs[kind].flows(port))
            )
        assert shared[kind] == one_by_one
    traffic = shared["traffic"]
    assert [a.admitted for a in traffic] == [True, True, False, False, False, False, False]
    assert [a.reason for a in traffic[2:]] == [
        "no_rule_for_port",
        "security_group_missing",
        "target_eni_not_found",
        "target_eni_not_found",
        "source_partly_covered",
    ]


def test_rule_key_uses_the_normalized_protocol() -> None:
    assert Rule("6", 80, 80, Source.group("sg-1")).key == ("tcp", 80, 80, Source.group("sg-1"))
    assert Rule("TCP", 80, 80, Source.group("sg-1")).key == Rule("tcp", 80, 80, Source.group("sg-1")).key


def test_parsed_rules_take_ids_from_the_response_and_keep_request_descriptions() -> None:
    perm = samples.permission(31080, cidrs=["0.0.0.0/0", "10.0.1.0/24"], description="from request")
    with_ids = parse_record(samples.authorize_record(permissions=[perm], rule_ids=["sgr-a", "sgr-b"]))
    without_ids = parse_record(samples.authorize_record(permissions=[perm]))
    assert isinstance(with_ids, RuleChange) and isinstance(without_ids, RuleChange)
    assert [(str(r.source), r.rule_id, r.description) for r in with_ids.rules] == [
        ("0.0.0.0/0", "sgr-a", "from request"),
        ("10.0.1.0/24", "sgr-b", "from request"),
    ]
    assert [r.rule_id for r in without_ids.rules] == [None, None]
    assert [r.key for r in with_ids.rules] == [r.key for r in without_ids.rules]
    pascal = parse_record(samples.modify_rules_record(modifications=[samples.rule_update("sgr-a", 443)]))
    assert isinstance(pascal, RuleModification)
    assert [(rule_id, r.from_port, r.rule_id) for rule_id, r in pascal.modifications] == [
        ("sgr-a", 443, "sgr-a")
    ]


def test_revokes_by_permission_and_by_id_in_the_timeline() -> None:
    keep = Rule("tcp", 22, 22, Source.cidr("10.0.0.0/8"), "sgr-keep")
    world = Rule("tcp", 31080, 31080, Source.cidr("0.0.0.0/0"), "sgr-world")
    state = RuleState(rules={"sg-node": {keep.key: keep, world.key: world}})
    state.apply(revoke("r1", T0, Rule("tcp", 31080, 31080, Source.cidr("0.0.0.0/0"))))
    assert state.group_rules("sg-node") == [keep]
    by_id = RuleChange(meta("r2", T0, "RevokeSecurityGroupIngress"), "sg-node", "revoke", (), ("sgr-keep",))
    state.apply(by_id)
    assert state.group_rules("sg-node") == []


def test_parsed_changes_are_not_walked_by_the_garbage_collector() -> None:
    """Changes are held in bulk (a week of a trail): their objects hold no cycles and are not
    tracked by the cyclic collector, so its walks do not grow with the changes held."""
    changes = [
        parse_record(samples.authorize_record(rule_ids=["sgr-a"])),
        parse_record(samples.revoke_record()),
        parse_record(samples.modify_tg_attributes_record()),
        parse_record(samples.modify_rules_record(modifications=[samples.rule_update("sgr-a", 443)])),
    ]
    for change in changes:
        assert change is not None and not isinstance(change, Rejection)
        assert not gc.is_tracked(change)
        assert not gc.is_tracked(change.meta)
        assert not gc.is_tracked(change.meta.actor)
    rules = [rule for change in changes for rule in getattr(change, "rules", ())]
    rules += [rule for change in changes for _, rule in getattr(change, "modifications", ())]
    assert len(rules) == 3
    assert not any(gc.is_tracked(rule) or gc.is_tracked(rule.source) for rule in rules)
