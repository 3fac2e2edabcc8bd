"""Figure 1: ingest of a LookupEvents stream, parsed and folded into the timeline.

Every record is relevant (authorize, revoke, attribute flips). Ours: each CloudTrailEvent string
through `parse_payload` (with its pre-filter), then `ordered_changes` and `RuleState.apply` of
every change. Baseline: stdlib `json.loads` of the same strings and nothing else. Target: ours
handles at least as many records per second as the bare stdlib decode (ratio >= 1.0).

For information (not the figure), ours is also timed with the cyclic garbage collector paused
around the fold, as a bulk caller could run it: the difference is what the collector's walks
over the changes held so far cost.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.common import Figure, interleaved, ratio, timed
from benchmarks.synth_records import lookup_events_strings
from exporter.engine.changes import Change
from exporter.engine.timeline import RuleState, ordered_changes
from exporter.sources.envelopes import parse_payload

TARGET_RATIO = 1.0


@dataclass(frozen=True)
class IngestResult:
    records: int
    mean_record_bytes: float
    changes: int
    rejections: int
    ours_per_second: float  # per CPU second
    baseline_per_second: float
    ours_wall_per_second: float
    baseline_wall_per_second: float
    ours_collector_paused_per_second: float  # for information: the fold with gc paused

    @property
    def ratio(self) -> float:
        return ratio(self.ours_per_second, self.baseline_per_second)


def fold(strings: list[str]) -> tuple[RuleState, list[Change], int]:
    """Parse every string and apply the changes in eventTime order; (state, changes, rejections)."""
    changes: list[Change] = []
    rejections = 0
    for text in strings:
        result = parse_payload(text)
        changes.extend(result.changes)
        rejections += len(result.rejections)
    state = RuleState()
    for change in ordered_changes(changes):
        state.apply(change)
    return state, changes, rejections


def collector_paused(fn: Callable[[], object]) -> Callable[[], None]:
    """`fn` run with the cyclic garbage collector paused (re-enabled after, if it was)."""

    def run() -> None:
        enabled = gc.isenabled()
        gc.disable()
        try:
            fn()
        finally:
            if enabled:
                gc.enable()

    return run


def measure_ingest(records: int, rounds: int = 3, seed: int = 1) -> IngestResult:
    """Records per second of ours and of the baseline over `records` CloudTrailEvent strings."""
    strings = lookup_events_strings(records, seed)
    _, changes, rejections = fold(strings)

    def ours() -> None:
        fold(strings)

    def baseline() -> None:
        for text in strings:
            json.loads(text)

    timings = interleaved(ours, baseline, rounds)
    paused = sorted(timed(collector_paused(ours)).cpu for _ in range(rounds))[rounds // 2]
    return IngestResult(
        records=len(strings),
        mean_record_bytes=sum(len(s) for s in strings) / max(1, len(strings)),
        changes=len(changes),
        rejections=rejections,
        ours_per_second=len(strings) / timings.ours_cpu,
        baseline_per_second=len(strings) / timings.baseline_cpu,
        ours_wall_per_second=len(strings) / timings.ours_wall,
        baseline_wall_per_second=len(strings) / timings.baseline_wall,
        ours_collector_paused_per_second=len(strings) / paused,
    )


def figures(quick: bool) -> list[Figure]:
    result = measure_ingest(10_000 if quick else 50_000, rounds=3)
    return [
        Figure(
            key="ingest",
            title="1 Ingest, LookupEvents stream",
            value=result.ours_per_second,
            unit="rec/s",
            baseline=result.baseline_per_second,
            baseline_label="json.loads only",
            ratio=result.ratio,
            target=f"ratio >= {TARGET_RATIO:.1f}",
            passed=result.ratio >= TARGET_RATIO and result.rejections == 0,
            notes=(
                f"{result.records:,} records of {result.mean_record_bytes:,.0f} bytes on average; "
                f"{result.changes:,} changes, {result.rejections} rejections",
                "ours = parse_payload per CloudTrailEvent string + ordered_changes + RuleState.apply",
                f"per CPU second, median of 3 interleaved rounds; wall clock: ours "
                f"{result.ours_wall_per_second:,.0f}/s, baseline {result.baseline_wall_per_second:,.0f}/s",
                f"for information: ours with the garbage collector paused around the fold "
                f"{result.ours_collector_paused_per_second:,.0f}/s "
                f"({ratio(result.ours_collector_paused_per_second, result.baseline_per_second):.2f}x); "
                f"the rest is the collector walking the changes held so far",
            ),
        )
    ]
