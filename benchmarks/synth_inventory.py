"""A synthetic inventory at scale, shaped like a fleet of EKS clusters behind NLBs (seeded).

Per cluster (one VPC, three NLB subnets): four node groups of 25 nodes; every node has a primary
ENI (instance targets) and a secondary ENI holding pod IPs (ip targets), both carrying the node
group's security group and the cluster security group, so targets share security groups as they
do in EKS. Fifty target groups per cluster, two per NLB, ten targets each, all in one node group;
half the NLBs are legacy (no security groups), half SG mode (frontend SG + the cluster's backend
SG). Target groups mix TCP/UDP/TCP_UDP, instance/ip, internet-facing/internal, service source
ranges, and preserve_client_ip on, off or absent (the AWS default).

Each node group's security group holds the controller's rules for its target groups (client or
subnet CIDRs on the port in legacy mode, one merged range from the backend SG in SG mode, health
checks from the subnets), then ordinary rules (ssh from a bastion, kubelet from the control plane,
node-to-node, prefix lists, IPv6) up to RULES_PER_GROUP. Every other group is filled the same
way, so the fleet has 20 security groups of 60 rules per cluster: 2,000 groups at 5,000 target
groups. Every flow is admitted before the changes, as in a healthy fleet.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from exporter.engine.changes import (
    Actor,
    AttributeChange,
    Change,
    EventMeta,
    InterfaceGroupsChange,
    RuleChange,
    TargetsChange,
)
from exporter.engine.inventory import (
    Inventory,
    LoadBalancer,
    NetworkInterface,
    SecurityGroup,
    ServiceBinding,
    Subnet,
    Target,
    TargetGroup,
    Vpc,
)
from exporter.engine.rules import Rule, Source

ACCOUNT = "111122223333"
REGION = "us-east-1"
TAKEN_AT = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)
TARGET_GROUPS_PER_CLUSTER = 50
TARGETS_PER_GROUP = 10
NODE_GROUPS = 4
NODES_PER_GROUP = 25
GROUPS_PER_CLUSTER = 20
RULES_PER_GROUP = 60
LBC = "elbv2.k8s.aws/targetGroupBinding=shared"
CONTROLLER = Actor(
    principal_arn=f"arn:aws:sts::{ACCOUNT}:assumed-role/eks-aws-load-balancer-controller/1700000000",
    identity_type="AssumedRole",
    issuer="eks-aws-load-balancer-controller",
    user_agent="elbv2.k8s.aws/v2.7.1 aws-sdk-go/1.50.0",
    source_ip="10.0.1.17",
)


@dataclass(frozen=True)
class Fleet:
    """The inventory and a few facts the benchmark reports or changes."""

    inventory: Inventory
    clusters: int
    node_groups: tuple[str, ...]  # ids of the node-group security groups (first one per cluster first)
    legacy_target_groups: tuple[str, ...]

    @property
    def rules(self) -> int:
        return sum(len(sg.rules) for sg in self.inventory.security_groups.values())

    @property
    def targets(self) -> int:
        return sum(len(tg.targets) for tg in self.inventory.target_groups.values())


def _tcp(port: int, source: Source, low: int | None = None, protocol: str = "tcp") -> Rule:
    return Rule(protocol, port if low is None else low, port, source, None, LBC)


def _filler(rng: random.Random, cluster_sg: str, count: int) -> list[Rule]:
    """Ordinary rules that are not the controller's: admin, control plane, node-to-node, misc."""
    rules: list[Rule] = [
        Rule("-1", -1, -1, Source.group(cluster_sg), None, "node to node"),
        Rule("tcp", 10250, 10250, Source.group(f"sg-cp{cluster_sg[-8:]}"), None, "kubelet"),
        Rule("tcp", 443, 443, Source.group(f"sg-cp{cluster_sg[-8:]}"), None, "webhooks"),
        Rule("tcp", 22, 22, Source.cidr("192.168.100.0/24"), None, "bastion"),
        Rule("tcp", 9100, 9100, Source("prefix_list", "pl-0monitoring"), None, "node exporter"),
    ]
    while len(rules) < count:
        kind = rng.random()
        port = rng.choice(
            (53, 443, 3000, 5432, 6379, 8080, 8443, 9090, 9443, 10254, 15000 + rng.randrange(500))
        )
        if kind < 0.5:
            source = Source.cidr(
                f"172.{16 + rng.randrange(16)}.{rng.randrange(256)}.0/{rng.choice((22, 24, 26))}"
            )
        elif kind < 0.7:
            source = Source.group(f"sg-0{rng.getrandbits(64):016x}")
        elif kind < 0.85:
            source = Source.cidr(f"2600:1f18:{rng.getrandbits(16):x}:{rng.getrandbits(8):x}00::/56")
        else:
            source = Source("prefix_list", f"pl-0{rng.getrandbits(32):08x}")
        protocol = rng.choice(("tcp", "tcp", "tcp", "udp"))
        rules.append(Rule(protocol, port, port + rng.choice((0, 0, 0, 10)), source, None, "team rule"))
    return rules[:count]


def build_fleet(target_groups: int = 5_000, seed: int = 7) -> Fleet:
    """A fleet with `target_groups` target groups (rounded up to whole clusters of 50)."""
    rng = random.Random(seed)
    clusters = max(1, -(-target_groups // TARGET_GROUPS_PER_CLUSTER))
    lbs: dict[str, LoadBalancer] = {}
    tgs: dict[str, TargetGroup] = {}
    enis: dict[str, NetworkInterface] = {}
    sgs: dict[str, SecurityGroup] = {}
    vpcs: dict[str, Vpc] = {}
    services: dict[str, ServiceBinding] = {}
    node_group_ids: list[str] = []
    legacy: list[str] = []
    for c in range(clusters):
        vpc_id = f"vpc-{c:08x}"
        second, third = divmod(c, 64)
        vpc_cidr = f"10.{second % 256}.{third * 4}.0/22" if clusters > 1 else "10.0.0.0/16"
        vpcs[vpc_id] = Vpc(vpc_id, (vpc_cidr,))
        base = vpc_cidr.split("/")[0].rsplit(".", 2)[0]
        subnets = tuple(
            Subnet(f"subnet-{c:06x}{z}", f"{base}.{third * 4 + z}.0/26", None, f"{REGION}{'abc'[z]}")
            for z in range(3)
        )
        cluster_sg = f"sg-c{c:07x}"
        backend_sg = f"sg-b{c:07x}"
        groups = [f"sg-n{c:05x}{g:02x}" for g in range(NODE_GROUPS)]
        node_group_ids.extend(groups)
        controller_rules: dict[str, list[Rule]] = {g: [] for g in groups}
        sg_mode_ports: dict[str, list[tuple[str, int]]] = {g: [] for g in groups}
        # Nodes: a primary ENI (instance targets) and a secondary ENI (pod IPs) each.
        nodes: list[list[tuple[str, str, str]]] = []  # per group: (instance id, primary ENI, pod ENI)
        for g, group in enumerate(groups):
            members = []
            for n in range(NODES_PER_GROUP):
                instance = f"i-{c:06x}{g:02x}{n:03x}"
                primary, pods = f"eni-p{c:06x}{g:02x}{n:03x}", f"eni-s{c:06x}{g:02x}{n:03x}"
                ips = (f"{base}.{third * 4 + 2}.{g * NODES_PER_GROUP + n}",)
                enis[primary] = NetworkInterface(primary, (group, cluster_sg), ips, instance, "")
                enis[pods] = NetworkInterface(pods, (group, cluster_sg), (), instance, "aws-K8S-" + instance)
                members.append((instance, primary, pods))
            nodes.append(members)
        frontends: list[str] = []
        for t in range(TARGET_GROUPS_PER_CLUSTER):
            index = c * TARGET_GROUPS_PER_CLUSTER + t
            if index >= target_groups:
                break
            pair = t // 2
            lb_name = f"k8s-ns{c}-svc{pair}"
            lb_arn = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:loadbalancer/net/{lb_name}/{c:08x}{pair:08x}"
            sg_mode = pair % 2 == 1
            if lb_arn not in lbs:
                frontend = f"sg-f{c:05x}{pair:02x}"
                if sg_mode:
                    frontends.append(frontend)
                lbs[lb_arn] = LoadBalancer(
                    arn=lb_arn,
                    name=lb_name,
                    type="network",
                    scheme="internal" if rng.random() < 0.3 else "internet-facing",
                    vpc_id=vpc_id,
                    subnets=subnets,
                    security_groups=(frontend, backend_sg) if sg_mode else (),
                )
            lb = lbs[lb_arn]
            pick = rng.random()
            protocol = "UDP" if pick < 0.05 else "TCP_UDP" if pick < 0.08 else "TCP"
            target_type = "ip" if rng.random() < 0.4 else "instance"
            port = (
                30000 + (index * 7) % 2700
                if target_type == "instance"
                else rng.choice((8080, 8443, 9000, 3000))
            )
            preserve = rng.choice(("true", "false", None))
            attributes = {} if preserve is None else {"preserve_client_ip.enabled": preserve}
            g = t % NODE_GROUPS
            group = groups[g]
            chosen = rng.sample(nodes[g], TARGETS_PER_GROUP)
            if target_type == "instance":
                targets = tuple(Target(instance, port, primary, "healthy") for instance, primary, _ in chosen)
            else:
                targets = tuple(
                    Target(f"{base}.{third * 4 + 3}.{k}", port, pods, "healthy")
                    for k, (_, _, pods) in enumerate(chosen)
                )
            tg_arn = (
                f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:targetgroup/k8s-ns{c}-svc{t}/{index:016x}"
            )
            name = f"k8s-ns{c}-svc{t}-{index:010x}"
            ranges: tuple[str, ...] = ()
            if rng.random() < 0.1:
                ranges = ("203.0.113.0/24", "198.51.100.0/24")
            services[tg_arn] = ServiceBinding(
                f"ns{c}", f"svc{t}", ranges, "targetgroupbinding", f"cluster-{c}"
            )
            tgs[tg_arn] = TargetGroup(
                arn=tg_arn,
                name=name,
                protocol=protocol,
                port=port,
                target_type=target_type,
                vpc_id=vpc_id,
                load_balancer_arns=(lb_arn,),
                attributes=attributes,
                targets=targets,
            )
            transports = (
                ("tcp", "udp") if protocol == "TCP_UDP" else ("udp",) if protocol == "UDP" else ("tcp",)
            )
            if sg_mode:  # traffic on the transports, health checks on TCP: merged per protocol below
                sg_mode_ports[group].extend((proto, port) for proto in {*transports, "tcp"})
                continue
            legacy.append(tg_arn)
            client_side = (
                preserve == "true" or protocol != "TCP" or (preserve is None and target_type == "instance")
            )
            if not client_side:
                sources = [Source.cidr(s.cidr) for s in subnets]
            elif ranges:
                sources = [Source.cidr(r) for r in ranges]
            elif lb.scheme == "internal":
                sources = [Source.cidr(vpc_cidr)]
            else:
                sources = [Source.cidr("0.0.0.0/0")]
            for proto in transports:
                controller_rules[group].extend(_tcp(port, source, protocol=proto) for source in sources)
            controller_rules[group].extend(_tcp(port, Source.cidr(s.cidr)) for s in subnets)
        for group in groups:
            merged: dict[str, list[int]] = {}
            for proto, port in sg_mode_ports[group]:
                merged.setdefault(proto, []).append(port)
            for proto, ports in sorted(merged.items()):
                controller_rules[group].append(_tcp(max(ports), Source.group(backend_sg), min(ports), proto))
            unique = list(dict.fromkeys(controller_rules[group]))
            rules = unique + _filler(rng, cluster_sg, max(0, RULES_PER_GROUP - len(unique)))
            sgs[group] = _group(group, vpc_id, rules)
        others = [cluster_sg, backend_sg, *frontends]
        while len(others) < GROUPS_PER_CLUSTER - NODE_GROUPS:
            others.append(f"sg-x{c:05x}{len(others):02x}")
        for other in others:
            sgs[other] = _group(other, vpc_id, _filler(rng, cluster_sg, RULES_PER_GROUP))
    inventory = Inventory(
        taken_at=TAKEN_AT,
        account_id=ACCOUNT,
        region=REGION,
        load_balancers=lbs,
        target_groups=tgs,
        network_interfaces=enis,
        security_groups=sgs,
        vpcs=vpcs,
        services=services,
    )
    return Fleet(inventory, clusters, tuple(node_group_ids), tuple(legacy))


def _group(group_id: str, vpc_id: str, rules: list[Rule]) -> SecurityGroup:
    with_ids = tuple(
        Rule(r.protocol, r.from_port, r.to_port, r.source, f"sgr-{group_id[3:]}{i:04x}", r.description)
        for i, r in enumerate(rules)
    )
    return SecurityGroup(group_id, group_id, vpc_id, {}, with_ids)


def handful_of_changes(fleet: Fleet, count: int = 6) -> list[Change]:
    """A controller flip: revoke then authorize a node group's 0.0.0.0/0 rule a minute later, and
    a preserve_client_ip change, all before the inventory was taken (so the sweep undoes them)."""
    changes: list[Change] = []
    moment = fleet.inventory.taken_at - timedelta(minutes=30)
    sgs = fleet.inventory.security_groups
    open_to_world = [g for g in fleet.node_groups if any(r.source.value == "0.0.0.0/0" for r in sgs[g].rules)]
    groups = open_to_world or list(fleet.node_groups)
    legacy = fleet.legacy_target_groups
    for i in range(count):
        moment += timedelta(seconds=20)
        meta = EventMeta(
            event_id=f"bench-{i:04d}",
            event_time=moment,
            event_name="",
            event_source="ec2.amazonaws.com",
            account_id=ACCOUNT,
            region=REGION,
            actor=CONTROLLER,
        )
        group_id = groups[(i // 3) * len(groups) // max(1, count // 3) % len(groups)]
        rules = tuple(r for r in sgs[group_id].rules if r.source.value == "0.0.0.0/0")[:1] or (
            Rule("tcp", 31999, 31999, Source.cidr("0.0.0.0/0"), None, LBC),
        )
        step = i % 3
        if step == 0:
            changes.append(RuleChange(_named(meta, "RevokeSecurityGroupIngress"), group_id, "revoke", rules))
        elif step == 1:
            changes.append(
                RuleChange(_named(meta, "AuthorizeSecurityGroupIngress"), group_id, "authorize", rules)
            )
        else:
            arn = legacy[(i * 13) % len(legacy)] if legacy else next(iter(fleet.inventory.target_groups))
            value = fleet.inventory.target_groups[arn].attributes.get("preserve_client_ip.enabled", "true")
            changes.append(
                AttributeChange(
                    _named(meta, "ModifyTargetGroupAttributes"),
                    arn,
                    (("preserve_client_ip.enabled", value),),
                )
            )
    return changes


def inventory_churn(fleet: Fleet, targets: int = 250, enis: int = 100) -> list[Change]:
    """Inventory changes before the anchor: `targets` targets deregistered and registered again
    10 s later, and `enis` ENIs given (again) the groups they have, one every few seconds. They
    move nothing the anchor does not show, so the gaps are those of the other changes."""
    inventory = fleet.inventory
    changes: list[Change] = []
    moment = inventory.taken_at - timedelta(hours=1)
    listed = [(tg.arn, t) for tg in inventory.target_groups.values() for t in tg.targets[:1]]
    for i, (arn, target) in enumerate(listed[:targets]):
        actions: tuple[Literal["deregister", "register"], ...] = ("deregister", "register")
        for n, action in enumerate(actions):
            meta = EventMeta(
                f"churn-{i:05d}-{n}", moment + timedelta(seconds=10 * n), f"{action.title()}Targets"
            )
            targeted = ((target.target_id, target.port),)
            changes.append(TargetsChange(_named(meta, meta.event_name), arn, action, targeted))
        moment += timedelta(seconds=3)
    for i, eni in enumerate(list(inventory.network_interfaces.values())[:enis]):
        meta = EventMeta(
            f"churn-eni-{i:05d}", moment + timedelta(seconds=5 * i), "ModifyNetworkInterfaceAttribute"
        )
        changes.append(InterfaceGroupsChange(meta, eni.eni_id, eni.security_group_ids))
    return changes


def _named(meta: EventMeta, name: str) -> EventMeta:
    source = "elasticloadbalancing.amazonaws.com" if name.startswith("ModifyTarget") else meta.event_source
    return EventMeta(meta.event_id, meta.event_time, name, source, meta.account_id, meta.region, meta.actor)
