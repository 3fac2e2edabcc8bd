"""One watched (account, region): its inventory, its CloudTrail changes, its gaps.

The jobs call `poll_inventory`, `ingest` and `evaluate`; each builds new values and swaps
them in whole, so readers (the snapshot builder) never see a half-updated monitor.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from exporter.daemon.snapshot import (
    BREAK_BEFORE_MAKE_LAST,
    AttributeChangeView,
    ExplainBasis,
    GapView,
    TargetGroupView,
    labels_of,
)
from exporter.daemon.state import ROW_ERRORS, StateStore, read_moment, read_text
from exporter.daemon.tracker import GapTracker, identity_of, undetermined_view
from exporter.engine.changes import (
    AttributeChange,
    Change,
    GroupDeletion,
    Rejection,
    RuleChange,
    RuleModification,
)
from exporter.engine.flows import FLOW_KINDS, FlowKind, FlowStatus, preserve_client_ip
from exporter.engine.gaps import (
    Analysis,
    analyze,
    groups_by_target_group,
    load_balancer_of,
    summarize_status,
)
from exporter.engine.intent import anchor_intents
from exporter.engine.inventory import Intent, Inventory, ServiceBinding
from exporter.engine.overlay import PriorKey
from exporter.engine.polls import (
    PollHistory,
    delta,
    inventory_values,
    remember,
    seen_to_json,
)
from exporter.engine.records import parse_record
from exporter.engine.rules import Rule
from exporter.engine.timeline import RuleState
from exporter.engine.triggers import attribute_changes_by_target_group, triggers_for

ServiceBinder = Callable[[Inventory], dict[str, ServiceBinding]]
RulesReader = Callable[[Iterable[str]], Mapping[str, tuple[Rule, ...]]]


#: userIdentity fields never stored: the engine reads the identity's type, ARN, names and
#: session issuer, never the access key (a credential id has no place in the state file).
DROPPED_IDENTITY_FIELDS = frozenset({"accessKeyId"})


def stored_form(record: dict[str, Any]) -> bytes:
    """The record as stored in the state file: JSON without userIdentity.accessKeyId."""
    identity = record.get("userIdentity")
    if isinstance(identity, dict) and not DROPPED_IDENTITY_FIELDS.isdisjoint(identity):
        kept = {k: v for k, v in identity.items() if k not in DROPPED_IDENTITY_FIELDS}
        record = {**record, "userIdentity": kept}
    return orjson.dumps(record)


class StateUnavailable(RuntimeError):
    """The state store refused a read or write (locked, full, corrupt); AWS work itself succeeded."""


@dataclass(frozen=True)
class MonitorView:
    """What one monitor contributes to the snapshot."""

    target_groups: tuple[TargetGroupView, ...] = ()
    open_gaps: tuple[GapView, ...] = ()
    security_groups: tuple[str, ...] = ()  # the groups on target ENIs (watched for replacements)
    attribute_changes: tuple[AttributeChangeView, ...] = ()  # the last change per attribute
    basis: ExplainBasis | None = None  # what the evaluation judged by (the page's explanation)


@dataclass(frozen=True)
class IngestResult:
    new: int = 0
    duplicates: int = 0
    ignored: int = 0
    rejected: int = 0


class Monitor:
    """State and work for one (account, region)."""

    def __init__(
        self,
        key: str,
        region: str,
        store: StateStore,
        *,
        settle_seconds: float,
        retention_seconds: float,
        describe: Callable[[datetime], Inventory],
        describe_rules: RulesReader | None = None,
        account_id: str = "",
    ) -> None:
        self.key = key
        self.region = region
        self.account_id = account_id
        self.store = store
        self.retention = timedelta(seconds=retention_seconds)
        self.tracker = GapTracker(store, key, settle_seconds)
        self._describe = describe
        self._describe_rules = describe_rules
        self._lock = threading.Lock()
        self._evaluate_lock = threading.Lock()  # the rules job and the evaluate job both evaluate
        self.inventory: Inventory | None = None
        self.current: dict[str, dict[FlowKind, FlowStatus]] = {}
        self.changes: dict[str, Change] = {}
        self.view = MonitorView()
        self.analysis: Analysis | None = None
        # Intents (engine/intent.py): the managed-rules ones the last analysis learned, and the
        # TargetGroupBinding ones seen over time (kept in the state store across restarts).
        self.intents: dict[str, Intent] = {}
        self.binding_history: dict[str, list[tuple[datetime, Intent]]] = {}
        # What the inventory polls saw over the retention window (engine/polls.py): the old
        # value of a health-check port, an attribute, an ENI's or load balancer's groups or
        # subnets that a record does not carry. Kept in the state store across restarts.
        self.polls: PollHistory = {}
        self._unsaved_polls: set[PriorKey] = set()  # keys whose stored row the store refused

    # --- restart -----------------------------------------------------------------------------
    def restore(self, now: datetime) -> int:
        """Re-read the stored CloudTrail records of the retention window; returns how many."""
        since = (now - self.retention).timestamp()
        restored = 0
        for blob in self.store.records(self.key, since):
            try:
                parsed = parse_record(orjson.loads(blob))
            except orjson.JSONDecodeError:
                continue
            if parsed is not None and not isinstance(parsed, Rejection):
                self.changes[parsed.meta.event_id] = parsed
                restored += 1
        self.binding_history = _history_from_json(self.store.get_meta(self._history_key))
        self.polls = self.store.polled(self.key)
        return restored

    # --- intents ---------------------------------------------------------------------------------
    @property
    def _history_key(self) -> str:
        return f"binding_intents:{self.key}"

    def _intended(self, inventory: Inventory) -> Inventory:
        """The inventory with each target group's intent; a TargetGroupBinding intent that differs
        from the last one recorded is recorded (at the inventory's time) in the state store."""
        intents = anchor_intents(inventory, self.intents)
        moment = inventory.taken_at
        cutoff = moment - self.retention
        changed = False
        for arn, intent in intents.items():
            if intent.kind != "binding":
                continue
            seen = self.binding_history.setdefault(arn, [])
            if not seen or seen[-1][1] != intent:
                seen.append((moment, intent))
                changed = True
            while len(seen) > 1 and seen[1][0] <= cutoff:  # keep the one in force at the cutoff
                seen.pop(0)
                changed = True
        if changed:
            # Kept in memory if the store refuses; its health is reported by the jobs that need it.
            with contextlib.suppress(sqlite3.Error):
                self.store.set_meta(self._history_key, _history_to_json(self.binding_history))
        return inventory.with_intents(intents)

    # --- inventory -----------------------------------------------------------------------
    def poll_inventory(self, now: datetime, binder: ServiceBinder | None) -> bool:
        """Describe AWS now, attach Services, and note which flows are admitted right now.

        True when what the snapshot shows of the target groups changed (flows, attributes,
        targets): the caller then evaluates at once instead of waiting for the evaluate job."""
        started = time.monotonic()
        inventory = self._describe(now)
        # When the describe calls had all answered: only a poll finished before a record's
        # moment tells the value that record replaced.
        finished = now + timedelta(seconds=time.monotonic() - started)
        polls = remember(self.polls, finished, inventory_values(inventory), now - self.retention)
        self._save_polls(polls)
        if binder is not None:
            inventory = inventory.with_services(binder(inventory))
        inventory = self._intended(inventory)
        current = dict(summarize_status(inventory, RuleState.from_inventory(inventory)))
        with self._lock:
            before = self.inventory
            changed = before is None or current != self.current or _shown(before) != _shown(inventory)
            self.inventory, self.current, self.polls = inventory, current, polls
            self.account_id = inventory.account_id or self.account_id
        return self._observe(now, current) or changed

    def _save_polls(self, polls: PollHistory) -> None:
        """Store the keys this poll added, moved or dropped, and those an earlier poll could not
        store; kept in memory if the store refuses (as the binding intents are), and stored with
        the next poll it takes: a stale row would give a restarted daemon a wrong old value."""
        moved, dropped = delta(self.polls, polls)
        pending = self._unsaved_polls.union(moved, dropped)
        if not pending:
            return
        try:
            self.store.save_polled(
                self.key,
                [(*k, seen_to_json(polls[k])) for k in pending if k in polls],
                [k for k in pending if k not in polls],
            )
        except sqlite3.Error:
            self._unsaved_polls = pending
        else:
            self._unsaved_polls = set()

    def watched_groups(self) -> list[str]:
        """The security groups on the ENIs of registered targets: the node groups that matter."""
        inventory = self.inventory
        if inventory is None:
            return []
        return sorted({g for groups in groups_by_target_group(inventory).values() for g in groups})

    def poll_rules(self, now: datetime) -> bool:
        """The targeted poll: re-read only the rules of `watched_groups` and re-check the flows.

        A revoke shows within one rules interval (seconds) instead of one inventory interval.
        The rules go over the last full inventory (targets, ENIs, attributes as of that poll),
        which the timeline analysis keeps anchoring on. True when a flow's status changed."""
        inventory = self.inventory
        if self._describe_rules is None or inventory is None:
            return False
        groups = self.watched_groups()
        if not groups:
            return False
        fresh = inventory.with_rules(self._describe_rules(groups))
        current = dict(summarize_status(fresh, RuleState.from_inventory(fresh)))
        with self._lock:
            if self.inventory is not inventory:  # a full poll landed meanwhile: it is as fresh
                return False
            changed = current != self.current
            self.current = current
        return self._observe(now, current) or changed

    def _observe(self, now: datetime, current: dict[str, dict[FlowKind, FlowStatus]]) -> bool:
        try:
            return self.tracker.observe_poll(now, current)
        except sqlite3.Error as exc:
            raise StateUnavailable(f"state store: {exc}") from exc

    def rebind(self, binder: ServiceBinder) -> None:
        """Re-attach Services after a Kubernetes sync, without a new AWS poll."""
        with self._lock:
            if self.inventory is not None:
                self.inventory = self._intended(self.inventory.with_services(binder(self.inventory)))

    # --- CloudTrail ----------------------------------------------------------------------------
    def ingest(
        self, now: datetime, records: Iterable[dict[str, Any]], rejections: Iterable[Rejection] = ()
    ) -> IngestResult:
        """Parse, de-duplicate, store and count CloudTrail records; returns what happened."""
        new = duplicates = ignored = rejected = 0
        inventory = self.inventory
        fresh: dict[str, Change] = {}
        with self.store.transaction() as db:
            for rejection in rejections:
                rejected += 1
                self.store.increment(db, "cloudtrail_records_rejected", labels_of(reason=rejection.reason))
            for record in records:
                parsed = parse_record(record)
                if parsed is None:
                    ignored += 1
                    continue
                if isinstance(parsed, Rejection):
                    rejected += 1
                    self.store.increment(db, "cloudtrail_records_rejected", labels_of(reason=parsed.reason))
                    continue
                meta = parsed.meta
                blob = stored_form(record)
                if not self.store.add_record(
                    db, meta.event_id, self.key, meta.event_time.timestamp(), now.timestamp(), blob
                ):
                    duplicates += 1
                    continue
                new += 1
                fresh[meta.event_id] = parsed
                self._count(db, parsed, inventory)
        with self._lock:
            self.changes.update(fresh)
            cutoff = now - self.retention
            self.changes = {k: c for k, c in self.changes.items() if c.meta.event_time >= cutoff}
        return IngestResult(new, duplicates, ignored, rejected)

    def _count(self, db: Any, change: Change, inventory: Inventory | None) -> None:
        meta = change.meta
        account = meta.account_id or self.account_id
        region = meta.region or self.region
        self.store.increment(db, "cloudtrail_events", labels_of(event_name=meta.event_name))
        result = "failed" if meta.failed else "success"
        if isinstance(change, RuleChange | RuleModification | GroupDeletion):
            self.store.increment(
                db,
                "security_group_rule_changes",
                labels_of(
                    aws_account_id=account,
                    aws_region=region,
                    security_group=change.group_id,
                    event_name=meta.event_name,
                    result=result,
                ),
            )
        elif isinstance(change, AttributeChange) and not meta.failed:
            ident = identity_of(inventory, account, region, change.target_group_arn)
            for key, _value in change.attributes:
                self.store.increment(db, "target_group_attribute_changes", ident.labels(attribute=key))

    # --- evaluation ------------------------------------------------------------------------------
    def evaluate(self, now: datetime) -> MonitorView:
        """Rebuild the timeline, reconcile gaps with polls, commit what is final, publish a view."""
        with self._evaluate_lock:
            return self._evaluate(now)

    def _evaluate(self, now: datetime) -> MonitorView:
        with self._lock:
            inventory, current, changes = self.inventory, self.current, list(self.changes.values())
            polls = self.polls
        if inventory is None:
            return self.view
        analysis = analyze(inventory, changes, binding_history=self.binding_history, polls=polls)
        self.intents = {arn: i for arn, i in analysis.intents.items() if i.kind == "managed_rules"}
        triggers = triggers_for(analysis.gaps, changes, inventory.services)
        failure: sqlite3.Error | None = None
        try:
            open_gaps = self.tracker.open_views(now, inventory, analysis, current, triggers)
            self.tracker.commit_closed(now, inventory, analysis, triggers)
            self._count_replacements(inventory, analysis)
        except sqlite3.Error as exc:  # the store is locked or broken: still show what is open now
            failure = exc
            open_gaps = self._open_without_store(now, inventory, current)
        watched = sorted({g for eni in inventory.network_interfaces.values() for g in eni.security_group_ids})
        view = MonitorView(
            tuple(
                self._target_group_views(
                    inventory.with_intents({**inventory.intents, **analysis.intents}), current
                )
            ),
            tuple(open_gaps),
            tuple(watched),
            tuple(self._attribute_changes(inventory, changes)),
            ExplainBasis(inventory, analysis.intents, tuple(changes)),
        )
        with self._lock:
            self.view, self.analysis = view, analysis
        if failure is not None:
            raise StateUnavailable(f"state store: {failure}") from failure
        return view

    def _attribute_changes(self, inventory: Inventory, changes: list[Change]) -> list[AttributeChangeView]:
        """The last change of each watched attribute per target group, with who made it."""
        views = []
        for arn, items in sorted(attribute_changes_by_target_group(changes).items()):
            last: dict[str, AttributeChange] = {}
            for change in items:
                for key, _value in change.attributes:
                    last[key] = change
            ident = identity_of(inventory, inventory.account_id, inventory.region, arn)
            for key, change in sorted(last.items()):
                views.append(
                    AttributeChangeView(
                        **ident.labels_dict(),
                        attribute=key,
                        value=dict(change.attributes)[key],
                        actor=change.meta.actor.who,
                        time=change.meta.event_time,
                    )
                )
        return views

    def _open_without_store(
        self, now: datetime, inventory: Inventory, current: dict[str, dict[FlowKind, FlowStatus]]
    ) -> list[GapView]:
        """Open gaps when the store cannot be read: the ones shown before, else seen from now."""
        shown = {(g.target_group_arn, g.flow): g for g in self.view.open_gaps}
        views = []
        for arn, kinds in current.items():
            for kind in FLOW_KINDS:
                if kinds[kind].fully_admitted:
                    continue
                before = shown.get((arn, kind))
                if before is None and not self.tracker.confirmed(arn, kind):
                    continue
                ident = identity_of(inventory, inventory.account_id, inventory.region, arn)
                views.append(before or undetermined_view(ident, arn, kind, now, None))
        return views

    def _count_replacements(self, inventory: Inventory, analysis: Analysis) -> None:
        with self.store.transaction() as db:
            for rep in analysis.replacements:
                if self.store.count_once(db, "replacement", rep.revoke.event_id):
                    group = {
                        "aws_account_id": rep.revoke.account_id or inventory.account_id,
                        "aws_region": rep.revoke.region or inventory.region,
                        "security_group": rep.group_id,
                    }
                    self.store.increment(db, "rule_replacements", labels_of(**group, order=rep.order))
                    if rep.order == "break_before_make":  # when its rules were back (the authorize)
                        ended = max(rep.revoke.event_time, rep.authorize.event_time).timestamp()
                        self.store.raise_to(db, BREAK_BEFORE_MAKE_LAST, labels_of(**group), ended)

    @staticmethod
    def _target_group_views(
        inventory: Inventory, current: dict[str, dict[FlowKind, FlowStatus]]
    ) -> list[TargetGroupView]:
        views = []
        for arn, tg in sorted(inventory.target_groups.items(), key=lambda kv: kv[1].name):
            lb = load_balancer_of(inventory, tg)
            if lb is None or arn not in current:
                continue
            binding = inventory.services.get(arn)
            views.append(
                TargetGroupView(
                    aws_account_id=inventory.account_id,
                    aws_region=inventory.region,
                    arn=arn,
                    name=tg.name,
                    load_balancer=lb.name,
                    scheme=lb.scheme,
                    mode=lb.mode,
                    target_type=tg.target_type,
                    protocol=tg.protocol,
                    namespace=binding.namespace if binding else "",
                    service=binding.service if binding else "",
                    cluster=(binding.cluster or "") if binding else tg.tags.get("elbv2.k8s.aws/cluster", ""),
                    mapped_by=binding.mapped_by if binding else "none",
                    preserve_client_ip=preserve_client_ip(tg, tg.attributes),
                    targets=len(tg.targets),
                    flows=current[arn],
                    intent=inventory.intent_of(arn).kind,
                )
            )
        return views


def _shown(inventory: Inventory) -> dict[str, tuple[object, ...]]:
    """Per target group, what the snapshot shows besides flows: attributes, targets, Service."""
    return {
        arn: (tuple(sorted(tg.attributes.items())), len(tg.targets), inventory.services.get(arn))
        for arn, tg in inventory.target_groups.items()
    }


def _history_to_json(history: dict[str, list[tuple[datetime, Intent]]]) -> str:
    return json.dumps(
        {arn: [[at.timestamp(), list(i.sources)] for at, i in entries] for arn, entries in history.items()}
    )


def _history_from_json(text: str | None) -> dict[str, list[tuple[datetime, Intent]]]:
    """The recorded TargetGroupBinding intents; {} when none or unreadable (then learned anew). An
    entry that cannot be read (a corrupt file: a time no datetime holds, a wrong shape) is left
    out, the others still read."""
    try:
        data = json.loads(text or "{}")
    except ROW_ERRORS:
        return {}
    history: dict[str, list[tuple[datetime, Intent]]] = {}
    for arn, entries in data.items() if isinstance(data, dict) else ():
        for entry in entries if isinstance(entries, list) else ():
            try:
                at, sources = entry
                moment = datetime.fromtimestamp(read_moment(at), tz=UTC)
                intent = Intent("binding", tuple(read_text(c) for c in sources))
            except ROW_ERRORS:
                continue
            history.setdefault(str(arn), []).append((moment, intent))
    return history
