"""The key order of the explain and plan JSON objects, pinned: tools and people diff these
documents, and msgspec encodes a Struct's fields in declaration order. The plain-data form the
commands print (msgspec.to_builtins) and msgspec's own JSON encoding of the declared shape read the same."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from exporter.engine.explain import current_state, explain_target_group, state_at
from exporter.engine.plan import plan_attribute_change
from exporter.reports.explain import explanation_json
from exporter.reports.plan import plan_json
from tests.engine_world import (
    CONTROLLER,
    NODE_PORT,
    OPERATOR,
    T0,
    TG_ARN,
    authorize,
    incident_inventory,
    revoke,
    seconds,
    tcp,
)

RULE_FIELDS = ["protocol", "from_port", "to_port", "source", "source_kind", "description"]
EDIT_KEYS = ["security_group", "rule_id", *RULE_FIELDS, "purpose"]
#: the `cloudtrail` object of the explain and plan documents (checked in test_explain, test_plan)
CLOUDTRAIL_KEYS = [
    "source",
    "records",
    "changes",
    "rejected",
    "complete",
    "start",
    "end",
    "requests",
    "errors",
]


def roundtrip(data: Any) -> Any:
    """What a tool reads: the JSON text parsed again (key order kept)."""
    return json.loads(json.dumps(data))


def same_document(record: dict[str, Any], shape: msgspec.Struct) -> None:
    """The printed plain data and msgspec's JSON of the shape: equal, keys in the same order."""
    encoded = json.loads(msgspec.json.encode(shape))
    assert json.dumps(encoded) == json.dumps(record)


def test_plan_json_keys_in_order() -> None:
    inventory = incident_inventory()
    changes = [  # a break-before-make replacement by the controller: evidence and a risk with seconds
        revoke("r1", T0 - seconds(600), tcp(30000, "10.9.0.0/16"), group="sg-other", actor=CONTROLLER),
        authorize("a1", T0 - seconds(540), tcp(30000, "192.168.0.0/16"), group="sg-other", actor=CONTROLLER),
    ]
    planned = plan_attribute_change(
        inventory, TG_ARN, current_state(inventory, changes), changes, preserve=False
    )
    plan = roundtrip(msgspec.to_builtins(plan_json(planned)))
    same_document(plan, plan_json(planned))

    assert list(plan) == [
        "target_group_arn",
        "target_group",
        "service",
        "load_balancer",
        "scheme",
        "mode",
        "region",
        "attribute",
        "current",
        "desired",
        "changes_attribute",
        "required_after",
        "edit_groups",
        "authorize",
        "revoke",
        "steps",
        "risks",
        "controller_evidence",
        "safe_in_place",
        "recommendation",
        "notes",
    ]
    assert list(plan["required_after"]) == ["traffic", "health_check"]
    assert [list(g) for g in plan["edit_groups"]] == [["security_group", "why"]]
    assert plan["authorize"] and plan["revoke"]
    assert all(list(e) == EDIT_KEYS for e in plan["authorize"] + plan["revoke"])
    assert plan["steps"] and all(list(s) == ["action", "command", "comment"] for s in plan["steps"])
    assert plan["risks"] and all(
        list(r) == ["kind", "level", "flows", "max_seconds", "detail"] for r in plan["risks"]
    )
    assert any(r["max_seconds"] is not None for r in plan["risks"])
    assert list(plan["controller_evidence"]) == [
        "versions",
        "make_before_break_seen",
        "break_before_make_seen",
        "unknown_order_seen",
        "longest_exposure_seconds",
        "longest_attribute_lag_seconds",
    ]
    assert plan["notes"] and all(isinstance(n, str) for n in plan["notes"])


def test_explanation_json_keys_in_order() -> None:
    inventory = incident_inventory(taken_at=T0 + seconds(3600))
    changes = [
        authorize("e-auth", T0, tcp(NODE_PORT, "0.0.0.0/0"), actor=OPERATOR),
        revoke("e-revoke", T0 + seconds(60), tcp(NODE_PORT, "0.0.0.0/0")),
    ]
    explained = [
        explain_target_group(inventory, TG_ARN, state_at(inventory, changes, at), at=at)
        for at in (T0 + seconds(30), T0 + seconds(90))  # admitted by 0.0.0.0/0, then not
    ]
    for explanation in explained:
        same_document(
            roundtrip(msgspec.to_builtins(explanation_json(explanation))), explanation_json(explanation)
        )
    admitted, refused = (roundtrip(msgspec.to_builtins(explanation_json(e))) for e in explained)

    assert list(admitted) == [
        "target_group_arn",
        "target_group",
        "service",
        "load_balancer_arn",
        "load_balancer",
        "scheme",
        "mode",
        "target_type",
        "protocol",
        "preserve_client_ip",
        "preserve_client_ip_from",
        "intent",
        "intent_sources",
        "at",
        "admitted",
        "flows",
        "gaps",
    ]
    flows = admitted["flows"] + refused["flows"]
    assert all(
        list(f)
        == ["flow", "required", "targets_total", "targets_admitted", "targets_not_evaluable", "targets"]
        for f in flows
    )
    targets = [t for f in flows for t in f["targets"]]
    assert {t["admitted"] for t in targets} == {True, False}
    assert all(
        list(t)
        == [
            "not_evaluable",
            "target",
            "port",
            "eni",
            "security_groups",
            "admitted",
            "reason",
            "flow",
            "uncovered",
            "also_not_admitted",
            "rules",
            "port_rules",
        ]
        for t in targets
    )
    refs = [r for t in targets for r in t["rules"] + t["port_rules"]]
    assert refs and all(
        list(r) == ["security_group", "rule_id", "rule", *RULE_FIELDS, "last_change"] for r in refs
    )
    events = [r["last_change"] for r in refs if r["last_change"] is not None]
    assert events and all(
        list(e) == ["event", "event_id", "time", "actor", "actor_arn", "user_agent", "controller"]
        for e in events
    )
