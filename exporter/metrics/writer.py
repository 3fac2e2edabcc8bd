"""The /metrics body of a snapshot, written from samples.py's generators without Metric objects.

The bytes are those prometheus_client's generate_latest (text 0.0.4) and its OpenMetrics
generate_latest write for the adapter's SnapshotCollector (tests/test_metrics.py compares them):
families in SPECS order, series in the order their group yields them, labels sorted by name, the
first series of a label set wins, and a series whose label names are not its spec's is dropped.

What keeps a new snapshot cheap: each target group's lines are kept until its view or its open
flows change (`TargetGroupLines`, as kube-state-metrics keeps an object's lines), and a group
with `kept_while` keeps its lines while that input stays equal; the families are joined from
what is kept and written out a run of complete families at a time (the gzip compresses them in a
second thread meanwhile).
"""

from __future__ import annotations

import collections
import functools
import itertools
import math
import operator
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from queue import SimpleQueue
from typing import Literal

from prometheus_client.utils import floatToGoString
from zlib_ng import zlib_ng

from exporter.daemon.snapshot import Snapshot, TargetGroupView
from exporter.engine.flows import FLOW_KINDS
from exporter.metrics.samples import (
    GROUPS,
    TARGET_GROUP_FAMILIES,
    TARGET_GROUPS,
    Buckets,
    FamilyGroup,
    OpenGaps,
    open_gaps_by_key,
    target_group_samples,
)
from exporter.metrics.specs import SPECS, MetricSpec, MetricType

ExpositionFormat = Literal["text", "openmetrics"]
EXPOSITION_FORMATS: tuple[ExpositionFormat, ...] = ("text", "openmetrics")

#: gzip level of /metrics bodies: level 1 compresses our expositions about 6x faster than the
#: default 9, for bodies about 30% larger. `Exposition.gzip` deflates with zlib-ng (as
#: sources/envelopes.py inflates with it): about 3x faster than CPython's zlib at level 1 on our
#: bodies, whose output is about 30% larger (docs/benchmarks.md, figure 4).
GZIP_LEVEL = 1

#: The TYPE the text format 0.0.4 declares (it has no info type: prometheus_client writes a gauge).
_TEXT_TYPES: Mapping[MetricType, str] = {
    "gauge": "gauge",
    "counter": "counter",
    "histogram": "histogram",
    "info": "gauge",
}

Dropped = tuple[str, tuple[str, ...]]  # a family and the label names of a series it dropped


def escape_label_value(value: str) -> str:
    """A label value as both formats write it: backslash, double quote and newline escaped."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value


def _header(spec: MetricSpec, fmt: ExpositionFormat) -> str:
    help_ = spec.help.replace("\\", "\\\\").replace("\n", "\\n")
    if fmt == "openmetrics":  # OpenMetrics names the family without _total / _info and escapes '"' too
        help_ = help_.replace('"', '\\"')
        unit = f"# UNIT {spec.base_name} {spec.unit}\n" if spec.unit else ""  # the text format has none
        return f"# HELP {spec.base_name} {help_}\n# TYPE {spec.base_name} {spec.type}\n{unit}"
    return f"# HELP {spec.name} {help_}\n# TYPE {spec.name} {_TEXT_TYPES[spec.type]}\n"


_HEADERS: Mapping[ExpositionFormat, tuple[bytes, ...]] = {
    fmt: tuple(_header(spec, fmt).encode() for spec in SPECS) for fmt in EXPOSITION_FORMATS
}
_OPENMETRICS_EOF = b"# EOF\n"

#: Per family: its label names, as a set and sorted (the order lines write them in).
_LABELS: Mapping[str, tuple[frozenset[str], tuple[str, ...]]] = {
    spec.name: (frozenset(spec.labels), tuple(sorted(spec.labels))) for spec in SPECS
}


@functools.cache
def _le_pairs(bounds: tuple[float, ...]) -> tuple[str, ...]:
    """`le="..."` of each bucket, +Inf last, as prometheus_client writes bounds (floatToGoString)."""
    return (*(f'le="{floatToGoString(bound)}"' for bound in bounds), 'le="+Inf"')


class _Numbers(dict[float, str]):
    """Sample values as written, newline included: floatToGoString, memoized for one render.

    0 is a key and -0.0 is equal to it, so -0.0 is not looked up here (`_Render.value`).
    """

    def __init__(self) -> None:
        super().__init__({0: "0.0\n", 1: "1.0\n"})

    def __missing__(self, value: float) -> str:
        text = floatToGoString(value) + "\n"
        if value == value:  # a NaN never finds itself again: do not keep it
            self[value] = text
        return text


class _Family:
    """The sample lines of one family in one render."""

    __slots__ = ("encoded", "lines", "names", "seen", "sorted_names")

    def __init__(self, name: str) -> None:
        self.encoded = b""  # lines already encoded (the target groups' kept lines), before `lines`
        self.lines: list[str] = []
        self.seen: set[str] = set()  # the label strings of its series
        self.names, self.sorted_names = _LABELS[name]


class _Render:
    """One render: samples written as lines, family by family (those in `families`)."""

    def __init__(self, families: Sequence[str] = tuple(_LABELS), numbers: _Numbers | None = None) -> None:
        self.families: dict[str, _Family] = {name: _Family(name) for name in families}
        self.dropped: list[Dropped] = []
        self.numbers = _Numbers() if numbers is None else numbers
        self.writable: frozenset[str] = frozenset()  # the families the running group declared

    def family(self, name: str) -> _Family:
        """A family to add to: only one the running group declared (see `_steps`)."""
        if name not in self.writable:
            raise RuntimeError(f"{name} is written by a family group that does not declare it")
        return self.families[name]

    def value(self, value: float) -> str:
        if value == 0 and math.copysign(1.0, value) < 0:
            return "-0.0\n"
        return self.numbers[value]

    def add(self, name: str, labels: Mapping[str, str], value: float | Buckets) -> None:
        """A sample's line(s), unless its label names are not its spec's (dropped) or a series with
        the same labels is already there (the first wins)."""
        family = self.family(name)
        if isinstance(value, Buckets) and len(value.counts) != len(value.bounds) + 1:
            self.dropped.append((name, tuple(sorted(labels))))
            return
        if labels.keys() != family.names:
            self.dropped.append((name, tuple(sorted(labels))))
            return
        pairs = [f'{label}="{escape_label_value(str(labels[label]))}"' for label in family.sorted_names]
        text = ",".join(pairs)
        if text in family.seen:
            return
        family.seen.add(text)
        if isinstance(value, Buckets):
            self._histogram(name, family, pairs, text, value)
        elif text:
            family.lines.append(f"{name}{{{text}}} {self.value(value)}")
        else:
            family.lines.append(f"{name} {self.value(value)}")

    def _histogram(self, name: str, family: _Family, pairs: list[str], text: str, value: Buckets) -> None:
        """Per histogram its bucket lines (`le` among the labels, sorted), then _count and _sum."""
        split = sum(1 for label in family.sorted_names if label < "le")
        before, after = pairs[:split], pairs[split:]
        for le, count in zip(_le_pairs(tuple(value.bounds)), value.counts, strict=True):
            bucket = ",".join([*before, le, *after])
            family.lines.append(f"{name}_bucket{{{bucket}}} {self.value(count)}")
        braces = f"{{{text}}}" if text else ""
        family.lines.append(f"{name}_count{braces} {self.value(value.counts[-1])}")
        family.lines.append(f"{name}_sum{braces} {self.value(value.total)}")

    def group(self, group: FamilyGroup, snapshot: Snapshot, open_gaps: OpenGaps) -> None:
        for name, labels, value in group.samples(snapshot, open_gaps):
            self.add(name, labels, value)

    def target_groups(self, snapshot: Snapshot, open_gaps: OpenGaps, kept: TargetGroupLines) -> None:
        """The target groups' families: joined from the lines `kept` holds, rendering only the
        target groups that changed; series by series when `kept` cannot serve the snapshot.

        The families written here have no series yet, and only sgchurn_rule_gap_open gets more
        later (open gaps of target groups no longer listed): its label strings go to `seen`.
        """
        target_groups = snapshot.target_groups
        if not kept.take(target_groups, open_gaps, self.numbers):
            for tg in target_groups:
                for name, labels, value in target_group_samples(tg, open_gaps):
                    self.add(name, labels, value)
            return
        for name, column in zip(TARGET_GROUP_FAMILIES, kept.columns, strict=True):
            self.family(name).encoded = b"".join(column)
        self.family("sgchurn_rule_gap_open").seen = set(kept.gap_open_labels)  # a copy: open gaps add


@dataclass(frozen=True, slots=True)
class _TargetGroupLines:
    """One target group's sample lines, per family of TARGET_GROUP_FAMILIES, and what they were made from."""

    view: TargetGroupView
    opened: tuple[bool, ...]  # a gap open, per flow of FLOW_KINDS
    identity: tuple[tuple[str, object], ...]  # its identity labels, to check they are distinct
    lines: tuple[bytes, ...]  # encoded: they are written as they are
    gap_open_labels: tuple[str, ...]  # label strings of its sgchurn_rule_gap_open series


_NONE_OPEN: tuple[bool, ...] = (False,) * len(FLOW_KINDS)


class TargetGroupLines:
    """Each target group's sample lines as last rendered, kept until its view or its open flows
    change, as kube-state-metrics keeps an object's lines until the object changes: a new snapshot
    renders only the target groups that changed, and the families are joined from the kept lines.
    It also keeps the lines of the groups with `kept_while` (`steps`).

    `columns` holds, per family, every target group's lines in the order of the last snapshot
    served, so a snapshot with the same target groups in the same order (the daemon's publishes:
    the unchanged views are the same objects) costs a look at the views that are other objects
    and at those with a gap open now or before, and one bytes join per family.

    Used by one render at a time (ExpositionCache keeps one per variant, under its render lock).
    Only snapshots whose target groups have distinct ARNs and identities and no dropped series are
    rendered this way (the others series by series).
    """

    def __init__(self) -> None:
        self._entries: dict[str, _TargetGroupLines] = {}  # by ARN
        self._views: list[TargetGroupView] = []  # of the last snapshot served, in order (else [])
        self._positions: dict[str, int] = {}  # ARN -> its place in `_views`
        self._opened: set[str] = set()  # ARNs of `_views` with a gap open on some flow
        #: per family of TARGET_GROUP_FAMILIES, the lines of `_views`, in order
        self.columns: tuple[list[bytes], ...] = ()
        self.gap_open_labels: set[str] = set()  # the label strings of their sgchurn_rule_gap_open series
        self.rendered = 0  # target groups rendered (not reused) by the last render
        #: group name -> (its input, its families' lines, what it dropped) of the last render
        self.steps: dict[str, tuple[object, dict[str, list[str]], list[Dropped]]] = {}

    def take(self, target_groups: Sequence[TargetGroupView], open_gaps: OpenGaps, numbers: _Numbers) -> bool:
        """Whether `columns` now hold the lines of `target_groups`, rendering only the changed
        ones; False when the snapshot is not one this cache serves."""
        self.rendered = 0
        open_arns = {arn for arn, _ in open_gaps}
        same_places = bool(self._views) and len(self._views) == len(target_groups)
        if same_places and self._update(target_groups, open_gaps, open_arns, numbers):
            return True
        return self._rebuild(target_groups, open_gaps, open_arns, numbers)

    def _update(
        self,
        target_groups: Sequence[TargetGroupView],
        open_gaps: OpenGaps,
        open_arns: set[str],
        numbers: _Numbers,
    ) -> bool:
        """The same target groups in the same places: look at the views that are other objects and
        at those with a gap open now or at the last render. False: a rebuild is needed."""
        views = self._views
        changed = set(itertools.compress(range(len(views)), map(operator.is_not, target_groups, views)))
        changed.update(self._positions[arn] for arn in open_arns | self._opened if arn in self._positions)
        if any(target_groups[i].arn != views[i].arn for i in changed):
            return False  # moved, gone or new: a rebuild
        for i in sorted(changed):
            tg = target_groups[i]
            old = self._entries[tg.arn]
            opened = _opened(tg, open_gaps, open_arns)
            if old.opened == opened and (old.view is tg or old.view == tg):
                views[i] = tg
                continue
            entry = _render_target_group(tg, open_gaps, opened, numbers)
            if entry is None or entry.identity != old.identity:
                return False  # a rebuild renders it again, or checks the identities are distinct
            self.rendered += 1
            self._entries[tg.arn], views[i] = entry, tg
            for column, lines in zip(self.columns, entry.lines, strict=True):
                column[i] = lines
            self.gap_open_labels.difference_update(old.gap_open_labels)
            self.gap_open_labels.update(entry.gap_open_labels)
            if opened == _NONE_OPEN:
                self._opened.discard(tg.arn)
            else:
                self._opened.add(tg.arn)
        return True

    def _rebuild(
        self,
        target_groups: Sequence[TargetGroupView],
        open_gaps: OpenGaps,
        open_arns: set[str],
        numbers: _Numbers,
    ) -> bool:
        self._views = []
        entries: dict[str, _TargetGroupLines] = {}
        for tg in target_groups:
            opened = _opened(tg, open_gaps, open_arns)
            entry = self._entries.get(tg.arn)
            if entry is None or entry.opened != opened or not (entry.view is tg or entry.view == tg):
                entry = _render_target_group(tg, open_gaps, opened, numbers)
                if entry is None:
                    return False
                self.rendered += 1
            entries[tg.arn] = entry
        self._entries = entries  # target groups no longer listed go
        if len(entries) != len(target_groups):  # two with one ARN
            return False
        try:
            if len({entry.identity for entry in entries.values()}) != len(entries):
                return False  # two with one identity: series by series keeps the first series
        except TypeError:  # an unhashable label value
            return False
        ordered = list(entries.values())  # in the order of target_groups (distinct ARNs)
        self.columns = tuple([entry.lines[i] for entry in ordered] for i in range(len(TARGET_GROUP_FAMILIES)))
        self.gap_open_labels = set(itertools.chain.from_iterable(entry.gap_open_labels for entry in ordered))
        self._opened = {arn for arn, entry in entries.items() if entry.opened != _NONE_OPEN}
        self._positions = {arn: i for i, arn in enumerate(entries)}
        self._views = list(target_groups)
        return True


def _opened(tg: TargetGroupView, open_gaps: OpenGaps, open_arns: set[str]) -> tuple[bool, ...]:
    """Whether a gap is open, per flow of FLOW_KINDS."""
    if tg.arn not in open_arns:
        return _NONE_OPEN
    return tuple((tg.arn, flow) in open_gaps for flow in FLOW_KINDS)


def _render_target_group(
    tg: TargetGroupView, open_gaps: OpenGaps, opened: tuple[bool, ...], numbers: _Numbers
) -> _TargetGroupLines | None:
    """One target group's lines (None when it dropped a series)."""
    out = _Render(TARGET_GROUP_FAMILIES, numbers)
    out.writable = TARGET_GROUPS_WRITABLE
    for name, labels, value in target_group_samples(tg, open_gaps):
        out.add(name, labels, value)
    if out.dropped:
        return None
    return _TargetGroupLines(
        view=tg,
        opened=opened,
        identity=tuple(tg.identity.items()),
        lines=tuple("".join(out.families[name].lines).encode() for name in TARGET_GROUP_FAMILIES),
        gap_open_labels=tuple(out.families["sgchurn_rule_gap_open"].seen),
    )


TARGET_GROUPS_WRITABLE = frozenset(TARGET_GROUP_FAMILIES)


def _kept(
    out: _Render, kept: TargetGroupLines, group: FamilyGroup, key: object, run: Callable[[], object]
) -> Callable[[], object]:
    """`run`, or the lines it wrote for the last render while the group's input stays equal."""

    def step() -> None:
        hit = kept.steps.get(group.name)
        if hit is not None and hit[0] == key:
            for family, lines in hit[1].items():
                out.family(family).lines.extend(lines)
            out.dropped.extend(hit[2])
            return
        dropped = len(out.dropped)
        run()
        made = {family: list(out.family(family).lines) for family in group.families}
        kept.steps[group.name] = (key, made, out.dropped[dropped:])

    return step


def _steps(
    snapshot: Snapshot, out: _Render, kept: TargetGroupLines
) -> list[tuple[frozenset[str], Callable[[], object]]]:
    """The family groups as steps on `out`, in order, each with the families it adds to (enforced
    by `_Render.family`), so a family is written out as soon as no later step adds to it."""
    open_gaps = open_gaps_by_key(snapshot)
    steps: list[tuple[frozenset[str], Callable[[], object]]] = []
    for group in GROUPS:
        run: Callable[[], object]
        if group is TARGET_GROUPS:
            run = functools.partial(out.target_groups, snapshot, open_gaps, kept)
        else:
            run = functools.partial(out.group, group, snapshot, open_gaps)
            if group.kept_while is not None:
                run = _kept(out, kept, group, group.kept_while(snapshot), run)
        steps.append((frozenset(group.families), run))
    return steps


class Exposition:
    """The exposition of one snapshot, rendered when written.

    The sample lines of the text format 0.0.4 and of OpenMetrics 1.0 are the same for our
    families; only the HELP/TYPE lines and OpenMetrics' final `# EOF` differ. Each write renders
    the snapshot again (reusing the lines `kept` holds where their input is unchanged); `dropped`
    lists the series the last one dropped.
    """

    def __init__(self, snapshot: Snapshot, kept: TargetGroupLines | None = None) -> None:
        self.snapshot = snapshot
        self.kept = kept  # the lines of an earlier render, reused where unchanged
        self.dropped: tuple[Dropped, ...] = ()

    def write(self, fmt: ExpositionFormat, sink: Callable[[list[bytes]], object]) -> None:
        """Render, passing `sink` the exposition in order, a run of complete families at a time."""
        out = _Render()
        steps = _steps(self.snapshot, out, TargetGroupLines() if self.kept is None else self.kept)
        pending = collections.Counter(name for families, _ in steps for name in families)
        headers, written = _HEADERS[fmt], 0
        for families, run in steps:
            out.writable = families
            run()
            pending.subtract(families)
            pieces: list[bytes] = []
            while written < len(SPECS) and pending[SPECS[written].name] <= 0:
                family = out.families[SPECS[written].name]
                pieces.append(headers[written])
                if family.encoded:
                    pieces.append(family.encoded)
                if family.lines:
                    pieces.append("".join(family.lines).encode())
                family.lines, family.seen, family.encoded = [], set(), b""  # let the text go
                written += 1
            if pieces:
                sink(pieces)
        out.writable = frozenset()
        sink([*headers[written:], *([_OPENMETRICS_EOF] if fmt == "openmetrics" else [])])
        self.dropped = tuple(out.dropped)

    def render(self, fmt: ExpositionFormat = "text") -> bytes:
        pieces: list[bytes] = []
        self.write(fmt, pieces.extend)
        return b"".join(pieces)

    def gzip(self, fmt: ExpositionFormat = "text", level: int = GZIP_LEVEL) -> bytes:
        """The exposition as one gzip member. A second thread compresses the families already
        written while the next are rendered (zlib-ng releases the GIL while it compresses)."""
        compressor = zlib_ng.compressobj(level, zlib_ng.DEFLATED, 31)  # wbits 31: gzip header and trailer
        queue: SimpleQueue[list[bytes] | None] = SimpleQueue()
        parts: list[bytes] = []
        failed: list[BaseException] = []

        def compress() -> None:
            try:
                while (pieces := queue.get()) is not None:
                    parts.extend(compressor.compress(piece) for piece in pieces)
                parts.append(compressor.flush())
            except BaseException as exc:  # pragma: no cover - MemoryError and the like
                failed.append(exc)
                while queue.get() is not None:  # drain, so the writer never blocks
                    pass

        worker = threading.Thread(target=compress, name="metrics-gzip", daemon=True)
        worker.start()
        try:
            self.write(fmt, queue.put)
        finally:
            queue.put(None)
            worker.join()
        if failed:  # pragma: no cover
            raise failed[0]
        return b"".join(parts)


def render_exposition(snapshot: Snapshot, fmt: ExpositionFormat = "text") -> bytes:
    """The /metrics body of a snapshot: what generate_latest writes for SnapshotCollector."""
    return Exposition(snapshot).render(fmt)
