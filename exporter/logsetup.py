"""structlog: JSON lines in production, readable console output on a terminal."""

from __future__ import annotations

import logging
import sys

import structlog

from exporter.textsafe import printable_log_event

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def configure_logging(log_format: str = "auto", level: str = "info") -> None:
    """Set up structlog and the stdlib root logger (libraries) to write one line per event."""
    console = log_format == "console" or (log_format == "auto" and sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        if console
        else structlog.processors.JSONRenderer()
    )
    # JSON escapes control characters itself; the console shows them as escapes (exporter/textsafe.py)
    safe: list[structlog.typing.Processor] = [printable_log_event] if console else []
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            *safe,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("apscheduler", "botocore", "urllib3", "kubernetes"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
