"""Synthetic CloudTrail records for the ingest and trail-scan benchmarks (seeded, deterministic).

Watched records come from the test suite's builders (tests/cloudtrail_samples.py), so they have
the shapes the parser is tested on: the load balancer controller replacing node rules (revoke and
authorize with response rule sets, some revokes by rule id) and preserve_client_ip flips. Sources
come from a bounded pool, as in a real account: 0.0.0.0/0, ::/0, a few hundred NLB subnet CIDRs,
VPC CIDRs and customer source ranges.

Other records are the management and data events that fill a real trail: AssumeRole, Decrypt,
DescribeInstances, S3 PutObject/GetObject, target-health polling and so on, with the fields
those events carry (long session tokens, resources, additionalEventData, tlsDetails).
"""

from __future__ import annotations

import base64
import json
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from tests import cloudtrail_samples as samples

T0 = datetime(2026, 11, 20, 8, 0, 0, tzinfo=UTC)
ACCOUNT = samples.ACCOUNT
REGION = samples.REGION

Record = dict[str, Any]


class _Pools:
    """The bounded sets real records draw from (groups, node ports, CIDRs, target groups)."""

    def __init__(self, rng: random.Random) -> None:
        self.groups = [f"sg-0{rng.getrandbits(64):016x}" for _ in range(200)]
        self.subnets = [f"10.{rng.randrange(256)}.{rng.randrange(256)}.0/24" for _ in range(300)]
        self.vpcs = [f"10.{second}.0.0/16" for second in range(0, 256, 8)]
        self.customer = ["203.0.113.0/24", "198.51.100.0/24", "192.0.2.0/25", "100.64.0.0/10"]
        self.ipv6 = [f"2600:1f18:{rng.getrandbits(16):x}:{rng.getrandbits(16):x}::/64" for _ in range(40)]
        self.ports = [30000 + rng.randrange(2768) for _ in range(400)]
        self.target_groups = [
            f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:targetgroup/k8s-ns{i % 40}-svc{i}/"
            f"{rng.getrandbits(64):016x}"
            for i in range(300)
        ]

    def rule_set(self, rng: random.Random) -> tuple[list[str], list[str]]:
        """(IPv4 CIDRs, IPv6 CIDRs) of one LBC rule set: clients, or the NLB's subnets."""
        kind = rng.random()
        if kind < 0.35:
            return ["0.0.0.0/0"], (["::/0"] if rng.random() < 0.1 else [])
        if kind < 0.75:
            return rng.sample(self.subnets, rng.choice((2, 3, 3))), []
        if kind < 0.9:
            return [rng.choice(self.vpcs)], ([rng.choice(self.ipv6)] if rng.random() < 0.2 else [])
        return rng.sample(self.customer, rng.choice((1, 2))), []


def _event_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _rule_id(rng: random.Random) -> str:
    return f"sgr-0{rng.getrandbits(64):016x}"


def watched_records(count: int, seed: int = 1) -> list[Record]:
    """`count` watched records in eventTime order: ~45% authorize, ~45% revoke, ~10% attribute flips.

    They come as the controller makes them: per flip, a revoke of the old rule set and an
    authorize of the new one (some of each pair in the same second), with an occasional
    ModifyTargetGroupAttributes; every authorize carries its response rule set (rule ids), and
    one revoke in ten is by rule id.
    """
    rng = random.Random(seed)
    pools = _Pools(rng)
    known_ids: dict[tuple[str, int], list[tuple[str, list[str]]]] = {}
    records: list[Record] = []
    moment = T0
    while len(records) < count:
        moment += timedelta(seconds=rng.choice((0, 1, 1, 2, 3, 7)))
        actor = samples.CONTROLLER if rng.random() < 0.9 else samples.OPERATOR
        if rng.random() < 0.1:
            records.append(
                samples.modify_tg_attributes_record(
                    event_id=_event_id(rng),
                    time=moment,
                    target_group_arn=rng.choice(pools.target_groups),
                    attributes={"preserve_client_ip.enabled": rng.choice(("true", "false"))},
                    actor=actor,
                )
            )
            continue
        group, port = rng.choice(pools.groups), rng.choice(pools.ports)
        cidrs, cidrs6 = pools.rule_set(rng)
        perm = samples.permission(port, cidrs=cidrs, cidrs6=cidrs6)
        if rng.random() < 0.5:
            ids = [_rule_id(rng) for _ in range(len(cidrs) + len(cidrs6))]
            known_ids.setdefault((group, port), []).append((ids[0], cidrs[:1]))
            records.append(
                samples.authorize_record(
                    event_id=_event_id(rng),
                    time=moment,
                    group_id=group,
                    permissions=[perm],
                    rule_ids=ids,
                    actor=actor,
                )
            )
            continue
        earlier = known_ids.get((group, port))
        if earlier and rng.random() < 0.2:
            rule_id, old = earlier.pop()
            old_perm = samples.permission(port, cidrs=old)
            records.append(
                samples.revoke_record(
                    event_id=_event_id(rng),
                    time=moment,
                    group_id=group,
                    permissions=(),
                    rule_ids_request=[rule_id],
                    revoked_definitions=[old_perm],
                    rule_ids=[rule_id],
                    actor=actor,
                )
            )
        else:
            records.append(
                samples.revoke_record(
                    event_id=_event_id(rng), time=moment, group_id=group, permissions=[perm], actor=actor
                )
            )
    return records[:count]


def lookup_events_strings(count: int, seed: int = 1) -> list[str]:
    """The CloudTrailEvent strings of a LookupEvents read of `count` watched records: newest first."""
    return [json.dumps(record) for record in reversed(watched_records(count, seed))]


# --- other events: what fills the rest of a trail -------------------------------------------------

_SERVICE_ROLES = ("eks-nodegroup-role", "karpenter-node", "ci-deployer", "grafana-cloudwatch", "backup-agent")
_BUCKETS = ("prod-artifacts-7f3a", "app-uploads-eu", "logs-archive-001", "terraform-state-main")


def _identity(rng: random.Random, role: str) -> Record:
    session = f"i-0{rng.getrandbits(60):015x}"
    return {
        "type": "AssumedRole",
        "principalId": f"AROA{rng.getrandbits(64):016X}:{session}",
        "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}",
        "accountId": ACCOUNT,
        "accessKeyId": f"ASIA{rng.getrandbits(64):016X}",
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": f"AROA{rng.getrandbits(64):016X}",
                "arn": f"arn:aws:iam::{ACCOUNT}:role/{role}",
                "accountId": ACCOUNT,
                "userName": role,
            },
            "webIdFederationData": {},
            "attributes": {"creationDate": "2026-11-20T07:12:44Z", "mfaAuthenticated": "false"},
            "ec2RoleDelivery": "2.0",
        },
    }


def _base(rng: random.Random, name: str, source: str, moment: datetime, role: str) -> Record:
    return {
        "eventVersion": "1.09",
        "userIdentity": _identity(rng, role),
        "eventTime": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": source,
        "eventName": name,
        "awsRegion": REGION,
        "sourceIPAddress": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}",
        "userAgent": rng.choice(
            (
                "aws-sdk-go-v2/1.24.1 os/linux lang/go#1.21.6 md/GOOS#linux md/GOARCH#amd64 api/ec2#1.142.0",
                "Boto3/1.34.14 md/Botocore#1.34.14 ua/2.0 os/linux#6.1 md/arch#x86_64 lang/python#3.11.7",
                "aws-cli/2.15.10 md/awscrt#0.19.19 ua/2.0 os/linux#6.1 md/arch#x86_64 lang/python#3.11.6",
            )
        ),
        "requestID": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "eventID": _event_id(rng),
        "readOnly": True,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management",
        "tlsDetails": {
            "tlsVersion": "TLSv1.3",
            "cipherSuite": "TLS_AES_128_GCM_SHA256",
            "clientProvidedHostHeader": f"{source.split('.')[0]}.{REGION}.amazonaws.com",
        },
    }


def _assume_role(rng: random.Random, moment: datetime) -> Record:
    role = rng.choice(_SERVICE_ROLES)
    record = _base(rng, "AssumeRole", "sts.amazonaws.com", moment, role)
    record["userIdentity"] = {"type": "AWSService", "invokedBy": "ec2.amazonaws.com"}
    record["sourceIPAddress"] = "ec2.amazonaws.com"
    record["userAgent"] = "ec2.amazonaws.com"
    session = f"i-0{rng.getrandbits(60):015x}"
    record["requestParameters"] = {
        "roleArn": f"arn:aws:iam::{ACCOUNT}:role/{role}",
        "roleSessionName": session,
        "durationSeconds": 3600,
    }
    token = base64.b64encode(rng.getrandbits(480 * 8).to_bytes(480, "big")).decode()  # 640 characters
    record["responseElements"] = {
        "credentials": {
            "accessKeyId": f"ASIA{rng.getrandbits(64):016X}",
            "sessionToken": token,
            "expiration": "Nov 20, 2026, 9:00:00 AM",
        },
        "assumedRoleUser": {
            "assumedRoleId": f"AROA{rng.getrandbits(64):016X}:{session}",
            "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}",
        },
    }
    record["resources"] = [
        {"accountId": ACCOUNT, "type": "AWS::IAM::Role", "ARN": f"arn:aws:iam::{ACCOUNT}:role/{role}"}
    ]
    record["sharedEventID"] = _event_id(rng)
    return record


def _describe_instances(rng: random.Random, moment: datetime) -> Record:
    record = _base(rng, "DescribeInstances", "ec2.amazonaws.com", moment, "karpenter-node")
    ids = [{"instanceId": f"i-0{rng.getrandbits(60):015x}"} for _ in range(rng.randrange(1, 6))]
    record["requestParameters"] = {
        "instancesSet": {"items": ids},
        "filterSet": {
            "items": [{"name": "instance-state-name", "valueSet": {"items": [{"value": "running"}]}}]
        },
    }
    record["responseElements"] = None
    return record


def _s3_object(rng: random.Random, moment: datetime, name: str) -> Record:
    record = _base(rng, name, "s3.amazonaws.com", moment, rng.choice(_SERVICE_ROLES))
    bucket = rng.choice(_BUCKETS)
    key = f"builds/{rng.getrandbits(32):08x}/artifact-{rng.randrange(10**6)}.tar.gz"
    record["readOnly"] = name == "GetObject"
    record["managementEvent"] = False
    record["eventCategory"] = "Data"
    record["requestParameters"] = {
        "bucketName": bucket,
        "Host": f"{bucket}.s3.{REGION}.amazonaws.com",
        "key": key,
        "x-amz-server-side-encryption": "aws:kms",
    }
    record["responseElements"] = (
        {"x-amz-server-side-encryption": "aws:kms", "x-amz-version-id": f"{rng.getrandbits(128):032x}"}
        if name == "PutObject"
        else None
    )
    record["additionalEventData"] = {
        "SignatureVersion": "SigV4",
        "CipherSuite": "TLS_AES_128_GCM_SHA256",
        "bytesTransferredIn": rng.randrange(10**7) if name == "PutObject" else 0,
        "SSEApplied": "SSE_KMS",
        "AuthenticationMethod": "AuthHeader",
        "x-amz-id-2": f"{rng.getrandbits(256):064x}",
        "bytesTransferredOut": 0 if name == "PutObject" else rng.randrange(10**7),
    }
    record["resources"] = [
        {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"},
        {"accountId": ACCOUNT, "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}"},
    ]
    return record


def _decrypt(rng: random.Random, moment: datetime) -> Record:
    record = _base(rng, "Decrypt", "kms.amazonaws.com", moment, rng.choice(_SERVICE_ROLES))
    key = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{uuid.UUID(int=rng.getrandbits(128), version=4)}"
    record["requestParameters"] = {
        "encryptionContext": {"aws:s3:arn": f"arn:aws:s3:::{rng.choice(_BUCKETS)}"},
        "encryptionAlgorithm": "SYMMETRIC_DEFAULT",
    }
    record["responseElements"] = None
    record["resources"] = [{"accountId": ACCOUNT, "type": "AWS::KMS::Key", "ARN": key}]
    return record


def _describe_target_health(rng: random.Random, moment: datetime) -> Record:
    record = _base(
        rng, "DescribeTargetHealth", "elasticloadbalancing.amazonaws.com", moment, "eks-nodegroup-role"
    )
    record["userAgent"] = samples.CONTROLLER_AGENT
    record["requestParameters"] = {
        "targetGroupArn": f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:targetgroup/k8s-ns-svc/"
        f"{rng.getrandbits(64):016x}"
    }
    record["responseElements"] = None
    return record


def _describe_security_groups(rng: random.Random, moment: datetime) -> Record:
    record = _base(rng, "DescribeSecurityGroups", "ec2.amazonaws.com", moment, "eks-nodegroup-role")
    record["requestParameters"] = {
        "securityGroupSet": {"items": [{"groupId": f"sg-0{rng.getrandbits(64):016x}"}]},
        "securityGroupIdSet": {},
        "filterSet": {},
    }
    record["responseElements"] = None
    return record


def _get_caller_identity(rng: random.Random, moment: datetime) -> Record:
    record = _base(rng, "GetCallerIdentity", "sts.amazonaws.com", moment, rng.choice(_SERVICE_ROLES))
    record["requestParameters"] = None
    record["responseElements"] = None
    return record


_OTHER = (
    (0.20, _assume_role),
    (0.15, _describe_instances),
    (0.15, lambda rng, moment: _s3_object(rng, moment, "PutObject")),
    (0.15, lambda rng, moment: _s3_object(rng, moment, "GetObject")),
    (0.15, _decrypt),
    (0.08, _describe_target_health),
    (0.07, _describe_security_groups),
    (0.05, _get_caller_identity),
)


def other_record(rng: random.Random, moment: datetime) -> Record:
    """One unwatched record, drawn from the mix above."""
    pick = rng.random()
    for weight, build in _OTHER:
        if pick < weight:
            return build(rng, moment)
        pick -= weight
    return _get_caller_identity(rng, moment)


def trail_files(
    files: int, records_per_file: int, watched_share: float = 0.01, seed: int = 2
) -> Iterator[list[Record]]:
    """The records of `files` trail files: `watched_share` of them watched, the rest other events."""
    rng = random.Random(seed)
    watched = _endless_watched(int(files * records_per_file * watched_share) + files, seed + 1)
    moment = T0
    for _ in range(files):
        records: list[Record] = []
        for _ in range(records_per_file):
            moment += timedelta(milliseconds=rng.randrange(0, 400))
            if rng.random() < watched_share:
                records.append(next(watched))
            else:
                records.append(other_record(rng, moment))
        yield records


def _endless_watched(batch: int, seed: int) -> Iterator[Record]:
    """Watched records, `batch` at a time, as many as asked for (each batch from its own seed)."""
    while True:
        yield from watched_records(max(1, batch), seed)
        seed += 1000
