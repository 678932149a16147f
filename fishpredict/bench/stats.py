"""Compact latency statistics: a log-linear histogram and a per-second timeline.

Latencies are whole microseconds (``uint32``). Workers keep the raw samples of
the current second in an ``array('I')`` (cheap to append on the hot path) and
fold them once per second into a :class:`LatencyHistogram`: an HDR-style
log-linear histogram of 12,288 bins whose relative error is at most 0.1 %
(values below 1,024 us are exact). Histograms merge by adding counts, so the
parent can combine any number of processes and seconds without keeping one
float per request.

Percentiles use the nearest-rank definition (the value of the sample at rank
``ceil(q/100 * n)``), the same as HdrHistogram and ``numpy.percentile(...,
method="inverted_cdf")``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

#: bits of the sub-bucket: values below ``2**SUB_BITS`` are recorded exactly
SUB_BITS = 10
_SUB = 1 << SUB_BITS
_HALF = _SUB >> 1
#: highest recordable value (microseconds); larger values are clamped to it
MAX_VALUE = (1 << 32) - 1
#: number of bins needed to cover 0 .. MAX_VALUE
NBINS = _SUB + (32 - SUB_BITS) * _HALF

#: the percentiles every report shows
REPORT_PERCENTILES: tuple[float, ...] = (50.0, 90.0, 99.0, 99.9)

UInt32Array = npt.NDArray[np.uint32]
Int64Array = npt.NDArray[np.int64]


def bin_index(values: npt.ArrayLike) -> Int64Array:
    """The histogram bin of each value (microseconds, clamped to 0..MAX_VALUE)."""
    v = np.clip(np.asarray(values, dtype=np.int64), 0, MAX_VALUE)
    # the float64 exponent field is exact for integers < 2**53: bit length = exponent + 1
    bits = (v.astype(np.float64).view(np.int64) >> 52) - 1022
    shift = np.maximum(bits - SUB_BITS, 0)
    # for shift > 0: 2**S + (shift-1) * 2**(S-1) + (v >> shift) - 2**(S-1), simplified
    return np.where(shift > 0, (v >> shift) + shift * _HALF, v)


def bin_bounds(index: npt.ArrayLike) -> tuple[Int64Array, Int64Array]:
    """The lowest value and the width of each bin (inverse of :func:`bin_index`)."""
    idx = np.asarray(index, dtype=np.int64)
    j = np.maximum(idx - _SUB, 0)
    shift = j // _HALF + 1
    low_big = ((j % _HALF) + _HALF) << shift
    small = idx < _SUB
    low = np.where(small, idx, low_big)
    width = np.where(small, 1, np.left_shift(1, shift))
    return low.astype(np.int64), width.astype(np.int64)


@dataclass
class LatencyHistogram:
    """Counts of latencies per log-linear bin, plus exact count/sum/min/max."""

    counts: Int64Array = field(default_factory=lambda: np.zeros(NBINS, dtype=np.int64))
    total: int = 0
    sum_us: int = 0
    min_us: int = 0
    max_us: int = 0

    def record(self, values_us: npt.ArrayLike) -> None:
        """Add a batch of latencies (microseconds)."""
        v = np.asarray(values_us)
        if v.size == 0:
            return
        self.counts += np.bincount(bin_index(v), minlength=NBINS)
        lo, hi = int(v.min()), int(v.max())
        self.min_us = lo if self.total == 0 else min(self.min_us, lo)
        self.max_us = max(self.max_us, hi)
        self.total += int(v.size)
        self.sum_us += int(v.sum(dtype=np.uint64))

    def merge(self, other: LatencyHistogram) -> None:
        """Add another histogram's counts into this one."""
        if other.total == 0:
            return
        self.counts += other.counts
        self.min_us = other.min_us if self.total == 0 else min(self.min_us, other.min_us)
        self.max_us = max(self.max_us, other.max_us)
        self.total += other.total
        self.sum_us += other.sum_us

    @property
    def mean_us(self) -> float:
        return self.sum_us / self.total if self.total else math.nan

    def percentiles(self, qs: Sequence[float]) -> list[float]:
        """Nearest-rank percentiles in microseconds (NaN when empty).

        Each value is the middle of its bin, clamped to the exact min and max,
        so it is within 0.1 % of the true sample value.
        """
        if self.total == 0:
            return [math.nan for _ in qs]
        cum = np.cumsum(self.counts)
        ranks = [max(1, math.ceil(q / 100.0 * self.total)) for q in qs]
        idx = np.searchsorted(cum, np.asarray(ranks, dtype=np.int64), side="left")
        low, width = bin_bounds(idx)
        mids = low + (width - 1) / 2.0
        return [float(min(max(m, self.min_us), self.max_us)) for m in mids]

    def percentile(self, q: float) -> float:
        return self.percentiles([q])[0]

    # -- compact transport between processes ------------------------------------------
    def to_sparse(self) -> dict[str, Any]:
        """A small picklable form: only the non-empty bins."""
        nz = np.flatnonzero(self.counts)
        return {
            "idx": nz.astype(np.uint16),
            "n": self.counts[nz].astype(np.uint32),
            "total": self.total,
            "sum": self.sum_us,
            "min": self.min_us,
            "max": self.max_us,
        }

    @classmethod
    def from_sparse(cls, data: Mapping[str, Any]) -> LatencyHistogram:
        h = cls()
        h.counts[np.asarray(data["idx"], dtype=np.int64)] = np.asarray(data["n"], dtype=np.int64)
        h.total, h.sum_us = int(data["total"]), int(data["sum"])
        h.min_us, h.max_us = int(data["min"]), int(data["max"])
        return h

    @classmethod
    def of(cls, values_us: npt.ArrayLike) -> LatencyHistogram:
        h = cls()
        h.record(values_us)
        return h


def merge_sparse(a: Mapping[str, Any] | None, b: Mapping[str, Any]) -> dict[str, Any]:
    """Add two sparse histograms (see :meth:`LatencyHistogram.to_sparse`)."""
    if a is None or not a["total"]:
        return dict(b)
    if not b["total"]:
        return dict(a)
    idx = np.concatenate([np.asarray(a["idx"], np.int64), np.asarray(b["idx"], np.int64)])
    n = np.concatenate([np.asarray(a["n"], np.int64), np.asarray(b["n"], np.int64)])
    uniq, inverse = np.unique(idx, return_inverse=True)
    counts = np.bincount(inverse, weights=n, minlength=len(uniq)).astype(np.int64)
    return {
        "idx": uniq.astype(np.uint16),
        "n": counts,
        "total": a["total"] + b["total"],
        "sum": a["sum"] + b["sum"],
        "min": min(a["min"], b["min"]),
        "max": max(a["max"], b["max"]),
    }


@dataclass
class SecondStats:
    """Everything that happened in one second of the run, over all workers.

    Latencies are kept sparse (only non-empty bins), so an hour-long timeline
    stays small; :attr:`hist` expands them on demand.
    """

    second: int
    sparse: dict[str, Any] | None = None
    errors: Counter[str] = field(default_factory=Counter)
    active_users: int = 0
    sent: int = 0
    late: int = 0
    checked: int = 0
    correct: int = 0
    cpu_s: float = 0.0
    #: length of this bucket in seconds (< 1 for the last, partial second)
    span_s: float = 1.0

    @property
    def hist(self) -> LatencyHistogram:
        """This second's latencies as a (dense) histogram."""
        return LatencyHistogram.from_sparse(self.sparse) if self.sparse else LatencyHistogram()

    @property
    def successes(self) -> int:
        return int(self.sparse["total"]) if self.sparse else 0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def tps(self) -> float:
        return self.successes / self.span_s if self.span_s > 0 else 0.0


@dataclass
class ItemTotals:
    """One mix item's totals over the run (successes' and failures' latencies, errors)."""

    hist: LatencyHistogram = field(default_factory=LatencyHistogram)
    failed: LatencyHistogram = field(default_factory=LatencyHistogram)
    errors: Counter[str] = field(default_factory=Counter)
    sent: int = 0
    checked: int = 0
    correct: int = 0

    def add(self, tick: Mapping[str, Any]) -> None:
        self.hist.merge(LatencyHistogram.from_sparse(tick["hist"]))
        if tick.get("fhist"):
            self.failed.merge(LatencyHistogram.from_sparse(tick["fhist"]))
        self.errors.update(tick["errors"])
        self.sent += int(tick["sent"])
        self.checked += int(tick["checked"])
        self.correct += int(tick["correct"])


class Timeline:
    """Per-second buckets merged from every worker's once-a-second ticks."""

    def __init__(self) -> None:
        self._seconds: dict[int, SecondStats] = {}
        self._total = LatencyHistogram()
        self._failed = LatencyHistogram()
        #: a mix: each item's totals, by item index
        self.items: dict[int, ItemTotals] = {}

    def add_tick(self, tick: Mapping[str, Any]) -> SecondStats:
        """Merge one worker's tick (see ``worker`` for its fields)."""
        sec = int(tick["second"])
        s = self._seconds.get(sec)
        if s is None:
            s = self._seconds[sec] = SecondStats(second=sec)
        s.sparse = merge_sparse(s.sparse, tick["hist"])
        self._total.merge(LatencyHistogram.from_sparse(tick["hist"]))
        if tick.get("fhist"):
            self._failed.merge(LatencyHistogram.from_sparse(tick["fhist"]))
        for i, item in enumerate(tick.get("items") or ()):
            self.items.setdefault(i, ItemTotals()).add(item)
        s.errors.update(tick["errors"])
        s.active_users += int(tick["active"])
        s.sent += int(tick["sent"])
        s.late += int(tick["late"])
        s.checked += int(tick["checked"])
        s.correct += int(tick["correct"])
        s.cpu_s += float(tick["cpu_s"])
        return s

    def get(self, second: int) -> SecondStats | None:
        return self._seconds.get(second)

    def seconds(self) -> list[SecondStats]:
        """Every second from 0 to the last one seen, gaps filled with empty buckets."""
        if not self._seconds:
            return []
        last = max(self._seconds)
        return [self._seconds.get(s) or SecondStats(second=s) for s in range(last + 1)]

    def close(self, elapsed_s: float) -> None:
        """Set the span of the last bucket from the run's elapsed time."""
        secs = self.seconds()
        if secs:
            last = secs[-1]
            last.span_s = min(1.0, max(elapsed_s - last.second, 1e-3))
            self._seconds[last.second] = last

    def total_histogram(self) -> LatencyHistogram:
        """Every latency of the run in one histogram (a copy)."""
        total = LatencyHistogram()
        total.merge(self._total)
        return total

    def failed_histogram(self) -> LatencyHistogram:
        """Every failed request's latency (a copy)."""
        failed = LatencyHistogram()
        failed.merge(self._failed)
        return failed

    def total_errors(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for s in self._seconds.values():
            total.update(s.errors)
        return total

    def peak_tps(self) -> float:
        """Highest successes/s over whole seconds (the partial last one only if alone)."""
        secs = self.seconds()
        full = [s for s in secs if s.span_s >= 0.999] or secs
        return max((s.tps for s in full), default=0.0)


def sum_field(items: Iterable[SecondStats], name: str) -> int:
    """Sum an integer attribute over buckets."""
    return sum(int(getattr(s, name)) for s in items)
