"""The trail-file skim (msgspec reads eventName only) gives what the full decode gives.

`_walk(..., skim=False)` is the full decode: orjson decodes the whole document and every record
goes through the wrapper walk. Every case here, hostile ones included, must come out the same
both ways, item for item (records, rejections with their details, skipped records), except the
one documented difference: a number too large for a double inside a skipped record.
"""

from __future__ import annotations

import gzip
import json
import math
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.engine.records import MAX_RECORD_BYTES, WATCHED_EVENT_NAMES
from exporter.sources.envelopes import MAX_PAYLOAD_BYTES, _walk, parse_payload
from tests.cloudtrail_samples import (
    authorize_record,
    delete_group_record,
    eventbridge_envelope,
    modify_tg_attributes_record,
    revoke_record,
    trail_file_bytes,
    unwatched_record,
)
from tests.test_records_hostile import VALID_RECORDS, json_values

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def items(
    data: Any,
    skim: bool,
    max_record_bytes: int = MAX_RECORD_BYTES,
    max_payload_bytes: int = MAX_PAYLOAD_BYTES,
) -> list[Any]:
    """What the walk yields, with consecutive skip counts added up (the skim counts runs)."""
    found: list[Any] = []
    for item in _walk(data, True, max_record_bytes, max_payload_bytes, skim):
        if isinstance(item, int) and found and isinstance(found[-1], int):
            found[-1] += item
        else:
            found.append(item)
    return found


def overflows(document: bytes) -> bool:
    """True when the document holds a JSON number that is infinite as a double (1e400)."""
    found = False

    def number(text: str) -> float:
        nonlocal found
        value = float(text)
        found = found or math.isinf(value)
        return value

    try:
        json.loads(document, parse_float=number, parse_int=number)
    except (ValueError, RecursionError):
        return False
    return found


def assert_same(document: bytes) -> None:
    skimmed, full = items(document, True), items(document, False)
    if skimmed != full:
        assert overflows(document), (document[:300], skimmed[:3], full[:3])
        assert [getattr(i, "reason", None) for i in full] == ["not_json"]


def trail(records: list[Any], **dumps: Any) -> bytes:
    return json.dumps({"Records": records}, **dumps).encode()


MIXED = [
    unwatched_record("ev-u1"),
    *VALID_RECORDS,
    eventbridge_envelope(delete_group_record("ev-eb")),
    unwatched_record("ev-u2"),
]


def test_a_plain_trail_file_skims_to_the_full_decode() -> None:
    for document in (trail(MIXED), trail(MIXED, separators=(",", ":")), trail(MIXED, indent=2)):
        skimmed = items(document, True)
        assert skimmed == items(document, False)
        assert skimmed[0] == skimmed[-1] == 1 and len(skimmed) == len(MIXED)
    result = parse_payload(trail_file_bytes(MIXED))
    assert len(result.changes) == len(VALID_RECORDS) + 1 and result.ignored == 2 and not result.rejections


@pytest.mark.parametrize(
    "document",
    [
        # names spelled with escapes are read as JSON reads them
        b'{"Records":[{"eventName":"Authorize\\u0053ecurityGroupIngress","eventID":"e1"}]}',
        b'{"Records":[{"event\\u004eame":"Decrypt"},{"eventName":"AssumeRole"}]}',
        # a duplicated key: the last one counts, as in orjson
        b'{"Records":[{"eventName":"DeleteSecurityGroup","eventName":"Decrypt"}]}',
        b'{"Records":[{"eventName":"Decrypt","eventName":"DeleteSecurityGroup","eventID":"e"}]}',
        b'{"Records":[1,2]}{"Records":[]}',
        b'{"Records":[{"eventName":"Decrypt"}],"Records":"no"}',
        # records that are something else, or not records at all
        b'{"Records":[{"eventName":"Decrypt","detail-type":"AWS API Call via CloudTrail"}]}',
        b'{"Records":[{"eventName":"Decrypt","detail\\u002dtype":"x","detail":{}}]}',
        b'{"Records":[{"eventName":7},{"eventName":null},{"other":1},[],"x",3,null]}',
        b'{"Records":[{"Records":[{"eventName":"Decrypt"}]}]}',
        b'{"Records":[{"CloudTrailEvent":"{\\"eventName\\":\\"Decrypt\\"}"}]}',
        # documents that are not trail files
        b'{"Records":[],"eventName":"Decrypt","eventID":"e"}',
        b'{"Records":[],"detail-type":"x"}',
        b'{"Records":{}}',
        b'{"Events":[]}',
        b"{}",
        b'{"Records":[]}',
        # malformed JSON anywhere, in a skipped record or not
        b'{"Records":[{"eventName":"Decrypt","a":"\\ud800"}]}',
        b'{"Records":[{"eventName":"Decrypt","a":"\xff"}]}',
        b'{"Records":[{"eventName":"Decrypt","a":"\xed\xa0\x80"}]}',
        b'{"Records":[{"eventName":"Decrypt","a":"\xc3\xa9"}]}',
        b'{"Records":[{"eventName":"Decrypt","a":"\x01"}]}',
        b'{"Records":[{"eventName":"Decrypt","a":01}]}',
        b'{"Records":[{"eventName":"Decrypt",}]}',
        b'{"Records":[{"eventName":"Decrypt"}]} trailing',
        b'{"Records":[{"eventName":"Decrypt"}]}\n{"eventName":"DeleteSecurityGroup","eventID":"e"}',
        b'{"Records":[{"eventName":"Decrypt","a":' + b"[" * 1100 + b"]" * 1100 + b"}]}",
        b'{"Records":[{"eventName":"Decrypt","a":' + b"[" * 300 + b"]" * 300 + b"}]}",
        b'{"Records":[{"eventName":"DeleteSecurityGroup","a":' + b"[" * 300 + b"]" * 300 + b"}]}",
        b'{"Records":[{"eventName":"DeleteSecurityGroup","a":1e400}]}',
    ],
)
def test_odd_documents_skim_to_the_full_decode(document: bytes) -> None:
    assert items(document, True) == items(document, False)


def test_a_huge_number_in_a_skipped_record_no_longer_spoils_the_file() -> None:
    """The one known difference: orjson refuses 1e400, msgspec does not check what it skips."""
    watched = delete_group_record("ev-keep")
    document = b'{"Records":[{"eventName":"Decrypt","n":1e400},' + json.dumps(watched).encode() + b"]}"
    full = items(document, False)
    assert [i.reason for i in full] == ["not_json"]
    assert items(document, True) == [1, watched]
    # inside a record that is read, the file is refused as before
    read = json.dumps(watched).encode()[:-1] + b', "n": 1e400}'
    document = b'{"Records":[{"eventName":"Decrypt"},' + read + b"]}"
    refused = items(document, True)
    assert refused == items(document, False) and [i.reason for i in refused] == ["not_json"]


def test_a_raised_recursion_limit_turns_the_skim_off(monkeypatch: pytest.MonkeyPatch) -> None:
    document = b'{"Records":[{"eventName":"Decrypt","n":1e400}]}'
    monkeypatch.setattr(sys, "getrecursionlimit", lambda: 5000)
    assert items(document, True) == items(document, False)


def test_gzip_and_limits_are_as_before() -> None:
    body = trail_file_bytes(MIXED)
    assert items(body, True) == items(body, False)
    small = items(body, True, max_payload_bytes=len(body) + 10)  # inflates past the limit
    assert [i.reason for i in small] == ["too_large"]
    record = authorize_record("ev-big")
    record["pad"] = "x" * 2000
    document = trail([record, unwatched_record("ev-u")])
    for skim in (True, False):
        result = items(document, skim, max_record_bytes=1000)
        assert result[1] == 1
        assert result[0] == record  # the size check is parse_record's, as before
    assert [r.reason for r in parse_payload(document, max_record_bytes=1000).rejections] == ["too_large"]


# --- generated documents ---------------------------------------------------------------------

NOISE = [
    b"\xff",
    b"\xed\xa0\x80",
    b"\xc3\xa9",
    b"\\ud800",
    b"\\u0041",
    b"\\",
    b'"',
    b",",
    b":",
    b"[",
    b"]",
    b"{",
    b"}",
    b"\x00",
    b"\t",
    b" ",
    b"0",
    b"-",
    b"e",
    b".",
    b"null",
    b'"eventName"',
    b'"eventName":"Decrypt",',
    b'"detail-type":1,',
    b'"Records":[],',
]


def records_strategy() -> st.SearchStrategy[list[Any]]:
    other = st.sampled_from([unwatched_record("ev-u1"), unwatched_record("ev-u2")])
    watched = st.sampled_from(
        [*VALID_RECORDS, revoke_record("ev-x"), modify_tg_attributes_record("ev-y"), delete_group_record()]
    )
    named = st.builds(
        lambda name, value: {"eventName": name, "eventID": "ev-n", "x": value},
        st.sampled_from([*sorted(WATCHED_EVENT_NAMES), "Decrypt", "AssumeRole"]),
        json_values,
    )
    return st.lists(other | watched | named | json_values, max_size=6)


@SETTINGS
@given(records_strategy(), st.sampled_from([(", ", ": "), (",", ":")]))
def test_generated_trail_files_skim_to_the_full_decode(records: list[Any], separators: Any) -> None:
    document = trail(records, separators=separators)
    assert items(document, True) == items(document, False)
    assert items(gzip.compress(document), True) == items(gzip.compress(document), False)


def edits(document: bytes, data: st.DataObject) -> Iterator[bytes]:
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(document)))
        if data.draw(st.booleans()):
            document = document[:at] + data.draw(st.sampled_from(NOISE)) + document[at:]
        else:
            document = document[:at] + document[at + data.draw(st.integers(1, 8)) :]
        yield document


@SETTINGS
@given(records_strategy(), st.data())
def test_corrupted_trail_files_skim_to_the_full_decode(records: list[Any], data: st.DataObject) -> None:
    for document in edits(trail(records, separators=(",", ":")), data):
        assert_same(document)
