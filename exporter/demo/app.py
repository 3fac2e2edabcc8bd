"""The demo's wiring: embedded moto, the seeded cluster, the scripted controller, the real daemon."""

from __future__ import annotations

import os
import random
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporter.config import Settings, load_settings
from exporter.demo.timing import CLOUDTRAIL_INTERVAL, INVENTORY_INTERVAL

DEFAULT_PORT = 9877


@dataclass(frozen=True)
class DemoOptions:
    speed: float = 1.0
    port: int = DEFAULT_PORT
    state_dir: str | None = None  # None: a temporary folder, removed at exit
    seed: int | None = None
    log_level: str = "info"


def demo_settings(options: DemoOptions, state_path: str, region: str) -> Settings:
    """The daemon's settings for the demo: short intervals, no Kubernetes, loopback only.

    SGCHURN_* environment variables are ignored: the demo always runs the same way.
    """
    return load_settings(
        None,
        environ={},
        overrides={
            "listen_address": "127.0.0.1",
            "listen_port": options.port,
            "cluster_name": "demo",
            "log_format": "console",
            "log_level": options.log_level,
            "targets": [{"region": region}],
            # rules: the targeted poll; a gap shows once two polls saw it, well within the
            # banner's "one inventory poll" (exporter/demo/timing.py)
            "intervals": {
                "inventory": INVENTORY_INTERVAL,
                "rules": 2,
                "cloudtrail": CLOUDTRAIL_INTERVAL,
                "evaluate": 2,
                "kubernetes": 60,
            },
            "cloudtrail": {"overlap_seconds": 300, "settle_seconds": 30, "start_lookback_seconds": 600},
            "state": {"path": state_path},
            "kubernetes": {"enabled": "false"},
        },
    )


def use_demo_credentials(environ: dict[str, str] | Any, endpoint_url: str, region: str) -> None:
    """Point every boto3 client of this process at the embedded moto with dummy credentials."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ROLE_ARN"):
        environ.pop(name, None)
    environ["AWS_ACCESS_KEY_ID"] = "demo"
    environ["AWS_SECRET_ACCESS_KEY"] = "demo"
    environ["AWS_DEFAULT_REGION"] = region
    environ["AWS_REGION"] = region
    environ["AWS_ENDPOINT_URL"] = endpoint_url
    environ["AWS_CONFIG_FILE"] = os.devnull
    environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull


class StopRequest:
    """Set by SIGINT/SIGTERM. A plain flag, polled: the handler takes no lock.

    Waiting on a threading.Event instead can hang: a signal the kernel delivers to another thread
    does not wake the main thread's untimed wait, and Event.set() inside a handler can deadlock
    on the Event's own lock when the signal lands while the main thread holds it.
    """

    def __init__(self) -> None:
        self.signal: str | None = None

    @property
    def requested(self) -> bool:
        return self.signal is not None

    def wait(self, poll: float = 0.2) -> None:
        while self.signal is None:
            time.sleep(poll)


@contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """SIGINT and SIGTERM set the yielded request (instead of raising); the old handlers come back."""
    request = StopRequest()

    def on_signal(signum: int, _frame: Any) -> None:
        request.signal = signal.Signals(signum).name

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield request
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_demo(options: DemoOptions, say: Callable[[str], None]) -> int:
    """Run until SIGINT/SIGTERM; returns the exit code (0 after a clean stop)."""
    import boto3

    from exporter.daemon.assemble import build_daemon
    from exporter.daemon.explainer import explain
    from exporter.demo.controller import ScriptedController
    from exporter.demo.motoworld import TRAIL, EmbeddedMoto
    from exporter.demo.timing import first_gap_text
    from exporter.demo.world import REGION, seed
    from exporter.logsetup import configure_logging
    from exporter.web import WebServer

    cleanup: list[Callable[[], None]] = []
    state_dir = options.state_dir
    if state_dir is None:
        state_dir = tempfile.mkdtemp(prefix="sgchurn-demo-")
        cleanup.append(lambda: shutil.rmtree(state_dir, ignore_errors=True))
    else:
        Path(state_dir).mkdir(parents=True, exist_ok=True)
    state_path = str(Path(state_dir) / "state.sqlite3")

    with stop_on_signals() as stop:
        try:
            settings = demo_settings(options, state_path, REGION)
            configure_logging(settings.log_format, settings.log_level)
            TRAIL.reset()
            moto = EmbeddedMoto().start()
            cleanup.append(moto.stop)
            use_demo_credentials(os.environ, moto.endpoint_url, REGION)

            where: dict[str, Any] = {"endpoint_url": moto.endpoint_url, "region_name": REGION}
            ec2, elbv2 = boto3.client("ec2", **where), boto3.client("elbv2", **where)
            account = str(boto3.client("sts", **where).get_caller_identity()["Account"])
            world = seed(ec2, elbv2, account)
            if stop.requested:
                say("stopped before the exporter started")
                return 0

            assembly = build_daemon(settings, endpoint_url=moto.endpoint_url)
            daemon = assembly.daemon
            cleanup.append(assembly.store.close)
            web = WebServer(
                daemon.snapshot,
                settings.listen_address,
                settings.listen_port,
                explain_provider=explain,
            )
            try:
                web.start()
            except OSError as exc:
                say(f"cannot listen on {settings.listen_address}:{settings.listen_port}: {exc}")
                say("choose another port with --port (0 picks a free one)")
                return 1
            daemon.on_publish.append(web.exposition.warm)
            cleanup.append(web.stop)

            say(f"sg-churn-exporter demo (speed {options.speed:g}x)")
            say(
                f"  embedded AWS (moto): {moto.endpoint_url}  account {account}, {world.region}, "
                f'EKS cluster "demo", node security group {world.node_group}'
            )
            for svc in world.services:
                kind = "legacy (no NLB security groups)" if svc.mode == "legacy" else "SG mode"
                targets = "ip targets" if svc.key == world.ledger.key else "instance targets"
                say(
                    f"  {svc.key:<16} {svc.scheme} NLB, {kind}, {targets} on port {svc.port}: "
                    f"target group {svc.target_group}"
                )
            say(f"  landing page: {web.url}/")
            say(f"  metrics:      {web.url}/metrics")
            keep = "removed at exit" if options.state_dir is None else "kept"
            say(f"  state:        {state_path} ({keep})")
            say(f"  {first_gap_text(options.speed)}; stop with Ctrl-C")

            controller = ScriptedController(
                ec2,
                elbv2,
                world,
                TRAIL,
                speed=options.speed,
                say=say,
                rng=random.Random(options.seed),
            )
            daemon.start()
            cleanup.append(lambda: daemon.stop(timeout=5.0))
            controller.start()

            def stop_controller() -> None:
                controller.stop()
                controller.join(timeout=3.0)

            cleanup.append(stop_controller)
            stop.wait()
            say(f"stopping ({stop.signal})")
            return 0
        finally:
            for step in reversed(cleanup):
                try:
                    step()
                except Exception as exc:  # keep stopping the rest
                    say(f"while stopping: {type(exc).__name__}: {exc}")
