"""A snapshot of the Kubernetes objects the exporter correlates, parsed from API JSON.

Pure data and parsing: Services and elbv2.k8s.aws/v1beta1 TargetGroupBindings, the parts
that decide which Service a target group serves and which rules the controller maintains.
Malformed objects are skipped by the parsers (they return None), never raised.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from exporter.engine.rules import Rule, Source, normalize_protocol
from exporter.engine.timeutil import parse_time

TGB_GROUP = "elbv2.k8s.aws"
#: Served and stored through LBC v3.5.0 (config/crd/bases/elbv2.k8s.aws_targetgroupbindings.yaml);
#: from v2.13.4 to v3.5.0 apis/elbv2/v1beta1/targetgroupbinding_types.go adds only
#: spec.targetGroupProtocol and status.conditions: networking (ipBlock / securityGroup peers,
#: TCP | UDP ports) reads as before.
TGB_VERSION = "v1beta1"
TGB_PLURAL = "targetgroupbindings"

TAG_CLUSTER = "elbv2.k8s.aws/cluster"
TAG_STACK = "service.k8s.aws/stack"
ANNOTATION_SOURCE_RANGES = "service.beta.kubernetes.io/load-balancer-source-ranges"


@dataclass(frozen=True)
class ServicePort:
    port: int
    protocol: str = "TCP"
    node_port: int | None = None
    target_port: int | str | None = None
    name: str | None = None


@dataclass(frozen=True)
class FieldChange:
    """One metadata.managedFields entry: which field manager last wrote the object, and when.

    The API server keeps one entry per manager and operation with the time of its last write
    (second resolution), so this is the newest write, not a history."""

    manager: str
    operation: str
    time: datetime


def last_field_change(metadata: Mapping[str, Any]) -> FieldChange | None:
    """The newest managedFields entry of the object's spec/metadata (status writes are skipped:
    they are the controllers reporting, not someone changing what is wanted)."""
    newest: FieldChange | None = None
    for entry in _list(metadata.get("managedFields")):
        if not isinstance(entry, dict) or entry.get("subresource") == "status":
            continue
        manager, raw_time = entry.get("manager"), entry.get("time")
        if not isinstance(manager, str) or not manager or not isinstance(raw_time, str):
            continue
        try:
            moment = parse_time(raw_time)
        except ValueError:
            continue
        if newest is None or moment > newest.time:
            newest = FieldChange(manager, str(entry.get("operation") or ""), moment)
    return newest


@dataclass(frozen=True)
class KubeService:
    """A Service; namespace is None when the API did not say (see read_cluster)."""

    namespace: str | None
    name: str
    type: str = "ClusterIP"
    annotations: Mapping[str, str] = field(default_factory=dict)
    load_balancer_source_ranges: tuple[str, ...] = ()
    ports: tuple[ServicePort, ...] = ()
    last_change: FieldChange | None = None  # the newest managedFields entry (not status)

    @property
    def source_ranges(self) -> tuple[str, ...]:
        """spec.loadBalancerSourceRanges, else the source-ranges annotation, else ()."""
        if self.load_balancer_source_ranges:
            return self.load_balancer_source_ranges
        return _split_ranges(self.annotations.get(ANNOTATION_SOURCE_RANGES, ""))


@dataclass(frozen=True)
class IngressPeer:
    """One `from` entry: an ipBlock CIDR or a security group id."""

    cidr: str | None = None
    security_group_id: str | None = None


@dataclass(frozen=True)
class IngressPort:
    """One `ports` entry; port None means all ports, a string is a named (pod) port."""

    protocol: str = "TCP"
    port: int | str | None = None


@dataclass(frozen=True)
class IngressRule:
    peers: tuple[IngressPeer, ...] = ()
    ports: tuple[IngressPort, ...] = ()  # empty: all TCP ports (the CRD's default)


@dataclass(frozen=True)
class TargetGroupBinding:
    namespace: str | None
    name: str
    target_group_arn: str
    service_name: str
    service_port: int | str | None = None
    target_type: str | None = None
    ingress: tuple[IngressRule, ...] = ()
    last_change: FieldChange | None = None  # the newest managedFields entry (not status)

    def rules(self, namespace: str) -> tuple[Rule, ...]:
        """networking.ingress as engine Rules, one per peer x port (named ports are skipped)."""
        description = f"targetgroupbinding:{namespace}/{self.name}"
        found: dict[Rule, None] = {}
        for ingress in self.ingress:
            ports = ingress.ports or (IngressPort(),)
            for peer in ingress.peers:
                source = _peer_source(peer)
                if source is None:
                    continue
                for port in ports:
                    span = _port_span(port.port)
                    if span is None:
                        continue
                    protocol = normalize_protocol(port.protocol)
                    found[Rule(protocol, span[0], span[1], source, description=description)] = None
        return tuple(found)


@dataclass(frozen=True)
class ClusterView:
    """What one read of the cluster returned."""

    services: tuple[KubeService, ...] = ()
    bindings: tuple[TargetGroupBinding, ...] = ()
    bindings_available: bool = True  # False when the TargetGroupBinding CRD is not installed
    skipped: int = 0  # malformed objects left out

    def binding_for(self, target_group_arn: str) -> TargetGroupBinding | None:
        """The binding naming this target group (the first by namespace/name if several)."""
        matches = [b for b in self.bindings if b.target_group_arn == target_group_arn]
        return min(matches, key=lambda b: (b.namespace or "", b.name)) if matches else None

    def service(self, namespace: str | None, name: str) -> KubeService | None:
        """The Service namespace/name; a Service of unknown namespace matches when unique."""
        for svc in self.services:
            if svc.name == name and svc.namespace == namespace and namespace is not None:
                return svc
        unknown = [s for s in self.services if s.name == name and s.namespace is None]
        return unknown[0] if len(unknown) == 1 else None

    def guess_namespace(self, service_name: str, stack: tuple[str, str] | None) -> str | None:
        """A binding's namespace when the API left it out: the stack tag, else a unique Service."""
        if stack is not None and stack[1] == service_name:
            return stack[0]
        known = {s.namespace for s in self.services if s.name == service_name and s.namespace}
        return known.pop() if len(known) == 1 else None


def parse_stack_tag(value: str | None) -> tuple[str, str] | None:
    """service.k8s.aws/stack "<namespace>/<service>" as a pair; None when absent or malformed."""
    if not value or value.count("/") != 1:
        return None
    namespace, name = (part.strip() for part in value.split("/"))
    return (namespace, name) if namespace and name else None


def service_from_dict(obj: Any, namespace: str | None = None) -> KubeService | None:
    """A Service from API JSON; `namespace` (the one listed) wins over metadata.namespace."""
    metadata, spec = _dict(_get(obj, "metadata")), _dict(_get(obj, "spec"))
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        return None
    ports = []
    for raw in _list(spec.get("ports")):
        port = _int(_get(raw, "port"))
        if port is None:
            continue
        ports.append(
            ServicePort(
                port=port,
                protocol=str(_get(raw, "protocol") or "TCP"),
                node_port=_int(_get(raw, "nodePort")),
                target_port=_int_or_str(_get(raw, "targetPort")),
                name=_get(raw, "name") if isinstance(_get(raw, "name"), str) else None,
            )
        )
    annotations = {str(k): str(v) for k, v in _dict(metadata.get("annotations")).items()}
    ranges = tuple(
        r.strip() for r in _list(spec.get("loadBalancerSourceRanges")) if isinstance(r, str) and r.strip()
    )
    return KubeService(
        namespace=namespace or _str_or_none(metadata.get("namespace")),
        name=name,
        type=str(spec.get("type") or "ClusterIP"),
        annotations=annotations,
        load_balancer_source_ranges=ranges,
        ports=tuple(ports),
        last_change=last_field_change(metadata),
    )


def binding_from_dict(obj: Any, namespace: str | None = None) -> TargetGroupBinding | None:
    """A TargetGroupBinding from API JSON; None without a name, ARN or serviceRef.name."""
    metadata, spec = _dict(_get(obj, "metadata")), _dict(_get(obj, "spec"))
    name, arn = metadata.get("name"), spec.get("targetGroupARN")
    service_ref = _dict(spec.get("serviceRef"))
    service_name = service_ref.get("name")
    if not all(isinstance(v, str) and v for v in (name, arn, service_name)):
        return None
    rules = []
    for raw in _list(_get(_get(spec, "networking"), "ingress")):
        peers = tuple(
            IngressPeer(
                cidr=_str_or_none(_get(_get(peer, "ipBlock"), "cidr")),
                security_group_id=_str_or_none(_get(_get(peer, "securityGroup"), "groupID")),
            )
            for peer in _list(_get(raw, "from"))
        )
        ports = tuple(
            IngressPort(protocol=str(_get(p, "protocol") or "TCP"), port=_int_or_str(_get(p, "port")))
            for p in _list(_get(raw, "ports"))
            if isinstance(p, dict)
        )
        rules.append(IngressRule(peers=peers, ports=ports))
    return TargetGroupBinding(
        namespace=namespace or _str_or_none(metadata.get("namespace")),
        name=str(name),
        target_group_arn=str(arn),
        service_name=str(service_name),
        service_port=_int_or_str(service_ref.get("port")),
        target_type=_str_or_none(spec.get("targetType")),
        ingress=tuple(rules),
        last_change=last_field_change(metadata),
    )


def _peer_source(peer: IngressPeer) -> Source | None:
    if peer.cidr:
        try:
            return Source.cidr(peer.cidr)
        except ValueError:
            return None
    if peer.security_group_id:
        return Source.group(peer.security_group_id)
    return None


def _port_span(port: int | str | None) -> tuple[int, int] | None:
    """(from, to) for a TGB port: None -> all ports; a named port cannot be resolved here."""
    if port is None:
        return (0, 65535)
    if isinstance(port, int):
        return (port, port)
    return None


def _split_ranges(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


#: Digits of the longest number read from an object (a port: 5; a 32-bit count: 10).
_MAX_DIGITS = 10


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = value.strip() if isinstance(value, str) else ""
    # ASCII digits only: str.isdigit() is also true for "²" or "٣", which int() refuses; and no
    # more of them than any port or count has (int() refuses over 4300 digits)
    if text.isascii() and text.isdigit() and len(text) <= _MAX_DIGITS:
        return int(text)
    return None


def _int_or_str(value: Any) -> int | str | None:
    """An IntOrString: numeric strings become ints, names stay strings."""
    number = _int(value)
    if number is not None:
        return number
    return value if isinstance(value, str) and value else None
