"""``fishpredict perf ...``: benchmark suites that print figures and ratios side by side.

Registered through the ``register_commands`` hook, as a plugin's commands are.
Each suite's module is imported only when the suite runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from fishpredict.cli.options import (
    NON_NEGATIVE_INT,
    POSITIVE_FLOAT,
    POSITIVE_INT,
    json_option,
    load_options,
    quick_option,
    write_json,
)
from fishpredict.errors import ConfigError, FishpredictError
from fishpredict.hookspecs import hookimpl


@click.group(short_help="benchmark suites: figures and ratios side by side")
def perf() -> None:
    """Benchmark suites: figures and ratios side by side, from one run."""


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(perf)


def _suite(module: str) -> Any:
    """``fishpredict.perf.<module>``, or one clear line when it is not there."""
    import importlib

    try:
        return importlib.import_module(f"fishpredict.perf.{module}")
    except ImportError as exc:
        raise ConfigError(f"fishpredict perf {module} is not available: {exc}") from None


@perf.command()
@click.option("--rows", type=POSITIVE_INT, default=10_000_000,
              help="rows for the chunked-prediction and generation parts")
@quick_option("shorter timings, at most 1M rows")
@json_option("also write the figures as JSON to FILE ('-': stdout)")
def predictor(rows: int, quick: bool, json_out: str | None) -> int:
    """Fast path vs scikit-learn, memory, generation."""
    write_json(json_out, _suite("predictor").run(big_rows=rows, quick=quick))
    return 0


@perf.command(short_help="a zoo of models: one row and 64 rows, fast path vs scikit-learn")
@quick_option("a 10-tree forest, 0.5 s per figure")
@click.option("--seconds", type=POSITIVE_FLOAT, default=None, metavar="SECONDS",
              help="time per figure (default: the suite's)")
@click.option("--only", default=None, metavar="NAMES",
              help="comma-separated: keep the models whose names start with one of these")
@click.option("--no-http", "no_http", is_flag=True,
              help="skip the HTTP part (micro-batching on vs off over the socket backend)")
@json_option("also write the figures as JSON to FILE ('-': stdout)")
def models(quick: bool, seconds: float | None, only: str | None, no_http: bool,
           json_out: str | None) -> int:
    """A zoo of models (every fast-path family, and models without one): one-row and
    64-row predict, each against estimator.predict in the same process; then
    micro-batching on vs off over HTTP."""
    extra: dict[str, Any] = {}
    if no_http:
        extra["http"] = False
    if seconds is not None:
        extra["seconds"] = seconds
    if only:
        extra["only"] = tuple(n.strip() for n in only.split(",") if n.strip())
    write_json(json_out, _suite("models").run(quick=quick, **extra))
    return 0


@perf.command(short_help="fishpredict vs MLServer: same model files, requests and load")
@quick_option("3 s per load")
@click.option("--mlserver", default=None, metavar="PATH",
              help="a virtual environment with MLServer, or the mlserver executable "
              "(default: an environment made on first use)")
@click.option("--connections", type=POSITIVE_INT, default=64, show_default=True,
              help="keep-alive connections, one request in flight each")
@click.option("--settle", type=POSITIVE_FLOAT, default=None, metavar="SECONDS",
              help="before each load wait up to SECONDS for an idle machine, and load again "
              "if disturbed")
@json_option("also write the figures as JSON to FILE ('-': stdout)")
def peers(quick: bool, mlserver: str | None, connections: int, settle: float | None,
          json_out: str | None) -> int:
    """fishpredict against MLServer on the same model files, the same V2 requests and
    the same load generator, in one run."""
    write_json(json_out, _run(lambda: _suite("peers").run(
        quick=quick, mlserver=mlserver, connections=connections, settle_s=settle or 0.0)))
    return 0


@perf.command(short_help="bulk scoring: a LocalCluster of N workers vs one process")
@quick_option("at most 1,000,000 rows")
@click.option("--rows", type=POSITIVE_INT, default=10_000_000, show_default=True,
              help="rows of the Parquet input the 100-tree forest scores")
@click.option("--workers", type=POSITIVE_INT, default=2, show_default=True,
              help="worker processes of the LocalCluster")
@click.option("--work-dir", default=None, metavar="DIR",
              help="where the input and output files go (default: a temporary directory)")
@json_option("also write the figures as JSON to FILE ('-': stdout)")
def dask(quick: bool, rows: int, workers: int, work_dir: str | None,
         json_out: str | None) -> int:
    """Score a file with a 100-tree forest on a Dask LocalCluster and in one process:
    seconds, rows/s, CPU and peak memory per process, and the answers compared."""
    write_json(json_out, _suite("dask").run(rows=rows, quick=quick, workers=workers,
                                            work_dir=work_dir))
    return 0


@perf.command(short_help="each backend against the Python ceiling, and µs per step")
@quick_option("2 s per load, 3 rounds per step")
@click.option("--duration", type=POSITIVE_FLOAT, default=None, metavar="SECONDS",
              help="seconds of load per (server, workload) (default 5; 2 with --quick)")
@click.option("--connections", type=POSITIVE_INT, default=64, show_default=True,
              help="keep-alive connections, one request in flight each")
@click.option("--backends", "backend_list", default="socket,starlette,aiohttp",
              show_default=True, help="comma-separated backends to load")
@click.option("--parts", default="ab", show_default=True,
              help="a: the loads against the ceiling; b: µs per step in one process")
@click.option("--settle", type=POSITIVE_FLOAT, default=None, metavar="SECONDS",
              help="before each load wait up to SECONDS for an idle machine, and load again "
              "(on fresh rows) if disturbed")
@json_option("also write the figures as JSON to FILE ('-': stdout)")
def hotpath(quick: bool, duration: float | None, connections: int, backend_list: str,
            parts: str, settle: float | None, json_out: str | None) -> int:
    """What a request costs against the Python ceiling, in one run.

    a. The Python ceiling (uvloop and httptools answering a fixed JSON body) and each
    backend, one at a time on loopback, loaded by fishpredict's bench engine with rows
    that never repeat: GET /fish, V2 with one fish row, V2 with one row of a scaler +
    logistic iris pipeline; requests/s and the share of the ceiling's. b. In one
    process, µs per step of the same requests: decode, validate, predict, encode,
    metrics, transport. See docs/performance.md.
    """
    if not set(parts) <= {"a", "b"} or not parts:
        raise ConfigError("--parts takes a, b or both")
    backends = _backends(backend_list) if "a" in parts else ()
    write_json(json_out, _run(lambda: _suite("hotpath").run(
        quick=quick, duration=duration, connections=connections, backends=backends,
        parts=parts, settle_s=settle or 0.0)))
    return 0


def _load(duration: float | None, connections: int, quick: bool, settle: float | None) -> Any:
    from fishpredict.perf.loads import Load

    seconds = duration or (3.0 if quick else 10.0)
    return Load(duration_s=seconds, connections=connections,
                warmup_s=min(0.5 if quick else 1.0, seconds), settle_s=settle or 0.0)


@perf.command(short_help="every backend vs the seed's server: req/s, p50, p99, errors, ratios")
@load_options("server")
@click.option("--backends", "backend_list", default="starlette,aiohttp,socket",
              show_default=True, help="comma-separated backends to compare")
def serving(duration: float | None, connections: int, quick: bool, settle: float | None,
            json_out: str | None, chart: str | None, backend_list: str) -> int:
    """Every backend vs the seed's server: req/s, p50, p99, errors, ratios.

    Start the seed's FastAPI server (the baseline), then each backend (1 and 2
    workers), one at a time, and load each with the same closed-model load from
    fishpredict's bench engine. See docs/performance.md.
    """
    from fishpredict.perf import serving as suite

    backends = _backends(backend_list)
    load = _load(duration, connections, quick, settle)
    figures = _run(lambda: suite.run(load, backends))
    _outputs(figures, "serving", json_out, chart)
    return 0


@perf.command(short_help="micro-batching, workers, bulk .npy vs one request per row, vs nginx")
@load_options("configuration")
@click.option("--backends", "backend_list", default="socket", show_default=True,
              help="backends for the batching and workers parts")
@click.option("--bulk-rows", type=POSITIVE_INT, default=100_000,
              help="generated rows of the bulk part (default 100,000)")
@click.option("--slice", "slice_requests", type=POSITIVE_INT, default=None, metavar="N",
              help="sequential GET /fish requests measured and extrapolated "
              "(default 2,000; 500 with --quick)")
@click.option("--batch-wait-us", type=NON_NEGATIVE_INT, default=0, metavar="US",
              help="part a also runs batching on with this --batch-wait-us, to compare with "
              "serve's default (default 0: no wait)")
@click.option("--flat-rows", type=POSITIVE_INT, default=None, metavar="N",
              help="part c2 runs `fishpredict predict --url` on N and 10 x N rows "
              "(default 1,000,000; 200,000, one chunk, with --quick)")
@click.option("--memory-model", type=click.Choice(["forest", "knn"]), default="forest",
              show_default=True, help="the big model part e serves: a random forest of "
              "--forest-mb MB, or a KNN on --memory-rows fish")
@click.option("--forest-mb", type=POSITIVE_INT, default=None, metavar="MB",
              help="size of part e's forest (default 200; 50 with --quick)")
@click.option("--memory-rows", type=POSITIVE_INT, default=None, metavar="N",
              help="training rows of part e's KNN (default 2,000,000; "
              "500,000 with --quick)")
@click.option("--memory-workers", type=POSITIVE_INT, default=4, show_default=True,
              metavar="N", help="workers part e compares with 1")
@click.option("--parts", default="abcde", show_default=True,
              help="which parts to run: any of a, b, c, d, e (a and b run together)")
def scaling(duration: float | None, connections: int, quick: bool, settle: float | None,
            json_out: str | None, chart: str | None, backend_list: str, bulk_rows: int,
            slice_requests: int | None, batch_wait_us: int, flat_rows: int | None,
            memory_model: str, forest_mb: int | None, memory_rows: int | None,
            memory_workers: int, parts: str) -> int:
    """Micro-batching, workers, bulk .npy vs one request per row, vs nginx.

    In one run: micro-batching on vs off and 2 workers vs 1 on the scikit-learn
    path; 100,000 rows x 5 k through the .npy endpoint vs one GET /fish per row
    the seed's way; the socket backend vs nginx answering a fixed response; the
    memory of N workers vs 1. See docs/performance.md.
    """
    from fishpredict.perf import scaling as suite

    backends = _backends(backend_list)
    load = _load(duration, connections, quick, settle)
    figures = _run(lambda: suite.run(
        load, backends, bulk_rows=bulk_rows,
        slice_requests=slice_requests or (500 if quick else 2000),
        parts=parts, wait_us=batch_wait_us,
        flat_rows=flat_rows or (200_000 if quick else 1_000_000),
        memory_rows=memory_rows or (500_000 if quick else 2_000_000),
        memory_workers=memory_workers, memory_model=memory_model,
        forest_mb=forest_mb or (50 if quick else 200)))
    _outputs(figures, "scaling", json_out, chart)
    return 0


def _run(run: Callable[[], Any]) -> Any:
    """Run a suite; a server that fails to start becomes one clear error line."""
    from fishpredict.errors import ServerError

    try:
        return run()
    except ServerError as exc:
        lines = str(exc).strip().splitlines()
        detail = lines[-1].strip() if len(lines) > 1 else ""
        raise FishpredictError(f"{lines[0]}" + (f" ({detail})" if detail else "")) from None


def _backends(text: str) -> tuple[str, ...]:
    """``--backends a,b``: each one installed and usable, checked before any server starts."""
    from fishpredict.plugins import registry

    names = tuple(b.strip() for b in text.split(",") if b.strip())
    if not names:
        raise ConfigError("--backends needs at least one backend")
    for name in names:
        registry().get_available_backend(name)
    return names


def _outputs(figures: Any, suite: str, json_out: str | None, chart: str | None) -> None:
    write_json(json_out, figures)
    if chart:
        from fishpredict.perf.chart import write_chart

        try:
            write_chart(figures, suite, chart)
        except OSError as exc:
            raise ConfigError(f"cannot write {exc.filename}: {exc.strerror}") from None
