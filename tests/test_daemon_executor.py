"""exporter/daemon/executor.py on a real apscheduler BackgroundScheduler: runs, overlap refusal,
events to listeners, and a stop that leaves a hung job behind without waiting for it."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MAX_INSTANCES, JobEvent
from apscheduler.schedulers.background import BackgroundScheduler

from exporter.daemon.executor import JOBSTORE, DaemonThreadExecutor
from tests.support import wait_for


def _scheduler(executor: DaemonThreadExecutor) -> BackgroundScheduler:
    return BackgroundScheduler(
        timezone=UTC,
        executors={"default": executor},
        job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": 5},
    )


def test_jobs_run_on_daemon_threads_and_report_their_outcome() -> None:
    executor = DaemonThreadExecutor()
    scheduler = _scheduler(executor)
    seen: list[tuple[str, int]] = []
    threads: list[threading.Thread] = []

    def ok() -> None:
        threads.append(threading.current_thread())

    def broken() -> None:
        raise RuntimeError("boom")

    scheduler.add_listener(lambda e: seen.append((e.job_id, e.code)), EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    scheduler.start()
    try:
        now = datetime.now(UTC)
        scheduler.add_job(ok, "date", run_date=now, id="ok", jobstore=JOBSTORE)
        scheduler.add_job(broken, "date", run_date=now, id="broken", jobstore=JOBSTORE)
        wait_for(lambda: len(seen) == 2, timeout=10, what="both jobs to report")
    finally:
        scheduler.shutdown(wait=True)
    assert sorted(seen) == [("broken", EVENT_JOB_ERROR), ("ok", EVENT_JOB_EXECUTED)]
    assert threads[0].daemon and threads[0].name == "job-ok"
    assert executor.running() == 0


def test_an_overlapping_run_is_refused_and_stop_leaves_a_hung_job_behind() -> None:
    executor = DaemonThreadExecutor()
    scheduler = _scheduler(executor)
    release = threading.Event()
    skipped: list[JobEvent] = []
    scheduler.add_listener(skipped.append, EVENT_JOB_MAX_INSTANCES)
    scheduler.start()
    scheduler.add_job(
        release.wait, "interval", seconds=0.2, id="hung", jobstore=JOBSTORE, next_run_time=datetime.now(UTC)
    )
    try:
        wait_for(lambda: skipped, timeout=10, what="a run refused while the first still runs")
        assert executor.running() == 1
        scheduler.shutdown(wait=False)
        started = time.monotonic()
        assert executor.wait(0.3) is False  # bounded: the hung run is still there
        assert time.monotonic() - started < 2
        assert executor.running() == 1
    finally:
        release.set()
    assert executor.wait(5) is True and executor.running() == 0


def test_a_process_with_a_hung_job_exits_at_once() -> None:
    """The interpreter does not join a job left running (apscheduler's own pool would)."""
    script = (
        "import threading, time\n"
        "from datetime import UTC, datetime\n"
        "from apscheduler.schedulers.background import BackgroundScheduler\n"
        "from exporter.daemon.executor import JOBSTORE, DaemonThreadExecutor\n"
        "executor = DaemonThreadExecutor()\n"
        "s = BackgroundScheduler(timezone=UTC, executors={'default': executor})\n"
        "s.start()\n"
        "s.add_job(threading.Event().wait, 'date', run_date=datetime.now(UTC), jobstore=JOBSTORE)\n"
        "while not executor.running():\n"
        "    time.sleep(0.01)\n"
        "s.shutdown(wait=False)\n"
        "print('left', executor.running())\n"
    )
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "left 1"
    assert time.monotonic() - started < 30  # the hung job waits forever: exiting at all shows it


def test_wait_with_nothing_running_returns_at_once() -> None:
    executor = DaemonThreadExecutor()
    started = time.monotonic()
    assert executor.wait(timedelta(seconds=5).total_seconds()) is True
    assert time.monotonic() - started < 1
