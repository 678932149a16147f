"""Part e of ``fishpredict perf scaling``: ``--workers N`` hold the model once.

``serve`` loads the models in the supervisor, then forks the workers, so their
model pages are shared copy-on-write (``gc.freeze`` keeps the collector from
writing to them). This part proves it with the kernel's own accounting, read
through psutil (``/proc/PID/smaps_rollup``):

* **RSS** counts every page a process maps, shared or not: N workers' RSS adds
  the model N times, which is what ``top`` suggests;
* **PSS** divides each shared page among the processes that map it: the PSS of
  every process of the server adds up to the memory the server really holds;
* **USS** is what a process alone holds (what its exit would free).

A big model (by default a random forest of about 200 MB, 100 fully grown trees on
generated rows; or, with ``model="knn"``, a KNN fitted on millions of generated
fish) is served by 1 worker and by N; each server first answers one-row
predictions on fresh connections (spread over the workers) and a batch, so the
figures are those of a server at work. The same is measured for
the embedded 49-fish models. The model's own memory is the difference of the
two 1-worker servers' PSS. What an extra worker copies of the model is what it
adds with the big model minus what it adds with the embedded ones (its own
heap, event loop and the interpreter pages it writes, whatever the model).
Target: at most :data:`TARGET_COPIED_SHARE` of the model's memory; a worker
holding its own copy would copy 100 %.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from fishpredict.bulk.client import Client
from fishpredict.errors import ConfigError
from fishpredict.fish import synth
from fishpredict.fish import training as artifacts
from fishpredict.fish.dataset import FishData
from fishpredict.models.manifest import add_model
from fishpredict.perf.bulk import Reporter
from fishpredict.perf.machine import table
from fishpredict.perf.servers import fishpredict_server

#: how much of the model an added worker may copy (a worker with its own copy: 100 %)
TARGET_COPIED_SHARE = 0.10
#: fresh connections that each ask one ``GET /fish`` (the kernel spreads them)
TOUCH_CONNECTIONS = 64
MB = 1024 * 1024


@dataclass(frozen=True)
class ProcessMemory:
    """One process of a server: its role and its memory, in bytes."""

    pid: int
    role: str
    rss: int
    pss: int
    uss: int


def server_memory(pid: int) -> list[ProcessMemory]:
    """The memory of a server's process and each of its workers (supervisor first)."""
    import psutil

    try:
        top = psutil.Process(pid)
        procs = [(top, "supervisor")] + [(kid, "worker") for kid in top.children()]
        out = []
        for proc, role in procs:
            info = proc.memory_full_info()
            out.append(ProcessMemory(proc.pid, role, info.rss, info.pss, info.uss))
    except psutil.Error as exc:
        raise ConfigError(f"cannot read the memory of server {pid}: {exc}") from None
    if len(out) == 1:
        out[0] = ProcessMemory(pid, "server (1 process)", out[0].rss, out[0].pss, out[0].uss)
    return out


def touch(url: str, rows: int = 10_000, model: str | None = None,
          n_features: int = 2) -> None:
    """Make a server work: one one-row prediction on each of :data:`TOUCH_CONNECTIONS`
    fresh connections (``GET /fish`` for the fish models, else ``POST /predict?model=``),
    and one ``.npy`` batch of ``rows`` rows."""
    if model is None:
        X, _ = synth.sample(rows, seed=7)
    else:
        X = np.random.default_rng(7).normal(size=(rows, n_features))
    clients = [Client(url) for _ in range(TOUCH_CONNECTIONS)]
    try:
        for i, c in enumerate(clients):
            if model is None:
                c.get_json(f"/fish?length={X[i, 0]:.2f}&weight={X[i, 1]:.1f}")
            else:
                doc = {"instances": [X[i].tolist()]}
                status, _, body = c.request("POST", f"/predict?model={model}",
                                            json.dumps(doc).encode(),
                                            {"Content-Type": "application/json"})
                if status != 200:
                    raise ConfigError(f"{url}/predict answered {status}: {body[:200]!r}")
        clients[0].predict_npy(X, k=model)
    finally:
        for c in clients:
            c.close()


#: the forest of part e: features of the generated rows, trees, bytes it aims at
FOREST_FEATURES = 8
FOREST_TREES = 100
FOREST_NAME = "forest"
#: 100 fully grown trees on random labels pickle to about this many bytes per training row
_FOREST_BYTES_PER_ROW = 3400


def train_forest(directory: Path, megabytes: int) -> Path:
    """A model directory with one random forest of about ``megabytes`` MB (100 fully
    grown trees on random labels: every bootstrap sample ends in its own leaf)."""
    import joblib
    from sklearn.ensemble import RandomForestClassifier

    rows = max(1000, megabytes * MB // _FOREST_BYTES_PER_ROW)
    rng = np.random.default_rng(11)
    X = rng.normal(size=(rows, FOREST_FEATURES))
    y = rng.integers(0, 2, size=rows)
    forest = RandomForestClassifier(n_estimators=FOREST_TREES, random_state=0, n_jobs=-1)
    forest.fit(X, y)
    forest.n_jobs = None
    staging = directory / "staging"
    staging.mkdir()
    file = staging / f"{FOREST_NAME}.joblib"
    joblib.dump(forest, file)
    models = directory / "models"
    add_model(file, models, name=FOREST_NAME, trust=True)
    return models


def train_big(directory: Path, rows: int) -> Path:
    """A model directory with one KNN (k=5) fitted on ``rows`` generated fish."""
    X, y = synth.sample(rows, seed=11)
    artifacts.save_models(directory, [5], data=FishData(X=np.ascontiguousarray(X), y=y))
    return directory


def _measure(args: tuple[str, ...], model: str | None = None) -> list[ProcessMemory]:
    with fishpredict_server("socket", *args, timeout=300) as srv:
        touch(srv.url, model=model, n_features=FOREST_FEATURES)
        return server_memory(srv.pid)


def _mb(n: float) -> str:
    return f"{n / MB:,.1f}"


def _per_worker(one: list[ProcessMemory], many: list[ProcessMemory], workers: int) -> float:
    """PSS bytes each worker past the first adds to a server."""
    return (sum(p.pss for p in many) - sum(p.pss for p in one)) / (workers - 1)


def memory_part(r: Reporter, rows: int, workers: int, model: str = "forest",
                forest_mb: int = 200) -> None:
    """Part e: the memory of 1 and ``workers`` workers, serving the embedded 49-fish models
    and a big model: a forest of about ``forest_mb`` MB, or (``model="knn"``) a KNN on
    ``rows`` fish."""
    if workers < 2:
        raise ConfigError(f"the memory part compares 1 worker with more; got {workers}")
    if model not in ("forest", "knn"):
        raise ConfigError(f"the memory part's model is forest or knn, not {model!r}")
    say = r.say
    what = (f"a {FOREST_TREES}-tree random forest of about {forest_mb} MB" if model == "forest"
            else f"k=5 on {rows:,} generated fish")
    say(f"... memory: training {what}, then serving it and the embedded models with 1 and "
        f"{workers} workers")
    servers: dict[str, list[ProcessMemory]] = {}
    touched = FOREST_NAME if model == "forest" else None
    with tempfile.TemporaryDirectory(prefix="fishpredict-memory-") as tmp:
        models = (train_forest(Path(tmp), forest_mb) if model == "forest"
                  else train_big(Path(tmp), rows))
        file_bytes = sum(p.stat().st_size for p in models.glob("*.joblib"))
        for name, args in (
            ("embedded models, 1 worker", ()),
            (f"embedded models, {workers} workers", ("--workers", str(workers))),
            ("big model, 1 worker", ("--models", str(models))),
            (f"big model, {workers} workers", ("--models", str(models), "--workers",
                                               str(workers))),
        ):
            r.settle()
            servers[name] = _measure(args, touched if name.startswith("big") else None)
    empty1, emptyn, big1, bign = servers.values()
    model_bytes = big1[0].pss - empty1[0].pss
    worker_empty = _per_worker(empty1, emptyn, workers)
    worker_big = _per_worker(big1, bign, workers)
    copied = worker_big - worker_empty
    say(f"\n## e. memory: {workers} workers share one copy of the model (socket backend; "
        f"big model: {what}, {_mb(file_bytes)} MB on disk)")
    lines: list[tuple[str, ...]] = [("server", "process", "RSS MB", "PSS MB", "USS MB")]
    for name, procs in servers.items():
        for p in procs:
            lines.append((name, f"{p.role} {p.pid}", _mb(p.rss), _mb(p.pss), _mb(p.uss)))
        if len(procs) > 1:
            lines.append((name, "all processes", _mb(sum(p.rss for p in procs)),
                          _mb(sum(p.pss for p in procs)), _mb(sum(p.uss for p in procs))))
    say(table(lines))
    say(f"the big model's memory: its 1-worker PSS - the embedded models' = "
        f"{_mb(big1[0].pss)} - {_mb(empty1[0].pss)} = {_mb(model_bytes)} MB")
    say(f"each worker past the first adds (PSS): {_mb(worker_empty)} MB with the embedded "
        f"models, {_mb(worker_big)} MB with the big model (RSS, which counts shared pages "
        f"in every process, sums to {_mb(sum(p.rss for p in bign))} MB for the "
        f"{len(bign)} processes of the big model)")
    share = copied / model_bytes if model_bytes > 0 else float("inf")
    r.target(
        "memory_model_per_worker",
        share <= TARGET_COPIED_SHARE,
        f"each extra worker copies <= {TARGET_COPIED_SHARE:.0%} of the model (its added "
        f"memory with the big model minus with the embedded ones) -> {_mb(worker_big)} - "
        f"{_mb(worker_empty)} = {_mb(copied)} MB = {share:.1%} of {_mb(model_bytes)} MB",
    )
    r.figures["memory"] = {
        "model": model,
        "rows": rows if model == "knn" else None,
        "workers": workers,
        "model_file_bytes": file_bytes,
        "model_bytes": model_bytes,
        "per_worker_bytes": {"embedded": worker_empty, "big": worker_big},
        "servers": {name: [asdict(p) for p in procs] for name, procs in servers.items()},
    }
