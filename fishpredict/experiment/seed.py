"""``fishpredict experiment seed``: run the seed's four experiments, write the report.

The experiments run one after another, so no two loads share the machine;
each starts its servers and stops them before the next begins (context
managers, so Ctrl-C, SIGTERM or an error stops them too). Progress lines go
to stderr through ``say``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from fishpredict.errors import ConfigError
from fishpredict.experiment.costs import measure_costs
from fishpredict.experiment.loads import backend_loads, cluster_loads, seed_loads
from fishpredict.experiment.options import SeedOptions
from fishpredict.experiment.report import SeedRun, draw_charts, render
from fishpredict.experiment.rows import run_rows

Say = Callable[[str], None]


def stderr_say(start: float) -> Say:
    """Progress lines on stderr, each with the seconds since ``start``."""

    def say(line: str) -> None:
        print(f"[{time.monotonic() - start:6.1f}s] {line}", file=sys.stderr, flush=True)

    return say


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises KeyboardInterrupt, so every ``with`` unwinds."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def run_experiments(options: SeedOptions, say: Say) -> SeedRun:
    """Run the four experiments and return what they measured."""
    start = time.monotonic()
    started = datetime.now(UTC)
    say("costs: timing unpickle, scikit-learn predict and the fast path in this process")
    load_average = os.getloadavg()[0]
    run = SeedRun(
        options=options,
        started=started,
        load_average=load_average,
        costs=measure_costs(0.6 if options.quick else 2.0),
    )
    say("experiment 1/4: the seed's server, unpickle per request vs load once")
    run.seed = seed_loads(options, say)
    say("experiment 2/4: fishpredict backends under the same load")
    run.backends = backend_loads(options, say)
    say("experiment 3/4: one vs two replicas behind nginx")
    run.cluster = cluster_loads(options, say)
    say(f"experiment 4/4: {options.rows:,} rows, one request per row vs the batch endpoint")
    with tempfile.TemporaryDirectory(prefix="fishpredict-experiment-") as tmp:
        run.rows = run_rows(options, Path(tmp), say)
    run.seconds = time.monotonic() - start
    return run


def write_report(run: SeedRun) -> list[Path]:
    """Draw the charts and write the Markdown; every path written, the report first."""
    out = run.options.out
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        charts = draw_charts(run)
        tmp = out.with_name(f".{out.name}.part")
        tmp.write_text(render(run), "utf-8")
        tmp.replace(out)
    except OSError as exc:
        raise ConfigError(f"cannot write the report: {exc.filename}: {exc.strerror}") from None
    return [out, *charts]


def run_seed(options: SeedOptions, say: Say | None = None) -> list[Path]:
    """Validate ``options``, run everything, write the report; the paths written."""
    options = options.validated()
    say = say or stderr_say(time.monotonic())
    with sigterm_as_interrupt():
        run = run_experiments(options, say)
    paths = write_report(run)
    say(
        f"report: {paths[0]} ({len(paths) - 1} charts in {options.chart_dir}/), "
        f"run took {run.seconds:.0f} s"
    )
    return paths
