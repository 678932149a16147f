"""Bulk scoring on Dask against one process: speed-up and memory per worker.

``run()`` scores the same Parquet file (``rows`` rows of 4 float features,
written in row groups of :data:`ROW_GROUP` rows) with the same 100-tree
random forest twice, and a file a tenth of its size once more:

1. **one process**: :func:`fishpredict.bulk.dask_tasks.score_file_part` over every
   part in turn, in a fresh Python process without Dask (the same code each
   worker runs, one part after another);
2. **LocalCluster, 2 worker processes** (one thread each): the same parts
   through :func:`fishpredict.bulk.dask.score_files`; the cluster is started
   before the clock starts (its start-up is printed apart);
3. the same cluster set-up on the file a tenth of the size, to show that a
   worker's peak memory does not grow with the file.

Both runs' predictions are compared part by part (they must be equal). Peak
memory is each process's ``ru_maxrss``, read in the process at the end (so it
covers the whole job, start-up included). Every process runs its numeric
libraries on one thread (Dask's nanny sets ``OMP_NUM_THREADS=1`` for its
workers; the one-process run gets the same), so the comparison is of
processes, not of thread pools.

Targets (issue 13): cluster / one process >= :data:`TARGET_SPEEDUP`; peak RSS
per worker <= :data:`TARGET_WORKER_BYTES`; the big file's worker peak within
:data:`TARGET_MEMORY_RATIO` of the small file's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from fishpredict.bulk import dask_parts
from fishpredict.bulk.dask import open_client, score_files
from fishpredict.bulk.dask_tasks import Options, model_ref, score_file_part
from fishpredict.models import manifest
from fishpredict.perf.machine import header, table
from fishpredict.perf.report import load_line, ratio, verdict
from fishpredict.predictor import Predictor
from fishpredict.tables.writers import PartitionedWriter

TARGET_SPEEDUP: Final = 1.6
TARGET_WORKER_BYTES: Final = 1 << 30
TARGET_MEMORY_RATIO: Final = 1.2
ROW_GROUP: Final = 250_000
PARTITION_ROWS: Final = 500_000
FEATURES: Final = ("f0", "f1", "f2", "f3")
MODEL: Final = "forest"
_ONE_THREAD: Final = {v: "1" for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                       "OPENBLAS_NUM_THREADS")}
MB: Final = 1 << 20
Say = Callable[[str], None]


def make_model(directory: Path, trees: int = 100) -> Path:
    """A ``trees``-tree random forest over :data:`FEATURES`, listed in a manifest."""
    import joblib
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(20_000, len(FEATURES))), columns=list(FEATURES))
    y = (X.f0 * X.f1 + np.sin(3 * X.f2) - X.f3 > 0).astype(int)
    forest = RandomForestClassifier(trees, max_depth=12, random_state=0).fit(X, y)
    directory.mkdir(parents=True, exist_ok=True)
    staging = directory.parent / f".{directory.name}.model"
    staging.mkdir(exist_ok=True)
    joblib.dump(forest, staging / f"{MODEL}.joblib")
    manifest.add_model(staging / f"{MODEL}.joblib", directory, name=MODEL, trust=True)
    (staging / f"{MODEL}.joblib").unlink()
    staging.rmdir()
    return directory


def make_data(path: Path, rows: int, seed: int = 1) -> Path:
    """``rows`` rows of :data:`FEATURES` as Parquet, written one row group at a time."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    schema = pa.schema([(f, pa.float64()) for f in FEATURES])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, ROW_GROUP):
            n = min(ROW_GROUP, rows - start)
            block = rng.normal(size=(n, len(FEATURES)))
            writer.write_table(pa.Table.from_arrays(list(block.T), schema=schema))
    return path


def _peak_rss() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _cpu_seconds() -> float:
    """CPU time (user + system) this process has used."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def one_process(models: str, data: str, out: str) -> dict[str, Any]:
    """Score every part of ``data`` here, one after another (run in its own process)."""
    started, cpu = time.perf_counter(), _cpu_seconds()
    ref, _ = model_ref(models, MODEL)
    writer = PartitionedWriter(out)
    staging = str(writer.staging.resolve())
    rows = sum(score_file_part(p, ref, staging, Options())["rows"]
               for p in dask_parts.plan_parts(data, PARTITION_ROWS))
    writer.commit()
    return {"rows": rows, "seconds": time.perf_counter() - started, "peak_rss": _peak_rss(),
            "cpu_seconds": _cpu_seconds() - cpu}


def _run_one_process(models: Path, data: Path, out: Path) -> dict[str, Any]:
    code = ("import json, sys; from fishpredict.perf.dask import one_process; "
            "print(json.dumps(one_process(*sys.argv[1:])))")
    done = subprocess.run([sys.executable, "-c", code, str(models), str(data), str(out)],
                          env={**os.environ, **_ONE_THREAD}, capture_output=True, text=True,
                          timeout=3600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the one-process run failed: {done.stderr.strip()[-400:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _run_cluster(models: Path, data: Path, out: Path, workers: int) -> dict[str, Any]:
    started = time.perf_counter()
    with open_client(f"local:{workers}") as opened:
        client: Any = opened
        client.wait_for_workers(workers, timeout=120)
        startup = time.perf_counter() - started
        before, here = client.run(_cpu_seconds), _cpu_seconds()
        summary = score_files(models=models, model=MODEL, data=data, out=out,
                              scheduler=client.scheduler.address, progress=False,
                              partition_rows=PARTITION_ROWS)
        here = _cpu_seconds() - here
        after = client.run(_cpu_seconds)
        peaks = sorted(client.run(_peak_rss).values())
    return {"rows": summary["rows"], "seconds": summary["seconds"], "startup": startup,
            "worker_peak_rss": peaks, "parts": summary["files"], "client_cpu_seconds": here,
            "worker_cpu_seconds": sorted(after[w] - before[w] for w in after)}


def _same_predictions(a: Path, b: Path) -> bool:
    import pyarrow.parquet as pq

    left, right = sorted(a.iterdir()), sorted(b.iterdir())
    if [p.name for p in left] != [p.name for p in right]:
        return False
    return all(pq.read_table(x).equals(pq.read_table(y)) for x, y in zip(left, right, strict=True))


def run(*, rows: int = 10_000_000, quick: bool = False, say: Say = print,
        workers: int = 2, work_dir: str | None = None) -> dict[str, Any]:
    """Run the comparison, print it, and return its figures (JSON-able).

    ``quick``: at most 1,000,000 rows. ``work_dir``: where the files go (default: a
    temporary directory, removed at the end).
    """
    if quick:
        rows = min(rows, 1_000_000)
    small_rows = max(rows // 10, 1)
    say(header("fishpredict perf dask"))
    say(load_line())
    with tempfile.TemporaryDirectory(dir=work_dir, prefix="fishpredict-dask-") as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        models = make_model(root / "models")
        big = make_data(root / "big.parquet", rows)
        small = make_data(root / "small.parquet", small_rows, seed=2)
        say(f"# data: {rows:,} and {small_rows:,} rows x {len(FEATURES)} float64 features, "
            f"Parquet, row groups of {ROW_GROUP:,} ({big.stat().st_size / MB:,.0f} MB and "
            f"{small.stat().st_size / MB:,.0f} MB); parts of {PARTITION_ROWS:,} rows; "
            f"model: 100-tree random forest, max depth 12 "
            f"({(models / f'{MODEL}.joblib').stat().st_size / MB:.1f} MB); "
            f"made in {time.perf_counter() - t:.1f} s")
        fast = Predictor(models).model(MODEL).info.fast_path
        say(f"# the model answers through {'the ' + fast + ' fast path' if fast else 'sklearn'}")
        single = _run_one_process(models, big, root / "out-one")
        say(f"# one process: {single['seconds']:.1f} s")
        cluster = _run_cluster(models, big, root / "out-cluster", workers)
        say(f"# cluster: {cluster['seconds']:.1f} s (+ {cluster['startup']:.1f} s start-up)")
        small_run = _run_cluster(models, small, root / "out-small", workers)
        equal = _same_predictions(root / "out-one", root / "out-cluster")
    speedup = ratio(single["seconds"], cluster["seconds"])
    peak = max(cluster["worker_peak_rss"])
    growth = ratio(peak, max(small_run["worker_peak_rss"]))
    verdicts = {
        "speedup": speedup >= TARGET_SPEEDUP,
        "worker_memory": peak <= TARGET_WORKER_BYTES,
        "memory_flat": growth <= TARGET_MEMORY_RATIO,
        "equal_answers": equal,
    }

    def mb(values: list[int]) -> str:
        return " / ".join(f"{v / MB:,.0f}" for v in values)

    def cpu(values: list[float]) -> str:
        return " / ".join(f"{v:.1f}" for v in values)

    def line(name: str, r: dict[str, Any], cpus: list[float], peaks: list[int]) -> tuple[str, ...]:
        return (name, f"{r['rows']:,}", f"{r['seconds']:.1f}", f"{r['rows'] / r['seconds']:,.0f}",
                cpu(cpus), mb(peaks))

    say(table([
        ("run", "rows", "seconds", "rows/s", "CPU s (per process)", "peak RSS MB (per process)"),
        line("one process", single, [single["cpu_seconds"]], [single["peak_rss"]]),
        line(f"LocalCluster {workers} workers", cluster, cluster["worker_cpu_seconds"],
             cluster["worker_peak_rss"]),
        line(f"LocalCluster {workers} workers", small_run, small_run["worker_cpu_seconds"],
             small_run["worker_peak_rss"]),
    ]))
    cpu_bound = ratio(single["cpu_seconds"], max(cluster["worker_cpu_seconds"]))
    say(f"(the cluster's client and scheduler used {cluster['client_cpu_seconds']:.1f} CPU s; "
        "one process's "
        f"CPU s / the busiest worker's: {cpu_bound:.2f}x, the speed-up {workers} free cores "
        "would give)")
    say(f"speed-up {speedup:.2f}x ({single['seconds']:.1f} s / {cluster['seconds']:.1f} s; "
        f"target >= {TARGET_SPEEDUP}x): {verdict(verdicts['speedup'])}")
    say(f"peak RSS per worker {peak / MB:,.0f} MB (target <= {TARGET_WORKER_BYTES / MB:,.0f} "
        f"MB): {verdict(verdicts['worker_memory'])}")
    say(f"peak RSS, {rows:,} vs {small_rows:,} rows: {growth:.2f}x (target <= "
        f"{TARGET_MEMORY_RATIO}x): {verdict(verdicts['memory_flat'])}")
    say(f"answers equal part by part: {verdict(equal)}")
    say(load_line("after"))
    return {"rows": rows, "small_rows": small_rows, "workers": workers,
            "one_process": single, "cluster": cluster, "cluster_small": small_run,
            "speedup": speedup, "cpu_bound_speedup": cpu_bound, "worker_peak_rss": peak,
            "memory_growth": growth,
            "verdicts": verdicts}
