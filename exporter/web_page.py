"""The HTML pages: pure functions of (snapshot, now) -> HTML string.

Server-rendered, no JavaScript, no external assets (inline CSS and SVG), refreshed by
`<meta http-equiv="refresh">`. Every value from a snapshot goes through `html.escape`; names in
URLs are percent-encoded first.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from exporter.daemon.snapshot import GapView, JobStats, Snapshot, SourceHealth, TargetGroupView
from exporter.engine.flows import FLOW_KINDS, FlowStatus
from exporter.web_links import (
    JOB_FAILING,
    RULE_GAP_CLOSED_RECENTLY,
    RULE_GAP_OPEN,
    SOURCE_DOWN,
    TARGET_GROUP_UNREACHABLE,
    PageLinks,
)
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

_CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
  color: #1f2933; background: #f4f6f8; }
header { background: #1f2933; color: #fff; padding: 10px 20px; display: flex; flex-wrap: wrap;
  align-items: center; gap: 10px 18px; }
header h1 { font-size: 18px; margin: 0 12px 0 0; font-weight: 600; }
header h1 a { color: #fff; text-decoration: none; }
.chip { display: inline-block; padding: 2px 9px; border-radius: 10px; background: #3e4c59; font-size: 13px; }
.chip.good { background: #1f7a3f; } .chip.warn { background: #8a5a00; } .chip.bad { background: #b91c1c; }
main { padding: 14px 20px 30px; max-width: 1500px; }
section { background: #fff; border: 1px solid #d9e2ec; border-radius: 6px; margin: 0 0 14px; padding: 10px 14px; }
h2 { font-size: 15px; margin: 2px 0 8px; }
.banner { border: 0; color: #fff; }
.banner.open { background: #b91c1c; }
.banner.ok { background: #1f7a3f; padding: 8px 14px; font-weight: 600; }
.banner ul { margin: 0; padding: 0; list-style: none; }
.banner li { padding: 5px 0; border-top: 1px solid rgba(255,255,255,.25); font-size: 15px; }
.banner li:first-child { border-top: 0; }
.banner a { color: #fff; font-weight: 700; }
.banner .age { display: inline-block; min-width: 150px; font-weight: 700; font-size: 16px; }
.banner .sep { padding: 0 4px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid #e4e7eb; vertical-align: middle;
  overflow-wrap: anywhere; }
th { font-size: 12px; text-transform: uppercase; letter-spacing: .03em; color: #52606d; background: #f8fafc; }
tr.has-open td { background: #fff5f5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.pct { display: inline-block; min-width: 58px; padding: 1px 6px; border-radius: 4px; text-align: right;
  font-weight: 600; font-variant-numeric: tabular-nums; }
.pct.full { background: #d3f9d8; color: #1f7a3f; } .pct.part { background: #ffe8cc; color: #9c4a00; }
.pct.none { background: #ffd6d6; color: #a61b1b; } .pct.na { background: #eef1f4; color: #52606d; }
.up { color: #1f7a3f; font-weight: 600; } .down { color: #b91c1c; font-weight: 600; }
.muted { color: #52606d; } .small { font-size: 12px; } .nowrap { white-space: nowrap; }
.reasons { font-size: 12px; color: #a61b1b; white-space: nowrap; }
.grid { display: grid; grid-template-columns: 1fr 1fr; gap: 14px; }
.grid section { margin: 0; }
.scroll { overflow-x: auto; }
code, .mono { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px; }
svg.timeline { display: block; width: 100%; max-width: var(--tl-width, 200px); height: auto; }
svg.tl-1h { display: none; }
#last-hour:target ~ section svg.tl-6h { display: none; }
#last-hour:target ~ section svg.tl-1h { display: block; }
.zoom a.z6 { font-weight: 700; }
#last-hour:target ~ section .zoom a.z6 { font-weight: 400; }
#last-hour:target ~ section .zoom a.z1 { font-weight: 700; }
svg.tl-wide { --tl-width: 900px; max-width: 900px; }
.legend { font-size: 12px; color: #52606d; margin: -4px 0 6px; }
.zoom { font-size: 12px; margin: 0 0 6px; }
caption { text-align: left; }
.sr-only { position: absolute; width: 1px; height: 1px; padding: 0; margin: -1px; overflow: hidden;
  clip: rect(0 0 0 0); white-space: nowrap; border: 0; }
th[scope="row"] { font-size: 14px; text-transform: none; letter-spacing: 0; color: inherit; background: none;
  font-weight: 400; }
details.gaps summary { cursor: pointer; font-size: 12px; color: #52606d; }
ol.gap-list { margin: 4px 0 0; padding-left: 18px; }
td.tl { min-width: 120px; width: 200px; }
.links a { font-size: 12px; }
ul.alerts { margin: 0; padding-left: 18px; }
pre.explanation { white-space: pre-wrap; background: #f8fafc; border: 1px solid #e4e7eb; padding: 8px;
  border-radius: 4px; margin: 0; }
dl.facts { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: 3px 14px; margin: 0; }
dl.facts dt { color: #52606d; } dl.facts dd { margin: 0; overflow-wrap: anywhere; }
footer { padding: 0 20px 20px; color: #52606d; font-size: 12px; }
footer a { color: #3e4c59; }
@media (max-width: 1000px) {
  main { padding: 10px 8px 24px; }
  section { padding: 8px 8px; }
  .grid { grid-template-columns: 1fr; }
  table.stack thead { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
  table.stack, table.stack tbody, table.stack tr, table.stack td, table.stack th[scope="row"] {
    display: block; width: auto; }
  table.stack tr { border-bottom: 2px solid #d9e2ec; padding: 4px 0; }
  table.stack td, table.stack th[scope="row"] { border: 0; padding: 2px 4px; text-align: left; }
  table.stack td[data-label]::before, table.stack th[data-label]::before { content: attr(data-label);
    display: inline-block; min-width: 14em; padding-right: 8px; font-size: 11px; font-weight: 600; text-transform: uppercase;
    color: #52606d; }
  td.tl { width: auto; min-width: 0; }
  .nowrap, .reasons { white-space: normal; }
}
"""


def esc(value: object) -> str:
    """HTML-escape any value (quotes too, so it is safe in attributes)."""
    return html.escape(str(value), quote=True)


def tg_href(name: str) -> str:
    """The URL of a target group's page (percent-encoded; escape it again when placing in HTML)."""
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
    """ ", triggered by <who> (<attributes>) at <time>": the attribute change before the gap,
    who as role/session (an SSO user's e-mail, a CI job's name)."""
    if not gap.trigger_who:
        return ""
    when = f" at {format_moment(gap.trigger_time)}" if gap.trigger_time else ""
    detail = f" ({gap.trigger_detail})" if gap.trigger_detail else ""
    return f", triggered by {gap.trigger_who}{detail}{when}"


def _trigger_html(gap: GapView) -> str:
    """`_trigger` escaped, on its own line, with break chances inside long role/session names."""
    text = _trigger(gap).removeprefix(", ")
    if not text:
        return ""
    breakable = esc(text).replace("/", "/<wbr>").replace("_", "_<wbr>").replace("@", "@<wbr>")
    return f'<br><span class="muted">{breakable}</span>'


def _service(namespace: str, service: str) -> str:
    if not namespace and not service:
        return "(unmapped)"
    return f"{namespace}/{service}"


def _page(title: str, body: str, *, refresh: bool = True) -> str:
    meta = f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">' if refresh else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"{meta}<title>{esc(title)}</title><style>{_CSS}</style></head>\n"
        f"<body>{body}</body></html>\n"
    )


def _header(snapshot: Snapshot, now: datetime) -> str:
    age = (now - snapshot.generated_at).total_seconds()
    stale = now - snapshot.generated_at > STALE_AFTER
    ready = (
        '<span class="chip good" id="readiness">ready</span>'
        if snapshot.ready
        else '<span class="chip warn" id="readiness">not ready</span>'
    )
    age_class = "chip warn" if stale else "chip"
    age_text = f"snapshot {format_duration(age)} old" + (" (stale)" if stale else "")
    return (
        "<header>"
        '<h1><a href="/">sg-churn-exporter</a></h1>'
        f'<span class="chip">version {esc(snapshot.version)}</span>'
        f'<span class="chip">shard {esc(snapshot.shard)} of {esc(snapshot.total_shards)}</span>'
        f"{ready}"
        f'<span class="{age_class}" id="snapshot-age" title="generated {esc(format_moment(snapshot.generated_at))}">'
        f"{esc(age_text)}</span>"
        f'<span class="chip">now {esc(format_moment(now))}</span>'
        "</header>"
    )


def _footer(links: PageLinks) -> str:
    return (
        "<footer>"
        '<a href="/metrics">/metrics</a> · <a href="/api/snapshot.json">/api/snapshot.json</a> · '
        '<a href="/healthz">/healthz</a> · <a href="/readyz">/readyz</a> · '
        f'<a href="{esc(links.runbook_base_url)}">runbooks</a> · '
        f"this page refreshes every {REFRESH_SECONDS}s"
        "</footer>"
    )


def _runbook(links: PageLinks, alert: str, text: str = "runbook") -> str:
    return f'<a class="runbook" href="{esc(links.runbook(alert))}" title="{esc(alert)}">{esc(text)}</a>'


_CELL = re.compile(r'<(td|th scope="row")')


def _labelled(row: str, headers: Sequence[str]) -> str:
    """Each cell of a row with data-label=<its column header>, shown beside it when rows stack."""
    names = iter(headers)
    return _CELL.sub(lambda m: f'<{m.group(1)} data-label="{esc(next(names, ""))}"', row)


def _table(caption: str, headers: Sequence[str], rows: Sequence[str], empty: str) -> str:
    """A table with a caption (for screen readers; the section heading shows it) and column headers.

    Below 1000 px wide its rows stack (CSS), each cell labelled with its header: no column is lost.
    """
    body = "".join(_labelled(r, headers) for r in rows)
    body = body or f'<tr><td colspan="{len(headers)}" class="muted">{esc(empty)}</td></tr>'
    head = "".join(f'<th scope="col">{esc(h)}</th>' for h in headers)
    return (
        f'<div class="scroll"><table class="stack"><caption class="sr-only">{esc(caption)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )


def _open_banner(gaps: Sequence[GapView], now: datetime, links: PageLinks, *, link: bool = True) -> str:
    if not gaps:
        return '<section class="banner ok" id="open-gaps">No open rule gaps</section>'
    items = []
    sep = '<span class="sep">·</span>'
    for gap in sorted(gaps, key=lambda g: g.start):
        age = format_duration((now - gap.start).total_seconds())
        if not gap.start_exact:  # first seen then: it began then or earlier
            age = f"at least {age}"
        name = (
            f'<a href="{esc(tg_href(gap.target_group))}">{esc(gap.target_group)}</a>'
            if link
            else f"<strong>{esc(gap.target_group)}</strong>"
        )
        items.append(
            "<li>"
            f'<span class="age">open for {esc(age)}</span>'
            f"{name} {sep} {esc(_service(gap.namespace, gap.service))} {sep} "
            f"flow <strong>{esc(_FLOW_LABELS.get(gap.flow, gap.flow))}</strong> {sep} "
            f"cause {esc(gap.cause)} {sep} actor {esc(_actor(gap))}{esc(_trigger(gap))} {sep} "
            f"since {esc(_since(gap.start, now))}{'' if gap.start_exact else ' or earlier'}"
            f"{'' if gap.explained else f' {sep} seen by inventory polls only'}"
            f" {sep} {_runbook(links, RULE_GAP_OPEN, 'what to do')}"
            "</li>"
        )
    count = len(gaps)
    title = (
        f"{count} open rule gap{'s' if count != 1 else ''}: targets are not admitted by their security groups"
    )
    return f'<section class="banner open" id="open-gaps"><h2>{esc(title)}</h2><ul>{"".join(items)}</ul></section>'


def _pct(status: FlowStatus | None) -> str:
    if status is None:
        return '<span class="pct na">n/a</span>'
    if status.targets == 0:
        return '<span class="pct na" title="no targets">-</span>'
    ratio = status.ratio
    css = "full" if ratio >= 1 else ("none" if ratio <= 0 else "part")
    title = f"{status.admitted} of {status.targets} targets admitted"
    return f'<span class="pct {css}" title="{esc(title)}">{ratio * 100:.0f}%</span>'


def _reasons(tg: TargetGroupView) -> str:
    parts = []
    for flow in FLOW_KINDS:
        status = tg.flows.get(flow)
        if status is None:
            continue
        for reason, count in sorted(status.unadmitted_by_reason.items()):
            if count:
                parts.append(f"{_FLOW_LABELS[flow]}: {reason} {_TIMES}{count}")
    if not parts:
        return '<span class="muted">-</span>'
    return '<span class="reasons">' + "<br>".join(esc(p) for p in parts) + "</span>"


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


def _strips(gaps: Sequence[GapView], now: datetime, watched_since: datetime | None, *, wide: bool) -> str:
    """The 6 h strip and the last-hour strip (shown instead under #last-hour), and the gap list."""
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
        return strips
    if wide:
        return strips + listed
    count = listed.count("<li>")
    return f'{strips}<details class="gaps"><summary>{count} gap{"s" if count != 1 else ""}</summary>{listed}</details>'


def _zoom() -> str:
    return (
        '<div class="zoom">Timeline: <a class="z6" href="#">last 6 h</a> · '
        f'<a class="z1" href="#{ZOOM_ANCHOR}">last hour</a></div>'
    )


def _target_groups_table(snapshot: Snapshot, now: datetime, links: PageLinks) -> str:
    open_arns = {g.target_group_arn for g in snapshot.open_gaps}
    rows = []
    ordered = sorted(
        snapshot.target_groups,
        key=lambda t: (t.arn not in open_arns, t.namespace, t.service, t.name),
    )
    for tg in ordered:
        row_class = ' class="has-open"' if tg.arn in open_arns else ""
        dashboard = links.dashboard(tg)
        grafana = f' · <a class="dashboard" href="{esc(dashboard)}">dashboard</a>' if dashboard else ""
        alert = (
            f'<div class="links">{_runbook(links, TARGET_GROUP_UNREACHABLE, "unreachable: runbook")}</div>'
            if unreachable(tg)
            else ""
        )
        rows.append(
            f"<tr{row_class}>"
            f"<td>{esc(_service(tg.namespace, tg.service))}</td>"
            f'<th scope="row"><a href="{esc(tg_href(tg.name))}">{esc(tg.name)}</a>'
            f'<div class="muted small">{esc(tg.aws_account_id)} · {esc(tg.aws_region)}{grafana}</div></th>'
            f"<td>{esc(tg.mode)}</td>"
            f"<td>{'on' if tg.preserve_client_ip else 'off'}</td>"
            f'<td class="num">{esc(tg.targets)}</td>'
            f"<td>{_pct(tg.flows.get('traffic'))}</td>"
            f"<td>{_pct(tg.flows.get('health_check'))}{alert}</td>"
            f"<td>{_reasons(tg)}</td>"
            f'<td class="tl">{_strips(gaps_of(snapshot, tg.arn), now, snapshot.watched_since, wide=False)}</td>'
            "</tr>"
        )
    headers = (
        "Namespace/service",
        "Target group",
        "Mode",
        "Preserve client IP",
        "Targets",
        "Traffic",
        "Health check",
        "Unadmitted",
        "Timeline",
    )
    return (
        '<section id="target-groups"><h2>Target groups</h2>'
        '<div class="legend">Reachability: share of targets whose security groups admit the flow. '
        "Timeline: now at the right; upper lane traffic, lower lane health checks; red = rule gap "
        "(hover or open the list for start and end); grey hatched = not watched (before the exporter "
        "started): unknown.</div>"
        + _zoom()
        + _table(
            "Target groups, their reachability and rule gaps",
            headers,
            rows,
            "No target groups watched (yet).",
        )
        + "</section>"
    )


_INVENTORY_ONLY = ' <span class="muted small">(inventory only)</span>'


def _start_cell(gap: GapView) -> str:
    """The start; "<=" before it when the real start is unknown (first seen then, or earlier)."""
    if gap.start_exact:
        return esc(format_moment(gap.start))
    return f'<span title="start unknown: first seen then">&lt;= {esc(format_moment(gap.start))}</span>'


def _gaps_table(
    gaps: Sequence[GapView], links: PageLinks, *, title: str, section_id: str, link: bool = True
) -> str:
    rows = []
    for gap in gaps:
        duration = gap.duration_seconds
        name = (
            f'<a href="{esc(tg_href(gap.target_group))}">{esc(gap.target_group)}</a>'
            if link
            else esc(gap.target_group)
        )
        alert = RULE_GAP_OPEN if gap.end is None else RULE_GAP_CLOSED_RECENTLY
        rows.append(
            "<tr>"
            f'<td class="nowrap">{_start_cell(gap)}</td>'
            f'<td class="nowrap">{esc(format_moment(gap.end)) if gap.end else "open"}</td>'
            f'<td class="num">{esc(format_duration(duration)) if duration is not None else "open"}</td>'
            f"<td>{name}</td>"
            f"<td>{esc(_service(gap.namespace, gap.service))}</td>"
            f"<td>{esc(_FLOW_LABELS.get(gap.flow, gap.flow))}</td>"
            f"<td>{esc(gap.cause)}</td>"
            f"<td>{esc(_actor(gap))}{_trigger_html(gap)}{'' if gap.explained else _INVENTORY_ONLY}</td>"
            f"<td>{_runbook(links, alert)}</td>"
            "</tr>"
        )
    headers = (
        "Start",
        "End",
        "Duration",
        "Target group",
        "Namespace/service",
        "Flow",
        "Cause",
        "Actor",
        "Runbook",
    )
    return (
        f'<section id="{esc(section_id)}"><h2>{esc(title)}</h2>'
        + _table(title, headers, rows, "None.")
        + "</section>"
    )


def _sources_table(sources: Sequence[SourceHealth], now: datetime, links: PageLinks) -> str:
    rows = []
    for src in sorted(sources, key=lambda s: (s.up, s.source, s.aws_account_id, s.aws_region)):
        state = (
            '<span class="up">up</span>'
            if src.up
            else f'<span class="down">down</span> {_runbook(links, SOURCE_DOWN)}'
        )
        last = (
            f"{esc(format_duration((now - src.last_success).total_seconds()))} ago"
            if src.last_success
            else '<span class="muted">never</span>'
        )
        rows.append(
            "<tr>"
            f'<td>{esc(src.source)}</td><td class="nowrap">{esc(src.aws_account_id)} · {esc(src.aws_region)}</td>'
            f"<td>{state}</td><td>{last}</td>"
            f'<td class="small">{esc(src.last_error or "")}</td>'
            "</tr>"
        )
    headers = ("Source", "Account · region", "State", "Last success", "Last error")
    return (
        '<section id="sources"><h2>Sources</h2>'
        + _table("Sources", headers, rows, "No sources reported yet.")
        + "</section>"
    )


def _jobs_table(jobs: Sequence[JobStats], now: datetime, links: PageLinks) -> str:
    rows = []
    for job in jobs:
        last = (
            f"{esc(format_duration((now - job.last_success).total_seconds()))} ago"
            if job.last_success
            else '<span class="muted">never</span>'
        )
        duration = "-" if job.last_duration_seconds is None else f"{job.last_duration_seconds:.2f}s"
        error = esc(job.last_error or "") + (f" {_runbook(links, JOB_FAILING)}" if job.last_error else "")
        rows.append(
            "<tr>"
            f'<td>{esc(job.job)}</td><td class="num">{esc(job.runs)}</td><td class="num">{esc(job.skipped)}</td>'
            f'<td class="num">{esc(duration)}</td><td>{last}</td>'
            f'<td class="small">{error}</td>'
            "</tr>"
        )
    headers = ("Job", "Runs", "Skipped", "Last duration", "Last success", "Last error")
    return (
        '<section id="jobs"><h2>Jobs</h2>'
        + _table("Jobs", headers, rows, "No jobs reported yet.")
        + "</section>"
    )


def _zoom_anchor() -> str:
    return f'<span id="{ZOOM_ANCHOR}"></span>'


def render_landing(snapshot: Snapshot, now: datetime, links: PageLinks | None = None) -> str:
    """The landing page: open gaps first, then target groups, recent gaps, sources and jobs."""
    links = links or PageLinks()
    recent = sorted(snapshot.recent_gaps, key=lambda g: g.start, reverse=True)
    body = (
        _header(snapshot, now)
        + "<main>"
        + _zoom_anchor()
        + _open_banner(snapshot.open_gaps, now, links)
        + _target_groups_table(snapshot, now, links)
        + _gaps_table(recent, links, title="Recent closed gaps", section_id="recent-gaps")
        + '<div class="grid">'
        + _sources_table(snapshot.sources, now, links)
        + _jobs_table(snapshot.jobs, now, links)
        + "</div></main>"
        + _footer(links)
    )
    title = "sg-churn-exporter"
    if snapshot.open_gaps:
        title = f"({len(snapshot.open_gaps)} open) {title}"
    return _page(title, body)


def _facts(tg: TargetGroupView, links: PageLinks) -> str:
    facts = [
        ("Namespace/service", esc(_service(tg.namespace, tg.service))),
        ("Account · region", esc(f"{tg.aws_account_id} · {tg.aws_region}")),
        ("Target group ARN", esc(tg.arn)),
        ("Load balancer", esc(tg.load_balancer)),
        ("Scheme", esc(tg.scheme)),
        (
            "Mode",
            esc(
                f"{tg.mode} ({'NLB has security groups' if tg.mode == 'sg' else 'NLB without security groups'})"
            ),
        ),
        ("Target type · protocol", esc(f"{tg.target_type} · {tg.protocol}")),
        ("Preserve client IP", "on" if tg.preserve_client_ip else "off"),
        ("Targets", esc(tg.targets)),
        ("Cluster", esc(tg.cluster or "-")),
        ("Mapped by", esc(tg.mapped_by)),
    ]
    dashboard = links.dashboard(tg)
    if dashboard:
        facts.append(("Grafana", f'<a class="dashboard" href="{esc(dashboard)}">target group dashboard</a>'))
    if unreachable(tg):
        facts.append(
            ("Alert", f"{esc(TARGET_GROUP_UNREACHABLE)}: {_runbook(links, TARGET_GROUP_UNREACHABLE)}")
        )
    return '<dl class="facts">' + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>"


def _flows_table(tg: TargetGroupView) -> str:
    rows = []
    for flow in FLOW_KINDS:
        status = tg.flows.get(flow)
        admitted = "-" if status is None else f"{status.admitted} of {status.targets}"
        reasons = (
            ""
            if status is None
            else ", ".join(f"{r} {_TIMES}{c}" for r, c in sorted(status.unadmitted_by_reason.items()) if c)
        )
        reasons_html = (
            f'<span class="reasons">{esc(reasons)}</span>' if reasons else '<span class="muted">-</span>'
        )
        rows.append(
            f'<tr><th scope="row">{esc(_FLOW_LABELS[flow])}</th><td>{_pct(status)}</td><td>{esc(admitted)}</td>'
            f"<td>{reasons_html}</td></tr>"
        )
    headers = ("Flow", "Reachability", "Admitted targets", "Unadmitted, by reason")
    return '<section id="flows"><h2>Flows</h2>' + _table("Flows", headers, rows, "") + "</section>"


def render_target_group(
    snapshot: Snapshot,
    name: str,
    now: datetime,
    explanation: str | None = None,
    links: PageLinks | None = None,
) -> str | None:
    """The page of the target group(s) named `name`, or None when the snapshot knows none.

    `explanation` is plain text (the `explain` feature's output); it is escaped here.
    Several accounts may use one name: each match gets its own block.
    """
    links = links or PageLinks()
    matches = [tg for tg in snapshot.target_groups if tg.name == name]
    orphan_gaps = [
        g
        for g in (*snapshot.open_gaps, *snapshot.recent_gaps)
        if g.target_group == name and all(g.target_group_arn != tg.arn for tg in matches)
    ]
    if not matches and not orphan_gaps:
        return None
    open_gaps = [g for g in snapshot.open_gaps if g.target_group == name]
    blocks = []
    for tg in matches:
        gaps = gaps_of(snapshot, tg.arn)
        closed = sorted((g for g in gaps if g.end is not None), key=lambda g: g.start, reverse=True)
        blocks.append(
            f'<section class="target-group"><h2>{esc(tg.name)}</h2>{_facts(tg, links)}</section>'
            + _flows_table(tg)
            + '<section id="timeline"><h2>Timeline</h2>'
            '<div class="legend">Upper lane traffic, lower lane health checks, now at the right; red = rule gap '
            "(hover for details; numbered as in the list below); grey hatched = not watched: unknown.</div>"
            + _zoom()
            + _strips(gaps, now, snapshot.watched_since, wide=True)
            + "</section>"
            + _gaps_table(closed, links, title="Recent closed gaps", section_id="recent-gaps", link=False)
        )
    if orphan_gaps:
        blocks.append(
            '<section><h2>Gaps of a target group no longer watched</h2><p class="muted">The snapshot lists '
            "no current target group with this name, but it has gaps recorded under it.</p></section>"
            + _gaps_table(orphan_gaps, links, title="Gaps", section_id="orphan-gaps", link=False)
        )
    if explanation:
        explained = f'<pre class="explanation">{esc(explanation)}</pre>'
    else:
        explained = '<p class="muted">No explanation available for this target group.</p>'
    body = (
        _header(snapshot, now)
        + "<main>"
        + _zoom_anchor()
        + '<p class="small"><a href="/">← all target groups</a></p>'
        + _open_banner(open_gaps, now, links, link=False)
        + f'<section id="explanation"><h2>Explanation</h2>{explained}</section>'
        + "".join(blocks)
        + "</main>"
        + _footer(links)
    )
    return _page(f"{name} · sg-churn-exporter", body)


def render_not_found(snapshot: Snapshot, name: str, now: datetime, links: PageLinks | None = None) -> str:
    body = (
        _header(snapshot, now)
        + f'<main><section><h2>No target group named {esc(name)}</h2><p><a href="/">Back to all target groups</a></p>'
        "</section></main>" + _footer(links or PageLinks())
    )
    return _page("not found · sg-churn-exporter", body, refresh=False)
