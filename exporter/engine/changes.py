"""Typed changes parsed from CloudTrail records, and the rejection of a record that is not usable.

These are the only facts the timeline consumes. A change whose `meta.error_code` is set is a
failed call: it is counted but changes nothing.

Changes are held in bulk (a backfill holds a week of them), so they are frozen msgspec Structs
that the cyclic garbage collector does not track (``gc=False``: they hold no reference cycles);
its walks then do not grow with the changes held.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import msgspec

from exporter.engine.rules import Rule

CONTROLLER_USER_AGENT_PREFIX = "elbv2.k8s.aws/"

#: Every reason a record can be rejected for. A bounded set: it becomes a metric label.
REJECTION_REASONS = (
    "not_json",  # bytes that do not parse as JSON
    "not_gzip",  # an S3 object that is not gzip
    "not_a_record",  # JSON that is not a CloudTrail record or a known wrapper
    "missing_field",  # a required field is absent
    "wrong_type",  # a field has the wrong JSON type
    "bad_time",  # eventTime does not parse
    "bad_rule",  # an ip permission / rule that cannot be understood
    "too_large",  # a record over the size limit
    "unreadable",  # a file or object that could not be read at all
    "no_rule",  # a watched rule change from which no rule could be read (never applied as a no-op)
)
RejectionReason = Literal[
    "not_json",
    "not_gzip",
    "not_a_record",
    "missing_field",
    "wrong_type",
    "bad_time",
    "bad_rule",
    "too_large",
    "unreadable",
    "no_rule",
]


class Actor(msgspec.Struct, frozen=True, gc=False):
    """Who made the call, as CloudTrail attributes it."""

    principal_arn: str | None = None
    identity_type: str | None = None
    issuer: str | None = None  # sessionContext.sessionIssuer.userName (the role name)
    user_agent: str | None = None
    source_ip: str | None = None

    @property
    def is_controller(self) -> bool:
        """True when the call came from the AWS Load Balancer Controller (by its user agent)."""
        return bool(self.user_agent and CONTROLLER_USER_AGENT_PREFIX in self.user_agent)

    @property
    def label(self) -> str:
        """A short human name: the role (issuer) name, else the principal ARN, else "unknown"."""
        return self.issuer or self.principal_arn or "unknown"

    @property
    def session(self) -> str | None:
        """Who assumed the role: the session part of an assumed-role ARN
        (`arn:aws:sts::<account>:assumed-role/<role>/<session>`; an SSO user's e-mail, a CI job's
        name, a random id for SDK sessions), None for other identities."""
        arn = self.principal_arn or ""
        _, found, rest = arn.partition(":assumed-role/")
        if not found or "/" not in rest:
            return None
        return rest.split("/", 1)[1] or None

    @property
    def who(self) -> str:
        """The role and who assumed it (`role/session`), else `label`."""
        session = self.session
        return f"{self.label}/{session}" if session and self.issuer else self.label


class EventMeta(msgspec.Struct, frozen=True, gc=False):
    event_id: str
    event_time: datetime
    event_name: str
    event_source: str = ""
    account_id: str | None = None
    region: str | None = None
    actor: Actor = msgspec.field(default_factory=Actor)
    error_code: str | None = None
    error_message: str | None = None

    @property
    def failed(self) -> bool:
        return self.error_code is not None


class RuleChange(msgspec.Struct, frozen=True, gc=False):
    """AuthorizeSecurityGroupIngress or RevokeSecurityGroupIngress on one group.

    `rules` holds the permissions given as IpPermissions (one Rule per source) and, for an
    authorize, the rule ids from the response when present. `rule_ids` holds ids given to a
    revoke by SecurityGroupRuleIds; they are resolved against rules already known (and, when
    the response lists the revoked rules' definitions, those are in `rules` too, with their ids).
    """

    meta: EventMeta
    group_id: str
    action: Literal["authorize", "revoke"]
    rules: tuple[Rule, ...] = ()
    rule_ids: tuple[str, ...] = ()


class RuleModification(msgspec.Struct, frozen=True, gc=False):
    """ModifySecurityGroupRules: each rule id gets a new definition."""

    meta: EventMeta
    group_id: str
    modifications: tuple[tuple[str, Rule], ...] = ()


class GroupDeletion(msgspec.Struct, frozen=True, gc=False):
    meta: EventMeta
    group_id: str


class AttributeChange(msgspec.Struct, frozen=True, gc=False):
    """ModifyTargetGroupAttributes: only the attributes this project watches are kept."""

    meta: EventMeta
    target_group_arn: str
    attributes: tuple[tuple[str, str], ...] = ()


class HealthCheckChange(msgspec.Struct, frozen=True, gc=False):
    """ModifyTargetGroup: the health-check port and protocol the request set (None: not set).

    The request carries only what changed; the record never carries the old values, so undoing
    one takes them from an earlier record of the same target group, else they are unknown.
    """

    meta: EventMeta
    target_group_arn: str
    port: str | None = None  # "traffic-port" or a port number as text
    protocol: str | None = None


class InterfaceGroupsChange(msgspec.Struct, frozen=True, gc=False):
    """ModifyNetworkInterfaceAttribute with groupSet: the whole new set of groups on one ENI.

    The old set is not in the record (see HealthCheckChange for how undo treats that).
    """

    meta: EventMeta
    eni_id: str
    group_ids: tuple[str, ...]


class LoadBalancerGroupsChange(msgspec.Struct, frozen=True, gc=False):
    """SetSecurityGroups on a load balancer: its whole new set of security groups (the old one is
    not in the record)."""

    meta: EventMeta
    load_balancer_arn: str
    group_ids: tuple[str, ...]


class LoadBalancerSubnetsChange(msgspec.Struct, frozen=True, gc=False):
    """SetSubnets on a load balancer: its whole new set of subnets (the old one is not in the
    record). Health checks, and unpreserved traffic, come from these subnets."""

    meta: EventMeta
    load_balancer_arn: str
    subnet_ids: tuple[str, ...]


class TargetsChange(msgspec.Struct, frozen=True, gc=False):
    """RegisterTargets / DeregisterTargets: (target id, port or None for the group's port)."""

    meta: EventMeta
    target_group_arn: str
    action: Literal["register", "deregister"]
    targets: tuple[tuple[str, int | None], ...] = ()


#: Changes to the inventory's changeable parts (not to rules or attributes): they move what a
#: target group requires (health-check port, load balancer groups and subnets, targets) or which
#: groups a target's ENI has.
InventoryChange = (
    HealthCheckChange
    | InterfaceGroupsChange
    | LoadBalancerGroupsChange
    | LoadBalancerSubnetsChange
    | TargetsChange
)
INVENTORY_CHANGES = (
    HealthCheckChange,
    InterfaceGroupsChange,
    LoadBalancerGroupsChange,
    LoadBalancerSubnetsChange,
    TargetsChange,
)

Change = RuleChange | RuleModification | GroupDeletion | AttributeChange | InventoryChange

WATCHED_ATTRIBUTES = ("preserve_client_ip.enabled", "proxy_protocol_v2.enabled")


@dataclass(frozen=True, slots=True)
class Rejection:
    """A record that could not be used, with a bounded reason and a one-line detail."""

    reason: RejectionReason
    detail: str
    event_id: str | None = None
