"""The parser's shortcuts give the answers of the long way round.

- `parse_payload` of a string holding one record skips the wrapper walk: it must give what the
  walk gives (the same text as bytes still takes the walk).
- A record's JSON text decoded straight into its declared shape (`decode_record`) reads as the
  decoded dict converted into that shape (`parse_record`) reads; text too large or too deep for
  the typed decode to stand in for the size check takes the full decode.
- Repeated values (actors, sources, strings, ports, times) are shared between changes, in
  bounded tables; sharing changes no value.
- gzip is inflated by zlib-ng: the same output, errors and details as CPython's zlib.
- eventTime in CloudTrail's own form is read by fromisoformat directly, as parse_time reads it.
"""

from __future__ import annotations

import gc
import gzip
import json
import zlib
from datetime import datetime
from typing import Any

import msgspec
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.engine import records
from exporter.engine.changes import Actor, EventMeta, Rejection, RuleChange
from exporter.engine.record_shapes import Record, Request
from exporter.engine.records import (
    WATCHED_EVENT_NAMES,
    ParseResult,
    _event_time,
    _Reject,
    decode_record,
    parse_decoded,
    parse_record,
)
from exporter.engine.timeutil import parse_time
from exporter.sources.envelopes import _gunzip, _Refused, parse_payload
from tests.cloudtrail_samples import (
    actor,
    authorize_record,
    delete_group_record,
    eventbridge_envelope,
    lookup_result,
    modify_tg_attributes_record,
    permission,
    revoke_record,
    trail_file,
    unwatched_record,
)
from tests.test_records_hostile import DELETE, VALID_RECORDS, json_values, mutate, paths

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def outcome(result: ParseResult) -> tuple[Any, ...]:
    return result.changes, result.rejections, result.ignored


def assert_text_shortcut_is_the_walk(text: str) -> None:
    assert outcome(parse_payload(text)) == outcome(parse_payload(text.encode()))


def test_one_record_as_text_parses_as_the_walk_does() -> None:
    for record in [*VALID_RECORDS, unwatched_record("ev-u")]:
        for text in (json.dumps(record), f"  {json.dumps(record, indent=2)}\n"):
            assert_text_shortcut_is_the_walk(text)
    for wrapped in (
        lookup_result(VALID_RECORDS),
        eventbridge_envelope(VALID_RECORDS[0]),
        trail_file(VALID_RECORDS),
        {"detail-type": "Scheduled Event", "eventName": "DeleteSecurityGroup", "eventID": "e"},
        {"unknown": 1},
    ):
        assert_text_shortcut_is_the_walk(json.dumps(wrapped))
    for text in ("", " ", "{", "{}", '{"eventName": 1}', '"{\\"eventID\\": \\"e\\"}"', "[]", "null"):
        assert_text_shortcut_is_the_walk(text)
    line = json.dumps(VALID_RECORDS[0])
    assert_text_shortcut_is_the_walk(f"{line}\n{line}")  # JSON lines: the walk, as before
    assert outcome(parse_payload(line, max_payload_bytes=10)) == outcome(
        parse_payload(line.encode(), max_payload_bytes=10)
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_records_as_text_parse_as_the_walk_does(data: st.DataObject) -> None:
    record: Any = data.draw(st.sampled_from(VALID_RECORDS))
    for _ in range(data.draw(st.integers(0, 3))):
        candidates = paths(record)
        if not candidates:
            break
        record = mutate(record, data.draw(st.sampled_from(candidates)), data.draw(json_values))
    assert_text_shortcut_is_the_walk(json.dumps(record))


@SETTINGS
@given(json_values)
def test_arbitrary_json_as_text_parses_as_the_walk_does(value: Any) -> None:
    assert_text_shortcut_is_the_walk(json.dumps(value))


def test_changes_of_one_caller_share_their_actor_and_values() -> None:
    first = parse_record(authorize_record("ev-1", permissions=[permission(cidrs=["10.0.0.0/8"])]))
    second = parse_record(revoke_record("ev-2", permissions=[permission(cidrs=["10.0.0.0/8"])]))
    assert isinstance(first, RuleChange) and isinstance(second, RuleChange)
    assert first.meta.actor is second.meta.actor
    assert first.meta.region is second.meta.region and first.group_id is second.group_id
    assert first.rules[0].source is second.rules[0].source
    assert first.rules[0].description is second.rules[0].description
    assert first.rules[0] == second.rules[0]


def test_the_actor_is_the_same_whether_shared_or_not() -> None:
    other = actor(role="operator", user_agent="aws-cli/2.15.0", source_ip="198.51.100.7")
    record = modify_tg_attributes_record("ev-a", actor=other)
    shared = parse_record(record)
    records._ACTORS_BY_TEXT.clear()
    records._ACTORS.clear()
    fresh = parse_record(record)
    assert isinstance(shared, records.AttributeChange) and isinstance(fresh, records.AttributeChange)
    assert shared.meta.actor == fresh.meta.actor == records._actor_of(msgspec.convert(record, Record))
    assert fresh.meta.actor.issuer == "operator" and fresh.meta.actor.user_agent == "aws-cli/2.15.0"
    # A PascalCase field or a non-string one takes the long way, with the same answer as before.
    odd = json.loads(json.dumps(record))
    odd["userIdentity"]["Arn"] = odd["userIdentity"].pop("arn")
    odd["sourceIPAddress"] = 7
    parsed = parse_record(odd)
    assert isinstance(parsed, records.AttributeChange)
    assert parsed.meta.actor == Actor(
        principal_arn=record["userIdentity"]["arn"],
        identity_type="AssumedRole",
        issuer="operator",
        user_agent="aws-cli/2.15.0",
        source_ip=None,
    )


def test_sharing_tables_stay_bounded() -> None:
    size = records._SHARED_SIZE
    for n in range(size + 10):
        records._shared(f"text-{n}")
        records._cidr(f"10.{n // 256 % 256}.{n % 256}.0/24", "test")
        records._source_id(f"sg-{n}", "group", "test")
    assert len(records._SHARED_TEXT) <= size
    assert len(records._CIDR_SOURCES) <= size and len(records._ID_SOURCES) <= size
    long = "x" * 300
    assert records._shared(long) is long and long not in records._SHARED_TEXT
    for n in range(size + 10):
        parsed = parse_record({**VALID_RECORDS[-1], "eventID": f"ev-{n}", "sourceIPAddress": f"ip-{n}"})
        assert isinstance(parsed, records.GroupDeletion)
        assert parsed.meta.actor.source_ip == f"ip-{n}"
    assert len(records._ACTORS_BY_TEXT) <= size and len(records._ACTORS) <= size


def test_event_times_are_shared_and_still_checked() -> None:
    first = parse_record(revoke_record("ev-t1", time="2026-11-20T12:00:00Z"))
    second = parse_record(revoke_record("ev-t2", time="2026-11-20T12:00:00Z"))
    assert isinstance(first, RuleChange) and isinstance(second, RuleChange)
    assert first.meta.event_time is second.meta.event_time
    bad = revoke_record("ev-t3", time="2026-11-20T25:00:00Z")
    for _ in range(2):
        rejection = parse_record(bad)
        assert isinstance(rejection, records.Rejection) and rejection.reason == "bad_time"


def test_changes_hold_no_per_instance_dict() -> None:
    parsed = parse_record(VALID_RECORDS[0])
    assert isinstance(parsed, RuleChange)
    for value in (parsed, parsed.meta, parsed.meta.actor):
        assert not hasattr(value, "__dict__")
    assert isinstance(parsed.meta, EventMeta) and parsed.meta.event_name in WATCHED_EVENT_NAMES


def stdlib_gunzip(data: bytes, limit: int) -> tuple[str, Any]:
    """envelopes._gunzip as it was, on CPython's zlib: ("ok", bytes) or (reason, detail)."""
    chunks: list[bytes] = []
    size, pending = 0, data
    while pending:
        decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        chunk_input = pending
        while True:
            try:
                chunk = decompressor.decompress(chunk_input, limit - size + 1)
            except zlib.error as error:
                return "not_gzip", f"corrupt gzip data: {error}"
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                return "too_large", f"decompressed payload is over the {limit} byte limit"
            if not decompressor.unconsumed_tail:
                break
            chunk_input = decompressor.unconsumed_tail
        if not decompressor.eof:
            return "not_gzip", "truncated gzip data"
        pending = decompressor.unused_data
        if pending and not pending.startswith(b"\x1f\x8b"):
            break
    return "ok", b"".join(chunks)


def ours_gunzip(data: bytes, limit: int) -> tuple[str, Any]:
    try:
        return "ok", _gunzip(data, limit)
    except _Refused as reject:
        return reject.reason, reject.detail


GZIP_SAMPLES = [
    gzip.compress(json.dumps(trail_file(VALID_RECORDS)).encode()),
    gzip.compress(b"x" * 300_000, compresslevel=1),
    gzip.compress(b"a") + gzip.compress(b"b"),
    gzip.compress(b"a") + b"\x00\x00padding",
    gzip.compress(b"a") + b"\x1f\x8bnot a member",
    b"\x1f\x8b",
]


@SETTINGS
@given(st.sampled_from(GZIP_SAMPLES), st.data())
def test_zlib_ng_inflates_as_zlib_does(sample: bytes, data: st.DataObject) -> None:
    payload = bytearray(sample)
    for _ in range(data.draw(st.integers(0, 3))):
        at = data.draw(st.integers(0, len(payload)))
        kind = data.draw(st.sampled_from(["flip", "cut", "noise"]))
        if kind == "flip" and at < len(payload):
            payload[at] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "cut":
            del payload[at:]
        else:
            payload[at:at] = data.draw(st.binary(min_size=1, max_size=8))
    limit = data.draw(st.sampled_from([10**9, 100_000, 1000]))
    assert ours_gunzip(bytes(payload), limit) == stdlib_gunzip(bytes(payload), limit)


INGRESS = [
    authorize_record(
        "ev-f1",
        permissions=[permission(cidrs=["10.0.0.0/8", "10.1.0.0/16"], cidrs6=["::/0"])],
        rule_ids=["sgr-1", "sgr-2", "sgr-3"],
    ),
    authorize_record("ev-f2", permissions=[permission(groups=["sg-0lbc"], prefix_lists=["pl-1"])]),
    authorize_record(
        "ev-f3",
        permissions=[permission(cidrs=["10.0.0.0/8"]), permission(80, 81, cidrs=["10.0.0.0/8"])],
        rule_ids=["sgr-4", "sgr-5"],
    ),
    authorize_record("ev-f4", permissions=[permission(cidrs=["10.0.0.0/8"], description=None)]),
    revoke_record("ev-f5", permissions=[permission(cidrs=["0.0.0.0/0"])]),
    revoke_record("ev-f6", permissions=[permission(cidrs=["0.0.0.0/0"])], rule_ids=["sgr-6"]),
    revoke_record("ev-f7", rule_ids_request=["sgr-1"]),
    *VALID_RECORDS,
]


def answer(parsed: Any) -> Any:
    """A parse's answer: the change (or None), or a rejection's reason and event id."""
    return (parsed.reason, parsed.event_id) if isinstance(parsed, Rejection) else parsed


def assert_text_and_dict_agree(record: Any) -> None:
    """The record's JSON text decoded straight into its shape gives what the same text decoded
    by orjson (the full decode) gives.

    Rejection details may differ in one way: an integer past 64 bits is an int in the shape and a
    float once orjson has decoded it (both rejected, for the same reason)."""
    text = json.dumps(record)
    decoded = decode_record(text)
    assert decoded is not None
    assert answer(parse_decoded(decoded)) == answer(parse_record(orjson.loads(text)))


def test_the_usual_records_read_the_same_from_text_and_from_a_dict() -> None:
    for record in INGRESS:
        assert_text_and_dict_agree(record)
        assert not isinstance(parse_record(record), Rejection)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_records_read_the_same_from_text_and_from_a_dict(data: st.DataObject) -> None:
    record: Any = data.draw(st.sampled_from(INGRESS))
    for _ in range(data.draw(st.integers(1, 3))):
        candidates = paths(record)
        if not candidates:
            break
        replacement = data.draw(
            st.sampled_from(
                [None, True, False, 0, -1, 80, 70000, "80", "tcp", "TCP", "6", "udp", "-1", "icmp", {}, []]
            )
            | st.just(DELETE)
            | json_values
        )
        record = mutate(record, data.draw(st.sampled_from(candidates)), replacement)
    assert_text_and_dict_agree(record)


def test_decoded_records_are_frozen_and_not_tracked_by_the_collector() -> None:
    decoded = decode_record(json.dumps(INGRESS[0]))
    assert isinstance(decoded, Record) and not gc.is_tracked(decoded)
    request = decoded.requestParameters
    assert isinstance(request, Request) and not gc.is_tracked(request)
    try:
        decoded.eventName = "x"  # type: ignore[misc]
    except AttributeError:
        pass
    else:
        raise AssertionError("a decoded record can be changed")


def test_text_too_large_or_deep_for_the_typed_decode_takes_the_full_decode() -> None:
    record = authorize_record("ev-big")
    limit = 4096
    record["requestParameters"]["pad"] = "x" * (limit // 8)
    assert decode_record(json.dumps(record), max_record_bytes=limit) is None
    deep = authorize_record("ev-deep")
    deep["requestParameters"]["pad"] = [[]] * 201
    assert decode_record(json.dumps(deep)) is None
    # and the full decode still applies the size check: over the limit once serialized compactly
    record["requestParameters"]["pad"] = "x" * limit
    for payload in (json.dumps(record), json.dumps(record).encode()):
        (rejection,) = parse_payload(payload, max_record_bytes=limit).rejections
        assert rejection.reason == "too_large" and rejection.event_id == "ev-big"
    # bytes that are not UTF-8 in a field no one reads: the full decode refuses them, as before
    bad = json.dumps(delete_group_record("ev-utf")).encode()[:-1] + b', "x": "\xff"}'
    assert decode_record(bad) is None
    assert [r.reason for r in parse_payload(bad).rejections] == ["not_json"]


def test_a_list_of_only_unknown_keys_reads_as_empty() -> None:
    """The one difference from the dict parser this replaced: a CloudTrail list given as an object
    with none of the keys read (`{"junk": 1}`, not `{}` or `{"items": [...]}`) is empty, where that
    parser read it as one entry lacking its fields (and rejected the record). Unknown keys are
    ignored everywhere else too."""
    record = authorize_record("ev-odd", permissions=[permission(cidrs=["10.0.0.0/8"])])
    record["requestParameters"]["ipPermissions"]["items"][0]["groups"] = {"junk": 1}
    parsed = parse_record(record)
    assert isinstance(parsed, RuleChange) and [r.source.value for r in parsed.rules] == ["10.0.0.0/8"]


def test_request_parameters_read_nested_requests_over_them_and_camel_case_first() -> None:
    def group_of(params: dict[str, Any]) -> Any:
        parsed = parse_record(
            {
                **authorize_record("ev-q"),
                "requestParameters": {
                    **params,
                    "ipPermissions": {},
                    "cidrIp": "10.0.0.0/8",
                    "ipProtocol": "-1",
                },
            }
        )
        return parsed.group_id if isinstance(parsed, RuleChange) else parsed.reason  # type: ignore[union-attr]

    assert group_of({"groupId": "sg-1"}) == "sg-1"
    assert group_of({"GroupId": "sg-1"}) == "sg-1"
    assert group_of({"GroupId": "sg-1", "groupId": "sg-2"}) == "sg-2"
    assert (
        group_of({"groupId": "sg-1", "AuthorizeSecurityGroupIngressRequest": {"GroupId": "sg-3"}}) == "sg-3"
    )
    assert group_of({"groupId": "sg-1", "AuthorizeSecurityGroupIngressRequest": "not an object"}) == "sg-1"
    assert group_of({"groupName": "default"}) == "missing_field"


@SETTINGS
@given(st.text(alphabet="0123456789-:TZz+. ", min_size=18, max_size=22))
def test_event_times_in_any_spelling_read_as_parse_time_reads_them(text: str) -> None:
    for candidate in (
        text,
        text[:19] + "Z",
        "2026-11-20T08:00:16Z"[: len(text) % 20] + text[len(text) % 20 :],
    ):
        records._TIMES.clear()
        try:
            expected: Any = parse_time(candidate)
        except ValueError:
            expected = "bad_time"
        try:
            got: Any = _event_time(candidate)
        except _Reject as reject:
            got = reject.reason
        assert got == expected
        if isinstance(got, datetime):
            assert got.tzinfo is expected.tzinfo
