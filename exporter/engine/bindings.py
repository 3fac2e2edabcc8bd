"""Which Service sits behind each target group: a pure mapping from target groups and a
`ClusterView` (engine/cluster.py) to ServiceBindings. No I/O; sources/kubernetes.py reads the view."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from exporter.engine.cluster import (
    TAG_CLUSTER,
    TAG_STACK,
    ClusterView,
    KubeService,
    TargetGroupBinding,
    parse_stack_tag,
)
from exporter.engine.inventory import ServiceBinding, TargetGroup


def bind_services(
    inventory_target_groups: Mapping[str, TargetGroup],
    view: ClusterView | None,
    cluster_name: str,
) -> dict[str, ServiceBinding]:
    """Map target group ARNs to their Service: TargetGroupBinding first, else the stack tag.

    The binding is the better witness: for a weighted target group of another Service (LBC v3,
    buildTargetGroupTuples in pkg/service/model_build_target_group.go, v3.5.0) its serviceRef
    names that Service while the stack tag names the Service that owns the load balancer.

    A target group is ours when a binding in `view` names it or its elbv2.k8s.aws/cluster tag
    equals `cluster_name`; only ours read source ranges from the view. Others still map from
    their tags, with cluster set to their own tag value. No I/O.
    """
    result: dict[str, ServiceBinding] = {}
    ours = cluster_name or None
    for arn, target_group in inventory_target_groups.items():
        stack = parse_stack_tag(target_group.tags.get(TAG_STACK))
        binding = view.binding_for(arn) if view is not None else None
        if view is not None and binding is not None:
            namespace = binding.namespace or view.guess_namespace(binding.service_name, stack)
            service = view.service(namespace, binding.service_name)
            result[arn] = ServiceBinding(
                namespace=namespace or "",
                service=binding.service_name,
                source_ranges=service.source_ranges if service else (),
                mapped_by="targetgroupbinding",
                cluster=ours,
                ingress_rules=binding.rules(namespace or ""),
                last_change=_newest_change(service, binding),
            )
            continue
        if stack is None:
            continue
        tag_cluster = target_group.tags.get(TAG_CLUSTER) or None
        is_ours = ours is not None and tag_cluster == ours
        service = view.service(*stack) if (is_ours and view is not None) else None
        result[arn] = ServiceBinding(
            namespace=stack[0],
            service=stack[1],
            source_ranges=service.source_ranges if service else (),
            mapped_by="tags",
            cluster=ours if is_ours else tag_cluster,
            last_change=_newest_change(service, None),
        )
    return result


def _newest_change(
    service: KubeService | None, binding: TargetGroupBinding | None
) -> tuple[str, str, datetime] | None:
    """(kind, field manager, time) of the newest write to the Service or its binding."""
    found = [
        (change.time, kind, change.manager)
        for kind, change in (
            ("Service", service.last_change if service else None),
            ("TargetGroupBinding", binding.last_change if binding else None),
        )
        if change is not None
    ]
    if not found:
        return None
    moment, kind, manager = max(found)
    return kind, manager, moment
