"""Which shard owns which (account, region): a stable hash, the same in every process."""

from __future__ import annotations

import hashlib


def target_key(account_or_role: str | None, region: str) -> str:
    """The identity a target is sharded by: its role (or "default") and region."""
    return f"{account_or_role or 'default'}@{region}"


def shard_of(key: str, total_shards: int) -> int:
    """The shard in [0, total_shards) that owns `key`; stable across processes and versions."""
    if total_shards < 1:
        raise ValueError("total_shards must be >= 1")
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % total_shards


def owned(keys: list[str], shard: int, total_shards: int) -> list[str]:
    """The keys this shard owns."""
    return [k for k in keys if shard_of(k, total_shards) == shard]
