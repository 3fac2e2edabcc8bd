"""The HTML pages: pure functions of (snapshot, now) -> HTML string.

Server-rendered, no JavaScript, no external assets (inline CSS and SVG), refreshed by
`<meta http-equiv="refresh">`. The markup is in exporter/templates/ (jinja2 with autoescaping:
every value from a snapshot is escaped unless it is markup made here); names in URLs are
percent-encoded first. This module prepares what the templates show.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from markupsafe import Markup, escape

from exporter.daemon.snapshot import GapView, Snapshot, TargetGroupView
from exporter.engine.flows import FLOW_KINDS, FlowKind, FlowStatus
from exporter.reports.impact import impact_text
from exporter.web_landing import MAX_QUERY_CHARS, LandingQuery, listing
from exporter.web_links import (
    JOB_FAILING,
    RULE_GAP_CLOSED_RECENTLY,
    RULE_GAP_OPEN,
    SOURCE_DOWN,
    TARGET_GROUP_UNREACHABLE,
    PageLinks,
)
from exporter.web_templates import environment
from exporter.web_timeline import FLOW_LABELS as _FLOW_LABELS
from exporter.web_timeline import WINDOWS, duration_text, render_gap_list, render_timeline

__all__ = ["format_duration", "render_landing", "render_not_found", "render_target_group", "render_timeline"]

REFRESH_SECONDS = 15
_TIMES = "\u00d7"  # multiplication sign: "source_not_covered x3"
TIMELINE_WINDOW = WINDOWS["6h"]
#: A snapshot older than this is flagged stale in the header.
STALE_AFTER = timedelta(minutes=2)

_TIMELINE_WIDTH = 200
#: The zoom to the last hour is a URL fragment: CSS `:target` swaps the strips, no script, and the
#: page's meta refresh keeps the fragment.
ZOOM_ANCHOR = "last-hour"


def tg_href(name: str) -> str:
    """The URL of a target group's page (percent-encoded; the templates escape it again)."""
    return "/target-groups/" + quote(name, safe="")


format_duration = duration_text


def format_moment(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _clock(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%H:%M:%SZ")


def _since(moment: datetime, now: datetime) -> str:
    """A clock time for recent moments, the full date and time otherwise."""
    return _clock(moment) if now - moment < timedelta(hours=20) else format_moment(moment)


def _actor(gap: GapView) -> str:
    return gap.actor or "unknown"


def _trigger(gap: GapView) -> str:
    """ "triggered by <who> (<attributes>) at <time>": the attribute change before the gap, who
    as role/session (an SSO user's e-mail, a CI job's name); "" when none was found."""
    if not gap.trigger_who:
        return ""
    when = f" at {format_moment(gap.trigger_time)}" if gap.trigger_time else ""
    detail = f" ({gap.trigger_detail})" if gap.trigger_detail else ""
    return f"triggered by {gap.trigger_who}{detail}{when}"


def _breakable(text: str) -> Markup:
    """Escaped text with break chances inside long role/session names."""
    return Markup(str(escape(text)).replace("/", "/<wbr>").replace("_", "_<wbr>").replace("@", "@<wbr>"))


def _service(namespace: str, service: str) -> str:
    if not namespace and not service:
        return "(unmapped)"
    return f"{namespace}/{service}"


_CELL = re.compile(r'<(td|th scope="row")')


def _labelled(row: Markup, headers: Sequence[str]) -> Markup:
    """Each cell of a row with data-label=<its column header>, shown beside it when rows stack."""
    names = iter(headers)
    return Markup(_CELL.sub(lambda m: f'<{m.group(1)} data-label="{escape(next(names, ""))}"', str(row)))


def _reason_lines(tg: TargetGroupView) -> list[str]:
    lines = []
    for flow in FLOW_KINDS:
        status = tg.flows.get(flow)
        if status is None:
            continue
        for reason, count in sorted(status.unadmitted_by_reason.items()):
            if count:
                lines.append(f"{_FLOW_LABELS[flow]}: {reason} {_TIMES}{count}")
    return lines


@dataclass(frozen=True)
class _FlowRow:
    flow: FlowKind
    status: FlowStatus | None
    admitted: str
    reasons: str


def _flow_rows(tg: TargetGroupView) -> list[_FlowRow]:
    rows = []
    for flow in FLOW_KINDS:
        status = tg.flows.get(flow)
        admitted = "-" if status is None else f"{status.admitted} of {status.targets}"
        reasons = (
            ""
            if status is None
            else ", ".join(f"{r} {_TIMES}{c}" for r, c in sorted(status.unadmitted_by_reason.items()) if c)
        )
        rows.append(_FlowRow(flow, status, admitted, reasons))
    return rows


def gaps_of(snapshot: Snapshot, arn: str) -> list[GapView]:
    """Open and recent closed gaps of one target group (by ARN), oldest first, without duplicates."""
    seen: set[str] = set()
    out: list[GapView] = []
    for gap in (*snapshot.open_gaps, *snapshot.recent_gaps, *snapshot.last_gaps):
        if gap.target_group_arn == arn and gap.key not in seen:
            seen.add(gap.key)
            out.append(gap)
    return sorted(out, key=lambda g: g.start)


def unreachable(tg: TargetGroupView) -> bool:
    """Some flow admits none of its targets (SGChurnTargetGroupUnreachable's condition)."""
    return any(s.targets > 0 and s.ratio <= 0 for s in tg.flows.values())


def _closed_newest_first(gaps: Sequence[GapView]) -> list[GapView]:
    return sorted((g for g in gaps if g.end is not None), key=lambda g: g.start, reverse=True)


def _strips(gaps: Sequence[GapView], now: datetime, watched_since: datetime | None, *, wide: bool) -> Markup:
    """The 6 h strip and the last-hour strip (shown instead under #last-hour), and the gap list.
    The SVG and the list are web_timeline.py's, which escapes every value it places."""
    width = 900 if wide else _TIMELINE_WIDTH
    extra = " tl-wide" if wide else ""
    strips = "".join(
        render_timeline(
            gaps,
            now,
            window=WINDOWS[key],
            width=width,
            watched_since=watched_since,
            css_class=f"tl-{key}{extra}",
        )
        for key in ("6h", "1h")
    )
    listed = render_gap_list(gaps, now, TIMELINE_WINDOW)
    if not listed:
        return Markup(strips)
    if wide:
        return Markup(strips + listed)
    count = listed.count("<li>")
    return Markup(
        f'{strips}<details class="gaps"><summary>{count} gap{"s" if count != 1 else ""}</summary>{listed}</details>'
    )


_ENV = environment()
_ENV.filters.update(labelled=_labelled, breakable=_breakable)
_ENV.globals.update(
    REFRESH_SECONDS=REFRESH_SECONDS,
    ZOOM_ANCHOR=ZOOM_ANCHOR,
    MAX_QUERY_CHARS=MAX_QUERY_CHARS,
    JOB_FAILING=JOB_FAILING,
    RULE_GAP_CLOSED_RECENTLY=RULE_GAP_CLOSED_RECENTLY,
    RULE_GAP_OPEN=RULE_GAP_OPEN,
    SOURCE_DOWN=SOURCE_DOWN,
    TARGET_GROUP_UNREACHABLE=TARGET_GROUP_UNREACHABLE,
    actor=_actor,
    closed_newest_first=_closed_newest_first,
    count=lambda n: f"{n:,}",
    duration=format_duration,
    flow_label=lambda flow: _FLOW_LABELS.get(flow, flow),
    flow_rows=_flow_rows,
    gaps_of=gaps_of,
    impact_text=impact_text,
    moment=format_moment,
    reason_lines=_reason_lines,
    service=_service,
    since=_since,
    strips=_strips,
    tg_href=tg_href,
    trigger=_trigger,
    unreachable=unreachable,
)


def _render(template: str, snapshot: Snapshot, now: datetime, links: PageLinks | None, **values: Any) -> str:
    """A page: the header's snapshot age and readiness, the footer's links, and the page's values."""
    return _ENV.get_template(template).render(
        snapshot=snapshot,
        now=now,
        links=links or PageLinks(),
        age=(now - snapshot.generated_at).total_seconds(),
        stale=now - snapshot.generated_at > STALE_AFTER,
        **{"refresh": True, **values},
    )


def render_landing(
    snapshot: Snapshot, now: datetime, links: PageLinks | None = None, query: LandingQuery | None = None
) -> str:
    """The landing page: open gaps first, a summary line, one page of target groups (problems
    first, filtered by `query.q`; exporter/web_landing.py), recent gaps, sources and jobs."""
    return _render(
        "landing.html",
        snapshot,
        now,
        links,
        open_arns={g.target_group_arn for g in snapshot.open_gaps},
        listing=listing(snapshot, query or LandingQuery()),
        recent_gaps=sorted(snapshot.recent_gaps, key=lambda g: g.start, reverse=True),
        sources=sorted(snapshot.sources, key=lambda s: (s.up, s.source, s.aws_account_id, s.aws_region)),
    )


def render_target_group(
    snapshot: Snapshot,
    name: str,
    now: datetime,
    explanation: str | None = None,
    links: PageLinks | None = None,
) -> str | None:
    """The page of the target group(s) named `name`, or None when the snapshot knows none.

    `explanation` is plain text (the `explain` feature's output); the template escapes it.
    Several accounts may use one name: each match gets its own block.
    """
    matches = [tg for tg in snapshot.target_groups if tg.name == name]
    orphan_gaps = [
        g
        for g in (*snapshot.open_gaps, *snapshot.recent_gaps)
        if g.target_group == name and all(g.target_group_arn != tg.arn for tg in matches)
    ]
    if not matches and not orphan_gaps:
        return None
    return _render(
        "target_group.html",
        snapshot,
        now,
        links,
        name=name,
        matches=matches,
        orphan_gaps=orphan_gaps,
        open_gaps=[g for g in snapshot.open_gaps if g.target_group == name],
        explanation=explanation,
    )


def render_not_found(snapshot: Snapshot, name: str, now: datetime, links: PageLinks | None = None) -> str:
    return _render("not_found.html", snapshot, now, links, name=name, refresh=False)
