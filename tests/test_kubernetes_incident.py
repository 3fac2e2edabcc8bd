"""Acceptance: a rule gap on an internet-facing legacy-mode NLB is reported for the Service's range.

The Service (in kmock, read over HTTP) restricts clients to 203.0.113.0/24; client IPs are
preserved (instance targets). The controller revokes the node rule for that range at t and
authorizes it again at t+60s: one traffic gap of 60 s, attributed to shop/web.
"""

from __future__ import annotations

import copy
import dataclasses
from datetime import UTC, datetime, timedelta

import msgspec

from exporter.engine.bindings import bind_services
from exporter.engine.changes import Actor, AttributeChange, EventMeta, RuleChange
from exporter.engine.flows import requirements
from exporter.engine.gaps import analyze
from exporter.engine.inventory import (
    Intent,
    Inventory,
    LoadBalancer,
    NetworkInterface,
    SecurityGroup,
    Subnet,
    Target,
    TargetGroup,
    Vpc,
)
from exporter.engine.rules import Rule, Source
from exporter.engine.timeutil import format_time
from exporter.engine.triggers import triggers_for
from exporter.reports.words import trigger_detail
from exporter.sources.kubernetes import read_cluster
from tests.kube_emulator import KubeEmulator
from tests.test_kubernetes_source import CLUSTER, TG_ARN, WEB_SERVICE, WEB_TGB, lbc_tags

T0 = datetime(2026, 11, 20, 14, 0, 0, tzinfo=UTC)
LB_ARN = "arn:aws:elasticloadbalancing:us-east-1:111122223333:loadbalancer/net/k8s-shop-web-5d3c1b7a2e/0a1b2c3d4e5f6a7b"
NODE_SG = "sg-0a1b2c3d4e5f60718"
CLIENTS = Source.cidr("203.0.113.0/24")
CLIENT_RULE = Rule("tcp", 31080, 31080, CLIENTS, description="elbv2.k8s.aws/targetGroupBinding=shared")
HEALTH_RULE = Rule(
    "tcp", 31080, 31080, Source.cidr("10.0.0.0/24"), description="elbv2.k8s.aws/targetGroupBinding=shared"
)
CONTROLLER = Actor(
    principal_arn="arn:aws:sts::111122223333:assumed-role/aws-load-balancer-controller/1700000000",
    identity_type="AssumedRole",
    issuer="aws-load-balancer-controller",
    user_agent="elbv2.k8s.aws/v2.7.1 aws-sdk-go/1.50.0",
)


def incident_inventory() -> Inventory:
    """The account as described after the incident (the rule is back), without Kubernetes data."""
    lb = LoadBalancer(
        arn=LB_ARN,
        name="k8s-shop-web-5d3c1b7a2e",
        type="network",
        scheme="internet-facing",
        vpc_id="vpc-1",
        subnets=(Subnet("subnet-a", "10.0.0.0/24", availability_zone="us-east-1a"),),
        security_groups=(),  # legacy mode: node rules name the clients
    )
    tg = TargetGroup(
        arn=TG_ARN,
        name="k8s-shop-web-5d3c1b7a2e",
        protocol="TCP",
        port=31080,
        target_type="instance",
        vpc_id="vpc-1",
        load_balancer_arns=(LB_ARN,),
        attributes={"preserve_client_ip.enabled": "true"},
        targets=(Target("i-0123456789abcdef0", 31080, eni_id="eni-0123456789abcdef0", health="healthy"),),
        tags=lbc_tags(),
    )
    return Inventory(
        taken_at=T0 + timedelta(minutes=5),
        account_id="111122223333",
        region="us-east-1",
        load_balancers={lb.arn: lb},
        target_groups={tg.arn: tg},
        network_interfaces={
            "eni-0123456789abcdef0": NetworkInterface(
                "eni-0123456789abcdef0", (NODE_SG,), ("10.0.0.17",), "i-0123456789abcdef0"
            )
        },
        security_groups={
            NODE_SG: SecurityGroup(NODE_SG, "eks-node", "vpc-1", rules=(CLIENT_RULE, HEALTH_RULE))
        },
        vpcs={"vpc-1": Vpc("vpc-1", ("10.0.0.0/16",))},
    )


def controller_call(event_id: str, at: datetime, action: str) -> RuleChange:
    name = "RevokeSecurityGroupIngress" if action == "revoke" else "AuthorizeSecurityGroupIngress"
    meta = EventMeta(event_id, at, name, "ec2.amazonaws.com", "111122223333", "us-east-1", CONTROLLER)
    return RuleChange(meta, NODE_SG, "revoke" if action == "revoke" else "authorize", (CLIENT_RULE,))


def test_revoke_and_reauthorize_reports_a_gap_for_the_services_range() -> None:
    with KubeEmulator() as kube:
        kube.add_service(WEB_SERVICE)
        kube.add_tgb(WEB_TGB)
        view = read_cluster(kube.api_client())
    bare = incident_inventory()
    inventory = bare.with_services(bind_services(bare.target_groups, view, CLUSTER))
    changes = [
        controller_call("ev-revoke", T0, "revoke"),
        controller_call("ev-authorize", T0 + timedelta(seconds=60), "authorize"),
    ]

    analysis = analyze(inventory, changes)

    (gap,) = analysis.gaps
    assert (gap.target_group_arn, gap.flow, gap.cause) == (TG_ARN, "traffic", "revoke_before_authorize")
    assert (gap.start, gap.end, gap.duration_seconds) == (T0, T0 + timedelta(seconds=60), 60.0)
    assert (gap.opened_by and gap.opened_by.event_id, gap.closed_by and gap.closed_by.event_id) == (
        "ev-revoke",
        "ev-authorize",
    )
    binding = inventory.services[gap.target_group_arn]
    assert (binding.namespace, binding.service, binding.cluster, binding.mapped_by) == (
        "shop",
        "web",
        CLUSTER,
        "targetgroupbinding",
    )
    # The range the gap is about is the Service's, and it is what the binding says LBC maintains.
    lb = inventory.load_balancers[LB_ARN]
    traffic = requirements(
        inventory, inventory.target_groups[TG_ARN], lb, {"preserve_client_ip.enabled": "true"}
    )
    assert {source for alt in traffic["traffic"].alternatives for _, source in alt} == {CLIENTS}
    assert [(r.protocol, r.from_port, r.to_port, r.source) for r in binding.ingress_rules] == [
        (CLIENT_RULE.protocol, CLIENT_RULE.from_port, CLIENT_RULE.to_port, CLIENTS)
    ]


def test_without_the_cluster_the_controllers_rules_are_the_intent() -> None:
    """Tags alone name the Service but not its range: the rules the controller manages on the port
    (203.0.113.0/24 while client IPs are preserved) are the intent, not a guessed 0.0.0.0/0, so the
    same 60 s gap is found as with the cluster, and nothing is open before or after it."""
    bare = incident_inventory()
    inventory = bare.with_services(bind_services(bare.target_groups, None, CLUSTER))
    changes = [
        controller_call("ev-revoke", T0, "revoke"),
        controller_call("ev-authorize", T0 + timedelta(seconds=60), "authorize"),
    ]

    analysis = analyze(inventory, changes)

    assert (inventory.services[TG_ARN].namespace, inventory.services[TG_ARN].service) == ("shop", "web")
    assert [(g.flow, g.cause, g.duration_seconds) for g in analysis.gaps] == [
        ("traffic", "revoke_before_authorize", 60.0)
    ]
    assert analysis.intents[TG_ARN] == Intent("managed_rules", ("203.0.113.0/24",))
    assert analyze(inventory, []).gaps == []


def test_the_field_manager_that_wrote_the_service_is_the_trigger_of_the_controllers_flip() -> None:
    """The annotation was changed by a pipeline (field manager argocd-controller); the controller
    then called ModifyTargetGroupAttributes itself and replaced the rule: the trigger is the
    pipeline's write, the controller's CloudTrail event kept beside it."""
    written = T0 - timedelta(seconds=5)
    service = copy.deepcopy(WEB_SERVICE)
    service["metadata"]["managedFields"] = [
        {"manager": "kubectl-create", "operation": "Update", "time": "2026-11-01T09:00:00Z"},
        {"manager": "argocd-controller", "operation": "Apply", "time": format_time(written)},
        # the controller's status write after it: not a change of what is wanted
        {"manager": "controller", "operation": "Update", "subresource": "status", "time": format_time(T0)},
    ]
    with KubeEmulator() as kube:
        kube.add_service(service)
        kube.add_tgb(WEB_TGB)
        view = read_cluster(kube.api_client())
    bare = incident_inventory()
    inventory = bare.with_services(bind_services(bare.target_groups, view, CLUSTER))
    assert inventory.services[TG_ARN].last_change == ("Service", "argocd-controller", written)
    flip_meta = EventMeta(
        "ev-flip",
        T0 - timedelta(seconds=2),
        "ModifyTargetGroupAttributes",
        "elasticloadbalancing.amazonaws.com",
        "111122223333",
        "us-east-1",
        CONTROLLER,
    )
    changes = [
        AttributeChange(flip_meta, TG_ARN, (("preserve_client_ip.enabled", "true"),)),
        controller_call("ev-revoke", T0, "revoke"),
        controller_call("ev-authorize", T0 + timedelta(seconds=60), "authorize"),
    ]
    analysis = analyze(inventory, changes)
    (gap,) = analysis.gaps
    trigger = triggers_for(analysis.gaps, changes, inventory.services)[gap.key]
    assert (trigger.source, trigger.who, trigger.field_manager, trigger.time) == (
        "kubernetes",
        "argocd-controller",
        "argocd-controller",
        written,
    )
    assert (
        trigger.event_id == "ev-flip"
        and trigger_detail(trigger) == "Service write: preserve_client_ip.enabled=true"
    )
    # Made by a person instead of the controller, the CloudTrail call itself is the trigger.
    by_person = [
        msgspec.structs.replace(
            changes[0],
            meta=msgspec.structs.replace(
                flip_meta,
                actor=Actor(
                    principal_arn="arn:aws:sts::111122223333:assumed-role/platform-admin/alice",
                    identity_type="AssumedRole",
                    issuer="platform-admin",
                ),
            ),
        ),
        *changes[1:],
    ]
    trigger = triggers_for(analysis.gaps, by_person, inventory.services)[gap.key]
    assert (trigger.source, trigger.who) == ("cloudtrail", "platform-admin/alice")
    # Without CloudTrail, the write alone; written after the gap began, it is no trigger.
    assert triggers_for(analysis.gaps, changes[1:], inventory.services)[gap.key].who == "argocd-controller"
    late = {
        TG_ARN: dataclasses.replace(
            inventory.services[TG_ARN], last_change=("Service", "x", T0 + timedelta(seconds=1))
        )
    }
    assert triggers_for(analysis.gaps, changes[1:], late) == {}
