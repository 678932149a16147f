"""Experiments 1 to 3: the same closed-model load against different servers.

1. the seed's FastAPI server, unpickling its model per request vs loading it once;
2. each fishpredict backend (``starlette``, ``aiohttp``, ``socket``) next to it;
3. one ``socket`` replica vs two behind a real nginx, plus a direct replica as
   the no-nginx reference, for the scikit-learn path and for the fast path.

Every server is a real process on a free loopback port, started by a context
manager that stops it on the way out (also on Ctrl-C or an error), and every
load is bounded by :meth:`SeedOptions.load_config`.
"""

from __future__ import annotations

import math
import statistics
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from fishpredict.bench import BenchResult, run_bench
from fishpredict.bench.result import TimelineRow
from fishpredict.errors import FishpredictError, ServerError
from fishpredict.experiment.options import SeedOptions
from fishpredict.ops.cluster import Cluster, ClusterConfig
from fishpredict.ops.nginx import find_nginx
from fishpredict.perf.servers import fishpredict_server, seed_server
from fishpredict.plugins import registry
from fishpredict.server.ports import free_port

Say = Callable[[str], None]

#: experiment 3's two prediction paths, as (key, label, fast_path)
PATHS: tuple[tuple[str, str, bool], ...] = (
    ("sklearn", "scikit-learn path (--no-fast-path)", False),
    ("fast", "fast path", True),
)
#: experiment 3's three topologies, as (key, label, replicas behind nginx; 0 = direct)
TOPOLOGIES: tuple[tuple[str, str, int], ...] = (
    ("direct", "1 replica, direct (no nginx)", 0),
    ("nginx-1", "nginx + 1 replica", 1),
    ("nginx-2", "nginx + 2 replicas", 2),
)


@dataclass
class Load:
    """One server under the common load: its result, or why it was not measured."""

    key: str
    label: str
    result: BenchResult | None = None
    skipped: str = ""

    @property
    def ok(self) -> bool:
        return self.result is not None and self.result.successes > 0

    @property
    def tps(self) -> float:
        """nGrinder's TPS over the whole run (successes / elapsed), NaN if not measured."""
        return self.result.rps if self.result is not None else math.nan

    def seconds_in_run(self) -> list[TimelineRow]:
        """The timeline's whole seconds inside the load's duration (not the drain after it)."""
        r = self.result
        if r is None:
            return []
        end = float(r.config.get("duration_s") or math.inf) + 1e-6
        return [row for row in r.timeline if row.span_s >= 0.5 and row.second + 1 <= end]

    def full_load_seconds(self) -> list[float]:
        """TPS of each whole second during which every virtual user ran."""
        r = self.result
        if r is None:
            return []
        return [row.tps for row in self.seconds_in_run() if row.active_users >= r.users]

    @property
    def full_load_tps(self) -> float:
        """Mean TPS of the whole seconds during which every virtual user ran."""
        if self.result is None:
            return math.nan
        full = self.full_load_seconds()
        return statistics.fmean(full) if full else self.result.rps

    @property
    def full_load_rse(self) -> float:
        """Relative standard error of :attr:`full_load_tps` (from the per-second spread)."""
        full = self.full_load_seconds()
        if len(full) < 2 or not statistics.fmean(full):
            return math.nan
        return statistics.stdev(full) / math.sqrt(len(full)) / statistics.fmean(full)

    def latency(self, key: str) -> float:
        """``"mean"``, ``"p50"``, ``"p99"`` ... in ms (NaN if not measured)."""
        if self.result is None:
            return math.nan
        return self.result.latency_ms.get(key, math.nan)

    @property
    def errors(self) -> int:
        return self.result.error_count if self.result is not None else 0


def measure(key: str, label: str, url: str, options: SeedOptions, say: Say) -> Load:
    """Run the common load against ``url``; Ctrl-C during the run aborts the experiment."""
    say(f"  load: {label} ({options.users:,} users, {options.load_seconds:g} s) ...")
    result = run_bench(options.load_config(url))
    if result.interrupted:
        raise KeyboardInterrupt
    say(
        f"  load: {label}: {result.rps:,.0f} TPS, mean {result.mean_ms:,.1f} ms, "
        f"p99 {result.latency_ms.get('p99', math.nan):,.1f} ms, "
        f"errors {result.error_count:,}"
    )
    return Load(key, label, result)


def _run_on(
    key: str,
    label: str,
    server: Callable[[], AbstractContextManager[str]],
    options: SeedOptions,
    say: Say,
) -> Load:
    """Start a server (the context manager yields its URL), load it, stop it."""
    say(f"  start: {label}")
    try:
        with server() as url:
            return measure(key, label, url, options, say)
    except ServerError as exc:  # fishpredict serve did not start: one line, not a traceback
        lines = [line for line in str(exc).splitlines() if line.strip()]
        raise FishpredictError(f"{label} did not start: {lines[0]} ({lines[-1].strip()})") from None


# -- the servers, each a context manager yielding its URL ------------------------------------


@contextmanager
def _seed(load_once: bool) -> Iterator[str]:
    with seed_server(load_once=load_once) as srv:
        yield srv.url


@contextmanager
def _fishpredict(backend: str, *args: str) -> Iterator[str]:
    with fishpredict_server(backend, *args) as srv:
        yield srv.url


@contextmanager
def _cluster(replicas: int, fast_path: bool) -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="fishpredict-experiment-") as tmp:
        config = ClusterConfig(
            backend="socket",
            replicas=replicas,
            port=free_port(),
            fast_path=fast_path,
            run_dir=Path(tmp) / "cluster",
            serve_args=("--log-level", "warning"),
        )
        with Cluster(config) as cluster:
            yield cluster.url


# -- the experiments -------------------------------------------------------------------------


def seed_loads(options: SeedOptions, say: Say) -> list[Load]:
    """Experiment 1: the seed's server, unpickling per request vs loading once."""
    return [
        _run_on(
            "seed-per-request",
            "seed server, unpickle per request",
            partial(_seed, False),
            options,
            say,
        ),
        _run_on("seed-load-once", "seed server, load once", partial(_seed, True), options, say),
    ]


def backend_loads(options: SeedOptions, say: Say) -> list[Load]:
    """Experiment 2: every requested fishpredict backend (defaults: fast path, 1 worker)."""
    loads = []
    for name in options.backends:
        label = f"fishpredict {name}"
        try:
            registry().get_available_backend(name)
        except FishpredictError as exc:
            say(f"  skip: {label}: {exc}")
            loads.append(Load(name, label, skipped=str(exc)))
            continue
        loads.append(_run_on(name, label, partial(_fishpredict, name), options, say))
    return loads


def nginx_missing() -> str:
    """Why experiment 3 cannot run here (no nginx), or ``""``."""
    try:
        find_nginx()
    except FishpredictError as exc:
        return str(exc)
    return ""


def cluster_loads(options: SeedOptions, say: Say) -> list[Load]:
    """Experiment 3: direct replica, nginx + 1, nginx + 2; scikit-learn and fast path."""
    missing = nginx_missing()
    loads = []
    for path_key, path_label, fast in PATHS:
        for topo_key, topo_label, replicas in TOPOLOGIES:
            key, label = f"{path_key}/{topo_key}", f"{topo_label}, {path_label}"
            if replicas and missing:
                loads.append(Load(key, label, skipped=missing))
                continue
            server = (
                partial(_cluster, replicas, fast)
                if replicas
                else partial(_fishpredict, "socket", *(() if fast else ("--no-fast-path",)))
            )
            loads.append(_run_on(key, label, server, options, say))
    return loads


def by_key(loads: list[Load]) -> dict[str, Load]:
    return {load.key: load for load in loads}
