"""``fishpredict bench URL``: load-test a server; ``bench selfcheck``: the engine vs wrk.

Registered through the ``register_commands`` hook, as a plugin's commands are.
Nothing of :mod:`fishpredict.bench` is imported until the command runs, so
``fishpredict bench --help`` stays fast.
"""

from __future__ import annotations

from typing import Any

import click

from fishpredict.cli.options import (
    POSITIVE_FLOAT,
    POSITIVE_INT,
    Header,
    IntList,
    chart_option,
    json_option,
)
from fishpredict.hookspecs import hookimpl

#: :data:`fishpredict.bench.config.ENDPOINTS`, typed out so that ``--help`` need not
#: import the bench package (a test keeps the two equal)
ENDPOINTS = ("fish", "batch", "get", "v2", "v1")


@click.command(short_help="load-test a server (closed or open model); `bench selfcheck`: "
               "engine vs wrk")
@click.argument("url", metavar="URL")
# load shape
@click.option("--processes", type=POSITIVE_INT, default=1, show_default=True,
              help="worker processes, each with its own event loop")
@click.option("--threads", type=POSITIVE_INT, default=16, show_default=True,
              help="virtual users per process (closed model)")
@click.option("--duration", type=POSITIVE_FLOAT, default=None, metavar="SECONDS",
              help="run time (default 10 s, or until --requests; at most 3600 s)")
@click.option("--requests", type=POSITIVE_INT, default=None, metavar="N",
              help="stop after N requests in total")
@click.option("--ramp-up", type=POSITIVE_FLOAT, default=None, metavar="SECONDS",
              help="add users stepwise: a step every SECONDS (closed model)")
@click.option("--ramp-step", type=POSITIVE_INT, default=None, metavar="USERS",
              help="users added per ramp-up step (default: a tenth of all users)")
@click.option("--ramp-initial", type=click.IntRange(min=0), default=None, metavar="USERS",
              help="users running from the start (default: one step)")
@click.option("--rate", type=POSITIVE_FLOAT, default=None, metavar="R",
              help="open model: R requests/s in total at fixed intended send times")
@click.option("--connections", type=POSITIVE_INT, default=None,
              help="open model: connections in total (default: rate/1000, 16..256)")
@click.option("--late-ms", type=POSITIVE_FLOAT, default=2.0, show_default=True,
              help="open model: a send later than this (ms) counts as late")
@click.option("--stages", default=None, metavar="D:R,...",
              help="open model with a ramping rate, k6 style: 10s:100,30s:2000,10s:0 (from 0, "
              "linearly to each target rate over each duration)")
@click.option("--timeout", type=POSITIVE_FLOAT, default=5.0, show_default=True,
              metavar="SECONDS", help="per-request timeout")
# requests
@click.option("--endpoint", type=click.Choice(ENDPOINTS), default="fish", show_default=True,
              help="fish: GET /fish; batch: POST /predict; get: GET the URL as given; v2: "
              "POST /v2/models/MODEL/infer (Open Inference Protocol); v1: POST "
              "/v1/models/MODEL:predict (KServe V1)")
@click.option("--model", default=None, metavar="NAME",
              help="the model batch, v2 and v1 requests name (default: the fish KNN of each --k)")
@click.option("--batch-rows", type=POSITIVE_INT, default=16, show_default=True,
              help="rows per batch request")
@click.option("--body", type=click.Choice(["json", "npy"]), default="json", show_default=True,
              help="batch body format")
@click.option("--k", "ks", type=IntList(), default="5", show_default=True,
              help="k, or a list cycled: 1,5,15")
@click.option("--data", default=None, metavar="PATH",
              help="rows from a file: fish (Length,Weight[,Species]; .csv/.npy/.npz), or with "
              "--model any model's columns by header name (.csv/.parquet/.npy, a glob or a "
              "directory); default: generated fish")
@click.option("--pool-size", type=POSITIVE_INT, default=1024, show_default=True,
              help="distinct pre-built requests")
@click.option("--seed", type=click.INT, default=0, show_default=True,
              help="seed for generated or sampled rows")
@click.option("--mix", "mix", multiple=True, metavar="W:K=V,...",
              help="weighted mix item (repeatable): 3:endpoint=fish,k=5 1:endpoint=batch,"
              "model=knn-k15 (keys: endpoint, k, model, data, batch-rows, body, name)")
@click.option("--no-check", "check", is_flag=True, flag_value=False, default=True,
              help="do not check answers (against what the model answers at rest)")
@click.option("--no-preflight", "preflight", is_flag=True, flag_value=False, default=True,
              help="skip the pre-flight (one request per endpoint/model/k, and the reference "
              "answers); answers are then not checked")
@click.option("--header", "headers", type=Header(), multiple=True,
              help="extra request header (repeatable)")
# engine and output
@click.option("--engine", type=click.Choice(["native", "wrk"]), default="native",
              show_default=True, help="native, or wrk for comparison")
@click.option("--compare-wrk", is_flag=True,
              help="run the native engine, then wrk, same settings; print both")
@click.option("--no-uvloop", "uvloop", is_flag=True, flag_value=False, default=True,
              help="use asyncio's own event loop")
@click.option("--allow-remote", is_flag=True,
              help="allow a non-loopback target (only a host you own)")
@click.option("--slo", "slos", multiple=True, metavar="EXPR",
              help="service-level objective (repeatable): p99<50ms, p50<=5ms, errors<0.1%, "
              "tps>=1000, tps>=0.95*baseline; any failing one exits 99")
@click.option("--slo-abort", is_flag=True,
              help="stop the run as soon as an SLO is lost for good")
@click.option("--baseline", default=None, metavar="FILE.json",
              help="compare with an earlier run's --json, change by change, against the noise")
@click.option("--web", default=None, metavar="[HOST:]PORT",
              help="serve a live page on loopback (port 0: any free port); it stays after the "
              "run with the final report until Ctrl-C")
@click.option("--web-linger", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
              help="with --web: keep the page this long after the run, then exit "
              "(default: until Ctrl-C)")
@click.option("--html", "html_out", default=None, metavar="FILE",
              help="write a self-contained HTML report (charts and tables, opens offline)")
@click.option("--scheduler", default=None, metavar="tcp://HOST:8786",
              help="run --generators generator processes on a Dask cluster ('local': a "
              "local cluster) and merge their histograms exactly")
@click.option("--generators", type=POSITIVE_INT, default=None, metavar="N",
              help="with --scheduler: generator processes (default: the cluster's workers)")
@json_option("write the result as JSON to FILE ('-': stdout, the text report then goes "
             "to stderr)")
@click.option("--csv", "csv_out", default=None, metavar="FILE",
              help="write the per-second timeline as CSV")
@chart_option("TPS, latency and users over time")
@click.option("--quiet", is_flag=True, help="no live progress")
# selfcheck
@click.option("--rounds", type=POSITIVE_INT, default=3, show_default=True,
              help="selfcheck: wrk/native pairs to run")
@click.option("--users", type=click.IntRange(min=0), default=1000, show_default=True,
              help="selfcheck: virtual users of the final many-users phase (0 skips it)")
def bench(url: str, **opts: Any) -> int:
    """Load-test a fishpredict server.

    Closed model (nGrinder style): PROCESSES x THREADS virtual users, each one
    keep-alive connection with one request in flight. Open model (--rate):
    requests at fixed intended times, latency from the intended time. URL is the
    target, e.g. http://127.0.0.1:8000 (loopback only unless --allow-remote);
    `fishpredict bench selfcheck` starts its own nginx and compares this engine
    with wrk. See docs/bench.md.
    """
    if url == "selfcheck":
        from fishpredict.bench.selfcheck import selfcheck

        report = selfcheck(seconds=opts["duration"] or 5.0,
                           connections=opts["connections"] or 64, rounds=opts["rounds"],
                           users=opts["users"], processes=opts["processes"])
        return 0 if report.speed_ok and report.users_ok else 1
    from fishpredict.bench.cli_run import run_command

    return run_command(url, opts, _config, _model_pool)


def _config(url: str, o: dict[str, Any]) -> Any:
    from fishpredict.bench import BenchConfig
    from fishpredict.bench.mix import parse_mix_item
    from fishpredict.bench.stages import parse_stages

    return BenchConfig(
        stages=parse_stages(o["stages"]) if o["stages"] else None,
        mix=tuple(parse_mix_item(m) for m in o["mix"]), preflight=o["preflight"],
        url=url, processes=o["processes"], threads=o["threads"], duration_s=o["duration"],
        requests=o["requests"], ramp_up_s=o["ramp_up"], ramp_step=o["ramp_step"],
        ramp_initial=o["ramp_initial"], rate=o["rate"], connections=o["connections"],
        endpoint=o["endpoint"], model=o["model"], batch_rows=o["batch_rows"], body=o["body"],
        ks=tuple(o["ks"]), data=o["data"], pool_size=o["pool_size"], seed=o["seed"],
        check_answers=o["check"], timeout_s=o["timeout"], late_ms=o["late_ms"],
        engine=o["engine"], allow_remote=o["allow_remote"], use_uvloop=o["uvloop"],
        progress=not o["quiet"], extra_headers=tuple(o["headers"]),
    ).validated()


def _model_pool(config: Any) -> Any:
    """With ``--model`` and ``--data``: the requests, built from that model's feature
    columns read by header name (the server's ``GET /models`` names them); else None
    (the bench engine reads fish rows itself)."""
    if config.model is None or config.data is None:
        return None
    import numpy as np

    from fishpredict.bench.payloads import build_pool
    from fishpredict.bench.source import Rows
    from fishpredict.bulk.client import Client
    from fishpredict.bulk.tables import server_model
    from fishpredict.tables import inputs as tables

    t = config.target
    with Client(f"http://{t.host_header}") as client:
        entry = server_model(client, config.model)
    features = [f["name"] for f in (entry.get("signature") or {}).get("features", [])]
    need = config.pool_size * config.batch_rows
    frames, rows = [], 0
    for chunk in tables.iter_tables(config.data, features, min(need, tables.CHUNK_ROWS)):
        frames.append(chunk.data.to_numpy())
        rows += len(chunk)
        if rows >= need:
            break
    X = np.concatenate(frames)[:need]
    return build_pool(config, Rows(X=X, y=None))


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(bench)
