"""Fault tests for the read-only guard: an exact allow-list per service, no name prefixes.

The guard list (sources/aws.py READ_OPERATIONS, plus sqs:DeleteMessage on the exporter's own
queue), docs/iam-policy.json and the calls a moto server records from inventory, LookupEvents,
SQS and the S3 backfill are one and the same set.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from exporter.sources.aws import READ_OPERATIONS, AwsClients, AwsTarget, ReadOnlyGuard, ReadOnlyViolation
from tests.awsworld import MotoServer
from tests.test_cloudtrail_sources import POLICY, exporter_operations, iam_action

__all__ = ["exporter_operations"]  # the recorded-calls fixture, shared with test_cloudtrail_sources

#: Reads by name that the exporter never calls: each hands out credentials, secrets or data.
TEMPTING: list[tuple[str, str, dict[str, Any]]] = [
    ("sts", "get_session_token", {}),
    ("sts", "get_federation_token", {"Name": "x"}),
    ("cognito-identity", "get_id", {"IdentityPoolId": "us-east-1:00000000-0000-0000-0000-000000000000"}),
    ("secretsmanager", "get_secret_value", {"SecretId": "x"}),
    ("ssm", "get_parameter", {"Name": "x", "WithDecryption": True}),
    ("ec2", "get_password_data", {"InstanceId": "i-0123456789abcdef0"}),
    ("ec2", "describe_images", {}),
    ("s3", "list_buckets", {}),
    ("s3", "get_bucket_policy", {"Bucket": "x"}),
    ("iam", "list_users", {}),
    ("sqs", "get_queue_attributes", {"QueueUrl": "http://127.0.0.1/123456789012/q"}),
    ("cloudtrail", "get_trail", {"Name": "x"}),
]


@pytest.mark.parametrize(("service", "method", "params"), TEMPTING, ids=[f"{s}.{m}" for s, m, _ in TEMPTING])
def test_reads_the_exporter_never_calls_are_refused_before_sending(
    service: str, method: str, params: dict[str, Any], clean_moto: MotoServer
) -> None:
    clients = AwsClients(AwsTarget("us-east-1"), endpoint_url=clean_moto.url)
    before = len(clean_moto.requests())
    with pytest.raises(ReadOnlyViolation, match="not an operation the exporter calls"):
        getattr(clients.client(service), method)(**params)
    assert clean_moto.requests()[before:] == []  # nothing reached the endpoint


def test_the_allow_list_is_exact_per_service() -> None:
    guard = ReadOnlyGuard()
    for service, operations in READ_OPERATIONS.items():
        for operation in operations:
            guard.check(service, operation, {})
            for other in READ_OPERATIONS:
                if operation not in READ_OPERATIONS[other]:
                    with pytest.raises(ReadOnlyViolation):
                        guard.check(other, operation, {})  # the name alone is not enough


def test_guard_list_iam_policy_and_recorded_calls_are_one_set(
    exporter_operations: set[tuple[str, str]],
) -> None:
    guarded = {(s, op) for s, ops in READ_OPERATIONS.items() for op in ops} | {("sqs", "DeleteMessage")}
    assert guarded == exporter_operations
    statements = json.loads(POLICY.read_text())["Statement"]
    granted = {
        action
        for statement in statements
        if statement["Effect"] == "Allow"
        for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    }
    assert {iam_action(*op) for op in guarded} == granted
    assert "sqs:GetQueueAttributes" not in granted  # nothing calls it
