"""The inventory data model: what AWS (and Kubernetes) looked like at one moment.

Pure data plus its versioned JSON form (the `snapshot` file format), declared once and
encoded/decoded by msgspec. Sources fill it, the engine reads it; nothing here does I/O
beyond (de)serialising plain data.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal, cast, get_args

import msgspec

from exporter.engine.rule_fields import RuleFields, rule_fields
from exporter.engine.rules import Rule, Source
from exporter.engine.timeutil import format_time, parse_time

FORMAT = "sg-churn-exporter/inventory"
VERSION = 1


class InventoryError(ValueError):
    """The inventory file is not usable; the message names what is wrong."""


@dataclass(frozen=True)
class Subnet:
    subnet_id: str
    cidr: str
    ipv6_cidr: str | None = None
    availability_zone: str | None = None


@dataclass(frozen=True)
class LoadBalancer:
    arn: str
    name: str
    type: str  # "network" for NLBs; never inferred from the ARN
    scheme: str  # "internet-facing" | "internal"
    vpc_id: str
    subnets: tuple[Subnet, ...] = ()
    security_groups: tuple[str, ...] = ()
    ip_address_type: str = "ipv4"
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def mode(self) -> str:
        """ "sg" when the NLB has security groups (rules reference its SG), else "legacy"."""
        return "sg" if self.security_groups else "legacy"


#: DescribeTargetHealth's AvailabilityZone of an ip target outside the target group's VPC (peered
#: VPC, on-premises, EKS Hybrid Nodes): AWS then knows no ENI and no security group for it.
OUTSIDE_VPC_ZONE = "all"


@functools.lru_cache(maxsize=65536)
def _outside_cidrs(address: str, cidrs: tuple[str, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False  # not an address (an instance id, an ARN): nothing to say
    same_family = []
    for cidr in cidrs:
        try:
            network = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            continue
        if network.version == ip.version:
            same_family.append(network)
    return bool(same_family) and not any(ip in network for network in same_family)


def address_outside_vpc(address: str, vpc: Vpc | None) -> bool:
    """True when `address` is in none of the VPC's CIDRs of its family (both known).

    The controller registers such a pod (EKS Hybrid Nodes, a peered VPC) with AvailabilityZone
    "all", and since v2.17.0 (still at v3.5.0), when RegisterTargets answers "you must specify an
    Availability Zone", with the zone label of the pod's node instead (LBC v3.5.0
    pkg/targetgroupbinding/resource_manager.go: generateOverrideAzFn tests the pod IP against the
    VPC's IPv4 and IPv6 CIDRs, registerPodEndpoints retries with getPodAvailabilityZone). Either
    way it has no ENI in the VPC: the address, not the zone, says it is outside.
    """
    if vpc is None:
        return False
    return _outside_cidrs(address, vpc.cidrs + vpc.ipv6_cidrs)


@dataclass(frozen=True)
class Target:
    target_id: str  # instance id (instance targets) or IP address (ip targets)
    port: int
    eni_id: str | None = None
    health: str = "unknown"
    availability_zone: str | None = None  # as registered; "all" for an ip outside the VPC

    @property
    def outside_vpc(self) -> bool:
        """True for an ip target AWS registered outside the VPC: it has no ENI to evaluate."""
        return self.availability_zone == OUTSIDE_VPC_ZONE


@dataclass(frozen=True)
class TargetGroup:
    arn: str
    name: str
    protocol: str  # TCP, UDP, TCP_UDP, TLS, QUIC, TCP_QUIC
    port: int
    target_type: str  # instance | ip
    vpc_id: str
    health_check_port: str = "traffic-port"
    health_check_protocol: str = "TCP"
    load_balancer_arns: tuple[str, ...] = ()
    attributes: dict[str, str] = field(default_factory=dict)
    targets: tuple[Target, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    ip_address_type: str = "ipv4"  # the TARGET GROUP's: ipv4 | ipv6 (decides the flows' family)
    #: HealthCheckIntervalSeconds, HealthyThresholdCount, UnhealthyThresholdCount (None: not known,
    #: e.g. a snapshot file written before they were kept): how long a gap's harm can still show.
    health_check_timing: tuple[int, int, int] | None = None


@dataclass(frozen=True)
class NetworkInterface:
    eni_id: str
    security_group_ids: tuple[str, ...]
    private_ips: tuple[str, ...] = ()  # primary and secondary IPv4 addresses
    instance_id: str | None = None
    description: str = ""
    ipv6_addresses: tuple[str, ...] = ()
    ipv4_prefixes: tuple[str, ...] = ()  # prefix delegation (VPC CNI ENABLE_PREFIX_DELEGATION)
    ipv6_prefixes: tuple[str, ...] = ()
    vpc_id: str = ""


@dataclass(frozen=True)
class PrefixList:
    """A managed prefix list: its CIDRs admit what a rule referencing it admits."""

    prefix_list_id: str
    name: str = ""
    address_family: str = "IPv4"  # IPv4 | IPv6
    max_entries: int = 0  # what a reference counts against the rules-per-group quota
    cidrs: tuple[str, ...] = ()


@dataclass(frozen=True)
class SecurityGroup:
    group_id: str
    name: str = ""
    vpc_id: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    rules: tuple[Rule, ...] = ()  # ingress rules


@dataclass(frozen=True)
class Vpc:
    vpc_id: str
    cidrs: tuple[str, ...] = ()
    ipv6_cidrs: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServiceBinding:
    """The Kubernetes Service behind a target group, and how that was learned."""

    namespace: str
    service: str
    source_ranges: tuple[str, ...] = ()  # loadBalancerSourceRanges (or the annotation)
    mapped_by: str = "tags"  # "targetgroupbinding" | "tags"
    cluster: str | None = None
    ingress_rules: tuple[Rule, ...] = ()  # TargetGroupBinding networking.ingress, as rules
    #: The last change to the Service or its TargetGroupBinding by a field manager (managedFields):
    #: (kind, manager, time), e.g. ("Service", "kubectl-client-side-apply", ...). Live only.
    last_change: tuple[str, str, datetime] | None = None


#: What a target group's client sources are judged by (the `intent` label): the Kubernetes
#: TargetGroupBinding, the controller-managed rules as materialized intent, or the default.
IntentKind = Literal["binding", "managed_rules", "default"]
INTENT_KINDS: tuple[IntentKind, ...] = get_args(IntentKind)


@dataclass(frozen=True)
class Intent:
    """The client sources a target group is meant to admit when client IPs are preserved."""

    kind: IntentKind
    sources: tuple[str, ...] = ()  # CIDRs; empty: the controller's default for the scheme


DEFAULT_INTENT = Intent("default")


@dataclass(frozen=True)
class Inventory:
    taken_at: datetime
    account_id: str = ""
    region: str = ""
    load_balancers: dict[str, LoadBalancer] = field(default_factory=dict)
    target_groups: dict[str, TargetGroup] = field(default_factory=dict)
    network_interfaces: dict[str, NetworkInterface] = field(default_factory=dict)
    security_groups: dict[str, SecurityGroup] = field(default_factory=dict)
    vpcs: dict[str, Vpc] = field(default_factory=dict)
    services: dict[str, ServiceBinding] = field(default_factory=dict)  # by target group ARN
    prefix_lists: dict[str, PrefixList] = field(default_factory=dict)
    intents: dict[str, Intent] = field(default_factory=dict)  # by target group ARN; not in the file

    def intent_of(self, target_group_arn: str) -> Intent:
        return self.intents.get(target_group_arn, DEFAULT_INTENT)

    def with_intents(self, intents: dict[str, Intent]) -> Inventory:
        return replace(self, intents=intents)

    def with_services(self, services: dict[str, ServiceBinding]) -> Inventory:
        return replace(self, services=services)

    def with_rules(self, rules: Mapping[str, tuple[Rule, ...]]) -> Inventory:
        """The same inventory with fresher ingress rules for the groups in `rules` it already has."""
        groups = dict(self.security_groups)
        for group_id, group_rules in rules.items():
            if group_id in groups:
                groups[group_id] = replace(groups[group_id], rules=group_rules)
        return replace(self, security_groups=groups)

    def to_dict(self) -> dict[str, Any]:
        """The versioned JSON form (the `snapshot` file), as plain data."""
        return cast(dict[str, Any], msgspec.to_builtins(_to_file(self)))

    @staticmethod
    def from_dict(data: Any) -> Inventory:
        """Read the versioned JSON form; raises InventoryError naming the bad field."""
        if not isinstance(data, dict):
            raise InventoryError("inventory: expected a JSON object")
        if data.get("format") != FORMAT:
            raise InventoryError(f"inventory: 'format' must be {FORMAT!r}")
        if data.get("version") != VERSION:
            raise InventoryError(
                f"inventory: unsupported 'version' {data.get('version')!r} (expected {VERSION})"
            )
        try:
            file = msgspec.convert(data, _File, strict=False)
        except msgspec.ValidationError as exc:
            raise InventoryError(f"inventory: {exc}") from exc
        return _from_file(file)


# --- the file form ---------------------------------------------------------------------------------
# One declaration of the `snapshot` file: the entities above whose fields are the file's (load
# balancers, target groups, ENIs, prefix lists, VPCs) are encoded and decoded by msgspec as they
# are; rules, groups and services have a file shape of their own, declared here.


class _RuleEntry(RuleFields, frozen=True, kw_only=True):
    """A rule in the file: its fields (engine/rule_fields.py, as the reports show them), then its id.
    (Files written before this order put source_kind before source and rule_id before
    description; keys are read by name, so they read the same.)"""

    rule_id: str | None = None


class _GroupEntry(msgspec.Struct, frozen=True):
    group_id: str
    name: str = ""
    vpc_id: str = ""
    tags: dict[str, str] = {}
    rules: tuple[_RuleEntry, ...] = ()


class _ServiceEntry(msgspec.Struct, frozen=True):
    target_group_arn: str
    namespace: str
    service: str
    source_ranges: tuple[str, ...] = ()
    mapped_by: str = "tags"
    cluster: str | None = None
    ingress_rules: tuple[_RuleEntry, ...] = ()


class _File(msgspec.Struct, frozen=True):
    format: str
    version: int
    taken_at: str
    account_id: str = ""
    region: str = ""
    load_balancers: tuple[LoadBalancer, ...] = ()
    target_groups: tuple[TargetGroup, ...] = ()
    network_interfaces: tuple[NetworkInterface, ...] = ()
    prefix_lists: tuple[PrefixList, ...] = ()
    security_groups: tuple[_GroupEntry, ...] = ()
    vpcs: tuple[Vpc, ...] = ()
    services: tuple[_ServiceEntry, ...] = ()


def _rule_entry(rule: Rule) -> _RuleEntry:
    return _RuleEntry(**rule_fields(rule), rule_id=rule.rule_id)


def _rule(entry: _RuleEntry, where: str) -> Rule:
    try:
        source = (
            Source.cidr(entry.source)
            if entry.source_kind.startswith("cidr")
            else Source(entry.source_kind, entry.source)
        )
    except ValueError as exc:
        raise InventoryError(f"inventory: bad rule source {entry.source!r} - at `{where}`: {exc}") from exc
    return Rule(entry.protocol, entry.from_port, entry.to_port, source, entry.rule_id, entry.description)


def _to_file(inventory: Inventory) -> _File:
    return _File(
        format=FORMAT,
        version=VERSION,
        taken_at=format_time(inventory.taken_at),
        account_id=inventory.account_id,
        region=inventory.region,
        load_balancers=tuple(inventory.load_balancers.values()),
        target_groups=tuple(inventory.target_groups.values()),
        network_interfaces=tuple(inventory.network_interfaces.values()),
        prefix_lists=tuple(inventory.prefix_lists.values()),
        security_groups=tuple(
            _GroupEntry(sg.group_id, sg.name, sg.vpc_id, sg.tags, tuple(_rule_entry(r) for r in sg.rules))
            for sg in inventory.security_groups.values()
        ),
        vpcs=tuple(inventory.vpcs.values()),
        services=tuple(
            _ServiceEntry(
                arn,
                s.namespace,
                s.service,
                s.source_ranges,
                s.mapped_by,
                s.cluster,
                tuple(_rule_entry(r) for r in s.ingress_rules),
            )
            for arn, s in inventory.services.items()
        ),
    )


def _check_health_check_port(tg: TargetGroup, where: str) -> None:
    """ "traffic-port" (or empty) or a port 1-65535 in ASCII digits, as ELBv2 gives HealthCheckPort
    (Elastic Load Balancing API Reference, TargetGroup); anything else cannot be checked against."""
    port = tg.health_check_port
    if port in ("", "traffic-port") or (
        port.isascii() and port.isdigit() and len(port) <= 5 and 1 <= int(port) <= 65535
    ):
        return
    raise InventoryError(
        f'inventory: bad health_check_port {port[:40]!r} ("traffic-port" or 1-65535) - at `{where}`'
    )


def _from_file(file: _File) -> Inventory:
    try:
        taken_at = parse_time(file.taken_at)
    except ValueError as exc:
        raise InventoryError(f"inventory: bad 'taken_at' {file.taken_at!r}: {exc}") from exc
    for i, tg in enumerate(file.target_groups):
        _check_health_check_port(tg, f"$.target_groups[{i}].health_check_port")
    groups = {
        g.group_id: SecurityGroup(
            g.group_id,
            g.name,
            g.vpc_id,
            g.tags,
            tuple(_rule(r, f"$.security_groups[{i}].rules[{j}]") for j, r in enumerate(g.rules)),
        )
        for i, g in enumerate(file.security_groups)
    }
    services = {
        s.target_group_arn: ServiceBinding(
            namespace=s.namespace,
            service=s.service,
            source_ranges=s.source_ranges,
            mapped_by=s.mapped_by,
            cluster=s.cluster,
            ingress_rules=tuple(
                _rule(r, f"$.services[{i}].ingress_rules[{j}]") for j, r in enumerate(s.ingress_rules)
            ),
        )
        for i, s in enumerate(file.services)
    }
    return Inventory(
        taken_at=taken_at,
        account_id=file.account_id,
        region=file.region,
        load_balancers={lb.arn: lb for lb in file.load_balancers},
        target_groups={tg.arn: tg for tg in file.target_groups},
        network_interfaces={e.eni_id: e for e in file.network_interfaces},
        security_groups=groups,
        vpcs={v.vpc_id: v for v in file.vpcs},
        services=services,
        prefix_lists={p.prefix_list_id: p for p in file.prefix_lists},
    )
