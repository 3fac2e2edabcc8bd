"""Test helpers for a real (moto) AWS over HTTP: the server process, a CloudTrail recorder, worlds.

- `MotoServer.start(log_dir)`: runs `python -m tests.moto_launcher` on a free port; `.url`,
  `.client(service)`, `.add_records(list)`, `.throttle(n)`, `.requests()`, `.reset()`, `.stop()`.
- `ManualClock`: a controllable UTC clock (`now()`, `advance(seconds)`), for record times.
- `CloudTrailRecorder(sink, clock)`: `.attach(ec2, elbv2)` on the TEST's own clients turns each
  Authorize/Revoke/ModifySecurityGroupRules/DeleteSecurityGroup/ModifyTargetGroupAttributes call
  (and ModifyTargetGroup, ModifyNetworkInterfaceAttribute, SetSecurityGroups, SetSubnets,
  Register/DeregisterTargets: tests/inventory_samples.py) into a CloudTrail record (tests/cloudtrail_samples.py shapes) and hands it to the sink:
  `LookupSink(server)`, `SqsSink(sqs, queue_url)`, `EventBridgeSink(events)`, `S3TrailSink(s3, bucket)`.
- `build_incident_world(ec2, elbv2)`: the legacy-NLB incident world (see its docstring).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import boto3
import requests

from tests import cloudtrail_samples as samples
from tests import inventory_samples

REPO = Path(__file__).resolve().parents[1]
REGION = "us-east-1"
MOTO_ACCOUNT = "123456789012"  # moto's default account for the test credentials
CLUSTER = "demo"
NODE_PORT = 31080
LBC_DESCRIPTION = "elbv2.k8s.aws/targetGroupBinding=shared"
CONTROLLER_AGENT = "elbv2.k8s.aws/v2.7.1 aws-sdk-go/1.50.0 (go1.21.6; linux; amd64)"
TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
}


# --- the server ------------------------------------------------------------------------------


class MotoServer:
    """A moto server subprocess (tests/moto_launcher.py) and its control API."""

    def __init__(self, url: str, process: subprocess.Popen[bytes] | None = None) -> None:
        self.url = url
        self.process = process

    @classmethod
    def start(cls, log_dir: Path, timeout: float = 60.0) -> MotoServer:
        port_file = log_dir / "moto.port"
        log = (log_dir / "moto.log").open("wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "tests.moto_launcher", "--port", "0"),
                *("--port-file", str(port_file), "--parent-pid", str(os.getpid())),
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not port_file.exists():
            if process.poll() is not None:
                raise RuntimeError(
                    f"moto launcher exited with {process.returncode}: see {log_dir / 'moto.log'}"
                )
            if time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"moto launcher did not start within {timeout} s")
            time.sleep(0.05)
        return cls(f"http://127.0.0.1:{int(port_file.read_text())}", process)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def _post(self, path: str, payload: Mapping[str, Any]) -> Any:
        response = requests.post(f"{self.url}/_sgchurn/{path}", json=payload, timeout=10)
        response.raise_for_status()
        return response.json()

    def add_records(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Append CloudTrail records to the LookupEvents store."""
        self._post("cloudtrail/records", {"records": list(records)})

    def throttle(self, count: int) -> None:
        """Make the next `count` LookupEvents calls fail with ThrottlingException."""
        self._post("cloudtrail/throttle", {"count": count})

    def requests(self) -> list[dict[str, Any]]:
        """Every AWS request received: time (epoch s), service, operation, region, status."""
        response = requests.get(f"{self.url}/_sgchurn/requests", timeout=10)
        response.raise_for_status()
        return list(response.json()["requests"])

    def reset(self) -> None:
        """Forget every AWS resource, stored record, pending throttle and logged request."""
        requests.post(f"{self.url}/moto-api/reset", timeout=10).raise_for_status()
        self._post("reset", {})

    def client(self, service: str, region: str = REGION, **kwargs: Any) -> Any:
        """A plain boto3 client on this server with the test credentials (for arranging worlds)."""
        return boto3.client(
            service,
            region_name=region,
            endpoint_url=self.url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            **kwargs,
        )


def operations(entries: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(service, operation) of logged requests, in order."""
    return [(str(e["service"]), str(e["operation"])) for e in entries]


# --- time and records ------------------------------------------------------------------------


class ManualClock:
    """A UTC clock that moves only when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> datetime:
        self._now += timedelta(seconds=seconds)
        return self._now


class RecordSink(Protocol):
    def emit(self, record: dict[str, Any]) -> None: ...


class LookupSink:
    """Records go to the server's LookupEvents store as they are made."""

    def __init__(self, server: MotoServer) -> None:
        self.server = server

    def emit(self, record: dict[str, Any]) -> None:
        self.server.add_records([record])


class SqsSink:
    """Records go to a queue as EventBridge envelopes, as an EventBridge rule target would put them."""

    def __init__(self, sqs: Any, queue_url: str) -> None:
        self.sqs = sqs
        self.queue_url = queue_url

    def emit(self, record: dict[str, Any]) -> None:
        self.sqs.send_message(
            QueueUrl=self.queue_url, MessageBody=json.dumps(samples.eventbridge_envelope(record))
        )


class EventBridgeSink:
    """Records go through EventBridge PutEvents (rules and targets in moto deliver them)."""

    def __init__(self, events: Any) -> None:
        self.events = events

    def emit(self, record: dict[str, Any]) -> None:
        source = "aws.elasticloadbalancing" if "elasticloadbalancing" in record["eventSource"] else "aws.ec2"
        self.events.put_events(
            Entries=[
                {"Source": source, "DetailType": "AWS API Call via CloudTrail", "Detail": json.dumps(record)}
            ]
        )


class S3TrailSink:
    """Records are kept and written by `flush()` as gzip trail files, one per account/region/day."""

    def __init__(self, s3: Any, bucket: str, *, prefix: str = "", org_id: str | None = None) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.org_id = org_id
        self.pending: list[dict[str, Any]] = []
        self.keys: list[str] = []

    def emit(self, record: dict[str, Any]) -> None:
        self.pending.append(record)

    def key_for(self, account: str, region: str, when: datetime, name: str) -> str:
        org = f"{self.org_id}/" if self.org_id else ""
        return f"{self.prefix}AWSLogs/{org}{account}/CloudTrail/{region}/{when:%Y/%m/%d}/{name}"

    def flush(self) -> list[str]:
        groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        for record in self.pending:
            day = record["eventTime"][:10]
            groups.setdefault((record["recipientAccountId"], record["awsRegion"], day), []).append(record)
        written = []
        for (account, region, day), records in sorted(groups.items()):
            when = datetime.fromisoformat(day).replace(tzinfo=UTC)
            stamp = records[-1]["eventTime"].replace("-", "").replace(":", "")[:13] + "Z"
            name = f"{account}_CloudTrail_{region}_{stamp}_{len(self.keys):04d}.json.gz"
            key = self.key_for(account, region, when, name)
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=samples.trail_file_bytes(records))
            written.append(key)
        self.keys.extend(written)
        self.pending.clear()
        return written


WATCHED_CALLS = (
    frozenset(
        {
            "AuthorizeSecurityGroupIngress",
            "RevokeSecurityGroupIngress",
            "ModifySecurityGroupRules",
            "DeleteSecurityGroup",
            "ModifyTargetGroupAttributes",
        }
    )
    | inventory_samples.RECORDED_CALLS
)


def _ct_permission(perm: Mapping[str, Any], account: str) -> dict[str, Any]:
    """An EC2 API IpPermission in CloudTrail request form ({"items": [...]}, {} when empty)."""

    def items(entries: list[dict[str, Any]]) -> Any:
        return {"items": entries} if entries else {}

    def described(entry: dict[str, Any], source: Mapping[str, Any]) -> dict[str, Any]:
        return {**entry, "description": source["Description"]} if source.get("Description") else entry

    out: dict[str, Any] = {"ipProtocol": str(perm.get("IpProtocol", "-1"))}
    if "FromPort" in perm:
        out["fromPort"] = perm["FromPort"]
    if "ToPort" in perm:
        out["toPort"] = perm["ToPort"]
    out["groups"] = items(
        [described({"userId": account, "groupId": g["GroupId"]}, g) for g in perm.get("UserIdGroupPairs", [])]
    )
    out["ipRanges"] = items([described({"cidrIp": r["CidrIp"]}, r) for r in perm.get("IpRanges", [])])
    out["ipv6Ranges"] = items([described({"cidrIpv6": r["CidrIpv6"]}, r) for r in perm.get("Ipv6Ranges", [])])
    out["prefixListIds"] = items(
        [described({"prefixListId": p["PrefixListId"]}, p) for p in perm.get("PrefixListIds", [])]
    )
    return out


def _top_level_permission(params: Mapping[str, Any]) -> dict[str, Any]:
    """The one IpPermission of a call made with top-level IpProtocol/FromPort/ToPort/CidrIp."""
    perm: dict[str, Any] = {"IpProtocol": params["IpProtocol"]}
    perm.update({key: params[key] for key in ("FromPort", "ToPort") if key in params})
    if "CidrIp" in params:
        perm["IpRanges"] = [{"CidrIp": params["CidrIp"]}]
    return perm


def _source_keys(perm: Mapping[str, Any]) -> list[tuple[str, str]]:
    keys = [("cidr4", r["CidrIp"]) for r in perm.get("IpRanges", [])]
    keys += [("cidr6", r["CidrIpv6"]) for r in perm.get("Ipv6Ranges", [])]
    keys += [("sg", g["GroupId"]) for g in perm.get("UserIdGroupPairs", [])]
    keys += [("pl", p["PrefixListId"]) for p in perm.get("PrefixListIds", [])]
    return keys


def _rule_key(rule: Mapping[str, Any]) -> tuple[str, str]:
    if rule.get("CidrIpv4"):
        return ("cidr4", rule["CidrIpv4"])
    if rule.get("CidrIpv6"):
        return ("cidr6", rule["CidrIpv6"])
    if rule.get("ReferencedGroupInfo"):
        return ("sg", rule["ReferencedGroupInfo"]["GroupId"])
    return ("pl", str(rule.get("PrefixListId")))


class CloudTrailRecorder:
    """Turns the test's own watched EC2/ELBv2 calls into CloudTrail records at `clock.now()`.

    The actor defaults to the load balancer controller's IRSA role and user agent; change it for a
    block of calls with `with recorder.acting_as(role=..., user_agent=...)`. Authorize records carry
    the response rule set only when moto returned every rule (moto returns just the last one when a
    call has several permissions).
    """

    def __init__(
        self,
        sink: RecordSink | None,
        clock: ManualClock,
        *,
        account: str = MOTO_ACCOUNT,
        role: str = f"eks-{CLUSTER}-aws-load-balancer-controller",
        user_agent: str = CONTROLLER_AGENT,
        source_ip: str = "10.0.1.17",
    ) -> None:
        self.sink = sink
        self.clock = clock
        self.account = account
        self.actor = samples.actor(role=role, user_agent=user_agent, source_ip=source_ip, account=account)
        self.records: list[dict[str, Any]] = []

    @contextlib.contextmanager
    def acting_as(
        self,
        *,
        role: str = "platform-admin",
        user_agent: str = "aws-cli/2.15.0",
        source_ip: str = "198.51.100.7",
    ) -> Iterator[None]:
        saved = self.actor
        self.actor = samples.actor(
            role=role, session="operator", user_agent=user_agent, source_ip=source_ip, account=self.account
        )
        try:
            yield
        finally:
            self.actor = saved

    def attach(self, *clients: Any) -> None:
        for client in clients:
            region = client.meta.region_name

            def stash(params: Mapping[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
                if model.name in WATCHED_CALLS:
                    context["sgchurn_params"] = json.loads(json.dumps(params, default=str))

            def record(
                http_response: Any,
                parsed: Mapping[str, Any],
                model: Any,
                context: dict[str, Any],
                _region: str = region,
                **_: Any,
            ) -> None:
                if model.name in WATCHED_CALLS and "sgchurn_params" in context:
                    self._record(model.name, context["sgchurn_params"], http_response, parsed, _region)

            client.meta.events.register("before-parameter-build", stash, unique_id="sgchurn-recorder-stash")
            client.meta.events.register("after-call", record, unique_id="sgchurn-recorder-record")

    def _record(
        self, name: str, params: Mapping[str, Any], http: Any, parsed: Mapping[str, Any], region: str
    ) -> None:
        error_code = error_message = None
        if http is not None and http.status_code >= 300:
            error_code = str((parsed.get("Error") or {}).get("Code") or f"HTTP{http.status_code}")
            error_message = str((parsed.get("Error") or {}).get("Message") or "")
        common: dict[str, Any] = {
            "time": self.clock.now(),
            "actor": self.actor,
            "error_code": error_code,
            "error_message": error_message,
            "account": self.account,
            "region": region,
        }
        if name in ("AuthorizeSecurityGroupIngress", "RevokeSecurityGroupIngress"):
            perms = list(params.get("IpPermissions", []))
            top_level = "IpProtocol" in params and not perms  # the CLI's --protocol/--port/--cidr
            if top_level:
                perms = [_top_level_permission(params)]
            ct_perms = [_ct_permission(p, self.account) for p in perms]
            if name == "AuthorizeSecurityGroupIngress":
                by_key = {
                    _rule_key(r): r["SecurityGroupRuleId"] for r in parsed.get("SecurityGroupRules", [])
                }
                wanted = [k for p in perms for k in _source_keys(p)]
                rule_ids = (
                    [by_key[k] for k in wanted] if wanted and all(k in by_key for k in wanted) else None
                )
                record = samples.authorize_record(
                    group_id=params.get("GroupId"), permissions=ct_perms, rule_ids=rule_ids, **common
                )
            else:
                record = samples.revoke_record(
                    group_id=params.get("GroupId"),
                    permissions=ct_perms,
                    rule_ids_request=list(params.get("SecurityGroupRuleIds", [])),
                    **common,
                )
            if top_level:
                record = samples.cli_shape(record)
        elif name == "ModifySecurityGroupRules":
            updates = [
                {
                    "SecurityGroupRuleId": m["SecurityGroupRuleId"],
                    "SecurityGroupRule": dict(m["SecurityGroupRule"]),
                }
                for m in params.get("SecurityGroupRules", [])
            ]
            record = samples.modify_rules_record(group_id=params["GroupId"], modifications=updates, **common)
        elif name in inventory_samples.RECORDED_CALLS:
            record = inventory_samples.record_of_call(name, params, parsed, **common)
        elif name == "DeleteSecurityGroup":
            record = samples.delete_group_record(
                group_id=params.get("GroupId"), group_name=params.get("GroupName"), **common
            )
        else:
            attributes = {a["Key"]: a["Value"] for a in params.get("Attributes", [])}
            record = samples.modify_tg_attributes_record(
                target_group_arn=params["TargetGroupArn"], attributes=attributes, **common
            )
        self.records.append(record)
        if self.sink is not None:
            self.sink.emit(record)


# --- worlds ----------------------------------------------------------------------------------


@dataclass
class IncidentWorld:
    """Ids of what `build_incident_world` made."""

    vpc_id: str
    subnet_ids: list[str]
    subnet_cidrs: list[str]
    node_sg_id: str
    node_rule_id: str
    instance_ids: list[str]
    instance_enis: dict[str, str]  # instance id -> primary ENI id
    nlb_arn: str
    tg_arn: str
    alb_arn: str | None = None
    sg_nlb_arn: str | None = None
    sg_tg_arn: str | None = None
    nlb_sg_id: str | None = None
    backend_sg_id: str | None = None
    ip_tg_arn: str | None = None
    pod_eni_id: str | None = None
    pod_ip: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _tags(pairs: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in pairs.items()]


def build_incident_world(
    ec2: Any,
    elbv2: Any,
    *,
    cluster: str = CLUSTER,
    name: str = "web",
    with_alb: bool = False,
    with_sg_mode: bool = False,
    with_ip_targets: bool = False,
) -> IncidentWorld:
    """The legacy-NLB incident world.

    VPC 10.0.0.0/16, subnets 10.0.1.0/24 and 10.0.2.0/24; node SG tagged kubernetes.io/cluster/<cluster>
    with ingress tcp 31080 from 0.0.0.0/0 described elbv2.k8s.aws/targetGroupBinding=shared; two
    instances in it; an internet-facing NLB without security groups; an instance target group (TCP
    31080, health check traffic-port) with both instances, preserve_client_ip.enabled=true and LBC tags
    (stack shop/web, resource shop/web:80). Options: an ALB on the same subnets (to be ignored); an
    SG-mode NLB with frontend and backend SGs (node rule from the backend SG); an ip target group
    whose target is the primary IP of a pod ENI carrying the node SG.
    """
    vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    cidrs = ["10.0.1.0/24", "10.0.2.0/24"]
    subnet_ids = [
        ec2.create_subnet(VpcId=vpc_id, CidrBlock=cidr, AvailabilityZone=f"{ec2.meta.region_name}{zone}")[
            "Subnet"
        ]["SubnetId"]
        for cidr, zone in zip(cidrs, "ab", strict=True)
    ]
    node_sg = ec2.create_security_group(
        GroupName=f"eks-{cluster}-node",
        Description="worker nodes",
        VpcId=vpc_id,
        TagSpecifications=[
            {"ResourceType": "security-group", "Tags": _tags({f"kubernetes.io/cluster/{cluster}": "owned"})}
        ],
    )["GroupId"]
    rules = ec2.authorize_security_group_ingress(
        GroupId=node_sg,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": NODE_PORT,
                "ToPort": NODE_PORT,
                "IpRanges": [{"CidrIp": "0.0.0.0/0", "Description": LBC_DESCRIPTION}],
            }
        ],
    )["SecurityGroupRules"]
    image = "ami-0abcdef1234567890"  # moto checks AMI ids only with MOTO_ENABLE_AMI_VALIDATION
    instances = ec2.run_instances(
        ImageId=image,
        MinCount=2,
        MaxCount=2,
        SubnetId=subnet_ids[0],
        SecurityGroupIds=[node_sg],
        InstanceType="m5.large",
    )["Instances"]
    instance_ids = [i["InstanceId"] for i in instances]
    instance_enis = {
        i["InstanceId"]: next(
            ni["NetworkInterfaceId"] for ni in i["NetworkInterfaces"] if ni["Attachment"]["DeviceIndex"] == 0
        )
        for i in instances
    }
    lbc_tags = {"elbv2.k8s.aws/cluster": cluster, "service.k8s.aws/stack": f"shop/{name}"}
    nlb_arn = elbv2.create_load_balancer(
        Name=f"k8s-shop-{name}",
        Subnets=subnet_ids,
        Scheme="internet-facing",
        Type="network",
        Tags=_tags({**lbc_tags, "service.k8s.aws/resource": "LoadBalancer"}),
    )["LoadBalancers"][0]["LoadBalancerArn"]
    tg_arn = elbv2.create_target_group(
        Name=f"k8s-shop-{name}-tg",
        Protocol="TCP",
        Port=NODE_PORT,
        VpcId=vpc_id,
        TargetType="instance",
        HealthCheckProtocol="TCP",
        HealthCheckPort="traffic-port",
        Tags=_tags({**lbc_tags, "service.k8s.aws/resource": f"shop/{name}:80"}),
    )["TargetGroups"][0]["TargetGroupArn"]
    elbv2.create_listener(
        LoadBalancerArn=nlb_arn,
        Protocol="TCP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg_arn}],
    )
    elbv2.register_targets(
        TargetGroupArn=tg_arn, Targets=[{"Id": i, "Port": NODE_PORT} for i in instance_ids]
    )
    elbv2.modify_target_group_attributes(
        TargetGroupArn=tg_arn, Attributes=[{"Key": "preserve_client_ip.enabled", "Value": "true"}]
    )
    world = IncidentWorld(
        vpc_id=vpc_id,
        subnet_ids=subnet_ids,
        subnet_cidrs=cidrs,
        node_sg_id=node_sg,
        node_rule_id=rules[0]["SecurityGroupRuleId"],
        instance_ids=instance_ids,
        instance_enis=instance_enis,
        nlb_arn=nlb_arn,
        tg_arn=tg_arn,
    )
    if with_alb:
        alb_sg = ec2.create_security_group(GroupName="alb", Description="alb", VpcId=vpc_id)["GroupId"]
        world.alb_arn = elbv2.create_load_balancer(
            Name=f"alb-{name}",
            Subnets=subnet_ids,
            SecurityGroups=[alb_sg],
            Scheme="internet-facing",
            Type="application",
        )["LoadBalancers"][0]["LoadBalancerArn"]
        alb_tg = elbv2.create_target_group(
            Name=f"alb-{name}-tg", Protocol="HTTP", Port=8080, VpcId=vpc_id, TargetType="instance"
        )["TargetGroups"][0]["TargetGroupArn"]
        elbv2.create_listener(
            LoadBalancerArn=world.alb_arn,
            Protocol="HTTP",
            Port=80,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": alb_tg}],
        )
        world.extra["alb_tg_arn"] = alb_tg
    if with_sg_mode:
        frontend = ec2.create_security_group(
            GroupName=f"k8s-shop-{name}2", Description="frontend", VpcId=vpc_id
        )["GroupId"]
        backend = ec2.create_security_group(
            GroupName=f"k8s-traffic-{cluster}-0123456789",
            Description="backend",
            VpcId=vpc_id,
            TagSpecifications=[
                {
                    "ResourceType": "security-group",
                    "Tags": _tags({"elbv2.k8s.aws/cluster": cluster, "elbv2.k8s.aws/resource": "backend-sg"}),
                }
            ],
        )["GroupId"]
        ec2.authorize_security_group_ingress(
            GroupId=node_sg,
            IpPermissions=[
                {
                    "IpProtocol": "tcp",
                    "FromPort": 32000,
                    "ToPort": 32100,
                    "UserIdGroupPairs": [{"GroupId": backend, "Description": LBC_DESCRIPTION}],
                }
            ],
        )
        world.sg_nlb_arn = elbv2.create_load_balancer(
            Name=f"k8s-shop-{name}2",
            Subnets=subnet_ids,
            SecurityGroups=[frontend, backend],
            Scheme="internet-facing",
            Type="network",
            Tags=_tags({**lbc_tags, "service.k8s.aws/resource": "LoadBalancer"}),
        )["LoadBalancers"][0]["LoadBalancerArn"]
        world.sg_tg_arn = elbv2.create_target_group(
            Name=f"k8s-shop-{name}2-tg", Protocol="TCP", Port=32000, VpcId=vpc_id, TargetType="instance"
        )["TargetGroups"][0]["TargetGroupArn"]
        elbv2.create_listener(
            LoadBalancerArn=world.sg_nlb_arn,
            Protocol="TCP",
            Port=443,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": world.sg_tg_arn}],
        )
        elbv2.register_targets(
            TargetGroupArn=world.sg_tg_arn, Targets=[{"Id": instance_ids[0], "Port": 32000}]
        )
        world.nlb_sg_id, world.backend_sg_id = frontend, backend
    if with_ip_targets:
        pod_eni = ec2.create_network_interface(
            SubnetId=subnet_ids[1], Groups=[node_sg], Description="aws-K8S-i-pod-eni"
        )["NetworkInterface"]
        world.pod_eni_id, world.pod_ip = pod_eni["NetworkInterfaceId"], pod_eni["PrivateIpAddress"]
        world.ip_tg_arn = elbv2.create_target_group(
            Name=f"k8s-shop-{name}-ip", Protocol="TCP", Port=8080, VpcId=vpc_id, TargetType="ip"
        )["TargetGroups"][0]["TargetGroupArn"]
        elbv2.create_listener(
            LoadBalancerArn=nlb_arn,
            Protocol="TCP",
            Port=8080,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": world.ip_tg_arn}],
        )
        elbv2.register_targets(TargetGroupArn=world.ip_tg_arn, Targets=[{"Id": world.pod_ip, "Port": 8080}])
    return world


def trail_object(records: Sequence[Mapping[str, Any]]) -> bytes:
    """A gzip trail file body (convenience for tests that write S3 objects directly)."""
    return gzip.compress(json.dumps({"Records": list(records)}).encode())


def moto_daemon(moto: MotoServer, state: Path, clock: ManualClock, *, cluster: str = CLUSTER) -> Any:
    """A daemon (exporter.daemon.assemble.Assembly) on the moto server, without Kubernetes, its jobs
    run by hand on the manual clock."""
    from exporter.config import load_settings
    from exporter.daemon.assemble import build_daemon

    settings = load_settings(
        None,
        environ={},
        overrides={
            "cluster_name": cluster,
            "targets": [{"region": REGION}],
            "state": {"path": str(state)},
            "kubernetes": {"enabled": "false"},
            "cloudtrail": {"settle_seconds": 120, "overlap_seconds": 600},
        },
    )
    return build_daemon(settings, endpoint_url=moto.url, clock=clock.now)
