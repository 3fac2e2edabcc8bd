"""Every metric family, declared once as data, one generator of samples per family group, and
the two consumers of those samples:

- specs.py: `SPECS`, the contract (name, type, help, labels, stability), in exposition order.
- samples.py: `GROUPS`, one generator per family group (a target group's families, open gaps,
  last gaps, attribute changes, stored counters, jobs, sources, API requests...): the only walk
  of a snapshot.
- writer.py: `Exposition`, what /metrics serves: the text format 0.0.4 or OpenMetrics 1.0 written
  from the samples (the same bytes as prometheus_client's encoders over the adapter), keeping each
  target group's lines until it changes; gzip included.
- cache.py: `ExpositionCache`, the bodies of the current snapshot, rendered once per snapshot.
- adapter.py: `SnapshotCollector`, the samples as prometheus_client Metric families (for the
  `escaping=` negotiation /metrics leaves to prometheus_client, and as the reference of the
  byte-equality tests).
- reference.py, changelog.py: docs/metrics.md (`python -m exporter.metrics` prints it).

Neither consumer touches AWS or blocks: the daemon swaps whole, immutable snapshots in.
"""

from exporter.metrics.adapter import SnapshotCollector, build_registry, empty_family, families_of
from exporter.metrics.cache import ExpositionCache
from exporter.metrics.reference import render_markdown
from exporter.metrics.samples import GROUPS, Buckets, FamilyGroup, Sample, samples_of, short_name
from exporter.metrics.specs import (
    ACCOUNT_REGION,
    COUNTER_SOURCES,
    IDENTITY,
    LAST_TIME_SOURCES,
    SPECS,
    SPECS_BY_NAME,
    STORED_SOURCES,
    UNKNOWN_ACTOR,
    MetricSpec,
)
from exporter.metrics.writer import (
    EXPOSITION_FORMATS,
    GZIP_LEVEL,
    Exposition,
    ExpositionFormat,
    TargetGroupLines,
    escape_label_value,
    render_exposition,
)

__all__ = [
    "ACCOUNT_REGION",
    "COUNTER_SOURCES",
    "EXPOSITION_FORMATS",
    "GROUPS",
    "GZIP_LEVEL",
    "IDENTITY",
    "LAST_TIME_SOURCES",
    "SPECS",
    "SPECS_BY_NAME",
    "STORED_SOURCES",
    "UNKNOWN_ACTOR",
    "Buckets",
    "Exposition",
    "ExpositionCache",
    "ExpositionFormat",
    "FamilyGroup",
    "MetricSpec",
    "Sample",
    "SnapshotCollector",
    "TargetGroupLines",
    "build_registry",
    "empty_family",
    "escape_label_value",
    "families_of",
    "render_exposition",
    "render_markdown",
    "samples_of",
    "short_name",
]
