"""CloudTrail records of the inventory's changeable parts, as plain dicts, for tests.

Shapes follow the ELBv2 and EC2 API references as CloudTrail logs requests (camelCase, EC2 lists
as {"items": [...]}) and DOMAIN.md (a ModifyTargetGroup response carries the whole target group,
the request only what changed). Builders share the keyword arguments of tests/cloudtrail_samples.py
(event_id, time, actor, error_code).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from tests.cloudtrail_samples import ACCOUNT, CONTROLLER, REGION, T0, TG_ARN, Record, _record

LB_ARN = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:loadbalancer/net/k8s-shop-web/0123456789abcdef"
ELB = "elasticloadbalancing.amazonaws.com"
EC2 = "ec2.amazonaws.com"


def _make(
    name: str,
    source: str,
    request: Record,
    response: Record | None,
    event_id: str | None,
    time: str | datetime,
    actor: Mapping[str, Any],
    error_code: str | None,
) -> Record:
    return _record(
        name,
        source,
        event_id=event_id,
        time=time,
        request=request,
        response=response,
        actor=actor,
        error_code=error_code,
        error_message=None,
        account=ACCOUNT,
        region=REGION,
    )


def modify_target_group_record(
    event_id: str | None = None,
    time: str | datetime = T0,
    target_group_arn: str = TG_ARN,
    *,
    port: str | int | None = "32000",
    protocol: str | None = None,
    extra: Mapping[str, Any] | None = None,
    actor: Mapping[str, Any] = CONTROLLER,
    error_code: str | None = None,
) -> Record:
    """ModifyTargetGroup: the request holds only what changed; the response the whole group."""
    request: Record = {"targetGroupArn": target_group_arn, **(extra or {})}
    if port is not None:
        request["healthCheckPort"] = port
    if protocol is not None:
        request["healthCheckProtocol"] = protocol
    group = {
        "targetGroupArn": target_group_arn,
        "targetGroupName": "k8s-shop-web-abc",
        "protocol": "TCP",
        "port": 31080,
        "vpcId": "vpc-1",
        "healthCheckProtocol": protocol or "TCP",
        "healthCheckPort": str(port) if port is not None else "traffic-port",
        "healthCheckEnabled": True,
        "healthCheckIntervalSeconds": 10,
        "targetType": "instance",
    }
    return _make(
        "ModifyTargetGroup", ELB, request, {"targetGroups": [group]}, event_id, time, actor, error_code
    )


def modify_eni_groups_record(
    event_id: str | None = None,
    time: str | datetime = T0,
    eni_id: str = "eni-1",
    groups: Sequence[str] = ("sg-new",),
    *,
    plain: bool = False,
    actor: Mapping[str, Any] = CONTROLLER,
    error_code: str | None = None,
) -> Record:
    """ModifyNetworkInterfaceAttribute with groupSet ({"items": [{"groupId"}]}, or a plain list)."""
    group_set: Any = list(groups) if plain else {"items": [{"groupId": g} for g in groups]}
    request = {"networkInterfaceId": eni_id, "groupSet": group_set}
    return _make(
        "ModifyNetworkInterfaceAttribute",
        EC2,
        request,
        {"requestId": "r", "_return": True},
        event_id,
        time,
        actor,
        error_code,
    )


def set_security_groups_record(
    event_id: str | None = None,
    time: str | datetime = T0,
    load_balancer_arn: str = LB_ARN,
    groups: Sequence[str] = ("sg-lb2",),
    *,
    actor: Mapping[str, Any] = CONTROLLER,
    error_code: str | None = None,
) -> Record:
    request = {"loadBalancerArn": load_balancer_arn, "securityGroups": list(groups)}
    return _make(
        "SetSecurityGroups",
        ELB,
        request,
        {"securityGroupIds": list(groups)},
        event_id,
        time,
        actor,
        error_code,
    )


def set_subnets_record(
    event_id: str | None = None,
    time: str | datetime = T0,
    load_balancer_arn: str = LB_ARN,
    subnets: Sequence[str] = ("subnet-0", "subnet-1"),
    *,
    mappings: bool = False,
    actor: Mapping[str, Any] = CONTROLLER,
    error_code: str | None = None,
) -> Record:
    request: Record = {"loadBalancerArn": load_balancer_arn}
    if mappings:
        request["subnetMappings"] = [{"subnetId": s} for s in subnets]
    else:
        request["subnets"] = list(subnets)
    zones = [{"zoneName": f"us-east-1{chr(97 + i)}", "subnetId": s} for i, s in enumerate(subnets)]
    return _make("SetSubnets", ELB, request, {"availabilityZones": zones}, event_id, time, actor, error_code)


def targets_record(
    action: str,
    event_id: str | None = None,
    time: str | datetime = T0,
    target_group_arn: str = TG_ARN,
    targets: Sequence[tuple[str, int | None]] = (("i-3", None),),
    *,
    actor: Mapping[str, Any] = CONTROLLER,
    error_code: str | None = None,
) -> Record:
    """RegisterTargets (action "register") or DeregisterTargets; a port of None is left out."""
    listed = [{"id": i} if p is None else {"id": i, "port": p} for i, p in targets]
    name = "RegisterTargets" if action == "register" else "DeregisterTargets"
    request = {"targetGroupArn": target_group_arn, "targets": listed}
    return _make(name, ELB, request, None, event_id, time, actor, error_code)


#: API calls the test recorder (tests/awsworld.CloudTrailRecorder) turns into these records.
RECORDED_CALLS = frozenset(
    {
        "ModifyTargetGroup",
        "ModifyNetworkInterfaceAttribute",
        "SetSecurityGroups",
        "SetSubnets",
        "RegisterTargets",
        "DeregisterTargets",
    }
)


def _camel(value: Any) -> Any:
    """boto3 (PascalCase) parameters and responses as CloudTrail logs ELBv2 ones (camelCase)."""
    if isinstance(value, dict):
        return {k[:1].lower() + k[1:]: _camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value


def record_of_call(
    name: str,
    params: Mapping[str, Any],
    parsed: Mapping[str, Any],
    *,
    time: str | datetime,
    actor: Mapping[str, Any],
    error_code: str | None,
    error_message: str | None,
    account: str,
    region: str,
) -> Record:
    """The CloudTrail record of one of RECORDED_CALLS made through boto3."""
    if name == "ModifyNetworkInterfaceAttribute":
        request: Record = {"networkInterfaceId": params["NetworkInterfaceId"]}
        if "Groups" in params:
            request["groupSet"] = {"items": [{"groupId": g} for g in params["Groups"]]}
        if "Description" in params:
            request["description"] = _camel(params["Description"])
        response: Record | None = {"requestId": "r", "_return": True}
        source = EC2
    else:
        request = _camel(dict(params))
        kept = {k: v for k, v in parsed.items() if k != "ResponseMetadata"}
        response = json.loads(json.dumps(_camel(kept), default=str)) or None
        source = ELB
    return _record(
        name,
        source,
        event_id=None,
        time=time,
        request=request,
        response=response,
        actor=actor,
        error_code=error_code,
        error_message=error_message,
        account=account,
        region=region,
    )
