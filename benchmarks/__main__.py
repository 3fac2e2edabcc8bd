"""`python -m benchmarks [--quick] [--only NAME ...] [--json FILE]`: every figure, then a table.

Each figure is printed as soon as it is measured, with its baseline (measured in the same run)
and its target; the table at the end lists them all with PASS or MISS. A MISS is a finding, not
a failure: the exit status is 1 only when a benchmark could not run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from benchmarks import (
    aws_cost,
    detection,
    evaluation,
    image,
    impact_cost,
    ingest,
    scrape,
    trail_scan,
    web_soak,
)
from benchmarks.common import Figure, describe, table

BENCHMARKS: dict[str, Callable[[bool], list[Figure]]] = {
    "ingest": ingest.figures,
    "trail_scan": trail_scan.figures,
    "evaluation": evaluation.figures,
    "scrape": scrape.figures,
    "aws_cost": aws_cost.figures,
    "detection": detection.figures,
    "image": image.figures,
    "web_soak": web_soak.figures,
    "impact_cost": impact_cost.figures,
}


def _machine() -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3
    return (
        f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {load[0]:.2f} at start"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer repetitions")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run only these benchmarks")
    parser.add_argument("--json", type=Path, help="also write the figures to this file as JSON")
    args = parser.parse_args(argv)

    print(f"sg-churn-exporter benchmarks ({'quick' if args.quick else 'full'}): {_machine()}", flush=True)
    figures: list[Figure] = []
    broken = False
    started = time.perf_counter()
    for name in args.only or list(BENCHMARKS):
        began = time.perf_counter()
        print(f"\n== {name}", flush=True)
        try:
            measured = BENCHMARKS[name](args.quick)
        except Exception as exc:
            broken = True
            traceback.print_exc()
            measured = [
                Figure(
                    key=name,
                    title=f"{name} (did not run)",
                    value=math.nan,
                    unit="",
                    target="runs",
                    passed=False,
                    notes=(f"{type(exc).__name__}: {exc}",),
                )
            ]
        for figure in measured:
            print(describe(figure), flush=True)
        print(f"({name}: {time.perf_counter() - began:.0f} s)", flush=True)
        figures.extend(measured)

    print(f"\nSummary ({time.perf_counter() - started:.0f} s in all)\n", flush=True)
    print(table(figures), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps([f.to_dict() for f in figures], indent=2) + "\n", encoding="utf-8")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
