"""Records of the inventory's changeable parts: parsed in every wrapper, bad shapes rejected."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from exporter.engine.changes import (
    HealthCheckChange,
    InterfaceGroupsChange,
    LoadBalancerGroupsChange,
    LoadBalancerSubnetsChange,
    Rejection,
    TargetsChange,
)
from exporter.engine.records import INVENTORY_EVENT_NAMES, WATCHED_EVENT_NAMES, parse_record
from exporter.sources.envelopes import parse_payload
from tests.cloudtrail_samples import (
    TG_ARN,
    eventbridge_envelope,
    json_lines,
    lookup_result,
    sqs_message,
    trail_file_bytes,
)
from tests.inventory_samples import (
    LB_ARN,
    modify_eni_groups_record,
    modify_target_group_record,
    set_security_groups_record,
    set_subnets_record,
    targets_record,
)

EXPECTED: list[tuple[dict[str, Any], object]] = [
    (modify_target_group_record("e1", port="32000"), ("hc", TG_ARN, "32000", None)),
    (modify_target_group_record("e2", port=31999, protocol="http"), ("hc", TG_ARN, "31999", "HTTP")),
    (modify_target_group_record("e3", port="traffic-port"), ("hc", TG_ARN, "traffic-port", None)),
    (
        modify_eni_groups_record("e4", eni_id="eni-9", groups=("sg-a", "sg-b")),
        ("eni", "eni-9", ("sg-a", "sg-b")),
    ),
    (modify_eni_groups_record("e5", groups=("sg-a",), plain=True), ("eni", "eni-1", ("sg-a",))),
    (set_security_groups_record("e6", groups=("sg-x", "sg-y")), ("lbg", LB_ARN, ("sg-x", "sg-y"))),
    (set_security_groups_record("e7", groups=()), ("lbg", LB_ARN, ())),
    (set_subnets_record("e8", subnets=("subnet-a",)), ("lbs", LB_ARN, ("subnet-a",))),
    (
        set_subnets_record("e9", subnets=("subnet-a", "subnet-b"), mappings=True),
        ("lbs", LB_ARN, ("subnet-a", "subnet-b")),
    ),
    (
        targets_record("register", "e10", targets=[("i-3", None), ("10.0.0.5", 8080)]),
        ("tg", "register", (("i-3", None), ("10.0.0.5", 8080))),
    ),
    (targets_record("deregister", "e11", targets=[("i-3", 31080)]), ("tg", "deregister", (("i-3", 31080),))),
]


def fields(change: object) -> object:
    if isinstance(change, HealthCheckChange):
        return ("hc", change.target_group_arn, change.port, change.protocol)
    if isinstance(change, InterfaceGroupsChange):
        return ("eni", change.eni_id, change.group_ids)
    if isinstance(change, LoadBalancerGroupsChange):
        return ("lbg", change.load_balancer_arn, change.group_ids)
    if isinstance(change, LoadBalancerSubnetsChange):
        return ("lbs", change.load_balancer_arn, change.subnet_ids)
    if isinstance(change, TargetsChange):
        assert change.target_group_arn == TG_ARN
        return ("tg", change.action, change.targets)
    raise AssertionError(change)


def test_every_inventory_event_name_is_watched() -> None:
    assert INVENTORY_EVENT_NAMES <= WATCHED_EVENT_NAMES
    assert {r["eventName"] for r, _ in EXPECTED} == INVENTORY_EVENT_NAMES


@pytest.mark.parametrize(("record", "expected"), EXPECTED, ids=[r["eventID"] for r, _ in EXPECTED])
def test_each_record_parses_to_what_it_says(record: dict[str, Any], expected: object) -> None:
    change = parse_record(record)
    assert not isinstance(change, Rejection) and change is not None
    assert fields(change) == expected
    assert change.meta.event_id == record["eventID"] and change.meta.event_name == record["eventName"]
    assert change.meta.event_source == record["eventSource"] and not change.meta.failed


@pytest.mark.parametrize(
    "wrap",
    [
        lambda rs: trail_file_bytes(rs),
        lambda rs: lookup_result(rs),
        lambda rs: [eventbridge_envelope(r) for r in rs],
        lambda rs: {"Messages": [sqs_message(r) for r in rs]},
        lambda rs: json_lines(rs),
    ],
    ids=["s3", "lookup_events", "eventbridge", "sqs", "json_lines"],
)
def test_every_wrapper_carries_them(wrap: Any) -> None:
    result = parse_payload(wrap([r for r, _ in EXPECTED]))
    assert result.rejections == [] and result.ignored == 0
    assert [fields(c) for c in result.changes] == [e for _, e in EXPECTED]


def test_a_failed_call_is_a_change_that_failed() -> None:
    change = parse_record(set_security_groups_record("f1", error_code="InvalidConfigurationRequest"))
    assert isinstance(change, LoadBalancerGroupsChange) and change.meta.failed


def test_a_nested_pascal_case_request_is_read() -> None:
    record = modify_eni_groups_record("p1")
    record["requestParameters"] = {
        "ModifyNetworkInterfaceAttributeRequest": {
            "NetworkInterfaceId": "eni-7",
            "GroupSet": {"items": [{"GroupId": "sg-z"}]},
        }
    }
    change = parse_record(record)
    assert isinstance(change, InterfaceGroupsChange) and (change.eni_id, change.group_ids) == (
        "eni-7",
        ("sg-z",),
    )


def test_calls_that_change_nothing_watched_are_ignored() -> None:
    interval = modify_target_group_record("i1", port=None, extra={"healthCheckIntervalSeconds": 30})
    description = modify_eni_groups_record("i2")
    description["requestParameters"] = {"networkInterfaceId": "eni-1", "description": {"value": "x"}}
    result = parse_payload(trail_file_bytes([interval, description]))
    assert result.changes == [] and result.rejections == [] and result.ignored == 2


def _with(record: dict[str, Any], **params: Any) -> dict[str, Any]:
    record["requestParameters"] = {**record["requestParameters"], **params}
    return record


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("hc_port_text", modify_target_group_record("b1", port="thirty"), "wrong_type"),
    ("hc_port_zero", modify_target_group_record("b2", port=0), "wrong_type"),
    ("hc_protocol", modify_target_group_record("b3", protocol="UDP"), "wrong_type"),
    ("tg_arn_missing", _with(modify_target_group_record("b4"), targetGroupArn=None), "missing_field"),
    ("eni_no_groups", modify_eni_groups_record("b5", groups=()), "missing_field"),
    (
        "eni_group_not_id",
        _with(modify_eni_groups_record("b6"), groupSet={"items": [{"groupId": 7}]}),
        "wrong_type",
    ),
    ("eni_id_missing", _with(modify_eni_groups_record("b7"), networkInterfaceId=None), "missing_field"),
    ("lb_groups_missing", _with(set_security_groups_record("b8"), securityGroups=None), "missing_field"),
    ("lb_groups_not_list", _with(set_security_groups_record("b9"), securityGroups=5), "wrong_type"),
    ("subnets_empty", set_subnets_record("b10", subnets=()), "missing_field"),
    ("targets_missing", _with(targets_record("register", "b11"), targets=None), "missing_field"),
    ("targets_empty", targets_record("register", "b12", targets=()), "missing_field"),
    ("target_port", targets_record("deregister", "b13", targets=[("i-1", 70000)]), "wrong_type"),
    ("target_id", _with(targets_record("register", "b14"), targets=[{"port": 80}]), "missing_field"),
    ("target_entry", _with(targets_record("register", "b15"), targets=["i-1"]), "wrong_type"),
]


@pytest.mark.parametrize(("record", "reason"), [(r, why) for _, r, why in BAD], ids=[n for n, _, _ in BAD])
def test_bad_shapes_are_rejected_with_a_reason(record: dict[str, Any], reason: str) -> None:
    parsed = parse_record(record)
    assert isinstance(parsed, Rejection), parsed
    assert parsed.reason == reason and parsed.event_id == record["eventID"] and "\n" not in parsed.detail


def test_backfill_lists_them_with_their_subject() -> None:
    from exporter.commands.backfill import change_line

    lines = [change_line(c, {TG_ARN, "eni-1"}) for c in parse_payload([r for r, _ in EXPECTED]).changes]
    assert {line["kind"] for line in lines} == {"inventory"}
    assert [line["in_inventory"] for line in lines] == [
        True,
        True,
        True,
        False,
        True,
        False,
        False,
        False,
        False,
        True,
        True,
    ]
    assert lines[0]["port"] == "32000" and lines[3]["group_ids"] == ["sg-a", "sg-b"]
    assert orjson.loads(orjson.dumps(lines[9]))["targets"] == [["i-3", None], ["10.0.0.5", 8080]]
