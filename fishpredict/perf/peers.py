"""``fishpredict perf peers``: fishpredict against MLServer, same files, same requests.

One run, one server at a time on the same cores: MLServer 1.7.1 with its
scikit-learn runtime and adaptive batching (``max_batch_size`` 64,
``max_batch_time`` 5 ms), from a virtual environment of its own
(:mod:`fishpredict.perf.mlserver_env`), then ``fishpredict serve --backend
socket --models DIR --trust`` over the very same ``joblib`` files. Each serves
two models (:mod:`fishpredict.perf.peer_workload`): a 30-feature
StandardScaler + LogisticRegression pipeline and a 100-tree random forest.
Each model on each server first answers 32 requests that are compared with
scikit-learn's own predictions, then gets the same load from the same
generator: V2 JSON requests of one varied row each on 64 keep-alive
connections, closed model, after a warm-up. Target: fishpredict >= 6x
MLServer's requests/s on both models, zero errors, every answer right.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from fishpredict.perf.loads import Load, Measurement, Say, measure
from fishpredict.perf.machine import header, table
from fishpredict.perf.mlserver_env import mlserver_executable
from fishpredict.perf.mlserver_server import MAX_BATCH_SIZE, MAX_BATCH_TIME_S, RunningPeer
from fishpredict.perf.mlserver_server import mlserver as start_mlserver
from fishpredict.perf.peer_workload import (
    AnswerCheck,
    PeerModel,
    check_answers,
    v2_pool,
    write_models,
)
from fishpredict.perf.report import cores, cpu_legend, errors_text, load_line, notes, ratio, verdict
from fishpredict.perf.servers import fishpredict_server

TARGET_RATIO: Final = 6.0
MLSERVER: Final = "MLServer"
FISHPREDICT: Final = "fishpredict"

#: starts one server over the models' files; yields where it listens and its pid
Starter = Callable[[list[PeerModel], Path], contextlib.AbstractContextManager[RunningPeer]]


@dataclass
class Outcome:
    """One model on one server: its answer check and its load."""

    server: str
    model: str
    answers: AnswerCheck
    load: Measurement

    @property
    def ok(self) -> bool:
        return self.answers.ok and self.load.error_count == 0 and self.load.requests > 0


def per_cpu_second(m: Measurement) -> str:
    if not m.server_cores:
        return "-"
    return f"{m.rps / m.server_cores:,.0f}"


def load_for(quick: bool, connections: int, settle_s: float = 0.0) -> Load:
    """The load each (server, model) gets: 10 s after a 2 s warm-up; ``quick`` 3 s after
    1 s. ``ks`` is unused (the pool carries the requests)."""
    if quick:
        return Load(duration_s=3.0, connections=connections, warmup_s=1.0, settle_s=settle_s)
    return Load(duration_s=10.0, connections=connections, warmup_s=2.0, settle_s=settle_s)


def describe(load: Load) -> str:
    settle = (f"; before each load, up to {load.settle_s:g} s waiting for an idle machine"
              if load.settle_s > 0 else "")
    return (f"closed model, {load.connections} keep-alive connections, one request in "
            f"flight on each, {load.duration_s:g} s per model after a {load.warmup_s:g} s "
            "warm-up; V2 JSON POST /v2/models/NAME/infer, one row per request, the same "
            f"1,024 distinct rows for both servers{settle}")


def mlserver_starter(executable: Path) -> Starter:
    """A :data:`Starter` for MLServer at ``executable`` (its repository in ``work``)."""

    @contextlib.contextmanager
    def start(models: list[PeerModel], work: Path) -> Iterator[RunningPeer]:
        with start_mlserver(executable, work / "mlserver-repo",
                      [(m.name, m.path) for m in models]) as peer:
            yield peer

    return start


@contextlib.contextmanager
def fishpredict_starter(models: list[PeerModel], work: Path) -> Iterator[RunningPeer]:
    """``fishpredict serve --backend socket --models DIR --trust`` over the same files."""
    directory = {m.path.parent for m in models}
    assert len(directory) == 1, "the models' files share one directory"
    with fishpredict_server("socket", "--models", str(directory.pop()), "--trust") as srv:
        yield RunningPeer(srv.pid, "127.0.0.1", srv.port)


def measure_server(name: str, starter: Starter, models: list[PeerModel], work: Path,
                   load: Load, say: Say) -> list[Outcome]:
    """Start one server, check and load each model in turn, stop it."""
    say(f"... {name}: starting")
    out = []
    with starter(models, work) as peer:
        for m in models:
            say(f"... {name}: {m.name}: checking 32 answers, warming up, loading for "
                f"{load.duration_s:g} s")
            answers = check_answers(peer.host, peer.port, m)
            pool = v2_pool(m, f"{peer.host}:{peer.port}")
            got = measure(f"{name} {m.name}", peer.url, load, peer.pid, pool)
            out.append(Outcome(name, m.name, answers, got))
    return out


def run(*, quick: bool = False, mlserver: str | None = None, connections: int = 64,
        settle_s: float = 0.0, say: Say = print) -> dict[str, Any]:
    """Run the comparison, print it, return its figures as a JSON-able dict.

    ``mlserver``: a virtual environment with MLServer, or an ``mlserver`` executable
    (default: the environment this command makes on first use). ``settle_s``: before
    each load wait up to this long for an idle machine, and load again (up to 3 times)
    when other processes disturbed it (:func:`fishpredict.perf.loads.measure`)."""
    load = load_for(quick, connections, settle_s)
    exe = mlserver_executable(mlserver, say=say)  # a bad --mlserver fails before any output
    say(header("fishpredict perf peers"))
    say(load_line())
    say(f"# peer: {exe} (MLServer 1.7.1 + mlserver-sklearn, adaptive batching: "
        f"max_batch_size {MAX_BATCH_SIZE}, max_batch_time {MAX_BATCH_TIME_S:g} s; "
        "metrics off; otherwise MLServer's defaults)")
    say("# fishpredict: serve --backend socket --models DIR --trust (defaults: one "
        "worker, micro-batching on)")
    say(f"# load: {describe(load)}")
    say("# generator: fishpredict's bench engine (uvloop), 1 process, on the same cores "
        "as the server; errors: failed connections, timeouts and non-2xx answers")
    with tempfile.TemporaryDirectory(prefix="fishpredict-peers-") as tmp:
        work = Path(tmp)
        say("... writing the model files")
        models = write_models(work / "models")
        theirs = measure_server(MLSERVER, mlserver_starter(exe), models, work, load, say)
        ours = measure_server(FISHPREDICT, fishpredict_starter, models, work, load, say)
    return report(models, theirs, ours, load, MLSERVER, say)


def report(models: list[PeerModel], theirs: list[Outcome], ours: list[Outcome], load: Load,
           peer_name: str, say: Say) -> dict[str, Any]:
    """Print the table and the verdicts; return the figures."""
    say(f"\n## requests/s at {load.connections} connections, one row per request")
    rows: list[tuple[str, ...]] = [(
        "model", "server", "req/s", "p50 ms", "p99 ms", "errors", "answers",
        f"vs {peer_name}", "server CPU", "req/CPU-s", "gen CPU", "other CPU",
    )]
    per_model: dict[str, Any] = {}
    verdicts: dict[str, bool] = {}
    for m, t, o in zip(models, theirs, ours, strict=True):
        x = ratio(o.load.rps, t.load.rps)
        for out, shown in ((t, "1.0x"), (o, f"{x:,.1f}x")):
            rows.append((
                m.name, out.server, f"{out.load.rps:,.0f}", f"{out.load.p50_ms:.2f}",
                f"{out.load.p99_ms:.2f}", errors_text(out.load),
                f"{out.answers.correct}/{out.answers.checked}", shown,
                cores(out.load.server_cores), per_cpu_second(out.load),
                cores(out.load.generator_cores), cores(out.load.other_cores),
            ))
        verdicts[f"{m.name}_ratio"] = x >= TARGET_RATIO
        verdicts[f"{m.name}_clean"] = t.ok and o.ok
        per_model[m.name] = {
            "description": m.description,
            "ratio": x,
            peer_name: {**t.load.to_dict(), "answers": t.answers.as_dict()},
            FISHPREDICT: {**o.load.to_dict(), "answers": o.answers.as_dict()},
        }
    say(table(rows))
    say(cpu_legend())
    say("(req/CPU-s: requests answered per second of the server's CPU time; on a busy "
        "machine, where a server gets less than a core, it compares the servers' costs "
        "better than req/s does)")
    say("\n## targets")
    for m, t, o in zip(models, theirs, ours, strict=True):
        ok = verdicts[f"{m.name}_ratio"]
        say(f"target: {m.name}: fishpredict >= {TARGET_RATIO:g}x {peer_name}'s req/s -> "
            f"{o.load.rps:,.0f} / {t.load.rps:,.0f} = "
            f"{ratio(o.load.rps, t.load.rps):,.1f}x {verdict(ok)}")
        for out in (t, o):
            if out.answers.first_problem:
                say(f"wrong answer ({out.server} {m.name}): {out.answers.first_problem}")
    clean = all(verdicts[f"{m.name}_clean"] for m in models)
    say(f"target: zero errors and every checked answer right on both servers -> "
        f"{verdict(clean)}")
    say(load_line("after"))
    for line in notes([o.load for o in theirs + ours]):
        say(line)
    return {
        "load": {"duration_s": load.duration_s, "warmup_s": load.warmup_s,
                 "connections": load.connections, "requests": describe(load)},
        "peer": peer_name,
        "models": per_model,
        "targets_met": verdicts,
        "passed": all(verdicts.values()),
    }
