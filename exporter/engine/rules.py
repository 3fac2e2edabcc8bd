"""Rule algebra: security-group ingress rules, required flows, and exact coverage.

A rule admits one protocol over a port range from one source. A flow is one protocol and
port from one source that must be admitted. Coverage of a CIDR source is exact: the union
of all matching rule CIDRs must cover the whole required network.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from typing import Literal

import msgspec

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
SourceKind = Literal["cidr4", "cidr6", "sg", "prefix_list"]

#: CloudTrail and the EC2 API spell protocols as names or IANA numbers.
_PROTOCOL_ALIASES = {"6": "tcp", "17": "udp", "1": "icmp", "58": "icmpv6", "all": "-1"}

ALL_PROTOCOLS = "-1"
#: Spellings that are already normalized (the fast path of normalize_protocol).
_CANONICAL_PROTOCOLS = frozenset({"tcp", "udp", "icmp", "icmpv6", ALL_PROTOCOLS})
#: Parsed CIDR texts kept (they repeat: 0.0.0.0/0, subnet and VPC CIDRs, source ranges).
_CIDR_CACHE_SIZE = 65536


def normalize_protocol(value: str | int) -> str:
    """Lower-case protocol name; numbers for tcp/udp/icmp become names, "all" becomes "-1"."""
    if type(value) is str and value in _CANONICAL_PROTOCOLS:
        return value
    text = str(value).strip().lower()
    return _PROTOCOL_ALIASES.get(text, text)


@functools.lru_cache(maxsize=_CIDR_CACHE_SIZE)
def _parse_cidr(text: str) -> tuple[SourceKind, str]:
    network = ipaddress.ip_network(text.strip(), strict=False)
    return ("cidr4" if network.version == 4 else "cidr6"), str(network)


@functools.lru_cache(maxsize=_CIDR_CACHE_SIZE)
def _network(value: str) -> IPNetwork:
    return ipaddress.ip_network(value)


@functools.lru_cache(maxsize=_CIDR_CACHE_SIZE)
def _span(value: str) -> tuple[int, int]:
    """First and last address of a normalized CIDR, as integers."""
    network = _network(value)
    return int(network.network_address), int(network.broadcast_address)


class Source(msgspec.Struct, frozen=True, order=True, gc=False):
    """Where traffic comes from: a CIDR (v4/v6), a security group id, or a prefix list id."""

    kind: SourceKind
    value: str

    @staticmethod
    def cidr(text: str) -> Source:
        """A CIDR source, normalized (host bits cleared); raises ValueError when invalid."""
        if type(text) is not str:  # not cached; fails as ipaddress does for such a value
            network = ipaddress.ip_network(text.strip(), strict=False)
            return Source("cidr4" if network.version == 4 else "cidr6", str(network))
        kind, value = _parse_cidr(text)
        return Source(kind, value)

    @staticmethod
    def group(group_id: str) -> Source:
        return Source("sg", group_id)

    @property
    def network(self) -> IPNetwork:
        return _network(self.value)

    def __str__(self) -> str:
        return self.value


RuleKey = tuple[str, int, int, Source]
_force_setattr = msgspec.structs.force_setattr


class Rule(msgspec.Struct, frozen=True, order=True, gc=False):
    """One ingress permission. `from_port`/`to_port` are -1 for all ports (protocol -1 or icmp).

    The protocol is stored normalized ("6" and "TCP" become "tcp"), so `key`, equality and
    `matches_port` agree whatever spelling the caller used.

    Rules are held in bulk (every group's rules, every change's), so they are frozen msgspec
    Structs the cyclic garbage collector does not track (``gc=False``; they hold no cycles).
    """

    protocol: str
    from_port: int
    to_port: int
    source: Source
    rule_id: str | None = None
    description: str | None = None
    #: Identity in EC2: the same protocol, ports and source cannot be authorized twice. Always
    #: computed from the fields above (a value given is replaced): rule states keyed by it share
    #: the rule's own tuple. Derived, so equality, order and hashing mean what the fields mean.
    key: RuleKey = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        protocol = self.protocol
        if type(protocol) is not str or protocol not in _CANONICAL_PROTOCOLS:
            protocol = normalize_protocol(protocol)
            if protocol is not self.protocol:
                _force_setattr(self, "protocol", protocol)
        _force_setattr(self, "key", (protocol, self.from_port, self.to_port, self.source))

    def matches_port(self, protocol: str, port: int) -> bool:
        """True when this rule's protocol and port range include (protocol, port)."""
        return _matches(self, normalize_protocol(protocol), port)


class Flow(msgspec.Struct, frozen=True, order=True, gc=False):
    """A flow a target must admit: protocol (stored normalized), destination port and one source.

    Made in bulk by every evaluation (each target group's required flows): not tracked by the
    cyclic garbage collector (``gc=False``; no cycles).
    """

    protocol: str
    port: int
    source: Source

    def __post_init__(self) -> None:
        protocol = normalize_protocol(self.protocol)
        if protocol is not self.protocol:
            msgspec.structs.force_setattr(self, "protocol", protocol)


def _matches(rule: Rule, protocol: str, port: int) -> bool:
    """Rule.matches_port for an already normalized protocol."""
    if rule.protocol == ALL_PROTOCOLS:
        return True
    if rule.protocol != protocol:
        return False
    if rule.from_port == -1 and rule.to_port == -1:
        return True
    return rule.from_port <= port <= rule.to_port


def uncovered(rules: Iterable[Rule], flow: Flow) -> list[IPNetwork]:
    """The parts of the flow's source that no matching rule admits, as minimal CIDRs.

    For security-group sources the answer is [] (admitted) or a one-element list holding
    a sentinel network ``0.0.0.0/32``: callers only test emptiness for those. Prefix-list
    rules are never counted as covering a CIDR here (flows.expand_prefix_lists adds their
    entries as CIDR rules when the list is known).
    """
    source = flow.source
    protocol, port = normalize_protocol(flow.protocol), flow.port
    if source.kind in ("sg", "prefix_list"):
        for rule in rules:
            if rule.source == source and _matches(rule, protocol, port):
                return []
        return [ipaddress.ip_network("0.0.0.0/32")]
    required = source.network
    req_lo, req_hi = _span(source.value)
    kind = source.kind
    spans: list[tuple[int, int]] = []
    for rule in rules:
        if rule.source.kind != kind or not _matches(rule, protocol, port):
            continue
        lo, hi = _span(rule.source.value)
        if hi < req_lo or lo > req_hi:
            continue
        spans.append((max(lo, req_lo), min(hi, req_hi)))
    spans.sort()
    holes: list[tuple[int, int]] = []
    cursor = req_lo
    for lo, hi in spans:
        if lo > cursor:
            holes.append((cursor, lo - 1))
        cursor = max(cursor, hi + 1)
        if cursor > req_hi:
            break
    if cursor <= req_hi:
        holes.append((cursor, req_hi))
    address = ipaddress.IPv4Address if required.version == 4 else ipaddress.IPv6Address
    result: list[IPNetwork] = []
    for lo, hi in holes:
        result.extend(ipaddress.summarize_address_range(address(lo), address(hi)))
    return result


def admits(rules: Iterable[Rule], flow: Flow) -> bool:
    """True when the rules together admit the whole flow."""
    return not uncovered(rules, flow)


def admitting_rules(rules: Iterable[Rule], flow: Flow) -> list[Rule]:
    """The rules that contribute to admitting the flow (matching port and overlapping source)."""
    found: list[Rule] = []
    source = flow.source
    for rule in rules:
        if rule.source.kind != source.kind or not rule.matches_port(flow.protocol, flow.port):
            continue
        if source.kind in ("sg", "prefix_list"):
            if rule.source == source:
                found.append(rule)
        elif rule.source.network.overlaps(source.network):
            found.append(rule)
    return found
