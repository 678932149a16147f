"""Prometheus metrics of a fishpredict server, through prometheus-client.

Each :class:`Metrics` owns its own ``CollectorRegistry`` (never the global
one), so several services in one process do not collide. Label children are
kept as plain numbers (see :class:`_HotPath`): the hot path takes one lock.
With ``--workers N`` each worker counts in its own memory and shares a snapshot
with its siblings through a directory (``share_dir``, see
:mod:`fishpredict.app.metrics_share`), so a scrape answered by any worker shows the
whole server's totals. Every metric is listed in docs/metrics.md.
"""

from __future__ import annotations

import os
import threading
from bisect import bisect_left
from collections.abc import Iterator
from itertools import accumulate

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from fishpredict.app.metrics_share import SharedMetrics

CONTENT_TYPE = CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


#: the ``le`` label of each latency bucket, as prometheus-client writes it
_LATENCY_LE = [*(floatToGoString(b) for b in LATENCY_BUCKETS), "+Inf"]  # type: ignore[no-untyped-call]


class _HotPath:
    """Request counts, latency histogram and prediction counts, kept as plain
    numbers under one lock and turned into metric families at scrape time.

    These are updated on every request; prometheus-client's labelled
    ``Counter.inc``/``Histogram.observe`` cost several microseconds there
    (a lock per value, a Python loop over the buckets). Same names, same
    types and same text format for the scraper.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = {}
        #: route -> per-bucket counts (not cumulative; the last is +Inf), then the sum
        self.latency: dict[str, list[float]] = {}
        self.predictions: dict[str, int] = {}

    def observe(
        self, route: str, method: str, status: int, seconds: float, model: str | None = None,
        rows: int = 1,
    ) -> None:
        """Count one answered request; ``model``: it also predicted ``rows`` rows with that
        model (counted under the same lock: a prediction request takes the lock once)."""
        i = bisect_left(LATENCY_BUCKETS, seconds)
        key = (route, method, status)
        with self.lock:
            self.requests[key] = self.requests.get(key, 0) + 1
            h = self.latency.get(route)
            if h is None:
                h = self.latency[route] = [0.0] * (len(LATENCY_BUCKETS) + 2)
            h[i] += 1
            h[-1] += seconds
            if model is not None:
                self.predictions[model] = self.predictions.get(model, 0) + rows

    def predicted(self, model: str, rows: int) -> None:
        with self.lock:
            self.predictions[model] = self.predictions.get(model, 0) + rows

    def describe(self) -> Iterator[Metric]:
        return self._families({}, {}, {})

    def collect(self) -> Iterator[Metric]:
        with self.lock:
            requests = dict(self.requests)
            latency = {route: list(h) for route, h in self.latency.items()}
            predictions = dict(self.predictions)
        return self._families(requests, latency, predictions)

    @staticmethod
    def _families(
        requests: dict[tuple[str, str, int], int],
        latency: dict[str, list[float]],
        predictions: dict[str, int],
    ) -> Iterator[Metric]:
        req = CounterMetricFamily(
            "fishpredict_requests", "HTTP requests answered", labels=["route", "method", "status"]
        )
        for (route, method, status), n in sorted(requests.items()):
            req.add_metric([route, method, str(status)], n)
        yield req
        lat = HistogramMetricFamily(
            "fishpredict_request_duration_seconds",
            "Time to handle a request, from parsed request to encoded response",
            labels=["route"],
        )
        bounds = _LATENCY_LE
        for route, h in sorted(latency.items()):
            cumulative = list(accumulate(h[:-1]))
            lat.add_metric([route], list(zip(bounds, cumulative, strict=True)), h[-1])
        yield lat
        pred = CounterMetricFamily("fishpredict_predictions", "Rows predicted", labels=["model"])
        for model, n in sorted(predictions.items()):
            pred.add_metric([model], n)
        yield pred


class Metrics:
    """The counters and histograms a fishpredict server exports.

    ``share_dir`` (``serve --workers N``: a directory private to one server's
    workers) makes this worker write snapshots there from a daemon thread and
    :meth:`render` the sum over every worker; call :meth:`close` when the
    worker exits. Without it, :meth:`render` shows this process only.
    """

    def __init__(self, share_dir: str | os.PathLike[str] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._hot = _HotPath()
        r.register(self._hot)
        self.observe = self._hot.observe
        self.predicted = self._hot.predicted
        self.model_loads = Counter(
            "fishpredict_model_loads", "Model (re)loads, by outcome", ["outcome"], registry=r
        )
        self.models_loaded = Gauge("fishpredict_models_loaded", "Models being served", registry=r)
        self.batch_size = Histogram(
            "fishpredict_batch_rows",
            "Rows per coalesced predict call (micro-batching)",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.rejected = Counter(
            "fishpredict_rejected", "Requests refused by a limit", ["reason"], registry=r
        )
        self.info = Gauge("fishpredict_worker_info", "This worker process", ["pid"], registry=r)
        self.info.labels(pid=str(os.getpid())).set(1)
        self._share: SharedMetrics | None = None
        if share_dir is not None:
            self._share = SharedMetrics(share_dir, r)
            self._share.start()

    def render(self) -> bytes:
        """The Prometheus text format of this server (every worker's, when shared)."""
        if self._share is not None:
            return self._share.render()
        return bytes(generate_latest(self.registry))

    def close(self) -> None:
        """Write this worker's last snapshot for its siblings (a no-op unless shared)."""
        if self._share is not None:
            self._share.close()
