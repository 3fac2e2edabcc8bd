"""The golden exposition: the exact /metrics bodies of a small fixed snapshot, in tests/data/exposition/.

`tests/test_golden_exposition.py` serves `golden_snapshot()` with the real WebServer and compares
each /metrics body byte for byte with its file, so any change to names, labels, HELP, order or
number formatting shows in review as a diff of these files (as node_exporter's e2e fixture does).

After an intended change of the exposition, regenerate the files and review the diff:

    .venv/bin/python -m tests.golden_exposition
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import requests

from exporter.daemon.snapshot import Snapshot
from exporter.web import WebServer
from tests.snapshot_samples import sample_snapshot

DIRECTORY = Path(__file__).resolve().parent / "data" / "exposition"
NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)

#: File name -> the Accept header Prometheus sends for that format.
ACCEPTS: Mapping[str, str] = {
    "metrics.txt": "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "metrics.openmetrics.txt": "application/openmetrics-text;version=1.0.0;q=0.9,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
}


def golden_snapshot() -> Snapshot:
    """Two target groups, one open gap, two closed ones: every family has series."""
    return sample_snapshot(NOW, ready=True)


def served_bodies(snapshot: Snapshot) -> dict[str, bytes]:
    """File name -> the /metrics body the real server sends for that file's Accept header."""
    web = WebServer(lambda: snapshot, "127.0.0.1", 0, clock=lambda: NOW)
    web.start()
    try:
        bodies = {}
        for name, accept in ACCEPTS.items():
            response = requests.get(
                web.url + "/metrics", headers={"Accept": accept, "Accept-Encoding": "identity"}, timeout=30
            )
            response.raise_for_status()
            bodies[name] = response.content
        return bodies
    finally:
        web.stop()


def main() -> int:
    DIRECTORY.mkdir(parents=True, exist_ok=True)
    for name, body in served_bodies(golden_snapshot()).items():
        (DIRECTORY / name).write_bytes(body)
        sys.stdout.write(f"wrote {DIRECTORY / name} ({len(body)} bytes)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
