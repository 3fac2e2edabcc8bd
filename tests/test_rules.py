"""Examples and property tests for the rule algebra in exporter.engine.rules.

The property tests compare `uncovered`/`admits`/`admitting_rules` with a brute-force oracle
that never sweeps intervals: it asks, address by address, whether some matching rule's
network contains the address. Required networks of at most 256 addresses are enumerated
in full; wide ones are checked on every elementary interval cut by the rule boundaries,
inside which membership cannot change, so that check is complete as well.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections import Counter
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.engine.rules import (
    Flow,
    IPNetwork,
    Rule,
    Source,
    admits,
    admitting_rules,
    normalize_protocol,
    uncovered,
)

PROPERTY_SETTINGS = settings(max_examples=300, deadline=None)

# ---------------------------------------------------------------------------------------------
# Examples
# ---------------------------------------------------------------------------------------------


def cidr_rule(cidr: str, protocol: str = "tcp", from_port: int = 80, to_port: int | None = None) -> Rule:
    return Rule(protocol, from_port, from_port if to_port is None else to_port, Source.cidr(cidr))


def cidr_flow(cidr: str, protocol: str = "tcp", port: int = 80) -> Flow:
    return Flow(protocol, port, Source.cidr(cidr))


def test_two_halves_cover_everything() -> None:
    rules = [cidr_rule("0.0.0.0/1"), cidr_rule("128.0.0.0/1")]
    assert admits(rules, cidr_flow("0.0.0.0/0"))
    assert uncovered(rules, cidr_flow("0.0.0.0/0")) == []
    # Either half alone leaves exactly the other half.
    assert uncovered(rules[:1], cidr_flow("0.0.0.0/0")) == [ipaddress.ip_network("128.0.0.0/1")]
    assert uncovered(rules[1:], cidr_flow("0.0.0.0/0")) == [ipaddress.ip_network("0.0.0.0/1")]


def test_narrow_rule_leaves_the_complement_as_minimal_cidrs() -> None:
    rules = [cidr_rule("10.0.0.0/16")]
    flow = cidr_flow("0.0.0.0/0")
    assert not admits(rules, flow)
    expected = [
        "0.0.0.0/5",
        "8.0.0.0/7",
        "10.1.0.0/16",
        "10.2.0.0/15",
        "10.4.0.0/14",
        "10.8.0.0/13",
        "10.16.0.0/12",
        "10.32.0.0/11",
        "10.64.0.0/10",
        "10.128.0.0/9",
        "11.0.0.0/8",
        "12.0.0.0/6",
        "16.0.0.0/4",
        "32.0.0.0/3",
        "64.0.0.0/2",
        "128.0.0.0/1",
    ]
    got = uncovered(rules, flow)
    assert [str(n) for n in got] == expected
    # The same answer from the standard library, computed another way.
    complement = ipaddress.IPv4Network("0.0.0.0/0").address_exclude(ipaddress.IPv4Network("10.0.0.0/16"))
    assert got == sorted(complement)


def test_partial_overlap_reports_only_the_missing_part() -> None:
    rules = [cidr_rule("10.0.0.0/25"), cidr_rule("10.0.0.192/26")]
    assert uncovered(rules, cidr_flow("10.0.0.0/24")) == [ipaddress.ip_network("10.0.0.128/26")]
    # A rule wider than the required network covers it.
    assert admits([cidr_rule("10.0.0.0/8")], cidr_flow("10.0.0.0/24"))


@pytest.mark.parametrize(("protocol", "port"), [("tcp", 0), ("tcp", 80), ("tcp", 65535), ("udp", 53)])
def test_all_protocols_rule_admits_any_port(protocol: str, port: int) -> None:
    for from_port, to_port in [(-1, -1), (0, 65535)]:
        rule = Rule("-1", from_port, to_port, Source.cidr("0.0.0.0/0"))
        assert admits([rule], cidr_flow("10.0.0.0/24", protocol, port))


def test_port_ranges_are_inclusive_at_both_ends() -> None:
    rules = [cidr_rule("0.0.0.0/0", "tcp", 80, 90)]
    verdicts = {port: admits(rules, cidr_flow("10.0.0.0/8", "tcp", port)) for port in (79, 80, 85, 90, 91)}
    assert verdicts == {79: False, 80: True, 85: True, 90: True, 91: False}
    single = [cidr_rule("0.0.0.0/0", "udp", 53, 53)]
    assert admits(single, cidr_flow("10.0.0.0/8", "udp", 53))
    assert not admits(single, cidr_flow("10.0.0.0/8", "udp", 52))
    assert not admits(single, cidr_flow("10.0.0.0/8", "udp", 54))


def test_tcp_rule_does_not_admit_udp_flow() -> None:
    rules = [cidr_rule("0.0.0.0/0", "tcp", 0, 65535)]
    assert admits(rules, cidr_flow("10.0.0.0/8", "tcp", 53))
    assert not admits(rules, cidr_flow("10.0.0.0/8", "udp", 53))
    assert uncovered(rules, cidr_flow("10.0.0.0/8", "udp", 53)) == [ipaddress.ip_network("10.0.0.0/8")]
    assert admitting_rules(rules, cidr_flow("10.0.0.0/8", "udp", 53)) == []


def test_ipv4_and_ipv6_never_mix() -> None:
    v4_all = Rule("-1", -1, -1, Source.cidr("0.0.0.0/0"))
    v6_all = Rule("-1", -1, -1, Source.cidr("::/0"))
    assert not admits([v6_all], cidr_flow("10.0.0.0/8"))
    assert not admits([v4_all], cidr_flow("2001:db8::/32"))
    assert uncovered([v4_all], cidr_flow("::/0")) == [ipaddress.ip_network("::/0")]
    # IPv4-mapped IPv6 space is IPv6: an IPv4 rule does not cover it.
    assert not admits([v4_all], cidr_flow("::ffff:0:0/96"))
    assert admitting_rules([v4_all], cidr_flow("::/0")) == []
    assert admitting_rules([v4_all, v6_all], cidr_flow("::/0")) == [v6_all]
    assert admits([v4_all, v6_all], cidr_flow("::/0"))
    assert admits([v4_all, v6_all], cidr_flow("0.0.0.0/0"))


def test_security_group_source_needs_a_rule_referencing_that_group() -> None:
    nlb = Source.group("sg-0nlb")
    flow = Flow("tcp", 30080, nlb)
    exact = Rule("tcp", 30080, 30080, nlb)
    ranged = Rule("tcp", 30000, 32767, nlb)
    assert admits([exact], flow)
    assert admits([ranged], flow)
    assert admits([Rule("-1", -1, -1, nlb)], flow)
    assert not admits([Rule("tcp", 30081, 30090, nlb)], flow)
    assert not admits([Rule("udp", 30080, 30080, nlb)], flow)
    assert not admits([Rule("tcp", 30080, 30080, Source.group("sg-0other"))], flow)
    # An address rule, however wide, does not stand in for a group reference.
    assert not admits([cidr_rule("0.0.0.0/0", "-1", -1, -1)], flow)
    assert uncovered([], flow) != []
    assert admitting_rules([exact, Rule("tcp", 30080, 30080, Source.group("sg-0other"))], flow) == [exact]
    # And a group reference does not admit an address flow.
    assert not admits([Rule("-1", -1, -1, nlb)], cidr_flow("10.0.0.0/24"))


def test_prefix_list_rules_never_cover_a_cidr() -> None:
    pl = Source("prefix_list", "pl-0123456789abcdef0")
    rule = Rule("-1", -1, -1, pl)
    assert not admits([rule], cidr_flow("10.0.0.0/32"))
    assert uncovered([rule], cidr_flow("10.0.0.0/32")) == [ipaddress.ip_network("10.0.0.0/32")]
    assert admitting_rules([rule], cidr_flow("10.0.0.0/32")) == []
    # A flow whose source is that prefix list is admitted by it.
    assert admits([rule], Flow("tcp", 443, pl))
    assert not admits([rule], Flow("tcp", 443, Source("prefix_list", "pl-0ffffffffffffffff")))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("6", "tcp"),
        ("17", "udp"),
        ("TCP", "tcp"),
        (" Udp ", "udp"),
        ("all", "-1"),
        ("ALL", "-1"),
        (-1, "-1"),
        ("-1", "-1"),
        (6, "tcp"),
        ("1", "icmp"),
        ("58", "icmpv6"),
        ("icmp", "icmp"),
        ("50", "50"),
    ],
)
def test_normalize_protocol(raw: str | int, expected: str) -> None:
    assert normalize_protocol(raw) == expected
    assert normalize_protocol(normalize_protocol(raw)) == expected


@pytest.mark.parametrize("spelling", ["6", "TCP", "tcp", " Tcp "])
def test_rule_and_flow_protocols_match_whatever_the_spelling(spelling: str) -> None:
    rule = Rule(spelling, 80, 80, Source.cidr("0.0.0.0/0"))
    assert admits([rule], cidr_flow("10.0.0.0/8", "tcp", 80))
    assert admits([cidr_rule("0.0.0.0/0", "tcp", 80)], cidr_flow("10.0.0.0/8", spelling, 80))
    assert not admits([rule], cidr_flow("10.0.0.0/8", "udp", 80))
    assert admits([Rule("all", 0, 0, Source.cidr("0.0.0.0/0"))], cidr_flow("10.0.0.0/8", spelling, 80))
    # One rule in EC2, however it was spelled: the same key, so revoking one spelling removes the other.
    assert rule.key == cidr_rule("0.0.0.0/0", "tcp", 80).key
    assert rule.protocol == "tcp"
    assert rule.matches_port(spelling, 80)


def test_uncovered_of_nothing_is_the_whole_source() -> None:
    assert uncovered([], cidr_flow("10.0.0.7/32")) == [ipaddress.ip_network("10.0.0.7/32")]
    assert uncovered([], cidr_flow("::/0")) == [ipaddress.ip_network("::/0")]


# ---------------------------------------------------------------------------------------------
# Oracle
# ---------------------------------------------------------------------------------------------


def oracle_port_match(rule: Rule, flow: Flow) -> bool:
    """EC2 semantics, written out independently of Rule.matches_port."""
    protocol = normalize_protocol(rule.protocol)
    if protocol == "-1":
        return True
    if protocol != normalize_protocol(flow.protocol):
        return False
    if (rule.from_port, rule.to_port) == (-1, -1):
        return True
    return flow.port in range(rule.from_port, rule.to_port + 1)


def oracle_address_networks(rules: Sequence[Rule], flow: Flow) -> list[IPNetwork]:
    """Networks of all address rules that match the flow's protocol/port, whatever their family."""
    return [
        r.source.network for r in rules if r.source.kind in ("cidr4", "cidr6") and oracle_port_match(r, flow)
    ]


def oracle_covered(
    networks: Sequence[IPNetwork], address: ipaddress.IPv4Address | ipaddress.IPv6Address
) -> bool:
    return any(n.version == address.version and address in n for n in networks)


def enumerate_uncovered(rules: Sequence[Rule], flow: Flow) -> set[int]:
    """Every address of a (small) required network that no matching rule contains."""
    required = flow.source.network
    assert required.num_addresses <= 256
    networks = oracle_address_networks(rules, flow)
    return {int(a) for a in required if not oracle_covered(networks, a)}


def interval_oracle(rules: Sequence[Rule], flow: Flow) -> list[tuple[int, int]]:
    """Uncovered parts of a (possibly huge) required network as merged inclusive intervals.

    Cut the required interval at every rule network's first address and one past its last;
    membership in every rule is constant on each piece, so testing both ends of a piece
    decides the whole piece.
    """
    required = flow.source.network
    lo, hi = int(required.network_address), int(required.broadcast_address)
    networks = oracle_address_networks(rules, flow)
    cuts = {lo, hi + 1}
    for n in networks:
        for cut in (int(n.network_address), int(n.broadcast_address) + 1):
            if lo < cut <= hi:
                cuts.add(cut)
    points = sorted(cuts)
    address = type(required.network_address)
    pieces: list[tuple[int, int]] = []
    for start, stop in itertools.pairwise(points):
        first, last = address(start), address(stop - 1)
        covered_first = oracle_covered(networks, first)
        assert covered_first == oracle_covered(networks, last)
        if not covered_first:
            pieces.append((start, stop - 1))
    return merge(pieces)


def merge(intervals: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(intervals):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def as_intervals(networks: Sequence[IPNetwork]) -> list[tuple[int, int]]:
    return [(int(n.network_address), int(n.broadcast_address)) for n in networks]


def check_shape(result: list[IPNetwork], required: IPNetwork) -> None:
    """Result networks: right family, inside the required network, sorted, disjoint, minimal."""
    for n in result:
        assert n.version == required.version
        assert n.subnet_of(required)  # type: ignore[arg-type]
    spans = as_intervals(result)
    for (_, prev_hi), (next_lo, _) in itertools.pairwise(spans):
        assert prev_hi < next_lo, f"overlapping or unsorted: {result}"
    v4 = [n for n in result if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in result if isinstance(n, ipaddress.IPv6Network)]
    collapsed: list[IPNetwork] = [*ipaddress.collapse_addresses(v4), *ipaddress.collapse_addresses(v6)]
    assert collapsed == result


# ---------------------------------------------------------------------------------------------
# Strategies: a small address universe with a few wide networks thrown in
# ---------------------------------------------------------------------------------------------

V4_BASE = int(ipaddress.IPv4Address("10.0.0.0"))
V6_BASE = int(ipaddress.IPv6Address("2001:db8::"))
WIDE_V4 = [
    "0.0.0.0/0",
    "0.0.0.0/1",
    "128.0.0.0/1",
    "0.0.0.0/5",
    "8.0.0.0/7",
    "10.0.0.0/8",
    "11.0.0.0/8",
    "10.0.0.0/16",
    "10.0.0.0/23",
    "10.0.1.0/24",
    "9.255.255.0/24",
]
WIDE_V6 = [
    "::/0",
    "::/1",
    "8000::/1",
    "2000::/3",
    "2001:db8::/32",
    "2001:db8::/64",
    "2001:db8::/119",
    "2001:db8::100/120",
    "2001:db8::/121",
    "2001:db8::80/121",
    "::ffff:0:0/96",
]


def small_cidrs(version: int) -> st.SearchStrategy[str]:
    """Networks of /24../32 (v4) or /120../128 (v6) inside 10.0.0.0/24 or 2001:db8::/120.

    Half the time they fall inside the first 16 addresses, so that nested, adjacent and
    one-address-apart networks are common.
    """
    base, bits = (V4_BASE, 32) if version == 4 else (V6_BASE, 128)
    return st.one_of(
        st.builds(lambda offset, length: (offset, length), st.integers(0, 15), st.integers(bits - 4, bits)),
        st.builds(lambda offset, length: (offset, length), st.integers(0, 255), st.integers(bits - 8, bits)),
    ).map(lambda pair: str(ipaddress.ip_network((base + pair[0], pair[1]), strict=False)))


def wide_cidrs(version: int) -> st.SearchStrategy[str]:
    """A fixed set of wide networks, plus arbitrary networks anywhere in the address space."""
    fixed = WIDE_V4 if version == 4 else WIDE_V6
    bits = 32 if version == 4 else 128
    anywhere = st.builds(
        lambda address, length: str(ipaddress.ip_network((address, length), strict=False)),
        st.integers(0, 2**bits - 1),
        st.integers(0, bits),
    )
    near = st.builds(
        lambda offset, length: str(
            ipaddress.ip_network(((V4_BASE if version == 4 else V6_BASE) + offset, length), strict=False)
        ),
        st.integers(-(2**10), 2**10),
        st.integers(bits - 12, bits),
    )
    return st.one_of(st.sampled_from(fixed), anywhere, near, small_cidrs(version))


PROTOCOLS = st.sampled_from(["tcp", "udp", "-1"])
FLOW_PROTOCOLS = st.sampled_from(["tcp", "udp"])
FLOW_PORTS = st.integers(0, 20)


@st.composite
def port_ranges(draw: st.DrawFn) -> tuple[int, int]:
    if draw(st.integers(0, 9)) == 0:
        return (-1, -1)
    a, b = draw(FLOW_PORTS), draw(FLOW_PORTS)
    return (min(a, b), max(a, b))


NOISE_SOURCES = st.one_of(
    st.sampled_from(["sg-a", "sg-b"]).map(Source.group),
    st.just(Source("prefix_list", "pl-1")),
)


def address_sources(version: int, wide: bool) -> st.SearchStrategy[Source]:
    """Narrow universe: mostly small networks, sometimes one of the four widest; wide: anything."""
    if wide:
        cidrs = wide_cidrs(version)
    else:
        small = small_cidrs(version)
        cidrs = st.one_of(small, small, small, st.sampled_from((WIDE_V4 if version == 4 else WIDE_V6)[:4]))
    return cidrs.map(Source.cidr)


def rule_strategy(version: int, wide: bool) -> st.SearchStrategy[Rule]:
    """Mostly address rules of one family; some of the other family, group and prefix-list rules."""
    other = 6 if version == 4 else 4
    sources = st.one_of(
        address_sources(version, wide),
        address_sources(version, wide),
        address_sources(version, wide),
        address_sources(other, wide),
        NOISE_SOURCES,
    )
    return st.builds(
        lambda protocol, ports, source: Rule(protocol, ports[0], ports[1], source),
        PROTOCOLS,
        port_ranges(),
        sources,
    )


def rules_strategy(version: int, wide: bool) -> st.SearchStrategy[list[Rule]]:
    return st.lists(rule_strategy(version, wide), max_size=8)


def flows(version: int, wide: bool) -> st.SearchStrategy[Flow]:
    cidrs = wide_cidrs(version) if wide else small_cidrs(version)
    return st.builds(Flow, FLOW_PROTOCOLS, FLOW_PORTS, cidrs.map(Source.cidr))


FAMILIES = [(4, False), (6, False), (4, True), (6, True)]
# Built once: building strategies inside every draw costs more than the tests themselves.
RULE = {family: rule_strategy(*family) for family in FAMILIES}
RULES = {family: rules_strategy(*family) for family in FAMILIES}
FLOWS = {family: flows(*family) for family in FAMILIES}


@st.composite
def cases(draw: st.DrawFn, wide: bool | None = None) -> tuple[list[Rule], Flow]:
    """Rules and an address flow, from any of the four universes (or the narrow/wide ones)."""
    family = draw(st.sampled_from([f for f in FAMILIES if wide is None or f[1] == wide]))
    return draw(RULES[family]), draw(FLOWS[family])


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(cases(wide=False))
def test_small_networks_agree_with_enumeration(case: tuple[list[Rule], Flow]) -> None:
    rules, flow = case
    expected = enumerate_uncovered(rules, flow)
    result = uncovered(rules, flow)
    check_shape(result, flow.source.network)
    got = {int(a) for n in result for a in n}
    assert got == expected
    assert admits(rules, flow) == (not expected)


TINY_V4 = st.builds(
    lambda offset, length: Source.cidr(str(ipaddress.ip_network((V4_BASE + offset, length), strict=False))),
    st.integers(0, 15),
    st.integers(28, 32),
)


@PROPERTY_SETTINGS
@given(st.lists(TINY_V4, max_size=6), TINY_V4)
def test_tiny_universe_every_rule_matching(sources: list[Source], required: Source) -> None:
    """16 addresses and only matching rules: one-address gaps, nesting and adjacency are common."""
    rules = [Rule("tcp", 0, 20, s) for s in sources]
    flow = Flow("tcp", 7, required)
    expected = enumerate_uncovered(rules, flow)
    result = uncovered(rules, flow)
    check_shape(result, required.network)
    assert {int(a) for n in result for a in n} == expected


@PROPERTY_SETTINGS
@given(cases(wide=True))
def test_wide_networks_agree_with_boundary_oracle(case: tuple[list[Rule], Flow]) -> None:
    rules, flow = case
    expected = interval_oracle(rules, flow)
    result = uncovered(rules, flow)
    check_shape(result, flow.source.network)
    assert merge(as_intervals(result)) == expected
    assert admits(rules, flow) == (not expected)


@PROPERTY_SETTINGS
@given(cases(), st.data())
def test_rule_order_does_not_matter(case: tuple[list[Rule], Flow], data: st.DataObject) -> None:
    rules, flow = case
    shuffled = data.draw(st.permutations(rules))
    assert uncovered(shuffled, flow) == uncovered(rules, flow)
    assert admits(shuffled, flow) == admits(rules, flow)
    assert Counter(admitting_rules(shuffled, flow)) == Counter(admitting_rules(rules, flow))


@PROPERTY_SETTINGS
@given(cases(), st.data())
def test_adding_a_rule_never_uncovers_anything(case: tuple[list[Rule], Flow], data: st.DataObject) -> None:
    rules, flow = case
    family = (flow.source.network.version, flow.source.network.num_addresses > 256)
    extra = data.draw(RULE[family])
    position = data.draw(st.integers(0, len(rules)))
    more = [*rules[:position], extra, *rules[position:]]
    before, after = merge(as_intervals(uncovered(rules, flow))), merge(as_intervals(uncovered(more, flow)))
    # Every uncovered interval after the addition lies inside some interval uncovered before.
    for lo, hi in after:
        assert any(b_lo <= lo and hi <= b_hi for b_lo, b_hi in before), (before, after)
    if admits(rules, flow):
        assert admits(more, flow)


@PROPERTY_SETTINGS
@given(cases())
def test_admitting_rules_are_exactly_the_contributors(case: tuple[list[Rule], Flow]) -> None:
    rules, flow = case
    required = flow.source.network
    found = admitting_rules(rules, flow)
    # Same rules, same order, each one matching the port and overlapping the required network.
    expected = [
        r
        for r in rules
        if r.source.kind == flow.source.kind
        and oracle_port_match(r, flow)
        and r.source.network.overlaps(required)
    ]
    assert found == expected
    # They alone decide coverage.
    assert uncovered(found, flow) == uncovered(rules, flow)


@PROPERTY_SETTINGS
@given(cases(), st.data())
def test_authorizing_the_uncovered_parts_closes_the_gap(
    case: tuple[list[Rule], Flow], data: st.DataObject
) -> None:
    rules, flow = case
    missing = uncovered(rules, flow)
    patch = [Rule(flow.protocol, flow.port, flow.port, Source.cidr(str(n))) for n in missing]
    assert admits(rules + patch, flow)
    # And each patch network is needed: dropping any one of them reopens exactly that network.
    if missing:
        i = data.draw(st.integers(0, len(missing) - 1))
        assert uncovered(rules + patch[:i] + patch[i + 1 :], flow) == [missing[i]]


@PROPERTY_SETTINGS
@given(
    st.lists(
        st.builds(
            lambda protocol, ports, source: Rule(protocol, ports[0], ports[1], source),
            PROTOCOLS,
            port_ranges(),
            st.one_of(NOISE_SOURCES, address_sources(4, wide=False)),
        ),
        max_size=8,
    ),
    st.builds(Flow, FLOW_PROTOCOLS, FLOW_PORTS, NOISE_SOURCES),
)
def test_group_and_prefix_list_flows_need_an_exact_reference(rules: list[Rule], flow: Flow) -> None:
    expected = any(r.source == flow.source and oracle_port_match(r, flow) for r in rules)
    assert admits(rules, flow) == expected
    assert (uncovered(rules, flow) == []) == expected
    assert admitting_rules(rules, flow) == [
        r for r in rules if r.source == flow.source and oracle_port_match(r, flow)
    ]
