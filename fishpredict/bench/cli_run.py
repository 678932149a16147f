"""What ``fishpredict bench URL`` does once its options are read (the command itself is
in :mod:`fishpredict.cli.bench`).

In order: every check that needs no load (options, SLO expressions, the baseline,
output paths, the live page's port), the pre-flight against the target (inside
:func:`~fishpredict.bench.runner.run_bench`), the load, then the reports: text
(stdout, or stderr when ``--json -`` takes stdout), the SLO verdicts, the baseline
comparison, JSON, CSV, chart, HTML, and the live page's final document.

Exit codes: 0 when the run succeeded and every SLO holds; 1 when no request
succeeded (and no SLO was given); 2 for a usage error (bad option, unwritable
output, refused pre-flight); :data:`~fishpredict.bench.slo.EXIT_SLO_FAILED` (99)
when an SLO failed; 130 when Ctrl-C interrupted the run.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

import click

from fishpredict import bench as bench_package  # run_bench looked up at call time (tests patch it)
from fishpredict.bench.baseline import format_comparison, load_baseline
from fishpredict.bench.chart import write_chart
from fishpredict.bench.config import BenchConfig
from fishpredict.bench.distributed import run_distributed
from fishpredict.bench.html import write_html
from fishpredict.bench.live import LiveRun
from fishpredict.bench.report import format_text, write_csv, write_json
from fishpredict.bench.slo import (
    EXIT_INTERRUPTED,
    EXIT_SLO_FAILED,
    all_hold,
    format_verdicts,
    parse_slos,
)
from fishpredict.bench.target import TargetWatch
from fishpredict.bench.web import LiveServer, parse_web
from fishpredict.errors import ConfigError


def check_writable(path: str, what: str) -> None:
    """Refuse, before any load, an output path that cannot be written."""
    if path == "-":
        return
    if os.path.isdir(path):
        raise ConfigError(f"cannot write {what} {path}: it is a directory")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ConfigError(f"cannot write {what} {path}: no such directory {parent}")
    if not os.access(parent, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise ConfigError(f"cannot write {what} {path}: permission denied")


def _echo(text: str, to_stderr: bool) -> None:
    click.echo(text, err=to_stderr)


def run_command(url: str, o: dict[str, Any], make_config: Callable[[str, dict[str, Any]], Any],
                model_pool: Callable[[Any], Any]) -> int:
    config: BenchConfig = make_config(url, o)
    slos = parse_slos(o["slos"])
    if o["slo_abort"] and not slos:
        raise ConfigError("--slo-abort needs at least one --slo")
    baseline = None
    if o["baseline"]:
        baseline = load_baseline(o["baseline"])
    elif any(s.baseline_factor is not None for s in slos):
        raise ConfigError("an SLO refers to the baseline: give --baseline FILE.json")
    for key, what in (("json_out", "--json"), ("csv_out", "--csv"), ("chart", "--chart"),
                      ("html_out", "--html")):
        if o[key]:
            check_writable(o[key], what)
    if o["chart"]:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ConfigError("--chart needs matplotlib (pip install "
                              "'fishpredict[bench]')") from None
    if o["web_linger"] is not None and not o["web"]:
        raise ConfigError("--web-linger goes with --web")
    if (o["generators"] is not None) and not o["scheduler"]:
        raise ConfigError("--generators goes with --scheduler")
    if o["scheduler"] and o["slo_abort"]:
        raise ConfigError("--slo-abort watches a local run: it does not go with --scheduler")
    json_stdout = o["json_out"] == "-"

    web = None
    if o["web"]:
        web = LiveServer(*parse_web(o["web"]))
        click.echo(f"live page: {web.url}", err=True)
    try:
        return _run(config, o, slos, baseline, web, json_stdout, model_pool)
    finally:
        if web is not None:
            web.close()


def _run(config: BenchConfig, o: dict[str, Any], slos: list[Any],
         baseline: dict[str, Any] | None, web: Any, json_stdout: bool,
         model_pool: Callable[[Any], Any]) -> int:
    run_bench = bench_package.run_bench

    watch = None
    if web is not None or o["html_out"]:
        t = config.target
        watch = TargetWatch(t.host, t.port, t.path)
    live = LiveRun(config, slos=slos, abort=o["slo_abort"], baseline=baseline,
                   baseline_source=o["baseline"] or "", web=web, watch=watch)
    if o["scheduler"]:
        result = run_distributed(config, o["scheduler"], o["generators"])
    else:
        pool = model_pool(config)
        live.prime()
        result = run_bench(config, pool, observer=live)
    doc = live.finish(result)
    _echo(format_text(result), json_stdout)
    if o["compare_wrk"] and config.engine == "native" and not o["scheduler"]:
        other = run_bench(config.with_(engine="wrk", progress=False))
        ratio = result.rps / other.rps if other.rps else float("nan")
        _echo("\n" + format_text(other), json_stdout)
        _echo(f"\nnative {result.rps:,.0f} req/s   wrk {other.rps:,.0f} req/s   "
              f"native/wrk {ratio:.3f}", json_stdout)
    if result.baseline:
        _echo("\n" + format_comparison(result.baseline), json_stdout)
    if result.slo:
        _echo("\n" + format_verdicts(result.slo), json_stdout)
    try:
        if json_stdout:
            import json

            sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
            sys.stdout.flush()
        elif o["json_out"]:
            write_json(result, o["json_out"])
        if o["csv_out"]:
            write_csv(result, o["csv_out"])
        if o["chart"]:
            write_chart(result, o["chart"])
        if o["html_out"]:
            write_html(doc, o["html_out"])
    except OSError as exc:
        raise ConfigError(f"cannot write {exc.filename}: {exc.strerror}") from None
    code = exit_code(result, slos)
    if web is not None:
        _linger(web.url, o["web_linger"])
    return code


def exit_code(result: Any, slos: list[Any]) -> int:
    if result.interrupted:
        return EXIT_INTERRUPTED
    if slos:
        return 0 if all_hold(result.slo) else EXIT_SLO_FAILED
    return 0 if result.successes else 1


def _linger(url: str, seconds: float | None) -> None:
    """Keep the live page up with the final report: ``seconds``, or until Ctrl-C."""
    how = f"for {seconds:g} s" if seconds is not None else "until Ctrl-C"
    click.echo(f"live page: {url} shows the final report {how}", err=True)
    deadline = None if seconds is None else time.monotonic() + seconds
    try:
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2 if deadline is None else min(0.2, max(0.0, deadline -
                                                                  time.monotonic())))
    except KeyboardInterrupt:
        pass
