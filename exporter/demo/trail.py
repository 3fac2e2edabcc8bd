"""CloudTrail records for the demo's own API calls, in the shape CloudTrail writes them.

Each builder takes what the call sent and got back and returns a management-event record:
eventTime at second precision, a fresh eventID, userIdentity of an assumed role (the
controller's IRSA role or an operator's role), requestParameters with CloudTrail's
`{"items": [...]}` lists (an empty list is `{}`), and responseElements.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

Record = dict[str, Any]

LBC_DESCRIPTION = "elbv2.k8s.aws/targetGroupBinding=shared"
EC2_SOURCE = "ec2.amazonaws.com"
ELBV2_SOURCE = "elasticloadbalancing.amazonaws.com"


@dataclass(frozen=True)
class Principal:
    """Who makes the calls: an assumed role, with the session, user agent and source address."""

    role: str
    session: str
    user_agent: str
    source_ip: str
    account: str
    oidc_issuer: str | None = None  # set for an IRSA (web identity) session

    def user_identity(self) -> Record:
        role_arn = f"arn:aws:iam::{self.account}:role/{self.role}"
        principal_id = "AROA" + uuid.uuid5(uuid.NAMESPACE_URL, role_arn).hex[:17].upper()
        web_identity: Record = {}
        if self.oidc_issuer:
            web_identity = {
                "federatedProvider": f"arn:aws:iam::{self.account}:oidc-provider/{self.oidc_issuer}",
                "attributes": {},
            }
        return {
            "type": "AssumedRole",
            "principalId": f"{principal_id}:{self.session}",
            "arn": f"arn:aws:sts::{self.account}:assumed-role/{self.role}/{self.session}",
            "accountId": self.account,
            "accessKeyId": "ASIA" + uuid.uuid5(uuid.NAMESPACE_URL, self.session).hex[:16].upper(),
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "principalId": principal_id,
                    "arn": role_arn,
                    "accountId": self.account,
                    "userName": self.role,
                },
                "webIdFederationData": web_identity,
                "attributes": {"creationDate": _time(datetime.now(tz=UTC)), "mfaAuthenticated": "false"},
            },
        }


@dataclass(frozen=True)
class Permission:
    """One ingress permission: a protocol and port range from CIDRs and/or security groups."""

    protocol: str
    from_port: int
    to_port: int
    cidrs: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    description: str = LBC_DESCRIPTION

    def api(self) -> Record:
        """The boto3 IpPermissions entry."""
        perm: Record = {"IpProtocol": self.protocol, "FromPort": self.from_port, "ToPort": self.to_port}
        if self.cidrs:
            perm["IpRanges"] = [{"CidrIp": c, "Description": self.description} for c in self.cidrs]
        if self.groups:
            perm["UserIdGroupPairs"] = [{"GroupId": g, "Description": self.description} for g in self.groups]
        return perm

    def trail(self, account: str) -> Record:
        """The CloudTrail requestParameters form."""
        groups = [{"userId": account, "groupId": g, "description": self.description} for g in self.groups]
        ranges = [{"cidrIp": c, "description": self.description} for c in self.cidrs]
        return {
            "ipProtocol": self.protocol,
            "fromPort": self.from_port,
            "toPort": self.to_port,
            "groups": _items(groups),
            "ipRanges": _items(ranges),
            "ipv6Ranges": {},
            "prefixListIds": {},
        }

    def sources(self) -> list[tuple[str, str]]:
        """("cidr", value) and ("group", value) pairs, one per rule EC2 stores."""
        return [("cidr", c) for c in self.cidrs] + [("group", g) for g in self.groups]

    def text(self) -> str:
        where = ", ".join([*self.cidrs, *self.groups])
        port = str(self.from_port) if self.from_port == self.to_port else f"{self.from_port}-{self.to_port}"
        return f"{where} {self.protocol}/{port}"


def _items(entries: Sequence[Record]) -> Record:
    return {"items": list(entries)} if entries else {}


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rule_item(rule: Record, account: str) -> Record:
    """A DescribeSecurityGroupRules entry as a CloudTrail securityGroupRuleSet item."""
    item: Record = {
        "groupOwnerId": rule.get("GroupOwnerId") or account,
        "groupId": rule["GroupId"],
        "securityGroupRuleId": rule["SecurityGroupRuleId"],
        "isEgress": bool(rule.get("IsEgress", False)),
        "ipProtocol": rule.get("IpProtocol", "-1"),
        "fromPort": rule.get("FromPort", -1),
        "toPort": rule.get("ToPort", -1),
    }
    if rule.get("CidrIpv4"):
        item["cidrIpv4"] = rule["CidrIpv4"]
    elif rule.get("CidrIpv6"):
        item["cidrIpv6"] = rule["CidrIpv6"]
    elif (rule.get("ReferencedGroupInfo") or {}).get("GroupId"):
        item["referencedGroupInfo"] = {"groupId": rule["ReferencedGroupInfo"]["GroupId"], "userId": account}
    if rule.get("Description"):
        item["description"] = rule["Description"]
    return item


def _record(
    *,
    name: str,
    source: str,
    when: datetime,
    who: Principal,
    region: str,
    request: Record,
    response: Record | None,
    error: tuple[str, str] | None,
) -> Record:
    record: Record = {
        "eventVersion": "1.09",
        "userIdentity": who.user_identity(),
        "eventTime": _time(when),
        "eventSource": source,
        "eventName": name,
        "awsRegion": region,
        "sourceIPAddress": who.source_ip,
        "userAgent": who.user_agent,
    }
    if error is not None:
        record["errorCode"], record["errorMessage"] = error
    record.update(
        {
            "requestParameters": request,
            "responseElements": None if error is not None else response,
            "requestID": str(uuid.uuid4()),
            "eventID": str(uuid.uuid4()),
            "readOnly": False,
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "recipientAccountId": who.account,
            "eventCategory": "Management",
            "tlsDetails": {
                "tlsVersion": "TLSv1.3",
                "cipherSuite": "TLS_AES_128_GCM_SHA256",
                "clientProvidedHostHeader": f"{source.split('.')[0]}.{region}.amazonaws.com",
            },
        }
    )
    return record


def ingress_record(
    action: str,
    *,
    group_id: str,
    permissions: Sequence[Permission],
    rules: Sequence[Record],
    when: datetime,
    who: Principal,
    region: str,
    error: tuple[str, str] | None = None,
) -> Record:
    """Authorize- or RevokeSecurityGroupIngress; `rules` are the affected rules (describe shape)."""
    if action not in ("authorize", "revoke"):
        raise ValueError(f"action must be authorize or revoke, not {action!r}")
    name = "AuthorizeSecurityGroupIngress" if action == "authorize" else "RevokeSecurityGroupIngress"
    request = {"groupId": group_id, "ipPermissions": {"items": [p.trail(who.account) for p in permissions]}}
    response: Record = {"requestId": str(uuid.uuid4()), "_return": True}
    items = [rule_item(rule, who.account) for rule in rules]
    if items:
        key = "securityGroupRuleSet" if action == "authorize" else "revokedSecurityGroupRuleSet"
        response[key] = {"items": items}
    return _record(
        name=name,
        source=EC2_SOURCE,
        when=when,
        who=who,
        region=region,
        request=request,
        response=response,
        error=error,
    )


def attributes_record(
    *,
    target_group_arn: str,
    attributes: dict[str, str],
    when: datetime,
    who: Principal,
    region: str,
    error: tuple[str, str] | None = None,
) -> Record:
    """ModifyTargetGroupAttributes with the attributes sent."""
    pairs = [{"key": k, "value": v} for k, v in attributes.items()]
    return _record(
        name="ModifyTargetGroupAttributes",
        source=ELBV2_SOURCE,
        when=when,
        who=who,
        region=region,
        request={"targetGroupArn": target_group_arn, "attributes": pairs},
        response={"attributes": pairs},
        error=error,
    )
