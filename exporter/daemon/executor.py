"""The scheduler's executor: each job run in its own daemon thread, which it can tell is still running.

apscheduler's thread pool runs jobs on non-daemon threads that the interpreter joins at exit: a job
still in a network wait or a throttling backoff would hold a stopping process for as long as it
lasts. This executor is apscheduler's documented extension point (a `BaseExecutor` subclass: docs/
extending.rst, "Custom executors", APScheduler 3.x): it keeps the per-job instance count the base
class enforces, reports each run's events to the scheduler, and says which runs have not finished,
so `Daemon.stop` waits for them (bounded) and then leaves them; what they have not committed is
read again on the next start.
"""

from __future__ import annotations

import sys
import threading
import time
from datetime import datetime
from typing import Any

from apscheduler.executors.base import BaseExecutor, run_job

#: The job store the daemon adds its jobs to (apscheduler's default one).
JOBSTORE = "default"


class DaemonThreadExecutor(BaseExecutor):
    """Runs each job in a new daemon thread named `job-<id>`."""

    def __init__(self) -> None:
        super().__init__()
        self._threads: set[threading.Thread] = set()
        self._threads_lock = threading.Lock()

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        thread = threading.Thread(target=self._run, args=(job, run_times), name=f"job-{job.id}", daemon=True)
        with self._threads_lock:
            self._threads.add(thread)
        thread.start()

    def _run(self, job: Any, run_times: list[datetime]) -> None:
        try:
            events = run_job(job, JOBSTORE, run_times, self._logger.name)
        except BaseException:
            _, exc, tb = sys.exc_info()
            self._run_job_error(job.id, exc, tb)
        else:
            self._run_job_success(job.id, events)
        finally:
            with self._threads_lock:
                self._threads.discard(threading.current_thread())

    def running(self) -> int:
        """How many job runs have not finished."""
        with self._threads_lock:
            return sum(1 for t in self._threads if t.is_alive())

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the runs in progress; True when none is left."""
        deadline = time.monotonic() + timeout
        while self.running():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(0.05, left))
        return True

    def shutdown(self, wait: bool = True) -> None:
        """New runs are the scheduler's to stop; with `wait`, join the runs in progress."""
        if wait:
            self.wait(float("inf"))
