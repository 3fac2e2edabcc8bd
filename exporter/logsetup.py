"""Logs: one line per event, JSON in production, readable console output on a terminal.

Every line goes through one handler on the standard library's root logger, formatted by structlog's
`ProcessorFormatter`: the exporter's structlog events and the records of standard-library loggers
(exporter.web, exporter.metrics, exporter.sources.kubernetes, libraries) share one format, one
timestamp and one level field; a foreign record also names its `logger`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from exporter.textsafe import printable_log_event

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}

#: The stdlib logger structlog's events go to (every exporter module binds this name).
EVENT_LOGGER = "sg-churn-exporter"
#: Libraries that speak at warning level about what the exporter reports itself (retries, misses).
QUIET_LIBRARIES = ("apscheduler", "botocore", "urllib3", "kubernetes")
#: Fields the console shows with the project's word when they have no value (JSON keeps null):
#: `actor` as the metrics' actor label and the pages say it when CloudTrail named no one.
CONSOLE_UNKNOWN = {"actor": "unknown"}


def readable_absences(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> dict[str, Any]:
    """structlog processor for console output: a field without a value (None) is left out rather
    than printed as `None` (an open gap's `end`, a gap without trigger), but for the fields of
    CONSOLE_UNKNOWN, shown as `unknown`. JSON lines keep every field, null when it has no value."""
    return {
        key: CONSOLE_UNKNOWN[key] if value is None else value
        for key, value in event.items()
        if value is not None or key in CONSOLE_UNKNOWN
    }


def configure_logging(log_format: str = "auto", level: str = "info") -> None:
    """Route structlog and every stdlib logger to one stderr handler that writes one line per event.

    `level` applies to the exporter's events; other stdlib loggers speak from warning up (the
    QUIET_LIBRARIES from error up)."""
    console = log_format == "console" or (log_format == "auto" and sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        if console
        else structlog.processors.JSONRenderer()
    )
    # JSON escapes control characters itself; the console shows them as escapes (exporter/textsafe.py)
    # and leaves out what has no value
    safe: list[structlog.typing.Processor] = [readable_absences, printable_log_event] if console else []
    stamped: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    threshold = _LEVELS.get(level, logging.INFO)
    structlog.configure(
        processors=[*stamped, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*stamped, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                *safe,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger(EVENT_LOGGER).setLevel(threshold)
    for quiet in QUIET_LIBRARIES:
        logging.getLogger(quiet).setLevel(logging.ERROR)
