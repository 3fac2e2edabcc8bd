"""Headless Chromium for the page tests (Debian's chromium, installed by scripts/install-tools.sh)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--hide-scrollbars",
    "--allow-file-access-from-files",
)


def chromium(tmp_path: Path, profile: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run chromium with a fresh profile under tmp_path; fails the test when it is not installed."""
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("chromium is missing: run scripts/install-tools.sh (Debian package chromium)")
    command = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
