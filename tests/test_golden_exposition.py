"""The /metrics bodies of a fixed snapshot, byte for byte (regenerate: python -m tests.golden_exposition)."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from exporter.metrics import build_registry
from exporter.web import WebServer
from tests.golden_exposition import ACCEPTS, DIRECTORY, NOW, golden_snapshot, served_bodies
from tests.promstack import PromStack

REGENERATE = "after an intended change: .venv/bin/python -m tests.golden_exposition, then review the diff"


@pytest.fixture(scope="module")
def served() -> dict[str, bytes]:
    return served_bodies(golden_snapshot())


@pytest.mark.parametrize("name", sorted(ACCEPTS))
def test_metrics_body_is_the_golden_file(served: dict[str, bytes], name: str) -> None:
    golden = (DIRECTORY / name).read_bytes()
    body = served[name]
    if body != golden:
        diff = [
            f"line {i + 1}:\n  golden: {a!r}\n  served: {b!r}"
            for i, (a, b) in enumerate(zip(golden.splitlines(), body.splitlines(), strict=False))
            if a != b
        ]
        pytest.fail(f"{name} differs ({REGENERATE}); first differences:\n" + "\n".join(diff[:5]))


def test_the_golden_files_are_prometheus_clients_bytes() -> None:
    """The files are what prometheus_client's encoders write for the same snapshot, so a
    regeneration cannot bless bytes that drifted from the reference."""
    registry = build_registry(golden_snapshot)
    assert (DIRECTORY / "metrics.txt").read_bytes() == generate_latest(registry)
    assert (DIRECTORY / "metrics.openmetrics.txt").read_bytes() == generate_openmetrics(registry)


def test_the_golden_snapshot_fills_every_family() -> None:
    families = text_string_to_metric_families((DIRECTORY / "metrics.txt").read_text())
    assert [family.name for family in families if not family.samples] == [], "families without series"


@pytest.mark.e2e
def test_a_real_prometheus_scrapes_the_openmetrics_body_and_keeps_its_units(tmp_path: Path) -> None:
    """Prometheus negotiates OpenMetrics and rejects a whole scrape whose UNIT is not its name's
    suffix: the served golden snapshot is scraped up, with the units as its metadata."""
    snapshot = golden_snapshot()
    web = WebServer(lambda: snapshot, "127.0.0.1", 0, clock=lambda: NOW)
    web.start()
    try:
        with PromStack.start(tmp_path, targets=[web.url.removeprefix("http://").rstrip("/")]) as stack:
            stack.wait_until_scraped()
            units = stack.wait_for(
                lambda: (
                    {name: entries[0]["unit"] for name, entries in stack._api("/api/v1/metadata").items()}
                    or None
                ),
                timeout=30,
                message="metadata of the scraped families",
            )
    finally:
        web.stop()
    assert units["sgchurn_cloudtrail_lag_seconds"] == "seconds"
    assert units["sgchurn_job_duration_seconds"] == "seconds"
    assert units["sgchurn_target_group_reachability_ratio"] == "ratio"
    assert units["sgchurn_up"] == ""
