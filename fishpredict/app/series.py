"""One metric as plain numbers: the calls prometheus-client's metrics take, without it.

:class:`Series` keeps a metric's values by labels in lists of floats, so counting
costs an addition; :mod:`fishpredict.app.metrics` renders them when ``/metrics`` is
scraped, and :mod:`fishpredict.app.metrics_share` snapshots them for sibling workers.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

from fishpredict.errors import MetricsUnavailable

Sample = tuple[str, dict[str, str], float]


@dataclass(frozen=True)
class Family:
    """One metric family: its name, type, help, and samples (plain data)."""

    name: str
    type: str
    documentation: str
    samples: tuple[Sample, ...]


def le_label(bound: float) -> str:
    """A bucket's ``le`` label as prometheus-client writes it (``floatToGoString``: the
    shortest repr for bounds below 1e6, as every bound here is)."""
    return "+Inf" if bound == float("inf") else repr(float(bound))


def unavailable() -> MetricsUnavailable:
    return MetricsUnavailable(
        "/metrics needs prometheus-client, which is not installed: pip install "
        "'fishpredict[serve]'"
    )


class Series:
    """One metric of the slow path (loads, refusals, batch sizes, gauges), by labels.

    The calls prometheus-client's metrics take (``labels(...)``, ``inc``, ``set``,
    ``observe``, ``clear``) on plain numbers; a labelled counter or histogram keeps the
    time each series started, for its ``*_created`` sample.
    """

    __slots__ = ("buckets", "doc", "kind", "labelnames", "name", "values")

    def __init__(self, name: str, doc: str, kind: str, labelnames: Sequence[str] = (),
                 buckets: Sequence[float] = ()) -> None:
        self.name = name
        self.doc = doc
        self.kind = kind
        self.labelnames = tuple(labelnames)
        self.buckets = tuple(float(b) for b in buckets)
        #: labels -> [value, created] (histograms: [bucket counts..., sum, created])
        self.values: dict[tuple[str, ...], list[float]] = {}
        if not self.labelnames:
            self.labels()

    def labels(self, *values: str, **named: str) -> _Child:
        key = values or tuple(named[n] for n in self.labelnames)
        cell = self.values.get(key)
        if cell is None:
            width = len(self.buckets) + 2 if self.kind == "histogram" else 1
            cell = self.values[key] = [0.0] * width + [time.time()]
        return _Child(self, cell)

    def inc(self, amount: float = 1.0) -> None:
        self.labels().inc(amount)

    def set(self, value: float) -> None:
        self.labels().set(value)

    def observe(self, value: float) -> None:
        self.labels().observe(value)

    def clear(self) -> None:
        self.values.clear()

    def family(self) -> Family:
        samples: list[Sample] = []
        name, kind = self.name, self.kind
        for key, cell in list(self.values.items()):
            labels = dict(zip(self.labelnames, key, strict=True))
            if kind == "gauge":
                samples.append((name, labels, cell[0]))
                continue
            if kind == "counter":
                samples.append((f"{name}_total", labels, cell[0]))
            else:
                counts = list(accumulate(cell[:-2]))
                les = [*(le_label(b) for b in self.buckets), "+Inf"]
                for le, n in zip(les, counts, strict=True):
                    samples.append((f"{name}_bucket", {**labels, "le": le}, n))
                samples.append((f"{name}_count", labels, counts[-1]))
                samples.append((f"{name}_sum", labels, cell[-2]))
            samples.append((f"{name}_created", labels, cell[-1]))
        return Family(name, kind, self.doc, tuple(samples))


class _Child:
    __slots__ = ("cell", "series")

    def __init__(self, series: Series, cell: list[float]) -> None:
        self.series = series
        self.cell = cell

    def inc(self, amount: float = 1.0) -> None:
        self.cell[0] += amount

    def set(self, value: float) -> None:
        self.cell[0] = float(value)

    def observe(self, value: float) -> None:
        cell = self.cell
        cell[bisect_left(self.series.buckets, value)] += 1
        cell[-2] += value
