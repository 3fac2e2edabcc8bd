"""CloudTrail records in every wrapper to typed changes; the file and folder loader."""

from __future__ import annotations

import copy
import gzip
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from exporter.engine.changes import (
    REJECTION_REASONS,
    AttributeChange,
    GroupDeletion,
    Rejection,
    RuleChange,
    RuleModification,
)
from exporter.engine.records import MAX_DETAIL_CHARS, WATCHED_EVENT_NAMES, ParseResult, parse_record
from exporter.engine.rules import Rule, Source
from exporter.sources.envelopes import iter_raw_records, parse_payload
from exporter.sources.trailfiles import load_file, load_paths
from tests.cloudtrail_samples import (
    ACCOUNT,
    CONTROLLER_AGENT,
    CONTROLLER_ROLE,
    LBC_DESCRIPTION,
    NODE_GROUP,
    OPERATOR,
    REGION,
    TG_ARN,
    authorize_record,
    cli_shape,
    delete_group_record,
    eventbridge_envelope,
    json_lines,
    lookup_event,
    lookup_result,
    modify_rules_record,
    modify_tg_attributes_record,
    permission,
    revoke_record,
    rule_update,
    sqs_message,
    trail_file,
    trail_file_bytes,
    unwatched_record,
)

NODE_PORT = 31080


def tcp_rule(cidr: str, rule_id: str | None = None, port: int = NODE_PORT) -> Rule:
    return Rule("tcp", port, port, Source.cidr(cidr), rule_id, LBC_DESCRIPTION)


def parsed(record: dict[str, Any]) -> Any:
    result = parse_record(record)
    assert not isinstance(result, Rejection), result
    assert result is not None
    return result


def rejected(record: Any) -> Rejection:
    result = parse_record(record)
    assert isinstance(result, Rejection), result
    assert result.reason in REJECTION_REASONS
    assert len(result.detail) <= MAX_DETAIL_CHARS and "\n" not in result.detail
    return result


# --- Authorize / Revoke ----------------------------------------------------------------------


def test_authorize_yields_one_rule_per_source_with_meta_and_actor() -> None:
    record = authorize_record(
        "ev-auth-1",
        "2026-11-20T12:00:05Z",
        permissions=[
            permission(cidrs=["0.0.0.0/0", "10.0.1.0/24"], cidrs6=["::/0"], groups=["sg-0lbc"]),
            permission(53, protocol="udp", prefix_lists=["pl-0abc"], description=None),
        ],
    )
    change = parsed(record)
    assert isinstance(change, RuleChange)
    assert change.action == "authorize" and change.group_id == NODE_GROUP and change.rule_ids == ()
    assert sorted(change.rules) == sorted(
        [
            Rule("tcp", NODE_PORT, NODE_PORT, Source("sg", "sg-0lbc"), None, LBC_DESCRIPTION),
            tcp_rule("0.0.0.0/0"),
            tcp_rule("10.0.1.0/24"),
            Rule("tcp", NODE_PORT, NODE_PORT, Source("cidr6", "::/0"), None, LBC_DESCRIPTION),
            Rule("udp", 53, 53, Source("prefix_list", "pl-0abc")),
        ]
    )
    meta = change.meta
    assert meta.event_id == "ev-auth-1"
    assert meta.event_time == datetime(2026, 11, 20, 12, 0, 5, tzinfo=UTC)
    assert meta.event_name == "AuthorizeSecurityGroupIngress"
    assert meta.event_source == "ec2.amazonaws.com"
    assert (meta.account_id, meta.region, meta.error_code) == (ACCOUNT, REGION, None)
    assert meta.actor.issuer == CONTROLLER_ROLE
    assert meta.actor.identity_type == "AssumedRole"
    assert meta.actor.principal_arn is not None and CONTROLLER_ROLE in meta.actor.principal_arn
    assert meta.actor.user_agent == CONTROLLER_AGENT and meta.actor.is_controller
    assert meta.actor.source_ip == "10.0.1.17"


def test_authorize_response_ids_attach_to_matching_rules_and_egress_is_dropped() -> None:
    perms = [permission(cidrs=["0.0.0.0/0", "10.0.0.0/16"])]
    record = authorize_record("ev-ids", permissions=perms, rule_ids=["sgr-0world", "sgr-0vpc"])
    # An egress entry with the first rule's key must not lend it its id.
    egress = dict(record["responseElements"]["securityGroupRuleSet"]["items"][0])
    egress.update(securityGroupRuleId="sgr-0egress", isEgress=True)
    record["responseElements"]["securityGroupRuleSet"]["items"].append(egress)
    change = parsed(record)
    assert change.rules == (tcp_rule("0.0.0.0/0", "sgr-0world"), tcp_rule("10.0.0.0/16", "sgr-0vpc"))


def test_response_entry_of_another_group_or_key_gives_no_id() -> None:
    record = authorize_record("ev-other", permissions=[permission(cidrs=["0.0.0.0/0"])], rule_ids=["sgr-1"])
    entry = record["responseElements"]["securityGroupRuleSet"]["items"][0]
    entry["groupId"] = "sg-0somethingelse"
    assert parsed(record).rules == (tcp_rule("0.0.0.0/0"),)
    entry["groupId"] = NODE_GROUP
    entry["fromPort"] = entry["toPort"] = 443
    assert parsed(record).rules == (tcp_rule("0.0.0.0/0"),)


def test_plain_lists_parse_like_items_lists() -> None:
    perms = [permission(cidrs=["0.0.0.0/0"], groups=["sg-0lbc"])]
    items = authorize_record("ev-a", permissions=perms, rule_ids=["sgr-1", "sgr-2"])
    plain = authorize_record("ev-a", permissions=perms, rule_ids=["sgr-1", "sgr-2"], plain_lists=True)
    assert isinstance(plain["requestParameters"]["ipPermissions"], list)
    assert isinstance(plain["requestParameters"]["ipPermissions"][0]["ipv6Ranges"], list)
    assert parsed(plain).rules == parsed(items).rules
    assert {r.rule_id for r in parsed(plain).rules} == {"sgr-1", "sgr-2"}


def test_all_protocols_means_all_ports_and_numbers_become_names() -> None:
    perms = [
        permission(None, protocol="-1", cidrs=["10.0.0.0/8"]),
        permission(443, protocol="6", cidrs=["10.0.0.0/8"]),
        permission(8, 0, protocol="icmp", cidrs=["10.0.0.0/8"]),
        permission(None, protocol="50", cidrs=["10.0.0.0/8"]),
    ]
    rules = parsed(authorize_record(permissions=perms)).rules
    assert [(r.protocol, r.from_port, r.to_port) for r in rules] == [
        ("-1", -1, -1),
        ("tcp", 443, 443),
        ("icmp", 8, 0),
        ("50", -1, -1),
    ]


def test_ports_given_as_strings_are_read() -> None:
    perm = permission(cidrs=["10.0.0.0/8"])
    perm["fromPort"], perm["toPort"] = "30000", "32767"
    (rule,) = parsed(authorize_record(permissions=[perm])).rules
    assert (rule.from_port, rule.to_port) == (30000, 32767)


@pytest.mark.parametrize(
    ("field", "value"),
    [("fromPort", None), ("toPort", None), ("fromPort", "eighty"), ("toPort", 70000), ("fromPort", 40000)],
)
def test_bad_tcp_ports_reject_bad_rule(field: str, value: Any) -> None:
    perm = permission(cidrs=["10.0.0.0/8"])
    if value is None:
        del perm[field]
    else:
        perm[field] = value
    assert rejected(authorize_record("ev-bad", permissions=[perm])).reason == "bad_rule"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: p.update(ipProtocol="gre-ish"),
        lambda p: p.pop("ipProtocol"),
        lambda p: p.update(ipRanges={"items": [{"cidrIp": "10.0.0.300/8"}]}),
        lambda p: p.update(groups={"items": [{"groupName": "default"}]}),
    ],
)
def test_permission_that_cannot_be_understood_is_bad_rule(mutate: Any) -> None:
    perm = permission(cidrs=["10.0.0.0/8"])
    mutate(perm)
    rejection = rejected(authorize_record("ev-perm", permissions=[perm]))
    assert (rejection.reason, rejection.event_id) == ("bad_rule", "ev-perm")


def test_group_named_by_name_is_missing_field() -> None:
    record = authorize_record("ev-name", group_id=None)
    record["requestParameters"]["groupName"] = "default"
    rejection = rejected(record)
    assert rejection.reason == "missing_field" and "groupName" in rejection.detail


def test_legacy_top_level_permission_is_read() -> None:
    record = authorize_record("ev-legacy")
    record["requestParameters"] = {
        "groupId": NODE_GROUP,
        "ipProtocol": "tcp",
        "fromPort": NODE_PORT,
        "toPort": NODE_PORT,
        "cidrIp": "192.0.2.0/24",
    }
    (rule,) = parsed(record).rules
    assert rule == Rule("tcp", NODE_PORT, NODE_PORT, Source.cidr("192.0.2.0/24"))


# The CLI's --protocol/--port/--cidr form: top-level fields beside an empty "ipPermissions": {}.


@pytest.mark.parametrize("make", [authorize_record, revoke_record])
def test_cli_shape_is_read_beside_an_empty_ip_permissions(make: Any) -> None:
    record = cli_shape(make("ev-cli", permissions=[permission(cidrs=["203.0.113.0/24"], description=None)]))
    assert record["requestParameters"]["ipPermissions"] == {}
    assert record["requestParameters"]["cidrIp"] == "203.0.113.0/24"
    change = parsed(record)
    assert (change.group_id, change.rule_ids) == (NODE_GROUP, ())
    assert change.rules == (Rule("tcp", NODE_PORT, NODE_PORT, Source.cidr("203.0.113.0/24")),)
    assert change.meta.actor.issuer == CONTROLLER_ROLE


def test_cli_shape_ipv6_source_and_all_protocols() -> None:
    record = cli_shape(
        revoke_record("ev-cli6", permissions=[permission(None, protocol="-1", cidrs6=["::/0"])])
    )
    (rule,) = parsed(record).rules
    assert rule == Rule("-1", -1, -1, Source.cidr("::/0"))


def test_cli_shape_authorize_of_a_group_by_name_takes_the_response_rules() -> None:
    perm = permission(0, 65535, groups=["sg-0peer"], description=None)
    record = cli_shape(
        authorize_record("ev-cli-sg", permissions=[perm], rule_ids=["sgr-0peer"]), source_group_name="peer"
    )
    assert "ipProtocol" not in record["requestParameters"]
    (rule,) = parsed(record).rules
    assert rule == Rule("tcp", 0, 65535, Source.group("sg-0peer"), "sgr-0peer")


@pytest.mark.parametrize("make", [authorize_record, revoke_record])
def test_a_rule_change_naming_no_readable_rule_is_rejected_as_no_rule(make: Any) -> None:
    by_name = cli_shape(
        make("ev-none-1", permissions=[permission(groups=["sg-0peer"])]), source_group_name="peer"
    )
    sourceless = make("ev-none-2", permissions=[permission()])
    cli_sourceless = cli_shape(make("ev-none-3", permissions=[permission(cidrs=["10.0.0.0/8"])]))
    del cli_sourceless["requestParameters"]["cidrIp"]
    empty = make("ev-none-4")
    empty["requestParameters"]["ipPermissions"] = {}
    for record in (by_name, sourceless, cli_sourceless, empty):
        rejection = rejected(record)
        assert (rejection.reason, rejection.event_id) == ("no_rule", record["eventID"])
        assert NODE_GROUP in rejection.detail


def test_an_authorize_whose_request_lists_no_source_takes_the_response_rules() -> None:
    record = authorize_record("ev-resp", permissions=[permission(cidrs=["10.0.9.0/24"])], rule_ids=["sgr-09"])
    record["requestParameters"]["ipPermissions"]["items"][0]["ipRanges"] = {}
    assert parsed(record).rules == (tcp_rule("10.0.9.0/24", "sgr-09"),)


def test_modify_rules_listing_no_rule_is_rejected_as_no_rule() -> None:
    record = modify_rules_record("ev-mod-none")
    record["requestParameters"]["ModifySecurityGroupRulesRequest"]["SecurityGroupRule"] = []
    assert rejected(record).reason == "no_rule"


def test_failed_call_still_yields_its_change_with_the_error() -> None:
    record = authorize_record(
        "ev-fail",
        permissions=[permission(cidrs=["0.0.0.0/0"])],
        error_code="RulesPerSecurityGroupLimitExceeded",
        error_message="The maximum number of rules per security group has been reached.",
    )
    change = parsed(record)
    assert isinstance(change, RuleChange)
    assert change.meta.failed and change.meta.error_code == "RulesPerSecurityGroupLimitExceeded"
    assert change.meta.error_message is not None and "maximum number" in change.meta.error_message
    assert change.rules == (tcp_rule("0.0.0.0/0"),)


def test_revoke_with_response_ids_and_unknown_permissions() -> None:
    perms = [permission(cidrs=["10.0.1.0/24", "10.0.2.0/24"])]
    unknown = [permission(cidrs=["10.0.2.0/24"])]
    record = revoke_record("ev-rev", permissions=perms, rule_ids=["sgr-0sub1"], unknown_permissions=unknown)
    change = parsed(record)
    assert change.action == "revoke" and change.rule_ids == ()
    assert change.rules == (tcp_rule("10.0.1.0/24", "sgr-0sub1"),)


def test_revoke_where_every_permission_was_unknown_changes_nothing() -> None:
    perms = [permission(cidrs=["10.0.1.0/24"])]
    change = parsed(revoke_record("ev-none", permissions=perms, unknown_permissions=perms))
    assert change.rules == () and change.rule_ids == ()


@pytest.mark.parametrize("shape", ["items", "strings", "dicts"])
def test_revoke_by_rule_ids_in_every_shape(shape: Any) -> None:
    record = revoke_record("ev-byid", rule_ids_request=["sgr-0aaa", "sgr-0bbb"], rule_ids_shape=shape)
    assert "ipPermissions" not in record["requestParameters"]
    change = parsed(record)
    assert change.action == "revoke" and change.rules == ()
    assert change.rule_ids == ("sgr-0aaa", "sgr-0bbb")


def test_revoke_by_rule_id_keeps_definitions_the_response_gives() -> None:
    record = revoke_record(
        "ev-byid-def",
        rule_ids_request=["sgr-0aaa"],
        rule_ids=["sgr-0aaa"],
        revoked_definitions=[permission(cidrs=["0.0.0.0/0"])],
    )
    change = parsed(record)
    assert change.rule_ids == ("sgr-0aaa",)
    assert change.rules == (tcp_rule("0.0.0.0/0", "sgr-0aaa"),)


def test_revoke_rule_ids_of_wrong_type_reject() -> None:
    record = revoke_record("ev-ids-bad", rule_ids_request=["sgr-1"])
    record["requestParameters"]["securityGroupRuleIds"] = {"items": [{"securityGroupRuleId": 7}]}
    assert rejected(record).reason == "wrong_type"


def test_revoke_without_permissions_or_ids_is_missing_field() -> None:
    record = revoke_record("ev-empty")
    del record["requestParameters"]["ipPermissions"]
    assert rejected(record).reason == "missing_field"


# --- ModifySecurityGroupRules / DeleteSecurityGroup / ModifyTargetGroupAttributes ------------


def test_modify_rules_single_object_with_string_ports() -> None:
    record = modify_rules_record("ev-mod", modifications=[rule_update("sgr-0abc", "30000", "30010")])
    assert isinstance(
        record["requestParameters"]["ModifySecurityGroupRulesRequest"]["SecurityGroupRule"], dict
    )
    change = parsed(record)
    assert isinstance(change, RuleModification) and change.group_id == NODE_GROUP
    assert change.modifications == (
        ("sgr-0abc", Rule("tcp", 30000, 30010, Source.cidr("0.0.0.0/0"), "sgr-0abc", LBC_DESCRIPTION)),
    )
    assert change.meta.actor.issuer == "platform-admin" and not change.meta.actor.is_controller


def test_modify_rules_list_with_every_source_kind() -> None:
    updates = [
        rule_update("sgr-1", cidr="10.1.0.0/16"),
        rule_update("sgr-2", cidr6="2001:db8::/32"),
        rule_update("sgr-3", group="sg-0lbc"),
        rule_update("sgr-4", 443, prefix_list="pl-0abc", description=None),
        rule_update("sgr-5", protocol="-1", from_port=-1),
    ]
    change = parsed(modify_rules_record("ev-mods", modifications=updates))
    sources = [(rule_id, rule.source, rule.rule_id) for rule_id, rule in change.modifications]
    assert sources == [
        ("sgr-1", Source.cidr("10.1.0.0/16"), "sgr-1"),
        ("sgr-2", Source.cidr("2001:db8::/32"), "sgr-2"),
        ("sgr-3", Source("sg", "sg-0lbc"), "sgr-3"),
        ("sgr-4", Source("prefix_list", "pl-0abc"), "sgr-4"),
        ("sgr-5", Source.cidr("0.0.0.0/0"), "sgr-5"),
    ]
    assert change.modifications[4][1].protocol == "-1"


def test_modify_rules_entry_without_a_rule_id_rejects() -> None:
    update = rule_update("sgr-1")
    del update["SecurityGroupRuleId"]
    assert rejected(modify_rules_record("ev-noid", modifications=[update])).reason == "missing_field"


def test_delete_group_by_id_and_by_name_only() -> None:
    change = parsed(delete_group_record("ev-del", group_id="sg-0gone"))
    assert isinstance(change, GroupDeletion) and change.group_id == "sg-0gone"
    rejection = rejected(delete_group_record("ev-del-name", group_id=None, group_name="legacy"))
    assert rejection.reason == "missing_field" and rejection.event_id == "ev-del-name"


def test_target_group_attributes_keep_only_watched_ones_lower_cased() -> None:
    record = modify_tg_attributes_record(
        "ev-tg",
        attributes={
            "preserve_client_ip.enabled": "TRUE",
            "deregistration_delay.timeout_seconds": "30",
            "proxy_protocol_v2.enabled": "false",
        },
        actor=OPERATOR,
    )
    change = parsed(record)
    assert isinstance(change, AttributeChange) and change.target_group_arn == TG_ARN
    assert change.attributes == (
        ("preserve_client_ip.enabled", "true"),
        ("proxy_protocol_v2.enabled", "false"),
    )
    assert change.meta.event_source == "elasticloadbalancing.amazonaws.com"


def test_target_group_attribute_value_that_is_not_boolean_rejects() -> None:
    record = modify_tg_attributes_record("ev-tg-bad", attributes={"preserve_client_ip.enabled": "maybe"})
    assert rejected(record).reason == "wrong_type"


def test_target_group_attributes_with_none_watched_is_an_empty_change() -> None:
    record = modify_tg_attributes_record("ev-tg-other", attributes={"stickiness.enabled": "true"})
    assert parsed(record).attributes == ()


# --- record-level fields ---------------------------------------------------------------------


def test_unwatched_event_is_ignored_not_rejected() -> None:
    assert parse_record(unwatched_record("ev-desc")) is None


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda r: r.pop("eventID"), "missing_field"),
        (lambda r: r.update(eventID=42), "wrong_type"),
        (lambda r: r.pop("eventTime"), "missing_field"),
        (lambda r: r.update(eventTime="yesterday at noon"), "bad_time"),
        (lambda r: r.update(eventTime=[2026]), "bad_time"),
        (lambda r: r.pop("eventName"), "missing_field"),
        (lambda r: r.update(eventName=["AuthorizeSecurityGroupIngress"]), "wrong_type"),
        (lambda r: r.update(requestParameters=None), "missing_field"),
        (lambda r: r.update(requestParameters="groupId=sg-1"), "wrong_type"),
    ],
)
def test_record_field_problems_reject_with_their_reason(mutate: Any, reason: str) -> None:
    record = authorize_record("ev-field")
    mutate(record)
    assert rejected(record).reason == reason


def test_optional_attribution_of_wrong_type_is_dropped_not_fatal() -> None:
    record = authorize_record("ev-attr")
    record["userAgent"] = {"not": "a string"}
    record["userIdentity"] = ["odd"]
    change = parsed(record)
    assert change.meta.actor.user_agent is None and change.meta.actor.issuer is None


def test_not_a_dict_is_not_a_record() -> None:
    assert rejected(["AuthorizeSecurityGroupIngress"]).reason == "not_a_record"


def test_record_over_the_size_limit_is_too_large() -> None:
    record = authorize_record("ev-big")
    record["requestParameters"]["ipPermissions"]["items"][0]["ipRanges"]["items"][0]["description"] = (
        "x" * 300_000
    )
    rejection = rejected(record)
    assert (rejection.reason, rejection.event_id) == ("too_large", "ev-big")
    small = parse_record(authorize_record("ev-small"), max_record_bytes=100)
    assert isinstance(small, Rejection) and small.reason == "too_large"
    assert isinstance(parse_record(authorize_record("ev-small")), RuleChange)


# --- wrappers --------------------------------------------------------------------------------


def _sample_records() -> list[dict[str, Any]]:
    return [
        authorize_record("ev-1", permissions=[permission(cidrs=["10.0.1.0/24"])]),
        unwatched_record("ev-2"),
        revoke_record("ev-3", permissions=[permission(cidrs=["0.0.0.0/0"])]),
        modify_tg_attributes_record("ev-4"),
    ]


WATCHED_IDS = ["ev-1", "ev-3", "ev-4"]


def _ids(result: ParseResult) -> list[str]:
    return [change.meta.event_id for change in result.changes]


@pytest.mark.parametrize(
    "wrap",
    [
        pytest.param(lambda rs: rs, id="list-of-records"),
        pytest.param(trail_file, id="trail-file-dict"),
        pytest.param(lambda rs: trail_file_bytes(rs), id="trail-file-gzip"),
        pytest.param(lambda rs: trail_file_bytes(rs, compress=False), id="trail-file-plain-bytes"),
        pytest.param(lambda rs: json.dumps(trail_file(rs)), id="trail-file-str"),
        pytest.param(lookup_result, id="lookup-result"),
        pytest.param(lambda rs: json.dumps(lookup_result(rs)).encode(), id="lookup-result-bytes"),
        pytest.param(lambda rs: [lookup_event(r) for r in rs], id="lookup-events-list"),
        pytest.param(lambda rs: [eventbridge_envelope(r) for r in rs], id="eventbridge-list"),
        pytest.param(lambda rs: {"Messages": [sqs_message(r) for r in rs]}, id="sqs-receive-result"),
        pytest.param(lambda rs: [sqs_message(r)["Body"] for r in rs], id="sqs-bodies"),
        pytest.param(json_lines, id="json-lines-bytes"),
        pytest.param(lambda rs: json_lines(rs).decode(), id="json-lines-str"),
        pytest.param(lambda rs: json_lines(eventbridge_envelope(r) for r in rs), id="json-lines-envelopes"),
        pytest.param(lambda rs: gzip.compress(json_lines(rs)), id="json-lines-gzip"),
        pytest.param(lambda rs: [trail_file(rs[:2]), lookup_result(rs[2:3]), rs[3]], id="mixed-list"),
    ],
)
def test_every_wrapper_yields_the_same_changes(wrap: Any) -> None:
    result = parse_payload(wrap(_sample_records()))
    assert _ids(result) == WATCHED_IDS
    assert result.rejections == [] and result.ignored == 1


@pytest.mark.parametrize(
    "single",
    [
        pytest.param(lambda r: r, id="bare-record"),
        pytest.param(lookup_event, id="lookup-event"),
        pytest.param(eventbridge_envelope, id="eventbridge"),
        pytest.param(lambda r: json.dumps(eventbridge_envelope(r)), id="eventbridge-str"),
        pytest.param(sqs_message, id="sqs-message"),
        pytest.param(lambda r: sqs_message(r)["Body"].encode(), id="sqs-body-bytes"),
        pytest.param(
            lambda r: {"Type": "Notification", "Message": json.dumps(eventbridge_envelope(r))}, id="sns"
        ),
        pytest.param(lambda r: {**lookup_event(r), "CloudTrailEvent": r}, id="lookup-event-dict-body"),
    ],
)
def test_single_wrappers(single: Any) -> None:
    record = delete_group_record("ev-single")
    result = parse_payload(single(record))
    assert _ids(result) == ["ev-single"] and result.rejections == []


def test_iter_raw_records_yields_every_record_unless_watched_only() -> None:
    records = _sample_records()
    every = list(iter_raw_records(trail_file_bytes(records)))
    assert [r["eventID"] for r in every if isinstance(r, dict)] == ["ev-1", "ev-2", "ev-3", "ev-4"]
    watched = list(iter_raw_records(trail_file_bytes(records), watched_only=True))
    assert [r["eventID"] for r in watched if isinstance(r, dict)] == WATCHED_IDS
    assert {r["eventName"] for r in watched if isinstance(r, dict)} <= WATCHED_EVENT_NAMES


def test_pre_filter_skips_lines_without_a_watched_name_unparsed() -> None:
    lines = b"\n".join(
        [
            json.dumps(authorize_record("ev-ok")).encode(),
            b"garbage that mentions only DescribeInstances",
            b'{"eventName": "RevokeSecurityGroupIngress", "eventID": "ev-cut", "eventTi',
        ]
    )
    result = parse_payload(lines)
    assert _ids(result) == ["ev-ok"] and result.ignored == 1
    assert [r.reason for r in result.rejections] == ["not_json"]
    assert result.rejections[0].detail.startswith("line 3:")
    # Without the pre-filter the garbage line is seen, and rejected, too.
    raw = list(iter_raw_records(lines))
    assert [r.reason for r in raw if isinstance(r, Rejection)] == ["not_json", "not_json"]


def test_lookup_event_of_an_unwatched_name_is_ignored_unparsed() -> None:
    event = lookup_event(unwatched_record("ev-x"))
    event["CloudTrailEvent"] = "{not json"
    result = parse_payload({"Events": [event]})
    assert result.ignored == 1 and result.rejections == [] and result.changes == []


def test_eventbridge_event_that_is_not_a_cloudtrail_call_is_rejected() -> None:
    envelope = {"detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2", "detail": {}}
    (rejection,) = parse_payload(envelope).rejections
    assert rejection.reason == "not_a_record"


def test_unknown_object_shape_is_not_a_record() -> None:
    (rejection,) = parse_payload({"hello": "world"}).rejections
    assert rejection.reason == "not_a_record" and "hello" in rejection.detail


def test_records_that_is_not_a_list_is_wrong_type() -> None:
    (rejection,) = parse_payload({"Records": {"eventName": "DeleteSecurityGroup"}}).rejections
    assert rejection.reason == "wrong_type"


def test_truncated_json_is_not_json_once() -> None:
    text = json.dumps(trail_file(_sample_records()), indent=2)
    result = parse_payload(text[: len(text) // 2])
    assert [r.reason for r in result.rejections] == ["not_json"] and result.changes == []


def test_non_utf8_bytes_are_not_json() -> None:
    (rejection,) = parse_payload(b'{"Records": ["\xff\xfe"]}').rejections
    assert rejection.reason == "not_json"


def test_empty_payload_yields_nothing() -> None:
    assert parse_payload(b"  \n ") == ParseResult()


def test_truncated_gzip_is_not_gzip() -> None:
    data = trail_file_bytes(_sample_records())
    (rejection,) = parse_payload(data[: len(data) - 10]).rejections
    assert rejection.reason == "not_gzip"


def test_gzip_bomb_is_too_large_without_inflating_everything() -> None:
    bomb = gzip.compress(b"[" + b" " * (8 * 1024 * 1024) + b"]")
    (rejection,) = parse_payload(bomb, max_payload_bytes=1024 * 1024).rejections
    assert rejection.reason == "too_large"
    assert parse_payload(bomb).rejections == []  # under the default limit it is a valid empty list


def test_concatenated_gzip_members_are_read() -> None:
    records = _sample_records()
    data = gzip.compress(json_lines(records[:2])) + gzip.compress(json_lines(records[2:]))
    assert _ids(parse_payload(data)) == WATCHED_IDS


def test_rejection_details_are_short_single_lines() -> None:
    record = authorize_record("ev-long")
    record["eventTime"] = "\n".join(["not a time"] * 1000)
    rejection = rejected(record)
    assert rejection.reason == "bad_time" and len(rejection.detail) <= MAX_DETAIL_CHARS


def test_parse_record_does_not_modify_its_input() -> None:
    record = revoke_record(
        "ev-same", rule_ids=["sgr-1"], unknown_permissions=[permission(cidrs=["1.1.1.1/32"])]
    )
    before = copy.deepcopy(record)
    parse_record(record)
    assert record == before


# --- trailfiles: files and folders -----------------------------------------------------------


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_load_paths_reads_folders_recursively_in_every_format(tmp_path: Path) -> None:
    r1 = authorize_record("ev-f1", "2026-11-20T12:00:01Z")
    r2 = revoke_record("ev-f2", "2026-11-20T12:00:02Z")
    r3 = modify_tg_attributes_record("ev-f3", "2026-11-20T12:00:03Z")
    r4 = delete_group_record("ev-f4", "2026-11-20T12:00:04Z")
    base = tmp_path / "AWSLogs" / ACCOUNT / "CloudTrail" / REGION / "2026" / "11" / "20"
    _write(base / "a_CloudTrail_20261120T1200Z.json.gz", trail_file_bytes([r1, unwatched_record("ev-u")]))
    _write(base / "nested" / "b.json", trail_file_bytes([r2], compress=False))
    _write(tmp_path / "c.jsonl", json_lines([r3]))
    _write(tmp_path / "d.txt", json.dumps(eventbridge_envelope(r4)).encode())
    _write(tmp_path / ".hidden.json", b"not json at all")
    result = load_paths([tmp_path])
    assert sorted(_ids(result)) == ["ev-f1", "ev-f2", "ev-f3", "ev-f4"]
    assert result.rejections == [] and result.ignored == 1


def test_load_paths_turns_bad_files_into_rejections(tmp_path: Path) -> None:
    good = _write(tmp_path / "good.json.gz", trail_file_bytes([authorize_record("ev-good")]))
    fake = _write(tmp_path / "fake.json.gz", b'{"Records": []}')
    broken = _write(tmp_path / "broken.json", b'{"Records": [')
    missing = tmp_path / "missing.json"
    result = load_paths([good, fake, broken, missing])
    assert _ids(result) == ["ev-good"]
    reasons = {r.detail.split(":")[0]: r.reason for r in result.rejections}
    assert reasons == {"fake.json.gz": "not_gzip", "broken.json": "not_json", "missing.json": "unreadable"}
    assert all(r.reason in REJECTION_REASONS for r in result.rejections)


def test_load_file_refuses_a_file_over_the_payload_limit(tmp_path: Path) -> None:
    path = _write(tmp_path / "big.json", json.dumps(trail_file(_sample_records())).encode())
    (rejection,) = load_file(path, max_payload_bytes=100).rejections
    assert rejection.reason == "too_large"
    assert _ids(load_file(path)) == WATCHED_IDS


def test_special_files_and_dangling_links_are_unreadable(tmp_path: Path) -> None:
    folder = tmp_path / "trail"
    folder.mkdir()
    os.mkfifo(folder / "pipe.json")
    (folder / "dangling.json").symlink_to(tmp_path / "nowhere.json")
    result = load_paths([folder])
    assert sorted(r.reason for r in result.rejections) == ["unreadable", "unreadable"]
    assert result.changes == []
