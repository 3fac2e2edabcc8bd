"""The inventory data model: what AWS (and Kubernetes) looked like at one moment.

Pure data plus its versioned JSON form (the `snapshot` file format). Sources fill it,
the engine reads it; nothing here does I/O beyond (de)serialising a dict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

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
INTENT_KINDS = ("binding", "managed_rules", "default")


@dataclass(frozen=True)
class Intent:
    """The client sources a target group is meant to admit when client IPs are preserved."""

    kind: str  # one of INTENT_KINDS
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
        return {
            "format": FORMAT,
            "version": VERSION,
            "taken_at": format_time(self.taken_at),
            "account_id": self.account_id,
            "region": self.region,
            "load_balancers": [_lb_to_dict(lb) for lb in self.load_balancers.values()],
            "target_groups": [_tg_to_dict(tg) for tg in self.target_groups.values()],
            "network_interfaces": [
                {
                    "eni_id": eni.eni_id,
                    "security_group_ids": list(eni.security_group_ids),
                    "private_ips": list(eni.private_ips),
                    "instance_id": eni.instance_id,
                    "description": eni.description,
                    "ipv6_addresses": list(eni.ipv6_addresses),
                    "ipv4_prefixes": list(eni.ipv4_prefixes),
                    "ipv6_prefixes": list(eni.ipv6_prefixes),
                    "vpc_id": eni.vpc_id,
                }
                for eni in self.network_interfaces.values()
            ],
            "prefix_lists": [
                {
                    "prefix_list_id": pl.prefix_list_id,
                    "name": pl.name,
                    "address_family": pl.address_family,
                    "max_entries": pl.max_entries,
                    "cidrs": list(pl.cidrs),
                }
                for pl in self.prefix_lists.values()
            ],
            "security_groups": [
                {
                    "group_id": sg.group_id,
                    "name": sg.name,
                    "vpc_id": sg.vpc_id,
                    "tags": dict(sg.tags),
                    "rules": [rule_to_dict(r) for r in sg.rules],
                }
                for sg in self.security_groups.values()
            ],
            "vpcs": [
                {"vpc_id": v.vpc_id, "cidrs": list(v.cidrs), "ipv6_cidrs": list(v.ipv6_cidrs)}
                for v in self.vpcs.values()
            ],
            "services": [
                {
                    "target_group_arn": arn,
                    "namespace": s.namespace,
                    "service": s.service,
                    "source_ranges": list(s.source_ranges),
                    "mapped_by": s.mapped_by,
                    "cluster": s.cluster,
                    "ingress_rules": [rule_to_dict(r) for r in s.ingress_rules],
                }
                for arn, s in self.services.items()
            ],
        }

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
        where = "inventory"
        try:
            taken_at = parse_time(data["taken_at"])
            lbs = [_lb_from_dict(d) for d in data.get("load_balancers", [])]
            where = "target_groups"
            tgs = [_tg_from_dict(d) for d in data.get("target_groups", [])]
            where = "network_interfaces"
            enis = [
                NetworkInterface(
                    eni_id=d["eni_id"],
                    security_group_ids=tuple(d["security_group_ids"]),
                    private_ips=tuple(d.get("private_ips", ())),
                    instance_id=d.get("instance_id"),
                    description=d.get("description", ""),
                    ipv6_addresses=tuple(d.get("ipv6_addresses", ())),
                    ipv4_prefixes=tuple(d.get("ipv4_prefixes", ())),
                    ipv6_prefixes=tuple(d.get("ipv6_prefixes", ())),
                    vpc_id=str(d.get("vpc_id", "")),
                )
                for d in data.get("network_interfaces", [])
            ]
            where = "prefix_lists"
            prefix_lists = [
                PrefixList(
                    prefix_list_id=d["prefix_list_id"],
                    name=str(d.get("name", "")),
                    address_family=str(d.get("address_family", "IPv4")),
                    max_entries=int(d.get("max_entries", 0)),
                    cidrs=tuple(str(c) for c in d.get("cidrs", ())),
                )
                for d in data.get("prefix_lists", [])
            ]
            where = "security_groups"
            sgs = [
                SecurityGroup(
                    group_id=d["group_id"],
                    name=d.get("name", ""),
                    vpc_id=d.get("vpc_id", ""),
                    tags=dict(d.get("tags", {})),
                    rules=tuple(rule_from_dict(r) for r in d.get("rules", [])),
                )
                for d in data.get("security_groups", [])
            ]
            where = "vpcs"
            vpcs = [
                Vpc(d["vpc_id"], tuple(d.get("cidrs", ())), tuple(d.get("ipv6_cidrs", ())))
                for d in data.get("vpcs", [])
            ]
            where = "services"
            services = {
                d["target_group_arn"]: ServiceBinding(
                    namespace=d["namespace"],
                    service=d["service"],
                    source_ranges=tuple(d.get("source_ranges", ())),
                    mapped_by=d.get("mapped_by", "tags"),
                    cluster=d.get("cluster"),
                    ingress_rules=tuple(rule_from_dict(r) for r in d.get("ingress_rules", [])),
                )
                for d in data.get("services", [])
            }
        except InventoryError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InventoryError(f"inventory: bad entry in {where!r}: {type(exc).__name__}: {exc}") from exc
        return Inventory(
            taken_at=taken_at,
            account_id=str(data.get("account_id", "")),
            region=str(data.get("region", "")),
            load_balancers={lb.arn: lb for lb in lbs},
            target_groups={tg.arn: tg for tg in tgs},
            network_interfaces={e.eni_id: e for e in enis},
            security_groups={s.group_id: s for s in sgs},
            vpcs={v.vpc_id: v for v in vpcs},
            services=services,
            prefix_lists={p.prefix_list_id: p for p in prefix_lists},
        )


def rule_to_dict(rule: Rule) -> dict[str, Any]:
    return {
        "protocol": rule.protocol,
        "from_port": rule.from_port,
        "to_port": rule.to_port,
        "source_kind": rule.source.kind,
        "source": rule.source.value,
        "rule_id": rule.rule_id,
        "description": rule.description,
    }


def rule_from_dict(d: dict[str, Any]) -> Rule:
    kind = d["source_kind"]
    if kind not in ("cidr4", "cidr6", "sg", "prefix_list"):
        raise InventoryError(f"inventory: unknown rule source_kind {kind!r}")
    source = Source.cidr(d["source"]) if kind.startswith("cidr") else Source(kind, d["source"])
    return Rule(
        protocol=str(d["protocol"]),
        from_port=int(d["from_port"]),
        to_port=int(d["to_port"]),
        source=source,
        rule_id=d.get("rule_id"),
        description=d.get("description"),
    )


def _lb_to_dict(lb: LoadBalancer) -> dict[str, Any]:
    return {
        "arn": lb.arn,
        "name": lb.name,
        "type": lb.type,
        "scheme": lb.scheme,
        "vpc_id": lb.vpc_id,
        "subnets": [
            {
                "subnet_id": s.subnet_id,
                "cidr": s.cidr,
                "ipv6_cidr": s.ipv6_cidr,
                "availability_zone": s.availability_zone,
            }
            for s in lb.subnets
        ],
        "security_groups": list(lb.security_groups),
        "ip_address_type": lb.ip_address_type,
        "tags": dict(lb.tags),
    }


def _lb_from_dict(d: dict[str, Any]) -> LoadBalancer:
    return LoadBalancer(
        arn=d["arn"],
        name=d["name"],
        type=d["type"],
        scheme=d["scheme"],
        vpc_id=d["vpc_id"],
        subnets=tuple(
            Subnet(s["subnet_id"], s["cidr"], s.get("ipv6_cidr"), s.get("availability_zone"))
            for s in d.get("subnets", [])
        ),
        security_groups=tuple(d.get("security_groups", ())),
        ip_address_type=d.get("ip_address_type", "ipv4"),
        tags=dict(d.get("tags", {})),
    )


def _tg_to_dict(tg: TargetGroup) -> dict[str, Any]:
    return {
        "arn": tg.arn,
        "name": tg.name,
        "protocol": tg.protocol,
        "port": tg.port,
        "target_type": tg.target_type,
        "vpc_id": tg.vpc_id,
        "health_check_port": tg.health_check_port,
        "health_check_protocol": tg.health_check_protocol,
        "load_balancer_arns": list(tg.load_balancer_arns),
        "attributes": dict(tg.attributes),
        "targets": [
            {
                "target_id": t.target_id,
                "port": t.port,
                "eni_id": t.eni_id,
                "health": t.health,
                "availability_zone": t.availability_zone,
            }
            for t in tg.targets
        ],
        "tags": dict(tg.tags),
        "ip_address_type": tg.ip_address_type,
    }


def _tg_from_dict(d: dict[str, Any]) -> TargetGroup:
    return TargetGroup(
        arn=d["arn"],
        name=d["name"],
        protocol=d["protocol"],
        port=int(d["port"]),
        target_type=d["target_type"],
        vpc_id=d.get("vpc_id", ""),
        health_check_port=str(d.get("health_check_port", "traffic-port")),
        health_check_protocol=d.get("health_check_protocol", "TCP"),
        load_balancer_arns=tuple(d.get("load_balancer_arns", ())),
        attributes={str(k): str(v) for k, v in d.get("attributes", {}).items()},
        targets=tuple(
            Target(
                t["target_id"],
                int(t["port"]),
                t.get("eni_id"),
                t.get("health", "unknown"),
                t.get("availability_zone"),
            )
            for t in d.get("targets", [])
        ),
        tags=dict(d.get("tags", {})),
        ip_address_type=str(d.get("ip_address_type", "ipv4")),
    )
