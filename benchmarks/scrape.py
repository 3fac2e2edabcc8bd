"""Figure 4: a Prometheus scrape of /metrics for a snapshot of 5,000 target groups, and memory.

Two server processes on 127.0.0.1, each holding the same synthetic snapshot
(benchmarks/synth_snapshot.py): ours, the exporter's `WebServer` (its own writer,
`exporter.metrics.ExpositionCache`); and the baseline, prometheus_client's own
`start_http_server` over a registry of plain Gauge/Counter series with the same names, labels and
values (histogram samples as gauges, info families as gauges of 1, no `_created` series).

Our process serves the snapshot twice, on two ports: "new", where every read of the snapshot
returns a new Snapshot object in which one target group changed (in turn), so every scrape is the
first of its snapshot and pays its render, as after each publish of the daemon (every job run,
several a minute): that target group's lines, the rest of the families, the join and the gzip;
and "cached", where it is always the same object, as for the second server of an HA pair
scraping the same snapshot. The client scrapes baseline, new and cached in turn the way
Prometheus does (its Accept header, which picks OpenMetrics, and gzip), on a new connection each
time, and reports the median latencies. Memory: the peak resident size (VmHWM) of our server
process after the scrapes (both servers, so one extra cached body), with the baseline's beside it.

A baseline scrape of a big snapshot takes seconds, so the run stops after `max_seconds` even when
fewer than `scrapes` rounds were made; the figure says how many it got.

`python -m benchmarks.scrape serve --kind ours|baseline --target-groups N` is the server; ours
prints `PORT <new> <cached>`.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import http.client
import itertools
import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import LOOPBACK, Figure, ratio, rss_kib

TARGET_MEDIAN_MS = 100.0
TARGET_RATIO = 2.0
TARGET_RSS_MB = 250.0
#: Issue 15: what a Prometheus user pays per watched target group (series are billed and held in memory).
TARGET_SERIES_PER_TG = 8.0
#: What Prometheus 2.x sends when scraping.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
REPO = Path(__file__).resolve().parents[1]


# --- the servers --------------------------------------------------------------------------------


def _baseline_registry(snapshot: Any) -> Any:
    """A plain prometheus_client registry with the same series as our collector exposes."""
    from prometheus_client import CollectorRegistry, Counter, Gauge, disable_created_metrics

    from exporter.metrics import families_of

    disable_created_metrics()
    registry = CollectorRegistry(auto_describe=False)
    metrics: dict[str, Any] = {}
    families, _ = families_of(snapshot)
    for family in families:
        for sample in family.samples:
            labelnames = sorted(sample.labels)
            metric: Any = metrics.get(sample.name)
            counter = family.type == "counter" and sample.name.endswith("_total")
            if metric is None:
                if counter:
                    metric = Counter(
                        sample.name[: -len("_total")], family.documentation, labelnames, registry=registry
                    )
                else:
                    metric = Gauge(sample.name, family.documentation, labelnames, registry=registry)
                metrics[sample.name] = metric
            child = metric.labels(**sample.labels) if labelnames else metric
            if counter:
                child.inc(sample.value)
            else:
                child.set(sample.value)
    return registry


def serve(kind: str, target_groups: int) -> None:
    """Build the snapshot, serve it, print `PORT <n> ...` and wait until stdin closes."""
    from benchmarks.synth_snapshot import build_snapshot

    snapshot = build_snapshot(target_groups)
    if kind == "ours":
        from exporter.web import WebServer

        reads = itertools.count()

        def one_changed() -> Any:
            """A new snapshot per read, as after a publish, with one target group changed (its
            targets, in turn): its lines are rendered again, the others' are kept."""
            read = next(reads)
            groups = list(snapshot.target_groups)
            i = read % len(groups)
            groups[i] = dataclasses.replace(groups[i], targets=groups[i].targets + 1 + read % 2)
            return dataclasses.replace(snapshot, target_groups=tuple(groups))

        fresh = WebServer(one_changed, LOOPBACK, 0)
        cached = WebServer(lambda: snapshot, LOOPBACK, 0)
        fresh.start()
        cached.start()
        ports = [fresh.port, cached.port]
    else:
        from prometheus_client import start_http_server

        registry = _baseline_registry(snapshot)
        del snapshot  # the baseline process holds its registry, not our snapshot
        from benchmarks.common import free_port

        ports = [free_port()]
        start_http_server(ports[0], addr=LOOPBACK, registry=registry)
    print("PORT", *ports, flush=True)
    sys.stdin.read()  # until the parent closes our stdin


@dataclass
class ServerProcess:
    kind: str
    process: subprocess.Popen[str]
    ports: tuple[int, ...]
    start_seconds: float
    idle_rss_kib: int

    @property
    def port(self) -> int:
        return self.ports[0]

    @classmethod
    def start(cls, kind: str, target_groups: int) -> ServerProcess:
        started = time.perf_counter()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.scrape",
                "serve",
                "--kind",
                kind,
                "--target-groups",
                str(target_groups),
            ],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("PORT "):
            process.kill()
            raise RuntimeError(f"{kind} server did not start: {line!r}")
        ports = tuple(int(port) for port in line.split()[1:])
        return cls(
            kind,
            process,
            ports,
            time.perf_counter() - started,
            rss_kib(f"/proc/{process.pid}/status")["VmRSS"],
        )

    def memory(self) -> dict[str, int]:
        return rss_kib(f"/proc/{self.process.pid}/status")

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# --- the client ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scrape:
    seconds: float
    body: bytes
    content_type: str
    encoding: str

    @property
    def text(self) -> bytes:
        return gzip.decompress(self.body) if self.encoding == "gzip" else self.body


def scrape(port: int, *, prometheus: bool = True, timeout: float = 120.0) -> Scrape:
    """One GET /metrics on a new connection; the time until the whole body is read."""
    headers = {"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"} if prometheus else {}
    started = time.perf_counter()
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        connection.request("GET", "/metrics", headers=headers)
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"/metrics answered {response.status}")
        return Scrape(
            time.perf_counter() - started,
            body,
            response.getheader("Content-Type", ""),
            response.getheader("Content-Encoding", "") or "identity",
        )
    finally:
        connection.close()


@dataclass(frozen=True)
class ScrapeResult:
    target_groups: int
    series: int
    text_bytes: int
    scrapes: int
    ours_median_ms: float  # every scrape the first of its snapshot
    ours_cached_median_ms: float  # the same snapshot again
    baseline_median_ms: float
    ours_gzip_bytes: int
    baseline_gzip_bytes: int
    content_type: str
    ours_peak_rss_mb: float
    ours_idle_rss_mb: float
    baseline_peak_rss_mb: float
    ours_start_seconds: float
    baseline_start_seconds: float
    biggest: str
    per_target_group: str = ""

    @property
    def ratio(self) -> float:
        return ratio(self.ours_median_ms, self.baseline_median_ms)

    @property
    def cached_ratio(self) -> float:
        return ratio(self.ours_cached_median_ms, self.baseline_median_ms)


def _series(text: bytes) -> int:
    return sum(1 for line in text.split(b"\n") if line and not line.startswith(b"#"))


def measure_scrape(target_groups: int, scrapes: int = 50, max_seconds: float = 150.0) -> ScrapeResult:
    """Scrape the baseline, ours (new snapshot) and ours (same snapshot) in turn, `scrapes` times
    each or until `max_seconds`."""
    servers: list[ServerProcess] = []
    try:
        # Start both at once: each builds its snapshot in its own process.
        results: dict[str, ServerProcess] = {}

        def start(kind: str) -> None:
            results[kind] = ServerProcess.start(kind, target_groups)

        threads = [threading.Thread(target=start, args=(kind,)) for kind in ("ours", "baseline")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if set(results) != {"ours", "baseline"}:
            raise RuntimeError("a scrape server did not start")
        ours, baseline = results["ours"], results["baseline"]
        servers = [ours, baseline]
        fresh_port, cached_port = ours.ports
        for port in (*ours.ports, baseline.port):  # warm-up: imports, thread start-up, the first render
            scrape(port)
        mine: list[Scrape] = []
        cached: list[Scrape] = []
        theirs: list[Scrape] = []
        started = time.perf_counter()
        while len(mine) < scrapes and (len(mine) < 5 or time.perf_counter() - started < max_seconds):
            theirs.append(scrape(baseline.port))
            mine.append(scrape(fresh_port))
            cached.append(scrape(cached_port))
        ours_memory, baseline_memory = ours.memory(), baseline.memory()
    finally:
        for server in servers:
            server.stop()
    text = mine[-1].text
    if _series(cached[-1].text) != _series(text):  # the same but for one target group's targets
        raise RuntimeError("the new-snapshot and the cached server served different series")
    return ScrapeResult(
        target_groups=target_groups,
        series=_series(text),
        text_bytes=len(text),
        scrapes=len(mine),
        ours_median_ms=1000 * statistics.median(s.seconds for s in mine),
        ours_cached_median_ms=1000 * statistics.median(s.seconds for s in cached),
        baseline_median_ms=1000 * statistics.median(s.seconds for s in theirs),
        ours_gzip_bytes=len(mine[-1].body),
        baseline_gzip_bytes=len(theirs[-1].body),
        content_type=mine[-1].content_type.split(";")[0],
        ours_peak_rss_mb=ours_memory["VmHWM"] / 1024,
        ours_idle_rss_mb=ours.idle_rss_kib / 1024,
        baseline_peak_rss_mb=baseline_memory["VmHWM"] / 1024,
        ours_start_seconds=ours.start_seconds,
        baseline_start_seconds=baseline.start_seconds,
        biggest=_biggest_families(text),
        per_target_group=_per_target_group(text, target_groups),
    )


def series_by_family(text: bytes) -> dict[str, int]:
    """Series (sample lines) per family, most first; a histogram's _bucket/_sum/_count under its name."""
    sizes: dict[str, int] = {}
    for line in text.split(b"\n"):
        if line and not line.startswith(b"#"):
            name = line.split(b"{", 1)[0].split(b" ", 1)[0].decode()
            for suffix in ("_bucket", "_sum", "_count"):
                if name.endswith(suffix) and "duration_seconds" in name:
                    name = name[: -len(suffix)]
            sizes[name] = sizes.get(name, 0) + 1
    return dict(sorted(sizes.items(), key=lambda item: -item[1]))


def _biggest_families(text: bytes, count: int = 4) -> str:
    """The families with the most series, as `name N`."""
    top = list(series_by_family(text).items())[:count]
    return ", ".join(f"{name} {size:,}" for name, size in top)


def _per_target_group(text: bytes, target_groups: int) -> str:
    """Series per target group of each family with at least 0.01, as `name x.xx`."""
    return ", ".join(
        f"{name.removeprefix('sgchurn_')} {size / target_groups:.2f}"
        for name, size in series_by_family(text).items()
        if size / target_groups >= 0.005
    )


def figures(quick: bool) -> list[Figure]:
    target_groups, scrapes, seconds = (1_000, 10, 20.0) if quick else (5_000, 50, 60.0)
    result = measure_scrape(target_groups, scrapes=scrapes, max_seconds=seconds)
    size = (
        f"{result.target_groups:,} TGs: {result.series:,} series, {result.text_bytes / 2**20:.1f} MiB of "
        f"{result.content_type}, gzip {result.ours_gzip_bytes / 2**20:.2f} MiB (baseline "
        f"{result.baseline_gzip_bytes / 2**20:.2f} MiB); most series: {result.biggest}"
    )
    count = (
        f"median of {result.scrapes} scrapes each (up to {scrapes}, or as many as fit in {seconds:.0f} s, "
        "at least 5), baseline, new and same snapshot in turn, Prometheus' Accept header and gzip, "
        "a new connection each"
    )
    target = f"< {TARGET_MEDIAN_MS:.0f} ms, ratio <= {TARGET_RATIO:.0f}"
    baseline_label = "prometheus_client start_http_server, plain series"
    return [
        Figure(
            key="scrape",
            title=f"4 Scrape /metrics, {result.target_groups:,} TGs",
            value=result.ours_median_ms,
            unit="ms",
            baseline=result.baseline_median_ms,
            baseline_label=baseline_label,
            ratio=result.ratio,
            target=target,
            passed=result.ours_median_ms < TARGET_MEDIAN_MS and result.ratio <= TARGET_RATIO,
            notes=(
                "every scrape the first of a new snapshot in which one target group changed (its lines "
                "rendered, the others' kept; the body joined and gzipped on the scrape)",
                size,
                count,
            ),
        ),
        Figure(
            key="scrape_cached",
            title="4 Scrape again, same snapshot (cached)",
            value=result.ours_cached_median_ms,
            unit="ms",
            baseline=result.baseline_median_ms,
            baseline_label=baseline_label,
            ratio=result.cached_ratio,
            target=target,
            passed=result.ours_cached_median_ms < TARGET_MEDIAN_MS and result.cached_ratio <= TARGET_RATIO,
            notes=("the bytes rendered for the first scrape of the snapshot, served again",),
        ),
        Figure(
            key="scrape_rss",
            title=f"4 Memory, exporter holding {result.target_groups:,} TGs",
            value=result.ours_peak_rss_mb,
            unit="MB",
            baseline=result.baseline_peak_rss_mb,
            baseline_label="prometheus_client process, same series",
            ratio=ratio(result.ours_peak_rss_mb, result.baseline_peak_rss_mb),
            target=f"< {TARGET_RSS_MB:.0f} MB",
            passed=result.ours_peak_rss_mb < TARGET_RSS_MB,
            notes=(
                f"peak resident size (VmHWM) after the scrapes; {result.ours_idle_rss_mb:.0f} MB resident "
                f"before the first scrape",
                f"server start-up incl. building the snapshot: ours {result.ours_start_seconds:.1f} s, "
                f"baseline {result.baseline_start_seconds:.1f} s",
            ),
        ),
        Figure(
            key="series_per_target_group",
            title="4 Series per target group (steady state)",
            value=result.series / result.target_groups,
            unit="series",
            target=f"<= {TARGET_SERIES_PER_TG:.0f}",
            passed=result.series / result.target_groups <= TARGET_SERIES_PER_TG,
            notes=(
                f"{result.series:,} series / {result.target_groups:,} target groups of the synthetic "
                "snapshot (benchmarks/synth_snapshot.py: 10% of target groups had a gap once, 1% in "
                "the last day)",
                f"per family and target group: {result.per_target_group}",
            ),
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scrape")
    parser.add_argument("command", choices=("serve",))
    parser.add_argument("--kind", choices=("ours", "baseline"), required=True)
    parser.add_argument("--target-groups", type=int, default=5_000)
    args = parser.parse_args(argv)
    serve(args.kind, args.target_groups)
    return 0


if __name__ == "__main__":
    sys.exit(main())
