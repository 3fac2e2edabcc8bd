"""Shared fixtures. Keep this small and generic; helpers live in importable tests/*.py modules."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog

from tests.awsworld import TEST_ENV, MotoServer


@pytest.fixture(scope="module")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """A moto server (tests/moto_launcher.py) on a free port, one per test module and worker.

    Sets test credentials, region and AWS_ENDPOINT_URL for the module (no real AWS is ever
    reachable), with shared config/credentials files pointed at nothing. State persists across
    the module's tests: call `.reset()` (or use `clean_moto`) for a fresh world.
    """
    folder = tmp_path_factory.mktemp("moto")
    server = MotoServer.start(folder)
    with pytest.MonkeyPatch.context() as patch:
        for key, value in TEST_ENV.items():
            patch.setenv(key, value)
        patch.setenv("AWS_ENDPOINT_URL", server.url)
        patch.setenv("AWS_CONFIG_FILE", str(folder / "no-config"))
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(folder / "no-credentials"))
        patch.delenv("AWS_PROFILE", raising=False)
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def clean_moto(moto_server: MotoServer) -> MotoServer:
    """The module's moto server, reset: no resources, records, throttles or logged requests."""
    moto_server.reset()
    return moto_server


#: Loggers exporter/logsetup.py sets a level on (besides the root logger).
_CONFIGURED_LOGGERS = ("", "apscheduler", "botocore", "urllib3", "kubernetes", "werkzeug")


@pytest.fixture(autouse=True)
def _logging_configuration_is_per_test() -> Iterator[None]:
    """Each test leaves structlog and the stdlib loggers as it found them.

    A command run in-process (`main(["run", ...])`, the demo) configures structlog to write to the
    sys.stderr of that moment: pytest's capture of that test, closed when it ends. Later tests in
    the same xdist worker then failed on their first log line ("I/O operation on closed file") or
    captured none, depending on which tests the worker had run before.
    """
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers = root.handlers[:]
    levels = {name: logging.getLogger(name).level for name in _CONFIGURED_LOGGERS}
    try:
        yield
    finally:
        structlog.configure(**saved)
        root.handlers[:] = handlers
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
