"""plan: make-before-break commands for a preserve_client_ip flip, and the controller's gap risk."""

from __future__ import annotations

import dataclasses
import json
import shlex
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, get_args

import msgspec
import pytest

from exporter.cli import main
from exporter.engine.changes import Actor, Change
from exporter.engine.explain import current_state
from exporter.engine.gaps import analyze
from exporter.engine.inventory import Inventory, PrefixList, Target
from exporter.engine.plan import (
    LBC_DESCRIPTION,
    Note,
    NoteKind,
    Plan,
    QuotaExcess,
    Risk,
    RiskBasis,
    UndecidedEni,
    controller_version,
    plan_attribute_change,
)
from exporter.engine.rules import Rule, Source
from exporter.reports.plan import (
    commands,
    edit_group_text,
    note_text,
    notes_text,
    plan_text,
    recommendation,
    risk_detail,
)
from exporter.reports.words import flow_text
from exporter.textsafe import printable_fields
from tests import cloudtrail_samples as samples
from tests.awsworld import CloudTrailRecorder, LookupSink, ManualClock, MotoServer, build_incident_world
from tests.engine_world import (
    CONTROLLER,
    NODE_PORT,
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
from tests.test_report_shapes import CLOUDTRAIL_KEYS

WORLD = tcp(NODE_PORT, "0.0.0.0/0", "sgr-0world")
SUBNET_RULES = tuple(tcp(NODE_PORT, c, f"sgr-0sub{i}") for i, c in enumerate(SUBNETS))


def plan_for(inventory: Inventory, preserve: bool, changes: list[Change] | None = None) -> Plan:
    events = changes or []
    return plan_attribute_change(
        inventory, TG_ARN, current_state(inventory, events), events, preserve=preserve
    )


def risk(plan: Plan, kind: str) -> Risk:
    return next(r for r in plan.risks if r.kind == kind)


def as_changes(
    plan: Plan, order: tuple[str, ...] = ("authorize", "modify_attribute", "revoke")
) -> list[Change]:
    """The plan's edits as changes after the anchor, one step every 10 s, in the given order."""
    changes: list[Change] = []
    for step, action in enumerate(order, start=1):
        at = T0 + seconds(10 * step)
        if action == "authorize" and plan.authorize:
            for i, edit in enumerate(plan.authorize):
                changes.append(authorize(f"a{i}", at, edit.rule, group=edit.group_id))
        elif action == "revoke" and plan.revoke:
            for i, edit in enumerate(plan.revoke):
                changes.append(revoke(f"r{i}", at, edit.rule, group=edit.group_id))
        elif action == "modify_attribute" and plan.changes_attribute:
            changes.append(set_preserve("m", at, "true" if plan.desired else "false"))
    return changes


# --- true -> false on a legacy NLB --------------------------------------------------------------


def test_true_to_false_adds_the_subnet_rules_first_and_removes_the_world_rule_after() -> None:
    plan = plan_for(incident_inventory(), preserve=False)

    assert (plan.current, plan.desired, plan.mode) == (True, False, "legacy")
    assert [(e.group_id, e.rule.source.value, e.rule.from_port) for e in plan.authorize] == [
        ("sg-node", c, NODE_PORT) for c in SUBNETS
    ]
    assert all(e.rule.description == LBC_DESCRIPTION for e in plan.authorize)
    assert [(e.group_id, e.rule.rule_id, e.rule.source.value) for e in plan.revoke] == [
        ("sg-node", "sgr-0world", "0.0.0.0/0")
    ]
    assert [s.action for s in plan.steps] == ["authorize", "modify_attribute", "revoke"]
    auth, modify, rev = (c.command for c in commands(plan))
    assert auth.startswith("aws ec2 authorize-security-group-ingress --region us-east-1 --group-id sg-node ")
    assert "CidrIp=10.0.1.0/24" in auth and "CidrIp=10.0.2.0/24" in auth
    assert f'Description="{LBC_DESCRIPTION}"' in auth
    assert modify.endswith(
        f"--target-group-arn {TG_ARN} --attributes Key=preserve_client_ip.enabled,Value=false"
    )
    assert rev.startswith("aws ec2 revoke-security-group-ingress") and "CidrIp=0.0.0.0/0" in rev
    assert [[flow_text(f) for f in alt] for alt in plan.required_after["traffic"]] == [
        [f"tcp/{NODE_PORT} from {c}" for c in SUBNETS]
    ]
    assert plan.edit_groups[0].group_id == "sg-node" and plan.safe_in_place


def test_the_ip_permissions_argument_is_one_shell_word() -> None:
    plan = plan_for(incident_inventory(), preserve=False)
    words = shlex.split(commands(plan)[0].command)
    permission = words[words.index("--ip-permissions") + 1]
    assert permission == (
        "IpProtocol=tcp,FromPort=31080,ToPort=31080,IpRanges=["
        f'{{CidrIp=10.0.1.0/24,Description="{LBC_DESCRIPTION}"}},'
        f'{{CidrIp=10.0.2.0/24,Description="{LBC_DESCRIPTION}"}}]'
    )


@pytest.mark.parametrize(("start", "flipped"), [("true", False), ("false", True)])
def test_following_the_plan_opens_no_gap_and_revoking_first_does(start: str, flipped: bool) -> None:
    rules = (WORLD,) if start == "true" else SUBNET_RULES
    inventory = incident_inventory(preserve=start, node_rules=rules)
    plan = plan_for(inventory, preserve=flipped)
    assert plan.authorize  # there is something to get right
    assert analyze(inventory, as_changes(plan)).gaps == []
    # The same edits in the controller's old order (revoke, attribute, authorize) open gaps.
    wrong = as_changes(plan, ("revoke", "modify_attribute", "authorize"))
    assert analyze(inventory, wrong).gaps != []


def test_subnet_rules_already_present_are_not_authorized_again() -> None:
    plan = plan_for(incident_inventory(node_rules=(WORLD, *SUBNET_RULES)), preserve=False)
    assert plan.authorize == ()
    assert [e.rule.rule_id for e in plan.revoke] == ["sgr-0world"]
    assert [s.action for s in plan.steps] == ["modify_attribute", "revoke"]
    assert risk(plan, "break_before_make").level == "none"  # the subnet rules stay throughout


# --- false -> true: the attribute-first gap -----------------------------------------------------


def false_world() -> Inventory:
    return incident_inventory(preserve="false", node_rules=SUBNET_RULES)


def test_false_to_true_authorizes_the_world_rule_and_keeps_the_health_check_rules() -> None:
    plan = plan_for(false_world(), preserve=True)
    assert [(e.rule.source.value, e.flows) for e in plan.authorize] == [("0.0.0.0/0", ("traffic",))]
    assert plan.revoke == ()  # the subnet rules still admit the health checks
    first = risk(plan, "attribute_first")
    assert (first.level, first.flows, first.max_seconds) == ("gap", ("traffic",), None)
    assert first.basis == "lag_not_seen" and "how long is unknown" in risk_detail(first)
    text = plan_text(plan)
    assert "attribute_first: GAP" in text and "does not want tcp/31080 from 0.0.0.0/0" in text


def test_the_attribute_first_gap_is_bounded_by_the_lag_seen() -> None:
    # Last time: the attribute went to true, the controller authorized 45 s later, then it went back.
    history: list[Change] = [
        set_preserve("p1", T0 - seconds(900), "true"),
        authorize("a1", T0 - seconds(855), tcp(NODE_PORT, "0.0.0.0/0")),
        set_preserve("p2", T0 - seconds(300), "false"),
        revoke("r1", T0 - seconds(290), tcp(NODE_PORT, "0.0.0.0/0")),
    ]
    plan = plan_for(false_world(), preserve=True, changes=history)
    first = risk(plan, "attribute_first")
    assert (first.level, first.max_seconds) == ("gap", 45.0)
    assert plan.evidence.longest_attribute_lag_seconds == 45.0
    assert "up to 45 s seen" in plan_text(plan)


def test_true_to_false_with_the_world_rule_has_no_attribute_first_gap() -> None:
    assert risk(plan_for(incident_inventory(), preserve=False), "attribute_first").level == "none"


# --- the controller's replacement order, from the events ----------------------------------------

NEW_CONTROLLER = msgspec.structs.replace(CONTROLLER, user_agent="elbv2.k8s.aws/v2.13.0 aws-sdk-go-v2/1.30.0")
OTHER = "sg-other"  # replacements seen elsewhere: evidence of behaviour, not of this group's rules


def _pair(first: str, actor: Actor) -> list[Change]:
    gone, made = tcp(30000, "10.9.0.0/16"), tcp(30000, "192.168.0.0/16")
    r = revoke("x-r", T0 - seconds(600), gone, group=OTHER, actor=actor)
    a = authorize("x-a", T0 - seconds(600 - 60 if first == "revoke" else 660), made, group=OTHER, actor=actor)
    return [r, a]


@pytest.mark.parametrize(
    ("history", "level", "longest"),
    [
        (_pair("revoke", CONTROLLER), "gap", 60.0),
        (_pair("authorize", CONTROLLER), "none", None),
        ([authorize("x", T0 - seconds(60), tcp(30000, "10.9.0.0/16"), group=OTHER)], "likely_gap", None),
        (
            [authorize("x", T0 - seconds(60), tcp(30000, "10.9.0.0/16"), group=OTHER, actor=NEW_CONTROLLER)],
            "none",
            None,
        ),
        ([], "unknown", None),
    ],
    ids=["break-before-make-seen", "make-before-break-seen", "old-version", "new-version", "nothing"],
)
def test_break_before_make_risk_is_judged_from_the_events(
    history: list[Change], level: str, longest: float | None
) -> None:
    plan = plan_for(incident_inventory(), preserve=False, changes=history)
    bbm = risk(plan, "break_before_make")
    assert (bbm.level, bbm.max_seconds) == (level, longest)
    if level != "none":
        assert bbm.flows == ("traffic", "health_check")
    assert "PR #3952" in risk_detail(bbm)  # issue 13: plan cites the controller's fix by its PR
    assert plan.safe_in_place  # the printed order is safe whatever the controller does


def test_controller_version_from_the_user_agent() -> None:
    assert controller_version("elbv2.k8s.aws/v2.7.1 aws-sdk-go/1.50.0") == "v2.7.1"
    assert controller_version("elbv2.k8s.aws/v2.12 x") == "v2.12.0"
    assert controller_version("aws-cli/2.15.0") is None and controller_version(None) is None


# --- SG mode, groups and blockers ---------------------------------------------------------------


def test_sg_mode_needs_no_rule_change_and_has_no_gap() -> None:
    ref = Rule("tcp", NODE_PORT, NODE_PORT, Source.group("sg-nlb"), "sgr-0ref", LBC_DESCRIPTION)
    for start, flipped in (("true", False), ("false", True)):
        inventory = incident_inventory(preserve=start, node_rules=(ref,), lb_security_groups=("sg-nlb",))
        plan = plan_for(inventory, preserve=flipped, changes=_pair("revoke", CONTROLLER))
        assert plan.mode == "sg" and plan.changes_attribute
        assert (plan.authorize, plan.revoke) == ((), ())
        assert [s.action for s in plan.steps] == ["modify_attribute"]
        assert all(r.level == "none" for r in plan.risks)
        assert plan.safe_in_place and "no rule change" in recommendation(plan)
        assert "sg_mode" in [note.kind for note in plan.notes]
        assert any(note.startswith("SG mode") for note in notes_text(plan))


def test_sg_mode_targets_admitted_by_cidr_are_planned_as_in_legacy_mode() -> None:
    """Issue 12, item 3: in SG mode a CIDR node rule admits under the legacy semantics, so a flip
    is not harmless for its targets: the plan adds the subnets before the change."""
    inventory = incident_inventory(node_rules=(WORLD,), lb_security_groups=("sg-nlb",))
    plan = plan_for(inventory, preserve=False)
    assert plan.mode == "sg" and plan.changes_attribute
    assert [(e.group_id, e.rule.source.value) for e in plan.authorize] == [("sg-node", c) for c in SUBNETS]
    assert [s.action for s in plan.steps][:2] == ["authorize", "modify_attribute"]
    assert "no rule change" not in recommendation(plan)
    assert not any(note.startswith("SG mode: node rules reference") for note in notes_text(plan))
    cidr = next(note for note in plan.notes if note.kind == "cidr_targets_in_sg_mode")
    assert cidr.names == ("i-1", "i-2")
    assert any("not admitted by a rule referencing the NLB's security groups" in n for n in notes_text(plan))
    first = risk(plan, "attribute_first")
    assert first.level == "none"  # 0.0.0.0/0 admits the subnets too: the attribute may go first
    back = plan_for(
        incident_inventory(preserve="false", node_rules=SUBNET_RULES, lb_security_groups=("sg-nlb",)),
        preserve=True,
    )
    assert risk(back, "attribute_first").level == "gap"  # false -> true: 0.0.0.0/0 is missing
    assert [(e.group_id, e.rule.source.value) for e in back.authorize] == [("sg-node", "0.0.0.0/0")]


def test_two_groups_on_the_eni_pick_the_cluster_tagged_one_else_block() -> None:
    inventory = incident_inventory(node_rules=(), extra_group_rules=(WORLD,))
    plan = plan_for(inventory, preserve=False)
    blocker = risk(plan, "edit_group_unknown")
    assert blocker.level == "blocker" and not plan.safe_in_place
    assert [(u.eni_id, u.groups, u.tagged) for u in blocker.undecided] == [("eni-1", 2, 0), ("eni-2", 2, 0)]
    assert "2 groups on eni-1 and 0 of them tagged kubernetes.io/cluster/" in risk_detail(blocker)
    assert "No safe in-place order" in recommendation(plan) and "blue/green" in recommendation(plan)
    assert "weighted DNS" in recommendation(plan)

    tagged = dataclasses.replace(
        inventory.security_groups["sg-extra"], tags={"kubernetes.io/cluster/demo": "owned"}
    )
    inventory = dataclasses.replace(
        inventory, security_groups={**inventory.security_groups, "sg-extra": tagged}
    )
    plan = plan_for(inventory, preserve=False)
    assert plan.safe_in_place
    assert [(g.group_id, g.reason, g.tag) for g in plan.edit_groups] == [
        ("sg-extra", "cluster_tag", "kubernetes.io/cluster/demo")
    ]
    assert (
        edit_group_text(plan.edit_groups[0])
        == "tagged kubernetes.io/cluster/demo among 2 groups on the ENI: eni-1, eni-2"
    )
    assert {(e.group_id, e.rule.source.value) for e in plan.authorize} == {("sg-extra", c) for c in SUBNETS}
    assert [(e.group_id, e.rule.rule_id) for e in plan.revoke] == [("sg-extra", "sgr-0world")]


def test_rules_on_a_group_the_controller_does_not_edit_stay() -> None:
    # The world rule sits on a second group; the controller edits the tagged node group only.
    inventory = incident_inventory(node_rules=(), extra_group_rules=(WORLD,))
    node = dataclasses.replace(inventory.security_groups["sg-node"], tags={"kubernetes.io/cluster/demo": ""})
    inventory = dataclasses.replace(inventory, security_groups={**inventory.security_groups, "sg-node": node})
    plan = plan_for(inventory, preserve=False)
    assert [g.group_id for g in plan.edit_groups] == ["sg-node"]
    assert (plan.authorize, plan.revoke) == ((), ())  # 0.0.0.0/0 on sg-extra keeps admitting the subnets
    assert [s.action for s in plan.steps] == ["modify_attribute"]


def test_a_group_near_the_rule_quota_blocks_the_in_place_order() -> None:
    filler = tuple(tcp(1000 + i, "192.168.0.0/16", f"sgr-f{i}") for i in range(58))
    plan = plan_for(incident_inventory(node_rules=(WORLD, *filler)), preserve=False)
    quota = risk(plan, "rule_quota")
    assert quota.level == "blocker" and [(o.group_id, o.rules, o.family) for o in quota.over_quota] == [
        ("sg-node", 61, "IPv4")
    ]
    assert "sg-node would hold 61 IPv4 inbound rules" in risk_detail(quota)
    assert not plan.safe_in_place and "blue/green" in recommendation(plan)
    roomy = plan_for(incident_inventory(node_rules=(WORLD, *filler[:57])), preserve=False)
    assert roomy.safe_in_place


def test_a_prefix_list_reference_counts_as_its_max_entries_against_the_quota() -> None:
    """Issue 12, item 6: AWS counts a prefix-list reference as the list's max entries."""
    listed = Rule("tcp", 22, 22, Source("prefix_list", "pl-office"), "sgr-pl")
    inventory = incident_inventory(node_rules=(WORLD, listed))
    big = PrefixList("pl-office", "office", "IPv4", 58, ("192.0.2.0/24",))
    plan = plan_for(dataclasses.replace(inventory, prefix_lists={"pl-office": big}), preserve=False)
    quota = risk(plan, "rule_quota")
    assert quota.level == "blocker" and "61 IPv4 inbound rules" in risk_detail(quota)  # 1 + 58 + 2 subnets
    small = dataclasses.replace(big, max_entries=57)
    assert plan_for(
        dataclasses.replace(inventory, prefix_lists={"pl-office": small}), preserve=False
    ).safe_in_place


def test_rules_the_controller_does_not_manage_are_left_alone() -> None:
    manual = Rule("tcp", NODE_PORT, NODE_PORT, Source.cidr("0.0.0.0/0"), "sgr-0manual", "opened by hand")
    plan = plan_for(incident_inventory(node_rules=(manual,)), preserve=False)
    assert plan.revoke == ()
    assert [(n.group_id, n.rules) for n in plan.notes if n.kind == "not_managed"] == [("sg-node", (manual,))]
    assert any("sgr-0manual" in note and "left alone" in note for note in notes_text(plan))
    assert (
        "sg-node sgr-0manual tcp/31080 from 0.0.0.0/0 is not controller-managed (description 'opened by hand')"
        in plan_text(plan)
    )
    # a description from outside is escaped once for the terminal (exporter/textsafe.py), not again
    hostile = msgspec.structs.replace(manual, description="opened \x1b[31m by 'hand'\u202e")
    shown = plan_text(printable_fields(plan_for(incident_inventory(node_rules=(hostile,)), preserve=False)))
    assert "(description \"opened \\x1b[31m by 'hand'\\u202e\"); it is left alone" in shown


def test_a_rule_another_target_group_relies_on_is_kept() -> None:
    inventory = incident_inventory()
    other = dataclasses.replace(inventory.target_groups[TG_ARN], arn=TG_ARN + "-other", name="k8s-shop-other")
    inventory = dataclasses.replace(inventory, target_groups={**inventory.target_groups, other.arn: other})
    plan = plan_for(inventory, preserve=False)
    # 0.0.0.0/0 stays for the other group, and it keeps admitting the subnets: no rule edits.
    assert (plan.authorize, plan.revoke) == ((), ())
    assert [n.names for n in plan.notes if n.kind == "kept_for_others"] == [("k8s-shop-other",)]
    assert any("k8s-shop-other rely on it" in note for note in notes_text(plan))
    alone = plan_for(incident_inventory(), preserve=False)
    assert [e.rule.rule_id for e in alone.revoke] == ["sgr-0world"]


def test_targets_outside_the_vpc_are_noted_not_blockers_and_the_rest_is_planned() -> None:
    """A hybrid pod (AvailabilityZone all, or its node's zone as LBC v2.17.0+ registers it) has no
    node or pod group to edit (v3.5.0 networking_manager.go skips hybrid pods): the plan notes it
    and plans the others; before, it blocked the plan as a target without an ENI."""
    inventory = incident_inventory(target_type="ip", preserve="false", node_rules=SUBNET_RULES)
    tg = inventory.target_groups[TG_ARN]
    pods = (
        *tg.targets,
        Target("192.168.100.10", NODE_PORT, None, "healthy", "all"),
        Target("192.168.100.11", NODE_PORT, None, "healthy", "us-east-1a"),
    )
    plan = plan_for(
        dataclasses.replace(inventory, target_groups={TG_ARN: dataclasses.replace(tg, targets=pods)}), True
    )
    assert [r.kind for r in plan.risks if r.level == "blocker"] == []
    assert [e.rule.source.value for e in plan.authorize] == ["0.0.0.0/0"]
    note = next(n for n in plan.notes if n.kind == "not_evaluable_targets")
    assert note.names == ("192.168.100.10", "192.168.100.11")
    assert any(
        text.startswith("target(s) 192.168.100.10, 192.168.100.11 cannot be evaluated")
        for text in notes_text(plan)
    )


def test_a_target_without_a_known_eni_blocks_and_the_notes_name_what_the_plan_cannot_check() -> None:
    inventory = incident_inventory()
    tg = inventory.target_groups[TG_ARN]
    lost = dataclasses.replace(tg, targets=(*tg.targets, Target("i-9", NODE_PORT, "eni-9", "healthy")))
    plan = plan_for(dataclasses.replace(inventory, target_groups={TG_ARN: lost}), preserve=False)
    blocker = risk(plan, "target_eni_unknown")
    assert (blocker.level, blocker.basis, blocker.targets) == ("blocker", "eni_not_found", ("i-9",))
    assert (
        risk_detail(blocker) == "no network interface known for target(s) i-9: their rules cannot be planned"
    )
    assert not plan.safe_in_place and plan.advice == "blue_green"

    udp = dataclasses.replace(tg, protocol="UDP", targets=())
    plan = plan_for(dataclasses.replace(inventory, target_groups={TG_ARN: udp}), preserve=False)
    assert [n.kind for n in plan.notes] == ["always_preserving", "no_targets", "new_connections_only"]
    assert notes_text(plan)[:2] == [
        "client IP preservation is always on for UDP target groups: the attribute does not change it",
        "the target group has no registered targets: no rules could be checked",
    ]


def test_every_risk_basis_and_note_kind_has_words_of_its_own() -> None:
    """The engine's vocabularies (RiskBasis, NoteKind) each worded by reports/plan.py: a code added
    without words fails mypy (assert_never) and this test."""
    excess = QuotaExcess("sg-node", 61, "IPv4", 60)
    undecided = UndecidedEni("eni-1", 2, 0, None)
    details = {
        basis: risk_detail(
            Risk(
                "rule_quota",
                "blocker",
                basis,
                ("traffic",),
                30.0,
                seen=2,
                version="v2.7.1",
                targets=("i-9",),
                undecided=(undecided,),
                over_quota=(excess,),
            )
        )
        for basis in get_args(RiskBasis)
    }
    assert all(details.values()) and len(set(details.values())) == len(details)
    plan = plan_for(incident_inventory(), preserve=False)
    notes = {
        kind: note_text(plan, Note(kind, "UDP", "sg-node", (WORLD,), ("k8s-other",)))
        for kind in get_args(NoteKind)
    }
    assert all(notes.values()) and len(set(notes.values())) == len(notes)


def test_nothing_to_do_when_the_value_is_already_set() -> None:
    plan = plan_for(incident_inventory(), preserve=True)
    assert not plan.changes_attribute and plan.steps == () and recommendation(plan) == "Nothing to do."


def test_same_value_with_a_missing_rule_plans_the_repair_only() -> None:
    plan = plan_for(incident_inventory(node_rules=SUBNET_RULES), preserve=True)
    assert not plan.changes_attribute
    assert [(s.action, e.rule.source.value) for s, e in zip(plan.steps, plan.authorize, strict=True)] == [
        ("authorize", "0.0.0.0/0")
    ]
    assert recommendation(plan).startswith("No attribute change")


# --- the CLI, offline ---------------------------------------------------------------------------


def write_inventory(path: Path, inventory: Inventory) -> Path:
    path.write_text(json.dumps(inventory.to_dict()).replace('"sg-node"', f'"{samples.NODE_GROUP}"'))
    return path


def at(offset: float) -> str:
    return (T0 + seconds(offset)).strftime("%Y-%m-%dT%H:%M:%SZ")


def last_flip_records() -> list[dict[str, Any]]:
    """The last false -> true flip as the old controller did it: revoke first, authorize 60 s later."""
    subnets = samples.permission(cidrs=list(SUBNETS))
    world = samples.permission(cidrs=["0.0.0.0/0"])
    return [
        samples.modify_tg_attributes_record(
            "t-attr", at(-900), attributes={"preserve_client_ip.enabled": "true"}, actor=samples.OPERATOR
        ),
        samples.revoke_record("t-rev", at(-890), permissions=[subnets]),
        samples.authorize_record("t-auth", at(-830), permissions=[world], rule_ids=["sgr-0world"]),
    ]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_plan_from_trail_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = write_inventory(tmp_path / "inventory.json", incident_inventory())
    trail = tmp_path / "trail.json.gz"
    trail.write_bytes(samples.trail_file_bytes(last_flip_records()))
    argv = ("plan", "shop/web", "--set", "preserve_client_ip=false", "--inventory", str(inventory))

    code, out, err = run_cli(capsys, *argv, "--events", str(trail), "--format", "json")
    assert code == 0, err
    document = json.loads(out)
    assert document["read_only"] is True and document["events"] == 3
    assert list(document) == [  # the document's keys in order (its objects: test_report_shapes.py)
        "query",
        "source",
        "inventory_taken_at",
        "events",
        "cloudtrail",
        "read_only",
        "plans",
        "guardrail",
    ]
    assert list(document["cloudtrail"]) == CLOUDTRAIL_KEYS
    [plan] = document["plans"]
    assert [s["action"] for s in plan["steps"]] == ["authorize", "modify_attribute", "revoke"]
    assert [(e["security_group"], e["source"]) for e in plan["authorize"]] == [
        (samples.NODE_GROUP, c) for c in SUBNETS
    ]
    assert [(e["rule_id"], e["source"]) for e in plan["revoke"]] == [("sgr-0world", "0.0.0.0/0")]
    risks = {r["kind"]: r for r in plan["risks"]}
    assert (risks["break_before_make"]["level"], risks["break_before_make"]["max_seconds"]) == ("gap", 60.0)
    assert plan["controller_evidence"]["versions"] == ["v2.7.1"]
    assert plan["controller_evidence"]["longest_attribute_lag_seconds"] == 70.0

    code, out, _ = run_cli(capsys, *argv, "--events", str(trail))
    assert code == 0
    positions = [
        out.index(text)
        for text in (
            "aws ec2 authorize-security-group-ingress",
            "aws elbv2 modify-target-group-attributes",
            "aws ec2 revoke-security-group-ingress",
        )
    ]
    assert positions == sorted(positions)
    assert "break_before_make: GAP, up to 60 s seen" in out

    code, out, _ = run_cli(capsys, *argv)  # no events: the order cannot be judged
    assert code == 0 and "break_before_make: UNKNOWN" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--set", "preserve_client_ip=maybe"], "must be true or false"),
        (["--set", "proxy_protocol_v2.enabled=true"], "expected preserve_client_ip=true"),
        (["--set", "preserve_client_ip=true", "--events", "/nonexistent"], "no such file or folder"),
    ],
)
def test_cli_plan_unusable_input_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    inventory = write_inventory(tmp_path / "inventory.json", incident_inventory())
    code, out, err = run_cli(capsys, "plan", "shop/web", "--inventory", str(inventory), *extra)
    assert code == 2 and out == "" and message in err and err.count("\n") == 1
    code, out, err = run_cli(
        capsys, "plan", "shop/nope", "--inventory", str(inventory), "--set", "preserve_client_ip=true"
    )
    assert code == 2 and out == "" and "no target group matches" in err


# --- live: read-only against the moto server ----------------------------------------------------


def test_live_plan_only_reads(clean_moto: MotoServer, capsys: pytest.CaptureFixture[str]) -> None:
    ec2 = clean_moto.client("ec2")
    world = build_incident_world(ec2, clean_moto.client("elbv2"))
    rules_before = ec2.describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [world.node_sg_id]}]
    )
    arranged = len(clean_moto.requests())

    code, out, err = run_cli(
        capsys, "plan", world.tg_arn, "--set", "preserve_client_ip=false", "--format", "json"
    )
    assert code == 0, err
    [plan] = json.loads(out)["plans"]
    assert [(e["security_group"], e["source"]) for e in plan["authorize"]] == [
        (world.node_sg_id, c) for c in world.subnet_cidrs
    ]
    assert [e["rule_id"] for e in plan["revoke"]] == [world.node_rule_id]
    assert plan["edit_groups"][0]["security_group"] == world.node_sg_id

    calls = clean_moto.requests()[arranged:]
    assert calls and all(
        c["operation"].startswith(("Describe", "Get")) or c["operation"] == "LookupEvents" for c in calls
    ), calls
    rules_after = ec2.describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [world.node_sg_id]}]
    )
    assert rules_after["SecurityGroupRules"] == rules_before["SecurityGroupRules"]


def test_live_plan_judges_the_controller_from_cloudtrail(
    clean_moto: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """The last flip, done revoke-first by the controller, is read from LookupEvents, not assumed away."""
    ec2, elbv2 = clean_moto.client("ec2"), clean_moto.client("elbv2")
    world = build_incident_world(ec2, elbv2)
    clock = ManualClock(datetime.now(UTC) - timedelta(minutes=30))
    recorder = CloudTrailRecorder(LookupSink(clean_moto), clock)
    recorder.attach(ec2, elbv2)
    with recorder.acting_as(role="platform-admin"):
        elbv2.modify_target_group_attributes(
            TargetGroupArn=world.tg_arn, Attributes=[{"Key": "preserve_client_ip.enabled", "Value": "false"}]
        )
    clock.advance(10)
    ec2.revoke_security_group_ingress(
        GroupId=world.node_sg_id,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 31080, "ToPort": 31080, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
        ],
    )
    clock.advance(60)
    ec2.authorize_security_group_ingress(
        GroupId=world.node_sg_id,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 31080, "ToPort": 31080, "IpRanges": [{"CidrIp": c}]}
            for c in world.subnet_cidrs
        ],
    )
    argv = ("plan", world.tg_arn, "--set", "preserve_client_ip=true")

    code, out, err = run_cli(capsys, *argv, "--format", "json")
    assert code == 0, err
    document = json.loads(out)
    assert document["cloudtrail"]["source"] == "lookup_events" and document["events"] == 3
    [plan] = document["plans"]
    evidence = plan["controller_evidence"]
    assert (evidence["break_before_make_seen"], evidence["longest_exposure_seconds"]) == (1, 60.0)
    assert evidence["longest_attribute_lag_seconds"] == 70.0

    code, out, _ = run_cli(capsys, *argv, "--no-cloudtrail")
    assert code == 0 and "CloudTrail: not read" in out and "break-before-make 0" in out


def test_live_plan_warns_on_stderr_when_its_cloudtrail_read_is_incomplete(
    clean_moto: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A LookupEvents call throttled past --lookup-retries: the plan is still printed, its
    CloudTrail line says INCOMPLETE, and stderr repeats it as a warning."""
    world = build_incident_world(clean_moto.client("ec2"), clean_moto.client("elbv2"))
    clean_moto.throttle(1)
    code, out, err = run_cli(
        capsys, "plan", world.tg_arn, "--set", "preserve_client_ip=false", "--lookup-retries", "0"
    )
    assert code == 0, err
    [summary] = [line for line in out.splitlines() if "CloudTrail LookupEvents" in line]
    assert "INCOMPLETE (" in summary and "ThrottlingException" in summary, summary
    assert [line for line in err.splitlines() if "INCOMPLETE" in line] == [
        f"plan: warning: {summary.strip()}"
    ]
