"""AWS responses of odd but legal shapes, served by moto over HTTP: the inventory reads them (what
it cannot know stays unknown) instead of failing the whole poll."""

from __future__ import annotations

from datetime import UTC, datetime

from exporter.engine.flows import subnet_sources
from exporter.engine.rules import Source
from exporter.sources.aws import AwsClients, AwsTarget
from exporter.sources.inventory import inventory_for
from tests.awsworld import REGION, MotoServer

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_an_nlb_in_an_ipv6_only_subnet_is_read_with_that_subnet_s_ipv4_cidr_unknown(
    clean_moto: MotoServer,
) -> None:
    """A subnet made with Ipv6Native has no CidrBlock in DescribeSubnets (the controller allows for
    it: GetSubnetAssociatedIPv4CIDRs, pkg/networking/utils.go, v2.13.0); the poll read
    s["CidrBlock"] and failed whole with a KeyError."""
    ec2, elbv2 = clean_moto.client("ec2"), clean_moto.client("elbv2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16", AmazonProvidedIpv6CidrBlock=True)["Vpc"]["VpcId"]
    (association,) = ec2.describe_vpcs(VpcIds=[vpc])["Vpcs"][0]["Ipv6CidrBlockAssociationSet"]
    prefix = association["Ipv6CidrBlock"].split("::/")[0]
    dual = ec2.create_subnet(
        VpcId=vpc, CidrBlock="10.0.1.0/24", Ipv6CidrBlock=f"{prefix}::/64", AvailabilityZone=f"{REGION}a"
    )["Subnet"]["SubnetId"]
    only6 = ec2.create_subnet(
        VpcId=vpc, Ipv6Native=True, Ipv6CidrBlock=f"{prefix[:-1]}1::/64", AvailabilityZone=f"{REGION}b"
    )["Subnet"]["SubnetId"]
    lb = elbv2.create_load_balancer(
        Name="dual", Subnets=[dual, only6], Type="network", IpAddressType="dualstack"
    )
    lb_arn = lb["LoadBalancers"][0]["LoadBalancerArn"]
    tg = elbv2.create_target_group(Name="dual", Protocol="TCP", Port=80, VpcId=vpc, TargetType="ip")
    tg_arn = tg["TargetGroups"][0]["TargetGroupArn"]
    elbv2.create_listener(
        LoadBalancerArn=lb_arn,
        Protocol="TCP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg_arn}],
    )

    inventory = inventory_for(AwsClients(AwsTarget(REGION), endpoint_url=clean_moto.url), NOW)

    subnets = {s.subnet_id: s for s in inventory.load_balancers[lb_arn].subnets}
    assert subnets[dual].cidr == "10.0.1.0/24" and subnets[only6].cidr == ""
    assert subnets[only6].ipv6_cidr == f"{prefix[:-1]}1::/64"
    # the IPv4 health-check sources are the subnets that have an IPv4 range; none is made up
    assert subnet_sources(inventory.load_balancers[lb_arn]) == (Source.cidr("10.0.1.0/24"),)
