"""Sharding: every (account, region) is owned by exactly one shard; shards split real work."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import generate_latest

from exporter.config import load_settings
from exporter.daemon.assemble import build_daemon
from exporter.metrics import build_registry
from exporter.sharding import owned, shard_of, target_key
from tests.awsworld import MotoServer, build_incident_world

REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2", "sa-east-1"]


@pytest.mark.parametrize("total", [1, 2, 3, 5, 8, 13])
def test_every_target_is_owned_by_exactly_one_shard(total: int) -> None:
    keys = [target_key(f"arn:aws:iam::{100000000000 + a}:role/x", r) for a in range(40) for r in REGIONS]
    keys += [target_key(None, r) for r in REGIONS]
    shares = [owned(keys, shard, total) for shard in range(total)]
    assert sorted(k for share in shares for k in share) == sorted(keys)
    assert all(0 <= shard_of(k, total) < total for k in keys)
    if total > 1:
        assert sum(1 for share in shares if share) > 1  # the hash spreads work, it does not pile it up


def test_the_assignment_is_stable_across_calls_and_processes() -> None:
    # sha256-based: the same on every machine and Python build (no PYTHONHASHSEED dependence).
    assert shard_of("default@us-east-1", 2) == shard_of("default@us-east-1", 2)
    assert [shard_of(target_key(None, r), 2) for r in REGIONS] == [0, 0, 1, 0, 1, 1]


def test_two_shards_side_by_side_split_the_regions(clean_moto: MotoServer, tmp_path: Path) -> None:
    worlds = {}
    for region in ("us-east-1", "eu-west-1"):
        worlds[region] = build_incident_world(
            clean_moto.client("ec2", region=region), clean_moto.client("elbv2", region=region)
        )
    snapshots = []
    for shard in (0, 1):
        settings = load_settings(
            None,
            environ={},
            overrides={
                "targets": [{"region": r} for r in ("us-east-1", "eu-west-1")],
                "state": {"path": str(tmp_path / f"shard{shard}.db")},
                "kubernetes": {"enabled": "false"},
                "sharding": {"shard": shard, "total_shards": 2},
            },
        )
        assembly = build_daemon(settings, endpoint_url=clean_moto.url)
        assembly.daemon.run_all_once()
        snapshots.append(assembly.daemon.snapshot())
        text = generate_latest(build_registry(assembly.daemon.snapshot)).decode()
        assert f'sgchurn_shard_info{{shard="{shard}",total_shards="2"}} 1.0' in text
    regions = [{tg.aws_region for tg in snap.target_groups} for snap in snapshots]
    assert regions == [{"us-east-1"}, {"eu-west-1"}]
    assert [snap.owned_targets for snap in snapshots] == [
        ((snapshots[0].owned_targets[0][0], "us-east-1"),),
        ((snapshots[1].owned_targets[0][0], "eu-west-1"),),
    ]
