"""The daemon: jobs on a scheduler, each building new state, then a snapshot swapped in whole.

Jobs: `inventory` (describe AWS per target), `rules` (the targeted poll: re-read only the rules
of the node groups behind target groups, every few seconds), `cloudtrail` (every event source),
`kubernetes` (Services and TargetGroupBindings), `evaluate` (timeline, gaps, commits). apscheduler
runs each with max_instances=1; a run that would overlap is skipped and counted. A poll that sees
a flow's status change evaluates at once, so the change is on /metrics without waiting for the
evaluate job.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.schedulers.background import BackgroundScheduler

from exporter import __version__
from exporter.daemon.executor import JOBSTORE, DaemonThreadExecutor
from exporter.daemon.impacts import ImpactChecker
from exporter.daemon.monitor import Monitor, ServiceBinder, StateUnavailable
from exporter.daemon.snapshot import (
    JOB_DURATION_BUCKETS,
    GapView,
    HistogramState,
    JobStats,
    Labels,
    Snapshot,
    SourceHealth,
    labels_of,
    merge_histograms,
)
from exporter.daemon.state import StateStore, StoredGap
from exporter.daemon.tracker import GAP_DURATION_FAMILY, view_from_stored
from exporter.engine.flows import FlowKind
from exporter.engine.impact import ImpactResult
from exporter.engine.timeutil import format_optional_time, format_time
from exporter.reports.impact import read_impact
from exporter.sources.feed import EventFeed

log = structlog.get_logger("sg-churn-exporter")

JOBS = ("inventory", "rules", "cloudtrail", "kubernetes", "evaluate", "impact")
RECENT_GAPS_WINDOW = timedelta(hours=24)
PENDING_CLOSE_LOG = timedelta(hours=1)
STATE_KEY = ("state", "", "")
#: Snapshot.counters key of the state rows that could not be read (StateStore.rejected_rows).
STATE_ROWS_REJECTED = "state_rows_rejected"
PRUNE_EVERY = timedelta(hours=1)
#: A source's call may take its job's interval, and never less than this: a LookupEvents poll of
#: every watched event name at 2 requests/s takes several seconds by design (production
#: intervals are 30 s and more, so there the deadline is one interval).
MIN_JOB_DEADLINE_SECONDS = 15.0


def utcnow() -> datetime:
    return datetime.now(tz=UTC)


@dataclass(frozen=True)
class _Stored:
    """What a snapshot shows from the state store."""

    recent_gaps: tuple[GapView, ...]
    last_gaps: tuple[GapView, ...]
    counters: Mapping[str, Mapping[Labels, float]]
    gap_durations: Mapping[Labels, HistogramState]


@dataclass
class JobRecord:
    runs: int = 0
    skipped: int = 0
    last_duration: float | None = None
    last_success: datetime | None = None
    last_error: str | None = None
    buckets: list[int] = field(default_factory=lambda: [0] * (len(JOB_DURATION_BUCKETS) + 1))
    duration_sum: float = 0.0

    def observe(self, seconds: float) -> None:
        self.runs += 1
        self.last_duration = seconds
        self.duration_sum += seconds
        for i, bound in enumerate((*JOB_DURATION_BUCKETS, float("inf"))):
            if seconds <= bound:
                self.buckets[i] += 1


@dataclass
class Health:
    up: bool = False
    last_success: datetime | None = None
    last_error: str | None = None
    checks: int = 0  # outcomes so far: a call's deadline sees whether it has returned


@dataclass
class Feed:
    """A CloudTrail event feed bound to the monitor whose records it carries."""

    monitor: Monitor
    poller: EventFeed
    cursor_key: str | None = None
    save_cursor: Callable[[], str] | None = None


class Daemon:
    """Owns the monitors, the jobs and the current snapshot."""

    def __init__(
        self,
        monitors: Sequence[Monitor],
        feeds: Sequence[Feed],
        store: StateStore,
        *,
        intervals: dict[str, float],
        kube_sync: Callable[[], ServiceBinder] | None = None,
        api_counters: Sequence[Any] = (),
        shard: int = 0,
        total_shards: int = 1,
        clock: Callable[[], datetime] = utcnow,
        record_ttl: timedelta | None = None,
        impact_checkers: Sequence[ImpactChecker] = (),
    ) -> None:
        self.monitors = list(monitors)
        self.feeds = list(feeds)
        self.store = store
        self.intervals = intervals
        self.kube_sync = kube_sync
        self.binder: ServiceBinder | None = None
        self.api_counters = list(api_counters)
        self.shard = shard
        self.total_shards = total_shards
        self.clock = clock
        self.record_ttl = record_ttl  # stored CloudTrail records older than this are deleted
        self.impact_checkers = list(impact_checkers)  # empty: impact checks are off
        self._last_prune: datetime | None = None
        # only the jobs that run: a disabled one exports nothing (no "never succeeded" alert)
        self.jobs = {name: JobRecord() for name in JOBS if self._enabled(name)}
        self.health: dict[tuple[str, str, str], Health] = {}
        self.started_at = clock()
        self._snapshot = Snapshot(
            generated_at=self.started_at,
            version=__version__,
            shard=shard,
            total_shards=total_shards,
            watched_since=self.started_at,
        )
        self._publish_lock = threading.Lock()
        self._open_keys: dict[tuple[str, FlowKind], GapView] = {}
        self._closing: dict[tuple[str, FlowKind], tuple[GapView, datetime]] = {}
        self._scheduler: BackgroundScheduler | None = None
        self._executor = DaemonThreadExecutor()
        self.on_publish: list[Callable[[], None]] = []  # run after each swap, e.g. pre-render /metrics
        self._deadlines: set[threading.Timer] = set()  # the deadlines of the calls in progress
        self._stopping = False
        for monitor in self.monitors:
            self.health[("inventory", monitor.account_id, monitor.region)] = Health()
        for feed in self.feeds:
            self.health[(feed.poller.name, feed.monitor.account_id, feed.monitor.region)] = Health()
        if kube_sync is not None:
            self.health[("kubernetes", "", "")] = Health()
        self.health[STATE_KEY] = Health(up=True, last_success=clock())

    def _enabled(self, name: str) -> bool:
        if name == "kubernetes":
            return self.kube_sync is not None
        if name == "rules":
            return self.intervals.get("rules", 0) > 0
        if name == "impact":
            return bool(self.impact_checkers)
        return True

    # --- the snapshot ---------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def _health(self, source: str, monitor: Monitor | None) -> Health:
        key = (source, monitor.account_id if monitor else "", monitor.region if monitor else "")
        if key not in self.health:
            # the account id is learned on the first poll: move the entry under it
            stale = (source, "", monitor.region if monitor else "")
            self.health[key] = self.health.pop(stale, Health())
        return self.health[key]

    # --- jobs -----------------------------------------------------------------------------------
    def run_inventory(self) -> None:
        now = self.clock()
        for monitor in self.monitors:
            health = self._health("inventory", monitor)
            try:
                with self._deadline("inventory", health, "inventory", monitor):
                    changed = monitor.poll_inventory(now, self.binder)
            except StateUnavailable as exc:  # AWS answered; only the store failed
                self._succeeded(self._health("inventory", monitor), now, "inventory", monitor)
                self._state_failed(exc)
            except Exception as exc:  # an unreachable or failing API must not stop the daemon
                self._failed(health, "inventory", monitor, exc)
            else:
                self._succeeded(self._health("inventory", monitor), now, "inventory", monitor)
                if changed:
                    self._evaluate_one(monitor, now)

    def run_rules(self) -> None:
        """The targeted poll of every monitor; a failure is the job's (sgchurn_job_*), and the
        inventory job's next full poll still covers the groups."""
        now = self.clock()
        errors: list[str] = []
        for monitor in self.monitors:
            try:
                changed = monitor.poll_rules(now)
            except StateUnavailable as exc:
                self._state_failed(exc)
                continue
            except Exception as exc:
                errors.append(f"{monitor.key}: {_one_line(exc)}")
                continue
            if changed:
                self._evaluate_one(monitor, now)
        if errors:
            raise RuntimeError("; ".join(errors)[:300])

    def _evaluate_one(self, monitor: Monitor, now: datetime) -> None:
        try:
            monitor.evaluate(now)
        except StateUnavailable as exc:
            self._state_failed(exc)

    def run_cloudtrail(self) -> None:
        for feed in self.feeds:
            now = self.clock()
            health = self._health(feed.poller.name, feed.monitor)
            try:
                with self._deadline("cloudtrail", health, feed.poller.name, feed.monitor):
                    batch = feed.poller.poll(now)
                try:
                    feed.monitor.ingest(now, batch.records, batch.rejections)
                except sqlite3.Error as exc:  # not committed: the source delivers it again next poll
                    self._state_failed(exc)
                    self._succeeded(health, now, feed.poller.name, feed.monitor)  # the source answered
                    continue
                batch.commit()
                if feed.cursor_key and feed.save_cursor:
                    try:
                        self.store.set_meta(feed.cursor_key, feed.save_cursor())
                    except sqlite3.Error as exc:  # the records are stored; a restart re-reads the overlap
                        self._state_failed(exc)
                if batch.errors and not batch.records:
                    raise RuntimeError("; ".join(batch.errors)[:300])
            except Exception as exc:
                self._failed(health, feed.poller.name, feed.monitor, exc)
            else:
                self._succeeded(health, now, feed.poller.name, feed.monitor)

    def run_kubernetes(self) -> None:
        if self.kube_sync is None:
            return
        health = self._health("kubernetes", None)
        try:
            with self._deadline("kubernetes", health, "kubernetes", None):
                binder = self.kube_sync()
        except Exception as exc:
            self._failed(health, "kubernetes", None, exc)
            return
        self.binder = binder
        for monitor in self.monitors:
            monitor.rebind(binder)
        self._succeeded(health, self.clock(), "kubernetes", None)

    def run_evaluate(self) -> None:
        now = self.clock()
        state_ok = True
        for monitor in self.monitors:
            try:
                monitor.evaluate(now)
            except StateUnavailable as exc:
                state_ok = False
                self._state_failed(exc)
            except Exception as exc:
                log.error("evaluation failed", target=monitor.key, error=_one_line(exc))
                raise
        if self.store.path != ":memory:":
            try:  # a write each round: a store that stopped taking writes shows even when nothing changed
                self.store.heartbeat(now.isoformat())
            except sqlite3.Error as exc:
                state_ok = False
                self._state_failed(exc)
        if state_ok:
            self._prune(now)

    def run_impact(self) -> None:
        """Each monitor's closed gaps due an impact check (daemon/impacts.py); one log line per
        gap whose impact is counted. AWS errors leave a source not read (the gap says so); a store
        failure is the state's."""
        now = self.clock()
        for checker in self.impact_checkers:
            try:
                counted = checker.run(now)
            except sqlite3.Error as exc:
                self._state_failed(exc)
                continue
            for gap in counted:
                log.warning("rule gap impact", **gap_facts(gap))

    def _prune(self, now: datetime) -> None:
        """Delete stored records past their TTL, at most once per PRUNE_EVERY (the file stays bounded)."""
        if self.record_ttl is None or (self._last_prune is not None and now - self._last_prune < PRUNE_EVERY):
            return
        self._last_prune = now
        try:
            removed = self.store.prune_records((now - self.record_ttl).timestamp())
        except sqlite3.Error as exc:
            self._state_failed(exc)
            return
        if removed:
            log.info("pruned stored CloudTrail records", removed=removed)

    def _state_failed(self, exc: BaseException) -> None:
        if self.store.error is None:
            self.store.note_failure(exc)
        self._failed(self.health[STATE_KEY], "state", None, _StoreError(self.store.error or _one_line(exc)))

    def _sync_state_health(self) -> None:
        """sgchurn_up{source="state"} from the store: down from a failed read or write until a
        write commits again (a store opened in memory after a start-up error stays as assembled)."""
        if self.store.path == ":memory:":
            return
        health = self.health[STATE_KEY]
        if self.store.error is None:
            if not health.up:
                self._succeeded(health, self.clock(), "state", None)
            else:
                health.last_success = self.clock()
        elif health.up or health.last_error != self.store.error:
            self._failed(health, "state", None, _StoreError(self.store.error))

    def _succeeded(self, health: Health, now: datetime, source: str, monitor: Monitor | None) -> None:
        if not health.up and health.last_error is not None:
            log.info("source recovered", source=source, target=monitor.key if monitor else None)
        health.up, health.last_success, health.last_error = True, now, None
        health.checks += 1

    def _failed(self, health: Health, source: str, monitor: Monitor | None, exc: BaseException) -> None:
        message = _one_line(exc)
        if health.up or health.last_error != message:
            log.warning(
                "source failed", source=source, target=monitor.key if monitor else None, error=message
            )
        health.up, health.last_error = False, message
        health.checks += 1

    # --- the deadline of each source's call ---------------------------------------------------------
    @contextmanager
    def _deadline(self, job: str, health: Health, source: str, monitor: Monitor | None) -> Iterator[None]:
        """A source's call that has not returned after the job's interval (MIN_JOB_DEADLINE_SECONDS
        at least: an endpoint that accepts and never answers, a retry loop) shows the source down
        then, instead of after the read timeouts and retries; the call's own outcome follows."""
        interval = self.intervals.get(job)
        if not interval:
            yield
            return
        limit = max(float(interval), MIN_JOB_DEADLINE_SECONDS)
        timer = threading.Timer(
            limit, self._overdue, args=(job, limit, health, health.checks, source, monitor)
        )
        timer.daemon = True
        timer.name = f"deadline-{job}"
        self._deadlines.add(timer)
        timer.start()
        try:
            yield
        finally:
            timer.cancel()
            self._deadlines.discard(timer)

    def _overdue(
        self, job: str, limit: float, health: Health, checks: int, source: str, monitor: Monitor | None
    ) -> None:
        if self._stopping or health.checks != checks:
            return  # stopping, or the call returned meanwhile: its own outcome stands
        if not health.up and health.last_error is not None:
            return  # down already: its error stands
        message = f"DeadlineExceeded: no answer after {limit:g} s (the {job} job's deadline)"
        log.warning("source overdue", source=source, target=monitor.key if monitor else None, error=message)
        health.up, health.last_error = False, message
        self.publish()

    def run_job(self, name: str) -> None:
        """Run one job by name, timing it, then publish a fresh snapshot."""
        record = self.jobs[name]
        started = time.monotonic()
        try:
            getattr(self, f"run_{name}")()
        except Exception as exc:
            record.last_error = _one_line(exc)
        else:
            record.last_success = self.clock()
            record.last_error = None
        finally:
            record.observe(time.monotonic() - started)
        self._sync_state_health()
        self.publish()

    def run_all_once(self) -> None:
        """Every job once, in dependency order (start-up and tests)."""
        for name in ("kubernetes", "inventory", "cloudtrail", "evaluate", "impact"):
            if name in self.jobs:
                self.run_job(name)

    # --- publishing ----------------------------------------------------------------------------------
    def ready(self) -> bool:
        # The state store is not a source: a broken one is reported (sgchurn_up{source="state"} 0)
        # but must not make the pod unready, or nothing would scrape that report.
        sources = [h for key, h in self.health.items() if key != STATE_KEY]
        return all(h.last_success is not None for h in sources) and all(
            m.inventory is not None for m in self.monitors
        )

    def publish(self) -> Snapshot:
        """Build a new snapshot from the monitors and the store, and swap it in."""
        with self._publish_lock:
            now = self.clock()
            target_groups = tuple(tg for m in self.monitors for tg in m.view.target_groups)
            open_gaps = tuple(g for m in self.monitors for g in m.view.open_gaps)
            stored = self._stored_parts(now)
            recent = stored.recent_gaps
            self._log_transitions(open_gaps, recent)
            api_requests: dict[tuple[str, str], int] = {}
            api_errors: dict[tuple[str, str, str], int] = {}
            for counter in self.api_counters:
                counts = counter.snapshot()
                for key, value in counts.calls.items():
                    api_requests[key] = api_requests.get(key, 0) + value
                for ekey, value in counts.errors.items():
                    api_errors[ekey] = api_errors.get(ekey, 0) + value
            lag: dict[tuple[str, str], float] = {}
            for feed in self.feeds:
                lag_of = getattr(feed.poller, "lag_seconds", None)
                value = lag_of(now) if callable(lag_of) else None
                if value is not None:
                    lag[(feed.monitor.account_id, feed.monitor.region)] = float(value)
            snapshot = Snapshot(
                generated_at=now,
                watched_since=self.started_at,
                version=__version__,
                shard=self.shard,
                total_shards=self.total_shards,
                ready=self.ready(),
                target_groups=target_groups,
                open_gaps=open_gaps,
                recent_gaps=recent,
                counters=stored.counters,  # no zero series: docs/metrics.md#changelog
                gap_durations=stored.gap_durations,
                last_gaps=stored.last_gaps,
                sources=tuple(
                    SourceHealth(source, account, region, h.up, h.last_success, h.last_error)
                    for (source, account, region), h in sorted(self.health.items())
                ),
                jobs=tuple(
                    JobStats(
                        job=name,
                        runs=r.runs,
                        skipped=r.skipped,
                        last_duration_seconds=r.last_duration,
                        last_success=r.last_success,
                        last_error=r.last_error,
                        duration_buckets=tuple(r.buckets),
                        duration_sum=r.duration_sum,
                    )
                    for name, r in self.jobs.items()
                ),
                api_requests=api_requests,
                api_errors=api_errors,
                cloudtrail_lag_seconds=lag,
                owned_targets=tuple(sorted({(m.account_id or "default", m.region) for m in self.monitors})),
                attribute_changes=tuple(c for m in self.monitors for c in m.view.attribute_changes),
                explain_bases=tuple(m.view.basis for m in self.monitors if m.view.basis is not None),
            )
            self._snapshot = snapshot
        for callback in self.on_publish:
            try:
                callback()
            except Exception as exc:  # a sink's trouble must not stop the jobs
                log.warning("publish callback failed", error=_one_line(exc))
        return snapshot

    def _stored_parts(self, now: datetime) -> _Stored:
        """What the snapshot shows from the state store; when the store cannot be read (its
        pages corrupt, an I/O error), the state source is down and the last parts read stand,
        so the snapshot is still published (sources, jobs, open gaps)."""
        try:
            recent_stored = self.store.recent_gaps((now - RECENT_GAPS_WINDOW).timestamp())
            last_stored = self.store.last_gaps()
            impacts = self._impacts([*recent_stored, *last_stored])
            counters = dict(self.store.counters())
            gap_durations = merge_histograms(self.store.histograms(GAP_DURATION_FAMILY))
        except sqlite3.Error as exc:
            self._state_failed(exc)
            last = self._snapshot
            return _Stored(last.recent_gaps, last.last_gaps, last.counters, last.gap_durations)
        rejected = self.store.rejected_rows  # replaced, never changed in place, by the readers
        if rejected:
            counters[STATE_ROWS_REJECTED] = {
                labels_of(table=table): float(count) for table, count in rejected.items()
            }
        return _Stored(
            tuple(_with_impact(view_from_stored(g), impacts) for g in recent_stored),
            tuple(_with_impact(view_from_stored(g), impacts) for g in last_stored),
            counters,
            gap_durations,
        )

    def _impacts(self, gaps: Sequence[StoredGap]) -> dict[str, ImpactResult]:
        if not self.impact_checkers:
            return {}
        stored = self.store.gap_impacts(g.key for g in gaps)
        return {key: read_impact(found.data) for key, found in stored.items()}

    def _log_transitions(self, open_gaps: tuple[GapView, ...], recent: tuple[GapView, ...]) -> None:
        """One log line when a gap opens, and one when it is closed with its final facts.

        A gap the poll sees closing is logged once CloudTrail has explained its end (it then
        appears among the committed gaps), or after PENDING_CLOSE_LOG without explanation.
        """
        now = self.clock()
        now_open = {(g.target_group_arn, g.flow): g for g in open_gaps}
        for key, gap in now_open.items():
            if key not in self._open_keys:
                self._closing.pop(key, None)
                log.warning("rule gap opened", **gap_facts(gap))
        for key, gap in self._open_keys.items():
            if key not in now_open:
                self._closing[key] = (gap, now)
        for key, (gap, since) in list(self._closing.items()):
            closed = next(
                (
                    g
                    for g in recent
                    if (g.target_group_arn, g.flow) == key and g.end is not None and g.end >= gap.start
                ),
                None,
            )
            if closed is not None or now - since > PENDING_CLOSE_LOG:
                facts = gap_facts(closed or gap)
                if self.impact_checkers and "impact" not in facts:  # known after the settle time
                    facts["impact"] = "pending"
                log.warning("rule gap closed", **facts)
                del self._closing[key]
        self._open_keys = now_open

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the scheduler; every job runs at once, then on its interval."""
        self._executor = DaemonThreadExecutor()
        scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": self._executor},
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": 5},
        )
        now = datetime.now(tz=UTC)
        order = {
            "kubernetes": 0,
            "inventory": 0.2,
            "cloudtrail": 0.4,
            "evaluate": 1.0,
            "rules": 1.5,
            "impact": 2.0,
        }
        for name in self.jobs:
            scheduler.add_job(
                self.run_job,
                "interval",
                args=(name,),
                id=name,
                jobstore=JOBSTORE,
                seconds=self.intervals[name],
                next_run_time=now + timedelta(seconds=order[name]),
            )
        scheduler.add_listener(self._on_skipped, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)
        scheduler.start()
        self._scheduler = scheduler

    def _on_skipped(self, event: JobEvent) -> None:
        record = self.jobs.get(str(event.job_id))
        if record is not None:
            record.skipped += 1

    def stop(self, timeout: float = 8.0) -> None:
        """Stop scheduling and wait (bounded) for running jobs to finish; `jobs_running` then says
        whether one is left (its daemon thread does not hold the process's exit)."""
        self._stopping = True  # a job past its deadline now is one being left behind, not a source down
        for timer in list(self._deadlines):
            timer.cancel()
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is None:
            return
        scheduler.shutdown(wait=False)
        self._executor.wait(timeout)

    def jobs_running(self) -> int:
        """How many scheduled job runs have not finished (0 before `start`)."""
        return self._executor.running()


def _with_impact(gap: GapView, impacts: Mapping[str, ImpactResult]) -> GapView:
    found = impacts.get(gap.key)
    return gap if found is None else replace(gap, impact=found)


def gap_facts(gap: GapView) -> dict[str, object]:
    return {
        "target_group": gap.target_group,
        "namespace": gap.namespace,
        "service": gap.service,
        "aws_account_id": gap.aws_account_id,
        "aws_region": gap.aws_region,
        "flow": gap.flow,
        "start": format_time(gap.start),
        "end": format_optional_time(gap.end),
        "duration_seconds": gap.duration_seconds,
        "cause": gap.cause,
        "actor": gap.actor or None,
        "actor_session": gap.actor_session or None,
        "explained": gap.explained,
        "trigger_actor": gap.trigger_who or None,
        "trigger_time": format_optional_time(gap.trigger_time),
        "trigger": gap.trigger_detail or None,
        "trigger_event_id": gap.trigger_event_id or None,
        **({} if gap.impact is None else impact_facts(gap.impact)),
    }


def impact_facts(result: ImpactResult) -> dict[str, object]:
    """A checked gap's impact and evidence, as log fields."""
    return {
        "impact": result.impact,
        "impact_reasons": list(result.reasons) or None,
        "impact_missing": list(result.missing) or None,
        "peak_unhealthy_hosts": result.peak_unhealthy_hosts,
        "rejected_flows": result.rejected_flows,
        "new_flows_during": result.new_flows_during,
        "new_flows_before": result.new_flows_before,
    }


class _StoreError(Exception):
    """A failure the state store already described ("Type: message")."""


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, _StoreError):
        return str(exc)[:300]
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return text[:300]
