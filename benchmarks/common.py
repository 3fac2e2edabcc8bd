"""What every benchmark shares: the Figure record, timing, memory, the final table, a loopback AWS."""

from __future__ import annotations

import contextlib
import gc
import os
import socket
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Figure:
    """One measured figure, its baseline measured in the same run, and its target.

    `ratio` is value / baseline unless the module says otherwise in `ratio_note`; `passed` is None
    when a figure has no target (informative only).
    """

    key: str
    title: str
    value: float
    unit: str
    target: str
    passed: bool | None
    baseline: float | None = None
    baseline_label: str = ""
    ratio: float | None = None
    notes: tuple[str, ...] = ()

    @property
    def verdict(self) -> str:
        if self.passed is None:
            return "-"
        return "PASS" if self.passed else "MISS"

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "value": self.value,
            "unit": self.unit,
            "baseline": self.baseline,
            "baseline_label": self.baseline_label,
            "ratio": self.ratio,
            "target": self.target,
            "verdict": self.verdict,
            "notes": list(self.notes),
        }


def ratio(value: float, baseline: float) -> float:
    """value / baseline, inf when the baseline is 0."""
    return value / baseline if baseline else float("inf")


@dataclass(frozen=True)
class Run:
    """One timed call: CPU seconds of this process and wall-clock seconds."""

    cpu: float
    wall: float


def timed(fn: Callable[[], object]) -> Run:
    """Time one call of `fn` (after a full collection, so earlier garbage is not billed to it).

    CPU time is what the CPU-bound figures report: other work on a shared machine stretches the
    wall clock of a run but not the CPU time it needs.
    """
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return Run(time.process_time() - cpu, time.perf_counter() - wall)


@dataclass
class Timings:
    """Repeated runs of ours and of the baseline, interleaved."""

    ours: list[Run] = field(default_factory=list)
    baseline: list[Run] = field(default_factory=list)

    @property
    def ours_cpu(self) -> float:
        return statistics.median(r.cpu for r in self.ours)

    @property
    def baseline_cpu(self) -> float:
        return statistics.median(r.cpu for r in self.baseline)

    @property
    def ours_wall(self) -> float:
        return statistics.median(r.wall for r in self.ours)

    @property
    def baseline_wall(self) -> float:
        return statistics.median(r.wall for r in self.baseline)


def interleaved(ours: Callable[[], object], baseline: Callable[[], object], rounds: int) -> Timings:
    """Run baseline and ours alternately `rounds` times each (after one untimed warm-up of each)."""
    baseline()
    ours()
    result = Timings()
    for _ in range(rounds):
        result.baseline.append(timed(baseline))
        result.ours.append(timed(ours))
    return result


def rss_kib(status_path: str = "/proc/self/status") -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak) of a process in KiB, from /proc (0 when not available)."""
    found = {"VmRSS": 0, "VmHWM": 0}
    with contextlib.suppress(OSError):
        for line in Path(status_path).read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in found:
                found[name] = int(rest.split()[0])
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def fmt(value: float | None, unit: str = "") -> str:
    """A compact human rendering: 3 significant digits, thousands grouped."""
    if value is None:
        return "-"
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    magnitude = abs(value)
    if magnitude >= 1000 or (value.is_integer() and magnitude < 1e15):
        text = f"{value:,.0f}"
    elif magnitude >= 100:
        text = f"{value:.0f}"
    elif magnitude >= 10:
        text = f"{value:.1f}"
    elif magnitude >= 1:
        text = f"{value:.2f}"
    elif magnitude == 0:
        text = "0"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".strip()


def table(figures: Sequence[Figure]) -> str:
    """The final summary: figure, value, baseline, ratio, target, PASS/MISS."""
    header = ("figure", "value", "baseline", "ratio", "target", "result")
    rows = [
        (
            f.title,
            fmt(f.value, f.unit),
            fmt(f.baseline, f.unit) if f.baseline is not None else "-",
            "-" if f.ratio is None else f"{f.ratio:.2f}x",
            f.target,
            f.verdict,
        )
        for f in figures
    ]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(header))]
    lines.append("  ".join("-" * width for width in widths))
    lines += ["  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def describe(figure: Figure) -> str:
    """One figure as printed when it is measured: value, baseline, ratio, target, notes."""
    parts = [f"[{figure.key}] {figure.title}: {fmt(figure.value, figure.unit)}"]
    if figure.baseline is not None:
        parts.append(f"  baseline ({figure.baseline_label}): {fmt(figure.baseline, figure.unit)}")
    if figure.ratio is not None:
        parts.append(f"  ratio: {figure.ratio:.2f}x")
    parts.append(f"  target: {figure.target} -> {figure.verdict}")
    parts += [f"  - {note}" for note in figure.notes]
    return "\n".join(parts)


# --- a loopback AWS (the moto server the tests use) ------------------------------------------------

TEST_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@contextlib.contextmanager
def loopback_aws() -> Iterator[Any]:
    """A moto server (tests/moto_launcher.py) on 127.0.0.1 and an environment that reaches only it.

    Yields the `tests.awsworld.MotoServer`. Test credentials, no shared config files and
    AWS_ENDPOINT_URL pointing at the server are set for the duration, then restored.
    """
    from tests.awsworld import MotoServer

    with tempfile.TemporaryDirectory(prefix="sgchurn-bench-") as folder:
        server = MotoServer.start(Path(folder))
        saved = dict(os.environ)
        os.environ.update(TEST_CREDENTIALS)
        os.environ["AWS_ENDPOINT_URL"] = server.url
        os.environ["AWS_CONFIG_FILE"] = str(Path(folder) / "no-config")
        os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(Path(folder) / "no-credentials")
        os.environ.pop("AWS_PROFILE", None)
        try:
            yield server
        finally:
            os.environ.clear()
            os.environ.update(saved)
            server.stop()
