"""SLO expressions, verdicts and "lost for good"; stages; mix dealing; the baseline
comparison; exact histogram merges. No server needed."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from fishpredict.bench.baseline import compare, format_comparison
from fishpredict.bench.mix import deal, parse_mix_item
from fishpredict.bench.slo import (
    EXIT_SLO_FAILED,
    evaluate,
    format_verdicts,
    lost_for_good,
    parse_slo,
)
from fishpredict.bench.stages import Schedule, parse_stages
from fishpredict.bench.stats import LatencyHistogram
from fishpredict.errors import ConfigError


def doc(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "rps": 1200.0, "requests": 1000, "error_count": 2, "accuracy": 0.75, "unsent": 0,
        "sent": 1000, "latency_ms": {"p50": 1.5, "p90": 3.0, "p99": 8.0, "p99.9": 20.0,
                                     "mean": 2.0, "max": 30.0},
        "histogram": LatencyHistogram.of(np.arange(1, 1001) * 10).to_sparse(),
        "timeline": [],
    }
    base.update(over)
    return base


@pytest.mark.parametrize(("text", "metric", "op", "value", "share"), [
    ("p99<50ms", "p99", "<", 50.0, False),
    ("p50<=5ms", "p50", "<=", 5.0, False),
    ("p99.9 < 0.2 s", "p99.9", "<", 200.0, False),
    ("p95<800us", "p95", "<", 0.8, False),
    ("errors<0.1%", "errors", "<", 0.001, True),
    ("errors<=3", "errors", "<=", 3.0, False),
    ("tps>=1000", "tps", ">=", 1000.0, False),
    ("rps>1e3", "tps", ">", 1000.0, False),
    ("accuracy>=90%", "accuracy", ">=", 0.9, True),
])
def test_parse(text: str, metric: str, op: str, value: float, share: bool) -> None:
    slo = parse_slo(text)
    assert (slo.metric, slo.op, slo.share) == (metric, op, share)
    assert slo.value == pytest.approx(value)


@pytest.mark.parametrize("text", ["p99", "p99<", "lat<5ms", "p99<5%", "tps>=5ms", "p200<1ms",
                                  "errors<lots"])
def test_bad_slo_is_one_line_config_error(text: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_slo(text)
    assert "\n" not in str(exc.value) and text in str(exc.value)


def test_verdicts() -> None:
    slos = [parse_slo(t) for t in ("p99<50ms", "p50<=1ms", "errors<0.1%", "errors<0.5%",
                                    "tps>=1000", "p95<10ms", "tps>=0.95*baseline")]
    v = evaluate(doc(), slos, baseline=doc(rps=1300.0))
    assert [x["ok"] for x in v] == [True, False, False, True, True, True, False]
    assert v[2]["actual"] == pytest.approx(0.002)
    assert v[5]["actual"] == pytest.approx(9.5, rel=0.01)  # p95 from the histogram
    assert v[6]["threshold"] == pytest.approx(0.95 * 1300)
    text = format_verdicts(v)
    assert "FAIL" in text and f"exit code {EXIT_SLO_FAILED}" in text and "4 of 7 hold" in text


def test_an_unmeasured_figure_fails() -> None:
    v = evaluate(doc(latency_ms={}, histogram={}), [parse_slo("p99<50ms")])
    assert v[0]["ok"] is False and v[0]["actual"] is None


def test_baseline_slo_without_baseline_is_refused() -> None:
    with pytest.raises(ConfigError, match="baseline"):
        evaluate(doc(), [parse_slo("tps>=0.9*baseline")])


def test_lost_for_good() -> None:
    hist = LatencyHistogram.of([1000] * 90 + [80_000] * 10)  # 10 of 100 at 80 ms
    p99 = parse_slo("p99<50ms")
    # 10 slow ones: lost unless at least 900 more fast requests may still come
    assert lost_for_good(p99, 50.0, hist, 100, 100, 0, future=800, elapsed_bound_s=10)
    assert not lost_for_good(p99, 50.0, hist, 100, 100, 0, future=2000, elapsed_bound_s=10)
    err = parse_slo("errors<1%")
    assert lost_for_good(err, 0.01, hist, 110, 100, 10, future=500, elapsed_bound_s=10)
    assert not lost_for_good(err, 0.01, hist, 110, 100, 10, future=5000, elapsed_bound_s=10)
    tps = parse_slo("tps>=1000")
    assert lost_for_good(tps, 1000.0, hist, 100, 100, 0, future=5000, elapsed_bound_s=10)
    assert not lost_for_good(tps, 1000.0, hist, 100, 100, 0, future=9900, elapsed_bound_s=10)
    assert not lost_for_good(parse_slo("p99>1ms"), 1.0, hist, 100, 100, 0, 0, 10)


def test_stages_parse_and_schedule() -> None:
    st = parse_stages("10s:100,30s:2000,10s:0")
    assert st == ((10.0, 100.0), (30.0, 2000.0), (10.0, 0.0))
    s = Schedule(st)
    assert s.duration_s == 50 and s.peak_rate == 2000
    assert s.count(10) == pytest.approx(500)  # 0 -> 100/s over 10 s
    assert s.count(40) == pytest.approx(500 + 1050 * 30)
    assert s.total == pytest.approx(500 + 31500 + 10000)
    for n in (1, 499.5, 500, 20000, s.total - 1):
        assert s.count(s.time_of(n)) == pytest.approx(n, rel=1e-9)
    assert math.isinf(s.time_of(s.total + 1))
    per = s.intended_per_second(50)
    assert sum(per) == pytest.approx(s.total) and per[0] == pytest.approx(5)
    with pytest.raises(ConfigError, match="DURATION:RATE"):
        parse_stages("10s-100")
    with pytest.raises(ConfigError, match="never send"):
        parse_stages("5s:0")


def test_mix_deal_keeps_proportions_everywhere() -> None:
    order = deal([3, 1], 400)
    assert order.count(0) == 300
    for start in range(0, 400, 20):  # every stretch of 20 is close to 3:1
        assert 14 <= order[start:start + 20].count(0) <= 16
    assert parse_mix_item("3:endpoint=fish,k=5") == (3.0, "endpoint=fish,k=5")
    with pytest.raises(ConfigError, match="known keys"):
        parse_mix_item("1:colour=red")


def test_baseline_noise_comes_from_the_per_second_spread() -> None:
    def run(tps: list[float], rps: float) -> dict[str, Any]:
        rows = [{"span_s": 1.0, "tps": t, "p50_ms": 1.0, "p90_ms": 2.0, "p99_ms": 5.0}
                for t in tps]
        return doc(rps=rps, timeline=rows)

    steady = run([900, 1000, 1010, 990, 1000, 1005, 995], 1000.0)
    noisy = run([900, 500, 1500, 700, 1300, 1000, 1100], 1000.0)
    moved = compare(run([900, 1200, 1210, 1190, 1200, 1205, 1195], 1200.0), steady, "a.json")
    tps_row = next(r for r in moved["rows"] if r["figure"] == "tps")
    assert tps_row["change"] == pytest.approx(0.2) and tps_row["beyond_noise"] is True
    same = compare(run([900, 600, 1400, 800, 1200, 1100, 1000], 1020.0), noisy, "b.json")
    tps_row = next(r for r in same["rows"] if r["figure"] == "tps")
    assert tps_row["beyond_noise"] is False
    text = format_comparison(moved)
    assert "a.json" in text and "+20.0%" in text and "yes" in text


def test_histogram_merge_is_exact() -> None:
    rng = np.random.default_rng(3)
    samples = rng.lognormal(7, 1.2, 50_000).astype(np.int64)
    parts = np.array_split(samples, 5)
    merged = LatencyHistogram()
    for p in parts:
        merged.merge(LatencyHistogram.of(p))
    whole = LatencyHistogram.of(samples)
    qs = [1, 50, 90, 99, 99.9, 99.99, 100]
    assert merged.percentiles(qs) == whole.percentiles(qs)
    assert (merged.total, merged.sum_us, merged.min_us, merged.max_us) == (
        whole.total, whole.sum_us, whole.min_us, whole.max_us)
