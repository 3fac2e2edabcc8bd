"""The landing page's per-target-group explanation, built from a monitor's current state."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from exporter.daemon.monitor import Monitor
from exporter.engine.explain import current_state, explain_target_group
from exporter.reports.explain import explanation_text


def explain_provider(
    monitors: Sequence[Monitor], clock: Callable[[], datetime]
) -> Callable[[str], str | None]:
    """name -> a plain-text explanation of that target group now, or None when no monitor knows it."""

    def explain(name: str) -> str | None:
        for monitor in monitors:
            inventory = monitor.inventory
            if inventory is None:
                continue
            for arn, tg in inventory.target_groups.items():
                if tg.name == name:
                    state = current_state(inventory, list(monitor.changes.values()))
                    analysis = monitor.analysis
                    if analysis is not None:  # the intents the last evaluation judged by
                        inventory = inventory.with_intents({**inventory.intents, **analysis.intents})
                    return explanation_text(explain_target_group(inventory, arn, state, at=clock()))
        return None

    return explain
