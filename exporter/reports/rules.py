"""A rule's fields in the JSON reports (explain, plan): one serializer for both.

The report rows (reports/explain.py RuleRefJson, reports/plan.py RuleEditJson) declare these six
fields flat, between the fields that place the rule (security group, rule id) and the ones that
say what it is to the report (its last change, its purpose); msgspec has no flattening, so each
row lists them and takes their values from `rule_fields`. The snapshot file's rule entry
(engine/inventory.py) is a nested object of its own: see the note there.
"""

from __future__ import annotations

from typing import TypedDict

from exporter.engine.rules import Rule, SourceKind


class RuleFields(TypedDict):
    """protocol, ports, source and description, in the order the reports have always shown them."""

    protocol: str
    from_port: int
    to_port: int
    source: str
    source_kind: SourceKind
    description: str | None


def rule_fields(rule: Rule) -> RuleFields:
    """The values of a report row's rule fields (typed: a row missing one fails mypy)."""
    return RuleFields(
        protocol=rule.protocol,
        from_port=rule.from_port,
        to_port=rule.to_port,
        source=rule.source.value,
        source_kind=rule.source.kind,
        description=rule.description,
    )
