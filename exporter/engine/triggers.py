"""What triggered a gap: the target-group attribute change that preceded it.

The gap's actor is whoever revoked the rule, usually the AWS Load Balancer Controller. The
trigger is the change that made the controller do it: a ModifyTargetGroupAttributes on the same
target group a moment before (the controller applies the attribute when it deploys the model,
pkg/deploy/elbv2/target_group_attributes_reconciler.go, and reconciles the node security groups
later in the TargetGroupBinding reconciler, ReconcileForNodePortEndpoints /
ReconcileForPodEndpoints in pkg/targetgroupbinding/resource_manager.go, both at v2.13.0 and
v3.5.0), with
who made it (role and the session that assumed it) and when.

When the attribute came from the Service's annotation, the ModifyTargetGroupAttributes is the
controller's own call: the person or pipeline behind it is the field manager that last wrote
the Service or its TargetGroupBinding (metadata.managedFields, read by the Kubernetes source).
Such a write before the gap (and before the controller's call) is the trigger, with the
CloudTrail event kept beside it; with no CloudTrail record at all it is the trigger alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from exporter.engine.changes import AttributeChange, Change
from exporter.engine.gaps import REPLACEMENT_WINDOW, Gap
from exporter.engine.inventory import ServiceBinding

#: How long before a gap an attribute change on its target group still counts as its trigger:
#: the controller reconciles within seconds; the replacement window bounds a slow reconcile.
TRIGGER_WINDOW: timedelta = REPLACEMENT_WINDOW


@dataclass(frozen=True)
class Trigger:
    """The change that preceded a gap on the same target group, and who made it."""

    event_name: str
    event_id: str
    time: datetime
    actor: str  # role (or principal) name, "unknown" when CloudTrail did not say
    who: str  # role/session for an assumed role, else `actor`
    actor_arn: str
    user_agent: str
    attributes: tuple[tuple[str, str], ...] = ()
    source: str = "cloudtrail"  # "cloudtrail" | "kubernetes" (a field manager's write)
    field_manager: str = ""


def trigger_of(change: AttributeChange) -> Trigger:
    actor = change.meta.actor
    return Trigger(
        event_name=change.meta.event_name,
        event_id=change.meta.event_id,
        time=change.meta.event_time,
        actor=actor.label,
        who=actor.who,
        actor_arn=actor.principal_arn or "",
        user_agent=actor.user_agent or "",
        attributes=change.attributes,
    )


def attribute_changes_by_target_group(changes: Iterable[Change]) -> dict[str, list[AttributeChange]]:
    """Successful attribute changes per target group ARN, oldest first."""
    found: dict[str, list[AttributeChange]] = {}
    for change in changes:
        if isinstance(change, AttributeChange) and not change.meta.failed and change.attributes:
            found.setdefault(change.target_group_arn, []).append(change)
    for items in found.values():
        items.sort(key=lambda c: (c.meta.event_time, c.meta.event_id))
    return found


def find_trigger(
    target_group_arn: str,
    start: datetime,
    by_target_group: Mapping[str, list[AttributeChange]],
    window: timedelta = TRIGGER_WINDOW,
) -> Trigger | None:
    """The last attribute change on the target group at or before `start`, within `window`."""
    best: AttributeChange | None = None
    for change in by_target_group.get(target_group_arn, ()):
        moment = change.meta.event_time
        if moment > start:
            break
        if start - moment <= window:
            best = change
    return None if best is None else trigger_of(best)


def triggers_for(
    gaps: Iterable[Gap],
    changes: Iterable[Change],
    services: Mapping[str, ServiceBinding] | None = None,
) -> dict[tuple[str, str, str], Trigger]:
    """Each gap's trigger, by gap key (gaps without one are left out). `services`: the
    inventory's Service bindings, whose `last_change` is the newest Kubernetes write."""
    by_tg = attribute_changes_by_target_group(changes)
    found: dict[tuple[str, str, str], Trigger] = {}
    for gap in gaps:
        trigger = find_trigger(gap.target_group_arn, gap.start, by_tg)
        binding = (services or {}).get(gap.target_group_arn)
        written = binding.last_change if binding is not None else None
        if written is not None:
            trigger = _with_kubernetes(trigger, written, gap.start, by_tg.get(gap.target_group_arn, []))
        if trigger is not None:
            found[gap.key] = trigger
    return found


def _with_kubernetes(
    trigger: Trigger | None,
    written: tuple[str, str, datetime],
    start: datetime,
    attribute_changes: list[AttributeChange],
    window: timedelta = TRIGGER_WINDOW,
) -> Trigger | None:
    """The Kubernetes write as the trigger when it came first: before the gap (within the window)
    and, if there is a CloudTrail trigger, before it and that one is the controller's own call."""
    kind, manager, moment = written
    if moment > start or start - moment > window:
        return trigger
    if trigger is not None:
        by_controller = any(
            c.meta.event_id == trigger.event_id and c.meta.actor.is_controller for c in attribute_changes
        )
        if not by_controller or moment > trigger.time:
            return trigger
    return Trigger(
        event_name=f"{kind} write",
        event_id=trigger.event_id if trigger else "",
        time=moment,
        actor=manager,
        who=manager,
        actor_arn="",
        user_agent="",
        attributes=trigger.attributes if trigger else (),
        source="kubernetes",
        field_manager=manager,
    )
