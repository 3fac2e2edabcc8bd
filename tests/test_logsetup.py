"""exporter/logsetup.py: one format for every log line - the exporter's structlog events and the
records of standard-library loggers (web, metrics, kubernetes, libraries) alike."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog

from exporter.daemon.service import gap_facts
from exporter.logsetup import EVENT_LOGGER, QUIET_LIBRARIES, configure_logging
from tests.awsworld import MotoServer
from tests.snapshot_samples import CHECKOUT_TG, gap, sample_snapshot
from tests.support import wait_for
from tests.test_faults_support import DaemonProcess, daemon_env, write_config

_RESTORED = ("", EVENT_LOGGER, *QUIET_LIBRARIES)


Configure = Callable[[str, str], io.StringIO]


@pytest.fixture
def configure(monkeypatch: pytest.MonkeyPatch) -> Iterator[Configure]:
    """configure(format, level) -> the buffer the logs go to; structlog and stdlib logging restored after."""
    saved = structlog.get_config()
    handlers = logging.root.handlers[:]
    levels = {name: logging.getLogger(name).level for name in _RESTORED}
    stream = io.StringIO()

    def setup(log_format: str, level: str) -> io.StringIO:
        # patched in the test's own phase: pytest's capture swaps sys.stderr again between phases
        monkeypatch.setattr(sys, "stderr", stream)
        configure_logging(log_format, level)
        return stream

    try:
        yield setup
    finally:
        structlog.configure(**saved)
        logging.root.handlers[:] = handlers
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _json_lines(text: str) -> list[dict[str, Any]]:
    lines = text.splitlines()
    assert lines, "nothing was logged"
    return [json.loads(line) for line in lines]  # every line, not only the structlog ones


def test_stdlib_records_and_structlog_events_are_the_same_json_lines(configure: Configure) -> None:
    stderr = configure("json", "info")
    structlog.get_logger(EVENT_LOGGER).info("serving", url="http://127.0.0.1:9877/")
    logging.getLogger("exporter.metrics").warning("dropped series: family %s", "a\nb")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("exporter.web").exception("error serving %s", "/metrics")
        structlog.get_logger(EVENT_LOGGER).error("evaluation failed", exc_info=True)
    lines = _json_lines(stderr.getvalue())
    assert [(e["event"], e["level"]) for e in lines] == [
        ("serving", "info"),
        ("dropped series: family a\nb", "warning"),
        ("error serving /metrics", "error"),
        ("evaluation failed", "error"),
    ]
    assert all(e["timestamp"].endswith("Z") for e in lines)
    assert lines[1]["logger"] == "exporter.metrics" and lines[2]["logger"] == "exporter.web"
    assert "RuntimeError: boom" in lines[2]["exception"] and "RuntimeError: boom" in lines[3]["exception"]


def test_levels_the_exporters_events_follow_the_setting_libraries_speak_from_warning(
    configure: Configure,
) -> None:
    stderr = configure("json", "warning")
    structlog.get_logger(EVENT_LOGGER).info("hidden at warning")
    logging.getLogger("exporter.web").info("serving on http://x")  # stdlib info: below warning
    logging.getLogger("botocore.retries").warning("retry")  # a quiet library: error and up only
    structlog.get_logger(EVENT_LOGGER).warning("source failed")
    assert [e["event"] for e in _json_lines(stderr.getvalue())] == ["source failed"]
    stderr = configure("json", "debug")
    structlog.get_logger(EVENT_LOGGER).debug("shown at debug")
    assert _json_lines(stderr.getvalue())[-1]["event"] == "shown at debug"


def test_console_shows_a_stdlib_records_control_characters_instead_of_obeying_them(
    configure: Configure,
) -> None:
    stderr = configure("console", "info")
    logging.getLogger("exporter.sources.kubernetes").warning("kubernetes correlation off: %s", "x\x1b[2Jy\nz")
    text = stderr.getvalue()
    assert "\x1b[2J" not in text and "\\x1b[2J" in text
    assert len(text.strip().splitlines()) == 1


def test_a_running_daemon_writes_only_json_lines(clean_moto: MotoServer, tmp_path: Path) -> None:
    """The kubernetes source's stdlib warning (a broken kubeconfig under enabled: auto) is a JSON
    line like every structlog event of the process."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("not: [a kubeconfig\n")
    config = write_config(
        tmp_path / "daemon.yaml", tmp_path / "state.sqlite3", kubernetes={"enabled": "auto"}
    )
    env = daemon_env(clean_moto.url, tmp_path) | {"KUBECONFIG": str(kubeconfig)}
    daemon = DaemonProcess(config, tmp_path / "daemon.log", env).start()
    try:
        wait_for(lambda: daemon.get("/readyz").status_code == 200, timeout=30, what="the daemon ready")
        code, _ = daemon.terminate(timeout=15)
    finally:
        daemon.stop()
    assert code == 0
    lines = _json_lines(daemon.log_text())
    events = [e["event"] for e in lines]
    # On a loaded machine a poll can still be running at SIGTERM: run.py then ends with its warning
    # variant of the stop line. Either is the last line, and a JSON one.
    stops = ("stopped", "stopped with a job still running; leaving it")
    assert "serving" in events and events[-1] in stops, events
    off = [e for e in lines if e["event"].startswith("kubernetes correlation off")]
    assert len(off) == 1, events
    assert off[0]["logger"] == "exporter.sources.kubernetes" and off[0]["level"] == "warning"


def test_console_shows_an_unknown_actor_as_unknown_and_leaves_out_fields_without_a_value(
    configure: Configure,
) -> None:
    """A gap the polls saw but no CloudTrail record explains has no actor: JSON says null, the
    console says `actor=unknown` (the word of the metrics' actor label and the pages), and drops
    the other fields with no value (`end=None` of an open gap) rather than print `None`."""
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    [checkout] = [tg for tg in sample_snapshot(now).target_groups if tg.name == CHECKOUT_TG]
    facts = gap_facts(gap(checkout, "traffic", now - timedelta(minutes=2), None, "revoke", actor=""))
    assert facts["actor"] is None and facts["end"] is None  # what the console is given
    stderr = configure("json", "info")
    structlog.get_logger(EVENT_LOGGER).warning("rule gap opened", **facts)
    line = _json_lines(stderr.getvalue())[0]
    assert line["actor"] is None and line["end"] is None and line["cause"] == "revoke"
    stderr = configure("console", "info")
    structlog.get_logger(EVENT_LOGGER).warning("rule gap opened", **facts)
    text = stderr.getvalue().splitlines()[-1]  # the buffer keeps the JSON line above it
    assert "None" not in text, text
    assert "actor=unknown" in text and "cause=revoke" in text and "explained=False" in text, text
    assert "end=" not in text and "trigger=" not in text, text
    structlog.get_logger(EVENT_LOGGER).warning("rule gap opened", **(facts | {"actor": "deployer"}))
    assert "actor=deployer" in stderr.getvalue().splitlines()[-1]
