"""A rule's fields in the JSON reports (explain, plan): one serializer for both."""

from __future__ import annotations

from typing import Any

from exporter.engine.rules import Rule


def rule_fields(rule: Rule) -> dict[str, Any]:
    """protocol, ports, source and description, in the order the reports have always shown them."""
    return {
        "protocol": rule.protocol,
        "from_port": rule.from_port,
        "to_port": rule.to_port,
        "source": rule.source.value,
        "source_kind": rule.source.kind,
        "description": rule.description,
    }
