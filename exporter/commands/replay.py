"""`replay`: rebuild rule gaps offline from an inventory snapshot and CloudTrail files.

Output is a public contract: one JSON object per gap per line, ordered by start, with at least
target_group_arn, target_group, flow, start, end, duration_seconds, cause and actor. Each file
with rejected records is named on stderr (--verbose: each record); when not one record of the
EVENTS is usable, nothing is printed on stdout and the exit status is 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from exporter.commands import impact_check
from exporter.commands.common import UsageError, guarded, load_inventory
from exporter.commands.trail_input import NoUsableRecords, read_files
from exporter.engine.gaps import Analysis, analyze
from exporter.engine.impact import ImpactResult
from exporter.engine.inventory import InventoryError
from exporter.engine.triggers import Trigger, triggers_for
from exporter.reports.gaps import gap_record, replacement_json
from exporter.reports.impact import impact_record
from exporter.textsafe import printable

TABLE_COLUMNS = ("start", "end", "duration_seconds", "target_group", "flow", "cause", "actor")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "replay",
        help="rebuild rule gaps from an inventory snapshot and CloudTrail files",
        description="Rebuild rule gaps offline. EVENTS are files or folders of CloudTrail records in any "
        "wrapper: bare records, S3 trail files (.json or .json.gz), LookupEvents results, EventBridge envelopes. "
        "Each gap is one JSON line (--format json) with start, end, duration_seconds, cause, actor and "
        'start_exact: "start_exact": false when the real start is unknown (the flow was already not '
        "admitted at the first moment the records cover and no record says why, or the opening record "
        "does not carry the old value); start is then the first moment seen and note says why. The "
        "table marks such a start with '<=' (it began then or earlier). A gap a revoke opened that is "
        "still open less than 5 minutes before the end of the input (its last record or the inventory, "
        "whichever is later) has the cause pending_restore, as the exporter shows it: the controller may "
        "still authorize; revoke_without_restore only after that.",
    )
    parser.add_argument("--inventory", required=True, type=Path, help="a file written by `snapshot`")
    parser.add_argument("--format", choices=("json", "table"), default="json")
    parser.add_argument(
        "--replacements",
        action="store_true",
        help="also print rule replacements (objects with kind=replacement)",
    )
    parser.add_argument("--verbose", action="store_true", help="name each rejected record on stderr")
    impact_check.add_arguments(parser)
    parser.add_argument("events", nargs="+", type=Path, metavar="EVENTS")
    return parser


def run(args: argparse.Namespace) -> int:
    return guarded("replay", lambda: execute(args), (InventoryError, NoUsableRecords))


def execute(args: argparse.Namespace) -> int:
    inventory = load_inventory(args.inventory)
    fmt = impact_check.flow_log_format(args)
    missing = [str(p) for p in args.events if not p.exists()]
    if missing:
        raise UsageError(f"no such file or folder: {', '.join(missing)}")
    events = read_files(args.events, "replay", verbose=args.verbose, stream=sys.stderr)
    analysis = analyze(inventory, events.changes)
    impacts = None
    if fmt is not None:
        clients = impact_check.clients_for(inventory)
        impacts = impact_check.check(
            inventory,
            analysis.gaps,
            clients,
            flow_log_group=args.flow_log_group,
            flow_log_s3=impact_check.flow_log_s3(args),
            fmt=fmt,
            warn=lambda line: print(f"replay: {printable(line)}", file=sys.stderr),
        )
        calls = clients.counter.snapshot().total_calls
        print(f"replay: impact of {len(impacts)} closed gaps read in {calls} AWS calls", file=sys.stderr)
    if args.format == "table":
        print_table(analysis, impacts)
    else:
        print_json_lines(analysis, args.replacements, triggers_for(analysis.gaps, events.changes), impacts)
    return 0


def print_json_lines(
    analysis: Analysis,
    with_replacements: bool,
    triggers: Mapping[tuple[str, str, str], Trigger] | None = None,
    impacts: Mapping[tuple[str, str, str], ImpactResult] | None = None,
) -> None:
    for gap in analysis.gaps:
        record = gap_record(gap, triggers or {}, analysis.end)
        if impacts is not None:  # --impact: every gap says; an open gap's impact is not known yet
            record.update(impact_record(impacts.get(gap.key)))
        print(json.dumps(record, sort_keys=False))
    if with_replacements:
        for rep in analysis.replacements:
            print(json.dumps(msgspec.to_builtins(replacement_json(rep))))


def print_table(
    analysis: Analysis, impacts: Mapping[tuple[str, str, str], ImpactResult] | None = None
) -> None:
    rows = [[_cell(gap_record(gap, as_of=analysis.end)[c]) for c in TABLE_COLUMNS] for gap in analysis.gaps]
    columns: tuple[str, ...] = TABLE_COLUMNS
    if impacts is not None:
        columns = (*TABLE_COLUMNS, *impact_check.TABLE_COLUMNS)
        for row, gap in zip(rows, analysis.gaps, strict=True):
            row.extend(impact_check.table_cells(impacts.get(gap.key)))
    for row, gap in zip(rows, analysis.gaps, strict=True):
        if not gap.start_exact:  # began then or earlier: the records do not say when
            row[TABLE_COLUMNS.index("start")] = "<=" + row[TABLE_COLUMNS.index("start")]
    headers = [c.replace("_seconds", " (s)").replace("_", " ") for c in columns]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
    if not rows:
        print("no rule gaps")
    if any(not gap.start_exact for gap in analysis.gaps):
        print(
            "<= the real start is unknown (start_exact false; the JSON note says why): it began then or earlier"
        )
    for rep in analysis.replacements:
        print(
            f"replacement on {printable(rep.group_id)}: {rep.order} at {rep.time:%Y-%m-%dT%H:%M:%SZ} "
            f"by {printable(rep.revoke.actor.label)}"
        )


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return printable(str(value))  # a value from CloudTrail is shown, never obeyed by the terminal
