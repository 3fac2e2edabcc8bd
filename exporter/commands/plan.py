"""`plan`: the reviewed, make-before-break way to flip preserve_client_ip on a target group.

Prints AWS CLI commands (authorize before the change, the attribute change, revoke after) and
whether letting the controller do it would open a gap, judged from the --events (live: from
CloudTrail LookupEvents over --lookback). Live, it also looks for the chart's guardrail (a
ValidatingAdmissionPolicy, docs/guardrail.md) and prints its bypass step. Read-only: it never
runs the commands. Exit 2 for an unknown target, unusable input, or events of which not one
record was usable.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import msgspec

from exporter.commands.common import UsageError, guarded
from exporter.commands.explain import USAGE_ERRORS, add_source_arguments, resolve
from exporter.commands.plan_guardrail import GuardrailJson, check_guardrail, guardrail_json, render_guardrail
from exporter.commands.trail_input import EventsReadJson
from exporter.engine.explain import current_state, with_intents
from exporter.engine.plan import plan_attribute_change
from exporter.engine.timeutil import format_time
from exporter.reports.plan import PlanJson, plan_json, plan_text
from exporter.textsafe import printable_fields, printable_lines

SETTABLE = ("preserve_client_ip", "preserve_client_ip.enabled")


class PlanDocument(msgspec.Struct, frozen=True):
    """What `plan --format json` prints (its plans: reports/plan.py; read_only is always true)."""

    query: str
    source: str  # "live" | the inventory path
    inventory_taken_at: str
    events: int
    cloudtrail: EventsReadJson
    read_only: bool
    plans: list[PlanJson]
    guardrail: GuardrailJson | None


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "plan",
        help="print a make-before-break plan (AWS CLI commands) for a preserve_client_ip change",
        description="Plan a preserve_client_ip change: the rules to authorize before it and to revoke after "
        "it, as AWS CLI commands to review, and the gap risk if the controller applies it. Read-only.",
    )
    add_source_arguments(parser)
    parser.add_argument(
        "--set",
        dest="assignment",
        required=True,
        metavar="preserve_client_ip=true|false",
        help="the attribute value wanted",
    )
    parser.add_argument(
        "--kubeconfig",
        help="the cluster whose guardrail policy to look for (live default: in-cluster, $KUBECONFIG, "
        "~/.kube/config; offline: only with this option)",
    )
    return parser


def parse_assignment(text: str) -> bool:
    key, sep, value = text.partition("=")
    if not sep or key.strip() not in SETTABLE:
        raise UsageError(f"--set {text!r}: expected preserve_client_ip=true or preserve_client_ip=false")
    normalized = value.strip().lower()
    if normalized not in ("true", "false"):
        raise UsageError(f"--set {text!r}: the value must be true or false")
    return normalized == "true"


def run(args: argparse.Namespace) -> int:
    return guarded("plan", lambda: execute(args), USAGE_ERRORS)


def execute(args: argparse.Namespace) -> int:
    preserve = parse_assignment(args.assignment)
    world, target_groups = resolve(args, "plan")
    state = current_state(world.inventory, world.changes)
    intended = with_intents(world.inventory, world.changes)
    plans = [
        plan_attribute_change(intended, tg.arn, state, world.changes, preserve=preserve)
        for tg in target_groups
    ]
    # Live, or asked for with --kubeconfig: an offline plan otherwise stays offline.
    wanted = world.source == "live" or args.kubeconfig is not None
    guardrail = check_guardrail(args.kubeconfig) if wanted else None
    if args.format == "json":
        document = PlanDocument(
            query=args.target,
            source=world.source,
            inventory_taken_at=format_time(world.inventory.taken_at),
            events=len(world.changes),
            cloudtrail=world.events.to_json(),
            read_only=True,
            plans=[plan_json(p) for p in plans],
            guardrail=None if guardrail is None else guardrail_json(guardrail),
        )
        print(json.dumps(msgspec.to_builtins(document), indent=2))
    else:
        # values from AWS and CloudTrail shown, never obeyed by the terminal (exporter/textsafe.py)
        print(printable_lines(world.events.summary()))
        shown = [printable_fields(p) for p in plans]
        print(printable_lines("\n".join(plan_text(p) for p in shown)), end="")
        if guardrail is not None:
            print(printable_lines("\n" + render_guardrail(printable_fields(guardrail), shown)), end="")
    return 0
