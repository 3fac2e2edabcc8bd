"""A fleet of setups common on real EKS clusters, built in a moto server (issue 12).

`build_fleet(ec2, elbv2)` makes one dual-stack VPC and, per setup, its own node or pod security
group, targets, load balancer and target group, so revoking one setup's admitting rule touches
that setup alone. Each `Setup` names the permission that admits its flows (`admitting`) and the
flow kinds a revoke of it breaks (`affected`).

Setups: a dual-stack NLB in front of an IPv4 target group; a dual-stack NLB in front of an IPv6
target group (ip targets on IPv6 addresses); ip targets on a delegated IPv4 prefix and on a
secondary address, beside two EKS Hybrid Nodes targets (AvailabilityZone "all", and the node's
zone as LBC v2.17.0+ may register them); an SG-mode NLB
whose node rule is a CIDR rule; a Service with source ranges and no Kubernetes access (the
controller-managed rules are the intent); a rule referencing a managed prefix list.
"""

from __future__ import annotations

import ipaddress
import itertools
from dataclasses import dataclass, field
from typing import Any

from tests.awsworld import LBC_DESCRIPTION, _tags

CLUSTER = "fleet"
VPC_CIDR = "10.0.0.0/16"
SUBNET_CIDRS = ("10.0.1.0/24", "10.0.2.0/24")
#: Pods on delegated prefixes get their own subnet: moto picks ENI addresses at random and, unlike
#: EC2, does not keep a delegated prefix's addresses from other ENIs.
POD_CIDR = "10.0.3.0/24"
PREFIX = "10.0.3.32/28"
PREFIX_POD_IP = "10.0.3.37"
SOURCE_RANGES = ("203.0.113.0/24", "198.51.100.0/24")
HYBRID_IP = "192.168.100.10"  # an EKS Hybrid Node's pod: outside the VPC
#: Another, registered with its node's zone instead of "all" (LBC v2.17.0+, v3.5.0: when AWS
#: answers "you must specify an Availability Zone", pkg/targetgroupbinding/resource_manager.go).
HYBRID_ZONED_IP = "192.168.100.11"
IMAGE = "ami-0abcdef1234567890"


@dataclass
class Setup:
    name: str
    tg_arn: str
    group_id: str  # the security group holding the admitting rule
    admitting: list[dict[str, Any]]  # IpPermissions that admit the flows (revoked and restored)
    affected: frozenset[str]  # flow kinds a revoke of `admitting` breaks
    not_evaluable: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _perm(
    port: int,
    *,
    cidrs: tuple[str, ...] = (),
    cidrs6: tuple[str, ...] = (),
    pl: str | None = None,
    marked: bool = True,
) -> dict[str, Any]:
    described = {"Description": LBC_DESCRIPTION} if marked else {}
    perm: dict[str, Any] = {"IpProtocol": "tcp", "FromPort": port, "ToPort": port}
    if cidrs:
        perm["IpRanges"] = [{"CidrIp": c, **described} for c in cidrs]
    if cidrs6:
        perm["Ipv6Ranges"] = [{"CidrIpv6": c, **described} for c in cidrs6]
    if pl:
        perm["PrefixListIds"] = [{"PrefixListId": pl, **described}]
    return perm


class _Builder:
    def __init__(self, ec2: Any, elbv2: Any) -> None:
        self.ec2, self.elbv2 = ec2, elbv2
        vpc = ec2.create_vpc(CidrBlock=VPC_CIDR, AmazonProvidedIpv6CidrBlock=True)["Vpc"]
        self.vpc_id = vpc["VpcId"]
        described = ec2.describe_vpcs(VpcIds=[self.vpc_id])["Vpcs"][0]
        block = ipaddress.ip_network(described["Ipv6CidrBlockAssociationSet"][0]["Ipv6CidrBlock"])
        self.subnet_ipv6 = [str(n) for n in itertools.islice(block.subnets(new_prefix=64), 1, 3)]
        self.subnet_ids = [
            ec2.create_subnet(
                VpcId=self.vpc_id,
                CidrBlock=cidr,
                Ipv6CidrBlock=v6,
                AvailabilityZone=f"{ec2.meta.region_name}{zone}",
            )["Subnet"]["SubnetId"]
            for cidr, v6, zone in zip(SUBNET_CIDRS, self.subnet_ipv6, "ab", strict=True)
        ]
        self.pod_subnet_id = ec2.create_subnet(VpcId=self.vpc_id, CidrBlock=POD_CIDR)["Subnet"]["SubnetId"]

    def group(self, name: str, *perms: dict[str, Any]) -> str:
        gid: str = self.ec2.create_security_group(
            GroupName=name,
            Description=name,
            VpcId=self.vpc_id,
            TagSpecifications=[
                {
                    "ResourceType": "security-group",
                    "Tags": _tags({f"kubernetes.io/cluster/{CLUSTER}": "owned"}),
                }
            ],
        )["GroupId"]
        if perms:
            self.ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=list(perms))
        return gid

    def instance(self, group: str) -> str:
        found = self.ec2.run_instances(
            ImageId=IMAGE, MinCount=1, MaxCount=1, SubnetId=self.subnet_ids[0], SecurityGroupIds=[group]
        )["Instances"][0]
        return str(found["InstanceId"])

    def nlb(self, name: str, *, dualstack: bool = False, groups: tuple[str, ...] = ()) -> str:
        kwargs: dict[str, Any] = {"SecurityGroups": list(groups)} if groups else {}
        if dualstack:
            kwargs["IpAddressType"] = "dualstack"
        arn: str = self.elbv2.create_load_balancer(
            Name=name,
            Subnets=self.subnet_ids,
            Scheme="internet-facing",
            Type="network",
            Tags=_tags({"elbv2.k8s.aws/cluster": CLUSTER, "service.k8s.aws/stack": f"fleet/{name}"}),
            **kwargs,
        )["LoadBalancers"][0]["LoadBalancerArn"]
        return arn

    def target_group(
        self,
        nlb: str,
        name: str,
        port: int,
        targets: list[dict[str, Any]],
        *,
        target_type: str = "instance",
        family: str = "ipv4",
        preserve: str | None = None,
    ) -> str:
        arn: str = self.elbv2.create_target_group(
            Name=name,
            Protocol="TCP",
            Port=port,
            VpcId=self.vpc_id,
            TargetType=target_type,
            IpAddressType=family,
            Tags=_tags({"elbv2.k8s.aws/cluster": CLUSTER, "service.k8s.aws/stack": f"fleet/{name}"}),
        )["TargetGroups"][0]["TargetGroupArn"]
        self.elbv2.create_listener(
            LoadBalancerArn=nlb,
            Protocol="TCP",
            Port=port,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": arn}],
        )
        self.elbv2.register_targets(TargetGroupArn=arn, Targets=targets)
        if preserve is not None:
            self.elbv2.modify_target_group_attributes(
                TargetGroupArn=arn, Attributes=[{"Key": "preserve_client_ip.enabled", "Value": preserve}]
            )
        return arn


def build_nlb_to_alb(ec2: Any, elbv2: Any) -> str:
    """An NLB in front of an ALB (target type "alb"), as the controller's frontend NLB of an
    Ingress makes it (LBC v2.13.0+, v3.5.0 pkg/ingress/model_build_frontend_nlb.go). The ARN of
    its target group."""
    b = _Builder(ec2, elbv2)
    alb_group = b.group("alb-frontend", _perm(80, cidrs=("0.0.0.0/0",), marked=False))
    alb: str = elbv2.create_load_balancer(
        Name="ingress-alb",
        Subnets=b.subnet_ids,
        SecurityGroups=[alb_group],
        Scheme="internal",
        Type="application",
    )["LoadBalancers"][0]["LoadBalancerArn"]
    elbv2.create_listener(
        LoadBalancerArn=alb,
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "200"}}],
    )
    return b.target_group(
        b.nlb("frontend-nlb"), "frontend-nlb", 80, [{"Id": alb, "Port": 80}], target_type="alb"
    )


ALL_SETUPS = (
    "dualstack_ipv4_tg",
    "dualstack_ipv6_tg",
    "prefix_and_hybrid",
    "sg_mode_cidr",
    "source_ranges",
    "prefix_list",
)


def build_fleet(ec2: Any, elbv2: Any, names: tuple[str, ...] = ALL_SETUPS) -> dict[str, Setup]:
    """The named setups of issue 12 (all by default) in steady state (every flow admitted)."""
    b = _Builder(ec2, elbv2)
    setups: dict[str, Setup] = {}

    if "dualstack_ipv4_tg" in names:
        # 1. Dual-stack NLB, IPv4 target group (instance targets, client IPs preserved): 0.0.0.0/0 is all.
        world = _perm(31001, cidrs=("0.0.0.0/0",))
        sg = b.group("dualstack-ipv4-nodes", world)
        nlb = b.nlb("dualstack-ipv4", dualstack=True)
        tg = b.target_group(
            nlb, "dualstack-ipv4", 31001, [{"Id": b.instance(sg), "Port": 31001}], preserve="true"
        )
        setups["dualstack_ipv4_tg"] = Setup(
            "dualstack_ipv4_tg", tg, sg, [world], frozenset({"traffic", "health_check"})
        )

    if "dualstack_ipv6_tg" in names:
        # 2. Dual-stack NLB, IPv6 target group: ip targets on an IPv6 address; ::/0 admits it all.
        world6 = _perm(8002, cidrs6=("::/0",))
        sg = b.group("dualstack-ipv6-pods", world6)
        pod_ip6 = str(ipaddress.ip_network(b.subnet_ipv6[1])[0xA02])
        ec2.create_network_interface(
            SubnetId=b.subnet_ids[1], Groups=[sg], Ipv6Addresses=[{"Ipv6Address": pod_ip6}]
        )
        nlb = b.nlb("dualstack-ipv6", dualstack=True)
        tg = b.target_group(
            nlb,
            "dualstack-ipv6",
            8002,
            [{"Id": pod_ip6, "Port": 8002}],
            target_type="ip",
            family="ipv6",
            preserve="true",
        )
        setups["dualstack_ipv6_tg"] = Setup(
            "dualstack_ipv6_tg", tg, sg, [world6], frozenset({"traffic", "health_check"})
        )

    if "prefix_and_hybrid" in names:
        # 3. ip targets on a delegated prefix and a secondary address, and an EKS Hybrid Nodes pod.
        #    Client IPs not preserved (the ip-target default): the NLB subnets, here the VPC CIDR.
        vpc_rule = _perm(8003, cidrs=(VPC_CIDR,))
        sg = b.group("prefix-pods", vpc_rule)
        eni = ec2.create_network_interface(
            SubnetId=b.pod_subnet_id,
            Groups=[sg],
            SecondaryPrivateIpAddressCount=1,
            Ipv4Prefixes=[{"Ipv4Prefix": PREFIX}],
        )["NetworkInterface"]
        secondary = next(a["PrivateIpAddress"] for a in eni["PrivateIpAddresses"] if not a["Primary"])
        nlb = b.nlb("prefix-pods")
        tg = b.target_group(
            nlb,
            "prefix-pods",
            8003,
            [
                {"Id": PREFIX_POD_IP, "Port": 8003},
                {"Id": secondary, "Port": 8003},
                {"Id": HYBRID_IP, "Port": 8003, "AvailabilityZone": "all"},
                {"Id": HYBRID_ZONED_IP, "Port": 8003, "AvailabilityZone": f"{ec2.meta.region_name}a"},
            ],
            target_type="ip",
        )
        setups["prefix_and_hybrid"] = Setup(
            "prefix_and_hybrid",
            tg,
            sg,
            [vpc_rule],
            frozenset({"traffic", "health_check"}),
            not_evaluable=2,
            extra={"eni_id": eni["NetworkInterfaceId"], "secondary": secondary},
        )

    if "sg_mode_cidr" in names:
        # 4. SG-mode NLB (own frontend group) whose node rule is a CIDR rule the user manages.
        frontend = b.group("sg-mode-frontend")
        user_rule = _perm(31004, cidrs=("0.0.0.0/0",), marked=False)
        sg = b.group("sg-mode-nodes", user_rule)
        nlb = b.nlb("sg-mode-cidr", groups=(frontend,))
        tg = b.target_group(
            nlb, "sg-mode-cidr", 31004, [{"Id": b.instance(sg), "Port": 31004}], preserve="true"
        )
        setups["sg_mode_cidr"] = Setup(
            "sg_mode_cidr", tg, sg, [user_rule], frozenset({"traffic", "health_check"})
        )

    if "source_ranges" in names:
        # 5. A Service with source ranges, no Kubernetes access: the controller's rules are the intent.
        ranges = _perm(31005, cidrs=SOURCE_RANGES)
        health = _perm(31005, cidrs=SUBNET_CIDRS)  # buildHealthCheckSourceCIDRs: ranges are not 0.0.0.0/0
        sg = b.group("ranges-nodes", ranges, health)
        nlb = b.nlb("source-ranges")
        tg = b.target_group(
            nlb, "source-ranges", 31005, [{"Id": b.instance(sg), "Port": 31005}], preserve="true"
        )
        first_range = _perm(31005, cidrs=SOURCE_RANGES[:1])
        setups["source_ranges"] = Setup("source_ranges", tg, sg, [first_range], frozenset({"traffic"}))

    if "prefix_list" in names:
        # 6. A rule referencing a managed prefix list holding the NLB subnets (client IPs not preserved).
        pl = ec2.create_managed_prefix_list(
            PrefixListName="nlb-subnets",
            AddressFamily="IPv4",
            MaxEntries=10,
            Entries=[{"Cidr": c} for c in SUBNET_CIDRS],
        )["PrefixList"]["PrefixListId"]
        listed = _perm(31006, pl=pl)
        sg = b.group("prefix-list-nodes", listed)
        nlb = b.nlb("prefix-list")
        tg = b.target_group(
            nlb, "prefix-list", 31006, [{"Id": b.instance(sg), "Port": 31006}], preserve="false"
        )
        setups["prefix_list"] = Setup(
            "prefix_list",
            tg,
            sg,
            [listed],
            frozenset({"traffic", "health_check"}),
            extra={"prefix_list_id": pl},
        )

    return setups
