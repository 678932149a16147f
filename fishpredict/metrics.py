"""Prometheus metrics for one server process, through prometheus-client.

Each :class:`Metrics` owns its own ``CollectorRegistry`` (never the global
one), so several services in one process do not collide. Label children are
cached: the hot path does one dict lookup and one ``inc``/``observe``.
With ``--workers N`` each worker process keeps its own metrics, and a scrape
answered by one worker shows that worker's counts (see docs/metrics.md).
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

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


class Metrics:
    """The counters and histograms a fishpredict server exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "fishpredict_requests",
            "HTTP requests answered",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "fishpredict_request_duration_seconds",
            "Time to handle a request, from parsed request to encoded response",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.predictions = Counter(
            "fishpredict_predictions", "Rows predicted", ["model"], registry=r
        )
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
        self._req_children: dict[tuple[str, str, int], Any] = {}
        self._lat_children: dict[str, Any] = {}
        self._pred_children: dict[str, Any] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        child = self._req_children.get(key)
        if child is None:
            child = self._req_children[key] = self.requests.labels(route, method, str(status))
        child.inc()
        lat = self._lat_children.get(route)
        if lat is None:
            lat = self._lat_children[route] = self.latency.labels(route)
        lat.observe(seconds)

    def predicted(self, model: str, rows: int) -> None:
        child = self._pred_children.get(model)
        if child is None:
            child = self._pred_children[model] = self.predictions.labels(model)
        child.inc(rows)

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))
