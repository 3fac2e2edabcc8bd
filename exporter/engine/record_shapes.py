"""The CloudTrail record shapes the parser reads, declared as msgspec Structs (only the fields read).

Records are decoded straight into these (exporter/engine/records.py reads them; nothing walks
dicts). They hold what a record may hold, hostile records included, so that decoding never
fails where the parser has something to say about a value:

- a value the parser checks (an id, a port, a protocol, a time) is declared ``Any``: whatever
  JSON holds there reaches the parser, which accepts it or rejects the record with its reason;
- an object the parser reads into is declared as its Struct *or any other JSON value*
  (``Struct | list | str | int | float | bool | None``), so a list or a number in its place is
  the parser's to reject;
- CloudTrail's lists come as ``{"items": [...]}``, as a plain list, as ``{}`` or null (empty), or
  as the one object itself: each element Struct also declares ``items``, and a list field is the
  element Struct (the wrapper, or the one object) or a list of elements;
- keys are read in camelCase and, where the parser allowed it, in PascalCase (``IpProtocol``);
  camelCase wins when both are there (the order of keys in the text is not kept).

Every field defaults to UNSET (absent), which the parser tells apart from null. Instances are
frozen and not tracked by the cyclic garbage collector (``gc=False``): they hold no cycles.
"""

from __future__ import annotations

from typing import Any

import msgspec

UNSET: Any = msgspec.UNSET


class Issuer(msgspec.Struct, frozen=True, gc=False):
    """userIdentity.sessionContext.sessionIssuer: the role a session was issued by."""

    arn: Any = UNSET
    userName: Any = UNSET
    Arn: Any = UNSET
    UserName: Any = UNSET


class SessionContext(msgspec.Struct, frozen=True, gc=False):
    """userIdentity.sessionContext."""

    sessionIssuer: IssuerValue = UNSET


class Identity(msgspec.Struct, frozen=True, gc=False):
    """userIdentity."""

    type: Any = UNSET
    arn: Any = UNSET
    accountId: Any = UNSET
    sessionContext: SessionContextValue = UNSET
    Arn: Any = UNSET
    Type: Any = UNSET
    AccountId: Any = UNSET


class Range(msgspec.Struct, frozen=True, gc=False):
    """One source of a permission (ipRanges, ipv6Ranges, groups, prefixListIds items)."""

    cidrIp: Any = UNSET
    cidrIpv6: Any = UNSET
    groupId: Any = UNSET
    prefixListId: Any = UNSET
    description: Any = UNSET
    items: RangeList = UNSET
    CidrIp: Any = UNSET
    CidrIpv6: Any = UNSET
    GroupId: Any = UNSET
    PrefixListId: Any = UNSET
    Description: Any = UNSET


class Permission(msgspec.Struct, frozen=True, gc=False):
    """One IpPermission (request form)."""

    ipProtocol: Any = UNSET
    fromPort: Any = UNSET
    toPort: Any = UNSET
    groups: RangeList = UNSET
    ipRanges: RangeList = UNSET
    ipv6Ranges: RangeList = UNSET
    prefixListIds: RangeList = UNSET
    items: PermissionList = UNSET
    IpProtocol: Any = UNSET
    FromPort: Any = UNSET
    ToPort: Any = UNSET
    IpRanges: RangeList = UNSET
    Ipv6Ranges: RangeList = UNSET
    Groups: RangeList = UNSET
    PrefixListIds: RangeList = UNSET


class GroupInfo(msgspec.Struct, frozen=True, gc=False):
    """referencedGroupInfo of a rule."""

    groupId: Any = UNSET
    GroupId: Any = UNSET


class RuleEntry(msgspec.Struct, frozen=True, gc=False):
    """A rule in the one-source form: a response rule set entry (SecurityGroupRule), a
    ModifySecurityGroupRules entry (securityGroupRuleId + securityGroupRule), or that definition."""

    securityGroupRuleId: Any = UNSET
    groupId: Any = UNSET
    isEgress: Any = UNSET
    ipProtocol: Any = UNSET
    fromPort: Any = UNSET
    toPort: Any = UNSET
    cidrIpv4: Any = UNSET
    cidrIpv6: Any = UNSET
    referencedGroupId: Any = UNSET
    referencedGroupInfo: GroupInfoValue = UNSET
    prefixListId: Any = UNSET
    description: Any = UNSET
    securityGroupRule: RuleEntry | list[Any] | str | int | float | bool | None = UNSET
    items: RuleEntryList = UNSET
    SecurityGroupRuleId: Any = UNSET
    GroupId: Any = UNSET
    IsEgress: Any = UNSET
    IpProtocol: Any = UNSET
    FromPort: Any = UNSET
    ToPort: Any = UNSET
    CidrIpv4: Any = UNSET
    CidrIpv6: Any = UNSET
    ReferencedGroupId: Any = UNSET
    ReferencedGroupInfo: GroupInfoValue = UNSET
    PrefixListId: Any = UNSET
    Description: Any = UNSET
    SecurityGroupRule: RuleEntry | list[Any] | str | int | float | bool | None = UNSET


class IdEntry(msgspec.Struct, frozen=True, gc=False):
    """An element of a list of ids: the id itself (a string), or an object holding it."""

    securityGroupRuleId: Any = UNSET
    groupId: Any = UNSET
    subnetId: Any = UNSET
    items: IdEntryList = UNSET
    SecurityGroupRuleId: Any = UNSET
    GroupId: Any = UNSET
    SubnetId: Any = UNSET


class Target(msgspec.Struct, frozen=True, gc=False):
    """A target of RegisterTargets / DeregisterTargets."""

    id: Any = UNSET
    port: Any = UNSET
    items: TargetList = UNSET
    Id: Any = UNSET
    Port: Any = UNSET


class Request(msgspec.Struct, frozen=True, gc=False):
    """requestParameters (keys camelCase or PascalCase), and the nested `<EventName>Request`
    object some SDKs log, read over it."""

    groupId: Any = UNSET
    groupName: Any = UNSET
    ipPermissions: PermissionList = UNSET
    ipProtocol: Any = UNSET
    fromPort: Any = UNSET
    toPort: Any = UNSET
    cidrIp: Any = UNSET
    cidrIpv6: Any = UNSET
    sourceSecurityGroupName: Any = UNSET
    sourceSecurityGroupOwnerId: Any = UNSET
    securityGroupRuleIds: IdEntryList = UNSET
    securityGroupRuleId: IdEntryList = UNSET
    securityGroupRule: RuleEntryList = UNSET
    targetGroupArn: Any = UNSET
    attributes: Any = UNSET
    healthCheckPort: Any = UNSET
    healthCheckProtocol: Any = UNSET
    networkInterfaceId: Any = UNSET
    groupSet: IdEntryList = UNSET
    groups: IdEntryList = UNSET
    loadBalancerArn: Any = UNSET
    securityGroups: IdEntryList = UNSET
    subnets: IdEntryList = UNSET
    subnetMappings: IdEntryList = UNSET
    targets: TargetList = UNSET
    AuthorizeSecurityGroupIngressRequest: RequestValue = UNSET
    RevokeSecurityGroupIngressRequest: RequestValue = UNSET
    ModifySecurityGroupRulesRequest: RequestValue = UNSET
    DeleteSecurityGroupRequest: RequestValue = UNSET
    ModifyTargetGroupAttributesRequest: RequestValue = UNSET
    ModifyTargetGroupRequest: RequestValue = UNSET
    ModifyNetworkInterfaceAttributeRequest: RequestValue = UNSET
    SetSecurityGroupsRequest: RequestValue = UNSET
    SetSubnetsRequest: RequestValue = UNSET
    RegisterTargetsRequest: RequestValue = UNSET
    DeregisterTargetsRequest: RequestValue = UNSET
    GroupId: Any = UNSET
    GroupName: Any = UNSET
    IpPermissions: PermissionList = UNSET
    IpProtocol: Any = UNSET
    FromPort: Any = UNSET
    ToPort: Any = UNSET
    CidrIp: Any = UNSET
    CidrIpv6: Any = UNSET
    SourceSecurityGroupName: Any = UNSET
    SourceSecurityGroupOwnerId: Any = UNSET
    SecurityGroupRuleIds: IdEntryList = UNSET
    SecurityGroupRuleId: IdEntryList = UNSET
    SecurityGroupRule: RuleEntryList = UNSET
    TargetGroupArn: Any = UNSET
    Attributes: Any = UNSET
    HealthCheckPort: Any = UNSET
    HealthCheckProtocol: Any = UNSET
    NetworkInterfaceId: Any = UNSET
    GroupSet: IdEntryList = UNSET
    Groups: IdEntryList = UNSET
    LoadBalancerArn: Any = UNSET
    SecurityGroups: IdEntryList = UNSET
    Subnets: IdEntryList = UNSET
    SubnetMappings: IdEntryList = UNSET
    Targets: TargetList = UNSET


class Response(msgspec.Struct, frozen=True, gc=False):
    """responseElements."""

    securityGroupRuleSet: RuleEntryList = UNSET
    revokedSecurityGroupRuleSet: RuleEntryList = UNSET
    unknownIpPermissionSet: PermissionList = UNSET
    SecurityGroupRuleSet: RuleEntryList = UNSET
    RevokedSecurityGroupRuleSet: RuleEntryList = UNSET
    UnknownIpPermissionSet: PermissionList = UNSET


class Record(msgspec.Struct, frozen=True, gc=False):
    """One CloudTrail record."""

    eventVersion: Any = UNSET
    userIdentity: IdentityValue = UNSET
    eventTime: Any = UNSET
    eventSource: Any = UNSET
    eventName: Any = UNSET
    awsRegion: Any = UNSET
    sourceIPAddress: Any = UNSET
    userAgent: Any = UNSET
    errorCode: Any = UNSET
    errorMessage: Any = UNSET
    requestParameters: RequestValue = UNSET
    responseElements: ResponseValue = UNSET
    eventID: Any = UNSET
    recipientAccountId: Any = UNSET
    # Read by sources/envelopes.py only: an object with detail-type is an EventBridge event.
    detail_type: Any = msgspec.field(name="detail-type", default=UNSET)
    EventID: Any = UNSET
    EventSource: Any = UNSET
    AwsRegion: Any = UNSET
    RecipientAccountId: Any = UNSET
    ErrorCode: Any = UNSET
    ErrorMessage: Any = UNSET
    UserAgent: Any = UNSET
    SourceIPAddress: Any = UNSET


_Scalar = str | int | float | bool | None
# An object the parser reads into, or any other JSON value in its place.
IssuerValue = Issuer | list[Any] | _Scalar
SessionContextValue = SessionContext | list[Any] | _Scalar
IdentityValue = Identity | list[Any] | _Scalar
GroupInfoValue = GroupInfo | list[Any] | _Scalar
RequestValue = Request | list[Any] | _Scalar
ResponseValue = Response | list[Any] | _Scalar
# A CloudTrail list: the element (the {"items": ...} wrapper, {}, or the one object), a plain list
# of elements (or of any other JSON values), or any other JSON value in its place.
RangeList = Range | list[Range | list[Any] | _Scalar] | _Scalar
PermissionList = Permission | list[Permission | list[Any] | _Scalar] | _Scalar
RuleEntryList = RuleEntry | list[RuleEntry | list[Any] | _Scalar] | _Scalar
IdEntryList = IdEntry | list[IdEntry | list[Any] | _Scalar] | _Scalar
TargetList = Target | list[Target | list[Any] | _Scalar] | _Scalar


#: The decoder of one record's JSON text (bytes or str).
RECORD_DECODER = msgspec.json.Decoder(Record)
