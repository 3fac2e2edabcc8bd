"""The `snapshot` file: one declared form, read back equal; a bad entry is an error naming its path."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.cli import main
from exporter.engine.inventory import FORMAT, Inventory, InventoryError, PrefixList, ServiceBinding
from exporter.engine.rules import Rule, Source
from tests.engine_world import incident_inventory


def full_inventory() -> Inventory:
    """The incident world with every optional part filled: prefix lists, a bound service with rules."""
    inventory = incident_inventory()
    arn = next(iter(inventory.target_groups))
    rules = (
        Rule("tcp", 80, 80, Source.cidr("10.0.0.0/8"), "sgr-1", 'quoted "description"'),
        Rule("-1", 0, 65535, Source("sg", "sg-9")),
        Rule("udp", 53, 53, Source.cidr("2001:db8::/32")),
    )
    return dataclasses.replace(
        inventory,
        prefix_lists={"pl-1": PrefixList("pl-1", "corp", "IPv4", 5, ("10.0.0.0/8",))},
        services={arn: ServiceBinding("shop", "web", ("1.2.3.0/24",), "targetgroupbinding", "prod", rules)},
    )


def test_the_file_form_reads_back_equal_through_json() -> None:
    inventory = full_inventory()
    data = json.loads(json.dumps(inventory.to_dict()))
    assert Inventory.from_dict(data) == inventory
    assert list(data)[:3] == ["format", "version", "taken_at"] and data["format"] == FORMAT
    rule = data["services"][0]["ingress_rules"][0]
    assert rule == {
        "protocol": "tcp",
        "from_port": 80,
        "to_port": 80,
        "source_kind": "cidr4",
        "source": "10.0.0.0/8",
        "rule_id": "sgr-1",
        "description": 'quoted "description"',
    }
    # one declaration of a rule's fields for this file and the reports (engine/rule_fields.py)
    assert list(rule) == [
        "protocol",
        "from_port",
        "to_port",
        "source",
        "source_kind",
        "description",
        "rule_id",
    ]


def test_a_file_written_with_the_earlier_rule_key_order_reads_the_same() -> None:
    """Before engine/rule_fields.py, rules were written source_kind before source and rule_id before
    description, and a hand-written file may leave out rule_id and description: all read alike."""
    inventory = full_inventory()
    data: dict[str, Any] = json.loads(json.dumps(inventory.to_dict()))
    earlier = ["protocol", "from_port", "to_port", "source_kind", "source", "rule_id", "description"]
    for group in data["security_groups"]:
        group["rules"] = [{key: rule[key] for key in earlier} for rule in group["rules"]]
    for service in data["services"]:
        service["ingress_rules"] = [{key: rule[key] for key in earlier} for rule in service["ingress_rules"]]
    assert list(data["services"][0]["ingress_rules"][0]) == earlier
    assert Inventory.from_dict(json.loads(json.dumps(data))) == inventory
    bare = data["services"][0]["ingress_rules"][2]
    assert (bare.pop("rule_id"), bare.pop("description")) == (None, None)
    assert Inventory.from_dict(data) == inventory


def _broken(change: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json.dumps(full_inventory().to_dict()))
    change(data)
    return data


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda d: d["target_groups"][0].pop("name"), "`name` - at `$.target_groups[0]`"),
        (lambda d: d["target_groups"][0].update(port="eighty"), "`$.target_groups[0].port`"),
        (lambda d: d["security_groups"][0]["rules"][0].update(source_kind="ip"), "source_kind"),
        (
            lambda d: d["security_groups"][0]["rules"][0].update(source="10.0.0.300/8"),
            "$.security_groups[0].rules[0]",
        ),
        (lambda d: d["network_interfaces"][0].update(security_group_ids="sg-1"), "$.network_interfaces[0]"),
        (lambda d: d.update(taken_at="yesterday"), "taken_at"),
        (lambda d: d.update(version=2), "unsupported 'version' 2"),
        (lambda d: d.update(format="other"), "'format' must be"),
    ],
)
def test_a_bad_entry_is_an_error_naming_where(change: Any, named: str) -> None:
    with pytest.raises(InventoryError) as caught:
        Inventory.from_dict(_broken(change))
    assert named in str(caught.value)
    assert "\n" not in str(caught.value)


def test_numbers_written_as_strings_are_still_read() -> None:
    data = _broken(lambda d: d["target_groups"][0].update(port="31080"))
    assert Inventory.from_dict(data) == full_inventory()


def test_explain_exits_2_with_one_line_naming_the_bad_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps(_broken(lambda d: d["target_groups"][0].update(port=[80]))))
    code = main(["explain", "shop/web", "--inventory", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "$.target_groups[0].port" in err, err


_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_CIDR = st.one_of(
    st.builds(lambda a, p: f"{ipaddress.IPv4Address(a)}/{p}", st.integers(0, 2**32 - 1), st.integers(0, 32)),
    st.builds(
        lambda a, p: f"{ipaddress.IPv6Address(a)}/{p}", st.integers(0, 2**128 - 1), st.integers(0, 128)
    ),
)


@st.composite
def _rules(draw: st.DrawFn) -> Rule:
    low = draw(st.integers(0, 65535))
    source = draw(
        st.one_of(
            _CIDR.map(Source.cidr),
            st.builds(Source.group, _TEXT),
            st.builds(lambda v: Source("prefix_list", v), _TEXT),
        )
    )
    return Rule(
        draw(st.sampled_from(["tcp", "udp", "-1", "icmp"])),
        low,
        draw(st.integers(low, 65535)),
        source,
        draw(st.none() | _TEXT),
        draw(st.none() | _TEXT),
    )


@settings(max_examples=60, deadline=None)
@given(st.lists(_rules(), max_size=8), st.lists(_rules(), max_size=4), _TEXT)
def test_any_rules_and_names_read_back_equal(group_rules: list[Rule], bound: list[Rule], name: str) -> None:
    base = full_inventory()
    group_id = next(iter(base.security_groups))
    arn = next(iter(base.target_groups))
    inventory = dataclasses.replace(
        base,
        security_groups={
            group_id: dataclasses.replace(base.security_groups[group_id], name=name, rules=tuple(group_rules))
        },
        services={arn: ServiceBinding(name, name, (), "tags", None, tuple(bound))},
    )
    assert Inventory.from_dict(json.loads(json.dumps(inventory.to_dict()))) == inventory
