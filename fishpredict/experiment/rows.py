"""Experiment 4: 100,000 rows x k = 1, 5, 15, 25, 49, per row vs in one batch.

The seed sent one HTTP request per row and per k, one after another: 500,000
requests. Here a slice of those requests (``slice_size`` sequential requests
per k, one keep-alive connection, rows drawn from the same 100,000) is timed
against the seed's server (models loaded once) and against fishpredict, and
the time for all 500,000 is extrapolated from it. The batch ``.npy`` endpoint
then predicts all 100,000 rows for each k, timed whole, and its answers give
the accuracy table (:func:`fishpredict.fish.sweep.format_table`).

The rows come from :func:`fishpredict.fish.synth.write`: independent draws from the
same distribution as the seed's 10,000,000-row file, so the first 100,000 rows
of a seed are a random sample of such a file.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fishpredict.bench import run_bench
from fishpredict.bulk.remote import evaluate_remote
from fishpredict.experiment.options import KS, SeedOptions
from fishpredict.fish import files as datafiles
from fishpredict.fish import synth
from fishpredict.fish.sweep import Row
from fishpredict.perf.servers import fishpredict_server, seed_server

Say = Callable[[str], None]

#: requests sent to a fresh server before its slices are timed (first-call costs)
WARM_UP_REQUESTS = 50


@dataclass(frozen=True)
class Slice:
    """``requests`` sequential one-row requests with one k against one server."""

    k: int
    requests: int
    seconds: float
    mean_ms: float
    p50_ms: float
    p99_ms: float
    errors: int

    @property
    def seconds_per_request(self) -> float:
        return self.seconds / self.requests if self.requests else math.nan


@dataclass
class PerRow:
    """The seed's way (one request per row and k) against one server, measured by slices."""

    key: str
    label: str
    slices: list[Slice] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(s.requests for s in self.slices)

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.slices)

    @property
    def errors(self) -> int:
        return sum(s.errors for s in self.slices)

    def extrapolated_s(self, rows: int) -> float:
        """Seconds for ``rows`` requests per k, at each k's measured pace."""
        return sum(rows * s.seconds_per_request for s in self.slices)


@dataclass
class RowsResult:
    """Everything experiment 4 measured."""

    rows: int
    seed: int
    slice_size: int
    per_row: list[PerRow]
    #: the batch endpoint's evaluation, one Row per k (seconds: that k's request)
    table: list[Row]

    @property
    def ks(self) -> list[int]:
        return [r.k for r in self.table]

    @property
    def predictions(self) -> int:
        """Rows x k: the seed's 500,000."""
        return self.rows * len(self.table)

    @property
    def batch_seconds(self) -> float:
        return sum(r.seconds for r in self.table)

    @property
    def bream_share(self) -> float:
        return self.table[0].bream_share if self.table else math.nan


def _slices(url: str, key: str, label: str, data: str, options: SeedOptions, say: Say) -> PerRow:
    out = PerRow(key, label)
    warm = options.slice_config(url, KS[0], data)
    run_bench(warm.with_(requests=min(WARM_UP_REQUESTS, warm.requests or 1)))  # not measured
    for k in KS:
        r = run_bench(options.slice_config(url, k, data))
        if r.interrupted:
            raise KeyboardInterrupt
        out.slices.append(
            Slice(
                k=k,
                requests=r.requests,
                seconds=r.elapsed_s,
                mean_ms=r.mean_ms,
                p50_ms=r.latency_ms.get("p50", math.nan),
                p99_ms=r.latency_ms.get("p99", math.nan),
                errors=r.error_count,
            )
        )
    say(
        f"  per row: {label}: {out.requests:,} requests in {out.seconds:.2f} s "
        f"({out.seconds / max(out.requests, 1) * 1e3:.3f} ms each), errors {out.errors:,}"
    )
    return out


def run_rows(options: SeedOptions, workdir: Path, say: Say) -> RowsResult:
    """Write the rows to ``workdir``, time the per-row slices and the batch sweep."""
    data = workdir / "rows.npz"
    say(f"  data: {options.rows:,} generated labelled fish (seed {options.seed}) -> {data.name}")
    synth.write(data, options.rows, options.seed)
    X, y = datafiles.read_all(data)
    per_row = []
    say("  start: seed server, load once")
    with seed_server(load_once=True) as seed:
        per_row.append(
            _slices(seed.url, "seed", "seed server (load once)", str(data), options, say)
        )
    say("  start: fishpredict socket")
    with fishpredict_server("socket") as srv:
        per_row.append(
            _slices(
                srv.url, "fishpredict", "fishpredict socket (GET /fish)", str(data), options, say
            )
        )
        table: list[Row] = []
        for k in KS:  # one k at a time, so each request's time is its own
            table += evaluate_remote(srv.url, [(X, y)], [k])
    rows = RowsResult(
        rows=options.rows,
        seed=options.seed,
        slice_size=options.slice_size,
        per_row=per_row,
        table=table,
    )
    say(
        f"  batch: {rows.predictions:,} predictions in {rows.batch_seconds:.2f} s "
        f"through POST /predict (.npy)"
    )
    return rows
