"""`run`: the exporter daemon."""

from __future__ import annotations

import argparse
import errno
import signal
import sys
import threading
from typing import Any

import structlog

from exporter.commands.common import EXIT_USAGE
from exporter.config import ConfigError, Settings, load_settings

log = structlog.get_logger("sg-churn-exporter")

#: Of the 10 s a SIGTERM gets, how long running jobs may take to finish. The rest is for the web
#: server to stop, the state file to close and the interpreter to exit: about 3 s of it measured
#: with a job left in a throttling backoff (boto3 loaded) on a 2-core machine under load, where a
#: 7 s job budget ended the process at 9.7 to 11 s (tests/test_faults_process.py, SIGTERM test).
JOB_DRAIN_SECONDS = 5.0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser("run", help="run the exporter daemon")
    add_run_flags(parser)
    return parser


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML configuration file (see docs/configuration.md)")
    parser.add_argument("--listen-address", help="address to serve on")
    parser.add_argument("--listen-port", type=int, help="port to serve on (default 9877)")
    parser.add_argument("--state-path", help="SQLite state file")
    parser.add_argument("--shard", type=int, help="this process's shard number (0-based)")
    parser.add_argument("--total-shards", type=int, help="how many shards share the targets")
    parser.add_argument("--log-format", choices=("auto", "json", "console"))
    parser.add_argument(
        "--reset-state", action="store_true", help="move a corrupt state file aside and start fresh"
    )


def flag_overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if args.listen_address is not None:
        overrides["listen_address"] = args.listen_address
    if args.listen_port is not None:
        overrides["listen_port"] = args.listen_port
    if args.log_format is not None:
        overrides["log_format"] = args.log_format
    if args.state_path is not None:
        overrides["state"] = {"path": args.state_path}
    sharding: dict[str, Any] = {}
    if args.shard is not None:
        sharding["shard"] = args.shard
    if args.total_shards is not None:
        sharding["total_shards"] = args.total_shards
    if sharding:
        overrides["sharding"] = sharding
    return overrides


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config, overrides=flag_overrides(args))
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return serve(settings, reset_state=args.reset_state)


def serve(settings: Settings, *, reset_state: bool = False, endpoint_url: str | None = None) -> int:
    """Run until SIGTERM/SIGINT; drain and exit within 10 s."""
    from exporter.daemon.assemble import build_daemon
    from exporter.daemon.explainer import explain
    from exporter.logsetup import configure_logging
    from exporter.web import WebServer
    from exporter.web_links import PageLinks

    configure_logging(settings.log_format, settings.log_level)
    try:
        assembly = build_daemon(settings, endpoint_url=endpoint_url, reset_state=reset_state)
    except ConfigError as exc:  # what only the environment at start shows (kubernetes.enabled: true)
        print(f"config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    daemon = assembly.daemon
    web = WebServer(
        daemon.snapshot,
        settings.listen_address,
        settings.listen_port,
        tls_cert_file=settings.web.tls_cert_file,
        tls_key_file=settings.web.tls_key_file,
        basic_auth_users=settings.web.basic_auth_users or None,
        explain_provider=explain,
        links=PageLinks(settings.web.runbook_base_url, settings.web.grafana_base_url),
    )
    try:
        web.start()
    except OSError as exc:  # the address is taken or not this host's: a clear line, exit 2
        field = "listen_port" if exc.errno == errno.EADDRINUSE else "listen_address"
        where = f"{settings.listen_address}:{settings.listen_port}"
        print(f"config error: {field}: cannot listen on {where}: {exc.strerror or exc}", file=sys.stderr)
        assembly.store.close()
        return EXIT_USAGE
    daemon.on_publish.append(web.exposition.warm)  # scrapes find /metrics already rendered
    log.info(
        "serving",
        url=f"http://{settings.listen_address}:{web.port}/",
        targets=[m.key for m in daemon.monitors],
        shard=settings.sharding.shard,
        total_shards=settings.sharding.total_shards,
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("stopping", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    daemon.start()
    while not stop.wait(0.2):  # a bounded wait: the main thread wakes to run signal handlers
        pass
    daemon.stop(timeout=JOB_DRAIN_SECONDS)
    web.stop()
    assembly.store.close()
    if daemon.jobs_running():
        # A job still in a network wait or a throttling backoff runs on a daemon thread
        # (exporter/daemon/executor.py): it does not hold the exit. What it has not committed is
        # read again on the next start.
        log.warning("stopped with a job still running; leaving it")
    else:
        log.info("stopped")
    return 0
