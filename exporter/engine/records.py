"""A CloudTrail record to a typed change, a rejection (with a bounded reason), or ignored.

Pure: works on a record handed in; opens no files and reads no clock. The wrappers that carry
records (S3 trail files, gzip, LookupEvents, EventBridge, SQS, SNS, JSON lines) are read by
exporter/sources/envelopes.py, which hands each record here.

One parser, over declared shapes (exporter/engine/record_shapes.py): a record's own JSON text is
decoded straight into them (`decode_record`, then `parse_decoded`); a record already decoded as
JSON values is converted into them (`parse_record`). Either way the same code reads the fields
and gives the same answer. Two differences from the dict parser this replaced are known:

- a CloudTrail list given as an object holding none of the keys read (``{"junk": 1}`` where
  ``{}`` or ``{"items": [...]}`` is expected) reads as empty; that parser read it as one entry
  lacking its fields and rejected the record (unknown keys are ignored everywhere else too);
- in a record given as text, a number out of a double's range (``1e400``) in a field the parser
  does not read no longer makes the record ``not_json`` (msgspec does not check what it skips;
  the trail-file skim already had this difference).

The two ways in differ in one rejection detail: an integer past 64 bits in a rejected field shows
as "a big int" read from text and as "1e+20" from a dict decoded by orjson, which reads it as a
float (`show_value`, where the detail is made).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeVar

import msgspec
import orjson

from exporter.engine.changes import (
    WATCHED_ATTRIBUTES,
    Actor,
    AttributeChange,
    Change,
    EventMeta,
    GroupDeletion,
    HealthCheckChange,
    InterfaceGroupsChange,
    LoadBalancerGroupsChange,
    LoadBalancerSubnetsChange,
    Rejection,
    RejectionReason,
    RuleChange,
    RuleModification,
    TargetsChange,
)
from exporter.engine.record_shapes import (
    RECORD_DECODER,
    UNSET,
    GroupInfo,
    Identity,
    IdEntry,
    Issuer,
    Permission,
    Range,
    Record,
    Request,
    Response,
    RuleEntry,
    SessionContext,
    Target,
)
from exporter.engine.rules import ALL_PROTOCOLS, Rule, Source, SourceKind, normalize_protocol
from exporter.engine.timeutil import parse_time

AUTHORIZE = "AuthorizeSecurityGroupIngress"
REVOKE = "RevokeSecurityGroupIngress"
MODIFY_RULES = "ModifySecurityGroupRules"
DELETE_GROUP = "DeleteSecurityGroup"
MODIFY_TG_ATTRIBUTES = "ModifyTargetGroupAttributes"
MODIFY_TARGET_GROUP = "ModifyTargetGroup"
MODIFY_ENI_ATTRIBUTE = "ModifyNetworkInterfaceAttribute"
SET_SECURITY_GROUPS = "SetSecurityGroups"
SET_SUBNETS = "SetSubnets"
REGISTER_TARGETS = "RegisterTargets"
DEREGISTER_TARGETS = "DeregisterTargets"
#: The event names of the inventory's changeable parts (exporter/engine/changes.py).
INVENTORY_EVENT_NAMES = frozenset(
    {
        MODIFY_TARGET_GROUP,
        MODIFY_ENI_ATTRIBUTE,
        SET_SECURITY_GROUPS,
        SET_SUBNETS,
        REGISTER_TARGETS,
        DEREGISTER_TARGETS,
    }
)

#: The event names turned into changes; every other record is ignored.
WATCHED_EVENT_NAMES = (
    frozenset({AUTHORIZE, REVOKE, MODIFY_RULES, DELETE_GROUP, MODIFY_TG_ATTRIBUTES}) | INVENTORY_EVENT_NAMES
)

#: A single record larger than this (serialized JSON bytes) is rejected as too_large.
MAX_RECORD_BYTES = 256 * 1024
#: Rejection details are one line of at most this many characters.
MAX_DETAIL_CHARS = 200
#: Detail prefix of a rejection made by the last-resort guard (a parser bug, never expected).
UNEXPECTED_DETAIL_PREFIX = "unexpected "

JsonObject = dict[str, Any]

_NAMED_PROTOCOLS = frozenset({"tcp", "udp", "icmp", "icmpv6", ALL_PROTOCOLS})
_PORT_TEXT = re.compile(r"-?[0-9]{1,6}")
_PROTOCOL_NUMBER = re.compile(r"[0-9]{1,3}")
_MAX_ID_CHARS = 256
_MAX_MESSAGE_CHARS = 1000


#: A ParseResult keeps the first this many rejections (for their details); all are counted.
MAX_KEPT_REJECTIONS = 1000


def _counter() -> Counter[str]:
    """An empty Counter, made without running Counter.__init__ (Python code, about 1 us): a
    ParseResult is made per payload, and a LookupEvents stream is one payload per record."""
    return Counter.__new__(Counter)


@dataclass
class ParseResult:
    """What a payload yielded: typed changes, rejections, and how many records were ignored.

    `rejected` counts every rejection by reason; `rejections` keeps only the first
    MAX_KEPT_REJECTIONS of them, so a file of a million bad records costs counts, not memory.
    """

    changes: list[Change] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    ignored: int = 0
    rejected: Counter[str] = field(default_factory=_counter)

    def __post_init__(self) -> None:
        if self.rejections and not self.rejected:
            self.rejected.update(r.reason for r in self.rejections)
            del self.rejections[MAX_KEPT_REJECTIONS:]

    @classmethod
    def empty(cls) -> ParseResult:
        """A new empty result, made without the dataclass __init__ (about 1 us of Python): one
        is made per payload, and a LookupEvents stream is one payload per record."""
        result = cls.__new__(cls)
        result.changes = []
        result.rejections = []
        result.ignored = 0
        result.rejected = _counter()
        return result

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def reject(self, rejection: Rejection) -> None:
        """Count a rejection; keep it while fewer than MAX_KEPT_REJECTIONS are kept."""
        self.rejected[rejection.reason] += 1
        if len(self.rejections) < MAX_KEPT_REJECTIONS:
            self.rejections.append(rejection)

    def extend(self, other: ParseResult) -> None:
        """Add another result's changes, rejections and ignored count to this one."""
        self.changes.extend(other.changes)
        self.rejected.update(other.rejected)
        room = MAX_KEPT_REJECTIONS - len(self.rejections)
        if room > 0:
            self.rejections.extend(other.rejections[:room])
        self.ignored += other.ignored


class _Reject(Exception):
    """Raised inside the parser; turned into a Rejection at the public boundary."""

    def __init__(self, reason: RejectionReason, detail: str) -> None:
        super().__init__(detail)
        self.reason: RejectionReason = reason
        self.detail = detail


# --- small helpers ---------------------------------------------------------------------------


def _one_line(text: str, limit: int = MAX_DETAIL_CHARS) -> str:
    """Collapse whitespace and cut to `limit` characters."""
    flat = " ".join(text[: limit * 2].split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def show_value(value: object) -> str:
    """A short, safe rendering of a value for a detail: scalars shown, containers by type.

    It shows the value the JSON decoder made, so an integer past 64 bits in a rejected field
    reads differently by path: from a record's text (`decode_record`, msgspec) it stays an int
    and shows as "a big int"; in a record decoded before (`parse_record` on what orjson, as the
    envelopes use it, read) it became a float and shows as "1e+20". A Python dict holding such an
    int is rejected whole (`wrong_type`, not serializable as JSON: its size cannot be checked).
    """
    if isinstance(value, str):
        return repr(value[:40]) + ("..." if len(value) > 40 else "")
    if value is None or isinstance(value, bool | float):
        return repr(value)
    if isinstance(value, int):
        return repr(value) if -(10**18) < value < 10**18 else "a big int"
    return f"a {type(value).__name__}"


def make_rejection(reason: RejectionReason, detail: str, event_id: str | None = None) -> Rejection:
    """A Rejection whose detail is one line of at most MAX_DETAIL_CHARS characters."""
    return Rejection(reason, _one_line(detail), event_id)


_S = TypeVar("_S")


def _or_none(value: Any) -> Any:
    """None for an absent key (UNSET), else the value.

    A key is read as `x.key if x.key is not UNSET else _or_none(x.Key)`: the camelCase value when
    the key is there (even null), else the PascalCase one, else None (no call in the usual case).
    """
    return None if value is UNSET else value


def _given(value: Any) -> bool:
    """True when a key is there with a value other than null."""
    return value is not None and value is not UNSET


def _shape(value: Any, shape: type[_S], where: str) -> _S:
    if not isinstance(value, shape):
        raise _Reject("wrong_type", f"{where} is {show_value(value)}, not an object")
    return value


def _entry(value: Any, shape: type[_S], where: str, suffix: str = "") -> _S:
    if not isinstance(value, shape):
        raise _Reject("wrong_type", f"{where}{suffix} entry is {show_value(value)}, not an object")
    return value


_ListShape = Range | Permission | RuleEntry | IdEntry | Target
_EMPTY: dict[type[Any], Any] = {shape: shape() for shape in (Range, Permission, RuleEntry, IdEntry, Target)}
_EMPTY_RANGE = Range()


def _items(value: Any, shape: type[_ListShape], where: str, suffix: str = "") -> list[Any]:
    """A CloudTrail list: {"items": [...]}, a plain list, {} or null (empty), or one object."""
    if value is None or value is UNSET:
        return []
    if type(value) is list:
        return value
    if isinstance(value, shape):
        items = value.items
        if items is not UNSET:
            if items is None:
                return []
            if type(items) is list:
                return items
            if isinstance(items, shape):
                return [items]
            raise _Reject("wrong_type", f"{where}{suffix}.items is {show_value(items)}, not a list")
        return [] if value == _EMPTY[shape] else [value]
    raise _Reject("wrong_type", f"{where}{suffix} is {show_value(value)}, not a list")


def _lenient_items(value: Any, shape: type[_ListShape]) -> list[Any]:
    try:
        return _items(value, shape, "")
    except _Reject:
        return []


def _required_str(value: Any, key: str, where: str) -> str:
    if value is None or value is UNSET:
        raise _Reject("missing_field", f"{where}{key} is missing")
    if not isinstance(value, str):
        raise _Reject("wrong_type", f"{where}{key} is {show_value(value)}, not a string")
    value = value.strip()
    if not value:
        raise _Reject("missing_field", f"{where}{key} is empty")
    if len(value) > _MAX_ID_CHARS:
        raise _Reject("wrong_type", f"{where}{key} is longer than {_MAX_ID_CHARS} characters")
    return value


def _optional_str(value: Any, limit: int = _MAX_MESSAGE_CHARS) -> str | None:
    """A string value (cut to `limit`) when it is a non-empty string, else None (lenient)."""
    if type(value) is not str or not value:
        return None
    return value[:limit]


# Values that repeat from record to record (regions, accounts, event sources, descriptions,
# group ids, sources, actors) are kept once: the changes held in memory share them, which
# saves memory and keeps the cyclic garbage collector's walks over those changes short.
# Each table is bounded (cleared when full), so hostile input cannot grow it.
_SHARED_SIZE = 8192
_SHARED_TEXT: dict[str, str] = {}


def _shared(text: str) -> str:
    found = _SHARED_TEXT.get(text)
    if found is not None:
        return found
    if len(text) <= 256:
        if len(_SHARED_TEXT) >= _SHARED_SIZE:
            _SHARED_TEXT.clear()
        _SHARED_TEXT[text] = text
    return text


def _shared_optional_str(value: Any, limit: int = _MAX_MESSAGE_CHARS) -> str | None:
    """_optional_str, the value shared."""
    if type(value) is str and value and len(value) <= limit:
        found = _SHARED_TEXT.get(value)
        if found is not None:
            return found
    text = _optional_str(value, limit)
    return None if text is None else _shared(text)


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


# --- rules -----------------------------------------------------------------------------------


_PROTOCOL_NAMES = {name: name for name in _NAMED_PROTOCOLS}  # one object for each name


def _protocol(value: Any, where: str) -> str:
    if type(value) is str:
        found = _PROTOCOL_NAMES.get(value)
        if found is not None:
            return found
    if value is None:
        raise _Reject("bad_rule", f"{where}: ipProtocol is missing")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _Reject("bad_rule", f"{where}: ipProtocol is {show_value(value)}")
    if isinstance(value, int) and not -1 <= value <= 255:
        raise _Reject("bad_rule", f"{where}: ipProtocol {value} is out of range")
    if isinstance(value, str) and len(value) > 16:
        raise _Reject("bad_rule", f"{where}: ipProtocol {show_value(value)} is not a protocol")
    name = normalize_protocol(value)
    if name in _NAMED_PROTOCOLS:
        return _PROTOCOL_NAMES[name]
    if _PROTOCOL_NUMBER.fullmatch(name) and int(name) <= 255:
        return name
    raise _Reject("bad_rule", f"{where}: ipProtocol {show_value(value)} is not a protocol")


_PORTS: dict[int, int] = {}  # one int object for each port number seen


def _port(value: Any, where: str) -> int:
    if type(value) is int and 0 <= value <= 65535:
        return _PORTS.setdefault(value, value)
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _PORT_TEXT.fullmatch(value.strip()):
        number = int(value.strip())
    else:
        raise _Reject("bad_rule", f"{where}: port is {show_value(value)}")
    if not -1 <= number <= 65535:
        raise _Reject("bad_rule", f"{where}: port {number} is out of range")
    return number


def _ports(protocol: str, from_value: Any, to_value: Any, where: str) -> tuple[int, int]:
    """Port range for a protocol: -1/-1 for all protocols and for protocols without ports."""
    if protocol == ALL_PROTOCOLS:
        return -1, -1
    if protocol in ("tcp", "udp"):
        if from_value is None or to_value is None:
            raise _Reject("bad_rule", f"{where}: {protocol} permission without fromPort/toPort")
        low, high = _port(from_value, where), _port(to_value, where)
        if low < 0 or high < 0 or low > high:
            raise _Reject("bad_rule", f"{where}: {protocol} port range {low}-{high} is not valid")
        return low, high
    if protocol in ("icmp", "icmpv6"):
        low = -1 if from_value is None else _port(from_value, where)
        high = -1 if to_value is None else _port(to_value, where)
        return low, high
    return -1, -1


_CIDR_SOURCES: dict[str, Source] = {}  # CIDR text as written -> its (normalized) Source
_ID_SOURCES: dict[tuple[str, str], Source] = {}  # (kind, id) -> Source


def _cidr(value: Any, where: str) -> Source:
    found = _CIDR_SOURCES.get(value) if type(value) is str else None
    if found is not None:
        return found
    if not isinstance(value, str) or len(value) > 64:
        raise _Reject("bad_rule", f"{where}: CIDR is {show_value(value)}")
    try:
        source = Source.cidr(value)
    except ValueError:
        raise _Reject("bad_rule", f"{where}: {show_value(value)} is not a CIDR") from None
    if type(value) is str:
        if len(_CIDR_SOURCES) >= _SHARED_SIZE:
            _CIDR_SOURCES.clear()
        _CIDR_SOURCES[value] = source
    return source


def _source_id(value: Any, kind: str, where: str) -> Source:
    if not isinstance(value, str) or not value.strip() or len(value) > _MAX_ID_CHARS:
        raise _Reject("bad_rule", f"{where}: {kind} id is {show_value(value)}")
    source_kind: SourceKind = "sg" if kind == "group" else "prefix_list"
    key = (source_kind, value.strip())
    found = _ID_SOURCES.get(key)
    if found is None:
        if len(_ID_SOURCES) >= _SHARED_SIZE:
            _ID_SOURCES.clear()
        found = _ID_SOURCES[key] = Source(source_kind, _shared(key[1]))
    return found


RuleKey = tuple[str, int, int, Source]
# A rule key with its source spelled out as (kind, value): equal exactly when the keys are equal,
# and hashed in C (a Source's dataclass __hash__ is Python code), for the parser's own lookups.
FlatKey = tuple[str, int, int, SourceKind, str]


def _description(entry: Range | RuleEntry) -> str | None:
    value = entry.description if entry.description is not UNSET else _or_none(entry.Description)
    if type(value) is str and value and len(value) <= 255:
        found = _SHARED_TEXT.get(value)
        if found is not None:
            return found
    if not isinstance(value, str) or not value:
        return None
    return _shared(value[:255])


def _protocol_ports(fields: Permission | RuleEntry, where: str) -> tuple[str, int, int]:
    """The protocol and port range of a permission or of a rule in the one-source form."""
    raw = fields.ipProtocol if fields.ipProtocol is not UNSET else _or_none(fields.IpProtocol)
    low = fields.fromPort if fields.fromPort is not UNSET else _or_none(fields.FromPort)
    high = fields.toPort if fields.toPort is not UNSET else _or_none(fields.ToPort)
    # The common case first, as _ports reads it: tcp or udp over a valid range of int ports.
    if (
        type(raw) is str
        and (raw == "tcp" or raw == "udp")
        and type(low) is int
        and type(high) is int
        and 0 <= low <= high <= 65535
    ):
        return _PROTOCOL_NAMES[raw], _PORTS.setdefault(low, low), _PORTS.setdefault(high, high)
    protocol = _protocol(raw, where)
    low, high = _ports(protocol, low, high, where)
    return protocol, low, high


def _permission_rules(
    permission: Any, where: str, ids: dict[FlatKey, str] | None = None
) -> list[tuple[FlatKey, Rule]]:
    """One IpPermission (request form) to one Rule per source, each with its flat key; `ids`
    gives rule ids by key."""
    perm = permission if type(permission) is Permission else _entry(permission, Permission, where)
    protocol, low, high = _protocol_ports(perm, where)
    rules: list[tuple[FlatKey, Rule]] = []
    for kind, value, pascal, suffix in (
        (0, perm.ipRanges, perm.IpRanges, ".ipRanges"),
        (1, perm.ipv6Ranges, perm.Ipv6Ranges, ".ipv6Ranges"),
        (2, perm.groups, perm.Groups, ".groups"),
        (3, perm.prefixListIds, perm.PrefixListIds, ".prefixListIds"),
    ):
        if value is UNSET:
            value = _or_none(pascal)
        if value is None or value == _EMPTY_RANGE:  # absent, null or {}: no source of this kind
            continue
        for item in _items(value, Range, where, suffix):
            fields = item if type(item) is Range else _entry(item, Range, where, suffix)
            if kind == 0:
                text = fields.cidrIp if fields.cidrIp is not UNSET else _or_none(fields.CidrIp)
                source = (_CIDR_SOURCES.get(text) if type(text) is str else None) or _cidr(text, where)
            elif kind == 1:
                source = _cidr(
                    (fields.cidrIpv6 if fields.cidrIpv6 is not UNSET else _or_none(fields.CidrIpv6)), where
                )
            elif kind == 2:
                group = fields.groupId if fields.groupId is not UNSET else _or_none(fields.GroupId)
                if group is None:
                    raise _Reject("bad_rule", f"{where}: group source without groupId")
                source = _source_id(group, "group", where)
            else:
                source = _source_id(
                    (
                        fields.prefixListId
                        if fields.prefixListId is not UNSET
                        else _or_none(fields.PrefixListId)
                    ),
                    "prefix list",
                    where,
                )
            flat = (protocol, low, high, source.kind, source.value)
            rule_id = ids.get(flat) if ids else None
            rules.append((flat, Rule(protocol, low, high, source, rule_id, _description(fields))))
    return rules


def _flat_key(fields: RuleEntry, where: str) -> RuleKey:
    """The rule key of the one-source form of SecurityGroupRule / securityGroupRuleSet entries."""
    protocol, low, high = _protocol_ports(fields, where)
    value = fields.cidrIpv4
    if type(value) is str and (source := _CIDR_SOURCES.get(value)) is not None:  # as _cidr reads it
        return protocol, low, high, source
    if (
        value := (fields.cidrIpv4 if fields.cidrIpv4 is not UNSET else _or_none(fields.CidrIpv4))
    ) is not None or (
        value := (fields.cidrIpv6 if fields.cidrIpv6 is not UNSET else _or_none(fields.CidrIpv6))
    ) is not None:
        source = _cidr(value, where)
    elif (
        value := (
            fields.referencedGroupId
            if fields.referencedGroupId is not UNSET
            else _or_none(fields.ReferencedGroupId)
        )
    ) is not None:
        source = _source_id(value, "group", where)
    elif isinstance(
        value := (
            fields.referencedGroupInfo
            if fields.referencedGroupInfo is not UNSET
            else _or_none(fields.ReferencedGroupInfo)
        ),
        GroupInfo,
    ):
        source = _source_id(
            (value.groupId if value.groupId is not UNSET else _or_none(value.GroupId)), "group", where
        )
    elif (
        value := (fields.prefixListId if fields.prefixListId is not UNSET else _or_none(fields.PrefixListId))
    ) is not None:
        source = _source_id(value, "prefix list", where)
    else:
        raise _Reject("bad_rule", f"{where}: rule without a source")
    return protocol, low, high, source


def _flat_rule(fields: RuleEntry, where: str, rule_id: str | None = None) -> Rule:
    """A rule in the one-source form of SecurityGroupRule / securityGroupRuleSet entries."""
    protocol, low, high, source = _flat_key(fields, where)
    return Rule(protocol, low, high, source, rule_id, _description(fields))


def _response_entries(value: Any, group_id: str) -> list[tuple[RuleKey, str, RuleEntry]]:
    """(key, rule id, entry) of the ingress rules of a response rule set; malformed ones skipped."""
    found: list[tuple[RuleKey, str, RuleEntry]] = []
    for entry in _lenient_items(value, RuleEntry):
        if not isinstance(entry, RuleEntry):
            continue
        egress = entry.isEgress if entry.isEgress is not UNSET else _or_none(entry.IsEgress)
        if egress is not False and _truthy(egress):
            continue
        rule_id = _optional_str(
            (
                entry.securityGroupRuleId
                if entry.securityGroupRuleId is not UNSET
                else _or_none(entry.SecurityGroupRuleId)
            ),
            _MAX_ID_CHARS,
        )
        owner = entry.groupId if entry.groupId is not UNSET else _or_none(entry.GroupId)
        if rule_id is None or (isinstance(owner, str) and owner != group_id):
            continue
        try:
            found.append((_flat_key(entry, "response rule"), rule_id, entry))
        except _Reject:
            continue
    return found


def _known_rules(
    known: list[tuple[RuleKey, str, RuleEntry]], rule_ids: set[str] | None = None
) -> list[tuple[FlatKey, Rule]]:
    """Rules of response entries (all, or those whose id is in `rule_ids`), with their flat keys."""
    return [
        ((p, low, high, src.kind, src.value), Rule(p, low, high, src, rule_id, _description(entry)))
        for (p, low, high, src), rule_id, entry in known
        if rule_ids is None or rule_id in rule_ids
    ]


def _unknown_keys(value: Any) -> set[FlatKey]:
    """Keys of the permissions a revoke response lists as unknown (they changed nothing)."""
    keys: set[FlatKey] = set()
    for permission in _lenient_items(value, Permission):
        try:
            keys.update(key for key, _ in _permission_rules(permission, "unknownIpPermissionSet"))
        except _Reject:
            continue
    return keys


# --- request parameters ----------------------------------------------------------------------


_NESTED_REQUEST = {name: f"{name}Request" for name in WATCHED_EVENT_NAMES}
_PASCAL = {name: name[:1].upper() + name[1:] for name in Request.__struct_fields__ if name[:1].islower()}


_PAIRS = tuple(
    (name, name[:1].upper() + name[1:])
    for name in Request.__struct_fields__
    if name[:1].islower() and name[:1].upper() + name[1:] in Request.__struct_fields__
)


def _raw(params: Request, key: str) -> Any:
    """The value under `key` (camelCase, else its PascalCase spelling), UNSET when absent."""
    value = getattr(params, key)
    return value if value is not UNSET else getattr(params, _PASCAL[key])


def _value(params: Request, key: str) -> Any:
    """The value under `key`, None when absent."""
    value = _raw(params, key)
    return None if value is UNSET else value


def _request(record: Record, event_name: str) -> Request:
    """requestParameters, with a nested `<EventName>Request` object read over it: a key the nested
    object has (in either spelling) is taken from it."""
    value = record.requestParameters
    if value is None or value is UNSET:
        raise _Reject("missing_field", "requestParameters is missing")
    params = _shape(value, Request, "requestParameters")
    nested = getattr(params, _NESTED_REQUEST[event_name])
    if not isinstance(nested, Request):
        return params
    changes: dict[str, Any] = {}
    for camel, pascal in _PAIRS:
        first, second = getattr(nested, camel), getattr(nested, pascal)
        if first is not UNSET or second is not UNSET:
            changes[camel], changes[pascal] = first, second
    return msgspec.structs.replace(params, **changes) if changes else params


def _group_id(params: Request) -> str:
    group = params.groupId if params.groupId is not UNSET else _or_none(params.GroupId)
    if group is None and _value(params, "groupName") is not None:
        raise _Reject("missing_field", "groupId is missing (the call named the group by groupName)")
    return _shared(_required_str(group, "groupId", "requestParameters."))


#: Top-level fields of the single-permission form (the CLI's --protocol/--port/--cidr, and SDK
#: scripts calling with IpProtocol/FromPort/ToPort/CidrIp): CloudTrail logs them beside an empty
#: "ipPermissions": {} (seen verbatim in Stratus Red Team's detonation log of
#: aws.exfiltration.ec2-security-group-open-port-22-ingress; tests/data/cloudtrail-real/).
_TOP_LEVEL_FIELDS = (
    "ipProtocol",
    "cidrIp",
    "cidrIpv6",
    "sourceSecurityGroupName",
    "sourceSecurityGroupOwnerId",
)


def _request_permissions(params: Request) -> list[Any] | None:
    """ipPermissions items, else the top-level single permission; None when neither is there.

    An empty ``ipPermissions`` beside top-level fields is the single-permission form. A source
    group named by name (sourceSecurityGroupName) cannot be turned into a group id here: such a
    permission yields no rule from the request (the response may still list it).
    """
    listed = params.ipPermissions if params.ipPermissions is not UNSET else params.IpPermissions
    listed = None if listed is UNSET else _items(listed, Permission, "ipPermissions")
    if listed or not any(_value(params, key) is not None for key in _TOP_LEVEL_FIELDS):
        return listed
    cidr, cidr6 = _value(params, "cidrIp"), _value(params, "cidrIpv6")
    if cidr is None and cidr6 is None:
        return []  # a source group by name, or no source: the response's rules, if any
    return [
        Permission(
            ipProtocol=_value(params, "ipProtocol"),
            fromPort=_value(params, "fromPort"),
            toPort=_value(params, "toPort"),
            ipRanges=UNSET if cidr is None else [Range(cidrIp=cidr)],
            ipv6Ranges=UNSET if cidr6 is None else [Range(cidrIpv6=cidr6)],
        )
    ]


def _rule_ids(params: Request) -> tuple[str, ...] | None:
    """securityGroupRuleIds in any of its shapes; None when the request has none."""
    key = (
        "securityGroupRuleIds" if _raw(params, "securityGroupRuleIds") is not UNSET else "securityGroupRuleId"
    )
    value = _raw(params, key)
    if value is UNSET:
        return None
    values = [value] if isinstance(value, str) else _items(value, IdEntry, key)
    found: list[str] = []
    for item in values:
        if isinstance(item, IdEntry):
            item = (
                item.securityGroupRuleId
                if item.securityGroupRuleId is not UNSET
                else _or_none(item.SecurityGroupRuleId)
            )
        for rule_id in item if isinstance(item, list) else [item]:
            if not isinstance(rule_id, str) or not rule_id.strip() or len(rule_id) > _MAX_ID_CHARS:
                raise _Reject("wrong_type", f"{key} holds {show_value(rule_id)}, not a rule id")
            found.append(rule_id.strip())
    return tuple(dict.fromkeys(found))


def _unique(rules: list[tuple[FlatKey, Rule]]) -> tuple[Rule, ...]:
    """The rules, the first of each key only."""
    if len(rules) == 1:
        return (rules[0][1],)
    by_key: dict[FlatKey, Rule] = {}
    for key, rule in rules:
        by_key.setdefault(key, rule)
    return tuple(by_key.values())


_WHERES = 16
_WHERE = tuple(f"permission {i}" for i in range(_WHERES))


def _rule_change(record: Record, meta: EventMeta) -> RuleChange:
    action: Literal["authorize", "revoke"] = "authorize" if meta.event_name == AUTHORIZE else "revoke"
    params = _request(record, meta.event_name)
    group_id = _group_id(params)
    permissions = _request_permissions(params)
    rule_ids = _rule_ids(params) if action == "revoke" else None
    if permissions is None and rule_ids is None:
        wanted = "ipPermissions" if action == "authorize" else "ipPermissions or securityGroupRuleIds"
        raise _Reject("missing_field", f"requestParameters.{wanted} is missing")
    # The response never rejects a record (malformed entries are skipped), so reading it before
    # the request's permissions changes no rejection; the request's rules then get their ids
    # (the response's, by key) as they are built.
    response = record.responseElements
    known: list[tuple[RuleKey, str, RuleEntry]] = []
    if isinstance(response, Response):
        if action == "authorize":
            rule_set = (
                response.securityGroupRuleSet
                if response.securityGroupRuleSet is not UNSET
                else _or_none(response.SecurityGroupRuleSet)
            )
        else:
            rule_set = (
                response.revokedSecurityGroupRuleSet
                if response.revokedSecurityGroupRuleSet is not UNSET
                else _or_none(response.RevokedSecurityGroupRuleSet)
            )
        known = _response_entries(rule_set, group_id)
    ids = {(p, low, high, src.kind, src.value): rule_id for (p, low, high, src), rule_id, _ in known}
    rules: list[tuple[FlatKey, Rule]] = []
    for i, permission in enumerate(permissions or ()):
        rules.extend(_permission_rules(permission, _WHERE[i] if i < _WHERES else f"permission {i}", ids))
    if not rules and not rule_ids:
        # The request named no rule this parser can read (a source group by name, a permission
        # without a source): the response's rule set says what the call added or removed.
        rules.extend(_known_rules(known))
        if not rules:
            raise _Reject("no_rule", f"{meta.event_name} on {group_id} names no rule the record lets us read")
    if action == "revoke" and isinstance(response, Response):
        unknown = _unknown_keys(
            response.unknownIpPermissionSet
            if response.unknownIpPermissionSet is not UNSET
            else _or_none(response.UnknownIpPermissionSet)
        )
        if unknown:
            rules = [(key, rule) for key, rule in rules if key not in unknown]
    if rule_ids:
        # A revoke by id: the response's definitions let the timeline undo it.
        rules.extend(_known_rules(known, set(rule_ids)))
    return RuleChange(meta, group_id, action, _unique(rules), rule_ids or ())


def _modification(record: Record, meta: EventMeta) -> RuleModification:
    params = _request(record, meta.event_name)
    group_id = _group_id(params)
    listed = _value(params, "securityGroupRule")
    if listed is None:
        raise _Reject("missing_field", "SecurityGroupRule is missing")
    modifications: list[tuple[str, Rule]] = []
    for i, item in enumerate(_items(listed, RuleEntry, "SecurityGroupRule")):
        entry = _entry(item, RuleEntry, "SecurityGroupRule")
        rule_id = _required_str(
            (
                entry.securityGroupRuleId
                if entry.securityGroupRuleId is not UNSET
                else _or_none(entry.SecurityGroupRuleId)
            ),
            "securityGroupRuleId",
            f"SecurityGroupRule {i}: ",
        )
        definition = (
            entry.securityGroupRule
            if entry.securityGroupRule is not UNSET
            else _or_none(entry.SecurityGroupRule)
        )
        if definition is None:
            raise _Reject("missing_field", f"SecurityGroupRule {i}: rule definition is missing")
        rule = _flat_rule(_shape(definition, RuleEntry, f"SecurityGroupRule {i}"), f"SecurityGroupRule {i}")
        modifications.append((rule_id, msgspec.structs.replace(rule, rule_id=rule_id)))
    if not modifications:
        raise _Reject("no_rule", f"{meta.event_name} on {group_id} lists no rule")
    return RuleModification(meta, group_id, tuple(modifications))


def _deletion(record: Record, meta: EventMeta) -> GroupDeletion:
    return GroupDeletion(meta, _group_id(_request(record, meta.event_name)))


def _attribute_value(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = value.strip().lower() if isinstance(value, str) else None
    if text not in ("true", "false"):
        raise _Reject("wrong_type", f"attribute {key} is {show_value(value)}, not true/false")
    return text


# Attributes are a map keyed by attribute names (data, not a shape): a {key, value} list or a
# plain mapping, decoded as JSON values and read here.
def _map_get(fields: JsonObject, key: str) -> Any:
    value = fields.get(key, UNSET)
    return fields.get(key[:1].upper() + key[1:]) if value is UNSET else value


def _attribute_pairs(value: Any) -> list[tuple[Any, Any]]:
    """Attributes as (key, value) pairs from a {key,value} list or a plain mapping."""
    if isinstance(value, dict) and "items" not in value and "key" not in value and "Key" not in value:
        return list(value.items())
    if isinstance(value, dict):
        items = value.get("items", [value])
        if items is None:
            items = []
        elif isinstance(items, dict):
            items = [items]
        elif not isinstance(items, list):
            raise _Reject("wrong_type", f"attributes.items is {show_value(items)}, not a list")
    elif isinstance(value, list):
        items = value
    else:
        raise _Reject("wrong_type", f"attributes is {show_value(value)}, not a list")
    pairs: list[tuple[Any, Any]] = []
    for item in items:
        if not isinstance(item, dict):
            raise _Reject("wrong_type", f"attributes entry is {show_value(item)}, not an object")
        pairs.append((_map_get(item, "key"), _map_get(item, "value")))
    return pairs


def _attribute_change(record: Record, meta: EventMeta) -> AttributeChange:
    params, arn = _subject(record, meta, "targetGroupArn")
    attributes = _value(params, "attributes")
    if attributes is None:
        raise _Reject("missing_field", "requestParameters.attributes is missing")
    kept: dict[str, str] = {}
    for key, value in _attribute_pairs(attributes):
        if not isinstance(key, str):
            raise _Reject("wrong_type", f"attribute key is {show_value(key)}, not a string")
        if key in WATCHED_ATTRIBUTES:
            kept[key] = _attribute_value(key, value)
    return AttributeChange(meta, arn, tuple(kept.items()))


# --- the inventory's changeable parts ----------------------------------------------------------
# Request shapes: ELBv2 API references (ModifyTargetGroup, SetSecurityGroups, SetSubnets,
# RegisterTargets, DeregisterTargets) and EC2 ModifyNetworkInterfaceAttribute (groupSet), as
# CloudTrail logs requests: camelCase keys, EC2 lists as {"items": [...]}. Not confirmed from real
# records here: parsed defensively (plain lists, {"items"}, PascalCase, a nested <Name>Request).

_HEALTH_CHECK_PROTOCOLS = frozenset({"TCP", "HTTP", "HTTPS"})


def _subject(record: Record, meta: EventMeta, key: str) -> tuple[Request, str]:
    """The request parameters and the id of the object the call changes (`key`, required)."""
    params = _request(record, meta.event_name)
    return params, _shared(_required_str(_value(params, key), key, "requestParameters."))


def _health_check_port(value: Any) -> str:
    if isinstance(value, str) and value.strip().lower() == "traffic-port":
        return "traffic-port"
    port = _port_number(value)
    if port is None:
        raise _Reject("wrong_type", f"healthCheckPort is {show_value(value)}, not traffic-port or a port")
    return str(port)


def _port_number(value: Any) -> int | None:
    """A port 1-65535 given as an int or its text, else None."""
    if isinstance(value, str) and _PORT_TEXT.fullmatch(value.strip()):
        value = int(value.strip())
    if type(value) is int and 1 <= value <= 65535:
        return value
    return None


def _health_check_change(record: Record, meta: EventMeta) -> HealthCheckChange | None:
    params, arn = _subject(record, meta, "targetGroupArn")
    port = _value(params, "healthCheckPort")
    protocol = _value(params, "healthCheckProtocol")
    if port is None and protocol is None:
        return None  # another setting (interval, thresholds, path, matcher): reachability unchanged
    if protocol is not None:
        if not isinstance(protocol, str) or protocol.strip().upper() not in _HEALTH_CHECK_PROTOCOLS:
            raise _Reject("wrong_type", f"healthCheckProtocol is {show_value(protocol)}, not TCP/HTTP/HTTPS")
        protocol = protocol.strip().upper()
    return HealthCheckChange(meta, arn, None if port is None else _health_check_port(port), protocol)


def _id_list(value: Any, key: str, field_name: Literal["groupId", "subnetId"]) -> tuple[str, ...]:
    """Ids from a list of strings or of objects holding `field_name`, in any list shape."""
    found: list[str] = []
    for item in _items(value, IdEntry, key):
        if isinstance(item, IdEntry):
            item = (
                (item.groupId if item.groupId is not UNSET else _or_none(item.GroupId))
                if field_name == "groupId"
                else (item.subnetId if item.subnetId is not UNSET else _or_none(item.SubnetId))
            )
        if not isinstance(item, str) or not item.strip() or len(item) > _MAX_ID_CHARS:
            raise _Reject("wrong_type", f"{key} holds {show_value(item)}, not an id")
        found.append(_shared(item.strip()))
    return tuple(dict.fromkeys(found))


def _interface_groups_change(record: Record, meta: EventMeta) -> InterfaceGroupsChange | None:
    params, eni_id = _subject(record, meta, "networkInterfaceId")
    key = "groupSet" if _raw(params, "groupSet") is not UNSET else "groups"
    listed = _value(params, key)
    if listed is None:
        return None  # another attribute (description, sourceDestCheck, attachment): not watched
    groups = _id_list(listed, key, "groupId")
    if not groups:
        raise _Reject("missing_field", f"requestParameters.{key} names no security group")
    return InterfaceGroupsChange(meta, eni_id, groups)


def _load_balancer_groups_change(record: Record, meta: EventMeta) -> LoadBalancerGroupsChange:
    # "You can't perform this operation on a Network Load Balancer unless you specified a security
    # group for the load balancer when you created it" (ELBv2 API reference, SetSecurityGroups): on
    # a legacy-mode NLB the call fails, and a failed record changes nothing.
    params, arn = _subject(record, meta, "loadBalancerArn")
    listed = _value(params, "securityGroups")
    if listed is None:
        raise _Reject("missing_field", "requestParameters.securityGroups is missing")
    return LoadBalancerGroupsChange(meta, arn, _id_list(listed, "securityGroups", "groupId"))


def _load_balancer_subnets_change(record: Record, meta: EventMeta) -> LoadBalancerSubnetsChange:
    params, arn = _subject(record, meta, "loadBalancerArn")
    subnets: tuple[str, ...] = ()
    if (listed := _value(params, "subnets")) is not None:
        subnets = _id_list(listed, "subnets", "subnetId")
    if (mappings := _value(params, "subnetMappings")) is not None:
        subnets = tuple(dict.fromkeys(subnets + _id_list(mappings, "subnetMappings", "subnetId")))
    if not subnets:
        raise _Reject("missing_field", "requestParameters.subnets / subnetMappings name no subnet")
    return LoadBalancerSubnetsChange(meta, arn, subnets)


def _targets_change(record: Record, meta: EventMeta) -> TargetsChange:
    params, arn = _subject(record, meta, "targetGroupArn")
    listed = _value(params, "targets")
    if listed is None:
        raise _Reject("missing_field", "requestParameters.targets is missing")
    targets: list[tuple[str, int | None]] = []
    for i, item in enumerate(_items(listed, Target, "targets")):
        entry = _entry(item, Target, "targets")
        target_id = _shared(
            _required_str((entry.id if entry.id is not UNSET else _or_none(entry.Id)), "id", f"targets {i}: ")
        )
        raw_port = entry.port if entry.port is not UNSET else _or_none(entry.Port)
        port = None if raw_port is None else _port_number(raw_port)
        if raw_port is not None and port is None:
            raise _Reject("wrong_type", f"targets {i}: port is {show_value(raw_port)}, not a port")
        targets.append((target_id, port))
    if not targets:
        raise _Reject("missing_field", "requestParameters.targets names no target")
    action: Literal["register", "deregister"] = (
        "register" if meta.event_name == REGISTER_TARGETS else "deregister"
    )
    return TargetsChange(meta, arn, action, tuple(dict.fromkeys(targets)))


_PARSERS: dict[str, Callable[[Record, EventMeta], Change | None]] = {
    AUTHORIZE: _rule_change,
    REVOKE: _rule_change,
    MODIFY_RULES: _modification,
    DELETE_GROUP: _deletion,
    MODIFY_TG_ATTRIBUTES: _attribute_change,
    MODIFY_TARGET_GROUP: _health_check_change,
    MODIFY_ENI_ATTRIBUTE: _interface_groups_change,
    SET_SECURITY_GROUPS: _load_balancer_groups_change,
    SET_SUBNETS: _load_balancer_subnets_change,
    REGISTER_TARGETS: _targets_change,
    DEREGISTER_TARGETS: _targets_change,
}


# --- one record ------------------------------------------------------------------------------


def _check_size(record: JsonObject, limit: int) -> None:
    try:
        size = len(orjson.dumps(record))
    except TypeError as error:  # orjson.JSONEncodeError
        if "ecursion" in str(error):
            raise _Reject("too_large", "record is nested too deeply") from None
        raise _Reject("wrong_type", f"record is not serializable as JSON: {error}") from None
    if size > limit:
        raise _Reject("too_large", f"record is {size} bytes serialized, over the {limit} byte limit")


_ACTORS: dict[tuple[str | None, ...], Actor] = {}  # the same caller makes many calls: one Actor
_TIMES: dict[str, datetime] = {}  # eventTime text -> parsed (changes of one second share it)
_EVENT_NAMES = {name: name for name in WATCHED_EVENT_NAMES}

_ACTORS_BY_TEXT: dict[tuple[Any, ...], Actor] = {}  # six attribution texts -> Actor
#: An actor table keeps a key only when its texts add up to at most this many characters: the
#: tables are bounded in entries, and this bounds each entry (a record's texts run to its
#: 256 KiB limit; 8192 such keys held 2 GiB). A real caller's texts add up to a few hundred.
_MAX_ACTOR_KEY_CHARS = 2048


def _actor(record: Record) -> Actor:
    # The common shape first: an assumed role whose six attribution fields are all strings,
    # under their usual (camelCase) names. Then the Actor depends on those six texts alone.
    identity = record.userIdentity
    if type(identity) is Identity:
        context = identity.sessionContext
        issuer = context.sessionIssuer if type(context) is SessionContext else None
        if type(issuer) is Issuer:
            texts = (
                identity.arn,
                identity.type,
                issuer.arn,
                issuer.userName,
                record.userAgent,
                record.sourceIPAddress,
            )
            a, b, c, d, e, f = texts
            if type(a) is type(b) is type(c) is type(d) is type(e) is type(f) is str:
                found = _ACTORS_BY_TEXT.get(texts)
                if found is None:
                    found = _actor_of(record)
                    if len(a) + len(b) + len(c) + len(d) + len(e) + len(f) <= _MAX_ACTOR_KEY_CHARS:
                        if len(_ACTORS_BY_TEXT) >= _SHARED_SIZE:
                            _ACTORS_BY_TEXT.clear()
                        _ACTORS_BY_TEXT[texts] = found
                return found
    return _actor_of(record)


def _actor_of(record: Record) -> Actor:
    identity = record.userIdentity
    identity = identity if isinstance(identity, Identity) else _EMPTY_IDENTITY
    context = identity.sessionContext
    issuer = context.sessionIssuer if isinstance(context, SessionContext) else None
    issuer_arn = issuer_name = None
    if isinstance(issuer, Issuer):
        issuer_arn = _optional_str(issuer.arn if issuer.arn is not UNSET else _or_none(issuer.Arn))
        issuer_name = _optional_str(
            issuer.userName if issuer.userName is not UNSET else _or_none(issuer.UserName)
        )
    if issuer_name is None and issuer_arn:
        issuer_name = issuer_arn.rsplit("/", 1)[-1] or None
    key = (
        _optional_str(identity.arn if identity.arn is not UNSET else _or_none(identity.Arn)) or issuer_arn,
        _optional_str(identity.type if identity.type is not UNSET else _or_none(identity.Type)),
        issuer_name,
        _optional_str(record.userAgent if record.userAgent is not UNSET else _or_none(record.UserAgent)),
        _optional_str(
            record.sourceIPAddress
            if record.sourceIPAddress is not UNSET
            else _or_none(record.SourceIPAddress)
        ),
    )
    found = _ACTORS.get(key)
    if found is None:
        found = Actor(*key)
        if sum(len(text) for text in key if text) <= _MAX_ACTOR_KEY_CHARS:
            if len(_ACTORS) >= _SHARED_SIZE:
                _ACTORS.clear()
            _ACTORS[key] = found
    return found


_EMPTY_IDENTITY = Identity()


def _event_time(raw_time: Any) -> datetime:
    if type(raw_time) is str:
        found = _TIMES.get(raw_time)
        if found is not None:
            return found
        if len(raw_time) == 20 and raw_time[19] == "Z" and raw_time[10] == "T":
            # CloudTrail's own form, 2026-11-20T08:00:16Z: fromisoformat reads the Z as UTC, as
            # parse_time reads it after turning it into +00:00 (same value, same tzinfo).
            try:
                event_time = datetime.fromisoformat(raw_time)
            except ValueError:
                pass
            else:
                if len(_TIMES) >= _SHARED_SIZE:
                    _TIMES.clear()
                _TIMES[raw_time] = event_time
                return event_time
    try:
        event_time = parse_time(raw_time)
    except (ValueError, OverflowError, OSError, TypeError):
        raise _Reject("bad_time", f"eventTime {show_value(raw_time)} does not parse") from None
    if type(raw_time) is str and len(raw_time) <= 64:
        if len(_TIMES) >= _SHARED_SIZE:
            _TIMES.clear()
        _TIMES[raw_time] = event_time
    return event_time


def _shared_field(value: Any, pascal: Any) -> str | None:
    """A record's optional text field (camelCase value, else the PascalCase one), shared."""
    return _shared_optional_str(_or_none(pascal if value is UNSET else value))


def _meta(record: Record, event_name: str) -> EventMeta:
    event_id = _required_str(
        (record.eventID if record.eventID is not UNSET else _or_none(record.EventID)), "eventID", ""
    )
    raw_time = record.eventTime
    if raw_time is None or raw_time is UNSET:
        raise _Reject("missing_field", "eventTime is missing")
    event_time = _event_time(raw_time)
    identity = record.userIdentity
    account = _shared_field(record.recipientAccountId, record.RecipientAccountId)
    if account is None and isinstance(identity, Identity):
        account = _shared_optional_str(
            identity.accountId if identity.accountId is not UNSET else _or_none(identity.AccountId)
        )
    return EventMeta(
        event_id,
        event_time,
        _EVENT_NAMES.get(event_name, event_name),
        _shared_field(record.eventSource, record.EventSource) or "",
        account,
        _shared_field(record.awsRegion, record.AwsRegion),
        _actor(record),
        _shared_field(record.errorCode, record.ErrorCode),
        _optional_str(
            record.errorMessage if record.errorMessage is not UNSET else _or_none(record.ErrorMessage)
        ),
    )


def _event_id_hint(value: Any) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= 128 else None


#: The typed decode reads text of at most this share of the record limit (1/8), and with at most
#: this many brackets: then the record serialized as the size check measures it (orjson, compact)
#: stays under the limit (a number grows at most 4.5 times, `1e15` -> `1000000000000000.0`) and
#: nests less deeply than that serializer allows, so the check is not needed. Larger or deeper
#: text is decoded in full (`parse_record`), where the check runs.
_TYPED_SHARE = 8
_TYPED_MAX_BRACKETS = 200


def is_utf8(data: bytes) -> bool:
    """True when the bytes are valid UTF-8."""
    if data.isascii():
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def decode_record(text: bytes | str, *, max_record_bytes: int = MAX_RECORD_BYTES) -> Record | None:
    """JSON text of one object decoded straight into the Record shape; None when the text is not
    an object, or is one the caller must decode in full (too large or deep for the typed decode
    to stand in for the size check, bytes that are not UTF-8, numbers out of a double's range in a
    field the parser reads)."""
    if isinstance(text, str):
        if len(text) * (1 if text.isascii() else 4) > max_record_bytes // _TYPED_SHARE:
            return None
        if text.count("{") + text.count("[") > _TYPED_MAX_BRACKETS:
            return None
    else:
        if len(text) > max_record_bytes // _TYPED_SHARE:
            return None
        if text.count(b"{") + text.count(b"[") > _TYPED_MAX_BRACKETS:
            return None
        if not is_utf8(text):  # msgspec does not check the UTF-8 of what it skips
            return None
    try:
        return RECORD_DECODER.decode(text)
    except (msgspec.DecodeError, RecursionError, ValueError):
        return None


def parse_decoded(record: Record) -> Change | Rejection | None:
    """A record from `decode_record` to a typed change, a Rejection, or None (as parse_record)."""
    event_id = _event_id_hint(record.eventID)
    try:
        return _parse(record, record.eventName)
    except _Reject as reject:
        return make_rejection(reject.reason, reject.detail, event_id)
    except (ArithmeticError, AttributeError, LookupError, RecursionError, TypeError, ValueError) as error:
        return make_rejection("not_a_record", f"{UNEXPECTED_DETAIL_PREFIX}{type(error).__name__}", event_id)


def _parse(record: Record, name: Any) -> Change | None:
    if name is None or name is UNSET:
        raise _Reject("missing_field", "eventName is missing")
    if not isinstance(name, str):
        raise _Reject("wrong_type", f"eventName is {show_value(name)}, not a string")
    if name not in WATCHED_EVENT_NAMES:
        return None
    return _PARSERS[name](record, _meta(record, name))


def parse_record(
    record: JsonObject, *, max_record_bytes: int = MAX_RECORD_BYTES
) -> Change | Rejection | None:
    """One CloudTrail record to a typed change, a Rejection, or None for an unwatched event name
    (or a watched call that changed nothing watched: a ModifyTargetGroup of the health-check
    interval, a ModifyNetworkInterfaceAttribute of the description).

    Never raises: anything malformed becomes a Rejection with a bounded reason. A failed call
    (top-level errorCode) still yields its change, with meta.error_code set. The record (decoded
    JSON) is converted into the Record shape and read as `parse_decoded` reads it.
    """
    event_id = _event_id_hint(record.get("eventID")) if isinstance(record, dict) else None
    try:
        if not isinstance(record, dict):
            raise _Reject("not_a_record", f"a record must be an object, got {show_value(record)}")
        name = record.get("eventName")
        if name is None:
            raise _Reject("missing_field", "eventName is missing")
        if not isinstance(name, str):
            raise _Reject("wrong_type", f"eventName is {show_value(name)}, not a string")
        if name not in WATCHED_EVENT_NAMES:
            return None
        _check_size(record, max_record_bytes)
        try:
            typed = msgspec.convert(record, Record)
        except msgspec.ValidationError as error:
            raise _Reject("wrong_type", f"record does not fit its shape: {error}") from None
        return _parse(typed, name)
    except _Reject as reject:
        return make_rejection(reject.reason, reject.detail, event_id)
    except (ArithmeticError, AttributeError, LookupError, RecursionError, TypeError, ValueError) as error:
        return make_rejection("not_a_record", f"{UNEXPECTED_DETAIL_PREFIX}{type(error).__name__}", event_id)
