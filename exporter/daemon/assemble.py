"""Build a running daemon from settings: stores, AWS clients, monitors, feeds, Kubernetes."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import msgspec
import structlog

from exporter.config import ConfigError, Settings
from exporter.daemon.impacts import ImpactChecker
from exporter.daemon.monitor import Monitor, ServiceBinder
from exporter.daemon.service import Daemon, Feed, Health, utcnow
from exporter.daemon.state import StateError, StateStore
from exporter.engine.inventory import Inventory, ServiceBinding
from exporter.sharding import shard_of, target_key
from exporter.sources.aws import ApiCallCounter, AwsClients, AwsTarget, ReadOnlyGuard
from exporter.sources.cloudtrail import LookupCursor, LookupEventsPoller
from exporter.sources.inventory import inventory_for, rules_for
from exporter.sources.ratelimit import LOOKUP_EVENTS_RATE, TokenBucket
from exporter.sources.seen import SeenEvents

log = structlog.get_logger("sg-churn-exporter")


def open_store(path: str, *, reset: bool = False) -> tuple[StateStore, str | None]:
    """Open the state file; on a corrupt or locked one, fall back to memory and say why.

    With `reset`, a file that fails SQLite's integrity check is moved aside
    (`<file>.corrupt-<time>`) and a fresh one started. Nothing else is moved: a locked file is in
    use by another process, one this process may not write is a permission to fix, not a bad file.
    """
    try:
        return StateStore(path), None
    except StateError as exc:
        if reset and exc.kind == "corrupt" and path != ":memory:" and Path(path).exists():
            aside = f"{path}.corrupt-{int(time.time())}"
            shutil.move(path, aside)
            for suffix in ("-wal", "-shm"):
                if Path(path + suffix).exists():
                    shutil.move(path + suffix, aside + suffix)
            log.warning("state file moved aside; starting fresh", moved_to=aside)
            return StateStore(path), None
        log.error("state unusable; running with in-memory state", error=str(exc))
        return StateStore(":memory:"), str(exc)


@dataclass
class Assembly:
    daemon: Daemon
    store: StateStore
    state_error: str | None


def build_daemon(
    settings: Settings,
    *,
    endpoint_url: str | None = None,
    reset_state: bool = False,
    clock: Callable[[], datetime] = utcnow,
    describe_override: Callable[[AwsClients, datetime], Inventory] | None = None,
) -> Assembly:
    """Assemble monitors and feeds for the targets this shard owns.

    ConfigError (before anything is opened) when `kubernetes.enabled: true` finds no cluster."""
    kube_sync, binder = _kubernetes(settings)
    store, state_error = open_store(settings.state.path, reset=reset_state)
    counter = ApiCallCounter()
    queue_urls = [settings.cloudtrail.sqs_queue_url] if settings.cloudtrail.sqs_queue_url else []
    guard = ReadOnlyGuard(queue_urls)
    shard, total = settings.sharding.shard, settings.sharding.total_shards
    monitors: list[Monitor] = []
    feeds: list[Feed] = []
    checkers: list[ImpactChecker] = []
    now = clock()
    for target in settings.targets:
        key = target_key(target.role_arn or target.account_id, target.region)
        if shard_of(key, total) != shard:
            continue
        clients = AwsClients(
            AwsTarget(target.region, target.role_arn, target.external_id),
            counter=counter,
            guard=guard,
            endpoint_url=endpoint_url,
        )

        def describe_now(
            moment: datetime,
            clients: AwsClients = clients,
            describe: Callable[[AwsClients, datetime], Inventory] = describe_override or inventory_for,
        ) -> Inventory:
            return describe(clients, moment)

        monitor = Monitor(
            key,
            target.region,
            store,
            settle_seconds=settings.cloudtrail.settle_seconds,
            retention_seconds=settings.cloudtrail.retention_seconds,
            describe=describe_now,
            describe_rules=None if describe_override else partial(rules_for, clients),
            account_id=target.account_id or "",
        )
        restored = monitor.restore(now)
        if restored:
            log.info("restored CloudTrail records from state", target=key, records=restored)
        monitors.append(monitor)
        if settings.cloudtrail.lookup_events:
            feeds.append(_lookup_feed(settings, store, monitor, clients, key))
        if settings.cloudtrail.sqs_queue_url:
            feeds.append(_sqs_feed(settings, monitor, clients))
        if settings.impact.enabled:
            checkers.append(
                ImpactChecker(monitor, clients, settings.impact, warn=partial(_impact_warning, key))
            )
    daemon = Daemon(
        monitors,
        feeds,
        store,
        intervals={
            "inventory": settings.intervals.inventory,
            "rules": settings.intervals.rules,
            "cloudtrail": settings.intervals.cloudtrail,
            "kubernetes": settings.intervals.kubernetes,
            "evaluate": settings.intervals.evaluate,
            "impact": settings.impact.interval_seconds,
        },
        kube_sync=kube_sync,
        api_counters=[counter],
        impact_checkers=checkers,
        shard=shard,
        total_shards=total,
        clock=clock,
        # the timeline re-reads `retention` of records after a restart: never prune inside it
        record_ttl=timedelta(
            seconds=max(settings.state.seen_event_ttl_seconds, settings.cloudtrail.retention_seconds)
        ),
    )
    daemon.binder = binder
    if state_error:
        daemon.health[("state", "", "")] = _bad_state(state_error)
    return Assembly(daemon, store, state_error)


def _impact_warning(target: str, line: str) -> None:
    log.warning("impact evidence", target=target, detail=line)


def _bad_state(message: str) -> Health:
    return Health(up=False, last_success=None, last_error=message[:300])


def _lookup_feed(
    settings: Settings, store: StateStore, monitor: Monitor, clients: AwsClients, key: str
) -> Feed:
    cursor_key = f"cursor:lookup_events:{key}"
    saved = store.get_meta(cursor_key)
    cursor = None
    if saved:
        try:
            cursor = LookupCursor.decode(saved)
        except (msgspec.DecodeError, ValueError) as exc:  # a corrupt file: read from the lookback again
            log.warning(
                "stored CloudTrail cursor unreadable; reading from the start lookback",
                target=key,
                error=" ".join(str(exc).split())[:200],
            )
    overlap = timedelta(seconds=settings.cloudtrail.overlap_seconds)
    ttl = max(overlap * 2, timedelta(seconds=settings.state.seen_event_ttl_seconds))
    poller = LookupEventsPoller(
        clients.client("cloudtrail"),
        TokenBucket(LOOKUP_EVENTS_RATE),
        overlap=overlap,
        initial_lookback=timedelta(seconds=settings.cloudtrail.start_lookback_seconds),
        cursor=cursor,
        seen=SeenEvents(ttl=ttl),
    )
    return Feed(monitor, poller, cursor_key, poller.cursor.encode)


def _sqs_feed(settings: Settings, monitor: Monitor, clients: AwsClients) -> Feed:
    from exporter.sources.cloudtrail import SqsConsumer

    consumer = SqsConsumer(clients.client("sqs"), str(settings.cloudtrail.sqs_queue_url), wait_seconds=1)
    return Feed(monitor, consumer)


def _kubernetes(settings: Settings) -> tuple[Callable[[], ServiceBinder] | None, ServiceBinder]:
    from exporter.engine.bindings import bind_services
    from exporter.sources.kubernetes import load_kube_client, read_cluster

    cluster = settings.cluster_name

    def tags_only(inventory: Inventory) -> dict[str, ServiceBinding]:
        return bind_services(inventory.target_groups, None, cluster)

    try:
        api_client = load_kube_client(settings.kubernetes.enabled, settings.kubernetes.kubeconfig)
    except Exception as exc:
        if settings.kubernetes.enabled == "true":
            # asked for, not found: a run without correlation would show no sgchurn_up series for
            # it (no alert) and only this one line; auto is the setting that runs without it
            raise ConfigError(
                "kubernetes.enabled",
                f"is true, but {str(exc)[:300]}; set it to auto to run without Kubernetes",
            ) from None
        log.warning("kubernetes correlation off", error=str(exc)[:300])
        return None, tags_only
    if api_client is None:
        return None, tags_only

    def sync() -> ServiceBinder:
        view = read_cluster(api_client)

        def binder(inventory: Inventory) -> dict[str, ServiceBinding]:
            return bind_services(inventory.target_groups, view, cluster)

        return binder

    return sync, tags_only
