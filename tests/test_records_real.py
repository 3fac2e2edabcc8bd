"""Records AWS wrote (tests/data/cloudtrail-real/, sources in its PROVENANCE.md) parse as each
record says: group, action, rules and rule ids, actor, time, account and region; in every wrapper."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from exporter.engine.changes import RuleChange
from exporter.engine.rules import Rule, Source
from exporter.sources.envelopes import parse_payload
from tests import cloudtrail_samples as ct

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
}


def test_every_corpus_file_has_an_expectation_and_a_provenance_entry() -> None:
    files = {p.name for p in CORPUS.iterdir() if p.name != "PROVENANCE.md"}
    assert files == set(EXPECTED)
    provenance = (CORPUS / "PROVENANCE.md").read_text()
    assert all(f"`{name}`" in provenance for name in files)


def _records(name: str) -> list[dict[str, Any]]:
    document = json.loads((CORPUS / name).read_text())
    return document if isinstance(document, list) else [document]


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
