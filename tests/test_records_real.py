"""Records AWS wrote (tests/data/cloudtrail-real/, sources in its PROVENANCE.md) parse as each
record says: group, action, rules and rule ids, actor, time, account and region; in every wrapper."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from exporter.engine.changes import RuleChange
from exporter.engine.gaps import analyze
from exporter.engine.inventory import Inventory
from exporter.engine.rules import Rule, Source
from exporter.sources.envelopes import parse_payload
from tests import cloudtrail_samples as ct
from tests.engine_world import TG_ARN, incident_inventory

CORPUS = Path(__file__).parent / "data" / "cloudtrail-real"


@dataclass(frozen=True)
class Expected:
    """What the record itself says; None for a record that must be ignored (unwatched name)."""

    event_id: str
    group_id: str
    rules: tuple[Rule, ...]
    time: datetime
    principal_arn: str
    identity_type: str
    issuer: str | None
    user_agent_starts: str
    source_ip: str
    account: str
    region: str


def _tcp(port: int, cidr: str, rule_id: str | None) -> Rule:
    return Rule("tcp", port, port, Source.cidr(cidr), rule_id)


def _tcp_from_group(port: int, group: str, rule_id: str, description: str) -> Rule:
    return Rule("tcp", port, port, Source.group(group), rule_id, description)


def _kuali(event_id: str, source_group: str, rule_id: str, description: str) -> Expected:
    """One of the stack's two rules: tcp 1521 on sg-01f414f5313452cd1 from `source_group`, by a
    console session's CloudFormation call ("AWS Internal") on 2022-11-16 at 02:34:24Z."""
    return Expected(
        event_id=event_id,
        group_id="sg-01f414f5313452cd1",
        rules=(_tcp_from_group(1521, source_group, rule_id, description),),
        time=datetime(2022, 11, 16, 2, 34, 24, tzinfo=UTC),
        principal_arn="arn:aws:sts::770203350335:assumed-role/Shibboleth-InfraMgt/wrh@bu.edu",
        identity_type="AssumedRole",
        issuer="Shibboleth-InfraMgt",
        user_agent_starts="AWS Internal",
        source_ip="AWS Internal",
        account="770203350335",
        region="us-east-1",
    )


EXPECTED: dict[str, Expected | None] = {
    # The CLI's top-level form; LogLicker anonymized 0.0.0.0/0 as 208.236.235.254/0 (still /0).
    "stratus-red-team.ec2-security-group-open-port-22-ingress.json": Expected(
        event_id="9fd68588-ecbf-4528-a345-199fa6bb0821",
        group_id="sg-003dc7f1f1c686164",
        rules=(_tcp(22, "0.0.0.0/0", "sgr-09b3e3d2ca1edf2a2"),),
        time=datetime(2024, 8, 1, 12, 23, 55, tzinfo=UTC),
        principal_arn="arn:aws:iam::032092706103:user/christophe",
        identity_type="IAMUser",
        issuer=None,
        user_agent_starts="stratus-red-team_",
        source_ip="253.243.215.253",
        account="032092706103",
        region="us-northeast-1r",
    ),
    "elastic-integrations.authorize-security-group-ingress.log": Expected(
        event_id="c409b898-91e4-44d5-a994-68741a8a0212",
        group_id="sg-0f63fecfa17ef4fee",
        rules=(_tcp(22, "203.0.113.0/24", "sgr-027eb7c59241731e0"),),
        time=datetime(2024, 10, 14, 14, 11, 38, tzinfo=UTC),
        principal_arn="arn:aws:iam::000000000:user/test@elastic.co",
        identity_type="IAMUser",
        issuer=None,
        user_agent_starts="aws-cli/2.17.60",
        source_ip="216.160.83.56",
        account="000000000",
        region="us-east-1",
    ),
    "elastic-integrations.authorize-security-group-egress.log": None,
    "panther.go-script-authorize-ingress.json": Expected(
        event_id="42155429-7e8e-43b5-9b5e-6953f80d51d5",
        group_id="sg-0d921df5d84f7270a",
        rules=(_tcp(22, "0.0.0.0/0", None),),
        time=datetime(2020, 4, 30, 4, 40, 52, tzinfo=UTC),
        principal_arn="arn:aws:sts::112233445566:assumed-role/Operator/ryan@example.com",
        identity_type="AssumedRole",
        issuer="Operator",
        user_agent_starts="aws-sdk-go/1.24.1",
        source_ip="100.1.114.142",
        account="112233445566",
        region="us-east-1",
    ),
    # Through Panther's pipeline: "2021-01-24 04:55:45.000", string ports, lower-cased
    # userIdentity keys (so no role name is read: the actor is the session's ARN).
    "panther.console-authorize-ingress.json": Expected(
        event_id="504b492f-7832-406b-a4fd-45a13e48adc4",
        group_id="sg-04f0b44316f7d2471",
        rules=(_tcp(443, "0.0.0.0/16", None),),
        time=datetime(2021, 1, 24, 4, 55, 45, tzinfo=UTC),
        principal_arn="arn:aws:sts::112233445566:assumed-role/TestAdmin/alan",
        identity_type="AssumedRole",
        issuer=None,
        user_agent_starts="console.ec2.amazonaws.com",
        source_ip="136.25.37.134",
        account="112233445566",
        region="us-west-2",
    ),
    # EventBridge envelopes as a Lambda received them: a CloudFormation stack (console session,
    # "AWS Internal") authorizing tcp 1521 from another security group, described; the rule id
    # comes from responseElements.securityGroupRuleSet (the request carries none).
    "kuali-cloudformation.eventbridge-authorize-ingress-from-group-1.json": _kuali(
        "50dd3491-f4bc-4a04-a4e0-db6d5311049d",
        "sg-000537769a1c2d858",
        "sgr-02e2ca7d55820dc26",
        "Allows ingress to an rds instance created in another stack from application ec2 "
        "instances created in this stack.",
    ),
    "kuali-cloudformation.eventbridge-authorize-ingress-from-group-2.json": _kuali(
        "1091b24b-5b58-4010-a065-4fd069c06872",
        "sg-0e4d6b8a99395a608",
        "sgr-052f232f61106d4c4",
        "Allows ingress to an rds instance created in another stack from the alb created in this stack.",
    ),
}


def test_every_corpus_file_has_an_expectation_and_a_provenance_entry() -> None:
    files = {p.name for p in CORPUS.iterdir() if p.name != "PROVENANCE.md"}
    assert files == set(EXPECTED)
    provenance = (CORPUS / "PROVENANCE.md").read_text()
    assert all(f"`{name}`" in provenance for name in files)


def _records(name: str) -> list[dict[str, Any]]:
    """The CloudTrail records of a corpus file (an EventBridge envelope as published holds one)."""
    document = json.loads((CORPUS / name).read_text())
    records = document if isinstance(document, list) else [document]
    return [r["detail"] if "detail-type" in r else r for r in records]


WRAPPERS: dict[str, Callable[[list[dict[str, Any]]], Any]] = {
    "as-published": lambda rs: None,
    "s3-trail-file": ct.trail_file_bytes,
    "lookup-events": lambda rs: json.dumps(ct.lookup_result(rs)),
    "eventbridge": lambda rs: [ct.eventbridge_envelope(r) for r in rs],
    "sqs": lambda rs: {"Messages": [ct.sqs_message(r) for r in rs]},
}


@pytest.mark.parametrize("wrapper", WRAPPERS)
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_record_parses_as_it_says(name: str, wrapper: str) -> None:
    wrapped = WRAPPERS[wrapper](_records(name))
    result = parse_payload((CORPUS / name).read_bytes() if wrapped is None else wrapped)
    assert result.rejections == []
    expected = EXPECTED[name]
    if expected is None:
        assert (result.changes, result.ignored) == ([], 1)
        return
    (change,) = result.changes
    assert isinstance(change, RuleChange)
    assert (change.meta.event_id, change.meta.event_name) == (
        expected.event_id,
        "AuthorizeSecurityGroupIngress",
    )
    assert (change.group_id, change.action, change.rule_ids) == (expected.group_id, "authorize", ())
    assert change.rules == expected.rules
    assert change.meta.event_time == expected.time and not change.meta.failed
    assert (change.meta.account_id, change.meta.region) == (expected.account, expected.region)
    actor = change.meta.actor
    assert (actor.principal_arn, actor.identity_type, actor.issuer, actor.source_ip) == (
        expected.principal_arn,
        expected.identity_type,
        expected.issuer,
        expected.source_ip,
    )
    assert actor.user_agent is not None and actor.user_agent.startswith(expected.user_agent_starts)
    assert not actor.is_controller


# --- what the records mean to the model, not only how they parse --------------------------------

KUALI_NODE_GROUP = "sg-01f414f5313452cd1"  # the group both records add a rule to
KUALI_LB_GROUP = "sg-0e4d6b8a99395a608"  # the source of the second record ("the alb")


def _sg_mode_world_behind(group: str, lb_group: str, port: int, taken_at: datetime) -> Inventory:
    """An SG-mode NLB (frontend group `lb_group`) in front of targets on `port` whose ENIs hold
    only `group`, which has no rule yet: the groups and port of the real records."""
    world = incident_inventory(node_rules=(), lb_security_groups=(lb_group,), taken_at=taken_at)
    tg = world.target_groups[TG_ARN]
    tg = replace(tg, port=port, targets=tuple(replace(t, port=port) for t in tg.targets))
    enis = {k: replace(e, security_group_ids=(group,)) for k, e in world.network_interfaces.items()}
    groups = {gid: sg for gid, sg in world.security_groups.items() if gid != "sg-node"}
    groups[group] = replace(world.security_groups["sg-node"], group_id=group)
    return replace(world, target_groups={TG_ARN: tg}, network_interfaces=enis, security_groups=groups)


def _parsed(name: str) -> RuleChange:
    (change,) = parse_payload((CORPUS / name).read_bytes()).changes
    assert isinstance(change, RuleChange)
    return change


def test_the_real_group_reference_admits_an_sg_mode_nlb_from_the_referenced_group() -> None:
    """The second record's rule (tcp 1521 from the load balancer's group) admits both flows of an
    SG-mode NLB whose frontend group it names; the first record's (from another group) admits
    neither: the parsed source is the group, its port the record's."""
    from_app = _parsed("kuali-cloudformation.eventbridge-authorize-ingress-from-group-1.json")
    from_lb = _parsed("kuali-cloudformation.eventbridge-authorize-ingress-from-group-2.json")
    before = from_lb.meta.event_time - timedelta(minutes=1)
    world = _sg_mode_world_behind(KUALI_NODE_GROUP, KUALI_LB_GROUP, 1521, before)

    only_app = analyze(world, [from_app])
    assert not any(s.fully_admitted for s in only_app.status[TG_ARN].values())
    assert sorted((g.flow, g.end) for g in only_app.gaps) == [("health_check", None), ("traffic", None)]

    both = analyze(world, [from_app, from_lb])
    assert all(s.fully_admitted for s in both.status[TG_ARN].values())
    assert sorted(
        (g.flow, g.end, g.closed_by and g.closed_by.event_id, g.start_exact) for g in both.gaps
    ) == [
        (flow, from_lb.meta.event_time, from_lb.meta.event_id, False) for flow in ("health_check", "traffic")
    ]
