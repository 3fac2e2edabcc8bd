"""The demo's timings in one place: the banner, `demo --help` and the README quote `first_gap_text`."""

from __future__ import annotations

import math

from exporter.engine.records import WATCHED_EVENT_NAMES
from exporter.sources.ratelimit import LOOKUP_EVENTS_RATE

#: Seconds (at speed 1) from the banner to the first scene (shop/web's break-before-make flip);
#: the scripted controller's lines are stamped from the banner too.
FIRST_SCENE_AFTER = 4.0
#: The first scene's pause between the attribute change and the revoke (which opens the gap).
REVOKE_AFTER_FLIP = 1.5
#: The demo daemon's inventory poll interval in seconds (not scaled by --speed).
INVENTORY_INTERVAL = 5.0
#: The demo daemon's CloudTrail interval: longer than one LookupEvents poll, one request per
#: watched event name at LOOKUP_EVENTS_RATE (11 names: about 5.6 s), so no poll is skipped
#: (at 5 s every other one was, and the page's Jobs table showed as many skipped runs as runs).
CLOUDTRAIL_INTERVAL = float(math.ceil((len(WATCHED_EVENT_NAMES) - 1) / LOOKUP_EVENTS_RATE) + 1)
#: The first scene's pause between the revoke and the authorize, seconds at speed 1.
BREAK_PAUSE = (20.0, 40.0)
#: Calls whose order matters are at least this far apart, whatever the speed: CloudTrail's
#: eventTime has whole seconds, and two calls in one second cannot be ordered.
MIN_STEP = 1.1


def step(seconds: float, speed: float) -> float:
    """A pause of `seconds` at speed 1 between two ordered calls, at `speed`."""
    return max(seconds / speed, MIN_STEP)


def first_gap_after(speed: float = 1.0) -> float:
    """Seconds from the banner to the revoke that opens the first gap, at `speed`."""
    return FIRST_SCENE_AFTER / speed + step(REVOKE_AFTER_FLIP, speed)


def first_gap_text(speed: float = 1.0) -> str:
    """When the first rule gap opens, shows on the page and lasts, at `speed`."""
    first = first_gap_after(speed)
    low, high = (step(p, speed) for p in BREAK_PAUSE)
    return (
        f"the first rule gap opens ~{first:.0f} s after the banner, shows on /metrics and the page "
        f"within ~{first + INVENTORY_INTERVAL:.0f} s (one {INVENTORY_INTERVAL:g} s inventory poll) "
        f"and lasts {low:.0f}-{high:.0f} s"
    )
