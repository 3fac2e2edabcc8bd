"""Inventory from a moto server over HTTP: content, call counts, the snapshot command, clients."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from exporter.cli import main
from exporter.engine.inventory import Inventory
from exporter.engine.rules import Rule, Source
from exporter.sources.aws import ApiCallCounter, AwsClients, AwsTarget, ReadOnlyGuard, ReadOnlyViolation
from exporter.sources.inventory import describe_inventory, inventory_for
from tests.awsworld import (
    LBC_DESCRIPTION,
    MOTO_ACCOUNT,
    NODE_PORT,
    REGION,
    MotoServer,
    build_incident_world,
    operations,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def clients_for(server: MotoServer, **kwargs: object) -> AwsClients:
    return AwsClients(AwsTarget(REGION), endpoint_url=server.url, **kwargs)  # type: ignore[arg-type]


def test_inventory_has_the_nlbs_targets_enis_and_rules(clean_moto: MotoServer) -> None:
    ec2, elbv2 = clean_moto.client("ec2"), clean_moto.client("elbv2")
    world = build_incident_world(ec2, elbv2, with_alb=True, with_sg_mode=True, with_ip_targets=True)

    inv = inventory_for(clients_for(clean_moto), NOW)

    assert inv.account_id == MOTO_ACCOUNT and inv.region == REGION and inv.taken_at == NOW
    assert set(inv.load_balancers) == {world.nlb_arn, world.sg_nlb_arn}  # the ALB is left out
    assert all(":loadbalancer/net/" in arn for arn in inv.load_balancers)
    legacy, sg_mode = inv.load_balancers[world.nlb_arn], inv.load_balancers[world.sg_nlb_arn]
    assert (legacy.type, legacy.scheme, legacy.mode, legacy.vpc_id) == (
        "network",
        "internet-facing",
        "legacy",
        world.vpc_id,
    )
    assert [(s.subnet_id, s.cidr, s.availability_zone) for s in legacy.subnets] == [
        (world.subnet_ids[0], "10.0.1.0/24", "us-east-1a"),
        (world.subnet_ids[1], "10.0.2.0/24", "us-east-1b"),
    ]
    assert sg_mode.mode == "sg" and set(sg_mode.security_groups) == {world.nlb_sg_id, world.backend_sg_id}
    assert legacy.tags["elbv2.k8s.aws/cluster"] == "demo"
    assert inv.vpcs[world.vpc_id].cidrs == ("10.0.0.0/16",)

    assert set(inv.target_groups) == {world.tg_arn, world.sg_tg_arn, world.ip_tg_arn}
    tg = inv.target_groups[world.tg_arn]
    assert (tg.protocol, tg.port, tg.target_type, tg.health_check_port) == (
        "TCP",
        NODE_PORT,
        "instance",
        "traffic-port",
    )
    assert tg.load_balancer_arns == (world.nlb_arn,)
    assert tg.attributes == {"preserve_client_ip.enabled": "true"}
    assert (
        inv.target_groups[world.sg_tg_arn].attributes == {}
    )  # never set: absent, the engine applies defaults
    assert tg.tags["service.k8s.aws/stack"] == "shop/web"
    assert tg.tags["service.k8s.aws/resource"] == "shop/web:80"
    assert {(t.target_id, t.port, t.eni_id, t.health) for t in tg.targets} == {
        (i, NODE_PORT, world.instance_enis[i], "healthy") for i in world.instance_ids
    }
    ip_target = inv.target_groups[world.ip_tg_arn].targets
    assert [(t.target_id, t.eni_id) for t in ip_target] == [(world.pod_ip, world.pod_eni_id)]

    for eni_id in [*world.instance_enis.values(), world.pod_eni_id]:
        assert eni_id is not None
        assert inv.network_interfaces[eni_id].security_group_ids == (world.node_sg_id,)
    first = world.instance_ids[0]
    assert inv.network_interfaces[world.instance_enis[first]].instance_id == first

    node = inv.security_groups[world.node_sg_id]
    assert node.tags == {"kubernetes.io/cluster/demo": "owned"}
    assert (
        Rule("tcp", NODE_PORT, NODE_PORT, Source.cidr("0.0.0.0/0"), world.node_rule_id, LBC_DESCRIPTION)
        in node.rules
    )
    assert any(
        r.source == Source.group(world.backend_sg_id) and (r.from_port, r.to_port) == (32000, 32100)
        for r in node.rules
    )
    assert all(r.protocol != "-1" for r in node.rules)  # the default egress rule is not ingress
    assert {world.nlb_sg_id, world.backend_sg_id} <= set(inv.security_groups)


def test_instance_target_uses_the_primary_eni_with_all_its_groups(clean_moto: MotoServer) -> None:
    ec2, elbv2 = clean_moto.client("ec2"), clean_moto.client("elbv2")
    world = build_incident_world(ec2, elbv2)
    other = ec2.create_security_group(GroupName="extra", Description="extra", VpcId=world.vpc_id)["GroupId"]
    instance = world.instance_ids[0]
    primary = world.instance_enis[instance]
    ec2.modify_network_interface_attribute(NetworkInterfaceId=primary, Groups=[world.node_sg_id, other])
    second = ec2.create_network_interface(SubnetId=world.subnet_ids[0], Groups=[other])["NetworkInterface"]
    ec2.attach_network_interface(
        NetworkInterfaceId=second["NetworkInterfaceId"], InstanceId=instance, DeviceIndex=1
    )

    inv = inventory_for(clients_for(clean_moto), NOW)

    target = next(t for t in inv.target_groups[world.tg_arn].targets if t.target_id == instance)
    assert target.eni_id == primary
    assert set(inv.network_interfaces[primary].security_group_ids) == {world.node_sg_id, other}
    assert other in inv.security_groups


def minimum_pages(inv: Inventory, lb_total: int, tg_total: int) -> int:
    """The fewest requests that can return this inventory (the describe APIs as they are)."""
    nlbs, tgs = len(inv.load_balancers), len(inv.target_groups)
    instance_targets = any(tg.target_type == "instance" and tg.targets for tg in inv.target_groups.values())
    ip_targets = any(tg.target_type == "ip" and tg.targets for tg in inv.target_groups.values())
    return (
        1  # sts GetCallerIdentity (first poll of a session)
        + math.ceil(lb_total / 400)  # DescribeLoadBalancers
        + min(nlbs, math.ceil(tg_total / 400))  # DescribeTargetGroups: per NLB or all
        + 2 * tgs  # DescribeTargetGroupAttributes + DescribeTargetHealth: no batch API
        + math.ceil((nlbs + tgs) / 20)  # DescribeTags
        + 1  # DescribeSubnets
        + 1  # DescribeVpcs
        + int(instance_targets)  # DescribeInstances
        + int(ip_targets)  # DescribeNetworkInterfaces
        + 1  # DescribeSecurityGroups
        + math.ceil(
            sum(len(sg.rules) for sg in inv.security_groups.values()) / 1000
        )  # DescribeSecurityGroupRules
    )


def test_requests_per_inventory_poll_are_close_to_the_minimum(
    clean_moto: MotoServer, record_property: pytest.RecordProperty
) -> None:
    ec2, elbv2 = clean_moto.client("ec2"), clean_moto.client("elbv2")
    world = build_incident_world(ec2, elbv2, with_alb=True, with_ip_targets=True)
    extra_tgs = 0
    for n in range(2):  # two more NLBs with eight TCP target groups each: more than 20 ARNs to tag
        arn = elbv2.create_load_balancer(Name=f"more-{n}", Subnets=world.subnet_ids, Type="network")[
            "LoadBalancers"
        ][0]["LoadBalancerArn"]
        for port in range(8):
            tg = elbv2.create_target_group(
                Name=f"more-{n}-{port}",
                Protocol="TCP",
                Port=30000 + port,
                VpcId=world.vpc_id,
                TargetType="instance",
            )["TargetGroups"][0]["TargetGroupArn"]
            elbv2.create_listener(
                LoadBalancerArn=arn,
                Protocol="TCP",
                Port=1000 + port,
                DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}],
            )
            elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": world.instance_ids[port % 2]}])
            extra_tgs += 1
    lb_total = len(elbv2.describe_load_balancers()["LoadBalancers"])
    tg_total = len(elbv2.describe_target_groups()["TargetGroups"])
    clients = clients_for(clean_moto)

    before = len(clean_moto.requests())
    inv = inventory_for(clients, NOW)
    first_poll = clean_moto.requests()[before:]
    second_start = len(clean_moto.requests())
    inventory_for(clients, NOW + timedelta(seconds=30))
    second_poll = clean_moto.requests()[second_start:]

    assert len(inv.load_balancers) == 3 and len(inv.target_groups) == 2 + extra_tgs
    minimum = minimum_pages(inv, lb_total, tg_total)
    record_property("inventory_requests_first_poll", len(first_poll))
    record_property("inventory_minimum_pages", minimum)
    print(f"inventory poll: {len(first_poll)} requests (second poll {len(second_poll)}), minimum {minimum}")
    assert len(first_poll) <= 1.2 * minimum, operations(first_poll)
    assert ("sts", "GetCallerIdentity") not in operations(second_poll)  # account id cached per session
    assert len(second_poll) == len(first_poll) - 1
    # The client-side counter saw exactly what the server saw.
    snapshot = clients.counter.snapshot()
    assert snapshot.total_attempts == len(first_poll) + len(second_poll)
    assert (
        snapshot.calls[("elbv2", "DescribeTargetGroups")] == 2
    )  # listed all (1 page) rather than per NLB (3)
    assert snapshot.calls[("elbv2", "DescribeTags")] == 2 * 2  # 3 NLBs + 18 TGs = 21 ARNs: two batches


def test_describe_inventory_with_no_nlb_makes_two_calls(clean_moto: MotoServer) -> None:
    counter = ApiCallCounter()
    clients = clients_for(clean_moto, counter=counter)
    inv = describe_inventory(clients.client("ec2"), clients.client("elbv2"), NOW)
    assert inv.load_balancers == {} and inv.target_groups == {}
    assert counter.snapshot().calls == {("elbv2", "DescribeLoadBalancers"): 1}


def test_snapshot_command_round_trips(
    clean_moto: MotoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = build_incident_world(clean_moto.client("ec2"), clean_moto.client("elbv2"))
    out = tmp_path / "inv.json"

    assert main(["snapshot", "--output", str(out), "--region", REGION]) == 0
    loaded = Inventory.from_dict(json.loads(out.read_text()))
    assert main(["snapshot"]) == 0  # stdout, region from the environment
    from_stdout = Inventory.from_dict(json.loads(capsys.readouterr().out))

    direct = inventory_for(clients_for(clean_moto), loaded.taken_at)
    assert loaded == direct
    assert from_stdout.target_groups == loaded.target_groups
    assert world.node_rule_id in {r.rule_id for r in loaded.security_groups[world.node_sg_id].rules}
    assert abs(loaded.taken_at - datetime.now(UTC)) < timedelta(minutes=5)


def test_snapshot_command_says_one_line_when_aws_is_unreachable(
    moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # discard port: nothing listens
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    assert main(["snapshot", "--region", REGION]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("snapshot: cannot reach AWS: "), err


def test_snapshot_command_without_credentials(
    moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    assert main(["snapshot", "--region", REGION]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["snapshot: cannot reach AWS: Unable to locate credentials"]


def test_assumed_role_credentials_refresh_before_expiry(clean_moto: MotoServer) -> None:
    clock = {"now": datetime.now(UTC)}
    clients = AwsClients(
        AwsTarget(REGION, role_arn="arn:aws:iam::111111111111:role/sg-churn-read", external_id="ext-id-1"),
        endpoint_url=clean_moto.url,
        time_fetcher=lambda: clock["now"],
    )
    assert clients.account_id() == "111111111111"  # moto acts in the role's account
    clients.client("ec2").describe_vpcs()
    assert clients.counter.snapshot().calls[("sts", "AssumeRole")] == 1
    clock["now"] += timedelta(minutes=50)  # within 15 min of the 1 h expiry: refresh first
    clients.client("ec2").describe_vpcs()
    assert clients.counter.snapshot().calls[("sts", "AssumeRole")] == 2
    assumed = [e for e in clean_moto.requests() if e["operation"] == "AssumeRole"]
    assert len(assumed) == 2


def test_guard_stops_writes_before_they_are_sent(clean_moto: MotoServer) -> None:
    guard = ReadOnlyGuard()
    clients = clients_for(clean_moto, guard=guard)
    vpc = clean_moto.client("ec2").create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    before = len(clean_moto.requests())
    with pytest.raises(ReadOnlyViolation):
        clients.client("ec2").create_security_group(GroupName="x", Description="x", VpcId=vpc)
    sqs = clients.client("sqs")
    with pytest.raises(ReadOnlyViolation):
        sqs.delete_message(QueueUrl=f"{clean_moto.url}/{MOTO_ACCOUNT}/someone-elses", ReceiptHandle="h")
    with pytest.raises(ReadOnlyViolation):
        sqs.send_message(QueueUrl=f"{clean_moto.url}/{MOTO_ACCOUNT}/q", MessageBody="x")
    assert clean_moto.requests()[before:] == []
    own = clean_moto.client("sqs").create_queue(QueueName="own")["QueueUrl"]
    guard.allow_queue(own)
    with pytest.raises(ClientError):  # allowed through: moto rejects the made-up handle
        sqs.delete_message(QueueUrl=own, ReceiptHandle="not-a-handle")
    assert operations(clean_moto.requests()[before:])[-1] == ("sqs", "DeleteMessage")


def test_counter_counts_errors_by_code(clean_moto: MotoServer) -> None:
    clients = clients_for(clean_moto)
    with pytest.raises(ClientError):
        clients.client("ec2").describe_security_groups(GroupIds=["sg-00000000000000000"])
    snapshot = clients.counter.snapshot()
    assert snapshot.calls == {("ec2", "DescribeSecurityGroups"): 1}
    assert snapshot.errors == {("ec2", "DescribeSecurityGroups", "InvalidGroup.NotFound"): 1}
