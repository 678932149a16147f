"""The latency histogram and timeline, checked against numpy on known arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fishpredict.bench.stats import (
    MAX_VALUE,
    NBINS,
    LatencyHistogram,
    Timeline,
    bin_bounds,
    bin_index,
    merge_sparse,
)

QS = [0.0, 1.0, 25.0, 50.0, 90.0, 99.0, 99.9, 100.0]


def exact(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q, method="inverted_cdf"))


def test_every_value_falls_inside_its_bin() -> None:
    rng = np.random.default_rng(1)
    v = np.concatenate(
        [
            np.arange(5000),
            rng.integers(0, MAX_VALUE, 200_000),
            2 ** np.arange(33) - 1,
            2 ** np.arange(32),
        ]
    ).clip(0, MAX_VALUE)
    idx = bin_index(v)
    low, width = bin_bounds(idx)
    assert ((low <= v) & (v < low + width)).all()
    assert idx.min() >= 0 and idx.max() == NBINS - 1
    order = np.argsort(v, kind="stable")
    assert (np.diff(idx[order]) >= 0).all()  # bins keep the order of values
    # relative width never above 1/512 once values are past the exact range
    big = low >= 1024
    assert (width[big] / low[big]).max() <= 1 / 512


def test_small_values_are_exact() -> None:
    v = np.random.default_rng(2).integers(0, 1024, 10_000)
    h = LatencyHistogram.of(v)
    for q in QS:
        assert h.percentile(q) == exact(v, q)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_percentiles_match_numpy_within_a_tenth_of_a_percent(seed: int) -> None:
    rng = np.random.default_rng(seed)
    v = rng.lognormal(mean=7.0, sigma=1.5, size=50_000).astype(np.int64).clip(0, MAX_VALUE)
    h = LatencyHistogram.of(v.astype(np.uint32))
    ours = h.percentiles(QS)
    for q, got in zip(QS, ours, strict=True):
        want = exact(v, q)
        assert abs(got - want) <= 0.001 * want + 0.5, (q, got, want)
    assert ours == sorted(ours)
    assert h.min_us == v.min() and h.max_us == v.max()
    assert h.mean_us == pytest.approx(v.mean())
    assert h.total == v.size


def test_merge_equals_one_histogram_of_everything() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.integers(50, 90_000, 3000), rng.integers(1, 5_000_000, 4000)
    merged = LatencyHistogram.of(a)
    merged.merge(LatencyHistogram.of(b))
    whole = LatencyHistogram.of(np.concatenate([a, b]))
    assert (merged.counts == whole.counts).all()
    assert (merged.total, merged.sum_us, merged.min_us, merged.max_us) == (
        whole.total,
        whole.sum_us,
        whole.min_us,
        whole.max_us,
    )


def test_sparse_round_trip() -> None:
    h = LatencyHistogram.of(np.random.default_rng(4).integers(1, 10**7, 5000))
    back = LatencyHistogram.from_sparse(h.to_sparse())
    assert (back.counts == h.counts).all()
    assert back.percentiles(QS) == h.percentiles(QS)


def test_sparse_merge_equals_dense_merge() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.integers(1, 10**6, 4000), rng.integers(500, 2000, 3000)
    merged = LatencyHistogram.from_sparse(
        merge_sparse(LatencyHistogram.of(a).to_sparse(), LatencyHistogram.of(b).to_sparse())
    )
    whole = LatencyHistogram.of(np.concatenate([a, b]))
    assert (merged.counts == whole.counts).all()
    assert (merged.total, merged.sum_us, merged.min_us, merged.max_us) == (
        whole.total,
        whole.sum_us,
        whole.min_us,
        whole.max_us,
    )
    empty = LatencyHistogram().to_sparse()
    assert merge_sparse(None, empty)["total"] == 0
    assert merge_sparse(empty, LatencyHistogram.of(a).to_sparse())["total"] == a.size


def test_empty_histogram_gives_nan() -> None:
    h = LatencyHistogram()
    assert all(math.isnan(p) for p in h.percentiles([50.0, 99.0]))
    assert math.isnan(h.mean_us)
    h.record(np.array([], dtype=np.uint32))
    assert h.total == 0


def _tick(second: int, lat: list[int], errors: dict[str, int], active: int) -> dict[str, object]:
    return {
        "second": second,
        "hist": LatencyHistogram.of(np.array(lat)).to_sparse(),
        "errors": errors,
        "active": active,
        "sent": len(lat) + sum(errors.values()),
        "late": 0,
        "checked": 0,
        "correct": 0,
        "cpu_s": 0.1,
    }


def test_timeline_merges_workers_per_second() -> None:
    t = Timeline()
    t.add_tick(_tick(0, [100, 200], {"connect": 1}, 2))
    t.add_tick(_tick(0, [300], {}, 3))
    t.add_tick(_tick(2, [400] * 10, {"status_404": 2}, 5))
    secs = t.seconds()
    assert [s.second for s in secs] == [0, 1, 2]  # the gap is filled
    assert secs[0].successes == 3 and secs[0].active_users == 5
    assert secs[1].successes == 0
    assert t.total_errors() == {"connect": 1, "status_404": 2}
    assert t.total_histogram().total == 13
    t.close(elapsed_s=2.5)
    assert secs[2].span_s == pytest.approx(0.5)
    # the partial last second (20/s) is not the peak: whole seconds only
    assert t.peak_tps() == 3.0
