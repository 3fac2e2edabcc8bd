"""The timeline strip: an inline SVG of a target group's rule gaps over a window ending now.

Two lanes (traffic above, health checks below), a time axis with clock-time ticks, each gap a red
block at least `MIN_GAP_PX` wide with a white edge (so neighbours stay apart) and a <title> giving
its flow, start, end, duration, cause and actor. The span before `watched_since` (the exporter was
not running) is drawn grey and hatched, never green: what was not watched is unknown.
Here: where everything goes; the SVG is templates/timeline.html (autoescaped).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from exporter.daemon.snapshot import GapView
from exporter.engine.flows import FlowKind
from exporter.web_templates import environment

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

_ENV = environment()
_ENV.globals.update(GREEN=GREEN, UNKNOWN=UNKNOWN, AXIS_TEXT=AXIS_TEXT, GRID=GRID, LANE_HEIGHT=LANE_HEIGHT)


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


@dataclass(frozen=True)
class _Block:
    number: int
    x: float
    top: int
    width: float
    colour: str
    text: str


@dataclass(frozen=True)
class _Unknown:
    width: float
    since: str
    hatching: list[tuple[float, float, float, float]]


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
    unknown = None
    if watched_since is not None and watched_since > begin:
        known_from = x_of(watched_since)
        summary += f"; not watched before {_moment(watched_since)} (unknown)"
        hatching = []  # clipped to the grey span
        for offset in range(-_LANES_BOTTOM, int(known_from), 6):
            x1, x2 = max(0.0, float(offset)), min(known_from, float(offset + _LANES_BOTTOM))
            if x2 > x1:
                hatching.append((x1, _LANES_BOTTOM - (x1 - offset), x2, _LANES_BOTTOM - (x2 - offset)))
        if known_from > 0:
            unknown = _Unknown(known_from, _moment(watched_since), hatching)
    ticks = []
    for tick in _ticks(begin, now, _tick_step(window)):
        x = x_of(tick)
        ticks.append((x, f"{tick.astimezone(UTC):%H:%M}" if 24 <= x <= width - 24 else ""))
    blocks = []
    for number, gap in enumerate(shown, start=1):
        top = _LANES.get(gap.flow, _LANES["traffic"])
        x1, x2 = x_of(gap.start), x_of(gap.end or now)
        w = max(MIN_GAP_PX, x2 - x1)
        blocks.append(
            _Block(number, min(x1, width - w), top, w, RED if gap.end else OPEN_RED, gap_text(gap, now))
        )
    return _ENV.get_template("timeline.html").render(
        classes=" ".join(c for c in ("timeline", css_class) if c),
        width=width,
        height=HEIGHT,
        bottom=_LANES_BOTTOM,
        summary=summary,
        unknown=unknown,
        known_from=known_from,
        ticks=ticks,
        lanes=[top + LANE_HEIGHT / 2 for top in _LANES.values()],
        window=window_text(window),
        gaps=blocks,
    )


def render_gap_list(gaps: Iterable[GapView], now: datetime, window: timedelta = WINDOWS["6h"]) -> str:
    """The gaps of the strip as a numbered list (the numbers of the blocks' titles)."""
    shown = gaps_in(gaps, now, window)
    if not shown:
        return ""
    return _ENV.get_template("gap_list.html").render(lines=[gap_text(g, now) for g in shown])
