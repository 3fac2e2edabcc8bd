"""moto (5.2.5), patched for what the exporter reads but moto lacks, and an in-process server.

Patches (`install_patches`, idempotent, process-wide):

- CloudTrail LookupEvents, which moto does not implement, is served from `TRAIL`, an in-memory
  record store: one lookup attribute (EventName, EventId, EventSource, Username, ReadOnly,
  ResourceName: a security group id or target group ARN of the request, as `as_lookup_event` lists),
  StartTime/EndTime, MaxResults <= 50, NextToken; newest first, like CloudTrail.
- NLBs look real: `loadbalancer/net/` ARNs (moto says `app/`) and one ENI per subnet described
  `ELB net/<name>/<id>`, which moto does not create.
- ENIs as EC2 has them: the filter addresses.private-ip-address matches secondary addresses too
  and ipv6-addresses.ipv6-address matches IPv6 ones (moto matches only the primary IPv4);
  CreateNetworkInterface keeps Ipv4Prefixes/Ipv6Prefixes (delegated prefixes) and describes them.
- A subnet's Ipv6CidrBlockAssociationSet says `"State": "associated"` (moto nests the state twice).
- RegisterTargets keeps a target's AvailabilityZone ("all" for an IP outside the VPC) and
  DescribeTargetHealth returns it, as ELBv2 does.

`EmbeddedMoto` runs moto's WSGI app on a loopback port in a background thread.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

#: Lookup attributes the store can filter on, and the record field each one reads.
LOOKUP_FIELDS = {
    "EventName": "eventName",
    "EventId": "eventID",
    "EventSource": "eventSource",
    "Username": "_username",
    "ReadOnly": "_readonly",
    "ResourceName": "_resources",
}


class TrailStore:
    """CloudTrail records LookupEvents serves, plus a count of calls to fail with throttling."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.records: list[dict[str, Any]] = []
        self.throttle = 0

    def add(self, records: Iterable[dict[str, Any]]) -> int:
        """Append records; returns how many the store holds."""
        with self.lock:
            self.records.extend(records)
            return len(self.records)

    def snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.records)

    def reset(self) -> None:
        with self.lock:
            self.records.clear()
            self.throttle = 0


#: The store the patched LookupEvents reads (one per process, like moto's own backends).
TRAIL = TrailStore()


def event_time(record: dict[str, Any]) -> float:
    """A record's eventTime as epoch seconds."""
    text = str(record.get("eventTime", "1970-01-01T00:00:00Z")).replace("Z", "+00:00")
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def username(record: dict[str, Any]) -> str:
    """What LookupEvents shows as Username: the role (session issuer) or user name."""
    identity = record.get("userIdentity") or {}
    issuer = (identity.get("sessionContext") or {}).get("sessionIssuer") or {}
    return str(issuer.get("userName") or identity.get("userName") or identity.get("principalId") or "")


def _matches(record: dict[str, Any], name: str, value: str) -> bool:
    if name == "_resources":
        return any(r["ResourceName"] == value for r in _resources(record))
    return _field(record, name) == value


def _field(record: dict[str, Any], name: str) -> str:
    if name == "_username":
        return username(record)
    if name == "_readonly":
        return str(record.get("readOnly", False)).lower()
    return str(record.get(name, ""))


def _resources(record: dict[str, Any]) -> list[dict[str, str]]:
    """The resources LookupEvents lists for a record: its security group and target group."""
    resources: list[dict[str, str]] = []
    params = record.get("requestParameters") or {}
    if isinstance(params, dict):
        modify = params.get("ModifySecurityGroupRulesRequest")
        group_id = params.get("groupId") or (modify.get("GroupId") if isinstance(modify, dict) else None)
        if group_id:
            resources.append({"ResourceType": "AWS::EC2::SecurityGroup", "ResourceName": str(group_id)})
        if params.get("targetGroupArn"):
            resources.append(
                {
                    "ResourceType": "AWS::ElasticLoadBalancingV2::TargetGroup",
                    "ResourceName": params["targetGroupArn"],
                }
            )
    return resources


def as_lookup_event(record: dict[str, Any]) -> dict[str, Any]:
    """One LookupEvents result: the summary fields plus the record as a JSON string."""
    return {
        "EventId": record.get("eventID", ""),
        "EventName": record.get("eventName", ""),
        "ReadOnly": str(record.get("readOnly", False)).lower(),
        "AccessKeyId": (record.get("userIdentity") or {}).get("accessKeyId", ""),
        "EventTime": event_time(record),
        "EventSource": record.get("eventSource", ""),
        "Username": username(record),
        "Resources": _resources(record),
        "CloudTrailEvent": json.dumps(record),
    }


def _encode_token(boundary: tuple[float, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(boundary)).encode()).decode()


def _decode_token(token: str) -> tuple[float, str]:
    time_value, event_id = json.loads(base64.urlsafe_b64decode(token.encode()))
    return float(time_value), str(event_id)


def lookup_events(self: Any) -> str:
    """Replacement for moto's CloudTrailResponse.lookup_events, reading `TRAIL`."""
    from moto.core.exceptions import JsonRESTError

    with TRAIL.lock:
        if TRAIL.throttle > 0:
            TRAIL.throttle -= 1
            raise JsonRESTError("ThrottlingException", "Rate exceeded")
        records = list(TRAIL.records)
    attributes = self._get_param("LookupAttributes") or []
    if len(attributes) > 1:
        raise JsonRESTError(
            "InvalidLookupAttributesException", "You cannot specify more than one lookup attribute."
        )
    max_results = int(self._get_param("MaxResults") or 50)
    if not 1 <= max_results <= 50:
        raise JsonRESTError("InvalidMaxResultsException", "MaxResults must be between 1 and 50.")
    start = self._get_param("StartTime")
    end = self._get_param("EndTime")
    token = self._get_param("NextToken")
    matched = []
    for record in records:
        if record.get("awsRegion") not in (None, self.region):
            continue
        when = event_time(record)
        if start is not None and when < float(start):
            continue
        if end is not None and when > float(end):
            continue
        if attributes:
            key = attributes[0].get("AttributeKey")
            field_name = LOOKUP_FIELDS.get(key)
            if field_name is None:
                raise JsonRESTError(
                    "InvalidLookupAttributesException", f"Unsupported lookup attribute {key}."
                )
            if not _matches(record, field_name, str(attributes[0].get("AttributeValue"))):
                continue
        matched.append((when, str(record.get("eventID", "")), record))
    matched.sort(key=lambda item: (item[0], item[1]), reverse=True)
    if token:
        try:
            boundary = _decode_token(token)
        except (ValueError, TypeError) as exc:
            raise JsonRESTError("InvalidNextTokenException", "Invalid NextToken.") from exc
        matched = [item for item in matched if (item[0], item[1]) < boundary]
    page = matched[:max_results]
    body: dict[str, Any] = {"Events": [as_lookup_event(item[2]) for item in page]}
    if len(matched) > max_results:
        body["NextToken"] = _encode_token((page[-1][0], page[-1][1]))
    return json.dumps(body)


def wrap_create_load_balancer(original: Callable[..., Any]) -> Callable[..., Any]:
    """ELBv2Backend.create_load_balancer that makes NLBs look real (net/ ARN, one ENI per subnet)."""

    def create_load_balancer(self: Any, *args: Any, **kwargs: Any) -> Any:
        lb = original(self, *args, **kwargs)
        if lb.type != "network":
            return lb
        old_arn = lb.arn
        new_arn = old_arn.replace(":loadbalancer/app/", ":loadbalancer/net/")
        lb.arn = new_arn
        self.load_balancers.pop(old_arn, None)
        self.load_balancers[new_arn] = lb
        self.tagging_service.copy_tags(old_arn, new_arn)
        self.tagging_service.delete_all_tags_for_resource(old_arn)
        lb_id = new_arn.rsplit("/", 1)[-1]
        for subnet in lb.subnets:
            self.ec2_backend.create_network_interface(
                subnet,
                None,
                group_ids=list(lb.security_groups or []),
                description=f"ELB net/{lb.name}/{lb_id}",
            )
        return lb

    return create_load_balancer


def wrap_eni_filter(original: Callable[..., Any]) -> Callable[..., Any]:
    """NetworkInterface.get_filter_value matching every private IPv4 and IPv6 address, as EC2 does."""

    def get_filter_value(self: Any, filter_name: str, method_name: str | None = None) -> Any:
        if filter_name in ("addresses.private-ip-address", "private-ip-address"):
            addresses = [a.get("PrivateIpAddress") for a in self.private_ip_addresses]
            return [a for a in [self.private_ip_address, *addresses] if a]
        if filter_name == "ipv6-addresses.ipv6-address":
            return list(self.ipv6_addresses)
        return original(self, filter_name, method_name)

    return get_filter_value


def wrap_create_network_interface(original: Callable[..., Any]) -> Callable[..., Any]:
    """ElasticNetworkInterfaces.create_network_interface keeping Ipv4Prefixes / Ipv6Prefixes."""

    def create_network_interface(self: Any) -> Any:
        result = original(self)
        eni = result.result["NetworkInterface"]
        eni.ipv4_prefixes = [
            {"Ipv4Prefix": p["Ipv4Prefix"]}
            for p in self._get_param("Ipv4Prefixes", [])
            if p.get("Ipv4Prefix")
        ]
        eni.ipv6_prefixes = [
            {"Ipv6Prefix": p["Ipv6Prefix"]}
            for p in self._get_param("Ipv6Prefixes", [])
            if p.get("Ipv6Prefix")
        ]
        return result

    return create_network_interface


def wrap_register(original: Callable[..., Any]) -> Callable[..., Any]:
    """FakeTargetGroup.register keeping each target's AvailabilityZone."""

    def register(self: Any, targets: list[dict[str, Any]]) -> None:
        original(self, targets)
        for target in targets:
            if target.get("AvailabilityZone") and target["Id"] in self.targets:
                self.targets[target["Id"]]["AvailabilityZone"] = target["AvailabilityZone"]

    return register


def wrap_health_for(original: Callable[..., Any]) -> Callable[..., Any]:
    """FakeTargetGroup.health_for whose Target carries the registered AvailabilityZone."""

    def health_for(self: Any, target: dict[str, Any], ec2_backend: Any) -> Any:
        status = original(self, target, ec2_backend)
        zone = (self.targets.get(target["Id"]) or {}).get("AvailabilityZone")
        if zone:
            status.sgchurn_zone = zone
        return status

    return health_for


def _health_target(self: Any) -> dict[str, str]:
    found = {"Id": self.instance_id, "Port": self.port}
    zone = getattr(self, "sgchurn_zone", None)
    if zone:
        found["AvailabilityZone"] = zone
    return found


def _subnet_ipv6_associations(self: Any) -> list[dict[str, Any]]:
    return [
        {
            "ipv6CidrBlock": association["ipv6CidrBlock"],
            "associationId": association["associationId"],
            "ipv6CidrBlockState": dict(association["ipv6CidrBlockState"]),
        }
        for association in self.ipv6_cidr_block_associations.values()
        if association["ipv6CidrBlockState"]["State"] == "associated"
    ]


def _patch(owner: Any, name: str, wrapper: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    original = getattr(owner, name)
    if getattr(original, "_sgchurn", False):
        return
    wrapped = wrapper(original)
    setattr(wrapped, "_sgchurn", True)  # noqa: B010
    setattr(owner, name, wrapped)


def install_patches() -> None:
    """Patch moto in this process: LookupEvents from `TRAIL`, real-looking NLBs, ENIs and targets."""
    from moto.cloudtrail.responses import CloudTrailResponse
    from moto.ec2.models.elastic_network_interfaces import NetworkInterface
    from moto.ec2.models.subnets import Subnet
    from moto.ec2.responses.elastic_network_interfaces import ElasticNetworkInterfaces
    from moto.elbv2.models import ELBv2Backend, FakeHealthStatus, FakeTargetGroup

    setattr(CloudTrailResponse, "lookup_events", lookup_events)  # noqa: B010 - moto has no such method
    _patch(ELBv2Backend, "create_load_balancer", wrap_create_load_balancer)
    _patch(NetworkInterface, "get_filter_value", wrap_eni_filter)
    _patch(ElasticNetworkInterfaces, "create_network_interface", wrap_create_network_interface)
    _patch(FakeTargetGroup, "register", wrap_register)
    _patch(FakeTargetGroup, "health_for", wrap_health_for)
    setattr(FakeHealthStatus, "target", property(_health_target))  # noqa: B010
    setattr(Subnet, "ipv6_cidr_block_association_set", property(_subnet_ipv6_associations))  # noqa: B010


class EmbeddedMoto:
    """moto's server app on `host:port` (0 picks a free port) in a daemon thread, patched first."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.requested_port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the server is not started")
        return int(self._server.server_port)

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> EmbeddedMoto:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        install_patches()
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        app = DomainDispatcherApplication(create_backend_app)
        self._server = make_server(
            self.host, self.requested_port, app, threaded=True, request_handler=MotoRequestHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto-server", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 3.0) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
