#!/usr/bin/env python3
"""Copy the alert rules and Grafana dashboards into the Helm chart, which can only read its own files.

    alerts/*.rules.yml   -> helm/sg-churn-exporter/files/alerts/
    dashboards/*.json    -> helm/sg-churn-exporter/files/dashboards/

Copies are byte-for-byte; chart copies without a source are deleted. `--check` changes nothing and exits 1
listing what is out of date (tests/test_helm_chart.py runs the same comparison).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHART_FILES = ROOT / "helm" / "sg-churn-exporter" / "files"


@dataclass(frozen=True)
class Mapping:
    source: Path
    pattern: str
    dest: Path


MAPPINGS = (
    Mapping(ROOT / "alerts", "*.rules.yml", CHART_FILES / "alerts"),
    Mapping(ROOT / "dashboards", "*.json", CHART_FILES / "dashboards"),
)


def differences(root: Path = ROOT) -> list[str]:
    """Human-readable list of chart copies that are missing, stale or orphaned."""
    problems: list[str] = []
    for m in MAPPINGS:
        source_dir = root / m.source.relative_to(ROOT)
        dest_dir = root / m.dest.relative_to(ROOT)
        sources = {p.name: p for p in sorted(source_dir.glob(m.pattern))}
        copies = {p.name: p for p in sorted(dest_dir.glob(m.pattern))}
        for name, src in sources.items():
            copy = copies.get(name)
            rel = (dest_dir / name).relative_to(root)
            if copy is None:
                problems.append(f"missing: {rel} (copy of {src.relative_to(root)})")
            elif copy.read_bytes() != src.read_bytes():
                problems.append(f"stale: {rel} differs from {src.relative_to(root)}")
        for name in copies.keys() - sources.keys():
            problems.append(f"orphan: {(dest_dir / name).relative_to(root)} has no source")
    return sorted(problems)


def sync(root: Path = ROOT) -> list[str]:
    """Make the chart copies equal to the sources; return what changed."""
    changed: list[str] = []
    for m in MAPPINGS:
        source_dir = root / m.source.relative_to(ROOT)
        dest_dir = root / m.dest.relative_to(ROOT)
        dest_dir.mkdir(parents=True, exist_ok=True)
        sources = {p.name: p for p in source_dir.glob(m.pattern)}
        for name, src in sorted(sources.items()):
            dest = dest_dir / name
            if not dest.exists() or dest.read_bytes() != src.read_bytes():
                shutil.copyfile(src, dest)
                changed.append(f"copied {src.relative_to(root)} -> {dest.relative_to(root)}")
        for copy in sorted(dest_dir.glob(m.pattern)):
            if copy.name not in sources:
                copy.unlink()
                changed.append(f"removed {copy.relative_to(root)}")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="report differences, change nothing")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    root = args.root.resolve()
    if args.check:
        problems = differences(root)
        for line in problems:
            print(line, file=sys.stderr)
        if problems:
            print("run: python3 scripts/sync-chart-files.py", file=sys.stderr)
            return 1
        return 0
    for line in sync(root):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
