"""Bulk prediction through a server, two ways, for ``fishpredict perf scaling``.

* :func:`bulk_npy` — every row for every k through ``POST /predict`` as ``.npy``,
  end to end as ``fishpredict predict`` does it
  (:func:`fishpredict.bulk.remote.predict_chunks`: encode, HTTP, predict on the
  server, decode; the k requests in parallel, one keep-alive connection each).
* :func:`sequential_fish` — the seed's way: one ``GET /fish`` per row and per
  k, one after another on one keep-alive connection. It is measured on a
  slice of the requests and extrapolated; the suite says so where it prints it.

:func:`bulk_part` runs both against real servers and prints part c of the suite.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlencode

import numpy as np
import numpy.typing as npt

from fishpredict.bulk.client import Client
from fishpredict.bulk.remote import predict_chunks
from fishpredict.errors import ServerError
from fishpredict.fish import synth
from fishpredict.fish.dataset import label_of
from fishpredict.perf.loads import SEED_KS, Say
from fishpredict.perf.machine import table
from fishpredict.perf.report import ratio
from fishpredict.perf.servers import fishpredict_server, seed_server

TARGET_BULK_S = 1.0
TARGET_BULK_RATIO = 300.0


@dataclass(frozen=True)
class BulkTiming:
    """Wall-clock seconds of each repetition, and the labels of the last one per k."""

    seconds: tuple[float, ...]
    labels: dict[int, npt.NDArray[np.str_]]

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds)

    @property
    def best_s(self) -> float:
        return min(self.seconds)


def bulk_npy(
    url: str, X: npt.NDArray[np.float64], ks: Sequence[int], repeats: int = 3
) -> BulkTiming:
    """Predict every row of ``X`` for every k through the ``.npy`` endpoint, ``repeats``
    times, each timed end to end (the first request of each repetition opens its
    connections, as a fresh ``fishpredict predict`` would)."""
    seconds = []
    labels: dict[int, npt.NDArray[np.str_]] = {}
    for _ in range(repeats):
        start = time.perf_counter()
        for _chunk, got, _secs in predict_chunks(url, [(X, None)], ks):
            labels = got
        seconds.append(time.perf_counter() - start)
    return BulkTiming(tuple(seconds), labels)


@dataclass(frozen=True)
class SequentialTiming:
    """A slice of one-request-per-row-per-k, and what it extrapolates to."""

    requests: int
    seconds: float
    #: label per (row index, k) the server answered
    answers: dict[tuple[int, int], int]

    @property
    def per_request_s(self) -> float:
        return self.seconds / self.requests

    def extrapolate(self, total_requests: int) -> float:
        """Seconds for ``total_requests`` at this slice's pace."""
        return self.per_request_s * total_requests


def sequential_fish(
    url: str, X: npt.NDArray[np.float64], ks: Sequence[int], requests: int
) -> SequentialTiming:
    """``requests`` GET /fish, row by row and k by k, on one keep-alive connection."""
    queries = []
    for i in range(requests):
        row, k = divmod(i, len(ks))
        length, weight = X[row % len(X)]
        queries.append(
            (
                row % len(X),
                ks[k],
                "/fish?"
                + urlencode(
                    {"length": repr(float(length)), "weight": repr(float(weight)), "k": ks[k]}
                ),
            )
        )
    answers: dict[tuple[int, int], int] = {}
    bodies: list[bytes] = []
    with Client(url, timeout=30.0) as client:
        client.request("GET", queries[0][2])  # connect outside the timing
        start = time.perf_counter()
        for _row, _k, path in queries:
            status, _, body = client.request("GET", path)
            if status != 200:
                raise ServerError(f"{url}{path} answered HTTP {status}: {body[:200]!r}")
            bodies.append(body)
        seconds = time.perf_counter() - start
    for (row, k, _path), body in zip(queries, bodies, strict=True):
        answers[(row, k)] = label_of(str(json.loads(body)["prediction"]))
    return SequentialTiming(requests, seconds, answers)


def disagreements(seq: SequentialTiming, bulk: dict[int, npt.NDArray[np.str_]]) -> int:
    """How many of the sequential answers differ from the bulk answers for the same row and
    k (both servers serve models trained on the same 49 fish: this should be 0)."""
    return sum(
        1
        for (row, k), label in seq.answers.items()
        if k in bulk and label_of(str(bulk[k][row])) != label
    )


class Reporter(Protocol):
    """Where a suite part prints and records: :class:`fishpredict.perf.scaling` gives one."""

    say: Say
    verdicts: dict[str, bool]
    figures: dict[str, Any]

    def target(self, key: str, ok: bool, text: str) -> None: ...

    def settle(self) -> None: ...


def bulk_part(r: Reporter, rows: int, slice_requests: int) -> None:
    """Part c of ``fishpredict perf scaling``: ``rows`` generated rows x the seed's five k
    through the ``.npy`` endpoint (socket backend, 1 and 2 workers) vs one ``GET /fish``
    per row and per k on the seed's server, measured on ``slice_requests`` and
    extrapolated; the same slice against the socket backend for scale."""
    say, ks = r.say, list(SEED_KS)
    X, _y = synth.sample(rows, seed=1)
    total = rows * len(ks)
    say(
        f"... bulk: {rows:,} rows x {len(ks)} k through POST /predict (.npy), 3 times per "
        "server; then the seed's way on a slice"
    )
    bulk: dict[str, Any] = {}
    for workers in (1, 2):
        with fishpredict_server("socket", "--workers", str(workers)) as srv:
            r.settle()
            timing = bulk_npy(srv.url, X, ks)
            if workers == 1:
                r.settle()
                fast_seq = sequential_fish(srv.url, X, ks, slice_requests)
        bulk[f"socket, {workers} worker{'s' * (workers > 1)}"] = timing
    with seed_server() as seed:
        r.settle()
        seed_seq = sequential_fish(seed.url, X, ks, slice_requests)
    first = bulk["socket, 1 worker"]
    seed_total = seed_seq.extrapolate(total)
    say(
        f"\n## c. bulk: {rows:,} generated rows x k = {','.join(map(str, ks))} "
        f"({total:,} predictions)"
    )
    rows_t: list[tuple[str, ...]] = [
        ("way", "server", "requests", "seconds", "predictions/s", "vs seed's way")
    ]
    for name, t in bulk.items():
        rows_t.append(
            (
                ".npy batch, one request per k, k in parallel",
                name,
                str(len(ks)),
                f"{t.median_s:.3f} (median of {', '.join(f'{s:.3f}' for s in t.seconds)})",
                f"{total / t.median_s:,.0f}",
                f"{ratio(seed_total, t.median_s):,.0f}x",
            )
        )
    fast_total = fast_seq.extrapolate(total)
    rows_t.append(
        (
            "GET /fish per row per k, sequential (*)",
            "socket, 1 worker",
            f"{total:,}",
            f"{fast_total:,.1f}",
            f"{total / fast_total:,.0f}",
            f"{ratio(seed_total, fast_total):,.1f}x",
        )
    )
    rows_t.append(
        (
            "GET /fish per row per k, sequential (*)",
            "seed (FastAPI, unpickle)",
            f"{total:,}",
            f"{seed_total:,.1f}",
            f"{total / seed_total:,.0f}",
            "1.0x",
        )
    )
    say(table(rows_t))
    say(
        f"(*) extrapolated: {slice_requests:,} requests measured ({seed_seq.seconds:.2f} s "
        f"on the seed's server = {seed_seq.per_request_s * 1e3:.2f} ms each; "
        f"{fast_seq.seconds:.2f} s on socket = {fast_seq.per_request_s * 1e3:.3f} ms each), "
        f"times {total:,} requests; one keep-alive connection, Python http.client"
    )
    wrong = disagreements(seed_seq, first.labels) + disagreements(fast_seq, first.labels)
    say(
        f"check: the {2 * slice_requests:,} one-by-one answers vs the bulk answers for the "
        f"same rows and k -> {wrong} disagreements"
    )
    if rows == 100_000:
        r.target(
            "bulk_seconds",
            first.median_s <= TARGET_BULK_S,
            f"{rows:,} rows x {len(ks)} k through .npy <= {TARGET_BULK_S:g} s "
            f"(socket, 1 worker, median) -> {first.median_s:.3f} s",
        )
    else:
        say(
            f"target: <= {TARGET_BULK_S:g} s applies to 100,000 rows; this run used "
            f"{rows:,} (not judged)"
        )
    got = ratio(seed_total, first.median_s)
    r.target(
        "bulk_ratio",
        got >= TARGET_BULK_RATIO,
        f".npy bulk >= {TARGET_BULK_RATIO:g}x faster than the seed's way -> "
        f"{seed_total:,.1f} s / {first.median_s:.3f} s = {got:,.0f}x",
    )
    r.verdicts["bulk_answers_agree"] = wrong == 0
    r.figures["bulk"] = {
        "rows": rows,
        "ks": ks,
        "predictions": total,
        "npy_seconds": {n: list(t.seconds) for n, t in bulk.items()},
        "slice_requests": slice_requests,
        "seed_slice_seconds": seed_seq.seconds,
        "seed_extrapolated_s": seed_total,
        "socket_slice_seconds": fast_seq.seconds,
        "socket_extrapolated_s": fast_total,
        "disagreements": wrong,
    }
