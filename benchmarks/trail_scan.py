"""Figure 2: scanning S3 trail files for backfill.

Gzip trail files (`{"Records": [...]}`) in which about 1% of records are security-group or
target-group changes and the rest the usual traffic of an account (AssumeRole, Decrypt,
DescribeInstances, S3 PutObject/GetObject, ...). Ours: `parse_payload` on each file's bytes
(gunzip with zlib-ng, the msgspec skim that reads only eventName, typed changes for the watched
1%). Baseline: `gzip.decompress` (CPython's zlib) of the same bytes and nothing else. Target: ours
scans at least half as many records per second as gunzip alone (ratio >= 0.5).

For information, ours' own inflate (zlib-ng, with the gzip-bomb limit) is also timed alone, so
the share of the ratio that comes from a faster inflate is visible.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass

from benchmarks.common import Figure, interleaved, ratio, timed
from benchmarks.synth_records import trail_files
from exporter.engine.records import WATCHED_EVENT_NAMES
from exporter.sources.envelopes import MAX_PAYLOAD_BYTES, _gunzip, parse_payload

TARGET_RATIO = 0.5


@dataclass(frozen=True)
class TrailScanResult:
    files: int
    records: int
    watched: int
    compressed_bytes: int
    raw_bytes: int
    changes: int
    ignored: int
    rejections: int
    ours_per_second: float  # records per CPU second
    baseline_per_second: float
    ours_wall_per_second: float
    baseline_wall_per_second: float
    our_inflate_per_second: float  # for information: ours' gunzip (zlib-ng) alone

    @property
    def ratio(self) -> float:
        return ratio(self.ours_per_second, self.baseline_per_second)


def measure_trail_scan(files: int, records_per_file: int, rounds: int = 3) -> TrailScanResult:
    bodies: list[bytes] = []
    records = watched = raw_bytes = 0
    for batch in trail_files(files, records_per_file):
        raw = json.dumps({"Records": batch}).encode()
        raw_bytes += len(raw)
        bodies.append(gzip.compress(raw, compresslevel=6))
        records += len(batch)
        watched += sum(1 for record in batch if record["eventName"] in WATCHED_EVENT_NAMES)
    changes = ignored = rejections = 0
    for body in bodies:
        result = parse_payload(body)
        changes += len(result.changes)
        ignored += result.ignored
        rejections += len(result.rejections)

    def ours() -> None:
        for body in bodies:
            parse_payload(body)

    def baseline() -> None:
        for body in bodies:
            gzip.decompress(body)

    def our_inflate() -> None:
        for body in bodies:
            _gunzip(body, MAX_PAYLOAD_BYTES)

    timings = interleaved(ours, baseline, rounds)
    inflate = sorted(timed(our_inflate).cpu for _ in range(rounds))[rounds // 2]
    return TrailScanResult(
        files=files,
        records=records,
        watched=watched,
        compressed_bytes=sum(len(b) for b in bodies),
        raw_bytes=raw_bytes,
        changes=changes,
        ignored=ignored,
        rejections=rejections,
        ours_per_second=records / timings.ours_cpu,
        baseline_per_second=records / timings.baseline_cpu,
        ours_wall_per_second=records / timings.ours_wall,
        baseline_wall_per_second=records / timings.baseline_wall,
        our_inflate_per_second=records / inflate,
    )


def figures(quick: bool) -> list[Figure]:
    result = measure_trail_scan(files=8 if quick else 40, records_per_file=1_250)
    complete = result.changes + result.ignored + result.rejections == result.records
    return [
        Figure(
            key="trail_scan",
            title="2 Trail scan, gzip files, 1% watched",
            value=result.ours_per_second,
            unit="rec/s",
            baseline=result.baseline_per_second,
            baseline_label="gzip.decompress only",
            ratio=result.ratio,
            target=f"ratio >= {TARGET_RATIO}",
            passed=result.ratio >= TARGET_RATIO and complete and result.changes == result.watched,
            notes=(
                f"{result.files} files, {result.records:,} records ({result.watched:,} watched), "
                f"{result.compressed_bytes / 2**20:.1f} MiB gzip, {result.raw_bytes / 2**20:.1f} MiB JSON",
                f"parse_payload found {result.changes:,} changes, {result.ignored:,} ignored, "
                f"{result.rejections} rejections",
                f"per CPU second, median of 3 interleaved rounds; wall clock: ours "
                f"{result.ours_wall_per_second:,.0f}/s, baseline {result.baseline_wall_per_second:,.0f}/s",
                f"for information: ours' inflate alone (zlib-ng) {result.our_inflate_per_second:,.0f}/s, "
                f"{1e6 / result.our_inflate_per_second:.2f} us per record; the skim and the typed "
                f"changes take {1e6 / result.ours_per_second - 1e6 / result.our_inflate_per_second:.2f} us "
                f"more; gzip.decompress {1e6 / result.baseline_per_second:.2f} us",
            ),
        )
    ]
