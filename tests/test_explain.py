"""explain: admitting rules and their attribution, reasons and uncovered CIDRs; offline and live."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from exporter.cli import main
from exporter.commands.trail_input import EVENT_NAME_LOOKUPS
from exporter.engine.changes import Change
from exporter.engine.explain import (
    TargetNotFound,
    current_state,
    explain_target_group,
    find_target_groups,
    state_at,
)
from exporter.engine.gaps import analyze
from exporter.engine.inventory import Intent, Inventory, ServiceBinding, Target
from exporter.engine.records import WATCHED_EVENT_NAMES
from exporter.engine.timeutil import format_time
from exporter.reports.explain import explanation_json, explanation_text, required_text
from tests import cloudtrail_samples as samples
from tests.awsworld import CloudTrailRecorder, LookupSink, ManualClock, MotoServer, build_incident_world
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
from tests.test_report_shapes import CLOUDTRAIL_KEYS

LOW_HALF = tcp(NODE_PORT, "0.0.0.0/1", "sgr-0low")
HIGH_HALF = tcp(NODE_PORT, "128.0.0.0/1", "sgr-0high")
SUBNET_RULES = tuple(tcp(NODE_PORT, c, f"sgr-0sub{i}") for i, c in enumerate(SUBNETS))


def split_world_after_the_revoke() -> Inventory:
    """Described an hour after 128.0.0.0/1 was revoked: the low half and the subnet rules remain.

    The TargetGroupBinding says everyone (0.0.0.0/0) is meant to reach it: without it, the low
    half, held an hour, would be the materialized intent (engine/intent.py) and nothing a gap."""
    inventory = incident_inventory(node_rules=(LOW_HALF, *SUBNET_RULES), taken_at=T0 + seconds(3600))
    everyone = tcp(NODE_PORT, "0.0.0.0/0")
    binding = ServiceBinding("shop", "web", (), "targetgroupbinding", "demo", (everyone, *SUBNET_RULES))
    return inventory.with_services({TG_ARN: binding})


def split_changes() -> list[Change]:
    return [
        authorize("e-auth", T0, HIGH_HALF, actor=OPERATOR),
        revoke("e-revoke", T0 + seconds(60), tcp(NODE_PORT, "128.0.0.0/1")),
    ]


def rule_ids(result: Any) -> list[str | None]:
    return [ref.rule.rule_id for ref in result.rules]


# --- pure ---------------------------------------------------------------------------------------


def test_before_the_revoke_the_admitting_rules_are_named_with_the_actor_of_their_authorize() -> None:
    inventory = split_world_after_the_revoke()
    at = T0 + seconds(30)
    explanation = explain_target_group(inventory, TG_ARN, state_at(inventory, split_changes(), at), at=at)

    traffic = explanation.flow("traffic")
    assert traffic.admitted == 2
    for target in traffic.targets:
        assert target.admitted and target.reason is None
        assert rule_ids(target) == ["sgr-0low", "sgr-0high"]
        high = target.rules[1]
        assert high.group_id == "sg-node"
        assert high.last_change is not None
        assert (high.last_change.event_id, high.last_change.actor) == ("e-auth", OPERATOR)
        assert target.rules[0].last_change is None  # never changed in the events
    text = explanation_text(explanation)
    assert "sgr-0high" in text and "by platform-admin at 2026-11-20T12:00:00Z" in text


def test_during_the_gap_the_reason_is_partly_covered_and_the_uncovered_range_exact() -> None:
    inventory = split_world_after_the_revoke()
    at = T0 + seconds(61)
    explanation = explain_target_group(inventory, TG_ARN, state_at(inventory, split_changes(), at), at=at)

    traffic = explanation.flow("traffic")
    assert traffic.admitted == 0
    for target in traffic.targets:
        assert target.reason == "source_partly_covered"
        assert target.uncovered == ("128.0.0.0/1",)
        assert target.flow is not None and str(target.flow.source) == "0.0.0.0/0"
        assert rule_ids(target) == ["sgr-0low"]  # the part still admitted
    # Health checks come from the subnets: still admitted, by the subnet rules themselves.
    health = explanation.flow("health_check")
    assert health.admitted == 2
    assert {tuple(rule_ids(t)) for t in health.targets} == {("sgr-0sub0", "sgr-0sub1")}
    assert not explanation.fully_admitted
    assert "not admitted: 128.0.0.0/1" in explanation_text(explanation)


CLIENTS = "203.0.113.0/24"


@pytest.mark.parametrize(
    ("revoked", "reason", "uncovered"),
    [
        ((LOW_HALF, HIGH_HALF), "no_rule_for_port", ("0.0.0.0/0",)),
        ((LOW_HALF,), "source_partly_covered", ("0.0.0.0/1",)),
    ],
)
def test_each_reason_from_the_rules_left(
    revoked: tuple[Any, ...], reason: str, uncovered: tuple[str, ...]
) -> None:
    inventory = incident_inventory(node_rules=(LOW_HALF, HIGH_HALF))
    changes = [revoke("e1", T0 + seconds(5), *revoked)]
    traffic = explain_target_group(inventory, TG_ARN, current_state(inventory, changes)).flow("traffic")
    assert {(t.reason, t.uncovered) for t in traffic.targets} == {(reason, uncovered)}


def test_subnet_rules_leave_the_world_partly_covered_with_exact_holes() -> None:
    inventory = incident_inventory(node_rules=(LOW_HALF, HIGH_HALF, *SUBNET_RULES))
    changes = [revoke("e1", T0 + seconds(5), LOW_HALF, HIGH_HALF)]
    target = (
        explain_target_group(inventory, TG_ARN, current_state(inventory, changes)).flow("traffic").targets[0]
    )
    assert target.reason == "source_partly_covered"
    holes = [ipaddress.ip_network(c) for c in target.uncovered]
    assert sum(h.num_addresses for h in holes) == 2**32 - 2 * 256
    assert not any(h.overlaps(ipaddress.ip_network(s)) for h in holes for s in SUBNETS)
    assert rule_ids(target) == ["sgr-0sub0", "sgr-0sub1"]


def test_source_not_covered_lists_the_rules_on_the_port() -> None:
    clients = tcp(NODE_PORT, CLIENTS, "sgr-0clients")
    inventory = incident_inventory(node_rules=(clients, *SUBNET_RULES), source_ranges=(CLIENTS,))
    assert explain_target_group(inventory, TG_ARN, current_state(inventory, [])).fully_admitted
    changes = [revoke("e1", T0 + seconds(5), clients)]
    target = (
        explain_target_group(inventory, TG_ARN, current_state(inventory, changes)).flow("traffic").targets[0]
    )
    assert (target.reason, target.uncovered, target.rules) == ("source_not_covered", (CLIENTS,), ())
    assert {r.rule.rule_id for r in target.port_rules} == {"sgr-0sub0", "sgr-0sub1"}
    assert [r.last_change for r in target.port_rules] == [None, None]


def test_every_required_source_not_admitted_is_named_not_only_the_first() -> None:
    """Two source ranges revoked: adding a rule for the first alone would not end the gap, so the
    explanation names the second too (in the result, the text and the JSON)."""
    second = "198.51.100.0/24"
    ranges = (tcp(NODE_PORT, CLIENTS, "sgr-0a"), tcp(NODE_PORT, second, "sgr-0b"))
    inventory = incident_inventory(node_rules=(*ranges, *SUBNET_RULES), source_ranges=(CLIENTS, second))
    assert explain_target_group(inventory, TG_ARN, current_state(inventory, [])).fully_admitted

    one_left = current_state(inventory, [revoke("e1", T0 + seconds(5), ranges[0])])
    target = explain_target_group(inventory, TG_ARN, one_left).flow("traffic").targets[0]
    assert target.flow is not None and str(target.flow.source) == CLIENTS
    assert target.also_not_admitted == ()  # the other range is still admitted

    both_gone = current_state(inventory, [revoke("e1", T0 + seconds(5), *ranges)])
    explanation = explain_target_group(inventory, TG_ARN, both_gone)
    target = explanation.flow("traffic").targets[0]
    assert target.reason == "source_not_covered"
    assert {str(f.source) for f in (target.flow, *target.also_not_admitted) if f} == {CLIENTS, second}
    assert [f.port for f in target.also_not_admitted] == [NODE_PORT]
    text = explanation_text(explanation)
    assert f"no rule admits tcp/{NODE_PORT} from " in text and f"; nor tcp/{NODE_PORT} from " in text
    assert CLIENTS in text and second in text
    data = msgspec.to_builtins(explanation_json(explanation))
    (listed,) = data["flows"][0]["targets"][0]["also_not_admitted"]
    assert listed.endswith(f"from {target.also_not_admitted[0].source}")


def test_missing_eni_and_missing_group_reasons() -> None:
    inventory = incident_inventory()
    no_eni = dataclasses.replace(inventory, network_interfaces={})
    result = explain_target_group(no_eni, TG_ARN, current_state(no_eni, []))
    assert {t.reason for t in result.flow("traffic").targets} == {"target_eni_not_found"}
    no_group = dataclasses.replace(inventory, security_groups={})
    result = explain_target_group(no_group, TG_ARN, current_state(no_group, []))
    assert {t.reason for t in result.flow("health_check").targets} == {"security_group_missing"}


def test_state_at_agrees_with_the_gap_sweep_at_every_moment() -> None:
    world = tcp(NODE_PORT, "0.0.0.0/0")
    changes: list[Change] = [
        set_preserve("e1", T0 + seconds(10), "false"),
        revoke("e2", T0 + seconds(20), world),
        authorize("e3", T0 + seconds(80), *(tcp(NODE_PORT, c) for c in SUBNETS)),
    ]
    inventory = incident_inventory()
    gaps = analyze(inventory, changes).gaps
    assert gaps  # the scenario has gaps to agree with
    for offset in (0, 10, 19, 20, 50, 79, 80, 200):
        at = T0 + seconds(offset)
        explanation = explain_target_group(inventory, TG_ARN, state_at(inventory, changes, at), at=at)
        for flow in explanation.flows:
            in_gap = any(
                g.flow == flow.kind and g.start <= at and (g.end is None or at < g.end) for g in gaps
            )
            assert (flow.admitted == len(flow.targets)) is not in_gap, (offset, flow.kind)
    # And the attribute follows the timeline: preserve on before e1, off after.
    assert explain_target_group(inventory, TG_ARN, state_at(inventory, changes, T0)).preserve_client_ip
    late = state_at(inventory, changes, T0 + seconds(11))
    assert not explain_target_group(inventory, TG_ARN, late).preserve_client_ip


def test_rule_ids_from_the_inventory_are_kept_only_for_the_same_rule() -> None:
    world = tcp(NODE_PORT, "0.0.0.0/0", "sgr-0world")
    inventory = incident_inventory(node_rules=(world,), taken_at=T0 + seconds(600))
    untouched = [authorize("e1", T0 + seconds(5), tcp(NODE_PORT, "10.9.0.0/16"))]
    state = state_at(inventory, untouched, T0)
    assert rule_ids(explain_target_group(inventory, TG_ARN, state).flow("traffic").targets[0]) == [
        "sgr-0world"
    ]
    # Revoked and re-authorized after `at`: the rule at `at` was another one, its id unknown.
    recreated = [
        revoke("e1", T0 + seconds(5), tcp(NODE_PORT, "0.0.0.0/0")),
        authorize("e2", T0 + seconds(9), tcp(NODE_PORT, "0.0.0.0/0")),
    ]
    state = state_at(inventory, recreated, T0)
    assert rule_ids(explain_target_group(inventory, TG_ARN, state).flow("traffic").targets[0]) == [None]


def test_find_target_groups_by_arn_name_and_service() -> None:
    inventory = incident_inventory()
    for query in (TG_ARN, "k8s-shop-web-abc", "shop/web"):
        assert [tg.arn for tg in find_target_groups(inventory, query)] == [TG_ARN]
    for query in ("shop/other", "nope", "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/x/y", " "):
        with pytest.raises(TargetNotFound):
            find_target_groups(inventory, query)


def test_json_form_is_plain_data() -> None:
    inventory = split_world_after_the_revoke()
    at = T0 + seconds(61)
    data = msgspec.to_builtins(
        explanation_json(
            explain_target_group(inventory, TG_ARN, state_at(inventory, split_changes(), at), at=at)
        )
    )
    assert json.loads(json.dumps(data)) == data
    assert data["at"] == format_time(at) and data["mode"] == "legacy" and data["admitted"] is False
    traffic = data["flows"][0]
    assert traffic["flow"] == "traffic" and traffic["targets_admitted"] == 0
    assert traffic["targets"][0]["uncovered"] == ["128.0.0.0/1"]


# --- the CLI, offline, from trail files ---------------------------------------------------------


def write_inventory(path: Path, inventory: Inventory) -> Path:
    """The inventory as a snapshot file, with the node group named as the sample records name it."""
    path.write_text(json.dumps(inventory.to_dict()).replace('"sg-node"', f'"{samples.NODE_GROUP}"'))
    return path


def write_trail(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_bytes(samples.trail_file_bytes(records))
    return path


def at_text(offset: float) -> str:
    return format_time(T0 + seconds(offset))


def split_trail(tmp_path: Path) -> tuple[Path, Path]:
    inventory = write_inventory(tmp_path / "inventory.json", split_world_after_the_revoke())
    high = samples.permission(cidrs=["128.0.0.0/1"])
    trail = write_trail(
        tmp_path / "trail.json.gz",
        [
            samples.authorize_record(
                "ev-auth", at_text(0), permissions=[high], rule_ids=["sgr-0fromtrail"], actor=samples.OPERATOR
            ),
            samples.revoke_record("ev-revoke", at_text(60), permissions=[high]),
        ],
    )
    return inventory, trail


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_names_the_rule_and_its_authorizer_before_the_revoke(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory, trail = split_trail(tmp_path)
    common = ("--inventory", str(inventory), "--events", str(trail))
    code, out, err = run_cli(capsys, "explain", "shop/web", *common, "--at", at_text(30), "--format", "json")
    assert code == 0, err
    document = json.loads(out)
    assert document["at"] == at_text(30) and document["events"] == 2
    assert list(document) == [  # the document's keys in order (its objects: test_report_shapes.py)
        "query",
        "source",
        "inventory_taken_at",
        "at",
        "events",
        "cloudtrail",
        "target_groups",
    ]
    assert list(document["cloudtrail"]) == CLOUDTRAIL_KEYS
    [explanation] = document["target_groups"]
    assert list(explanation)[-2:] == ["flows", "gaps"]
    traffic = explanation["flows"][0]
    assert traffic["targets_admitted"] == 2
    rules = traffic["targets"][0]["rules"]
    high = next(r for r in rules if r["source"] == "128.0.0.0/1")
    assert high["rule_id"] == "sgr-0fromtrail"
    assert high["security_group"] == samples.NODE_GROUP
    assert high["last_change"]["actor"] == "platform-admin"
    assert high["last_change"]["event_id"] == "ev-auth"

    code, out, _ = run_cli(capsys, "explain", "k8s-shop-web-abc", *common, "--at", at_text(30))
    assert code == 0
    assert "sgr-0fromtrail" in out and "AuthorizeSecurityGroupIngress by platform-admin" in out


def test_cli_gives_the_reason_and_uncovered_range_during_the_gap(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory, trail = split_trail(tmp_path)
    code, out, err = run_cli(
        capsys,
        "explain",
        TG_ARN,
        "--inventory",
        str(inventory),
        "--events",
        str(tmp_path),  # a folder works too
        "--at",
        at_text(90),
        "--format",
        "json",
    )
    assert code == 0, err
    traffic = json.loads(out)["target_groups"][0]["flows"][0]
    assert traffic["targets_admitted"] == 0
    assert {(t["reason"], tuple(t["uncovered"])) for t in traffic["targets"]} == {
        ("source_partly_covered", ("128.0.0.0/1",))
    }
    code, out, _ = run_cli(capsys, "explain", TG_ARN, "--inventory", str(inventory), "--events", str(trail))
    assert code == 0
    assert "NOT ADMITTED [source_partly_covered]" in out and "not admitted: 128.0.0.0/1" in out


def test_cli_lists_the_gaps_with_the_actor_and_the_trigger(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = write_inventory(tmp_path / "inventory.json", split_world_after_the_revoke())
    high = samples.permission(cidrs=["128.0.0.0/1"])
    trail = write_trail(
        tmp_path / "trail.json.gz",
        [
            samples.authorize_record("ev-auth", at_text(0), permissions=[high], actor=samples.OPERATOR),
            samples.modify_tg_attributes_record(
                "ev-flip", at_text(58), TG_ARN, {"preserve_client_ip.enabled": "true"}, actor=samples.OPERATOR
            ),
            samples.revoke_record("ev-revoke", at_text(60), permissions=[high]),
        ],
    )
    common = ("--inventory", str(inventory), "--events", str(trail))
    code, out, err = run_cli(capsys, "explain", TG_ARN, *common, "--format", "json")
    assert code == 0, err
    gaps = json.loads(out)["target_groups"][0]["gaps"]
    assert gaps and {g["start"] for g in gaps} == {at_text(60)}
    assert {(g["trigger"]["who"], g["trigger"]["event_id"], g["trigger"]["time"]) for g in gaps} == {
        ("platform-admin/alice", "ev-flip", at_text(58))
    }
    code, out, _ = run_cli(capsys, "explain", TG_ARN, *common)
    assert code == 0
    assert (
        f"triggered by platform-admin/alice (ModifyTargetGroupAttributes preserve_client_ip.enabled=true) "
        f"at {at_text(58)}" in out
    )
    # --at before the gap: no gap listed yet
    code, out, _ = run_cli(capsys, "explain", TG_ARN, *common, "--at", at_text(30), "--format", "json")
    assert code == 0 and json.loads(out)["target_groups"][0]["gaps"] == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["explain", "nope"], "no target group matches 'nope'"),
        (["explain", "shop/web", "--at", "2026-11-20T12:00:00Z"], "--at needs --events"),
        (["explain", "shop/web", "--events", "/nonexistent/trail.json"], "no such file or folder"),
        (["explain", "shop/web", "--events", "TRAIL", "--at", "yesterday"], "not an ISO 8601 time"),
    ],
)
def test_cli_unusable_input_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    inventory, trail = split_trail(tmp_path)
    argv = [str(trail) if a == "TRAIL" else a for a in argv]
    code, out, err = run_cli(capsys, *argv, "--inventory", str(inventory))
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1


def test_cli_at_with_no_usable_event_gives_no_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory, _trail = split_trail(tmp_path)
    (tmp_path / "empty.json").write_bytes(b"")
    (tmp_path / "bad.json.gz").write_bytes(b"not gzip")
    for events in ("empty.json", "bad.json.gz"):
        code, out, err = run_cli(
            capsys,
            "explain",
            "shop/web",
            "--inventory",
            str(inventory),
            "--events",
            str(tmp_path / events),
            "--at",
            at_text(90),
        )
        assert code == 2 and out == "", events
        assert f"{tmp_path / events}: " in err and "no usable CloudTrail record" in err
    # One good file beside a bad one: the verdict stands, the bad file is named.
    code, out, err = run_cli(
        capsys,
        "explain",
        "shop/web",
        "--inventory",
        str(inventory),
        "--events",
        str(tmp_path / "trail.json.gz"),
        str(tmp_path / "bad.json.gz"),
        "--at",
        at_text(90),
    )
    assert (
        code == 0
        and "NOT ADMITTED" in out
        and "CloudTrail files: 2 records used, 2 changes, 1 rejected" in out
    )
    assert f"{tmp_path / 'bad.json.gz'}: 1 rejected (not_gzip=1), 0 used" in err


def test_cli_unreadable_inventory_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "inventory.json"
    bad.write_text('{"format": "something else"}')
    for path in (bad, tmp_path / "missing.json"):
        code, out, err = run_cli(capsys, "explain", "shop/web", "--inventory", str(path))
        assert code == 2 and out == "" and err.count("\n") == 1


# --- live, against the moto server --------------------------------------------------------------


def test_live_explain_names_the_admitting_rule(
    clean_moto: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    world = build_incident_world(clean_moto.client("ec2"), clean_moto.client("elbv2"))
    arranged = len(clean_moto.requests())

    code, out, err = run_cli(capsys, "explain", "shop/web", "--format", "json")
    assert code == 0, err
    [explanation] = json.loads(out)["target_groups"]
    assert explanation["target_group_arn"] == world.tg_arn
    traffic = explanation["flows"][0]
    assert traffic["targets_admitted"] == traffic["targets_total"] == 2
    for target in traffic["targets"]:
        assert [(r["security_group"], r["rule_id"], r["source"]) for r in target["rules"]] == [
            (world.node_sg_id, world.node_rule_id, "0.0.0.0/0")
        ]
        assert target["rules"][0]["description"] == samples.LBC_DESCRIPTION

    code, out, err = run_cli(capsys, "explain", world.tg_arn)
    assert code == 0 and world.node_rule_id in out and "all targets admitted" in out
    # CloudTrail was read and held nothing for the rule: said so, with the window read, once
    # (the report's line; stderr only says what is being read).
    assert "CloudTrail LookupEvents" in out and "no change to it in the events" in out
    assert (out + err).count("CloudTrail LookupEvents 20") == 1, err
    # Only read-only calls reached AWS.
    calls = clean_moto.requests()[arranged:]
    assert calls and all(_read_only(r["operation"]) for r in calls), calls


def _read_only(operation: str) -> bool:
    return operation.startswith(("Describe", "Get")) or operation == "LookupEvents"


def test_live_explain_reads_cloudtrail_for_the_groups_within_the_rate_limit(
    clean_moto: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    ec2, elbv2 = clean_moto.client("ec2"), clean_moto.client("elbv2")
    world = build_incident_world(ec2, elbv2)
    clock = ManualClock(datetime.now(UTC) - timedelta(hours=3))
    recorder = CloudTrailRecorder(LookupSink(clean_moto), clock)
    recorder.attach(ec2)
    world_rule = {"IpProtocol": "tcp", "FromPort": NODE_PORT, "ToPort": NODE_PORT}
    with recorder.acting_as(role="platform-admin"):
        # Three hours ago (outside a 2h lookback): a rule on port 9 is added.
        ec2.authorize_security_group_ingress(
            GroupId=world.node_sg_id,
            IpPermissions=[
                {**world_rule, "FromPort": 9, "ToPort": 9, "IpRanges": [{"CidrIp": "10.9.0.0/16"}]}
            ],
        )
        clock.advance(2 * 3600)
        # An hour ago: the world rule is revoked and authorized again (a new rule id).
        ec2.revoke_security_group_ingress(GroupId=world.node_sg_id, SecurityGroupRuleIds=[world.node_rule_id])
        rules = ec2.authorize_security_group_ingress(
            GroupId=world.node_sg_id, IpPermissions=[{**world_rule, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
        )["SecurityGroupRules"]
    new_rule_id = rules[0]["SecurityGroupRuleId"]
    clean_moto.throttle(1)  # the first lookup is throttled once: backed off and retried
    arranged = len(clean_moto.requests())

    code, out, err = run_cli(capsys, "explain", "shop/web", "--lookback", "2h", "--format", "json")
    assert code == 0, err
    assert "reading CloudTrail LookupEvents since" in err and "1 security group(s)" in err
    document = json.loads(out)
    trail = document["cloudtrail"]
    assert trail["source"] == "lookup_events" and trail["complete"] is True
    assert trail["changes"] == 2 and document["events"] == 2  # the 3-hour-old authorize is outside
    traffic = document["target_groups"][0]["flows"][0]
    [rule] = traffic["targets"][0]["rules"]
    assert rule["rule_id"] == new_rule_id
    assert rule["last_change"]["actor"] == "platform-admin"
    assert rule["last_change"]["event"] == "AuthorizeSecurityGroupIngress"

    calls = [c for c in clean_moto.requests()[arranged:] if c["operation"] == "LookupEvents"]
    # One lookup for the group, one per event name, and the throttled one again; all event names watched.
    assert trail["requests"] == len(calls) == 1 + len(EVENT_NAME_LOOKUPS) + 1
    assert set(EVENT_NAME_LOOKUPS) <= WATCHED_EVENT_NAMES
    times = [c["time"] for c in calls]
    # At most two LookupEvents requests in any one second (CloudTrail's 2 req/s per account-region).
    assert all(later - earlier >= 1.0 for earlier, later in zip(times, times[2:], strict=False)), times
    assert all(_read_only(c["operation"]) for c in clean_moto.requests()[arranged:])


def test_live_explain_without_cloudtrail_says_the_last_change_is_unknown(
    clean_moto: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    world = build_incident_world(clean_moto.client("ec2"), clean_moto.client("elbv2"))
    arranged = len(clean_moto.requests())
    code, out, err = run_cli(capsys, "explain", world.tg_arn, "--no-cloudtrail")
    assert code == 0, err
    assert "CloudTrail: not read" in out and "last change unknown (no events read)" in out
    assert "no change to it in the events" not in out
    assert not [c for c in clean_moto.requests()[arranged:] if c["operation"] == "LookupEvents"]
    code, _, err = run_cli(capsys, "explain", world.tg_arn, "--lookback", "soon")
    assert code == 2 and "--lookback" in err


def test_live_explain_after_a_revoke_gives_the_reason(
    clean_moto: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    ec2 = clean_moto.client("ec2")
    world = build_incident_world(ec2, clean_moto.client("elbv2"))
    ec2.revoke_security_group_ingress(GroupId=world.node_sg_id, SecurityGroupRuleIds=[world.node_rule_id])

    code, out, err = run_cli(capsys, "explain", "k8s-shop-web-tg", "--format", "json")
    assert code == 0, err
    flows = {f["flow"]: f for f in json.loads(out)["target_groups"][0]["flows"]}
    for kind in ("traffic", "health_check"):
        assert flows[kind]["targets_admitted"] == 0
        assert {t["reason"] for t in flows[kind]["targets"]} == {"no_rule_for_port"}


def test_live_unknown_target_exits_2(clean_moto: MotoServer, capsys: pytest.CaptureFixture[str]) -> None:
    build_incident_world(clean_moto.client("ec2"), clean_moto.client("elbv2"))
    code, out, err = run_cli(capsys, "explain", "shop/missing")
    assert code == 2 and out == "" and "no target group matches 'shop/missing'" in err


def test_explain_names_the_intent_and_why_a_target_is_not_evaluable() -> None:
    """Issue 12: `explain` says what the client sources are judged by, and why a target outside
    the VPC is neither admitted nor a gap."""
    ranges = tcp(NODE_PORT, "203.0.113.0/24")
    inventory = incident_inventory(target_type="ip", node_rules=(ranges, *SUBNET_RULES))
    tg = inventory.target_groups[TG_ARN]
    hybrid = Target("192.168.100.10", NODE_PORT, None, "healthy", "all")
    inventory = dataclasses.replace(
        inventory, target_groups={TG_ARN: dataclasses.replace(tg, targets=(*tg.targets, hybrid))}
    )
    explanation = explain_target_group(inventory, TG_ARN, current_state(inventory, []))
    assert (explanation.intent, explanation.intent_sources) == ("managed_rules", ("203.0.113.0/24",))
    assert required_text(explanation.flow("traffic")) == (("tcp from 203.0.113.0/24",),)
    assert explanation.fully_admitted
    outside = [t for t in explanation.flow("traffic").targets if t.not_evaluable]
    assert [(t.target_id, t.not_evaluable, t.admitted) for t in outside] == [
        ("192.168.100.10", "target_outside_vpc", False)
    ]
    text = explanation_text(explanation)
    assert "client intent  managed_rules, the rules the controller manages on the port" in text
    assert "2/3 targets admitted (1 not evaluable)" in text
    assert "NOT EVALUABLE [target_outside_vpc]  192.168.100.10" in text and "never a gap" in text
    assert explanation_json(explanation).intent == "managed_rules"

    bound = split_world_after_the_revoke()
    assert explain_target_group(bound, TG_ARN, current_state(bound, [])).intent == "binding"
    plain = incident_inventory(preserve="false", node_rules=SUBNET_RULES)
    assert explain_target_group(plain, TG_ARN, current_state(plain, [])).intent == "default"
    given = plain.with_intents({TG_ARN: Intent("managed_rules", ("198.51.100.0/24",))})
    assert explain_target_group(given, TG_ARN, current_state(given, [])).intent_sources == (
        "198.51.100.0/24",
    )


def test_live_explain_warns_on_stderr_when_throttling_outlasts_the_retries(
    clean_moto: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """moto throttles the first LookupEvents call once and --lookup-retries 0 gives it up: the
    report still comes (exit 0), its summary says INCOMPLETE with the error, once in the report
    and once more on stderr as a warning, whatever the format."""
    world = build_incident_world(clean_moto.client("ec2"), clean_moto.client("elbv2"))
    clean_moto.throttle(1)
    code, out, err = run_cli(capsys, "explain", world.tg_arn, "--lookup-retries", "0")
    assert code == 0, err
    [summary] = [line for line in out.splitlines() if "CloudTrail LookupEvents" in line]
    assert "INCOMPLETE (" in summary and "ThrottlingException" in summary, summary
    assert "last changes may be missing" in summary
    warnings = [line for line in err.splitlines() if "INCOMPLETE" in line]
    assert warnings == [f"explain: warning: {summary.strip()}"], err

    clean_moto.throttle(1)
    code, out, err = run_cli(capsys, "explain", world.tg_arn, "--lookup-retries", "0", "--format", "json")
    assert code == 0, err
    trail = json.loads(out)["cloudtrail"]
    assert trail["complete"] is False and len(trail["errors"]) == 1, trail
    assert "ThrottlingException" in trail["errors"][0]
    assert [line for line in err.splitlines() if "warning:" in line and "INCOMPLETE" in line], err

    # the default retries outlast one throttle: complete, and no warning
    clean_moto.throttle(1)
    code, out, err = run_cli(capsys, "explain", world.tg_arn, "--format", "json")
    assert code == 0 and json.loads(out)["cloudtrail"]["complete"] is True, err
    assert "INCOMPLETE" not in err and "warning" not in err, err


def test_lookup_retries_must_not_be_negative(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "explain", "shop/web", "--region", "eu-west-1", "--lookup-retries", "-1")
    assert code == 2 and "--lookup-retries" in err, err


def test_explain_says_an_alb_behind_the_nlb_is_not_evaluable() -> None:
    """An ALB registered as the NLB's target (target type "alb": the controller's frontend NLB of
    an Ingress, LBC v3.5.0 pkg/ingress/model_build_frontend_nlb.go) has no node or pod ENI and its
    own groups are not read: not evaluable, with why, never a gap."""
    base = incident_inventory(node_rules=())
    tg = base.target_groups[TG_ARN]
    alb_arn = "arn:aws:elasticloadbalancing:us-east-1:111122223333:loadbalancer/app/ingress/0123456789abcdef"
    alb = dataclasses.replace(tg, target_type="alb", targets=(Target(alb_arn, 80, None, "healthy"),))
    inventory = dataclasses.replace(base, target_groups={TG_ARN: alb})
    explanation = explain_target_group(inventory, TG_ARN, current_state(inventory, []))
    assert explanation.fully_admitted
    assert [(t.not_evaluable, t.admitted) for f in explanation.flows for t in f.targets] == [
        ("target_is_alb", False),
        ("target_is_alb", False),
    ]
    text = explanation_text(explanation)
    assert f"NOT EVALUABLE [target_is_alb]  {alb_arn}" in text
    assert "its own security groups admit the NLB's traffic" in text and "never a gap" in text
    assert analyze(inventory, []).gaps == []
