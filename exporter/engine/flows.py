"""Which flows each target group needs, and whether a target's security groups admit them.

Follows the AWS Load Balancer Controller (LBC) and AWS's NLB behaviour (docs/flows.md):
- Address family: the TARGET GROUP's IpAddressType, not the load balancer's. A dual-stack NLB
  talks to an IPv4 target group over IPv4 only (LBC v2.13.4, checked unchanged at v3.5.0:
  pkg/service/model_build_target_group.go getDefaultIPSourceRanges and
  getLoadBalancerSubnetsSourceRanges take the target group's IP address type).
- Legacy mode (no security groups on the NLB): traffic comes from the clients when
  preserve_client_ip is on (the intent's source ranges, else 0.0.0.0/0 or ::/0 internet-facing,
  the VPC CIDRs internal), from the NLB subnets when off; health checks from the NLB subnets
  (buildTargetGroupBindingNetworkingLegacy, buildHealthCheckSourceCIDRs, same file, v2.13.4 and
  v3.5.0; v3.5.0 takes the client sources for UDP, QUIC, TCP_UDP and TCP_QUIC whatever the
  attribute, as AWS preserves them and this model always did; v2.13.4 did so for UDP only).
- SG mode (the NLB has security groups): a rule referencing any of them admits the flow
  whatever the attribute (what LBC writes: buildTargetGroupBindingNetworking, same file, v2.13.4
  and v3.5.0, where QUIC and TCP_QUIC get udp on the port and tcp for health checks); a CIDR
  rule admits it too, under the legacy semantics above (users who bring their own frontend
  groups manage node rules themselves: with frontend groups given by annotation, LBC v2.13.4
  and v3.5.0 pkg/service/model_build_load_balancer.go buildLoadBalancerSecurityGroups manages
  node rules only if buildManageSecurityGroupRulesFlag says so, which defaults to the
  controller's --enable-manage-backend-security-group-rules, false unless set; v3.5.0's
  aws-load-balancer-disable-nlb-sg annotation makes a new NLB without groups: legacy mode, as
  the exporter sees it from the load balancer itself).
- An ip target outside the VPC (a peered VPC, on-premises, EKS Hybrid Nodes) has no ENI and no
  security group: it is not evaluable, never a gap. AWS registers it with AvailabilityZone "all",
  or (LBC v2.17.0+, v3.5.0) with its node's zone; its address outside the VPC's CIDRs says so too.
- An ALB registered as the target (target type "alb", e.g. the controller's frontend NLB of an
  Ingress) is admitted by the ALB's own security groups, which are not read: not evaluable.
- A rule referencing a managed prefix list admits the list's CIDRs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import msgspec

from exporter.engine.inventory import (
    Inventory,
    LoadBalancer,
    PrefixList,
    Target,
    TargetGroup,
    address_outside_vpc,
)
from exporter.engine.rules import Flow, IPNetwork, Rule, Source, uncovered

FlowKind = Literal["traffic", "health_check"]
FLOW_KINDS: tuple[FlowKind, ...] = get_args(FlowKind)

#: Why a target does not admit a flow. A bounded set: it becomes a metric label.
Reason = Literal[
    "target_eni_not_found",  # no network interface known for the target
    "security_group_missing",  # none of the ENI's security groups exists (deleted)
    "no_rule_for_port",  # no rule matches the flow's protocol and port
    "source_not_covered",  # rules match the port, but none admits the required source
    "source_partly_covered",  # part of the required source CIDR is not admitted
]
REASONS: tuple[str, ...] = get_args(Reason)

#: Why a target cannot be evaluated at all. Not a gap: counted apart (a metric label too).
NotEvaluableReason = Literal[
    "target_outside_vpc",  # an ip target outside the VPC: no ENI, no security group
    "target_is_alb",  # an Application Load Balancer behind the NLB: its own groups, not read here
]
NOT_EVALUABLE_REASONS: tuple[str, ...] = get_args(NotEvaluableReason)

Family = Literal["ipv4", "ipv6"]

PRESERVE_CLIENT_IP = "preserve_client_ip.enabled"
#: Client IP preservation is always on for these protocols; for TCP and TLS the attribute decides,
#: defaulting to on for instance targets and off for ip targets (AWS, "Edit target group attributes
#: for your Network Load Balancer", Client IP preservation, Default settings; LBC v3.5.0
#: pkg/service/model_build_target_group.go buildTargetGroupBindingNetworkingLegacy cites the same
#: page and admits the client sources for these four protocols).
_ALWAYS_PRESERVING = frozenset({"UDP", "TCP_UDP", "QUIC", "TCP_QUIC"})


def transport_protocols(target_group_protocol: str) -> tuple[str, ...]:
    """The IP protocols a target group's listener protocol carries to targets (LBC v3.5.0
    buildTargetGroupBindingNetworkingLegacy: tcp and udp for TCP_UDP and TCP_QUIC, udp for UDP
    and QUIC, tcp otherwise)."""
    protocol = target_group_protocol.upper()
    if protocol in ("TCP_UDP", "TCP_QUIC"):
        return ("tcp", "udp")
    if protocol in ("UDP", "QUIC"):
        return ("udp",)
    return ("tcp",)


def preserve_client_ip(target_group: TargetGroup, attributes: Mapping[str, str]) -> bool:
    """The effective preserve_client_ip, with the AWS default when the attribute is absent."""
    if target_group.protocol.upper() in _ALWAYS_PRESERVING:
        return True
    value = attributes.get(PRESERVE_CLIENT_IP)
    if value is not None:
        return value.strip().lower() == "true"
    return target_group.target_type == "instance"


def health_check_port(target_group: TargetGroup, target_port: int) -> int:
    """The health-check port for a target; "traffic-port" means the target's own port."""
    if target_group.health_check_port in ("", "traffic-port"):
        return target_port
    return int(target_group.health_check_port)


@dataclass(frozen=True)
class Requirement:
    """What one flow kind needs, port aside: any one alternative fully admitted is enough.

    An alternative is a tuple of (protocol, source) pairs that must all be admitted.
    """

    kind: FlowKind
    alternatives: tuple[tuple[tuple[str, Source], ...], ...]

    def flows(self, port: int) -> tuple[tuple[Flow, ...], ...]:
        return tuple(tuple(Flow(proto, port, src) for proto, src in alt) for alt in self.alternatives)


def family(target_group: TargetGroup) -> Family:
    """The address family the NLB uses towards the targets: the target group's IpAddressType."""
    return "ipv6" if target_group.ip_address_type.strip().lower() == "ipv6" else "ipv4"


def _sources(cidrs: Sequence[str | None], wanted: Family) -> tuple[Source, ...]:
    """Valid CIDRs of the wanted family, as sorted unique sources."""
    kind = "cidr6" if wanted == "ipv6" else "cidr4"
    out: set[Source] = set()
    for text in cidrs:
        try:
            source = Source.cidr(text or "")
        except ValueError:
            continue
        if source.kind == kind:
            out.add(source)
    return tuple(sorted(out))


def client_sources(inventory: Inventory, target_group: TargetGroup, lb: LoadBalancer) -> tuple[Source, ...]:
    """Sources of client traffic when client IPs are preserved, in the target group's family.

    The intent's sources when it has some of this family (engine/intent.py), else the Service's
    source ranges when known, else LBC's defaults: 0.0.0.0/0 (IPv4) or ::/0 (IPv6)
    internet-facing, the VPC's CIDRs of that family internal (getDefaultIPSourceRanges).
    """
    wanted = family(target_group)
    intent = inventory.intents.get(target_group.arn)
    if intent is not None and intent.sources:  # engine/intent.py: binding or managed rules
        found = _sources(intent.sources, wanted)
        if found:
            return found
    binding = inventory.services.get(target_group.arn)
    if binding and binding.source_ranges:
        return _sources(binding.source_ranges, wanted)
    if lb.scheme == "internal":
        vpc = inventory.vpcs.get(lb.vpc_id)
        if vpc is None:
            return ()
        return _sources(vpc.ipv6_cidrs if wanted == "ipv6" else vpc.cidrs, wanted)
    return _sources(["::/0" if wanted == "ipv6" else "0.0.0.0/0"], wanted)


def subnet_sources(lb: LoadBalancer, wanted: Family = "ipv4") -> tuple[Source, ...]:
    """The NLB's subnet CIDRs of a family: where its private IPs (health checks, unpreserved traffic)
    come from (getLoadBalancerSubnetsSourceRanges)."""
    return _sources([s.ipv6_cidr if wanted == "ipv6" else s.cidr for s in lb.subnets], wanted)


def requirements(
    inventory: Inventory, target_group: TargetGroup, lb: LoadBalancer, attributes: Mapping[str, str]
) -> dict[FlowKind, Requirement]:
    """The traffic and health-check requirements of a target group under the given attributes.

    In SG mode the alternatives are a rule referencing each of the NLB's groups, then the CIDR
    sources of legacy mode (an empty CIDR alternative is left out: it would admit anything).
    """
    protocols = transport_protocols(target_group.protocol)
    wanted = family(target_group)
    subnets = subnet_sources(lb, wanted)
    if preserve_client_ip(target_group, attributes):
        traffic_sources = client_sources(inventory, target_group, lb)
    else:
        traffic_sources = subnets
    traffic = tuple((proto, src) for proto in protocols for src in traffic_sources)
    health_check = tuple(("tcp", src) for src in subnets)
    if lb.security_groups:
        by_group = tuple(
            tuple((proto, Source.group(sg)) for proto in protocols) for sg in sorted(lb.security_groups)
        )
        health = tuple(((("tcp", Source.group(sg)),)) for sg in sorted(lb.security_groups))
        return {
            "traffic": Requirement("traffic", by_group + ((traffic,) if traffic else ())),
            "health_check": Requirement("health_check", health + ((health_check,) if health_check else ())),
        }
    return {
        "traffic": Requirement("traffic", (traffic,)),
        "health_check": Requirement("health_check", (health_check,)),
    }


@dataclass(frozen=True)
class Admission:
    """Whether one target admits one flow kind, and when not, why."""

    admitted: bool
    reason: Reason | None = None
    uncovered: tuple[IPNetwork, ...] = ()
    flow: Flow | None = None  # the first flow found not admitted
    not_evaluable: NotEvaluableReason | None = None  # set: neither admitted nor a gap


ADMITTED = Admission(True)
_NOT_EVALUABLE: dict[NotEvaluableReason, Admission] = {
    reason: Admission(False, not_evaluable=reason) for reason in get_args(NotEvaluableReason)
}


def why_not_evaluable(
    inventory: Inventory, target_group: TargetGroup, target: Target
) -> NotEvaluableReason | None:
    """Why a target cannot be evaluated, or None when it can.

    An ip target outside the target group's VPC: registered with AvailabilityZone "all", or with
    an address in none of the VPC's CIDRs (registered with its node's zone: LBC v2.17.0+, still
    at v3.5.0; engine/inventory.py address_outside_vpc).
    An Application Load Balancer registered as the target (target type "alb": an NLB in front of
    an ALB, as the controller's frontend NLB for an Ingress makes, LBC v2.13.0+, v3.5.0
    pkg/ingress/model_build_frontend_nlb.go with elbv2model.TargetTypeALB): the NLB's traffic
    and health checks reach the ALB's nodes, admitted by the ALB's own security groups, not by a
    node or pod ENI; the exporter does not read ALBs, so it cannot say (never a gap).
    """
    if target_group.target_type == "alb":
        return "target_is_alb"
    if target_group.target_type != "ip":
        return None
    if target.outside_vpc or address_outside_vpc(target.target_id, inventory.vpcs.get(target_group.vpc_id)):
        return "target_outside_vpc"
    return None


def expand_prefix_lists(rules: Sequence[Rule], prefix_lists: Mapping[str, PrefixList]) -> list[Rule]:
    """The rules plus, for each rule referencing a known prefix list, one CIDR rule per entry.

    A rule referencing a managed prefix list admits the list's CIDRs (EC2 security group rules);
    a list not described stays a reference that admits no CIDR.
    """
    if not prefix_lists or all(r.source.kind != "prefix_list" for r in rules):
        return list(rules)
    out = list(rules)
    for rule in rules:
        found = prefix_lists.get(rule.source.value) if rule.source.kind == "prefix_list" else None
        for cidr in found.cidrs if found else ():
            try:
                source = Source.cidr(cidr)
            except ValueError:
                continue
            out.append(
                Rule(rule.protocol, rule.from_port, rule.to_port, source, rule.rule_id, rule.description)
            )
    return out


def check_rules(rules: Sequence[Rule], alternatives: tuple[tuple[Flow, ...], ...]) -> Admission:
    """Admission of flows by a set of rules: any alternative whose flows are all admitted."""
    if not alternatives or all(not alt for alt in alternatives):
        return ADMITTED
    first_failure: Admission | None = None
    for alternative in alternatives:
        failure: Admission | None = None
        for flow in alternative:
            missing = uncovered(rules, flow)
            if missing:
                failure = Admission(False, _reason(rules, flow, missing), tuple(missing), flow)
                break
        if failure is None:
            return ADMITTED
        first_failure = first_failure or failure
    assert first_failure is not None
    return first_failure


def _reason(rules: Sequence[Rule], flow: Flow, missing: list[IPNetwork]) -> Reason:
    port_rules = [r for r in rules if r.matches_port(flow.protocol, flow.port)]
    if not port_rules:
        return "no_rule_for_port"
    if flow.source.kind in ("cidr4", "cidr6") and missing != [flow.source.network]:
        return "source_partly_covered"
    return "source_not_covered"


class AdmissionChecker:
    """Evaluates targets against rules with a memo: targets sharing groups and port cost one check.

    Build one per evaluation point; `rules_by_group` is the rule state at that point.
    """

    def __init__(self, inventory: Inventory, rules_by_group: Mapping[str, Sequence[Rule]]) -> None:
        self._inventory = inventory
        self._rules_by_group = rules_by_group
        self._memo: dict[tuple[tuple[str, ...], tuple[tuple[Flow, ...], ...]], Admission] = {}
        self._union: dict[tuple[str, ...], list[Rule] | None] = {}
        self._groups: dict[str, tuple[str, ...] | None] = {}
        self._sorted: dict[tuple[str, ...], tuple[str, ...]] = {}

    def groups_of(self, eni_id: str | None) -> tuple[str, ...] | None:
        if eni_id is None:
            return None
        if eni_id not in self._groups:
            eni = self._inventory.network_interfaces.get(eni_id)
            if eni is None:
                self._groups[eni_id] = None
            else:  # ENIs share a few group sets: one sorted tuple per set
                ids = eni.security_group_ids
                self._groups[eni_id] = self._sorted.get(ids) or self._sorted.setdefault(
                    ids, tuple(sorted(ids))
                )
        return self._groups[eni_id]

    def _rules(self, groups: tuple[str, ...]) -> list[Rule] | None:
        if groups not in self._union:
            present = [self._rules_by_group[g] for g in groups if g in self._rules_by_group]
            self._union[groups] = (
                None
                if not present
                else expand_prefix_lists(
                    [r for rules in present for r in rules], self._inventory.prefix_lists
                )
            )
        return self._union[groups]

    def check(self, eni_id: str | None, alternatives: tuple[tuple[Flow, ...], ...]) -> Admission:
        groups = self.groups_of(eni_id)
        if groups is None:
            return Admission(False, "target_eni_not_found")
        key = (groups, alternatives)
        found = self._memo.get(key)
        if found is None:
            rules = self._rules(groups)
            found = (
                Admission(False, "security_group_missing")
                if rules is None
                else check_rules(rules, alternatives)
            )
            self._memo[key] = found
        return found


class FlowStatus(msgspec.Struct, frozen=True, gc=False):
    """One flow kind of one target group at one moment.

    Made for every target group at every evaluation: a Struct the cyclic garbage collector does
    not track (``gc=False``; it holds counts by reason, no cycles).
    """

    kind: FlowKind
    targets: int
    admitted: int
    unadmitted_by_reason: Mapping[str, int]
    not_evaluable_by_reason: Mapping[str, int] = msgspec.field(default_factory=dict)

    @property
    def not_evaluable(self) -> int:
        """Targets that cannot be evaluated (no ENI to look at); never counted as a gap."""
        return sum(self.not_evaluable_by_reason.values())

    @property
    def evaluable(self) -> int:
        return self.targets - self.not_evaluable

    @property
    def fully_admitted(self) -> bool:
        return self.admitted == self.evaluable

    @property
    def ratio(self) -> float:
        """Admitted among the evaluable targets; 1 when none is evaluable."""
        evaluable = self.evaluable
        return 1.0 if evaluable <= 0 else self.admitted / evaluable


def target_admissions(
    checker: AdmissionChecker,
    inventory: Inventory,
    target_group: TargetGroup,
    lb: LoadBalancer,
    attributes: Mapping[str, str],
) -> dict[FlowKind, list[Admission]]:
    """Per flow kind, the admission of every target of the group (in target order)."""
    reqs = requirements(inventory, target_group, lb, attributes)
    result: dict[FlowKind, list[Admission]] = {"traffic": [], "health_check": []}
    # Targets of a group mostly share a port: build each port's flows once.
    flows_at: dict[tuple[FlowKind, int], tuple[tuple[Flow, ...], ...]] = {}

    def flows(kind: FlowKind, port: int) -> tuple[tuple[Flow, ...], ...]:
        found = flows_at.get((kind, port))
        if found is None:
            found = flows_at[(kind, port)] = reqs[kind].flows(port)
        return found

    # ... and targets sharing a port and security groups share an admission.
    admissions: dict[tuple[FlowKind, int, tuple[str, ...] | None], Admission] = {}

    def admission(kind: FlowKind, port: int, eni_id: str | None) -> Admission:
        key = (kind, port, checker.groups_of(eni_id))
        found = admissions.get(key)
        if found is None:
            found = admissions[key] = checker.check(eni_id, flows(kind, port))
        return found

    for target in target_group.targets:
        why_not = why_not_evaluable(inventory, target_group, target)
        if why_not:
            result["traffic"].append(_NOT_EVALUABLE[why_not])
            result["health_check"].append(_NOT_EVALUABLE[why_not])
            continue
        result["traffic"].append(admission("traffic", target.port, target.eni_id))
        hc_port = health_check_port(target_group, target.port)
        result["health_check"].append(admission("health_check", hc_port, target.eni_id))
    return result


def flow_status(
    checker: AdmissionChecker,
    inventory: Inventory,
    target_group: TargetGroup,
    lb: LoadBalancer,
    attributes: Mapping[str, str],
) -> dict[FlowKind, FlowStatus]:
    """Counts of admitted targets per flow kind, with reasons for the rest."""
    statuses: dict[FlowKind, FlowStatus] = {}
    for kind, admissions in target_admissions(checker, inventory, target_group, lb, attributes).items():
        reasons: dict[str, int] = {}
        not_evaluable: dict[str, int] = {}
        for admission in admissions:
            if admission.not_evaluable:
                not_evaluable[admission.not_evaluable] = not_evaluable.get(admission.not_evaluable, 0) + 1
            elif not admission.admitted and admission.reason:
                reasons[admission.reason] = reasons.get(admission.reason, 0) + 1
        admitted = sum(1 for a in admissions if a.admitted)
        statuses[kind] = FlowStatus(kind, len(admissions), admitted, reasons, not_evaluable)
    return statuses
