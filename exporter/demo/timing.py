"""The demo's timings in one place: the banner, `demo --help` and the README quote `first_gap_text`."""

from __future__ import annotations

#: Seconds (at speed 1) from start to the first scene (shop/web's break-before-make flip).
FIRST_SCENE_AFTER = 4.0
#: The demo daemon's inventory poll interval in seconds (not scaled by --speed).
INVENTORY_INTERVAL = 5.0
#: The first scene's pause between the revoke and the authorize, seconds at speed 1.
BREAK_PAUSE = (20.0, 40.0)
#: Calls whose order matters are at least this far apart, whatever the speed: CloudTrail's
#: eventTime has whole seconds, and two calls in one second cannot be ordered.
MIN_STEP = 1.1


def first_gap_text(speed: float = 1.0) -> str:
    """When the first rule gap opens, shows on the page and lasts, at `speed`."""
    first = FIRST_SCENE_AFTER / speed
    low, high = (max(p / speed, MIN_STEP) for p in BREAK_PAUSE)
    return (
        f"the first rule gap opens ~{first:.0f} s after start, shows on /metrics and the page "
        f"within ~{first + INVENTORY_INTERVAL:.0f} s (one {INVENTORY_INTERVAL:g} s inventory poll) "
        f"and lasts {low:.0f}-{high:.0f} s"
    )
