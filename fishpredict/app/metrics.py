"""Prometheus metrics of a fishpredict server: plain numbers, rendered when scraped.

A request costs one lock and a few dictionary updates of plain integers
(:meth:`Metrics.observe`); nothing else happens until ``/metrics`` is scraped. Then
the counts become metric families (:class:`~fishpredict.app.metrics_share.Family`,
plain data) and prometheus-client, imported at that moment and only then, writes its
text format (:func:`exposition`). So a server runs without prometheus-client; only
its ``/metrics`` then answers that it needs it (:class:`~fishpredict.errors.MetricsUnavailable`).

With ``--workers N`` each worker counts in its own memory and shares a snapshot
with its siblings through a directory (``share_dir``, see
:mod:`fishpredict.app.metrics_share`), so a scrape answered by any worker shows the
whole server's totals. Every metric is listed in docs/metrics.md: the same names,
types, labels, and ``*_created`` series as prometheus-client's own counters and
histograms carry.
"""

from __future__ import annotations

import os
import threading
from bisect import bisect_left
from itertools import accumulate
from typing import Any, Final

from fishpredict.app.metrics_share import SharedMetrics, exposition
from fishpredict.app.series import Family, Sample, Series, le_label, unavailable

__all__ = [
    "BATCH_BUCKETS",
    "LATENCY_BUCKETS",
    "Metrics",
    "content_type",
]

LATENCY_BUCKETS: Final = (
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
BATCH_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)





_LATENCY_LE: Final = [*(le_label(b) for b in LATENCY_BUCKETS), "+Inf"]


def content_type() -> str:
    """The content type of the text format (prometheus-client's, imported now)."""
    try:
        from prometheus_client.exposition import CONTENT_TYPE_LATEST
    except ImportError:
        raise unavailable() from None
    return str(CONTENT_TYPE_LATEST)


class Metrics:
    """The counters and histograms a fishpredict server exports, as plain numbers.

    :meth:`observe` is the hot path: one lock (threaded backends call it from several
    threads) around plain integer counts. ``share_dir`` (``serve --workers N``: a
    directory private to one server's workers) makes this worker write snapshots there
    from a daemon thread and :meth:`render` the sum over every worker; call
    :meth:`close` when the worker exits. Without it, :meth:`render` shows this process
    only.
    """

    def __init__(self, share_dir: str | os.PathLike[str] | None = None) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = {}
        #: route -> per-bucket counts (not cumulative; the last is +Inf), then the sum
        self.latency: dict[str, list[Any]] = {}
        self.predictions: dict[str, int] = {}
        self.model_loads = Series("fishpredict_model_loads", "Model (re)loads, by outcome",
                                  "counter", ["outcome"])
        self.models_loaded = Series("fishpredict_models_loaded", "Models being served",
                                    "gauge")
        self.batch_size = Series("fishpredict_batch_rows",
                                 "Rows per coalesced predict call (micro-batching)",
                                 "histogram", buckets=BATCH_BUCKETS)
        self.rejected = Series("fishpredict_rejected", "Requests refused by a limit",
                               "counter", ["reason"])
        self.info = Series("fishpredict_worker_info", "This worker process", "gauge", ["pid"])
        self.info.labels(pid=str(os.getpid())).set(1)
        self._share: SharedMetrics | None = None
        if share_dir is not None:
            self._share = SharedMetrics(share_dir, self.families)
            self._share.start()

    # -- the hot path --

    def observe(
        self, route: str, method: str, status: int, seconds: float, model: str | None = None,
        rows: int = 1,
    ) -> None:
        """Count one answered request; ``model``: it also predicted ``rows`` rows with that
        model (counted under the same lock: a prediction request takes the lock once)."""
        i = bisect_left(LATENCY_BUCKETS, seconds)
        key = (route, method, status)
        lock = self._lock
        lock.acquire()  # (cheaper than ``with``, which looks up two methods)
        try:
            requests = self.requests
            requests[key] = requests.get(key, 0) + 1
            h = self.latency.get(route)
            if h is None:
                h = self.latency[route] = [0] * (len(LATENCY_BUCKETS) + 1) + [0.0]
            h[i] += 1
            h[-1] += seconds
            if model is not None:
                self.predictions[model] = self.predictions.get(model, 0) + rows
        finally:
            lock.release()

    def predicted(self, model: str, rows: int) -> None:
        with self._lock:
            self.predictions[model] = self.predictions.get(model, 0) + rows

    # -- scraping --

    def families(self) -> list[Family]:
        """Every metric of this worker now, as plain data (in the order they render)."""
        with self._lock:
            requests = dict(self.requests)
            latency = {route: list(h) for route, h in self.latency.items()}
            predictions = dict(self.predictions)
        req = tuple(
            ("fishpredict_requests_total",
             {"route": route, "method": method, "status": str(status)}, float(n))
            for (route, method, status), n in sorted(requests.items())
        )
        lat: list[Sample] = []
        for route, h in sorted(latency.items()):
            cumulative = list(accumulate(h[:-1]))
            lat += [("fishpredict_request_duration_seconds_bucket", {"route": route, "le": le},
                     float(n)) for le, n in zip(_LATENCY_LE, cumulative, strict=True)]
            lat.append(("fishpredict_request_duration_seconds_count", {"route": route},
                        float(cumulative[-1])))
            lat.append(("fishpredict_request_duration_seconds_sum", {"route": route},
                        float(h[-1])))
        pred = tuple(("fishpredict_predictions_total", {"model": model}, float(n))
                     for model, n in sorted(predictions.items()))
        out = [
            Family("fishpredict_requests", "counter", "HTTP requests answered", req),
            Family("fishpredict_request_duration_seconds", "histogram",
                   "Time to handle a request, from parsed request to encoded response",
                   tuple(lat)),
            Family("fishpredict_predictions", "counter", "Rows predicted", pred),
            *(s.family() for s in (self.model_loads, self.models_loaded, self.batch_size,
                                   self.rejected, self.info)),
        ]
        if self._share is not None:
            out.append(self._share.errors.family())
        return out

    def render(self) -> bytes:
        """The Prometheus text format of this server (every worker's, when shared);
        :class:`~fishpredict.errors.MetricsUnavailable` without prometheus-client."""
        if self._share is not None:
            return self._share.render()
        return exposition(self.families())

    def close(self) -> None:
        """Write this worker's last snapshot for its siblings (a no-op unless shared)."""
        if self._share is not None:
            self._share.close()
