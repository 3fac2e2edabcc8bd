"""Figure 3: one full evaluation (`gaps.analyze`) at fleet scale, and how it scales.

The fleet (benchmarks/synth_inventory.py) has 5,000 target groups, 50,000 targets and 2,000
security groups of 60 rules each at full size; a handful of changes (a revoke, the authorize that
restores it, a preserve_client_ip change, twice) makes the sweep undo and replay. Figures: the
seconds of one `analyze` at 5,000 target groups (target < 1 s), and the time per target group at
500, 1,000, 2,000 and 5,000 (target: the largest no worse than linear, i.e. per-target-group time
at 5,000 within 1.25x of that at 500, noise allowed). The baseline of the absolute figure is the
500-group run extrapolated linearly.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from benchmarks.common import Figure, ratio, timed
from benchmarks.synth_inventory import build_fleet, handful_of_changes, inventory_churn
from exporter.engine.gaps import Analysis, analyze

TARGET_SECONDS = 1.0
TARGET_SCALING = 1.25
SIZES = (500, 1_000, 2_000, 5_000)
QUICK_SIZES = (500, 1_000, 2_000)


@dataclass(frozen=True)
class Point:
    target_groups: int
    targets: int
    security_groups: int
    rules: int
    changes: int
    seconds: float  # CPU seconds, median of the runs
    wall_seconds: float
    first_seconds: float  # CPU seconds of the first run on a fresh inventory
    gaps: int
    open_gaps: int

    @property
    def per_target_group_ms(self) -> float:
        return 1000 * self.seconds / self.target_groups


def measure_point(target_groups: int, rounds: int = 3) -> Point:
    """Median seconds of `rounds` runs of analyze over a fleet of `target_groups` target groups."""
    fleet = build_fleet(target_groups)
    changes = handful_of_changes(fleet)
    results: list[Analysis] = []
    first = timed(lambda: results.append(analyze(fleet.inventory, changes)))  # the facts reported
    result = results[0]
    runs = [timed(lambda: analyze(fleet.inventory, changes)) for _ in range(rounds)]
    return Point(
        target_groups=len(fleet.inventory.target_groups),
        targets=fleet.targets,
        security_groups=len(fleet.inventory.security_groups),
        rules=fleet.rules,
        changes=len(changes),
        seconds=statistics.median(r.cpu for r in runs),
        wall_seconds=statistics.median(r.wall for r in runs),
        first_seconds=first.cpu,
        gaps=len(result.gaps),
        open_gaps=sum(1 for gap in result.gaps if gap.is_open),
    )


def measure_scaling(sizes: tuple[int, ...] = SIZES, rounds: int = 3) -> list[Point]:
    return [measure_point(size, rounds) for size in sizes]


def measure_churn(target_groups: int, rounds: int = 3) -> tuple[int, float, int]:
    """Changes, median CPU seconds and gaps of analyze with the handful of changes plus inventory
    churn (targets deregistered and registered again, ENI groups set) on the same fleet."""
    fleet = build_fleet(target_groups)
    changes = handful_of_changes(fleet) + inventory_churn(fleet)
    result = analyze(fleet.inventory, changes)
    runs = [timed(lambda: analyze(fleet.inventory, changes)) for _ in range(rounds)]
    return len(changes), statistics.median(r.cpu for r in runs), len(result.gaps)


def figures(quick: bool) -> list[Figure]:
    points = measure_scaling(QUICK_SIZES if quick else SIZES)
    small, large = points[0], points[-1]
    churn_changes, churn_seconds, churn_gaps = measure_churn(large.target_groups, rounds=1 if quick else 3)
    linear = small.seconds * large.target_groups / small.target_groups
    scaling = ratio(large.per_target_group_ms, small.per_target_group_ms)
    size_notes = tuple(
        f"{p.target_groups:,} TGs, {p.targets:,} targets, {p.security_groups:,} SGs, {p.rules:,} rules, "
        f"{p.changes} changes: {p.seconds:.3f} s CPU, {p.wall_seconds:.3f} s wall "
        f"({p.per_target_group_ms:.3f} ms per TG; first run {p.first_seconds:.3f} s CPU; "
        f"{p.gaps} gaps, {p.open_gaps} open)"
        for p in points
    )
    return [
        Figure(
            key="evaluate",
            title=f"3 Evaluate, analyze() at {large.target_groups:,} TGs",
            value=large.seconds,
            unit="s",
            baseline=linear,
            baseline_label=f"{small.target_groups:,}-TG run x {large.target_groups // small.target_groups}",
            ratio=ratio(large.seconds, linear),
            target=f"< {TARGET_SECONDS:.0f} s",
            passed=large.seconds < TARGET_SECONDS,
            notes=(
                *size_notes,
                "CPU seconds, median of 3 runs per size after a first run (which also computes each rule's key)",
                f"with inventory churn at {large.target_groups:,} TGs ({churn_changes} changes: targets "
                f"deregistered and registered again, ENI groups set): {churn_seconds:.3f} s CPU, {churn_gaps} gaps",
            ),
        ),
        Figure(
            key="evaluate_scaling",
            title=f"3 Evaluate scaling {small.target_groups:,}->{large.target_groups:,} TGs",
            value=large.per_target_group_ms,
            unit="ms/TG",
            baseline=small.per_target_group_ms,
            baseline_label=f"ms per TG at {small.target_groups:,} TGs",
            ratio=scaling,
            target=f"ratio <= {TARGET_SCALING} (linear)",
            passed=scaling <= TARGET_SCALING,
        ),
    ]
