"""The samples of a snapshot as prometheus_client Metric families: a custom collector.

For prometheus_client's own encoders: the `escaping=` negotiation /metrics leaves to them, the
reference the text writer is compared with byte for byte (tests/test_metrics.py), and the
benchmark's baseline. It builds families from samples.py's generators, as the writer does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from exporter.daemon.snapshot import Snapshot
from exporter.metrics.samples import Buckets, samples_of
from exporter.metrics.specs import SPECS, SPECS_BY_NAME, MetricSpec

log = logging.getLogger("exporter.metrics")


def empty_family(spec: MetricSpec) -> Metric:
    """A family with the spec's name, type, help, unit and labels, and no samples yet."""
    labels = list(spec.labels)
    if spec.type == "gauge":
        return GaugeMetricFamily(spec.base_name, spec.help, labels=labels, unit=spec.unit)
    if spec.type == "counter":
        return CounterMetricFamily(spec.base_name, spec.help, labels=labels, unit=spec.unit)
    if spec.type == "histogram":
        return HistogramMetricFamily(spec.base_name, spec.help, labels=labels, unit=spec.unit)
    return InfoMetricFamily(spec.base_name, spec.help, labels=labels)


def _cumulative(buckets: Sequence[float], counts: Sequence[int]) -> list[tuple[str, float]]:
    bounds = [floatToGoString(b) for b in buckets] + ["+Inf"]
    return list(zip(bounds, (float(c) for c in counts), strict=True))


class _Families:
    """The families of one collect() call, filled by label *name* so no value lands on the wrong label."""

    def __init__(self) -> None:
        self.families: dict[str, Metric] = {spec.name: empty_family(spec) for spec in SPECS}
        self._seen: dict[str, set[tuple[str, ...]]] = {spec.name: set() for spec in SPECS}
        self.dropped: list[tuple[str, tuple[str, ...]]] = []

    def _values(self, name: str, labels: Mapping[str, str]) -> tuple[str, ...] | None:
        spec = SPECS_BY_NAME[name]
        if set(labels) != set(spec.labels):
            self.dropped.append((name, tuple(sorted(labels))))
            return None
        values = tuple(str(labels[label]) for label in spec.labels)
        if values in self._seen[name]:  # one series per label set: the first wins
            return None
        self._seen[name].add(values)
        return values

    def add(self, name: str, labels: Mapping[str, str], value: float | Buckets) -> None:
        if isinstance(value, Buckets):
            self._add_histogram(name, labels, value)
            return
        values = self._values(name, labels)
        if values is None:
            return
        family = self.families[name]
        if isinstance(family, InfoMetricFamily):
            family.add_metric(list(values), {})
        elif isinstance(family, GaugeMetricFamily | CounterMetricFamily):
            family.add_metric(list(values), value)
        else:  # pragma: no cover - a spec/caller mismatch is a programming error
            raise TypeError(f"{name} is a {SPECS_BY_NAME[name].type}, not a gauge/counter/info")

    def _add_histogram(self, name: str, labels: Mapping[str, str], value: Buckets) -> None:
        if len(value.counts) != len(value.bounds) + 1:
            self.dropped.append((name, tuple(sorted(labels))))
            return
        values = self._values(name, labels)
        if values is None:
            return
        family = self.families[name]
        assert isinstance(family, HistogramMetricFamily)
        family.add_metric(list(values), _cumulative(value.bounds, value.counts), value.total)


def families_of(snapshot: Snapshot) -> tuple[list[Metric], list[tuple[str, tuple[str, ...]]]]:
    """The families of a snapshot, in SPECS order, and the (family, label names) series dropped
    because their label names did not match the spec."""
    out = _Families()
    for name, labels, value in samples_of(snapshot):
        out.add(name, labels, value)
    return list(out.families.values()), out.dropped


class SnapshotCollector(Collector):
    """A prometheus_client custom collector over whatever snapshot `get_snapshot` returns now."""

    def __init__(self, get_snapshot: Callable[[], Snapshot]) -> None:
        self._get_snapshot = get_snapshot
        self._warned: set[tuple[str, tuple[str, ...]]] = set()

    def describe(self) -> Iterable[Metric]:
        """The families without samples: lets a registry check names without reading a snapshot."""
        return [empty_family(spec) for spec in SPECS]

    def collect(self) -> Iterator[Metric]:
        families, dropped = families_of(self._get_snapshot())
        for item in dropped:
            if item not in self._warned:  # once per family and label-name set, not every scrape
                self._warned.add(item)
                log.warning("dropped series with unexpected labels: family %s, labels %s", *item)
        yield from families


def build_registry(get_snapshot: Callable[[], Snapshot]) -> CollectorRegistry:
    """A registry holding only our SnapshotCollector (no process/platform/GC collectors)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(get_snapshot))
    return registry
