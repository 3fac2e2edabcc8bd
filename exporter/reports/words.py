"""The short words for a rule and a flow (`tcp/80 from 10.0.0.0/16`), shared by every report."""

from __future__ import annotations

from exporter.engine.rules import ALL_PROTOCOLS, Flow, Rule


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
