"""A gap (engine/gaps.py) in JSON: the line `replay` and `backfill --gaps` print per gap and the
gaps `explain --format json` lists. One declared shape (msgspec), with its trigger's; the line
`replay --replacements` prints per rule replacement; and the gap lines of `explain`'s text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

import msgspec

from exporter.engine.gaps import Gap, Replacement
from exporter.engine.impact import ImpactResult
from exporter.engine.ordering import Order
from exporter.engine.timeutil import format_optional_time, format_time
from exporter.engine.triggers import Trigger
from exporter.reports.impact import OPEN_GAP_IMPACT, impact_record, impact_text
from exporter.reports.words import attributes_text


class TriggerJson(msgspec.Struct, frozen=True):
    """The change that preceded the gap on its target group, and who made it."""

    source: str  # cloudtrail | kubernetes
    field_manager: str | None
    event: str
    event_id: str
    time: str
    actor: str
    who: str
    actor_arn: str | None
    user_agent: str | None
    attributes: dict[str, str]


class GapJson(msgspec.Struct, frozen=True):
    target_group_arn: str
    target_group: str
    aws_account_id: str
    aws_region: str
    flow: str
    start: str
    end: str | None
    duration_seconds: float | None
    under_one_second: bool
    cause: str
    actor: str | None
    actor_arn: str | None
    user_agent: str | None
    controller: bool | None
    opened_by_event: str | None
    opened_by_event_id: str | None
    closed_by_event: str | None
    closed_by_event_id: str | None
    start_exact: bool
    note: str | None
    actor_session: str | None  # who assumed the actor's role
    trigger: TriggerJson | None  # null when no attribute change preceded the gap


def trigger_json(trigger: Trigger) -> TriggerJson:
    return TriggerJson(
        source=trigger.source,
        field_manager=trigger.field_manager or None,
        event=trigger.event_name,
        event_id=trigger.event_id,
        time=format_time(trigger.time),
        actor=trigger.actor,
        who=trigger.who,
        actor_arn=trigger.actor_arn or None,
        user_agent=trigger.user_agent or None,
        attributes=dict(trigger.attributes),
    )


def gap_json(
    gap: Gap, triggers: Mapping[tuple[str, str, str], Trigger] | None = None, as_of: datetime | None = None
) -> GapJson:
    """The gap's public form. `as_of` (the analysis' end): an open revoke gap younger than
    RESTORE_WAIT then is `pending_restore`, as the daemon shows it (the controller may still
    authorize)."""
    actor = gap.actor
    opened, closed = gap.opened_by, gap.closed_by
    trigger = (triggers or {}).get(gap.key)
    return GapJson(
        target_group_arn=gap.target_group_arn,
        target_group=gap.target_group,
        aws_account_id=gap.aws_account_id,
        aws_region=gap.aws_region,
        flow=gap.flow,
        start=format_time(gap.start),
        end=format_optional_time(gap.end),
        duration_seconds=gap.duration_seconds,
        under_one_second=gap.under_one_second,
        cause=gap.cause if as_of is None else gap.cause_at(as_of),
        actor=actor.label if actor else None,
        actor_arn=actor.principal_arn if actor else None,
        user_agent=actor.user_agent if actor else None,
        controller=actor.is_controller if actor else None,
        opened_by_event=opened.event_name if opened else None,
        opened_by_event_id=opened.event_id if opened else None,
        closed_by_event=closed.event_name if closed else None,
        closed_by_event_id=closed.event_id if closed else None,
        start_exact=gap.start_exact,
        note=gap.note,
        actor_session=actor.session if actor else None,
        trigger=None if trigger is None else trigger_json(trigger),
    )


class ReplacementJson(msgspec.Struct, frozen=True):
    """`replay --replacements`' line per rule replacement (engine/gaps.py Replacement)."""

    kind: Literal["replacement"]
    security_group: str
    order: Order
    time: str
    exposure_seconds: float
    revoke_event_id: str
    authorize_event_id: str
    actor: str  # who revoked


def replacement_json(rep: Replacement) -> ReplacementJson:
    return ReplacementJson(
        kind="replacement",
        security_group=rep.group_id,
        order=rep.order,
        time=format_time(rep.time),
        exposure_seconds=rep.exposure_seconds,
        revoke_event_id=rep.revoke.event_id,
        authorize_event_id=rep.authorize.event_id,
        actor=rep.revoke.actor.label,
    )


def gap_record(
    gap: Gap, triggers: Mapping[tuple[str, str, str], Trigger] | None = None, as_of: datetime | None = None
) -> dict[str, Any]:
    """`gap_json` as plain data (a JSON object; its keys in the declared order)."""
    return cast(dict[str, Any], msgspec.to_builtins(gap_json(gap, triggers, as_of)))


@dataclass(frozen=True)
class GapLine:
    """A gap as `explain` lists it: its declared JSON and, when --impact asked for it, its impact
    (None: the gap is still open, its impact not known yet)."""

    gap: GapJson
    impact_asked: bool = False
    impact: ImpactResult | None = None

    def record(self) -> dict[str, Any]:
        """The gap's JSON object; with --impact, ImpactJson's fields after the gap's."""
        record = cast(dict[str, Any], msgspec.to_builtins(self.gap))
        if self.impact_asked:
            record.update(impact_record(self.impact))
        return record


def gaps_text(gaps: Sequence[GapLine]) -> str:
    """Rule gaps in the events, with who revoked (actor) and who triggered it (trigger)."""
    if not gaps:
        return ""
    lines = ["", "rule gaps in the events:"]
    for item in gaps:
        g = item.gap
        duration = "still open" if g.end is None else f"{g.duration_seconds:g} s"
        session = f"/{g.actor_session}" if g.actor_session else ""
        line = f"  {g.start}  {duration}  {g.flow}  {g.cause}  by {g.actor or 'unknown'}{session}"
        trigger = g.trigger
        if trigger:
            changed = attributes_text(trigger.attributes.items())
            line += f"; triggered by {trigger.who} ({trigger.event} {changed}) at {trigger.time}"
        if item.impact_asked:  # explain --impact (commands/impact_check.py)
            line += f"; impact {impact_text(item.impact or OPEN_GAP_IMPACT)}"
        lines.append(line)
    return "\n".join(lines) + "\n"
