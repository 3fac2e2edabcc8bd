"""The daemon's own inventory polls as the old values records do not carry (engine/polls.py).

Property: the gaps found from a later anchor, with a poll of the world as it was before the
first record, are the gaps found from that earlier world as the anchor. Without the poll the
later anchor leaves what preceded each object's first record unknown. A watched target-group
attribute's old value comes from the poll too, before the assumption that a record is a flip.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.engine.changes import Change, RuleChange, TargetsChange
from exporter.engine.flows import PRESERVE_CLIENT_IP as PRESERVE
from exporter.engine.gaps import Gap, analyze
from exporter.engine.inventory import Inventory, ServiceBinding
from exporter.engine.overlay import UNKNOWN, InventoryOverlay, PriorKey
from exporter.engine.polls import (
    attribute_key,
    delta,
    inventory_values,
    polled_before,
    remember,
    seen_from_json,
    seen_to_json,
)
from tests.engine_world import (
    NODE_PORT,
    OPERATOR,
    SUBNETS,
    T0,
    TG_ARN,
    authorize,
    incident_inventory,
    revoke,
    seconds,
    set_preserve,
    tcp,
)
from tests.test_overlay_properties import GROUPS, _change, _registered, anchor, change_lists

KEY: PriorKey = ("hc_port", TG_ARN)


def at(n: float) -> datetime:
    return T0 + seconds(n)


def test_a_poll_is_read_only_before_the_moment_it_finished() -> None:
    history = remember({}, at(10), {KEY: "traffic-port"}, cutoff=at(0))
    again = remember(history, at(20), {KEY: "traffic-port"}, cutoff=at(0))  # same value: no entry
    assert again[KEY] is history[KEY]  # nothing new to store
    history = remember(again, at(30), {KEY: "32000"}, cutoff=at(0))
    assert history[KEY] == ((at(10), "traffic-port"), (at(30), "32000"))
    assert polled_before(history, KEY, at(10)) is UNKNOWN  # finished at that moment: not before it
    assert polled_before(history, KEY, at(11)) == "traffic-port"
    assert polled_before(history, KEY, at(30)) == "traffic-port"
    assert polled_before(history, KEY, at(31)) == "32000"
    assert polled_before(history, ("hc_port", "other"), at(31)) is UNKNOWN


def test_the_history_keeps_the_value_in_force_at_the_cutoff_and_drops_gone_objects() -> None:
    history = remember({}, at(10), {KEY: "1", ("eni_groups", "eni-1"): ("sg-a",)}, cutoff=at(0))
    history = remember(history, at(20), {KEY: "2", ("eni_groups", "eni-1"): ("sg-a",)}, cutoff=at(0))
    history = remember(history, at(30), {KEY: "3"}, cutoff=at(25))  # eni-1 is gone
    assert history[KEY] == ((at(20), "2"), (at(30), "3"))  # "2" was in force at the cutoff
    assert ("eni_groups", "eni-1") not in history
    before = dict(history)
    remember(history, at(40), {KEY: "4"}, cutoff=at(35))
    assert history == before  # a reader holding the old mapping is not disturbed


def _facts(gaps: list[Gap]) -> list[tuple[str, str, datetime, datetime | None, bool]]:
    return sorted((g.flow, g.cause, g.start, g.end, g.start_exact) for g in gaps)


def _worlds(changes: list[Change]) -> tuple[Inventory, Inventory, list[Change]]:
    """The world before the changes, the world after them, and the changes that did something
    (a registration of a registered target, an authorize of a rule the group has or a revoke of
    one it lacks change nothing, and no record could say so to undo)."""
    # The client sources fixed (as a TargetGroupBinding fixes them): learning them from the
    # anchor's rules is another question, with answers that depend on the anchor.
    bound = {TG_ARN: ServiceBinding("shop", "web", ("0.0.0.0/0",), "targetgroupbinding")}
    before = replace(anchor(), taken_at=T0 - seconds(1), services=bound)
    overlay = InventoryOverlay(before)
    rules = {gid: {r.key: r for r in sg.rules} for gid, sg in before.security_groups.items()}
    kept: list[Change] = []
    for change in changes:
        if isinstance(change, RuleChange):
            held = rules[change.group_id]
            if any((r.key in held) == (change.action == "authorize") for r in change.rules):
                continue
            for rule in change.rules:
                if change.action == "authorize":
                    held[rule.key] = rule
                else:
                    del held[rule.key]
            kept.append(change)
            continue
        if isinstance(change, TargetsChange):
            present = change.targets[0][0] in _registered(overlay)
            if present == (change.action == "register"):
                continue
        overlay.apply(change)
        kept.append(change)
    after = overlay.view().inventory
    groups = {gid: replace(sg, rules=tuple(rules[gid].values())) for gid, sg in after.security_groups.items()}
    return before, replace(after, taken_at=T0 + seconds(3600), security_groups=groups), kept


@st.composite
def with_rule_changes(draw: Any) -> list[Change]:
    """Inventory changes (as test_overlay_properties draws them) and rule changes on the groups
    the ENIs move between, interleaved."""
    changes: list[Change] = []
    for n in range(draw(st.integers(0, 12))):
        if draw(st.booleans()):
            changes.append(_change(draw, n))
            continue
        rules = draw(
            st.sampled_from(((tcp(NODE_PORT, "0.0.0.0/0"),), tuple(tcp(NODE_PORT, c) for c in SUBNETS)))
        )
        make = draw(st.sampled_from((authorize, revoke)))
        changes.append(make(f"r{n}", at(n), *rules, group=draw(st.sampled_from(GROUPS)), actor=OPERATOR))
    return changes


@settings(max_examples=300, deadline=None)
@given(st.one_of(change_lists(), with_rule_changes()), st.floats(min_value=-600, max_value=-1))
def test_from_a_later_anchor_a_poll_before_the_records_gives_the_earlier_anchors_gaps(
    changes: list[Change], finished: float
) -> None:
    before, after, kept = _worlds(changes)
    polls = remember({}, at(finished), inventory_values(before), cutoff=at(-3600))
    assert _facts(analyze(after, kept, polls=polls).gaps) == _facts(analyze(before, kept).gaps)


def test_a_poll_before_an_attribute_modify_gives_its_old_value_not_the_opposite() -> None:
    """preserve_client_ip set to false again (say, Terraform re-applying): the record changed
    nothing. Without a poll it is taken as a flip (true before it: clients required, not
    admitted by rules for the load balancer's subnets alone). The poll before it saw false."""
    world = incident_inventory(preserve="false", node_rules=tuple(tcp(NODE_PORT, c) for c in SUBNETS))
    anchor = replace(world, taken_at=at(3600))
    changes = [set_preserve("p1", at(10), "false")]
    assumed = analyze(anchor, changes).gaps
    assert [(g.flow, g.end) for g in assumed] == [("traffic", at(10))]
    polls = remember({}, at(5), inventory_values(world), cutoff=at(-3600))
    assert analyze(anchor, changes, polls=polls).gaps == []
    # a poll that saw true gives what the assumption gave, now as a fact
    was_on = replace(
        world, target_groups={TG_ARN: replace(world.target_groups[TG_ARN], attributes={PRESERVE: "true"})}
    )
    polls = remember({}, at(5), inventory_values(was_on), cutoff=at(-3600))
    assert _facts(analyze(anchor, changes, polls=polls).gaps) == _facts(assumed)


# --- the stored form ---------------------------------------------------------------------------

_ids = st.text(alphabet="abcdefgh-0123456789", min_size=1, max_size=12)
_values = st.one_of(_ids, st.lists(_ids, max_size=3).map(tuple))
_moments = st.integers(0, 10**6).map(lambda n: at(n / 7))


@given(st.lists(st.tuples(_moments, _values), min_size=1, max_size=4))
def test_a_keys_stored_values_read_back_as_written(entries: list[tuple[datetime, object]]) -> None:
    seen = tuple(sorted(entries, key=lambda e: e[0]))
    read = seen_from_json(seen_to_json(seen))
    assert read is not None
    assert [(round(t.timestamp(), 6), v) for t, v in read] == [(round(t.timestamp(), 6), v) for t, v in seen]


def test_stored_values_that_do_not_read_are_none() -> None:
    for text in ('[[1e400, "1"]]', "[[1764000000, [1, 2]]]", '{"what": 1}', "[]", "junk"):
        assert seen_from_json(text) is None, text


def test_delta_names_what_remember_added_moved_and_dropped() -> None:
    first = remember({}, at(10), {KEY: "1", ("eni_groups", "eni-1"): ("sg-a",)}, cutoff=at(0))
    assert delta({}, first) == (list(first), [])
    same = remember(first, at(20), {KEY: "1", ("eni_groups", "eni-1"): ("sg-a",)}, cutoff=at(0))
    assert delta(first, same) == ([], [])
    later = remember(same, at(30), {KEY: "2"}, cutoff=at(25))
    assert delta(same, later) == ([KEY], [("eni_groups", "eni-1")])


def test_remember_keeps_each_change_the_value_in_force_at_the_cutoff_and_gone_keys_seen_since() -> None:
    """Mutation testing found these unpinned: the history is cut at the entry in force at the
    cutoff (one finished exactly at it included), a value seen again after another is a new
    entry, and a gone key is kept while something of it was seen after the cutoff."""
    eni: PriorKey = ("eni_groups", "eni-1")
    history = remember({}, at(10), {KEY: "a", eni: ("sg-a",)}, cutoff=at(0))
    history = remember(history, at(20), {KEY: "b", eni: ("sg-b",)}, cutoff=at(0))
    history = remember(history, at(30), {KEY: "a"}, cutoff=at(0))  # eni-1 gone; "a" again
    assert history[KEY] == ((at(10), "a"), (at(20), "b"), (at(30), "a"))
    assert history[eni] == ((at(10), ("sg-a",)), (at(20), ("sg-b",)))  # seen after the cutoff: kept
    cut = remember(history, at(40), {KEY: "a"}, cutoff=at(20))
    assert cut[KEY] == ((at(20), "b"), (at(30), "a"))  # "b" finished at the cutoff: in force there
    assert eni not in cut  # nothing of it seen after the cutoff
    assert remember(history, at(40), {KEY: "a"}, cutoff=at(15))[eni] == history[eni]  # its last after it
    late = remember(history, at(40), {KEY: "a"}, cutoff=at(35))
    assert late[KEY] == ((at(30), "a"),)


def test_inventory_values_gives_each_target_groups_own_keys() -> None:
    world = incident_inventory(preserve="false")
    tg = world.target_groups[TG_ARN]
    other = replace(
        tg,
        arn="arn:other",
        health_check_protocol="HTTP",
        attributes={PRESERVE: "true", "proxy_protocol_v2.enabled": "x"},
    )
    values = inventory_values(replace(world, target_groups={TG_ARN: tg, "arn:other": other}))
    assert values[("hc_protocol", "arn:other")] == "HTTP"
    assert values[("hc_protocol", TG_ARN)] == tg.health_check_protocol
    assert values[attribute_key(TG_ARN, PRESERVE)] == "false"
    assert values[attribute_key("arn:other", PRESERVE)] == "true"
    assert values[attribute_key("arn:other", "proxy_protocol_v2.enabled")] == "x"


def test_a_polled_value_that_is_not_text_or_a_tuple_of_ids_is_refused_when_stored() -> None:
    for value in (5, ["sg-a"], ("sg-a", 5), None):
        with pytest.raises(TypeError):
            seen_to_json(((at(1), value),))
