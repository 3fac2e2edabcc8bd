"""`backfill --gaps`: the incident rebuilt from an S3 organization trail, through the real API."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from exporter.cli import main
from tests.awsworld import MotoServer
from tests.test_cloudtrail_sources import trail_bucket


def test_backfill_rebuilds_the_gaps_of_an_s3_trail(
    clean_moto: MotoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    world = trail_bucket(clean_moto, now)["world"]
    inventory_file = tmp_path / "inventory.json"
    assert main(["snapshot", "--output", str(inventory_file)]) == 0
    argv = ["backfill", "--bucket", "org-trail", "--prefix", "trails", "--since", "2d", "--gaps"]
    assert main([*argv, "--inventory", str(inventory_file)]) == 0
    found = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    gaps = [g for g in found if g["target_group_arn"] == world.tg_arn]
    closed = sorted((g["flow"], g["cause"], g["duration_seconds"]) for g in gaps if g["end"])
    still_open = sorted((g["flow"], g["cause"]) for g in gaps if g["end"] is None)
    assert closed == [
        ("health_check", "revoke_before_authorize", 30.0),
        ("traffic", "revoke_before_authorize", 30.0),
    ]
    assert still_open == [("health_check", "revoke_without_restore"), ("traffic", "revoke_without_restore")]
    assert all(g["actor"] for g in gaps)
    assert main(argv) == 2  # --gaps without an inventory has no anchor
    assert "--inventory" in capsys.readouterr().err
