"""A gap's impact (engine/impact.py) in words and in JSON: its one line for pages and reports; one
declared shape (msgspec) for the daemon's state file, /api/snapshot.json and the fields
`replay --impact` and `explain --impact` add to a gap's line; and its lenient reader."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast

import msgspec

from exporter.engine.impact import IMPACTS, Impact, ImpactResult
from exporter.engine.timeutil import format_optional_time, parse_time


class ImpactJson(msgspec.Struct, frozen=True):
    impact: Impact
    impact_missing: list[str]  # why unknown: the sources not read, not configured or without data
    impact_reasons: list[str]  # why confirmed
    peak_unhealthy_hosts: float | None
    baseline_unhealthy_hosts: float | None
    min_healthy_hosts: float | None
    target_resets: float | None
    new_flows_during: float | None
    new_flows_before: float | None
    rejected_flows: int | None
    impact_window_start: str | None
    impact_window_end: str | None


#: A gap still open: its impact is not known yet.
OPEN_GAP_IMPACT = ImpactResult("unknown", ("gap_open",))


def impact_text(result: ImpactResult) -> str:
    """One line for pages and reports: `confirmed: peak 2 unhealthy hosts, 3 rejected flows,
    40 new flows (310 before)`; `unknown: flow_logs_not_configured`."""
    facts: list[str] = []
    if result.peak_unhealthy_hosts is not None:
        facts.append(f"peak {result.peak_unhealthy_hosts:g} unhealthy hosts")
    if result.rejected_flows is not None:
        facts.append(f"{result.rejected_flows} rejected flows")
    if result.new_flows_during is not None:
        before = "no data" if result.new_flows_before is None else f"{result.new_flows_before:g}"
        facts.append(f"{result.new_flows_during:g} new flows ({before} before)")
    if result.impact == "unknown":
        facts = [*result.missing, *facts]
    label = result.impact.replace("_", " ")
    return f"{label}: {', '.join(facts)}" if facts else label


def impact_json(result: ImpactResult) -> ImpactJson:
    return ImpactJson(
        impact=result.impact,
        impact_missing=list(result.missing),
        impact_reasons=list(result.reasons),
        peak_unhealthy_hosts=result.peak_unhealthy_hosts,
        baseline_unhealthy_hosts=result.baseline_unhealthy_hosts,
        min_healthy_hosts=result.min_healthy_hosts,
        target_resets=result.target_resets,
        new_flows_during=result.new_flows_during,
        new_flows_before=result.new_flows_before,
        rejected_flows=result.rejected_flows,
        impact_window_start=format_optional_time(result.window_start),
        impact_window_end=format_optional_time(result.window_end),
    )


def impact_record(result: ImpactResult | None) -> dict[str, Any]:
    """`impact_json` as plain data (its keys in the declared order); None: a gap still open, whose
    impact is not known yet (OPEN_GAP_IMPACT, its two facts only)."""
    if result is None:
        return {"impact": OPEN_GAP_IMPACT.impact, "impact_missing": list(OPEN_GAP_IMPACT.missing)}
    return cast(dict[str, Any], msgspec.to_builtins(impact_json(result)))


def _field(data: Mapping[str, Any], name: str, kind: Any) -> Any:
    """The stored value of `name` as `kind`, None when absent or of another kind."""
    try:
        return msgspec.convert(data.get(name), kind)
    except msgspec.ValidationError:
        return None


def _texts(data: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = data.get(name)
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def _moment(data: Mapping[str, Any], name: str) -> datetime | None:
    try:
        return parse_time(data.get(name))
    except (ValueError, OverflowError, OSError):  # not a time, or epoch seconds out of range
        return None


def read_impact(data: Mapping[str, Any]) -> ImpactResult:
    """An ImpactJson as stored (the daemon's state file) or merged into a gap's line, field by
    field: a value of the wrong kind reads as absent, an unknown impact as `unknown` (a value
    written by any earlier version reads as it was meant)."""
    impact = data.get("impact")
    number = float | None
    return ImpactResult(
        impact=impact if impact in IMPACTS else "unknown",
        missing=_texts(data, "impact_missing"),
        reasons=_texts(data, "impact_reasons"),
        peak_unhealthy_hosts=_field(data, "peak_unhealthy_hosts", number),
        baseline_unhealthy_hosts=_field(data, "baseline_unhealthy_hosts", number),
        min_healthy_hosts=_field(data, "min_healthy_hosts", number),
        target_resets=_field(data, "target_resets", number),
        new_flows_during=_field(data, "new_flows_during", number),
        new_flows_before=_field(data, "new_flows_before", number),
        rejected_flows=_field(data, "rejected_flows", int | None),
        window_start=_moment(data, "impact_window_start"),
        window_end=_moment(data, "impact_window_end"),
    )
