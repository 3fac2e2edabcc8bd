"""The short words for a rule and a flow (`tcp/80 from 10.0.0.0/16`) and for what a gap's
trigger changed, shared by every report."""

from __future__ import annotations

from collections.abc import Iterable

from exporter.engine.rules import ALL_PROTOCOLS, Flow, Rule
from exporter.engine.triggers import Trigger


def rule_text(rule: Rule) -> str:
    """`protocol/ports from source`; ports `all` for every port, `a-b` for a range."""
    if rule.protocol == ALL_PROTOCOLS or rule.from_port == -1:
        ports = "all"
    elif rule.from_port == rule.to_port:
        ports = str(rule.from_port)
    else:
        ports = f"{rule.from_port}-{rule.to_port}"
    return f"{rule.protocol}/{ports} from {rule.source}"


def flow_text(flow: Flow) -> str:
    """`protocol/port from source`."""
    return f"{flow.protocol}/{flow.port} from {flow.source}"


def attributes_text(attributes: Iterable[tuple[str, str]]) -> str:
    """`key=value, key=value`: the attributes a change set."""
    return ", ".join(f"{k}={v}" for k, v in attributes)


def trigger_detail(trigger: Trigger) -> str:
    """What the trigger changed: its attributes; a Kubernetes write also names what it wrote
    (`Service write: preserve_client_ip.enabled=true`)."""
    changed = attributes_text(trigger.attributes)
    if trigger.source == "kubernetes":
        return f"{trigger.event_name}: {changed}" if changed else trigger.event_name
    return changed
