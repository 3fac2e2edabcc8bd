"""Hostile input: the record parser never raises and only ever rejects with a bounded reason."""

from __future__ import annotations

import copy
import gc
import gzip
import json
import math
import tracemalloc
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.engine.changes import REJECTION_REASONS, GroupDeletion, Rejection
from exporter.engine.records import (
    MAX_DETAIL_CHARS,
    UNEXPECTED_DETAIL_PREFIX,
    WATCHED_EVENT_NAMES,
    ParseResult,
    parse_record,
    show_value,
)
from exporter.sources.envelopes import iter_raw_records, parse_payload
from tests.cloudtrail_samples import (
    authorize_record,
    delete_group_record,
    eventbridge_envelope,
    lookup_result,
    modify_rules_record,
    modify_tg_attributes_record,
    permission,
    revoke_record,
    rule_update,
    trail_file,
    trail_file_bytes,
)

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(sorted(WATCHED_EVENT_NAMES))
    | st.sampled_from(["items", "Records", "tcp", "-1", "10.0.0.0/8", "sgr-1", "2026-11-20T12:00:00Z"])
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "items",
                    "eventName",
                    "eventID",
                    "eventTime",
                    "Records",
                    "Events",
                    "CloudTrailEvent",
                    "detail",
                ]
            )
            | st.text(max_size=12),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)


def valid_records() -> list[dict[str, Any]]:
    perms = [permission(cidrs=["0.0.0.0/0", "10.0.1.0/24"], groups=["sg-0lbc"], cidrs6=["::/0"])]
    return [
        authorize_record("ev-a", permissions=perms, rule_ids=["sgr-1", "sgr-2", "sgr-3", "sgr-4"]),
        authorize_record("ev-p", permissions=perms, plain_lists=True),
        revoke_record("ev-r", permissions=perms, rule_ids=["sgr-1"], unknown_permissions=perms[:1]),
        revoke_record("ev-i", rule_ids_request=["sgr-1", "sgr-2"], rule_ids_shape="dicts"),
        modify_rules_record(
            "ev-m", modifications=[rule_update("sgr-1", "80"), rule_update("sgr-2", group="sg-1")]
        ),
        modify_tg_attributes_record("ev-t", attributes={"preserve_client_ip.enabled": "true"}),
        delete_group_record("ev-d"),
    ]


# Built once: the records carry random request ids, and hypothesis needs stable sizes.
VALID_RECORDS = valid_records()
TRAIL_PLAIN = trail_file_bytes(VALID_RECORDS, compress=False)
TRAIL_GZIP = trail_file_bytes(VALID_RECORDS)


def check_rejection(rejection: Rejection) -> None:
    assert rejection.reason in REJECTION_REASONS
    assert len(rejection.detail) <= MAX_DETAIL_CHARS
    assert "\n" not in rejection.detail and "\r" not in rejection.detail
    assert not rejection.detail.startswith(UNEXPECTED_DETAIL_PREFIX), rejection.detail


def check_result(result: ParseResult) -> None:
    for rejection in result.rejections:
        check_rejection(rejection)
    for change in result.changes:
        assert change.meta.event_id and change.meta.event_name in WATCHED_EVENT_NAMES
    assert result.ignored >= 0


def check_record(value: Any) -> None:
    result = parse_record(value)
    if isinstance(result, Rejection):
        check_rejection(result)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path (keys and indexes) to a node inside a JSON value."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found.extend(paths(child, (*prefix, key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.extend(paths(child, (*prefix, index)))
    return found


DELETE = object()


def mutate(record: dict[str, Any], path: tuple[Any, ...], replacement: Any) -> dict[str, Any]:
    mutated = copy.deepcopy(record)
    parent: Any = mutated
    for step in path[:-1]:
        parent = parent[step]
    if replacement is DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = replacement
    return mutated


# --- arbitrary values ------------------------------------------------------------------------


@SETTINGS
@given(json_values)
def test_arbitrary_json_values_never_raise(value: Any) -> None:
    check_record(value)
    check_result(parse_payload(value))
    check_result(parse_payload(json.dumps(value)))
    check_result(parse_payload(json.dumps(value).encode()))
    for item in iter_raw_records(value):
        if isinstance(item, Rejection):
            check_rejection(item)


@SETTINGS
@given(json_values)
def test_arbitrary_values_inside_a_record_shape_never_raise(value: Any) -> None:
    for name in sorted(WATCHED_EVENT_NAMES):
        record = {"eventName": name, "eventID": "ev-x", "eventTime": "2026-11-20T12:00:00Z"}
        for key in ("requestParameters", "responseElements", "userIdentity"):
            check_record({**record, key: value})
        check_record({**record, "requestParameters": {"groupId": "sg-1", "ipPermissions": value}})
        check_record({**record, "requestParameters": {"groupId": "sg-1", "securityGroupRuleIds": value}})
        check_record({**record, "requestParameters": {"targetGroupArn": "arn:x", "attributes": value}})
        request = {"ModifySecurityGroupRulesRequest": {"GroupId": "sg-1", "SecurityGroupRule": value}}
        check_record({**record, "requestParameters": request})


# --- mutated valid records -------------------------------------------------------------------


@SETTINGS
@given(st.data())
def test_mutated_valid_records_never_raise(data: st.DataObject) -> None:
    record = data.draw(st.sampled_from(VALID_RECORDS))
    for _ in range(data.draw(st.integers(1, 3))):
        candidates = paths(record)
        if not candidates:
            break
        path = data.draw(st.sampled_from(candidates))
        replacement = data.draw(st.just(DELETE) | json_values)
        record = mutate(record, path, replacement)
    check_record(record)
    check_result(parse_payload(trail_file([record])))
    check_result(parse_payload(eventbridge_envelope(record)))
    check_result(parse_payload(lookup_result([record])))


def test_valid_records_do_parse() -> None:
    """The mutation test starts from records that parse (so mutations are what it explores)."""
    result = parse_payload(trail_file(valid_records()))
    assert len(result.changes) == len(valid_records()) and result.rejections == []


# --- bytes -----------------------------------------------------------------------------------


@SETTINGS
@given(st.data())
def test_truncated_trail_bytes_never_raise(data: st.DataObject) -> None:
    payload = data.draw(st.sampled_from([TRAIL_PLAIN, TRAIL_GZIP]))
    cut = data.draw(st.integers(0, len(payload)))
    check_result(parse_payload(payload[:cut]))


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes_never_raise(raw: bytes) -> None:
    check_result(parse_payload(raw))
    check_result(parse_payload(b"\x1f\x8b" + raw))
    check_result(parse_payload(gzip.compress(raw)))


@SETTINGS
@given(st.binary(min_size=1, max_size=64), st.data())
def test_corrupted_gzip_never_raises(noise: bytes, data: st.DataObject) -> None:
    payload = bytearray(TRAIL_GZIP)
    at = data.draw(st.integers(2, len(payload) - 1))
    payload[at : at + len(noise)] = noise
    result = parse_payload(bytes(payload))
    check_result(result)


@SETTINGS
@given(st.text(max_size=200))
def test_random_text_and_lines_never_raise(text: str) -> None:
    check_result(parse_payload(text))
    check_result(parse_payload(text + "\n" + json.dumps(authorize_record("ev-line")) + "\n" + text))


# --- specific hostile shapes -----------------------------------------------------------------


def test_deeply_nested_json_is_rejected() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    (rejection,) = parse_payload(deep).rejections
    check_rejection(rejection)
    assert rejection.reason == "not_json"


def test_deeply_nested_python_values_are_rejected() -> None:
    nested: Any = "leaf"
    for _ in range(5000):
        nested = [nested]
    result = parse_payload(nested)
    check_result(result)
    assert [r.reason for r in result.rejections] == ["not_a_record"]
    record = authorize_record("ev-deep")
    record["requestParameters"]["extra"] = nested
    rejection = parse_record(record)
    assert isinstance(rejection, Rejection) and rejection.reason == "too_large"
    check_rejection(rejection)


def test_values_json_cannot_hold_are_rejected_not_raised() -> None:
    cases: list[dict[str, Any]] = []
    for value in (10**40, math.nan, float("inf"), object(), {1: "int key"}, "\ud800", b"bytes"):
        record = authorize_record("ev-odd")
        record["requestParameters"]["ipPermissions"]["items"][0]["fromPort"] = value
        cases.append(record)
    for record in cases:
        result = parse_record(record)
        assert isinstance(result, Rejection), result
        check_rejection(result)


def test_huge_strings_are_too_large_and_details_stay_short() -> None:
    record = authorize_record("ev-huge")
    record["eventTime"] = "9" * 1_000_000
    rejection = parse_record(record)
    assert isinstance(rejection, Rejection) and rejection.reason == "too_large"
    line = json.dumps({"eventName": "DeleteSecurityGroup", "pad": "x" * 1_000_000})
    result = parse_payload(line + "\n" + line)
    assert [r.reason for r in result.rejections] == ["too_large", "too_large"]
    check_result(result)


def test_huge_port_and_time_values_are_rejected() -> None:
    record = authorize_record("ev-port")
    record["requestParameters"]["ipPermissions"]["items"][0]["fromPort"] = 10**30
    record["requestParameters"]["ipPermissions"]["items"][0]["toPort"] = 10**30
    rejection = parse_record(record)
    assert isinstance(rejection, Rejection)
    check_rejection(rejection)
    for moment in (10**15, -(10**15), "0001-01-01T00:00:00+23:59", 1e300, "2026-13-01T00:00:00Z"):
        timed = authorize_record("ev-time")
        timed["eventTime"] = moment
        result = parse_record(timed)
        assert isinstance(result, Rejection) and result.reason == "bad_time", (moment, result)


def test_long_caller_texts_are_not_kept_after_their_records() -> None:
    """Found while fuzzing (the fuzzer's memory grew): the table that shares one Actor among a
    caller's records kept each caller's texts whole as its key, up to 8192 keys of up to a
    record's 256 KiB (2 GiB) after the records and their changes were dropped."""
    record = delete_group_record("ev-long")
    parse_payload(json.dumps(record))
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(100):
            agent = f"agent-{n:04d}-" + "x" * 100_000
            result = parse_payload(json.dumps({**record, "eventID": f"ev-{n}", "userAgent": agent}))
            (change,) = result.changes
            assert isinstance(change, GroupDeletion) and change.meta.actor.user_agent == agent[:1000]
            del result, change
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 2_000_000, held  # 100 records of a 100 KB userAgent: 10 MB kept before


def test_wrappers_nested_in_themselves_stop() -> None:
    value: Any = json.dumps(authorize_record("ev-wrapped"))
    for _ in range(4):
        value = {"Body": json.dumps({"Body": value})}
    for _ in range(50):
        value = {"Messages": [value]}
    result = parse_payload(value)
    assert [r.reason for r in result.rejections] == ["not_a_record"]
    check_result(result)


# --- the same payload as text and as bytes ---------------------------------------------------


def outcome(result: ParseResult) -> tuple[Any, ...]:
    return result.changes, dict(result.rejected), result.ignored, [r.detail for r in result.rejections]


# Characters str.splitlines() and str.strip() treat as line breaks or spaces, bytes do not; JSON
# allows the first three raw inside a string (a caller sets the userAgent of its own calls).
UNICODE_BREAKS = ("\u2028", "\u2029", "\x85", "\x1c", "\x1d", "\x1e", "\xa0", "\u3000")


def test_json_lines_as_text_are_split_only_at_line_breaks() -> None:
    """Found by fuzzing: a JSON lines payload given as text was split with str.splitlines, which
    cuts a line at a U+2028 inside a string: the whole payload was refused as not JSON (the
    separator on line 1) or the record lost (on a later line); as bytes both records were read."""
    for separator in UNICODE_BREAKS[:3]:
        odd = authorize_record("ev-odd", permissions=[permission(cidrs=["10.0.0.0/8"])])
        odd["userAgent"] = f"aws-cli/2{separator}x"
        plain = revoke_record("ev-plain", permissions=[permission(cidrs=["10.0.0.0/8"])])
        for records in ([odd, plain], [plain, odd]):
            text = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
            as_text, as_bytes = parse_payload(text), parse_payload(text.encode())
            assert outcome(as_text) == outcome(as_bytes)
            assert [c.meta.event_id for c in as_text.changes] == [r["eventID"] for r in records]
            assert as_text.changes[records.index(odd)].meta.actor.user_agent == odd["userAgent"]
            assert outcome(parse_payload({"Body": text})) == outcome(as_text)  # an SQS body


def test_text_and_bytes_strip_the_same_whitespace() -> None:
    """Around a document, text drops what bytes drop (ASCII whitespace), not Unicode spaces."""
    record = json.dumps(authorize_record("ev-space"), ensure_ascii=False)
    for around in (*UNICODE_BREAKS, " \t\r\n\x0b\x0c"):
        for text in (around + record, record + around, around + record + "\n" + record + around):
            as_text, as_bytes = parse_payload(text), parse_payload(text.encode())
            assert outcome(as_text) == outcome(as_bytes), repr(around)
            check_result(as_text)


@SETTINGS
@given(st.lists(st.text(max_size=20) | st.sampled_from(UNICODE_BREAKS), max_size=6), st.data())
def test_any_text_reads_as_its_bytes(pieces: list[str], data: st.DataObject) -> None:
    line = json.dumps(data.draw(st.sampled_from(VALID_RECORDS)), ensure_ascii=False)
    text = data.draw(st.sampled_from(["", "\n", "\r\n", "\r"])).join([line, *pieces, line])
    assert outcome(parse_payload(text)) == outcome(parse_payload(text.encode()))


def test_an_integer_past_64_bits_in_a_rejected_field_shows_as_its_decoder_read_it() -> None:
    """The rejection detail shows the value the JSON decoder made: read from text (msgspec, the
    path of every wrapper's record text) an integer past 64 bits stays an int and shows as "a big
    int"; in a record already decoded by orjson it became a float and shows as "1e+20"; a Python
    dict holding such an int cannot be checked for size and is rejected whole. show_value, where
    the detail is made, says so."""
    record = authorize_record("ev-big")
    record["requestParameters"]["groupId"] = 10**20
    text = json.dumps(record)
    from_text = parse_payload(text).rejections
    assert [r.detail for r in from_text] == ["requestParameters.groupId is a big int, not a string"]
    from_dict = parse_record(orjson.loads(text))
    assert isinstance(from_dict, Rejection)
    assert from_dict.detail == "requestParameters.groupId is 1e+20, not a string"
    python_int = parse_record(record)
    assert isinstance(python_int, Rejection) and "64-bit" in python_int.detail
    doc = show_value.__doc__ or ""
    assert "a big int" in doc and "1e+20" in doc, doc
