"""StateStore.rejected_rows is read by the daemon's publish while the jobs' threads read the store.

A row rejected on one thread (the impact job reading gap_impacts, the evaluate job reading poll
gaps) while publish walks the counts on another must not break that walk: publish would raise
'dictionary changed size during iteration' out of the job and leave the snapshot unpublished.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from exporter.daemon.state import StateStore

TARGET = "default@us-east-1"
ARN = "arn:aws:elasticloadbalancing:us-east-1:111122223333:targetgroup/k8s-shop-web/0123456789abcdef"


def _spoiled_store(path: Path) -> StateStore:
    """A store with one unreadable counter row and one unreadable poll gap row."""
    store = StateStore(path)
    with store.transaction() as db:
        store.increment(db, "rule_gaps", (("flow", "traffic"),))
        store.open_poll_gap(db, TARGET, ARN, "traffic", 1000.0)
    store.close()
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE counters SET labels='not json'")
        db.execute("UPDATE poll_gaps SET start='not a time'")
    return StateStore(path)


def test_a_row_rejected_while_the_counts_are_walked_does_not_disturb_the_walk(tmp_path: Path) -> None:
    store = _spoiled_store(tmp_path / "state.sqlite3")
    assert store.counters() == {}
    counts = store.rejected_rows
    walked = iter(counts.items())
    assert next(walked) == ("counters", 1)
    assert store.poll_gaps(TARGET) == []  # another table's row rejected meanwhile
    assert list(walked) == []  # the walk that began goes on over what it began with
    assert store.rejected_rows == {"counters": 1, "poll_gaps": 1}
