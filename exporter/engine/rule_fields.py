"""A rule's fields in JSON: one declaration for the `snapshot` file (engine/inventory.py) and the
rows of the explain and plan reports (exporter/reports/).

The fields are keyword-only: msgspec orders a Struct's positional fields before its keyword-only
ones, so a row that subclasses `RuleFields` with positional fields of its own (the security group
and rule id that place the rule) encodes those first, then these six, then any keyword-only
fields it adds after them (what the rule is to the report); the snapshot's entry adds `rule_id`
after them. tests/test_report_shapes.py and tests/test_inventory_file.py pin the key orders.
"""

from __future__ import annotations

from typing import Any

import msgspec

from exporter.engine.rules import Rule, SourceKind


class RuleFields(msgspec.Struct, frozen=True, kw_only=True):
    protocol: str
    from_port: int
    to_port: int
    source: str
    source_kind: SourceKind
    description: str | None = None


def rule_fields(rule: Rule) -> dict[str, Any]:
    """The values of `RuleFields` for `rule`, as keyword arguments of a shape that holds them."""
    return msgspec.structs.asdict(
        RuleFields(
            protocol=rule.protocol,
            from_port=rule.from_port,
            to_port=rule.to_port,
            source=rule.source.value,
            source_kind=rule.source.kind,
            description=rule.description,
        )
    )
