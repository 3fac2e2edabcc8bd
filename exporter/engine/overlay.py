"""The inventory's changeable parts over time, on top of the anchor inventory.

What a target group requires and which groups guard its targets move with records other than
rule changes: ModifyTargetGroup (health-check port and protocol), ModifyNetworkInterfaceAttribute
(the groups on a target's ENI), SetSecurityGroups and SetSubnets on the load balancer, and
RegisterTargets / DeregisterTargets. An `InventoryOverlay` keeps, for the objects changed so far
in the sweep, their value at the sweep's current moment; `view` derives the Inventory of that
moment (the anchor with only the changed objects replaced, so nothing is copied while nothing
changed).

A record carries only the new value of a health-check port, a group set or a subnet set. Undoing
one (walking back from the anchor) takes the old value from an earlier record of the same object
when there is one; otherwise the value is UNKNOWN, and what depends on it is reported as not known
(`View.unknown`, `View.partial`), never as a guessed old value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from exporter.engine.changes import (
    Change,
    HealthCheckChange,
    InterfaceGroupsChange,
    LoadBalancerGroupsChange,
    LoadBalancerSubnetsChange,
    TargetsChange,
)
from exporter.engine.inventory import (
    Inventory,
    LoadBalancer,
    NetworkInterface,
    Subnet,
    Target,
    TargetGroup,
)

#: A value the records cannot give (the old value of a change with no earlier record).
UNKNOWN: Any = None
_NO_RECORD = object()

TargetKey = tuple[str, int]
PriorKey = tuple[str, str]  # (what, object id)


def prior_keys(change: Change) -> list[tuple[PriorKey, object]]:
    """The (key, new value) pairs a change sets, for finding the old value in an earlier record."""
    if change.meta.failed:
        return []
    if isinstance(change, HealthCheckChange):
        pairs: list[tuple[PriorKey, object]] = []
        if change.port is not None:
            pairs.append((("hc_port", change.target_group_arn), change.port))
        if change.protocol is not None:
            pairs.append((("hc_protocol", change.target_group_arn), change.protocol))
        return pairs
    if isinstance(change, InterfaceGroupsChange):
        return [(("eni_groups", change.eni_id), change.group_ids)]
    if isinstance(change, LoadBalancerGroupsChange):
        return [(("lb_groups", change.load_balancer_arn), change.group_ids)]
    if isinstance(change, LoadBalancerSubnetsChange):
        return [(("lb_subnets", change.load_balancer_arn), change.subnet_ids)]
    return []


def priors(
    earlier: Iterable[Change], before: Callable[[PriorKey, datetime], object] | None = None
) -> dict[str, dict[PriorKey, object]]:
    """For each change (by eventID) in time order, the value each of its keys had before it:
    the value the previous record of the same key set, else what `before(key, moment)` gives
    (the daemon's own earlier polls, engine/polls.py), else UNKNOWN."""
    last: dict[PriorKey, object] = {}
    found: dict[str, dict[PriorKey, object]] = {}
    for change in earlier:
        pairs = prior_keys(change)
        if not pairs:
            continue
        moment = change.meta.event_time
        found[change.meta.event_id] = {
            key: last[key] if key in last else (UNKNOWN if before is None else before(key, moment))
            for key, _ in pairs
        }
        for key, value in pairs:
            last[key] = value
    return found


@dataclass(frozen=True)
class View:
    """The inventory at one moment of the sweep, and what of it is not known.

    `unknown`: target group -> flow kinds whose requirement is not known (health-check port,
    load balancer groups or subnets unknown). `partial`: target groups with targets left out
    because their ENI's groups (or, for a target registered by a record, its ENI) are not known.
    """

    inventory: Inventory
    unknown: Mapping[str, frozenset[str]] = field(default_factory=dict)
    partial: frozenset[str] = frozenset()


_BOTH = frozenset({"traffic", "health_check"})
_HEALTH = frozenset({"health_check"})


class InventoryOverlay:
    """The changed parts of the inventory at the sweep's current moment."""

    def __init__(self, inventory: Inventory) -> None:
        self.anchor = inventory
        self.health_port: dict[str, str | None] = {}
        self.health_protocol: dict[str, str | None] = {}
        self.targets: dict[str, dict[TargetKey, Target | None]] = {}  # None: the ENI is not known
        self.eni_groups: dict[str, tuple[str, ...] | None] = {}
        self.lb_groups: dict[str, tuple[str, ...] | None] = {}
        self.lb_subnets: dict[str, tuple[Subnet, ...] | None] = {}
        self.version = 0
        self._view: View | None = None
        self._view_version = -1
        # the view's own maps (copies of the anchor's, made on the first change of each kind),
        # what changed since the last view, and what is not known now
        self._lbs: dict[str, LoadBalancer] | None = None
        self._tgs: dict[str, TargetGroup] | None = None
        self._enis: dict[str, NetworkInterface] | None = None
        self._dirty_lbs: set[str] = set()
        self._dirty_tgs: set[str] = set()
        self._dirty_enis: set[str] = set()
        self._unknown_lbs: set[str] = set()
        self._unknown_enis: set[str] = set()
        self._unknown: dict[str, frozenset[str]] = {}
        self._partial: set[str] = set()
        self._eni_of_target: dict[tuple[str, str], str] | None = None
        self._eni_of_ip: dict[str, str] = {}
        self._subnets: dict[str, Subnet] | None = None
        self._tgs_of_lb: dict[str, list[str]] | None = None
        self._tgs_of_eni: dict[str, set[str]] | None = None

    @property
    def empty(self) -> bool:
        return not (
            self.health_port
            or self.health_protocol
            or self.targets
            or self.eni_groups
            or self.lb_groups
            or self.lb_subnets
        )

    # --- lookups built from the anchor on first use ------------------------------------------
    def _eni_for(self, target_group: TargetGroup, target_id: str) -> str | None:
        """The ENI of a target the anchor may not list: the one the anchor lists for the same id in
        the same VPC (addresses are unique only within a VPC), else (ip targets) the only ENI
        holding the address. None when the inventory does not know it, or not for certain."""
        if self._eni_of_target is None:
            listed: dict[tuple[str, str], set[str]] = {}
            for tg in self.anchor.target_groups.values():
                for target in tg.targets:
                    if target.eni_id:
                        listed.setdefault((tg.vpc_id, target.target_id), set()).add(target.eni_id)
            self._eni_of_target = {key: next(iter(ids)) for key, ids in listed.items() if len(ids) == 1}
            holders: dict[str, set[str]] = {}
            for eni in self.anchor.network_interfaces.values():
                for ip in eni.private_ips:
                    holders.setdefault(ip, set()).add(eni.eni_id)
            self._eni_of_ip = {ip: next(iter(ids)) for ip, ids in holders.items() if len(ids) == 1}
        if target_group.target_type == "instance" and not target_id.startswith("i-"):
            return None
        anchor_group = self.anchor.target_groups.get(target_group.arn)
        own = {t.eni_id for t in anchor_group.targets if t.target_id == target_id} if anchor_group else set()
        if len(own) == 1:
            return own.pop()  # the group itself listed it at the anchor
        found = self._eni_of_target.get((target_group.vpc_id, target_id))
        if found is None and target_group.target_type == "ip":
            found = self._eni_of_ip.get(target_id)
        return found

    def tgs_of_lb(self, lb_arn: str) -> list[str]:
        if self._tgs_of_lb is None:
            self._tgs_of_lb = {}
            for tg in self.anchor.target_groups.values():
                for arn in tg.load_balancer_arns:
                    self._tgs_of_lb.setdefault(arn, []).append(tg.arn)
        return self._tgs_of_lb.get(lb_arn, [])

    def tgs_of_eni(self, eni_id: str) -> set[str]:
        """Target groups with a target on the ENI, at the anchor or registered by a record."""
        if self._tgs_of_eni is None:
            self._tgs_of_eni = {}
            for tg in self.anchor.target_groups.values():
                for target in tg.targets:
                    if target.eni_id:
                        self._tgs_of_eni.setdefault(target.eni_id, set()).add(tg.arn)
        return self._tgs_of_eni.get(eni_id, set())

    def _subnet(self, subnet_id: str) -> Subnet | None:
        if self._subnets is None:
            self._subnets = {s.subnet_id: s for lb in self.anchor.load_balancers.values() for s in lb.subnets}
        found = self._subnets.get(subnet_id)
        return found if found is not None and found.cidr else None

    def groups_of(self, eni_id: str) -> tuple[str, ...] | None:
        """The ENI's groups now (None when not known)."""
        if eni_id in self.eni_groups:
            return self.eni_groups[eni_id]
        eni = self.anchor.network_interfaces.get(eni_id)
        return None if eni is None else eni.security_group_ids

    def _note_target(self, eni_id: str, tg_arn: str) -> None:
        self.tgs_of_eni(eni_id)  # builds the map from the anchor first
        assert self._tgs_of_eni is not None
        self._tgs_of_eni.setdefault(eni_id, set()).add(tg_arn)

    def group_edges(
        self, changes: Iterable[Change], held_before: Mapping[str, set[str]] | None = None
    ) -> set[tuple[str, str]]:
        """(security group, target group) pairs the changes can create beyond the anchor's: the
        groups an ENI is given by a record (or held before it: `held_before`, from the daemon's
        polls), for the target groups with a target on that ENI, and the groups of ENIs that
        records register (or deregister) as targets. Over-approximated (any moment), so a rule
        change on any of them re-evaluates those target groups; call before the sweep."""
        registered: list[tuple[str, str]] = []
        recorded: dict[str, set[str]] = {eni: set(groups) for eni, groups in (held_before or {}).items()}
        for change in changes:
            if isinstance(change, TargetsChange):  # a deregistration undone registers too
                tg = self.anchor.target_groups.get(change.target_group_arn)
                if tg is None:
                    continue
                for target_id, _port in change.targets:
                    eni_id = self._eni_for(tg, target_id)
                    if eni_id is not None:
                        self._note_target(eni_id, tg.arn)
                        registered.append((eni_id, tg.arn))
            elif isinstance(change, InterfaceGroupsChange):
                recorded.setdefault(change.eni_id, set()).update(change.group_ids)
        edges: set[tuple[str, str]] = set()
        for eni_id, groups in recorded.items():
            edges.update((g, tg_arn) for tg_arn in self.tgs_of_eni(eni_id) for g in groups)
        for eni_id, tg_arn in registered:
            eni = self.anchor.network_interfaces.get(eni_id)
            groups = set(eni.security_group_ids if eni else ()) | recorded.get(eni_id, set())
            edges.update((g, tg_arn) for g in groups)
        return edges

    # --- what a change touches -----------------------------------------------------------------
    def touched(self, change: Change) -> set[str]:
        """Target groups (by ARN) whose evaluation a change of the overlay can move."""
        if isinstance(change, HealthCheckChange | TargetsChange):
            return {change.target_group_arn}
        if isinstance(change, InterfaceGroupsChange):
            return set(self.tgs_of_eni(change.eni_id))
        if isinstance(change, LoadBalancerGroupsChange | LoadBalancerSubnetsChange):
            return set(self.tgs_of_lb(change.load_balancer_arn))
        return set()

    # --- forward and back ----------------------------------------------------------------------
    def apply(self, change: Change) -> None:
        """Apply a change forward. Failed calls change nothing."""
        if change.meta.failed:
            return
        if isinstance(change, HealthCheckChange):
            if change.port is not None:
                self.health_port[change.target_group_arn] = change.port
            if change.protocol is not None:
                self.health_protocol[change.target_group_arn] = change.protocol
        elif isinstance(change, InterfaceGroupsChange):
            self.eni_groups[change.eni_id] = change.group_ids
        elif isinstance(change, LoadBalancerGroupsChange):
            self.lb_groups[change.load_balancer_arn] = change.group_ids
        elif isinstance(change, LoadBalancerSubnetsChange):
            self.lb_subnets[change.load_balancer_arn] = self._resolve_subnets(change.subnet_ids)
        elif isinstance(change, TargetsChange):
            if change.action == "register":
                self._add_targets(change)
            else:
                self._remove_targets(change)
        else:
            return
        self._mark(change)

    def undo(self, change: Change, prior: Mapping[PriorKey, object] | None) -> None:
        """Undo a change the anchor already includes; `prior` holds the old values an earlier
        record gave (see `priors`), UNKNOWN where none did."""
        if change.meta.failed:
            return
        before = dict(prior or {})
        if isinstance(change, HealthCheckChange):
            arn = change.target_group_arn
            if change.port is not None:
                self.health_port[arn] = _text(before.get(("hc_port", arn), UNKNOWN))
            if change.protocol is not None:
                self.health_protocol[arn] = _text(before.get(("hc_protocol", arn), UNKNOWN))
        elif isinstance(change, InterfaceGroupsChange):
            self.eni_groups[change.eni_id] = _ids(before.get(("eni_groups", change.eni_id), UNKNOWN))
        elif isinstance(change, LoadBalancerGroupsChange):
            arn = change.load_balancer_arn
            self.lb_groups[arn] = _ids(before.get(("lb_groups", arn), UNKNOWN))
        elif isinstance(change, LoadBalancerSubnetsChange):
            arn = change.load_balancer_arn
            old = _ids(before.get(("lb_subnets", arn), UNKNOWN))
            self.lb_subnets[arn] = None if old is None else self._resolve_subnets(old)
        elif isinstance(change, TargetsChange):
            if change.action == "register":
                self._remove_targets(change)
            else:
                self._add_targets(change)
        else:
            return
        self._mark(change)

    def _mark(self, change: Change) -> None:
        self.version += 1
        if isinstance(change, HealthCheckChange | TargetsChange):
            self._dirty_tgs.add(change.target_group_arn)
        elif isinstance(change, InterfaceGroupsChange):
            self._dirty_enis.add(change.eni_id)
        elif isinstance(change, LoadBalancerGroupsChange | LoadBalancerSubnetsChange):
            self._dirty_lbs.add(change.load_balancer_arn)

    def _resolve_subnets(self, subnet_ids: tuple[str, ...]) -> tuple[Subnet, ...] | None:
        subnets = [self._subnet(s) for s in subnet_ids]
        if any(s is None for s in subnets):
            return None  # a subnet the inventory has not described: its CIDR is not known
        return tuple(s for s in subnets if s is not None)

    def _targets_of(self, arn: str) -> dict[TargetKey, Target | None] | None:
        found = self.targets.get(arn)
        if found is None:
            tg = self.anchor.target_groups.get(arn)
            if tg is None:
                return None
            found = self.targets[arn] = {(t.target_id, t.port): t for t in tg.targets}
        return found

    def _add_targets(self, change: TargetsChange) -> None:
        targets = self._targets_of(change.target_group_arn)
        tg = self.anchor.target_groups.get(change.target_group_arn)
        if targets is None or tg is None:
            return
        for target_id, port in change.targets:
            key = (target_id, port if port is not None else tg.port)
            if key in targets:
                continue
            eni_id = self._eni_for(tg, target_id)
            targets[key] = None if eni_id is None else Target(target_id, key[1], eni_id)
            if eni_id is not None:
                self._note_target(eni_id, tg.arn)

    def _remove_targets(self, change: TargetsChange) -> None:
        targets = self._targets_of(change.target_group_arn)
        if targets is None:
            return
        for target_id, port in change.targets:
            for key in [k for k in targets if k[0] == target_id and (port is None or k[1] == port)]:
                del targets[key]

    # --- the inventory of this moment ----------------------------------------------------------
    def view(self) -> View:
        """The anchor with the changed objects replaced; cached until the overlay changes."""
        if self._view is not None and self._view_version == self.version:
            return self._view
        view = self._build_view()
        self._view, self._view_version = view, self.version
        return view

    def _build_view(self) -> View:
        """Recompute only what changed since the last view (the dirty load balancers, ENIs and
        target groups, and the target groups behind them); the rest is the anchor's own objects."""
        anchor = self.anchor
        if self.empty and self._tgs is None and self._lbs is None and self._enis is None:
            return View(anchor)
        lbs_dirty, enis_dirty, tgs_dirty = self._dirty_lbs, self._dirty_enis, self._dirty_tgs
        self._dirty_lbs, self._dirty_enis, self._dirty_tgs = set(), set(), set()
        if lbs_dirty:
            lbs = self._lbs = self._lbs if self._lbs is not None else dict(anchor.load_balancers)
            for arn in lbs_dirty:
                lb = anchor.load_balancers.get(arn)
                if lb is None:
                    continue
                groups = self.lb_groups.get(arn, lb.security_groups)
                subnets = self.lb_subnets.get(arn, lb.subnets)
                if groups is None or subnets is None:
                    self._unknown_lbs.add(arn)
                else:
                    self._unknown_lbs.discard(arn)
                lbs[arn] = replace(lb, security_groups=groups or (), subnets=subnets or ())
                tgs_dirty.update(self.tgs_of_lb(arn))
        if enis_dirty:
            enis = self._enis = self._enis if self._enis is not None else dict(anchor.network_interfaces)
            for eni_id in enis_dirty:
                eni = anchor.network_interfaces.get(eni_id)
                if eni is None:
                    continue
                groups = self.eni_groups.get(eni_id, eni.security_group_ids)
                if groups is None or any(g not in anchor.security_groups for g in groups):
                    self._unknown_enis.add(eni_id)  # the groups, or a group's rules, are not known
                    enis[eni_id] = eni
                else:
                    self._unknown_enis.discard(eni_id)
                    enis[eni_id] = (
                        eni if groups == eni.security_group_ids else replace(eni, security_group_ids=groups)
                    )
                tgs_dirty.update(self.tgs_of_eni(eni_id))
        if tgs_dirty:
            tgs = self._tgs = self._tgs if self._tgs is not None else dict(anchor.target_groups)
            for arn in tgs_dirty:
                tg = anchor.target_groups.get(arn)
                if tg is not None:
                    tgs[arn] = self._target_group_now(tg)
        inventory = replace(
            anchor,
            load_balancers=anchor.load_balancers if self._lbs is None else self._lbs,
            target_groups=anchor.target_groups if self._tgs is None else self._tgs,
            network_interfaces=anchor.network_interfaces if self._enis is None else self._enis,
        )
        return View(inventory, dict(self._unknown), frozenset(self._partial))

    def _target_group_now(self, tg: TargetGroup) -> TargetGroup:
        """A target group at this moment; records what of it is not known."""
        arn = tg.arn
        kinds: frozenset[str] = frozenset()
        if any(lb_arn in self._unknown_lbs for lb_arn in tg.load_balancer_arns):
            kinds = _BOTH
        port = self.health_port.get(arn, tg.health_check_port)
        if port is None:
            kinds = kinds | _HEALTH
            port = tg.health_check_port
        protocol = self.health_protocol.get(arn, tg.health_check_protocol) or tg.health_check_protocol
        listed = self.targets.get(arn)
        pool = tg.targets if listed is None else tuple(listed.values())
        kept = tuple(t for t in pool if t is not None and t.eni_id not in self._unknown_enis)
        if len(kept) != len(pool):
            self._partial.add(arn)
        else:
            self._partial.discard(arn)
        if kinds:
            self._unknown[arn] = kinds
        else:
            self._unknown.pop(arn, None)
        unchanged = port == tg.health_check_port and protocol == tg.health_check_protocol
        if unchanged and listed is None and len(kept) == len(pool):
            return tg
        return replace(tg, health_check_port=port, health_check_protocol=protocol, targets=kept)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _ids(value: object) -> tuple[str, ...] | None:
    return value if isinstance(value, tuple) else None
