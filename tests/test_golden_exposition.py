"""The /metrics bodies of a fixed snapshot, byte for byte (regenerate: python -m tests.golden_exposition)."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from exporter.metrics import build_registry
from tests.golden_exposition import ACCEPTS, DIRECTORY, golden_snapshot, served_bodies

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
