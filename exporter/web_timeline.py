"""The timeline strip: an inline SVG of a target group's rule gaps over a window ending now.

Two lanes (traffic above, health checks below), a time axis with clock-time ticks, each gap a red
block at least `MIN_GAP_PX` wide with a white edge (so neighbours stay apart) and a <title> giving
its flow, start, end, duration, cause and actor. The span before `watched_since` (the exporter was
not running) is drawn grey and hatched, never green: what was not watched is unknown.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from exporter.daemon.snapshot import GapView
from exporter.engine.flows import FlowKind

WINDOWS: dict[str, timedelta] = {"6h": timedelta(hours=6), "1h": timedelta(hours=1)}
MIN_GAP_PX = 4.0
LANE_HEIGHT = 10
_LANES: dict[FlowKind, int] = {"traffic": 3, "health_check": 16}  # lane top y
_LANES_BOTTOM = 29
_AXIS_HEIGHT = 11
HEIGHT = _LANES_BOTTOM + _AXIS_HEIGHT
FLOW_LABELS: dict[FlowKind, str] = {"traffic": "traffic", "health_check": "health check"}
#: Tick spacing per window length: at most about six labelled ticks.
_TICKS = ((timedelta(hours=1), timedelta(minutes=10)), (timedelta(hours=6), timedelta(hours=1)))

GREEN, RED, OPEN_RED, UNKNOWN, AXIS_TEXT, GRID = (
    "#2f9e44",
    "#e03131",
    "#c92a2a",
    "#ced4da",
    "#3e4c59",
    "#d9e2ec",
)


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _moment(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def duration_text(seconds: float) -> str:
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


def window_text(window: timedelta) -> str:
    seconds = window.total_seconds()
    return f"{int(seconds // 3600)} h" if seconds % 3600 == 0 else duration_text(seconds)


def gaps_in(gaps: Iterable[GapView], now: datetime, window: timedelta) -> list[GapView]:
    """The gaps that overlap [now - window, now], oldest first."""
    begin = now - window
    return sorted((g for g in gaps if (g.end or now) >= begin and g.start <= now), key=lambda g: g.start)


def gap_text(gap: GapView, now: datetime) -> str:
    """One line for a gap: flow, start, end, duration, cause, actor."""
    end = _moment(gap.end) if gap.end else "still open"
    duration = duration_text(((gap.end or now) - gap.start).total_seconds())
    flow = FLOW_LABELS.get(gap.flow, gap.flow)
    return f"{flow} gap {_moment(gap.start)} to {end} ({duration}), cause {gap.cause}, actor {gap.actor or 'unknown'}"


def _tick_step(window: timedelta) -> timedelta:
    for longest, step in _TICKS:
        if window <= longest:
            return step
    return timedelta(hours=max(1, round(window / timedelta(hours=6))))


def _ticks(begin: datetime, now: datetime, step: timedelta) -> list[datetime]:
    """Clock-aligned moments (whole hours, whole 10 minutes) strictly inside (begin, now)."""
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    first = epoch + ((begin - epoch) // step + 1) * step
    out = []
    moment = first
    while moment < now:
        out.append(moment)
        moment += step
    return out


def render_timeline(
    gaps: Iterable[GapView],
    now: datetime,
    *,
    window: timedelta = WINDOWS["6h"],
    width: int = 200,
    watched_since: datetime | None = None,
    css_class: str = "",
) -> str:
    """The strip for the last `window`, `width` px wide (CSS may scale it; the viewBox keeps it)."""
    span = window.total_seconds()
    begin = now - window
    shown: Sequence[GapView] = gaps_in(gaps, now, window)

    def x_of(moment: datetime) -> float:
        return max(0.0, min(float(width), (moment - begin).total_seconds() / span * width))

    summary = f"last {window_text(window)}: {len(shown)} rule gap{'s' if len(shown) != 1 else ''}"
    known_from = 0.0
    if watched_since is not None and watched_since > begin:
        known_from = x_of(watched_since)
        summary += f"; not watched before {_moment(watched_since)} (unknown)"
    classes = " ".join(c for c in ("timeline", css_class) if c)
    parts = [
        f'<svg class="{classes}" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{HEIGHT}" '
        f'viewBox="0 0 {width} {HEIGHT}" preserveAspectRatio="none" role="img" aria-label="{_esc(summary)}">',
        f"<title>{_esc(summary)}</title>",
        f'<rect x="0" y="0" width="{width}" height="{_LANES_BOTTOM}" fill="#f8fafc"/>',
    ]
    if known_from > 0:
        parts.append(
            f'<rect class="unknown" x="0" y="0" width="{known_from:.1f}" height="{_LANES_BOTTOM}" fill="{UNKNOWN}">'
            f"<title>{_esc(f'not watched: the exporter started at {_moment(watched_since)}')}</title></rect>"  # type: ignore[arg-type]
        )
        for offset in range(-_LANES_BOTTOM, int(known_from), 6):  # hatching, clipped to the grey span
            x1, x2 = max(0.0, float(offset)), min(known_from, float(offset + _LANES_BOTTOM))
            if x2 > x1:
                parts.append(
                    f'<line x1="{x1:.1f}" y1="{_LANES_BOTTOM - (x1 - offset):.1f}" x2="{x2:.1f}" '
                    f'y2="{_LANES_BOTTOM - (x2 - offset):.1f}" stroke="#adb5bd" stroke-width="1"/>'
                )
    for tick in _ticks(begin, now, _tick_step(window)):
        x = x_of(tick)
        parts.append(
            f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{_LANES_BOTTOM + 2}" stroke="{GRID}" stroke-width="1"/>'
        )
        if 24 <= x <= width - 24:
            parts.append(
                f'<text x="{x:.1f}" y="{HEIGHT - 1}" font-size="8" fill="{AXIS_TEXT}" text-anchor="middle">'
                f"{tick.astimezone(UTC):%H:%M}</text>"
            )
    for top in _LANES.values():
        mid = top + LANE_HEIGHT / 2
        parts.append(
            f'<line x1="{known_from:.1f}" y1="{mid}" x2="{width}" y2="{mid}" stroke="{GREEN}" stroke-width="2"/>'
        )
    parts.append(
        f'<line x1="{width - 1}" y1="0" x2="{width - 1}" y2="{_LANES_BOTTOM + 2}" stroke="#52606d" stroke-width="1"/>'
        f'<text x="1" y="{HEIGHT - 1}" font-size="8" fill="{AXIS_TEXT}">-{_esc(window_text(window))}</text>'
        f'<text x="{width - 1}" y="{HEIGHT - 1}" font-size="8" fill="{AXIS_TEXT}" text-anchor="end">now</text>'
    )
    for number, gap in enumerate(shown, start=1):
        top = _LANES.get(gap.flow, _LANES["traffic"])
        x1, x2 = x_of(gap.start), x_of(gap.end or now)
        w = max(MIN_GAP_PX, x2 - x1)
        x1 = min(x1, width - w)
        colour = RED if gap.end else OPEN_RED
        parts.append(
            f'<rect class="gap" data-gap="{number}" x="{x1:.1f}" y="{top}" width="{w:.1f}" '
            f'height="{LANE_HEIGHT}" fill="{colour}" stroke="#fff" stroke-width="0.75">'
            f"<title>{_esc(f'#{number} ' + gap_text(gap, now))}</title></rect>"
        )
    parts.append("</svg>")
    return "".join(parts)


def render_gap_list(gaps: Iterable[GapView], now: datetime, window: timedelta = WINDOWS["6h"]) -> str:
    """The gaps of the strip as a numbered list (the numbers of the blocks' titles)."""
    shown = gaps_in(gaps, now, window)
    if not shown:
        return ""
    items = "".join(f"<li>{_esc(gap_text(g, now))}</li>" for g in shown)
    return f'<ol class="gap-list small">{items}</ol>'
