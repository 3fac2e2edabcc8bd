"""Pure engine fixtures: a small inventory and typed changes, no AWS.

`incident_inventory()` is the seed incident's world: an internet-facing NLB with instance
targets (NodePort 31080) in subnets 10.0.1.0/24 and 10.0.2.0/24, two nodes whose ENIs carry
the node security group `sg-node`, which admits tcp/31080 from 0.0.0.0/0.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from exporter.engine.changes import Actor, AttributeChange, EventMeta, GroupDeletion, RuleChange
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

T0 = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)
NODE_PORT = 31080
TG_ARN = "arn:aws:elasticloadbalancing:us-east-1:111122223333:targetgroup/k8s-shop-web-abc/0123456789abcdef"
LB_ARN = "arn:aws:elasticloadbalancing:us-east-1:111122223333:loadbalancer/net/k8s-shop-web/0123456789abcdef"
SUBNETS = ("10.0.1.0/24", "10.0.2.0/24")
CONTROLLER = Actor(
    principal_arn="arn:aws:sts::111122223333:assumed-role/eks-aws-load-balancer-controller/1700000000",
    identity_type="AssumedRole",
    issuer="eks-aws-load-balancer-controller",
    user_agent="elbv2.k8s.aws/v2.7.1 aws-sdk-go/1.50.0",
    source_ip="10.0.1.17",
)
OPERATOR = Actor(
    principal_arn="arn:aws:sts::111122223333:assumed-role/platform-admin/alice",
    identity_type="AssumedRole",
    issuer="platform-admin",
    user_agent="aws-cli/2.15.0",
    source_ip="198.51.100.7",
)


def tcp(port: int, cidr: str, rule_id: str | None = None) -> Rule:
    return Rule("tcp", port, port, Source.cidr(cidr), rule_id, "elbv2.k8s.aws/targetGroupBinding=shared")


def incident_inventory(
    *,
    preserve: str | None = "true",
    node_rules: tuple[Rule, ...] = (tcp(NODE_PORT, "0.0.0.0/0", "sgr-0world"),),
    extra_group_rules: tuple[Rule, ...] | None = None,
    lb_security_groups: tuple[str, ...] = (),
    scheme: str = "internet-facing",
    target_type: str = "instance",
    taken_at: datetime = T0,
    source_ranges: tuple[str, ...] = (),
) -> Inventory:
    """The incident world as described at `taken_at`."""
    groups = ("sg-node",) if extra_group_rules is None else ("sg-node", "sg-extra")
    enis = {f"eni-{i}": NetworkInterface(f"eni-{i}", groups, (f"10.0.{i}.10",), f"i-{i}") for i in (1, 2)}
    sgs = {"sg-node": SecurityGroup("sg-node", "eks-node", "vpc-1", {}, node_rules)}
    if extra_group_rules is not None:
        sgs["sg-extra"] = SecurityGroup("sg-extra", "extra", "vpc-1", {}, extra_group_rules)
    for sg in lb_security_groups:
        sgs[sg] = SecurityGroup(sg, "nlb-frontend", "vpc-1", {}, ())
    lb = LoadBalancer(
        arn=LB_ARN,
        name="k8s-shop-web",
        type="network",
        scheme=scheme,
        vpc_id="vpc-1",
        subnets=tuple(Subnet(f"subnet-{i}", c) for i, c in enumerate(SUBNETS)),
        security_groups=lb_security_groups,
    )
    tg = TargetGroup(
        arn=TG_ARN,
        name="k8s-shop-web-abc",
        protocol="TCP",
        port=NODE_PORT,
        target_type=target_type,
        vpc_id="vpc-1",
        load_balancer_arns=(LB_ARN,),
        attributes={} if preserve is None else {"preserve_client_ip.enabled": preserve},
        targets=tuple(Target(f"i-{i}", NODE_PORT, f"eni-{i}", "healthy") for i in (1, 2)),
        tags={"service.k8s.aws/stack": "shop/web"},
    )
    services = {TG_ARN: ServiceBinding("shop", "web", source_ranges, "tags")} if source_ranges else {}
    return Inventory(
        taken_at=taken_at,
        account_id="111122223333",
        region="us-east-1",
        load_balancers={lb.arn: lb},
        target_groups={tg.arn: tg},
        network_interfaces=enis,
        security_groups=sgs,
        vpcs={"vpc-1": Vpc("vpc-1", ("10.0.0.0/16",))},
        services=services,
    )


def meta(
    event_id: str, at: datetime, name: str, actor: Actor = CONTROLLER, error: str | None = None
) -> EventMeta:
    return EventMeta(
        event_id=event_id,
        event_time=at,
        event_name=name,
        event_source="ec2.amazonaws.com",
        account_id="111122223333",
        region="us-east-1",
        actor=actor,
        error_code=error,
    )


def authorize(event_id: str, at: datetime, *rules: Rule, group: str = "sg-node", **kw: object) -> RuleChange:
    return RuleChange(meta(event_id, at, "AuthorizeSecurityGroupIngress", **kw), group, "authorize", rules)  # type: ignore[arg-type]


def revoke(event_id: str, at: datetime, *rules: Rule, group: str = "sg-node", **kw: object) -> RuleChange:
    return RuleChange(meta(event_id, at, "RevokeSecurityGroupIngress", **kw), group, "revoke", rules)  # type: ignore[arg-type]


def set_preserve(event_id: str, at: datetime, value: str, actor: Actor = OPERATOR) -> AttributeChange:
    return AttributeChange(
        meta(event_id, at, "ModifyTargetGroupAttributes", actor),
        TG_ARN,
        (("preserve_client_ip.enabled", value),),
    )


def delete_group(event_id: str, at: datetime, group: str) -> GroupDeletion:
    return GroupDeletion(meta(event_id, at, "DeleteSecurityGroup"), group)


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)
