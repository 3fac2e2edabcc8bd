"""The HTML pages: pure functions of (snapshot, now) -> HTML string.

Server-rendered, no JavaScript, no external assets (inline CSS and SVG), refreshed by
`<meta http-equiv="refresh">`. Every value from a snapshot goes through `html.escape`; names in
URLs are percent-encoded first.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from exporter.daemon.snapshot import GapView, JobStats, Snapshot, SourceHealth, TargetGroupView
from exporter.engine.flows import FLOW_KINDS, FlowKind, FlowStatus

REFRESH_SECONDS = 15
_TIMES = "\u00d7"  # multiplication sign: "source_not_covered x3"
TIMELINE_WINDOW = timedelta(hours=6)
#: A snapshot older than this is flagged stale in the header.
STALE_AFTER = timedelta(minutes=2)

_TIMELINE_WIDTH = 200
_TIMELINE_HEIGHT = 36  # two 10 px lanes and an 8 px axis label row
_LANES: dict[FlowKind, tuple[int, int]] = {"traffic": (3, 10), "health_check": (14, 10)}  # y, height
_FLOW_LABELS: dict[FlowKind, str] = {"traffic": "traffic", "health_check": "health check"}

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
.chip.good { background: #1f7a3f; } .chip.warn { background: #b7791f; } .chip.bad { background: #b91c1c; }
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
.banner .sep { opacity: .6; padding: 0 4px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid #e4e7eb; vertical-align: middle; }
th { font-size: 12px; text-transform: uppercase; letter-spacing: .03em; color: #52606d; background: #f8fafc; }
tr.has-open td { background: #fff5f5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.pct { display: inline-block; min-width: 58px; padding: 1px 6px; border-radius: 4px; text-align: right;
  font-weight: 600; font-variant-numeric: tabular-nums; }
.pct.full { background: #d3f9d8; color: #1f7a3f; } .pct.part { background: #ffe8cc; color: #9c4a00; }
.pct.none { background: #ffd6d6; color: #a61b1b; } .pct.na { background: #eef1f4; color: #52606d; }
.up { color: #1f7a3f; font-weight: 600; } .down { color: #b91c1c; font-weight: 600; }
.muted { color: #7b8794; } .small { font-size: 12px; } .nowrap { white-space: nowrap; }
.reasons { font-size: 12px; color: #a61b1b; white-space: nowrap; }
.grid { display: grid; grid-template-columns: 1fr 1fr; gap: 14px; }
.grid section { margin: 0; }
.scroll { overflow-x: auto; }
code, .mono { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px; }
svg.timeline { display: block; }
.legend { font-size: 12px; color: #52606d; margin: -4px 0 6px; }
pre.explanation { white-space: pre-wrap; background: #f8fafc; border: 1px solid #e4e7eb; padding: 8px;
  border-radius: 4px; margin: 0; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 3px 14px; margin: 0; }
dl.facts dt { color: #52606d; } dl.facts dd { margin: 0; }
footer { padding: 0 20px 20px; color: #7b8794; font-size: 12px; }
footer a { color: #52606d; }
"""


def esc(value: object) -> str:
    """HTML-escape any value (quotes too, so it is safe in attributes)."""
    return html.escape(str(value), quote=True)


def tg_href(name: str) -> str:
    """The URL of a target group's page (percent-encoded; escape it again when placing in HTML)."""
    return "/target-groups/" + quote(name, safe="")


def format_duration(seconds: float) -> str:
    """A short human duration: 45s, 2m 13s, 1h 02m, 3d 4h."""
    total = max(0, int(seconds))
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def _span_text(seconds: float) -> str:
    return f"{int(seconds // 3600)}h" if seconds % 3600 == 0 else format_duration(seconds)


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


def _footer() -> str:
    return (
        "<footer>"
        '<a href="/metrics">/metrics</a> · <a href="/api/snapshot.json">/api/snapshot.json</a> · '
        '<a href="/healthz">/healthz</a> · <a href="/readyz">/readyz</a> · '
        f"this page refreshes every {REFRESH_SECONDS}s"
        "</footer>"
    )


def _open_banner(gaps: Sequence[GapView], now: datetime, *, link: bool = True) -> str:
    if not gaps:
        return '<section class="banner ok" id="open-gaps">No open rule gaps</section>'
    items = []
    sep = '<span class="sep">·</span>'
    for gap in sorted(gaps, key=lambda g: g.start):
        age = format_duration((now - gap.start).total_seconds())
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
            f"cause {esc(gap.cause)} {sep} actor {esc(_actor(gap))} {sep} "
            f"since {esc(_since(gap.start, now))}"
            f"{'' if gap.explained else f' {sep} seen by inventory polls only'}"
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


def render_timeline(
    gaps: Iterable[GapView],
    now: datetime,
    *,
    window: timedelta = TIMELINE_WINDOW,
    width: int = _TIMELINE_WIDTH,
) -> str:
    """An inline SVG strip of the last `window`: a green line per flow lane, red blocks for gaps.

    Upper lane traffic, lower lane health checks, now at the right edge; hour ticks in grey.
    Each block has a <title> with the gap's flow, times, duration, cause and actor.
    """
    height = _TIMELINE_HEIGHT
    span = window.total_seconds()
    begin = now - window

    def x_of(moment: datetime) -> float:
        return max(0.0, min(width, (moment - begin).total_seconds() / span * width))

    parts = [
        f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img">'
    ]
    gaps = [g for g in gaps if (g.end or now) >= begin and g.start <= now]
    summary = f"last {format_duration(span)}: {len(gaps)} gap{'s' if len(gaps) != 1 else ''}"
    parts.append(f"<title>{esc(summary)}</title>")
    lanes_bottom = max(y + h for y, h in _LANES.values()) + 3
    parts.append(f'<rect x="0" y="0" width="{width}" height="{lanes_bottom}" fill="#f8fafc"/>')
    hours = int(span // 3600)
    for hour in range(1, hours):
        x = width * hour / hours
        parts.append(
            f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{lanes_bottom}" stroke="#d9e2ec" stroke-width="1"/>'
        )
    for y, lane_height in _LANES.values():
        mid = y + lane_height / 2
        parts.append(f'<line x1="0" y1="{mid}" x2="{width}" y2="{mid}" stroke="#2f9e44" stroke-width="2"/>')
    parts.append(
        f'<line x1="{width - 1}" y1="0" x2="{width - 1}" y2="{lanes_bottom}" stroke="#52606d" stroke-width="1"/>'
        f'<text x="1" y="{height - 1}" font-size="8" fill="#7b8794">-{esc(_span_text(span))}</text>'
        f'<text x="{width - 1}" y="{height - 1}" font-size="8" fill="#7b8794" text-anchor="end">now</text>'
    )
    for gap in gaps:
        y, lane_height = _LANES.get(gap.flow, _LANES["traffic"])
        x1, x2 = x_of(gap.start), x_of(gap.end or now)
        w = max(4.0, x2 - x1)
        x1 = min(x1, width - w)
        end_text = format_moment(gap.end) if gap.end else "still open"
        duration = format_duration(((gap.end or now) - gap.start).total_seconds())
        tip = (
            f"{_FLOW_LABELS.get(gap.flow, gap.flow)} gap {format_moment(gap.start)} to {end_text} ({duration}), "
            f"cause {gap.cause}, actor {_actor(gap)}"
        )
        colour = "#e03131" if gap.end else "#c92a2a"
        parts.append(
            f'<rect class="gap" x="{x1:.1f}" y="{y}" width="{w:.1f}" height="{lane_height}" fill="{colour}" rx="1">'
            f"<title>{esc(tip)}</title></rect>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _target_groups_table(snapshot: Snapshot, now: datetime) -> str:
    open_arns = {g.target_group_arn for g in snapshot.open_gaps}
    rows = []
    ordered = sorted(
        snapshot.target_groups,
        key=lambda t: (t.arn not in open_arns, t.namespace, t.service, t.name),
    )
    for tg in ordered:
        row_class = ' class="has-open"' if tg.arn in open_arns else ""
        rows.append(
            f"<tr{row_class}>"
            f"<td>{esc(_service(tg.namespace, tg.service))}</td>"
            f'<td class="nowrap"><a href="{esc(tg_href(tg.name))}">{esc(tg.name)}</a>'
            f'<div class="muted small">{esc(tg.aws_account_id)} · {esc(tg.aws_region)}</div></td>'
            f"<td>{esc(tg.mode)}</td>"
            f"<td>{'on' if tg.preserve_client_ip else 'off'}</td>"
            f'<td class="num">{esc(tg.targets)}</td>'
            f"<td>{_pct(tg.flows.get('traffic'))}</td>"
            f"<td>{_pct(tg.flows.get('health_check'))}</td>"
            f"<td>{_reasons(tg)}</td>"
            f"<td>{render_timeline(gaps_of(snapshot, tg.arn), now)}</td>"
            "</tr>"
        )
    if not rows:
        rows.append('<tr><td colspan="9" class="muted">No target groups watched (yet).</td></tr>')
    return (
        '<section id="target-groups"><h2>Target groups</h2>'
        '<div class="legend">Reachability: share of targets whose security groups admit the flow. '
        "Timeline: last 6 h, now at the right; upper lane traffic, lower lane health checks; red = rule gap "
        "(hover for details).</div>"
        '<div class="scroll"><table><thead><tr><th>Namespace/service</th><th>Target group</th><th>Mode</th>'
        "<th>Preserve client IP</th><th>Targets</th><th>Traffic</th><th>Health check</th>"
        "<th>Unadmitted</th><th>Last 6 h</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></div></section>"
    )


_INVENTORY_ONLY = ' <span class="muted small">(inventory only)</span>'


def _gaps_table(gaps: Sequence[GapView], *, title: str, section_id: str, link: bool = True) -> str:
    rows = []
    for gap in gaps:
        duration = gap.duration_seconds
        name = (
            f'<a href="{esc(tg_href(gap.target_group))}">{esc(gap.target_group)}</a>'
            if link
            else esc(gap.target_group)
        )
        rows.append(
            "<tr>"
            f'<td class="nowrap">{esc(format_moment(gap.start))}</td>'
            f'<td class="num">{esc(format_duration(duration)) if duration is not None else "open"}</td>'
            f"<td>{name}</td>"
            f"<td>{esc(_service(gap.namespace, gap.service))}</td>"
            f"<td>{esc(_FLOW_LABELS.get(gap.flow, gap.flow))}</td>"
            f"<td>{esc(gap.cause)}</td>"
            f"<td>{esc(_actor(gap))}{'' if gap.explained else _INVENTORY_ONLY}</td>"
            "</tr>"
        )
    if not rows:
        rows.append('<tr><td colspan="7" class="muted">None.</td></tr>')
    return (
        f'<section id="{esc(section_id)}"><h2>{esc(title)}</h2>'
        '<div class="scroll"><table><thead><tr><th>Start</th><th>Duration</th><th>Target group</th><th>Namespace/service</th>'
        "<th>Flow</th><th>Cause</th><th>Actor</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></div></section>"
    )


def _sources_table(sources: Sequence[SourceHealth], now: datetime) -> str:
    rows = []
    for src in sorted(sources, key=lambda s: (s.up, s.source, s.aws_account_id, s.aws_region)):
        state = '<span class="up">up</span>' if src.up else '<span class="down">down</span>'
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
    if not rows:
        rows.append('<tr><td colspan="5" class="muted">No sources reported yet.</td></tr>')
    return (
        '<section id="sources"><h2>Sources</h2><div class="scroll"><table><thead><tr><th>Source</th><th>Account · region</th>'
        "<th>State</th><th>Last success</th><th>Last error</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></div></section>"
    )


def _jobs_table(jobs: Sequence[JobStats], now: datetime) -> str:
    rows = []
    for job in jobs:
        last = (
            f"{esc(format_duration((now - job.last_success).total_seconds()))} ago"
            if job.last_success
            else '<span class="muted">never</span>'
        )
        duration = "-" if job.last_duration_seconds is None else f"{job.last_duration_seconds:.2f}s"
        rows.append(
            "<tr>"
            f'<td>{esc(job.job)}</td><td class="num">{esc(job.runs)}</td><td class="num">{esc(job.skipped)}</td>'
            f'<td class="num">{esc(duration)}</td><td>{last}</td>'
            f'<td class="small">{esc(job.last_error or "")}</td>'
            "</tr>"
        )
    if not rows:
        rows.append('<tr><td colspan="6" class="muted">No jobs reported yet.</td></tr>')
    return (
        '<section id="jobs"><h2>Jobs</h2><div class="scroll"><table><thead><tr><th>Job</th><th>Runs</th><th>Skipped</th>'
        "<th>Last duration</th><th>Last success</th><th>Last error</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></div></section>"
    )


def render_landing(snapshot: Snapshot, now: datetime) -> str:
    """The landing page: open gaps first, then target groups, recent gaps, sources and jobs."""
    recent = sorted(snapshot.recent_gaps, key=lambda g: g.start, reverse=True)
    body = (
        _header(snapshot, now)
        + "<main>"
        + _open_banner(snapshot.open_gaps, now)
        + _target_groups_table(snapshot, now)
        + _gaps_table(recent, title="Recent closed gaps", section_id="recent-gaps")
        + '<div class="grid">'
        + _sources_table(snapshot.sources, now)
        + _jobs_table(snapshot.jobs, now)
        + "</div></main>"
        + _footer()
    )
    title = "sg-churn-exporter"
    if snapshot.open_gaps:
        title = f"({len(snapshot.open_gaps)} open) {title}"
    return _page(title, body)


def _facts(tg: TargetGroupView) -> str:
    facts = [
        ("Namespace/service", _service(tg.namespace, tg.service)),
        ("Account · region", f"{tg.aws_account_id} · {tg.aws_region}"),
        ("Target group ARN", tg.arn),
        ("Load balancer", tg.load_balancer),
        ("Scheme", tg.scheme),
        (
            "Mode",
            f"{tg.mode} ({'NLB has security groups' if tg.mode == 'sg' else 'NLB without security groups'})",
        ),
        ("Target type · protocol", f"{tg.target_type} · {tg.protocol}"),
        ("Preserve client IP", "on" if tg.preserve_client_ip else "off"),
        ("Targets", str(tg.targets)),
        ("Cluster", tg.cluster or "-"),
        ("Mapped by", tg.mapped_by),
    ]
    return '<dl class="facts">' + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts) + "</dl>"


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
            f"<tr><td>{esc(_FLOW_LABELS[flow])}</td><td>{_pct(status)}</td><td>{esc(admitted)}</td>"
            f"<td>{reasons_html}</td></tr>"
        )
    return (
        '<section id="flows"><h2>Flows</h2><div class="scroll"><table><thead><tr><th>Flow</th><th>Reachability</th>'
        "<th>Admitted targets</th><th>Unadmitted, by reason</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></div></section>"
    )


def render_target_group(
    snapshot: Snapshot, name: str, now: datetime, explanation: str | None = None
) -> str | None:
    """The page of the target group(s) named `name`, or None when the snapshot knows none.

    `explanation` is plain text (the `explain` feature's output); it is escaped here.
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
    open_gaps = [g for g in snapshot.open_gaps if g.target_group == name]
    blocks = []
    for tg in matches:
        gaps = gaps_of(snapshot, tg.arn)
        closed = sorted((g for g in gaps if g.end is not None), key=lambda g: g.start, reverse=True)
        blocks.append(
            f'<section class="target-group"><h2>{esc(tg.name)}</h2>{_facts(tg)}</section>'
            + _flows_table(tg)
            + '<section id="timeline"><h2>Last 6 hours</h2>'
            '<div class="legend">Upper lane traffic, lower lane health checks, now at the right; red = rule gap '
            "(hover for details).</div>"
            + render_timeline(gaps, now, width=900)
            + "</section>"
            + _gaps_table(closed, title="Recent closed gaps", section_id="recent-gaps", link=False)
        )
    if orphan_gaps:
        blocks.append(
            '<section><h2>Gaps of a target group no longer watched</h2><p class="muted">The snapshot lists '
            "no current target group with this name, but it has gaps recorded under it.</p></section>"
            + _gaps_table(orphan_gaps, title="Gaps", section_id="orphan-gaps", link=False)
        )
    if explanation:
        explained = f'<pre class="explanation">{esc(explanation)}</pre>'
    else:
        explained = '<p class="muted">No explanation available for this target group.</p>'
    body = (
        _header(snapshot, now)
        + "<main>"
        + '<p class="small"><a href="/">← all target groups</a></p>'
        + _open_banner(open_gaps, now, link=False)
        + f'<section id="explanation"><h2>Explanation</h2>{explained}</section>'
        + "".join(blocks)
        + "</main>"
        + _footer()
    )
    return _page(f"{name} · sg-churn-exporter", body)


def render_not_found(snapshot: Snapshot, name: str, now: datetime) -> str:
    body = (
        _header(snapshot, now)
        + f'<main><section><h2>No target group named {esc(name)}</h2><p><a href="/">Back to all target groups</a></p>'
        "</section></main>" + _footer()
    )
    return _page("not found · sg-churn-exporter", body, refresh=False)
