"""Which client sources a target group is meant to admit: its intent (issue 12, item 4).

With client IPs preserved, the controller admits the Service's loadBalancerSourceRanges, else
0.0.0.0/0 (or the VPC CIDRs internal). Without Kubernetes access the exporter cannot read the
ranges, and guessing 0.0.0.0/0 turns every Service with ranges into a permanent gap. So, in order:

- `binding`: with Kubernetes access, the TargetGroupBinding's spec.networking, which is what the
  controller reconciles onto the node groups (LBC v2.13.4 and v3.5.0
  pkg/networking/networking_manager.go; built by buildTargetGroupBindingNetworkingLegacy in
  pkg/service/model_build_target_group.go, or for a Gateway API NLB by nlbNoSecurityGroups in
  pkg/gateway/model/model_build_target_group_binding_network.go, v3.5.0):
  its CIDR peers on the traffic port, less the NLB subnets (the health-check peers); with none
  (preservation off, SG mode), the Service's ranges.
- `managed_rules`: without it, the rules the controller manages on the port (description
  `elbv2.k8s.aws/targetGroupBinding=shared`) while preservation is on, less the NLB subnets: the
  materialized intent. A set of such rules is learned at once when it grows; when it shrinks it
  is learned only once it has held for `SETTLE` (a revoke restored sooner is a gap, not a new
  intent); an empty set (every client rule revoked) is never learned.
- `default`: neither known: the controller's default for the scheme.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from exporter.engine.changes import AttributeChange, Change, GroupDeletion, RuleChange, RuleModification
from exporter.engine.flows import family, preserve_client_ip, subnet_sources, transport_protocols
from exporter.engine.inventory import Intent, Inventory, LoadBalancer, TargetGroup
from exporter.engine.rules import Rule
from exporter.engine.timeline import RuleState, affected_group, moments, rewind

#: The description marker of the rules the controller manages: LBC v2.13.4 and v3.5.0
#: pkg/networking/networking_manager.go tgbNetworkingIPPermissionLabelKey=...LabelValue.
MARKER = "elbv2.k8s.aws/targetGroupBinding=shared"
#: How long a smaller set of controller-managed rules must hold before it is the intent.
SETTLE = timedelta(minutes=5)

Sources = tuple[str, ...]


def is_managed(rule: Rule) -> bool:
    """True for a rule the controller manages: the marker as one comma-separated item."""
    if not rule.description:
        return False
    return any(part.strip() == MARKER for part in rule.description.split(","))


def _load_balancer(inventory: Inventory, tg: TargetGroup) -> LoadBalancer | None:
    for arn in tg.load_balancer_arns:
        if arn in inventory.load_balancers:
            return inventory.load_balancers[arn]
    return None


def _groups(inventory: Inventory, tg: TargetGroup) -> set[str]:
    found: set[str] = set()
    for target in tg.targets:
        eni = inventory.network_interfaces.get(target.eni_id or "")
        if eni is not None:
            found.update(eni.security_group_ids)
    return found


def _traffic_rule(rule: Rule, tg: TargetGroup) -> bool:
    ports = {t.port for t in tg.targets} or {tg.port}
    return any(rule.matches_port(p, port) for p in transport_protocols(tg.protocol) for port in ports)


def _client_cidrs(rules: Iterable[Rule], tg: TargetGroup, lb: LoadBalancer) -> Sources:
    """CIDRs of the target group's family on its traffic port, less the NLB subnets."""
    wanted = family(tg)
    kind = "cidr6" if wanted == "ipv6" else "cidr4"
    subnets = {s.value for s in subnet_sources(lb, wanted)}
    cidrs = {r.source.value for r in rules if r.source.kind == kind and _traffic_rule(r, tg)} - subnets
    # The union is what is admitted: adjacent ranges merge (0.0.0.0/1 + 128.0.0.0/1 = 0.0.0.0/0).
    networks = [ipaddress.ip_network(c) for c in cidrs]
    return tuple(str(n) for n in ipaddress.collapse_addresses(networks))  # type: ignore[type-var]


def managed_candidate(
    inventory: Inventory,
    tg: TargetGroup,
    rules_by_group: Mapping[str, Sequence[Rule]],
    attributes: Mapping[str, str],
) -> Sources | None:
    """The client sources the controller-managed rules say, or None when they say nothing
    (preservation off: those rules are the subnets; or no managed client rule at all)."""
    lb = _load_balancer(inventory, tg)
    if lb is None or not preserve_client_ip(tg, attributes):
        return None
    managed = [r for g in _groups(inventory, tg) for r in rules_by_group.get(g, ()) if is_managed(r)]
    return _client_cidrs(managed, tg, lb) or None


def binding_intent(inventory: Inventory, tg: TargetGroup) -> Intent | None:
    """The TargetGroupBinding's intent, when Kubernetes mapped the target group through one."""
    binding = inventory.services.get(tg.arn)
    lb = _load_balancer(inventory, tg)
    if binding is None or binding.mapped_by != "targetgroupbinding" or lb is None:
        return None
    peers = _client_cidrs(binding.ingress_rules, tg, lb)
    return Intent("binding", peers or tuple(binding.source_ranges))


def anchor_intents(inventory: Inventory, learned: Mapping[str, Intent] | None = None) -> dict[str, Intent]:
    """The intent of every target group at the anchor: binding, else what was learned before
    (`learned`, e.g. the last analysis), else the managed rules now, else nothing (default)."""
    rules = {gid: sg.rules for gid, sg in inventory.security_groups.items()}
    found: dict[str, Intent] = {}
    for arn, tg in inventory.target_groups.items():
        bound = binding_intent(inventory, tg)
        if bound is not None:
            found[arn] = bound
            continue
        before = (learned or {}).get(arn)
        if before is not None and before.kind == "managed_rules":
            found[arn] = before
            continue
        candidate = managed_candidate(inventory, tg, rules, tg.attributes)
        if candidate is not None:
            found[arn] = Intent("managed_rules", candidate)
    return found


@dataclass
class IntentTimeline:
    """Per target group, the intents adopted over a sweep: (from, intent), in time order."""

    adopted: dict[str, list[tuple[datetime, Intent]]] = field(default_factory=dict)

    def at(self, arn: str, moment: datetime, fallback: Intent | None) -> Intent | None:
        found = fallback
        for since, intent in self.adopted.get(arn, ()):
            if since > moment:
                break
            found = intent
        return found

    def final(self, arn: str, fallback: Intent | None) -> Intent | None:
        entries = self.adopted.get(arn)
        return entries[-1][1] if entries else fallback


def learn(
    inventory: Inventory,
    ordered: Sequence[Change],
    start: datetime,
    end: datetime,
    tgs_of_group: Mapping[str, Iterable[str]],
    skip: Iterable[str] = (),
) -> IntentTimeline:
    """Replay the changes (already in time order) and learn the managed-rules intent of each
    target group over time (see the module docstring); `skip` the ones judged by a binding."""
    skipped = set(skip)
    state = RuleState.from_inventory(inventory, watched_groups=tgs_of_group.keys())
    rewind(state, list(ordered), inventory.taken_at)
    candidates: dict[str, list[tuple[datetime, Sources | None]]] = {}

    def note(arns: Iterable[str], moment: datetime) -> None:
        rules = state.rules_by_group()
        for arn in arns:
            tg = inventory.target_groups.get(arn)
            if tg is None or arn in skipped:
                continue
            found = managed_candidate(inventory, tg, rules, state.attributes.get(arn, {}))
            seen = candidates.setdefault(arn, [])
            if not seen or seen[-1][1] != found:
                seen.append((moment, found))

    note(inventory.target_groups.keys(), start - timedelta(microseconds=1))  # before the first change
    for moment, batch in moments(list(ordered)):
        touched: set[str] = set()
        for change in batch:
            state.apply(change)
            if isinstance(change, AttributeChange):
                touched.add(change.target_group_arn)
            else:
                touched.update(tgs_of_group.get(affected_group(change) or "", ()))
        note(touched, moment)
    timeline = IntentTimeline()
    for arn, seen in candidates.items():
        timeline.adopted[arn] = _adopt(seen, end)
    return timeline


def _adopt(seen: Sequence[tuple[datetime, Sources | None]], end: datetime) -> list[tuple[datetime, Intent]]:
    adopted: list[tuple[datetime, Intent]] = []
    current: Sources | None = None
    for i, (since, candidate) in enumerate(seen):
        if candidate is None or candidate == current:
            continue  # nothing to learn (preservation off, or every client rule gone)
        if current is None or set(candidate) >= set(current):
            current = candidate  # more sources: learned at once (it can only find more gaps)
        else:
            held_until = next((t for t, c in seen[i + 1 :] if c != candidate), end)
            if held_until - since < SETTLE:
                continue  # a shrink restored sooner is a gap, not a new intent
            current = candidate
        adopted.append((since, Intent("managed_rules", current)))
    return adopted


#: Per target group, the TargetGroupBinding intents seen over time (the daemon records them).
BindingHistory = Mapping[str, Sequence[tuple[datetime, Intent]]]


def _may_move(change: Change) -> bool:
    """True when a change can change what the managed rules say (an attribute, or a rule change
    that names a managed rule or only rule ids)."""
    if isinstance(change, AttributeChange):
        return True
    if isinstance(change, RuleChange):
        return bool(change.rule_ids) or any(is_managed(r) for r in change.rules)
    if isinstance(change, RuleModification):
        return any(is_managed(r) for _rule_id, r in change.modifications)
    return isinstance(change, GroupDeletion)


def learn_if_moved(
    inventory: Inventory,
    ordered: Sequence[Change],
    start: datetime,
    end: datetime,
    tgs_of_group: Mapping[str, Iterable[str]],
) -> IntentTimeline:
    """`learn` for the target groups not judged by a binding, when some change can move the
    managed rules; else nothing to learn (the anchor's intents hold throughout)."""
    if not any(_may_move(c) for c in ordered):
        return IntentTimeline()
    bound = [arn for arn in inventory.target_groups if inventory.intent_of(arn).kind == "binding"]
    return learn(inventory, ordered, start, end, tgs_of_group, skip=bound)


def intents_at(
    anchor: Mapping[str, Intent], timeline: IntentTimeline, history: BindingHistory, moment: datetime
) -> dict[str, Intent]:
    """Every target group's intent at a moment of the sweep."""
    found = dict(anchor)
    for arn in timeline.adopted:
        learned = timeline.at(arn, moment, found.get(arn))
        if learned is not None:
            found[arn] = learned
    for arn, entries in history.items():
        if not entries:
            continue
        chosen = entries[0][1]  # before the first one seen, the earliest known is the best guess
        for since, intent in entries:
            if since > moment:
                break
            chosen = intent
        found[arn] = chosen
    return found


def final_intents(
    anchor: Mapping[str, Intent], timeline: IntentTimeline, history: BindingHistory
) -> dict[str, Intent]:
    """Every target group's intent at the end of the sweep."""
    found = dict(anchor)
    for arn in timeline.adopted:
        learned = timeline.final(arn, found.get(arn))
        if learned is not None:
            found[arn] = learned
    for arn, entries in history.items():
        if entries:
            found[arn] = entries[-1][1]
    return found
