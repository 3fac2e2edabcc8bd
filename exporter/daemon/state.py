"""Durable state in SQLite: CloudTrail records seen, cursors, gaps, and persisted counters.

A restart resumes from here: an open gap keeps its original start, no event is counted twice,
counters continue where they stopped. One connection, used under a lock by the jobs.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import structlog

from exporter.daemon.snapshot import GAP_DURATION_BUCKETS, HistogramState, Labels
from exporter.engine.overlay import PriorKey
from exporter.engine.polls import Polled, seen_from_json
from exporter.engine.records import MAX_RECORD_BYTES

SCHEMA_VERSION = 1
GAP_MERGE_TOLERANCE_SECONDS = 5.0
#: 9999-12-31T23:59:59Z in epoch seconds: the last moment a datetime holds. A stored time outside
#: [0, LAST_SECOND] (a corrupt or hand-edited file) is no time.
LAST_SECOND = 253_402_300_799
#: What reading a row can raise when the file holds something else than this module wrote: text
#: where a number was, JSON that is not JSON or nested past the recursion limit, a shape other
#: than the one written.
ROW_ERRORS = (ValueError, TypeError, AttributeError, KeyError, IndexError, OverflowError, RecursionError)

log = structlog.get_logger("sg-churn-exporter")
R = TypeVar("R")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    event_id TEXT PRIMARY KEY, target TEXT NOT NULL, event_time REAL NOT NULL,
    seen_at REAL NOT NULL, record BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS records_by_target_time ON records (target, event_time);
CREATE TABLE IF NOT EXISTS gaps (
    key TEXT PRIMARY KEY, target TEXT NOT NULL, tg_arn TEXT NOT NULL, flow TEXT NOT NULL,
    start REAL NOT NULL, end_time REAL, cause TEXT NOT NULL, explained INTEGER NOT NULL,
    data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS gaps_by_flow ON gaps (target, tg_arn, flow, start);
CREATE TABLE IF NOT EXISTS poll_gaps (
    target TEXT NOT NULL, tg_arn TEXT NOT NULL, flow TEXT NOT NULL, start REAL NOT NULL,
    end_time REAL, PRIMARY KEY (target, tg_arn, flow, start));
CREATE TABLE IF NOT EXISTS counters (
    family TEXT NOT NULL, labels TEXT NOT NULL, value REAL NOT NULL, PRIMARY KEY (family, labels));
CREATE TABLE IF NOT EXISTS histograms (
    family TEXT NOT NULL, labels TEXT NOT NULL, buckets TEXT NOT NULL, total REAL NOT NULL,
    count INTEGER NOT NULL, PRIMARY KEY (family, labels));
CREATE TABLE IF NOT EXISTS counted (kind TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (kind, key));
CREATE TABLE IF NOT EXISTS polled (
    target TEXT NOT NULL, what TEXT NOT NULL, object_id TEXT NOT NULL, seen TEXT NOT NULL,
    PRIMARY KEY (target, what, object_id));
CREATE TABLE IF NOT EXISTS gap_impacts (
    key TEXT PRIMARY KEY, target TEXT NOT NULL, checked_at REAL NOT NULL, final INTEGER NOT NULL,
    data TEXT NOT NULL);
"""


#: Mode of a state file this process creates: it holds CloudTrail records (who changed what).
STATE_FILE_MODE = 0o600


class StateError(RuntimeError):
    """The state file cannot be used (corrupt, locked, not writable); the message says what to do.

    `kind` says why: "corrupt" (fails SQLite's integrity check: the only kind `--reset-state`
    moves aside), "locked" (another process holds it: in use, not broken), "permission" (this
    process may not write it) or "unusable" (anything else: a newer schema, an I/O error).
    """

    def __init__(self, message: str, *, kind: str = "unusable") -> None:
        super().__init__(message)
        self.kind = kind

    @property
    def locked(self) -> bool:
        return self.kind == "locked"


def _is_permission(exc: BaseException) -> bool:
    if isinstance(exc, PermissionError):
        return True
    if isinstance(exc, OSError):
        return exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS)
    text = str(exc).lower()
    return "readonly" in text or "read-only" in text or "permission denied" in text


def _create_private(path: str) -> None:
    """Create the file mode 0600 before SQLite does (SQLite gives its -wal/-shm files the same mode);
    a file that exists must be writable by this process."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, STATE_FILE_MODE)
    except OSError as exc:
        if _is_permission(exc):
            raise StateError(f"cannot write {path}: permission denied", kind="permission") from exc
        raise StateError(f"cannot open {path}: {exc.strerror or exc}") from exc
    os.close(fd)


@dataclass(frozen=True)
class StoredGap:
    key: str
    target: str
    tg_arn: str
    flow: str
    start: float
    end: float | None
    cause: str
    explained: bool
    data: dict[str, Any]


@dataclass(frozen=True)
class StoredImpact:
    checked_at: float
    final: bool  # no further check will change it (every source read, or given up)
    data: dict[str, Any]  # reports/impact.py: ImpactJson, read by read_impact


def _labels_text(labels: Labels) -> str:
    return json.dumps(list(labels), separators=(",", ":"))


def _labels_from(text: str) -> Labels:
    return tuple((read_text(k), read_text(v)) for k, v in json.loads(text))


def read_text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"not text: {type(value).__name__}")
    return value


def read_number(value: Any) -> float:
    """A stored REAL: an int or a float (SQLite keeps text that is no number as text)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"not a number: {type(value).__name__}")
    return float(value)


def read_moment(value: Any) -> float:
    """A stored time (epoch seconds) that a datetime holds."""
    seconds = read_number(value)
    if not 0 <= seconds <= LAST_SECOND:
        raise ValueError(f"not a time: {seconds:g}")
    return seconds


def _json_object(text: Any) -> dict[str, Any]:
    """A stored JSON object; {} for anything else (the fields it held then read as their defaults)."""
    try:
        value = json.loads(text)
    except (*ROW_ERRORS, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def _buckets(text: Any) -> tuple[int, ...]:
    counts = json.loads(text)
    if not isinstance(counts, list) or any(isinstance(c, bool) or not isinstance(c, int) for c in counts):
        raise TypeError("buckets are not a list of counts")
    return tuple(counts)


class StateStore:
    """SQLite-backed state. Use ":memory:" for a throw-away store."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        #: The last failed read or write ("Type: message"); None again once a write commits.
        self.error: str | None = None
        if self.path != ":memory:":
            if not self.path.strip():
                raise StateError("state.path is empty")
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                kind = "permission" if _is_permission(exc) else "unusable"
                raise StateError(
                    f"cannot create the folder of {self.path}: {exc.strerror or exc}", kind=kind
                ) from exc
            _create_private(self.path)
        self._lock = threading.RLock()
        #: Rows that could not be read, by table (each row counted once): skipped, never deleted.
        #: Replaced, never changed in place, so a reader on another thread may walk the one it holds.
        self.rejected_rows: Mapping[str, int] = {}
        self._rejected: set[tuple[str, Any]] = set()
        try:
            self._db = sqlite3.connect(self.path, timeout=2.0, check_same_thread=False, isolation_level=None)
            self._db.execute(
                "PRAGMA journal_mode=WAL" if self.path != ":memory:" else "PRAGMA journal_mode=MEMORY"
            )
            self._db.execute("PRAGMA synchronous=NORMAL")
            status = self._db.execute("PRAGMA quick_check").fetchone()
            if status is None or status[0] != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {status}")
            self._db.executescript(_SCHEMA)
            version = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if version is None:
                self._db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif str(version[0]) != str(SCHEMA_VERSION):  # any other text too (no int() to raise)
                raise StateError(
                    f"state file {self.path} has schema version {str(version[0])[:40]}, this build reads "
                    f"{SCHEMA_VERSION}; move it away to start fresh"
                )
            # A file already in WAL mode opens and reads even while another process holds a write
            # lock; only writes would fail, later, inside the jobs. Take the write lock once now.
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("ROLLBACK")
        except sqlite3.OperationalError as exc:
            if _is_permission(exc):
                raise StateError(f"cannot write {self.path}: permission denied", kind="permission") from exc
            if "locked" in str(exc) or "busy" in str(exc):
                raise StateError(
                    f"state file {self.path} cannot be opened ({exc}); is another exporter using it?",
                    kind="locked",
                ) from exc
            raise StateError(f"state file {self.path} cannot be opened ({exc})") from exc
        except sqlite3.DatabaseError as exc:
            raise StateError(
                f"state file {self.path} is corrupt ({exc}); start with --reset-state to move it aside and "
                "start fresh (CloudTrail records are re-read for the lookback window)",
                kind="corrupt",
            ) from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit of work: everything inside commits together or not at all.

        A failure (disk full, read-only, locked) is kept in `error` until a later transaction
        commits a change: only a write that succeeded shows the store accepts writes again.
        """
        with self._lock:
            before = self._db.total_changes
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    # after SQLITE_FULL, SQLite may have rolled back already
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                    raise
                try:
                    self._db.execute("COMMIT")
                except sqlite3.Error:
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                self.note_failure(exc)
                raise
            if self._db.total_changes != before:
                self.error = None

    def note_failure(self, exc: BaseException) -> None:
        """Remember a failed read or write (shown as sgchurn_up{source="state"} 0 until a write commits)."""
        self.error = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._db
            except sqlite3.Error as exc:
                self.note_failure(exc)
                raise

    def _readable(self, table: str, rows: Iterable[Any], read: Callable[[Any], R]) -> list[R]:
        """Each row read by `read`; a row it cannot read (a corrupt or hand-edited file) is
        skipped, counted in rejected_rows and logged once. The row's first column is its rowid."""
        out: list[R] = []
        for row in rows:
            try:
                out.append(read(row[1:]))
            except ROW_ERRORS as exc:
                with self._lock:  # the jobs' threads read the store at once
                    if (table, row[0]) in self._rejected:
                        continue
                    self._rejected.add((table, row[0]))
                    # a new mapping: publish may be walking the one it holds on another thread
                    self.rejected_rows = {**self.rejected_rows, table: self.rejected_rows.get(table, 0) + 1}
                error = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
                log.warning("state row unreadable; skipped", table=table, rowid=row[0], error=error)
        return out

    def heartbeat(self, moment: str) -> None:
        """A small write, so a store that stopped accepting writes is seen even when nothing else changes."""
        with self.transaction() as db:
            self.set_meta("heartbeat", moment, db)

    # --- meta: cursors and small values -------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        with self._reading() as db:
            row = db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str, db: sqlite3.Connection | None = None) -> None:
        if db is not None:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
            return
        with self.transaction() as own:
            own.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # --- records ------------------------------------------------------------------------
    def add_record(
        self,
        db: sqlite3.Connection,
        event_id: str,
        target: str,
        event_time: float,
        seen_at: float,
        record: bytes,
    ) -> bool:
        """Store a record; False when its eventID was already stored (a duplicate)."""
        cursor = db.execute(
            "INSERT OR IGNORE INTO records VALUES (?, ?, ?, ?, ?)",
            (event_id, target, event_time, seen_at, record),
        )
        return cursor.rowcount == 1

    def has_record(self, event_id: str) -> bool:
        with self._reading() as db:
            return db.execute("SELECT 1 FROM records WHERE event_id=?", (event_id,)).fetchone() is not None

    def records(self, target: str, since: float) -> list[bytes]:
        with self._reading() as db:
            # a record over the parser's limit was never stored by this module: not read into memory
            rows = db.execute(
                "SELECT rowid, CASE WHEN length(record) <= ? THEN record END FROM records "
                "WHERE target=? AND event_time>=? ORDER BY event_time",
                (MAX_RECORD_BYTES, target, since),
            ).fetchall()
        return self._readable("records", rows, _record)

    def prune_records(self, seen_before: float) -> int:
        with self.transaction() as db:
            return int(db.execute("DELETE FROM records WHERE seen_at<?", (seen_before,)).rowcount)

    # --- counters and histograms ---------------------------------------------------------
    def increment(self, db: sqlite3.Connection, family: str, labels: Labels, amount: float = 1.0) -> None:
        db.execute(
            "INSERT INTO counters VALUES (?, ?, ?) ON CONFLICT(family, labels) DO UPDATE SET value=value+excluded.value",
            (family, _labels_text(labels), amount),
        )

    def raise_to(self, db: sqlite3.Connection, family: str, labels: Labels, value: float) -> None:
        """Keep the largest value seen for (family, labels): a persisted "last time" gauge, which
        the counters table holds beside the counters (it is read with them)."""
        db.execute(
            "INSERT INTO counters VALUES (?, ?, ?) ON CONFLICT(family, labels) DO UPDATE SET value=MAX(value, excluded.value)",
            (family, _labels_text(labels), value),
        )

    def count_once(self, db: sqlite3.Connection, kind: str, key: str) -> bool:
        """True the first time (kind, key) is seen; used to count a thing exactly once."""
        return db.execute("INSERT OR IGNORE INTO counted VALUES (?, ?)", (kind, key)).rowcount == 1

    def observe(self, db: sqlite3.Connection, family: str, labels: Labels, value: float) -> None:
        row = db.execute(
            "SELECT rowid, labels, buckets, total, count FROM histograms WHERE family=? AND labels=?",
            (family, _labels_text(labels)),
        ).fetchone()
        # an unreadable row (counted, logged) starts again from zero: what it held is not known
        read = self._readable("histograms", [row] if row else [], _histogram)
        size = len(GAP_DURATION_BUCKETS) + 1
        before = (
            read[0][1] if read and len(read[0][1].buckets) == size else HistogramState((0,) * size, 0.0, 0)
        )
        buckets = list(before.buckets)
        for i, bound in enumerate((*GAP_DURATION_BUCKETS, float("inf"))):
            if value <= bound:
                buckets[i] += 1
        total = before.total + value
        count = before.count + 1
        db.execute(
            "INSERT OR REPLACE INTO histograms VALUES (?, ?, ?, ?, ?)",
            (family, _labels_text(labels), json.dumps(buckets), total, count),
        )

    def counters(self) -> dict[str, dict[Labels, float]]:
        with self._reading() as db:
            rows = db.execute("SELECT rowid, family, labels, value FROM counters").fetchall()
        out: dict[str, dict[Labels, float]] = {}
        for family, labels, value in self._readable("counters", rows, _counter):
            out.setdefault(family, {})[labels] = value
        return out

    def histograms(self, family: str) -> dict[Labels, HistogramState]:
        with self._reading() as db:
            rows = db.execute(
                "SELECT rowid, labels, buckets, total, count FROM histograms WHERE family=?", (family,)
            ).fetchall()
        return dict(self._readable("histograms", rows, _histogram))

    # --- gaps -----------------------------------------------------------------------------
    def overlapping_gap(
        self, db: sqlite3.Connection, target: str, tg_arn: str, flow: str, start: float, end: float
    ) -> StoredGap | None:
        """A committed gap of the same flow whose interval overlaps [start, end] (with a small tolerance)."""
        tol = GAP_MERGE_TOLERANCE_SECONDS
        row = db.execute(
            "SELECT key, target, tg_arn, flow, start, end_time, cause, explained, data FROM gaps "
            "WHERE target=? AND tg_arn=? AND flow=? AND start<=? AND COALESCE(end_time, 1e18)>=? "
            "ORDER BY start LIMIT 1",
            (target, tg_arn, flow, end + tol, start - tol),
        ).fetchone()
        if row is None:
            return None
        try:
            return _stored(row)
        except ROW_ERRORS:
            return None  # unreadable: the gap written now takes its place

    def upsert_gap(self, db: sqlite3.Connection, gap: StoredGap) -> None:
        db.execute(
            "INSERT OR REPLACE INTO gaps VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                gap.key,
                gap.target,
                gap.tg_arn,
                gap.flow,
                gap.start,
                gap.end,
                gap.cause,
                int(gap.explained),
                json.dumps(gap.data, sort_keys=True),
            ),
        )

    def delete_gap(self, db: sqlite3.Connection, key: str) -> None:
        db.execute("DELETE FROM gaps WHERE key=?", (key,))

    def recent_gaps(self, since: float, limit: int = 200) -> list[StoredGap]:
        with self._reading() as db:
            rows = db.execute(
                "SELECT rowid, key, target, tg_arn, flow, start, end_time, cause, explained, data FROM gaps "
                "WHERE end_time IS NOT NULL AND end_time>=? ORDER BY end_time DESC LIMIT ?",
                (since, limit),
            ).fetchall()
        return self._readable("gaps", rows, _stored)

    def closed_gaps(self, target: str, since: float) -> list[StoredGap]:
        """One target's closed gaps that ended at or after `since`, oldest end first."""
        with self._reading() as db:
            rows = db.execute(
                "SELECT rowid, key, target, tg_arn, flow, start, end_time, cause, explained, data FROM gaps "
                "WHERE target=? AND end_time IS NOT NULL AND end_time>=? ORDER BY end_time",
                (target, since),
            ).fetchall()
        return self._readable("gaps", rows, _stored)

    def last_gaps(self) -> list[StoredGap]:
        """The most recent closed gap per (target, target group, flow)."""
        with self._reading() as db:
            rows = db.execute(
                "SELECT rowid, key, target, tg_arn, flow, start, MAX(end_time), cause, explained, data FROM gaps "
                # a time that is no time (text sorts above numbers) must not hide the last real one
                "WHERE typeof(end_time) IN ('integer', 'real') AND end_time BETWEEN 0 AND ? "
                "GROUP BY target, tg_arn, flow",
                (LAST_SECOND,),
            ).fetchall()
        return self._readable("gaps", rows, _stored)

    # --- the impact of closed gaps (daemon/impacts.py) -------------------------------------------
    def gap_impacts(self, keys: Iterable[str]) -> dict[str, StoredImpact]:
        """The impact checked for each of these gap keys (those never checked are absent)."""
        wanted = list(dict.fromkeys(keys))
        out: dict[str, StoredImpact] = {}
        with self._reading() as db:
            for first in range(0, len(wanted), 500):  # SQLite's bound-parameter limit is far above
                chunk = wanted[first : first + 500]
                marks = ",".join("?" * len(chunk))
                rows = db.execute(
                    f"SELECT rowid, key, checked_at, final, data FROM gap_impacts WHERE key IN ({marks})",
                    chunk,
                ).fetchall()
                out.update(self._readable("gap_impacts", rows, _impact))
        return out

    def set_gap_impact(
        self,
        db: sqlite3.Connection,
        key: str,
        target: str,
        checked_at: float,
        final: bool,
        data: dict[str, Any],
    ) -> None:
        db.execute(
            "INSERT OR REPLACE INTO gap_impacts VALUES (?, ?, ?, ?, ?)",
            (key, target, checked_at, int(final), json.dumps(data, sort_keys=True)),
        )

    # --- gaps seen by inventory polls ----------------------------------------------------------
    def poll_gaps(self, target: str) -> list[tuple[str, str, float, float | None]]:
        with self._reading() as db:
            rows = db.execute(
                "SELECT rowid, tg_arn, flow, start, end_time FROM poll_gaps WHERE target=? ORDER BY start",
                (target,),
            ).fetchall()
        return self._readable("poll_gaps", rows, _poll_gap)

    def open_poll_gap(
        self, db: sqlite3.Connection, target: str, tg_arn: str, flow: str, start: float
    ) -> None:
        db.execute("INSERT OR IGNORE INTO poll_gaps VALUES (?, ?, ?, ?, NULL)", (target, tg_arn, flow, start))

    def close_poll_gap(self, db: sqlite3.Connection, target: str, tg_arn: str, flow: str, end: float) -> None:
        db.execute(
            "UPDATE poll_gaps SET end_time=? WHERE target=? AND tg_arn=? AND flow=? AND end_time IS NULL",
            (end, target, tg_arn, flow),
        )

    def drop_poll_gap(
        self, db: sqlite3.Connection, target: str, tg_arn: str, flow: str, start: float
    ) -> None:
        db.execute(
            "DELETE FROM poll_gaps WHERE target=? AND tg_arn=? AND flow=? AND start=?",
            (target, tg_arn, flow, start),
        )

    # --- what the inventory polls saw (engine/polls.py), one row per key -------------------------
    def polled(self, target: str) -> dict[PriorKey, Polled]:
        """The values the inventory polls saw, by key (a row that does not read is skipped)."""
        with self._reading() as db:
            rows = db.execute(
                "SELECT rowid, what, object_id, seen FROM polled WHERE target=?", (target,)
            ).fetchall()
        return dict(self._readable("polled", rows, _polled))

    def save_polled(
        self, target: str, changed: Iterable[tuple[str, str, str]], dropped: Iterable[tuple[str, str]]
    ) -> None:
        """Store the keys whose values changed and forget the dropped ones, in one transaction."""
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO polled VALUES (?, ?, ?, ?)", ((target, *row) for row in changed)
            )
            db.executemany(
                "DELETE FROM polled WHERE target=? AND what=? AND object_id=?",
                ((target, *key) for key in dropped),
            )


def _polled(row: Iterable[Any]) -> tuple[PriorKey, Polled]:
    what, object_id, text = row
    seen = seen_from_json(str(text))
    if seen is None:
        raise ValueError("the polled values do not read")
    return (str(what), str(object_id)), seen


def _stored(row: Iterable[Any]) -> StoredGap:
    key, target, tg_arn, flow, start, end, cause, explained, data = row
    return StoredGap(
        key=read_text(key),
        target=read_text(target),
        tg_arn=read_text(tg_arn),
        flow=read_text(flow),
        start=read_moment(start),
        end=None if end is None else read_moment(end),
        cause=read_text(cause),
        explained=bool(read_number(explained)),
        data=_json_object(data),
    )


def _record(row: Iterable[Any]) -> bytes:
    (record,) = row
    if isinstance(record, str):
        return record.encode()
    if record is None:
        raise ValueError(f"a record over {MAX_RECORD_BYTES} bytes")
    if not isinstance(record, bytes):
        raise TypeError(f"a record is not text: {type(record).__name__}")
    return record


def _counter(row: Iterable[Any]) -> tuple[str, Labels, float]:
    family, labels, value = row
    return read_text(family), _labels_from(labels), read_number(value)


def _histogram(row: Iterable[Any]) -> tuple[Labels, HistogramState]:
    labels, buckets, total, count = row
    return _labels_from(labels), HistogramState(
        _buckets(buckets), read_number(total), int(read_number(count))
    )


def _impact(row: Iterable[Any]) -> tuple[str, StoredImpact]:
    key, checked_at, final, data = row
    return read_text(key), StoredImpact(read_moment(checked_at), bool(read_number(final)), _json_object(data))


def _poll_gap(row: Iterable[Any]) -> tuple[str, str, float, float | None]:
    tg_arn, flow, start, end = row
    return read_text(tg_arn), read_text(flow), read_moment(start), None if end is None else read_moment(end)
