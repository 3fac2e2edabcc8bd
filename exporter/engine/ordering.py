"""The order of changes that share a second: what the actor is known to do, never file order.

CloudTrail's eventTime has one-second resolution and its files promise no order. A revoke and
an authorize on one group in the same second are ordered by what their caller is known to do:

- The AWS Load Balancer Controller (user agent ``elbv2.k8s.aws/<version>``) before v2.12.0
  revokes the rules it no longer wants and then authorizes the new ones. From v2.12.0 on it
  authorizes first: kubernetes-sigs/aws-load-balancer-controller PR #3952, commit 31ffe10 "bug
  fix: try SG permission add prior to revoke" (first tag v2.12.0), in
  pkg/networking/security_group_reconciler.go (reconcileIngressWithSGInfo, revokeFirst=false;
  the file is unchanged from v2.13.4 to v3.5.0, and v3 keeps the user agent elbv2.k8s.aws/<version>,
  pkg/aws/aws_config.go, so a v3 release orders as v2.12.0+ does).
- Even then, when the authorize fails with RulesPerSecurityGroupLimitExceeded the controller
  reloads the group and retries revoke-first (shouldRemoveSGRulesFirst, same file and tag): such
  a failed authorize on the group shortly before the pair means break-before-make.
- Anyone else (the CLI, the console, scripts): the order is ``unknown``, reported as such.

Within a second, changes without a known order are applied together, in an order that depends
only on their content (so the result never depends on how a file listed them).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Literal, get_args

from exporter.engine.changes import AttributeChange, Change, GroupDeletion, RuleChange, RuleModification
from exporter.engine.timeline import ordered_changes

Order = Literal["make_before_break", "break_before_make", "unknown"]
ORDERS: tuple[Order, ...] = get_args(Order)

#: The first controller release that authorizes before it revokes (PR #3952, commit 31ffe10).
MAKE_BEFORE_BREAK_SINCE = (2, 12, 0)
#: Versions below this are not controller releases (v2.0.0 was the first under this user agent):
#: a development build's v0.0.0 says nothing about the order.
FIRST_RELEASE = (2, 0, 0)
#: The error of an authorize refused at the group's rule quota, which makes the controller retry
#: revoke-first (CloudTrail may prefix EC2 error codes with "Client.").
QUOTA_ERROR = "RulesPerSecurityGroupLimitExceeded"
#: How long before a same-second pair a quota-refused authorize still explains its order.
QUOTA_RETRY_WINDOW = timedelta(seconds=60)

_RELEASE = re.compile(r"elbv2\.k8s\.aws/v?(\d+)\.(\d+)\.(\d+)")


def controller_release(user_agent: str | None) -> tuple[int, int, int] | None:
    """(2, 7, 1) for a controller user agent carrying elbv2.k8s.aws/v2.7.1; None otherwise."""
    match = _RELEASE.search(user_agent or "")
    if match is None:
        return None
    release = (int(match.group(1)), int(match.group(2)), int(match.group(3)))
    return release if release >= FIRST_RELEASE else None


class QuotaRefusals:
    """When the controller's authorizes were refused at the rule quota, by group."""

    def __init__(self, changes: Iterable[Change]) -> None:
        self._times: dict[str, list[datetime]] = {}
        for change in changes:
            if (
                isinstance(change, RuleChange)
                and change.action == "authorize"
                and change.meta.actor.is_controller
                and (change.meta.error_code or "").endswith(QUOTA_ERROR)
            ):
                self._times.setdefault(change.group_id, []).append(change.meta.event_time)

    def before(self, group_id: str, moment: datetime) -> bool:
        """True when an authorize on the group was refused at the quota within the window up to `moment`."""
        return any(moment - QUOTA_RETRY_WINDOW <= t <= moment for t in self._times.get(group_id, ()))


def same_second_order(revoke: RuleChange, authorize: RuleChange, quota: QuotaRefusals) -> Order:
    """The order of a revoke and an authorize on one group that CloudTrail dates to one second."""
    release = controller_release(revoke.meta.actor.user_agent)
    if release is None or release != controller_release(authorize.meta.actor.user_agent):
        return "unknown"
    if release < MAKE_BEFORE_BREAK_SINCE or quota.before(revoke.group_id, revoke.meta.event_time):
        return "break_before_make"
    return "make_before_break"


def _is_pair_member(change: Change) -> bool:
    return isinstance(change, RuleChange) and not change.meta.failed and bool(change.rules or change.rule_ids)


_RANK: dict[type, int] = {AttributeChange: 0, GroupDeletion: 1, RuleModification: 2}


def _content_key(change: Change) -> tuple[int, str, str]:
    """Within one second: attribute changes, deletions, modifications, revokes, authorizes, then
    the inventory changes (targets, ENI groups, health checks...) by kind."""
    if isinstance(change, RuleChange):
        return (3 if change.action == "revoke" else 4, "", change.meta.event_id)
    return (_RANK.get(type(change), 5), type(change).__name__, change.meta.event_id)


def in_time_order(changes: Iterable[Change]) -> list[Change]:
    """Each eventID once, by eventTime; within a second by content, never by position."""
    ordered = ordered_changes(changes)
    ordered.sort(key=lambda c: (c.meta.event_time, *_content_key(c)))
    return ordered


def batch_steps(batch: Sequence[Change], quota: QuotaRefusals) -> list[list[Change]]:
    """A same-second batch as the steps in which it happened, as far as that is known.

    On a group where a revoke and an authorize share the second and the order is known, the
    later kind is held back to a second step; everything else (unknown orders included) is
    applied together in the first step.
    """
    by_group: dict[str, tuple[list[RuleChange], list[RuleChange]]] = {}
    for change in batch:
        if isinstance(change, RuleChange) and _is_pair_member(change):
            revokes, authorizes = by_group.setdefault(change.group_id, ([], []))
            (revokes if change.action == "revoke" else authorizes).append(change)
    later: set[str] = set()
    for revokes, authorizes in by_group.values():
        if not revokes or not authorizes:
            continue
        order = same_second_order(revokes[0], authorizes[0], quota)
        if order == "break_before_make":
            later.update(c.meta.event_id for c in authorizes)
        elif order == "make_before_break":
            later.update(c.meta.event_id for c in revokes)
    if not later:
        return [list(batch)]
    return [
        [c for c in batch if c.meta.event_id not in later],
        [c for c in batch if c.meta.event_id in later],
    ]
