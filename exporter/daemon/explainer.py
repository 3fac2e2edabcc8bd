"""The landing page's per-target-group explanation, from a published snapshot only.

Each monitor's last evaluation leaves its basis in the snapshot (inventory, learned intents,
changes); the explanation is built from it on demand. The web server keeps what it builds per
snapshot (exporter/web_limits.py), so each target group is explained at most once per snapshot.
"""

from __future__ import annotations

from exporter.daemon.snapshot import Snapshot
from exporter.engine.explain import current_state, explain_target_group
from exporter.reports.explain import explanation_text


def explain(snapshot: Snapshot, name: str) -> str | None:
    """A plain-text explanation of target group `name` as of the snapshot, or None when no
    monitor's basis knows it. The rules as of the snapshot's evaluation, judged by the intents
    that evaluation learned."""
    for basis in snapshot.explain_bases:
        inventory = basis.inventory
        for arn, tg in inventory.target_groups.items():
            if tg.name == name:
                state = current_state(inventory, basis.changes)
                intended = inventory.with_intents({**inventory.intents, **basis.intents})
                return explanation_text(explain_target_group(intended, arn, state, at=snapshot.generated_at))
    return None
