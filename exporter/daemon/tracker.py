"""Gap bookkeeping for one watched (account, region): polls, CloudTrail analysis, durable commits.

Two witnesses see a gap. The inventory poll sees a needed flow stop being admitted within one
poll interval, but not why or exactly when. CloudTrail explains it (start, end, cause, actor),
minutes later. The tracker shows a gap as soon as a poll sees it, replaces its facts when
CloudTrail explains it, and commits each closed gap once: a poll-only gap after the settle
window, an explained one at once. Overlapping commits of the same flow merge into one gap, so
a counter never counts one outage twice.

A gap only the polls see is shown (and pages) once CONFIRM_POLLS consecutive polls saw the flow
unadmitted: one describe that missed a rule (EC2 is eventually consistent) is not an outage
worth waking someone for. It is still recorded: if CloudTrail explains it, or once it settles,
it is committed like any other gap. The targeted rules poll (every few seconds) makes the
confirmation quick.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec

from exporter.daemon.snapshot import GapView, TargetGroupIdentity, labels_of
from exporter.daemon.state import LAST_SECOND, ROW_ERRORS, StateStore, StoredGap
from exporter.engine.flows import FLOW_KINDS, FlowKind, FlowStatus
from exporter.engine.gaps import Analysis, Gap
from exporter.engine.inventory import Inventory
from exporter.engine.timeutil import format_time
from exporter.engine.triggers import Trigger
from exporter.reports.words import trigger_detail

GAPS_FAMILY = "rule_gaps"
#: Consecutive polls that must see a flow unadmitted before a poll-only gap is shown as open.
CONFIRM_POLLS = 2
GAP_DURATION_FAMILY = "rule_gap_duration_seconds"


def target_group_name_from_arn(arn: str) -> str:
    """`...:targetgroup/<name>/<id>` -> name; the ARN itself when it has no such form."""
    parts = arn.split(":targetgroup/", 1)
    return parts[1].split("/", 1)[0] if len(parts) == 2 else arn


def identity_of(inventory: Inventory | None, account: str, region: str, tg_arn: str) -> TargetGroupIdentity:
    tg = inventory.target_groups.get(tg_arn) if inventory else None
    binding = inventory.services.get(tg_arn) if inventory else None
    return TargetGroupIdentity(
        aws_account_id=account,
        aws_region=region,
        target_group=tg.name if tg else target_group_name_from_arn(tg_arn),
        namespace=binding.namespace if binding else "",
        service=binding.service if binding else "",
    )


def _ts(moment: datetime) -> float:
    return moment.timestamp()


def _dt(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


class GapTracker:
    """Merges poll observations and CloudTrail analysis into shown and committed gaps."""

    def __init__(self, store: StateStore, target: str, settle_seconds: float) -> None:
        self.store = store
        self.target = target
        self.settle_seconds = settle_seconds
        self.sightings: dict[tuple[str, str], int] = {}  # consecutive polls that saw a flow unadmitted
        # Flows some poll of this process has seen: one seen failing at its first look (start-up,
        # a new target group) has a gap whose start is unknown (kept in the store: `_inexact`).
        self.observed: set[tuple[str, str]] = set()

    @property
    def _inexact_key(self) -> str:
        return f"inexact_poll_gaps:{self.target}"

    def _inexact(self) -> set[tuple[str, str, float]]:
        """Poll gaps opened at a first look: (arn, flow, start)."""
        try:
            rows = json.loads(self.store.get_meta(self._inexact_key) or "[]")
            return {(str(a), str(f), float(t)) for a, f, t in rows}
        except ROW_ERRORS:  # unreadable (a corrupt file): every poll gap's start reads as exact
            return set()

    def _save_inexact(self, db: sqlite3.Connection, rows: set[tuple[str, str, float]]) -> None:
        self.store.set_meta(self._inexact_key, json.dumps(sorted(rows)), db)

    def confirmed(self, arn: str, flow: str) -> bool:
        return self.sightings.get((arn, flow), 0) >= CONFIRM_POLLS

    def observe_poll(self, now: datetime, status: Mapping[str, Mapping[FlowKind, FlowStatus]]) -> bool:
        """Record which flows a poll saw unadmitted (opening) or admitted again (closing).

        True when this poll confirmed a flow's gap (its CONFIRM_POLLS-th sighting)."""
        sightings: dict[tuple[str, str], int] = {}
        for arn, kinds in status.items():
            for kind in FLOW_KINDS:
                if not kinds[kind].fully_admitted:
                    sightings[(arn, kind)] = self.sightings.get((arn, kind), 0) + 1
        self.sightings = sightings
        newly_confirmed = any(count == CONFIRM_POLLS for count in sightings.values())
        open_now: set[tuple[str, str]] = {
            (arn, flow) for arn, flow, _s, end in self.store.poll_gaps(self.target) if end is None
        }
        inexact = self._inexact()
        before = set(inexact)
        with self.store.transaction() as db:
            for arn, kinds in status.items():
                for kind in FLOW_KINDS:
                    failing = not kinds[kind].fully_admitted
                    if failing and (arn, kind) not in open_now:
                        self.store.open_poll_gap(db, self.target, arn, kind, _ts(now))
                        if (arn, kind) not in self.observed:  # failing at the first look
                            inexact.add((arn, kind, _ts(now)))
                    elif not failing and (arn, kind) in open_now:
                        self.store.close_poll_gap(db, self.target, arn, kind, _ts(now))
                    self.observed.add((arn, kind))
            if inexact != before:
                self._save_inexact(db, inexact)
            for gone_arn, gone_flow in open_now:
                if gone_arn not in status:  # the target group is gone: its gap ends with it
                    self.store.close_poll_gap(db, self.target, gone_arn, gone_flow, _ts(now))
        return newly_confirmed

    def reconcile(
        self,
        now: datetime,
        inventory: Inventory,
        analysis: Analysis,
        current: Mapping[str, Mapping[FlowKind, FlowStatus]],
        triggers: Mapping[tuple[str, str, str], Trigger] | None = None,
    ) -> list[GapView]:
        """Commit what is final and return the gaps open now.

        `current` is the flow status of the latest inventory poll: the truth about *now*.
        """
        open_views = self.open_views(now, inventory, analysis, current, triggers)
        self.commit_closed(now, inventory, analysis, triggers)
        return open_views

    def open_views(
        self,
        now: datetime,
        inventory: Inventory,
        analysis: Analysis,
        current: Mapping[str, Mapping[FlowKind, FlowStatus]],
        triggers: Mapping[tuple[str, str, str], Trigger] | None = None,
    ) -> list[GapView]:
        """The gaps open now (reads the store, writes nothing)."""
        account, region = inventory.account_id, inventory.region
        explained_open = {(g.target_group_arn, g.flow): g for g in analysis.gaps if g.is_open and g.opened_by}
        poll_rows = self.store.poll_gaps(self.target)
        poll_open = {(arn, flow): start for arn, flow, start, end in poll_rows if end is None}
        inexact = self._inexact()
        open_views: list[GapView] = []
        for arn, kinds in current.items():
            for kind in FLOW_KINDS:
                if kinds[kind].fully_admitted:
                    continue
                ident = identity_of(inventory, account, region, arn)
                gap = explained_open.get((arn, kind))
                if gap is not None:
                    open_views.append(_view_from_gap(gap, ident, now, (triggers or {}).get(gap.key)))
                elif self.confirmed(arn, kind):
                    started = poll_open.get((arn, kind), _ts(now))
                    exact = (arn, kind, started) not in inexact
                    open_views.append(undetermined_view(ident, arn, kind, _dt(started), None, exact))
        return open_views

    def commit_closed(
        self,
        now: datetime,
        inventory: Inventory,
        analysis: Analysis,
        triggers: Mapping[tuple[str, str, str], Trigger] | None = None,
    ) -> None:
        """Commit every closed gap that is final: explained ones at once, poll-only ones once settled."""
        account, region = inventory.account_id, inventory.region
        poll_rows = self.store.poll_gaps(self.target)
        inexact = self._inexact()
        before = set(inexact)
        with self.store.transaction() as db:
            for gap in analysis.gaps:
                if gap.end is not None and gap.opened_by is not None:
                    ident = identity_of(inventory, account, region, gap.target_group_arn)
                    self._commit(db, _view_from_gap(gap, ident, None, (triggers or {}).get(gap.key)))
            for arn, flow, poll_start, poll_end in poll_rows:
                if poll_end is None:
                    continue
                existing = self.store.overlapping_gap(db, self.target, arn, flow, poll_start, poll_end)
                if existing is not None and existing.explained:
                    self.store.drop_poll_gap(db, self.target, arn, flow, poll_start)
                    inexact.discard((arn, flow, poll_start))
                elif _ts(now) - poll_end >= self.settle_seconds:
                    ident = identity_of(inventory, account, region, arn)
                    exact = (arn, flow, poll_start) not in inexact
                    view = undetermined_view(ident, arn, flow, _dt(poll_start), _dt(poll_end), exact)  # type: ignore[arg-type]
                    self._commit(db, view)
                    self.store.drop_poll_gap(db, self.target, arn, flow, poll_start)
                    inexact.discard((arn, flow, poll_start))
            if inexact != before:
                self._save_inexact(db, inexact)

    def _commit(self, db: sqlite3.Connection, view: GapView) -> bool:
        """Store a closed gap; count it unless it merges with one already stored. True when counted."""
        assert view.end is not None
        start, end = _ts(view.start), _ts(view.end)
        existing = self.store.overlapping_gap(db, self.target, view.target_group_arn, view.flow, start, end)
        stored = _stored_from_view(self.target, view)
        if existing is not None:
            if existing.key == stored.key and existing.data == stored.data:
                return False
            if view.explained or not existing.explained:
                self.store.delete_gap(db, existing.key)
                self.store.upsert_gap(db, stored)
            return False
        self.store.upsert_gap(db, stored)
        ident = view.identity
        labels = labels_of(**ident, flow=view.flow)
        self.store.increment(db, GAPS_FAMILY, labels_of(**ident, flow=view.flow, cause=view.cause))
        duration = view.duration_seconds or 0.0
        self.store.observe(db, GAP_DURATION_FAMILY, labels, duration)
        return True


def _view_from_gap(
    gap: Gap, ident: TargetGroupIdentity, now: datetime | None = None, trigger: Trigger | None = None
) -> GapView:
    """`now` for an open gap: its cause as shown then (Gap.cause_at)."""
    actor = gap.actor
    return replace(
        undetermined_view(ident, gap.target_group_arn, gap.flow, gap.start, gap.end),
        key="|".join(gap.key),
        cause=gap.cause if now is None else gap.cause_at(now),
        actor=actor.label if actor else "",
        actor_arn=(actor.principal_arn or "") if actor else "",
        explained=True,
        actor_session=(actor.session or "") if actor else "",
        trigger_who=trigger.who if trigger else "",
        trigger_time=trigger.time if trigger else None,
        trigger_event_id=trigger.event_id if trigger else "",
        trigger_detail=trigger_detail(trigger) if trigger else "",
        start_exact=gap.start_exact,
        note=gap.note or "",
    )


#: Why a gap the polls saw failing at the exporter's first look has no known start.
FIRST_LOOK_NOTE = (
    "already not admitted when the exporter first looked (start-up or a new target group): "
    "the gap began then or earlier"
)


def undetermined_view(
    ident: TargetGroupIdentity,
    arn: str,
    flow: FlowKind,
    start: datetime,
    end: datetime | None,
    start_exact: bool = True,
) -> GapView:
    """A gap only the polls saw: no CloudTrail record explains it (yet)."""
    return GapView(
        key=f"{arn}|{flow}|{format_time(start)}",
        aws_account_id=ident.aws_account_id,
        aws_region=ident.aws_region,
        target_group_arn=arn,
        target_group=ident.target_group,
        namespace=ident.namespace,
        service=ident.service,
        flow=flow,
        start=start,
        end=end,
        cause="undetermined",
        actor="",
        actor_arn="",
        explained=False,
        start_exact=start_exact,
        note="" if start_exact else FIRST_LOOK_NOTE,
    )


class GapData(msgspec.Struct, frozen=True, kw_only=True):
    """A gap's facts beside the state file's columns: its JSON `data` (declared once, for the
    writer and the reader)."""

    aws_account_id: str = ""
    aws_region: str = ""
    target_group: str = ""
    namespace: str = ""
    service: str = ""
    actor: str = ""
    actor_arn: str = ""
    actor_session: str = ""
    trigger_who: str = ""
    trigger_time: Annotated[float, msgspec.Meta(ge=0, le=LAST_SECOND)] | None = None  # epoch seconds
    trigger_event_id: str = ""
    trigger_detail: str = ""
    start_exact: bool = True
    note: str = ""


def read_gap_data(data: Mapping[str, Any]) -> GapData:
    """The stored `data` as GapData, field by field: a value of the wrong kind (a corrupt or
    hand-edited state file) reads as that field's default, and the other fields still read; keys
    it does not know are ignored. Values written by earlier versions read as they were meant."""
    try:
        return msgspec.convert(data, GapData)
    except msgspec.ValidationError:
        pass
    fields: dict[str, Any] = {}
    for spec in msgspec.structs.fields(GapData):
        if spec.name in data:
            try:
                fields[spec.name] = msgspec.convert(data[spec.name], spec.type)
            except msgspec.ValidationError:
                continue
    return GapData(**fields)


#: The GapData fields a GapView holds under the same name and type (all but trigger_time).
_SAME_FIELDS = tuple(name for name in GapData.__struct_fields__ if name != "trigger_time")


def _stored_from_view(target: str, view: GapView) -> StoredGap:
    data = GapData(
        **{name: getattr(view, name) for name in _SAME_FIELDS},
        trigger_time=None if view.trigger_time is None else _ts(view.trigger_time),
    )
    return StoredGap(
        key=view.key,
        target=target,
        tg_arn=view.target_group_arn,
        flow=view.flow,
        start=_ts(view.start),
        end=None if view.end is None else _ts(view.end),
        cause=view.cause,
        explained=view.explained,
        data=msgspec.to_builtins(data),
    )


def view_from_stored(gap: StoredGap) -> GapView:
    data = read_gap_data(gap.data)
    return GapView(
        key=gap.key,
        target_group_arn=gap.tg_arn,
        flow=gap.flow,  # type: ignore[arg-type]
        start=_dt(gap.start),
        end=None if gap.end is None else _dt(gap.end),
        cause=gap.cause,
        explained=gap.explained,
        trigger_time=None if data.trigger_time is None else _dt(data.trigger_time),
        **{name: getattr(data, name) for name in _SAME_FIELDS},
    )
