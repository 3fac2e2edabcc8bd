"""ELBv2 + EC2 describes -> engine Inventory for one account-region, in close to the fewest pages.

Calls per poll: DescribeLoadBalancers pages; DescribeTargetGroups (per NLB or all, whichever is
fewer); per target group one DescribeTargetGroupAttributes and one DescribeTargetHealth (no batch
API exists); DescribeTags per 20 ARNs; then EC2 describes batched by filter values (<= 200 each):
subnets, VPCs, instances (instance targets), network interfaces (ip targets, and instance ENIs
whose groups DescribeInstances did not carry), security groups and their rules, and the managed
prefix lists those rules reference (DescribeManagedPrefixLists, GetManagedPrefixListEntries).

ip targets resolve to their ENI as the controller resolves pod IPs (LBC v2.13.4 and v3.5.0
pkg/networking/pod_eni_info_resolver.go): an ENI's private IPv4 addresses (primary or secondary,
filter addresses.private-ip-address), its IPv6 addresses (ipv6-addresses.ipv6-address), or a
delegated Ipv4Prefixes/Ipv6Prefixes prefix holding the address (no EC2 filter exists for those:
the ENIs of the target group's VPC are then read once and matched here). A target registered
with AvailabilityZone "all", or (LBC v2.17.0+, v3.5.0) with its node's zone but an address in
none of the VPC's CIDRs, is outside the VPC and has no ENI.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

from exporter.engine.changes import WATCHED_ATTRIBUTES
from exporter.engine.inventory import (
    OUTSIDE_VPC_ZONE,
    Inventory,
    LoadBalancer,
    NetworkInterface,
    PrefixList,
    SecurityGroup,
    Subnet,
    Target,
    TargetGroup,
    Vpc,
    address_outside_vpc,
)
from exporter.engine.rules import Rule, Source, normalize_protocol
from exporter.sources.aws import AwsClients

ELBV2_PAGE_SIZE = 400
EC2_MAX_RESULTS = 1000
FILTER_BATCH = 200
TAGS_BATCH = 20

T = TypeVar("T")


def chunks(items: Sequence[T], size: int) -> Iterator[list[T]]:
    """Consecutive slices of at most `size` items."""
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _pages(client: Any, operation: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    yield from client.get_paginator(operation).paginate(**kwargs)


def _ec2_filtered(
    ec2: Any, operation: str, key: str, name: str, values: Iterable[str]
) -> Iterator[dict[str, Any]]:
    """Items of `key` from an EC2 describe filtered by `name` in batches of 200 values, all pages."""
    unique = sorted(set(values))
    for chunk in chunks(unique, FILTER_BATCH):
        for page in _pages(
            ec2, operation, Filters=[{"Name": name, "Values": chunk}], MaxResults=EC2_MAX_RESULTS
        ):
            yield from page.get(key, [])


def rule_from_api(item: dict[str, Any]) -> Rule | None:
    """An EC2 SecurityGroupRule (DescribeSecurityGroupRules shape) as an engine Rule; None if egress/unknown."""
    if item.get("IsEgress"):
        return None
    if item.get("CidrIpv4"):
        source = Source.cidr(item["CidrIpv4"])
    elif item.get("CidrIpv6"):
        source = Source.cidr(item["CidrIpv6"])
    elif (item.get("ReferencedGroupInfo") or {}).get("GroupId"):
        source = Source.group(item["ReferencedGroupInfo"]["GroupId"])
    elif item.get("PrefixListId"):
        source = Source("prefix_list", item["PrefixListId"])
    else:
        return None
    return Rule(
        protocol=normalize_protocol(item.get("IpProtocol", "-1")),
        from_port=int(item.get("FromPort", -1)),
        to_port=int(item.get("ToPort", -1)),
        source=source,
        rule_id=item.get("SecurityGroupRuleId"),
        description=item.get("Description") or None,
    )


def _tags(items: Iterable[dict[str, Any]] | None) -> dict[str, str]:
    return {t["Key"]: t.get("Value", "") for t in items or []}


def _network_load_balancers(elbv2: Any) -> tuple[list[dict[str, Any]], int]:
    """NLBs (Type == "network", never inferred from the ARN) and the count of all load balancers."""
    found: list[dict[str, Any]] = []
    total = 0
    for page in _pages(elbv2, "describe_load_balancers", PaginationConfig={"PageSize": ELBV2_PAGE_SIZE}):
        for lb in page.get("LoadBalancers", []):
            total += 1
            if lb.get("Type") == "network":
                found.append(lb)
    return found, total


def _target_groups(elbv2: Any, nlb_arns: list[str], lb_total: int) -> list[dict[str, Any]]:
    """Target groups attached to the NLBs: one call per NLB when that is fewer than listing all.

    Listing all costs at least one page per 400 load balancers (nearly every one has a target
    group), so per-NLB wins while the NLB count is at most that many pages.
    """
    if not nlb_arns:
        return []
    wanted = set(nlb_arns)
    seen: dict[str, dict[str, Any]] = {}
    if len(nlb_arns) <= max(1, math.ceil(lb_total / ELBV2_PAGE_SIZE)):
        for arn in nlb_arns:
            pages = _pages(
                elbv2,
                "describe_target_groups",
                LoadBalancerArn=arn,
                PaginationConfig={"PageSize": ELBV2_PAGE_SIZE},
            )
            for page in pages:
                for tg in page.get("TargetGroups", []):
                    seen.setdefault(tg["TargetGroupArn"], tg)
    else:
        for page in _pages(elbv2, "describe_target_groups", PaginationConfig={"PageSize": ELBV2_PAGE_SIZE}):
            for tg in page.get("TargetGroups", []):
                if wanted.intersection(tg.get("LoadBalancerArns", [])):
                    seen.setdefault(tg["TargetGroupArn"], tg)
    return list(seen.values())


def _elbv2_tags(elbv2: Any, arns: list[str]) -> dict[str, dict[str, str]]:
    tags: dict[str, dict[str, str]] = {}
    for chunk in chunks(arns, TAGS_BATCH):
        for item in elbv2.describe_tags(ResourceArns=chunk).get("TagDescriptions", []):
            tags[item["ResourceArn"]] = _tags(item.get("Tags"))
    return tags


def _watched_attributes(elbv2: Any, tg_arn: str) -> dict[str, str]:
    attributes = elbv2.describe_target_group_attributes(TargetGroupArn=tg_arn).get("Attributes", [])
    return {a["Key"]: str(a.get("Value", "")) for a in attributes if a.get("Key") in WATCHED_ATTRIBUTES}


def _health_check_timing(tg: dict[str, Any]) -> tuple[int, int, int] | None:
    """(interval, healthy threshold, unhealthy threshold) as DescribeTargetGroups gives them."""
    names = ("HealthCheckIntervalSeconds", "HealthyThresholdCount", "UnhealthyThresholdCount")
    values = [tg.get(name) for name in names]
    if all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
        return (int(values[0]), int(values[1]), int(values[2]))  # type: ignore[arg-type]
    return None


def _health(elbv2: Any, tg_arn: str) -> list[tuple[str, int, str, str | None]]:
    """(id, port, state, availability zone as registered) of each target."""
    descriptions = elbv2.describe_target_health(TargetGroupArn=tg_arn).get("TargetHealthDescriptions", [])
    return [
        (
            d["Target"]["Id"],
            int(d["Target"].get("Port", 0)),
            str((d.get("TargetHealth") or {}).get("State", "unknown")),
            d["Target"].get("AvailabilityZone") or None,
        )
        for d in descriptions
    ]


def _eni(item: dict[str, Any], instance_id: str | None = None) -> NetworkInterface:
    ips = tuple(
        p["PrivateIpAddress"] for p in item.get("PrivateIpAddresses", []) if p.get("PrivateIpAddress")
    )
    if not ips and item.get("PrivateIpAddress"):
        ips = (item["PrivateIpAddress"],)
    attached = (item.get("Attachment") or {}).get("InstanceId")
    return NetworkInterface(
        eni_id=item["NetworkInterfaceId"],
        security_group_ids=tuple(g["GroupId"] for g in item.get("Groups", [])),
        private_ips=ips,
        instance_id=instance_id or attached,
        description=item.get("Description", ""),
        ipv6_addresses=tuple(a["Ipv6Address"] for a in item.get("Ipv6Addresses", []) if a.get("Ipv6Address")),
        ipv4_prefixes=tuple(p["Ipv4Prefix"] for p in item.get("Ipv4Prefixes", []) if p.get("Ipv4Prefix")),
        ipv6_prefixes=tuple(p["Ipv6Prefix"] for p in item.get("Ipv6Prefixes", []) if p.get("Ipv6Prefix")),
        vpc_id=str(item.get("VpcId", "")),
    )


def _instance_enis(ec2: Any, instance_ids: list[str]) -> tuple[dict[str, str], dict[str, NetworkInterface]]:
    """instance id -> primary ENI id (device index 0), and the ENIs with their groups."""
    primary: dict[str, str] = {}
    enis: dict[str, NetworkInterface] = {}
    missing_groups: list[str] = []
    for reservation in _ec2_filtered(ec2, "describe_instances", "Reservations", "instance-id", instance_ids):
        for instance in reservation.get("Instances", []):
            for ni in instance.get("NetworkInterfaces", []):
                if (ni.get("Attachment") or {}).get("DeviceIndex") != 0:
                    continue
                primary[instance["InstanceId"]] = ni["NetworkInterfaceId"]
                if "Groups" in ni:
                    enis[ni["NetworkInterfaceId"]] = _eni(ni, instance["InstanceId"])
                else:
                    missing_groups.append(ni["NetworkInterfaceId"])
    if missing_groups:
        for item in _ec2_filtered(
            ec2, "describe_network_interfaces", "NetworkInterfaces", "network-interface-id", missing_groups
        ):
            enis[item["NetworkInterfaceId"]] = _eni(item)
    return primary, enis


def _is_ipv6(text: str) -> bool:
    return ":" in text


def _ip_enis(ec2: Any, ips: list[str]) -> list[NetworkInterface]:
    """ENIs owning the ip targets' addresses as private IPv4 (primary or secondary) or IPv6 addresses."""
    v4 = [ip for ip in ips if not _is_ipv6(ip)]
    v6 = [ip for ip in ips if _is_ipv6(ip)]
    found = [
        _eni(item)
        for item in _ec2_filtered(
            ec2, "describe_network_interfaces", "NetworkInterfaces", "addresses.private-ip-address", v4
        )
    ]
    found += [
        _eni(item)
        for item in _ec2_filtered(
            ec2, "describe_network_interfaces", "NetworkInterfaces", "ipv6-addresses.ipv6-address", v6
        )
    ]
    return found


def _vpc_enis(ec2: Any, vpc_ids: list[str]) -> list[NetworkInterface]:
    """Every ENI of the VPCs (read only when some ip target is on a delegated prefix)."""
    return [
        _eni(item)
        for item in _ec2_filtered(ec2, "describe_network_interfaces", "NetworkInterfaces", "vpc-id", vpc_ids)
    ]


def owns_address(eni: NetworkInterface, ip: str) -> bool:
    """True when the address is one of the ENI's, or inside one of its delegated prefixes."""
    if ip in eni.private_ips or ip in eni.ipv6_addresses:
        return True
    prefixes = eni.ipv6_prefixes if _is_ipv6(ip) else eni.ipv4_prefixes
    if not prefixes:
        return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    for prefix in prefixes:
        try:
            if address in ipaddress.ip_network(prefix, strict=False):
                return True
        except ValueError:
            continue
    return False


def _index(enis: Iterable[NetworkInterface], eni_by_ip: dict[tuple[str, str], str], wanted: set[str]) -> None:
    """Map each wanted address an ENI owns to it, by (vpc, ip) and by ip alone."""
    for eni in enis:
        for ip in wanted:
            if owns_address(eni, ip):
                eni_by_ip.setdefault((eni.vpc_id, ip), eni.eni_id)
                eni_by_ip.setdefault(("", ip), eni.eni_id)


def _prefix_lists(ec2: Any, ids: list[str]) -> dict[str, PrefixList]:
    """The managed prefix lists the rules reference, with their entries."""
    found: dict[str, PrefixList] = {}
    for chunk in chunks(sorted(set(ids)), FILTER_BATCH):
        for page in _pages(ec2, "describe_managed_prefix_lists", PrefixListIds=chunk):
            for item in page.get("PrefixLists", []):
                pl_id = item["PrefixListId"]
                cidrs = [
                    entry["Cidr"]
                    for entry_page in _pages(ec2, "get_managed_prefix_list_entries", PrefixListId=pl_id)
                    for entry in entry_page.get("Entries", [])
                    if entry.get("Cidr")
                ]
                found[pl_id] = PrefixList(
                    prefix_list_id=pl_id,
                    name=str(item.get("PrefixListName", "")),
                    address_family=str(item.get("AddressFamily", "IPv4")),
                    max_entries=int(item.get("MaxEntries") or 0),
                    cidrs=tuple(cidrs),
                )
    return found


def describe_rules(ec2: Any, group_ids: Iterable[str]) -> dict[str, tuple[Rule, ...]]:
    """The ingress rules of the given groups (DescribeSecurityGroupRules, 200 groups per call).

    Also the daemon's targeted poll: re-reading only the node groups behind target groups is one
    call per 200 groups, cheap enough to repeat every few seconds (see `Monitor.poll_rules`)."""
    wanted = sorted(set(group_ids))
    rules: dict[str, list[Rule]] = {g: [] for g in wanted}
    for item in _ec2_filtered(ec2, "describe_security_group_rules", "SecurityGroupRules", "group-id", wanted):
        rule = rule_from_api(item)
        if rule is not None:
            rules.setdefault(item["GroupId"], []).append(rule)
    return {gid: tuple(sorted(found)) for gid, found in rules.items()}


def _security_groups(ec2: Any, group_ids: list[str]) -> dict[str, SecurityGroup]:
    rules = describe_rules(ec2, group_ids)
    groups: dict[str, SecurityGroup] = {}
    for item in _ec2_filtered(ec2, "describe_security_groups", "SecurityGroups", "group-id", group_ids):
        gid = item["GroupId"]
        groups[gid] = SecurityGroup(
            group_id=gid,
            name=item.get("GroupName", ""),
            vpc_id=item.get("VpcId", ""),
            tags=_tags(item.get("Tags")),
            rules=rules.get(gid, ()),
        )
    return groups


def _first_ipv6(associations: Iterable[dict[str, Any]] | None) -> str | None:
    for assoc in associations or []:
        if (assoc.get("Ipv6CidrBlockState") or {}).get("State", "associated") == "associated":
            return str(assoc["Ipv6CidrBlock"])
    return None


def describe_inventory(
    ec2: Any, elbv2: Any, now: datetime, *, account_id: str = "", region: str = ""
) -> Inventory:
    """Read the NLBs of one account-region and everything that decides their reachability."""
    nlbs, lb_total = _network_load_balancers(elbv2)
    nlb_arns = [lb["LoadBalancerArn"] for lb in nlbs]
    raw_tgs = _target_groups(elbv2, nlb_arns, lb_total)
    tags = _elbv2_tags(elbv2, nlb_arns + [tg["TargetGroupArn"] for tg in raw_tgs])
    attributes = {tg["TargetGroupArn"]: _watched_attributes(elbv2, tg["TargetGroupArn"]) for tg in raw_tgs}
    health = {tg["TargetGroupArn"]: _health(elbv2, tg["TargetGroupArn"]) for tg in raw_tgs}

    subnet_ids = [
        az["SubnetId"] for lb in nlbs for az in lb.get("AvailabilityZones", []) if az.get("SubnetId")
    ]
    subnets = {
        s["SubnetId"]: Subnet(
            s["SubnetId"],
            # absent for an IPv6-only subnet (as GetSubnetAssociatedIPv4CIDRs allows,
            # pkg/networking/utils.go, aws-load-balancer-controller v2.13.0): no IPv4 range, "" (unknown)
            s.get("CidrBlock") or "",
            _first_ipv6(s.get("Ipv6CidrBlockAssociationSet")),
            s.get("AvailabilityZone"),
        )
        for s in _ec2_filtered(ec2, "describe_subnets", "Subnets", "subnet-id", subnet_ids)
    }
    vpc_ids = [lb["VpcId"] for lb in nlbs if lb.get("VpcId")] + [
        tg["VpcId"] for tg in raw_tgs if tg.get("VpcId")
    ]
    vpcs = {
        v["VpcId"]: Vpc(
            v["VpcId"],
            tuple(
                a["CidrBlock"]
                for a in v.get("CidrBlockAssociationSet", [{"CidrBlock": v.get("CidrBlock")}])
                if a.get("CidrBlock")
                and (a.get("CidrBlockState") or {}).get("State", "associated") == "associated"
            ),
            tuple(
                a["Ipv6CidrBlock"]
                for a in v.get("Ipv6CidrBlockAssociationSet", [])
                if (a.get("Ipv6CidrBlockState") or {}).get("State", "associated") == "associated"
            ),
        )
        for v in _ec2_filtered(ec2, "describe_vpcs", "Vpcs", "vpc-id", vpc_ids)
    }

    tg_type = {tg["TargetGroupArn"]: tg.get("TargetType", "instance") for tg in raw_tgs}
    tg_vpc = {tg["TargetGroupArn"]: tg.get("VpcId", "") for tg in raw_tgs}
    instance_ids = [t[0] for arn, ts in health.items() if tg_type[arn] == "instance" for t in ts]
    # ip targets in the VPC (outside it there is no ENI to find: registered with AvailabilityZone
    # "all", or with an address outside the VPC's CIDRs, engine/inventory.py address_outside_vpc).
    outside = {
        (arn, t[0])
        for arn, ts in health.items()
        if tg_type[arn] == "ip"
        for t in ts
        if t[3] == OUTSIDE_VPC_ZONE or address_outside_vpc(t[0], vpcs.get(tg_vpc[arn]))
    }
    in_vpc = {
        (tg_vpc[arn], t[0])
        for arn, ts in health.items()
        if tg_type[arn] == "ip"
        for t in ts
        if (arn, t[0]) not in outside
    }
    primary, enis = _instance_enis(ec2, instance_ids) if instance_ids else ({}, {})
    eni_by_ip: dict[tuple[str, str], str] = {}
    wanted = {ip for _vpc, ip in in_vpc}
    if wanted:
        found = _ip_enis(ec2, sorted(wanted))
        _index(found, eni_by_ip, wanted)
        enis.update({eni.eni_id: eni for eni in found if any(owns_address(eni, ip) for ip in wanted)})
        missing_vpcs = sorted({vpc for vpc, ip in in_vpc if ("", ip) not in eni_by_ip and vpc})
        if missing_vpcs:  # on a delegated prefix: no EC2 filter finds it, so read the VPC's ENIs
            left = {ip for _vpc, ip in in_vpc if ("", ip) not in eni_by_ip}
            owners = [e for e in _vpc_enis(ec2, missing_vpcs) if any(owns_address(e, ip) for ip in left)]
            _index(owners, eni_by_ip, left)
            enis.update({eni.eni_id: eni for eni in owners})

    target_groups: dict[str, TargetGroup] = {}
    for tg in raw_tgs:
        arn = tg["TargetGroupArn"]
        targets = []
        for target_id, port, state, zone in health[arn]:
            if tg_type[arn] == "instance":
                eni_id = primary.get(target_id)
            elif tg_type[arn] == "ip":
                eni_id = eni_by_ip.get((tg.get("VpcId", ""), target_id)) or eni_by_ip.get(("", target_id))
            else:
                eni_id = None
            if (arn, target_id) in outside:
                eni_id = None
            targets.append(Target(target_id, port, eni_id, state, zone))
        target_groups[arn] = TargetGroup(
            arn=arn,
            name=tg.get("TargetGroupName", ""),
            protocol=tg.get("Protocol", ""),
            port=int(tg.get("Port", 0)),
            target_type=tg_type[arn],
            vpc_id=tg.get("VpcId", ""),
            health_check_port=str(tg.get("HealthCheckPort", "traffic-port")),
            health_check_protocol=tg.get("HealthCheckProtocol", "TCP"),
            load_balancer_arns=tuple(tg.get("LoadBalancerArns", [])),
            attributes=attributes[arn],
            targets=tuple(targets),
            tags=tags.get(arn, {}),
            ip_address_type=str(tg.get("IpAddressType") or "ipv4"),
            health_check_timing=_health_check_timing(tg),
        )

    load_balancers = {
        lb["LoadBalancerArn"]: LoadBalancer(
            arn=lb["LoadBalancerArn"],
            name=lb.get("LoadBalancerName", ""),
            type=lb["Type"],
            scheme=lb.get("Scheme", "internet-facing"),
            vpc_id=lb.get("VpcId", ""),
            subnets=tuple(
                subnets.get(az["SubnetId"], Subnet(az["SubnetId"], "", None, az.get("ZoneName")))
                for az in lb.get("AvailabilityZones", [])
                if az.get("SubnetId")
            ),
            security_groups=tuple(lb.get("SecurityGroups", [])),
            ip_address_type=lb.get("IpAddressType", "ipv4"),
            tags=tags.get(lb["LoadBalancerArn"], {}),
        )
        for lb in nlbs
    }
    group_ids = sorted(
        {g for eni in enis.values() for g in eni.security_group_ids}
        | {g for lb in load_balancers.values() for g in lb.security_groups}
    )
    security_groups = _security_groups(ec2, group_ids) if group_ids else {}
    list_ids = sorted(
        {
            r.source.value
            for sg in security_groups.values()
            for r in sg.rules
            if r.source.kind == "prefix_list"
        }
    )
    prefix_lists = _prefix_lists(ec2, list_ids) if list_ids else {}
    return Inventory(
        taken_at=now,
        account_id=account_id,
        region=region,
        load_balancers=load_balancers,
        target_groups=target_groups,
        network_interfaces=enis,
        security_groups=security_groups,
        vpcs=vpcs,
        prefix_lists=prefix_lists,
    )


def rules_for(clients: AwsClients, group_ids: Iterable[str]) -> dict[str, tuple[Rule, ...]]:
    """describe_rules with the target's EC2 client."""
    return describe_rules(clients.client("ec2"), group_ids)


def inventory_for(clients: AwsClients, now: datetime) -> Inventory:
    """describe_inventory with the target's clients, account id (STS, cached) and region."""
    return describe_inventory(
        clients.client("ec2"),
        clients.client("elbv2"),
        now,
        account_id=clients.account_id(),
        region=clients.target.region,
    )
