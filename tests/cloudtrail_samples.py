"""Realistic CloudTrail records and their delivery wrappers, as plain dicts, for tests.

Record builders (all arguments keyword-friendly, every one has a default):

- ``authorize_record`` / ``revoke_record``: Authorize/RevokeSecurityGroupIngress with
  ``permissions`` built by ``permission(...)``; ``rule_ids`` puts a response rule set (one id per
  source, in order); ``revoke_record(rule_ids_request=[...])`` revokes by SecurityGroupRuleIds.
- ``modify_rules_record``: ModifySecurityGroupRules with ``modifications`` built by ``rule_update``.
- ``modify_tg_attributes_record``: ModifyTargetGroupAttributes with an ``attributes`` mapping.
- ``delete_group_record``: DeleteSecurityGroup.
- ``cli_shape``: an Authorize/Revoke record rewritten in the CLI's top-level single-permission form.

Common arguments: ``event_id`` (default: a fresh UUID), ``time`` (ISO string or aware datetime,
default ``T0``), ``actor`` (``CONTROLLER`` or ``OPERATOR`` or ``actor(...)``), ``error_code`` /
``error_message`` (a failed call: responseElements becomes null), ``account``, ``region``.

Wrappers: ``trail_file``/``trail_file_bytes`` (S3 object), ``lookup_event``/``lookup_result``
(LookupEvents), ``eventbridge_envelope``, ``sqs_message``, ``json_lines``.
"""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

ACCOUNT = "111122223333"
REGION = "us-east-1"
T0 = "2026-11-20T12:00:00Z"
NODE_GROUP = "sg-0a1b2c3d4e5f60718"
LBC_DESCRIPTION = "elbv2.k8s.aws/targetGroupBinding=shared"
TG_ARN = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:targetgroup/k8s-shop-web-abc/0123456789abcdef"
CONTROLLER_ROLE = "eks-prod-aws-load-balancer-controller"
CONTROLLER_AGENT = "elbv2.k8s.aws/v2.7.1 aws-sdk-go/1.50.0 (go1.21.6; linux; amd64)"

Record = dict[str, Any]


def actor(
    *,
    role: str = CONTROLLER_ROLE,
    session: str = "1700000000000000000",
    user_agent: str = CONTROLLER_AGENT,
    source_ip: str = "10.0.1.17",
    account: str = ACCOUNT,
) -> Record:
    """The attribution fields of a record made by an assumed role (userIdentity, userAgent, IP)."""
    role_arn = f"arn:aws:iam::{account}:role/{role}"
    return {
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": f"AROAEXAMPLEID:{session}",
            "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}",
            "accountId": account,
            "accessKeyId": "ASIAEXAMPLEKEY",
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "principalId": "AROAEXAMPLEID",
                    "arn": role_arn,
                    "accountId": account,
                    "userName": role,
                },
                "webIdFederationData": {},
                "attributes": {"creationDate": "2026-11-20T11:00:00Z", "mfaAuthenticated": "false"},
            },
        },
        "userAgent": user_agent,
        "sourceIPAddress": source_ip,
    }


CONTROLLER = actor()
OPERATOR = actor(
    role="platform-admin", session="alice", user_agent="aws-cli/2.15.0", source_ip="198.51.100.7"
)


def _time(value: str | datetime) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


def _items(entries: Sequence[Record], plain: bool) -> Any:
    """CloudTrail's list form: {"items": [...]}, {} when empty; a plain list when `plain`."""
    if plain:
        return list(entries)
    return {"items": list(entries)} if entries else {}


def permission(
    from_port: int | None = 31080,
    to_port: int | None = None,
    *,
    protocol: str = "tcp",
    cidrs: Iterable[str] = (),
    cidrs6: Iterable[str] = (),
    groups: Iterable[str] = (),
    prefix_lists: Iterable[str] = (),
    description: str | None = LBC_DESCRIPTION,
    plain_lists: bool = False,
) -> Record:
    """One IpPermission in request form. `to_port` defaults to `from_port`; None omits the port.

    `plain_lists` writes the source lists as plain JSON lists instead of {"items": [...]}.
    """
    to_port = from_port if to_port is None else to_port

    def described(entry: Record) -> Record:
        return {**entry, "description": description} if description is not None else entry

    perm: Record = {"ipProtocol": protocol}
    if from_port is not None:
        perm["fromPort"] = from_port
    if to_port is not None:
        perm["toPort"] = to_port
    perm["groups"] = _items([described({"userId": ACCOUNT, "groupId": g}) for g in groups], plain_lists)
    perm["ipRanges"] = _items([described({"cidrIp": c}) for c in cidrs], plain_lists)
    perm["ipv6Ranges"] = _items([described({"cidrIpv6": c}) for c in cidrs6], plain_lists)
    perm["prefixListIds"] = _items([described({"prefixListId": p}) for p in prefix_lists], plain_lists)
    return perm


def _plain(value: Any) -> Any:
    """Every {"items": [...]} as a plain list, {} as [] (the other list shape)."""
    if isinstance(value, dict):
        if set(value) == {"items"}:
            return [_plain(v) for v in value["items"]]
        if not value:
            return []
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _sources(perm: Record) -> list[Record]:
    """The response-form source fields of each source in a permission, in order."""
    found: list[Record] = []
    for key, field, out in (
        ("ipRanges", "cidrIp", "cidrIpv4"),
        ("ipv6Ranges", "cidrIpv6", "cidrIpv6"),
        ("groups", "groupId", None),
        ("prefixListIds", "prefixListId", "prefixListId"),
    ):
        entries = perm.get(key) or {}
        for entry in entries.get("items", []) if isinstance(entries, dict) else entries:
            source: Record = (
                {"referencedGroupInfo": {"groupId": entry[field], "userId": ACCOUNT}}
                if out is None
                else {out: entry[field]}
            )
            if "description" in entry:
                source["description"] = entry["description"]
            found.append(source)
    return found


def rule_set(
    group_id: str, permissions: Sequence[Record], rule_ids: Sequence[str], *, egress: bool = False
) -> Record:
    """A response rule set: one entry per source of `permissions`, in order, while `rule_ids` last."""
    entries: list[Record] = []
    sources = [(perm, source) for perm in permissions for source in _sources(perm)]
    for (perm, source), rule_id in zip(sources, rule_ids, strict=False):
        entry: Record = {
            "securityGroupRuleId": rule_id,
            "groupId": group_id,
            "groupOwnerId": ACCOUNT,
            "isEgress": egress,
            "ipProtocol": perm["ipProtocol"],
            "fromPort": perm.get("fromPort", -1),
            "toPort": perm.get("toPort", -1),
        }
        entry.update(source)
        entries.append(entry)
    return {"items": entries}


def _record(
    name: str,
    source: str,
    *,
    event_id: str | None,
    time: str | datetime,
    request: Record | None,
    response: Record | None,
    actor: Mapping[str, Any],
    error_code: str | None,
    error_message: str | None,
    account: str,
    region: str,
    read_only: bool = False,
) -> Record:
    record: Record = {
        "eventVersion": "1.09",
        "userIdentity": actor.get("userIdentity"),
        "eventTime": _time(time),
        "eventSource": source,
        "eventName": name,
        "awsRegion": region,
        "sourceIPAddress": actor.get("sourceIPAddress"),
        "userAgent": actor.get("userAgent"),
    }
    if error_code is not None:
        record["errorCode"] = error_code
        record["errorMessage"] = error_message or f"An error occurred ({error_code})"
    record.update(
        {
            "requestParameters": request,
            "responseElements": None if error_code is not None else response,
            "requestID": str(uuid.uuid4()),
            "eventID": event_id or str(uuid.uuid4()),
            "readOnly": read_only,
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "recipientAccountId": account,
            "eventCategory": "Management",
            "tlsDetails": {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256"},
        }
    )
    return record


def _ingress_record(
    name: str,
    *,
    event_id: str | None,
    time: str | datetime,
    group_id: str | None,
    permissions: Sequence[Record],
    response_key: str,
    rule_ids: Sequence[str] | None,
    extra_request: Record,
    extra_response: Record,
    plain_lists: bool,
    actor: Mapping[str, Any],
    error_code: str | None,
    error_message: str | None,
    account: str,
    region: str,
) -> Record:
    request: Record = {} if group_id is None else {"groupId": group_id}
    if permissions:
        request["ipPermissions"] = {"items": list(permissions)}
    request.update(extra_request)
    response: Record = {"requestId": str(uuid.uuid4()), "_return": True}
    if rule_ids is not None:
        response[response_key] = rule_set(group_id or "", permissions, rule_ids)
    response.update(extra_response)
    if plain_lists:
        request, response = _plain(request), _plain(response)
    return _record(
        name,
        "ec2.amazonaws.com",
        event_id=event_id,
        time=time,
        request=request,
        response=response,
        actor=actor,
        error_code=error_code,
        error_message=error_message,
        account=account,
        region=region,
    )


def authorize_record(
    event_id: str | None = None,
    time: str | datetime = T0,
    group_id: str | None = NODE_GROUP,
    permissions: Sequence[Record] = (),
    *,
    rule_ids: Sequence[str] | None = None,
    plain_lists: bool = False,
    actor: Mapping[str, Any] = CONTROLLER,
    error_code: str | None = None,
    error_message: str | None = None,
    account: str = ACCOUNT,
    region: str = REGION,
) -> Record:
    """AuthorizeSecurityGroupIngress on `group_id` (None: the call named no group id).

    `permissions` defaults to tcp/31080 from 0.0.0.0/0. `rule_ids` (one per source, in order)
    adds responseElements.securityGroupRuleSet. `plain_lists` writes every list as a plain list.
    """
    permissions = list(permissions) or [permission(cidrs=["0.0.0.0/0"])]
    return _ingress_record(
        "AuthorizeSecurityGroupIngress",
        event_id=event_id,
        time=time,
        group_id=group_id,
        permissions=permissions,
        response_key="securityGroupRuleSet",
        rule_ids=rule_ids,
        extra_request={},
        extra_response={},
        plain_lists=plain_lists,
        actor=actor,
        error_code=error_code,
        error_message=error_message,
        account=account,
        region=region,
    )


RuleIdShape = Literal["items", "strings", "dicts"]


def rule_ids_parameter(rule_ids: Sequence[str], shape: RuleIdShape = "items") -> Any:
    """securityGroupRuleIds in one of the shapes a record may carry."""
    if shape == "strings":
        return list(rule_ids)
    entries = [{"securityGroupRuleId": rule_id} for rule_id in rule_ids]
    return {"items": entries} if shape == "items" else entries


def revoke_record(
    event_id: str | None = None,
    time: str | datetime = T0,
    group_id: str | None = NODE_GROUP,
    permissions: Sequence[Record] = (),
    *,
    rule_ids: Sequence[str] | None = None,
    rule_ids_request: Sequence[str] = (),
    rule_ids_shape: RuleIdShape = "items",
    revoked_definitions: Sequence[Record] = (),
    unknown_permissions: Sequence[Record] = (),
    plain_lists: bool = False,
    actor: Mapping[str, Any] = CONTROLLER,
    error_code: str | None = None,
    error_message: str | None = None,
    account: str = ACCOUNT,
    region: str = REGION,
) -> Record:
    """RevokeSecurityGroupIngress on `group_id`.

    By permissions (default tcp/31080 from 0.0.0.0/0 when no `rule_ids_request` is given), or
    by id: `rule_ids_request` in `rule_ids_shape`. `rule_ids` adds revokedSecurityGroupRuleSet
    for `permissions` (plus `revoked_definitions`, permissions whose sources get the remaining
    ids); `unknown_permissions` go to responseElements.unknownIpPermissionSet.
    """
    if not permissions and not rule_ids_request:
        permissions = [permission(cidrs=["0.0.0.0/0"])]
    extra_request = (
        {"securityGroupRuleIds": rule_ids_parameter(rule_ids_request, rule_ids_shape)}
        if rule_ids_request
        else {}
    )
    extra_response: Record = {}
    if unknown_permissions:
        extra_response["unknownIpPermissionSet"] = {"items": list(unknown_permissions)}
    record = _ingress_record(
        "RevokeSecurityGroupIngress",
        event_id=event_id,
        time=time,
        group_id=group_id,
        permissions=list(permissions),
        response_key="revokedSecurityGroupRuleSet",
        rule_ids=None,
        extra_request=extra_request,
        extra_response=extra_response,
        plain_lists=False,
        actor=actor,
        error_code=error_code,
        error_message=error_message,
        account=account,
        region=region,
    )
    if rule_ids is not None and record["responseElements"] is not None:
        defined = [*permissions, *revoked_definitions]
        record["responseElements"]["revokedSecurityGroupRuleSet"] = rule_set(
            group_id or "", defined, rule_ids
        )
    if plain_lists:
        record["requestParameters"] = _plain(record["requestParameters"])
        record["responseElements"] = _plain(record["responseElements"])
    return record


def cli_shape(record: Record, *, source_group_name: str | None = None) -> Record:
    """An Authorize/Revoke record of one permission with one source, as the CLI's
    ``--protocol/--port/--cidr`` form (and SDK calls with top-level IpProtocol/CidrIp) is logged:
    top-level ipProtocol, fromPort, toPort and cidrIp or cidrIpv6 beside an empty
    ``"ipPermissions": {}``. With `source_group_name` the request names the source group by name
    (sourceSecurityGroupName/OwnerId, no protocol or ports): only the response says which rule."""
    shaped = json.loads(json.dumps(record))
    params = shaped["requestParameters"]
    (perm,) = params.pop("ipPermissions")["items"]
    top: Record = {"groupId": params.pop("groupId"), "ipPermissions": {}}
    if source_group_name is not None:
        top["sourceSecurityGroupName"] = source_group_name
        top["sourceSecurityGroupOwnerId"] = record.get("recipientAccountId", ACCOUNT)
    else:
        top["ipProtocol"] = perm["ipProtocol"]
        top.update({key: perm[key] for key in ("fromPort", "toPort") if key in perm})
        for key, field_name in (("ipRanges", "cidrIp"), ("ipv6Ranges", "cidrIpv6")):
            for entry in (perm.get(key) or {}).get("items", []):
                top[field_name] = entry[field_name]
    shaped["requestParameters"] = {**top, **params}
    return shaped


def rule_update(
    rule_id: str,
    from_port: int | str = 31080,
    to_port: int | str | None = None,
    *,
    protocol: str = "tcp",
    cidr: str | None = "0.0.0.0/0",
    cidr6: str | None = None,
    group: str | None = None,
    prefix_list: str | None = None,
    description: str | None = LBC_DESCRIPTION,
) -> Record:
    """One ModifySecurityGroupRules entry (PascalCase); ports may be given as strings."""
    definition: Record = {
        "IpProtocol": protocol,
        "FromPort": from_port,
        "ToPort": from_port if to_port is None else to_port,
    }
    if cidr6 is not None:
        definition["CidrIpv6"] = cidr6
    elif group is not None:
        definition["ReferencedGroupId"] = group
    elif prefix_list is not None:
        definition["PrefixListId"] = prefix_list
    elif cidr is not None:
        definition["CidrIpv4"] = cidr
    if description is not None:
        definition["Description"] = description
    return {"SecurityGroupRuleId": rule_id, "SecurityGroupRule": definition}


def modify_rules_record(
    event_id: str | None = None,
    time: str | datetime = T0,
    group_id: str = NODE_GROUP,
    modifications: Sequence[Record] = (),
    *,
    as_list: bool | None = None,
    actor: Mapping[str, Any] = OPERATOR,
    error_code: str | None = None,
    error_message: str | None = None,
    account: str = ACCOUNT,
    region: str = REGION,
) -> Record:
    """ModifySecurityGroupRules on `group_id` with `modifications` from `rule_update`.

    Defaults to one update of sgr-0123456789abcdef0. SecurityGroupRule is a single object for
    one update and a list for several, unless `as_list` says otherwise.
    """
    updates = list(modifications) or [rule_update("sgr-0123456789abcdef0")]
    listed = len(updates) > 1 if as_list is None else as_list
    request = {
        "ModifySecurityGroupRulesRequest": {
            "GroupId": group_id,
            "SecurityGroupRule": updates if listed else updates[0],
        }
    }
    response = {"ModifySecurityGroupRulesResponse": {"return": True, "requestId": str(uuid.uuid4())}}
    return _record(
        "ModifySecurityGroupRules",
        "ec2.amazonaws.com",
        event_id=event_id,
        time=time,
        request=request,
        response=response,
        actor=actor,
        error_code=error_code,
        error_message=error_message,
        account=account,
        region=region,
    )


def modify_tg_attributes_record(
    event_id: str | None = None,
    time: str | datetime = T0,
    target_group_arn: str = TG_ARN,
    attributes: Mapping[str, str] | None = None,
    *,
    actor: Mapping[str, Any] = CONTROLLER,
    error_code: str | None = None,
    error_message: str | None = None,
    account: str = ACCOUNT,
    region: str = REGION,
) -> Record:
    """ModifyTargetGroupAttributes; `attributes` defaults to preserve_client_ip.enabled=false."""
    pairs = [
        {"key": k, "value": v} for k, v in (attributes or {"preserve_client_ip.enabled": "false"}).items()
    ]
    return _record(
        "ModifyTargetGroupAttributes",
        "elasticloadbalancing.amazonaws.com",
        event_id=event_id,
        time=time,
        request={"targetGroupArn": target_group_arn, "attributes": pairs},
        response={"attributes": pairs},
        actor=actor,
        error_code=error_code,
        error_message=error_message,
        account=account,
        region=region,
    )


def delete_group_record(
    event_id: str | None = None,
    time: str | datetime = T0,
    group_id: str | None = NODE_GROUP,
    *,
    group_name: str | None = None,
    actor: Mapping[str, Any] = OPERATOR,
    error_code: str | None = None,
    error_message: str | None = None,
    account: str = ACCOUNT,
    region: str = REGION,
) -> Record:
    """DeleteSecurityGroup by `group_id`, or by `group_name` only (group_id=None)."""
    request: Record = {}
    if group_id is not None:
        request["groupId"] = group_id
    if group_name is not None:
        request["groupName"] = group_name
    return _record(
        "DeleteSecurityGroup",
        "ec2.amazonaws.com",
        event_id=event_id,
        time=time,
        request=request,
        response={"requestId": str(uuid.uuid4()), "_return": True, "groupId": group_id},
        actor=actor,
        error_code=error_code,
        error_message=error_message,
        account=account,
        region=region,
    )


def unwatched_record(event_id: str | None = None, time: str | datetime = T0) -> Record:
    """A DescribeInstances record: valid, but not an event this project watches."""
    return _record(
        "DescribeInstances",
        "ec2.amazonaws.com",
        event_id=event_id,
        time=time,
        request={"instancesSet": {}, "filterSet": {}},
        response=None,
        actor=OPERATOR,
        error_code=None,
        error_message=None,
        account=ACCOUNT,
        region=REGION,
        read_only=True,
    )


# --- delivery wrappers -----------------------------------------------------------------------


def trail_file(records: Iterable[Record]) -> Record:
    """An S3 trail file's JSON document."""
    return {"Records": list(records)}


def trail_file_bytes(records: Iterable[Record], *, compress: bool = True) -> bytes:
    """An S3 trail file's bytes: gzip JSON (or plain JSON)."""
    raw = json.dumps(trail_file(records)).encode()
    return gzip.compress(raw) if compress else raw


def lookup_event(record: Record) -> Record:
    """One LookupEvents result entry: the record as a JSON string in CloudTrailEvent."""
    return {
        "EventId": record.get("eventID"),
        "EventName": record.get("eventName"),
        "ReadOnly": "false",
        "EventTime": 1795176000,
        "EventSource": record.get("eventSource"),
        "Username": "1700000000000000000",
        "Resources": [],
        "CloudTrailEvent": json.dumps(record),
    }


def lookup_result(records: Iterable[Record], next_token: str | None = None) -> Record:
    """A LookupEvents response page."""
    result: Record = {"Events": [lookup_event(r) for r in records]}
    if next_token is not None:
        result["NextToken"] = next_token
    return result


def eventbridge_envelope(record: Record) -> Record:
    """An EventBridge 'AWS API Call via CloudTrail' event holding the record under detail."""
    source = (
        "aws.elasticloadbalancing" if "elasticloadbalancing" in str(record.get("eventSource")) else "aws.ec2"
    )
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "AWS API Call via CloudTrail",
        "source": source,
        "account": record.get("recipientAccountId", ACCOUNT),
        "time": record.get("eventTime"),
        "region": record.get("awsRegion", REGION),
        "resources": [],
        "detail": record,
    }


def sqs_message(record: Record) -> Record:
    """An SQS message (as receive_message returns it) whose body is an EventBridge envelope."""
    return {
        "MessageId": str(uuid.uuid4()),
        "ReceiptHandle": "AQEBexamplehandle==",
        "MD5OfBody": "0" * 32,
        "Body": json.dumps(eventbridge_envelope(record)),
    }


def json_lines(records: Iterable[Record]) -> bytes:
    """One JSON record per line."""
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)
