"""Hostile state files: a row of the wrong type, a huge time, JSON that is not JSON. Each
unreadable row is skipped, counted by table (StateStore.rejected_rows, exported as
sgchurn_state_rows_rejected_total) and logged once; every good row beside it still reads, and the
daemon's snapshot still publishes."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from exporter.daemon.snapshot import merge_histograms
from exporter.daemon.state import StateStore, StoredGap
from exporter.daemon.tracker import GAP_DURATION_FAMILY, view_from_stored
from exporter.engine.polls import seen_to_json
from exporter.reports.impact import read_impact
from exporter.sources.cloudtrail import LookupCursor, LookupEventsPoller
from exporter.sources.ratelimit import TokenBucket
from tests.awsworld import MotoServer

TARGET = "default@us-east-1"
ARN = "arn:aws:elasticloadbalancing:us-east-1:111122223333:targetgroup/k8s-shop-web/0123456789abcdef"
LABELS = (("aws_account_id", "111122223333"), ("aws_region", "us-east-1"), ("flow", "traffic"))


def _good_store(path: Path) -> None:
    """Two of everything, so that one row spoiled leaves one good one beside it."""
    store = StateStore(path)
    with store.transaction() as db:
        for i in range(2):
            key = f"k{i}"
            gap = StoredGap(
                key, TARGET, f"{ARN}{i}", "traffic", 1000.0 + i, 2000.0 + i, "undetermined", False, {}
            )
            store.upsert_gap(db, gap)
            store.increment(db, "rule_gaps", (*LABELS, ("n", key)))
            store.observe(db, GAP_DURATION_FAMILY, (*LABELS, ("n", key)), 3.0)
            store.set_gap_impact(db, key, TARGET, 3000.0, True, {"impact": "none_seen"})
            store.open_poll_gap(db, TARGET, f"{ARN}{i}", "traffic", 1000.0 + i)
    seen = seen_to_json(((datetime.fromtimestamp(1000.0, tz=UTC), "traffic-port"),))
    store.save_polled(TARGET, [("hc_port", f"{ARN}{i}", seen) for i in range(2)], [])
    store.close()


#: (table, column) -> the row spoiled is the one whose key (or first column) names `k1` / arn1.
_COLUMNS = {
    "gaps": ["key", "target", "tg_arn", "flow", "start", "end_time", "cause", "explained", "data"],
    "counters": ["labels", "value"],
    "histograms": ["labels", "buckets", "total", "count"],
    "gap_impacts": ["checked_at", "final", "data"],
    "poll_gaps": ["start", "end_time"],
    "polled": ["seen"],
}
_WHERE = {
    "gaps": "key='k1'",
    "counters": "labels LIKE '%k1%'",
    "histograms": "labels LIKE '%k1%'",
    "gap_impacts": "key='k1'",
    "poll_gaps": f"tg_arn='{ARN}1'",
    "polled": f"object_id='{ARN}1'",
}
_HOSTILE = st.sampled_from(
    [
        None,
        "abc",
        "{",
        "[1]",
        "null",
        '{"a": 1}',
        '[["a"]]',
        "[[1, 2, 3]]",
        "[" * 5000 + "]" * 5000,
        b"\xff\x00",
        1e300,
        -1e300,
        float("inf"),
        2**62,
        -1,
        0,
    ]
)


def _read_all(store: StateStore) -> dict[str, Any]:
    """What the daemon reads from the store, converted as it converts it."""
    return {
        "recent": [view_from_stored(g) for g in store.recent_gaps(0)],
        "last": [view_from_stored(g) for g in store.last_gaps()],
        "closed": [view_from_stored(g) for g in store.closed_gaps(TARGET, 0)],
        "counters": store.counters(),
        "histograms": merge_histograms(store.histograms(GAP_DURATION_FAMILY), keep=("n",)),
        "impacts": {k: read_impact(v.data) for k, v in store.gap_impacts(["k0", "k1"]).items()},
        "poll_gaps": store.poll_gaps(TARGET),
        "polled": store.polled(TARGET),
    }


def _has_k0(read: dict[str, Any]) -> None:
    """The good row of each table still reads."""
    assert any(v.key == "k0" for v in read["recent"])
    assert any(v.key == "k0" for v in read["closed"])
    assert any(("n", "k0") in labels for labels in read["counters"]["rule_gaps"])
    assert (("n", "k0"),) in read["histograms"]
    assert read["impacts"]["k0"].impact == "none_seen"
    assert any(arn == f"{ARN}0" for arn, *_ in read["poll_gaps"])
    assert read["polled"][("hc_port", f"{ARN}0")][0][1] == "traffic-port"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("state") / "state.sqlite3"
    _good_store(path)
    return path.read_bytes()


@settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    spoils=st.lists(
        st.sampled_from([(t, c) for t, cs in _COLUMNS.items() for c in cs]).flatmap(
            lambda tc: st.tuples(st.just(tc), _HOSTILE)
        ),
        min_size=1,
        max_size=3,
    )
)
@example(spoils=[(("gaps", "data"), "{")])
@example(spoils=[(("gaps", "start"), 1e300)])
@example(spoils=[(("gaps", "end_time"), "abc")])
@example(spoils=[(("counters", "labels"), '[["a"]]')])
@example(spoils=[(("histograms", "buckets"), "abc")])
@example(spoils=[(("gap_impacts", "data"), "[1]")])
@example(spoils=[(("poll_gaps", "start"), "abc")])
@example(spoils=[(("polled", "seen"), '[["a"]]')])
def test_an_unreadable_row_is_skipped_counted_and_the_good_rows_still_read(
    spoils: list[tuple[tuple[str, str], Any]], template: bytes, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("spoiled") / "state.sqlite3"
    path.write_bytes(template)
    with sqlite3.connect(path) as db:
        for (table, column), value in spoils:
            try:
                db.execute(f"UPDATE {table} SET {column}=? WHERE {_WHERE[table]}", (value,))
            except sqlite3.IntegrityError:  # NOT NULL / PRIMARY KEY: SQLite itself keeps these out
                continue
    db.close()
    store = StateStore(path)
    try:
        read = _read_all(store)
        _has_k0(read)
        assert store.error is None  # a bad row is not a failing store
        assert set(store.rejected_rows) <= set(_COLUMNS)
        again = _read_all(store)  # each bad row counted once, however often it is read
        assert again == read and store.rejected_rows == dict(store.rejected_rows)
    finally:
        store.close()


@pytest.mark.parametrize(
    ("table", "column", "value"),
    [
        ("gaps", "start", "abc"),
        ("gaps", "end_time", 1e300),
        ("counters", "value", "abc"),
        ("histograms", "count", "x"),
        ("gap_impacts", "checked_at", "x"),
        ("poll_gaps", "end_time", "x"),
        ("polled", "seen", "[[1e400, 1]]"),
    ],
)
def test_each_table_counts_its_unreadable_rows_once(
    table: str, column: str, value: Any, template: bytes, tmp_path: Path
) -> None:
    path = tmp_path / "state.sqlite3"
    path.write_bytes(template)
    with sqlite3.connect(path) as db:
        db.execute(f"UPDATE {table} SET {column}=? WHERE {_WHERE[table]}", (value,))
    db.close()
    store = StateStore(path)
    try:
        _has_k0(_read_all(store))
        _read_all(store)
        assert store.rejected_rows == {table: 1}
    finally:
        store.close()


def test_a_gap_is_still_committed_when_its_histogram_row_is_unreadable(
    template: bytes, tmp_path: Path
) -> None:
    path = tmp_path / "state.sqlite3"
    path.write_bytes(template)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE histograms SET buckets='{' WHERE labels LIKE '%k1%'")
    db.close()
    store = StateStore(path)
    try:
        with store.transaction() as db:  # what GapTracker._commit does for a closed gap
            store.upsert_gap(
                db, StoredGap("k2", TARGET, f"{ARN}1", "traffic", 5000.0, 5060.0, "undetermined", False, {})
            )
            store.observe(db, GAP_DURATION_FAMILY, (*LABELS, ("n", "k1")), 60.0)
        assert "k2" in {g.key for g in store.recent_gaps(0)}
        hist = store.histograms(GAP_DURATION_FAMILY)[(*LABELS, ("n", "k1"))]
        assert hist.count == 1 and hist.total == 60.0  # what the unreadable row held is not known
        assert store.rejected_rows == {"histograms": 1}
    finally:
        store.close()


def test_a_time_that_is_no_time_does_not_hide_the_last_gap_of_its_flow(
    template: bytes, tmp_path: Path
) -> None:
    path = tmp_path / "state.sqlite3"
    path.write_bytes(template)
    store = StateStore(path)
    with store.transaction() as db:
        store.upsert_gap(
            db, StoredGap("bad", TARGET, f"{ARN}0", "traffic", 1500.0, 2500.0, "undetermined", False, {})
        )
    store.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE gaps SET end_time='later' WHERE key='bad'")  # text sorts above every number
    db.close()
    store = StateStore(path)
    try:
        assert {g.key for g in store.last_gaps()} == {"k0", "k1"}
    finally:
        store.close()


# --- what the daemon reads from the state file at start ----------------------------------------


def test_a_start_on_a_file_with_an_unreadable_cursor_history_and_record_keeps_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from exporter.config import load_settings
    from exporter.daemon.assemble import build_daemon
    from exporter.daemon.monitor import Monitor
    from tests import cloudtrail_samples as samples

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",  # nothing is called while assembling
    }.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "state.sqlite3"
    store = StateStore(path)

    def describe(_: datetime) -> Any:
        raise AssertionError("not polled")

    monitor = Monitor(
        TARGET, "us-east-1", store, settle_seconds=0, retention_seconds=86400, describe=describe
    )
    when = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    good = samples.revoke_record(
        "ev-good", when, "sg-0123456789abcdef0", [samples.permission(cidrs=["0.0.0.0/0"])]
    )
    spoiled = samples.revoke_record(
        "ev-text", when, "sg-0123456789abcdef0", [samples.permission(cidrs=["10.0.0.0/8"])]
    )
    assert monitor.ingest(when, [good, spoiled]).new == 2
    store.set_meta(f"cursor:lookup_events:{TARGET}", '{"positions": 5}')
    store.set_meta(
        f"binding_intents:{TARGET}",
        f'{{"{ARN}": [[1e300, ["10.0.0.0/8"]], [{when.timestamp()}, ["203.0.113.0/24"]]]}}',
    )
    store.close()
    with sqlite3.connect(path) as db:  # a record kept as text, not as the bytes written
        db.execute("UPDATE records SET record=CAST(record AS TEXT) WHERE event_id='ev-text'")
    db.close()

    settings = load_settings(
        None,
        environ={},
        overrides={
            "targets": [{"region": "us-east-1"}],
            "state": {"path": str(path)},
            "kubernetes": {"enabled": "false"},
            "cloudtrail": {"retention_seconds": 90 * 86400},
        },
    )
    assembly = build_daemon(settings, clock=lambda: when + timedelta(minutes=5))
    try:
        (restored,) = assembly.daemon.monitors
        assert set(restored.changes) == {"ev-good", "ev-text"}
        assert [i.sources for _at, i in restored.binding_history[ARN]] == [("203.0.113.0/24",)]
        (feed,) = assembly.daemon.feeds
        assert isinstance(feed.poller, LookupEventsPoller)
        assert feed.poller.cursor.positions == {}  # read again from the start lookback
    finally:
        assembly.store.close()


def test_a_stored_position_past_now_reads_from_now_and_loses_no_record(clean_moto: MotoServer) -> None:
    from tests import cloudtrail_samples as samples
    from tests.test_cloudtrail_sources import REGION, REVOKE, T0, exporter_clients

    records = [samples.revoke_record(time=T0 + timedelta(seconds=n), region=REGION) for n in range(3)]
    clean_moto.add_records(records)
    cursor = LookupCursor.decode(f'{{"positions": {{"{REVOKE}": "9999-12-31T23:59:59Z"}}}}')
    poller = LookupEventsPoller(
        exporter_clients(clean_moto).client("cloudtrail"),
        TokenBucket(50.0),
        event_names=[REVOKE],
        cursor=cursor,
    )
    batch = poller.poll(T0 + timedelta(minutes=5))  # the overlap (15 minutes) covers the records
    assert batch.complete and sorted(r["eventID"] for r in batch.records) == sorted(
        r["eventID"] for r in records
    )


# --- the daemon over such a file -------------------------------------------------------------------


def test_the_daemon_counts_unreadable_rows_and_publishes_through_a_file_whose_pages_break(
    clean_moto: MotoServer, tmp_path: Path
) -> None:
    from exporter.daemon.assemble import build_daemon
    from tests.awsworld import CloudTrailRecorder, LookupSink, ManualClock, build_incident_world
    from tests.test_faults import _settings
    from tests.test_faults_state import PERMISSION, _metrics
    from tests.test_faults_support import by_label

    ec2, elbv2 = clean_moto.client("ec2"), clean_moto.client("elbv2")
    world = build_incident_world(ec2, elbv2, cluster="demo")
    clock = ManualClock(datetime.now(tz=UTC).replace(microsecond=0))
    CloudTrailRecorder(LookupSink(clean_moto), clock).attach(ec2, elbv2)
    path = tmp_path / "state.sqlite3"
    assembly = build_daemon(_settings(path), endpoint_url=clean_moto.url, clock=clock.now)
    daemon = assembly.daemon

    def metrics() -> str:
        return _metrics(daemon)

    try:
        daemon.run_all_once()
        clock.advance(10)
        ec2.revoke_security_group_ingress(GroupId=world.node_sg_id, IpPermissions=PERMISSION)
        clock.advance(5)
        ec2.authorize_security_group_ingress(GroupId=world.node_sg_id, IpPermissions=PERMISSION)
        clock.advance(5)
        daemon.run_all_once()
        events = by_label(metrics(), "sgchurn_cloudtrail_events_total", "event_name")
        assert events == {"RevokeSecurityGroupIngress": 1.0, "AuthorizeSecurityGroupIngress": 1.0}

        with sqlite3.connect(path) as db:  # one counter row spoiled by hand
            db.execute(
                "UPDATE counters SET value='many' WHERE family='cloudtrail_events' AND labels LIKE '%Revoke%'"
            )
        db.close()
        clock.advance(5)
        daemon.run_all_once()
        text = metrics()
        assert by_label(text, "sgchurn_cloudtrail_events_total", "event_name") == {
            "AuthorizeSecurityGroupIngress": 1.0
        }
        assert by_label(text, "sgchurn_state_rows_rejected_total", "table") == {"counters": 1.0}
        assert by_label(text, "sgchurn_rule_gaps_total", "flow")  # the gaps' counters still read

        with sqlite3.connect(path) as db:  # then its pages: garbage from the third page on
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        size = path.stat().st_size
        with path.open("r+b") as file:
            file.seek(2 * 4096)
            file.write(bytes(range(256)) * ((size - 2 * 4096) // 256 + 1))
        before = daemon.snapshot().generated_at
        clock.advance(5)
        daemon.run_all_once()
        snapshot = daemon.snapshot()
        assert snapshot.generated_at > before  # still published
        state = next(s for s in snapshot.sources if s.source == "state")
        assert not state.up and state.last_error is not None and "malformed" in state.last_error
        text = metrics()
        assert by_label(text, "sgchurn_up", "source")["state"] == 0
        assert by_label(text, "sgchurn_up", "source")["inventory"] == 1
        # what was read last still stands
        assert by_label(text, "sgchurn_cloudtrail_events_total", "event_name") == {
            "AuthorizeSecurityGroupIngress": 1.0
        }
    finally:
        assembly.store.close()


@pytest.mark.parametrize("version", ["abc", "", "1.5", "9" * 5000])
def test_a_schema_version_that_is_no_number_is_an_unusable_file_never_a_crash(
    version: str, tmp_path: Path
) -> None:
    from exporter.daemon.assemble import open_store

    path = tmp_path / "state.sqlite3"
    StateStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (version,))
    db.close()
    store, error = open_store(str(path), reset=True)
    store.close()
    assert store.path == ":memory:" and error is not None and "schema version" in error
    assert path.exists()  # not corruption: nothing moved aside


def test_a_stored_record_over_the_parser_s_limit_is_not_read_into_memory(tmp_path: Path) -> None:
    import tracemalloc

    from exporter.engine.records import MAX_RECORD_BYTES

    store = StateStore(tmp_path / "state.sqlite3")
    try:
        with store.transaction() as db:
            store.add_record(db, "small", TARGET, 1000.0, 1000.0, b'{"eventID": "small"}')
            store.add_record(db, "huge", TARGET, 1001.0, 1001.0, b"x" * (64 * MAX_RECORD_BYTES))
        tracemalloc.start()
        try:
            blobs = store.records(TARGET, 0)
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert blobs == [b'{"eventID": "small"}']
        assert peak < 4 * MAX_RECORD_BYTES  # the 16 MiB blob was never fetched
        assert store.rejected_rows == {"records": 1}
    finally:
        store.close()
