"""Bulk scoring on Dask: files, or a Dask DataFrame or array, scored by a cluster.

Two entry points (the ``dask`` extra: ``dask[distributed]``, pandas, pyarrow):

- :func:`score_files` (what ``fishpredict predict --scheduler`` runs): a file, a
  glob or a directory of CSV, Parquet or ``.npy`` files, cut into parts
  (:mod:`fishpredict.bulk.dask_parts`), each part read and scored on a worker;
- :func:`score_frame`: a Dask DataFrame or array a program already has, one
  task per partition (per block of rows of an array).

Both write one output file per input part, ``part-00000.parquet`` ...
(CSV with ``format="csv"`` or an output name ending in ``.csv``), whose sorted
order is the input's row order, each with a ``prediction`` column and, with
``proba``, one ``probability_<class>`` column per class. The parts are
assembled in a staging directory beside the output and renamed into place
when every part is written (:class:`~fishpredict.tables.writers.PartitionedWriter`),
so a failed job leaves nothing under the final name. The output directory
must be on a file system every worker sees (always so for ``local:N``).

The model goes to each worker once (:mod:`fishpredict.bulk.dask_tasks`): a task
carries a small reference (path, sha256, signature), and the worker loads the
file on its first task, checks its sha256 and signature, and keeps it in a
per-process cache keyed by sha256. Each chunk is checked and answered as
:class:`~fishpredict.predictor.Predictor` does (the same validation, the same
answers, the fast paths). A bad row stops the job with one line naming the
file (or partition), the row and the feature.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from fishpredict.bulk import dask_parts, dask_tasks
from fishpredict.bulk.dask_parts import PARTITION_ROWS
from fishpredict.bulk.dask_tasks import ModelRef, Options, model_ref, score_block, score_file_part
from fishpredict.errors import FishpredictError, InvalidInputError, SchedulerError, ScoringError
from fishpredict.models.loaded import LoadedModel
from fishpredict.tables.inputs import CHUNK_ROWS
from fishpredict.tables.writers import OUTPUT_FORMATS, PartitionedWriter, check_output_name

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["CONNECT_TIMEOUT", "LOCAL_WORKER_CONFIG",
           "loads_per_worker", "open_client", "score_files", "score_frame"]

#: Seconds to wait for a scheduler address to answer.
CONNECT_TIMEOUT: Final = 5.0
#: Dask settings for the workers of a ``local:N`` cluster. Dask's defaults cost a
#: scoring worker about a third more CPU per row, measured on a 100-tree forest
#: (4.8 against 6.6 CPU s per 500,000 rows; 4.3 in a plain process): the
#: statistical profiler samples the running task's stack every 10 ms, the system
#: monitor polls every 0.5 s, and ``MALLOC_TRIM_THRESHOLD_=65536`` turns off glibc's
#: adaptive mmap threshold, so every array of a chunk is a fresh mmap (3x the page
#: faults). Scoring tasks hold one chunk at a time, so the trim is not needed. Set
#: the same in a remote cluster's worker configuration for the same effect.
LOCAL_WORKER_CONFIG: Final = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.nanny.pre-spawn-environ": {
        "OMP_NUM_THREADS": 1, "MKL_NUM_THREADS": 1, "OPENBLAS_NUM_THREADS": 1,
    },
}
_LOCAL: Final = re.compile(r"local(?::(\d+))?")


# ---- the client side -----------------------------------------------------------------


def _distributed() -> Any:
    """The ``distributed`` package (typed loosely: most of its API is untyped)."""
    import importlib

    return importlib.import_module("distributed")


@contextlib.contextmanager
def open_client(scheduler: str, *, timeout: float = CONNECT_TIMEOUT) -> Iterator[Client]:
    """A client of the scheduler at ``scheduler`` (``tcp://host:port``, ``host:port``), or of a
    ``distributed.LocalCluster`` of N worker processes started for the job (``local:N``;
    ``local``: one per core), closed (and the cluster stopped) on exit."""
    import logging

    import dask

    dist = _distributed()
    text = scheduler.strip()
    local = _LOCAL.fullmatch(text)
    if local:
        n = int(local[1]) if local[1] else (os.cpu_count() or 1)
        if n < 1:
            raise SchedulerError(f"--scheduler {text}: need at least one worker")
        with dask.config.set(LOCAL_WORKER_CONFIG), \
                dist.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                  scheduler_kwargs={"dashboard": False},
                                  silence_logs=logging.CRITICAL) as cluster, \
                dist.Client(cluster, set_as_default=False) as client:
            yield client
        return
    if not text:
        raise SchedulerError("--scheduler: give a scheduler address (host:port) or local[:N]")
    try:
        client = dist.Client(text, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SchedulerError(
            f"no Dask scheduler answers at {text} within {timeout:g} s ({reason[:120]}); "
            "start one (dask scheduler) or use --scheduler local:N"
        ) from None
    with client:
        yield client


def _bar(total: int, progress: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="part", desc="scoring", leave=False,
                disable=not (progress and sys.stderr.isatty()))


def _failure(exc: BaseException | None) -> BaseException:
    if isinstance(exc, FishpredictError):
        return exc
    text = str(exc).strip().splitlines()[0] if exc is not None and str(exc).strip() else ""
    return ScoringError(f"a scoring task failed: {type(exc).__name__}"
                        + (f": {text[:200]}" if text else ""))


def _run(client: Any, futures: Sequence[Any], writer: PartitionedWriter,
         progress: bool) -> list[dict[str, int]]:
    """Wait for every part; on the first failure cancel the rest and discard the output."""
    as_completed = _distributed().as_completed
    done: list[dict[str, int]] = []
    bar = _bar(len(futures), progress)
    try:
        for future in as_completed(futures, loop=client.loop):
            if future.status != "finished":
                raise _failure(future.exception())
            done.append(future.result())
            bar.update(1)
            bar.set_postfix(rows=sum(d["rows"] for d in done), refresh=False)
    except BaseException:
        client.cancel(list(futures))
        writer.discard()
        _remove(writer.staging)
        raise
    finally:
        bar.close()
    return done


def _remove(staging: Path, seconds: float = 5.0) -> None:
    """Remove the staging directory even if a cancelled task was still writing into it."""
    deadline = time.monotonic() + seconds
    while staging.exists() and time.monotonic() < deadline:
        shutil.rmtree(staging, ignore_errors=True)
        if staging.exists():
            time.sleep(0.1)


def _output(out: str | os.PathLike[str], format: str | None) -> tuple[str, PartitionedWriter]:
    check_output_name(out)
    suffix = Path(out).suffix.lower().lstrip(".")
    fmt = format or (suffix if suffix in OUTPUT_FORMATS else "parquet")
    if fmt not in OUTPUT_FORMATS:
        raise InvalidInputError(f"format must be csv or parquet, got {fmt!r}")
    if suffix in OUTPUT_FORMATS and suffix != fmt:
        raise InvalidInputError(f"{out}: the name says {suffix}, but {fmt} was asked for")
    return fmt, PartitionedWriter(out, fmt)


def _summary(started: float, done: list[dict[str, int]], writer: PartitionedWriter,
             client: Any, ref: ModelRef) -> dict[str, Any]:
    written = writer.commit()
    return {
        "rows": sum(d["rows"] for d in done),
        "files": len(written.files),
        "seconds": round(time.perf_counter() - started, 3),
        "workers": len(client.nthreads()),
        "model": ref.name,
        "out": written.path,
        "format": written.format,
        "bytes": written.size,
    }


def _check(m: LoadedModel, proba: bool, labels: str | None) -> None:
    if proba and not m.has_proba:
        raise InvalidInputError(f"model {m.name!r} gives no probabilities (no predict_proba)")
    if labels is not None and m.is_classifier and m.names and labels not in m.names:
        raise InvalidInputError(f"labels must be one of {', '.join(m.names)}, got {labels!r}")


def score_files(
    *,
    models: Any,
    model: str | int | None,
    data: str | os.PathLike[str],
    out: str | os.PathLike[str],
    scheduler: str,
    proba: bool = False,
    trust: bool = False,
    progress: bool = True,
    labels: str | None = None,
    format: str | None = None,
    partition_rows: int = PARTITION_ROWS,
    chunk_rows: int = CHUNK_ROWS,
    fast_path: bool = True,
    keep: Sequence[str] = (),
) -> dict[str, Any]:
    """Score every row of ``data`` (a file, glob or directory of CSV, Parquet, ``.npy``)
    with model ``model`` of ``models`` on the Dask cluster ``scheduler`` (an address, or
    ``local[:N]``), writing one output part per input part under ``out``.

    Returns ``{"rows", "files", "seconds", "workers", ...}``. Raises a
    :class:`~fishpredict.errors.FishpredictError` (one line) for a bad model, bad data
    (naming the file, row and feature), an unusable output or no scheduler.
    """
    started = time.perf_counter()
    ref, m = model_ref(models, model, trust=trust, fast_path=fast_path)
    _check(m, proba, labels)
    parts = dask_parts.plan_parts(data, partition_rows)
    fmt, writer = _output(out, format)
    opts = Options(fmt, proba, labels, chunk_rows, tuple(keep))
    staging = str(writer.staging.resolve())
    try:
        with open_client(scheduler) as client:
            futures = [client.submit(score_file_part, p, ref, staging, opts, pure=False)
                       for p in parts]
            done = _run(client, futures, writer, progress)
            return _summary(started, done, writer, client, ref)
    finally:
        if writer.committed is None:
            writer.discard()


def score_frame(
    data: Any,
    model_file: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str],
    model: str | int | None = None,
    proba: bool = False,
    trust: bool = False,
    labels: str | None = None,
    format: str | None = None,
    client: Client | None = None,
    progress: bool = True,
    chunk_rows: int = CHUNK_ROWS,
) -> dict[str, Any]:
    """Score a Dask DataFrame (the model's columns, by name) or a 2-D Dask array (the
    model's features, in order) with the model in ``model_file`` (a file, or a
    directory and ``model``), one output part per partition (per block of rows).

    Runs on ``client`` (default: the current ``distributed`` client). Returns the
    summary :func:`score_files` does.
    """
    import dask.array as da
    from dask.delayed import delayed

    started = time.perf_counter()
    ref, m = model_ref(model_file, model, trust=trust)
    _check(m, proba, labels)
    runner: Any = client
    if runner is None:
        try:
            runner = _distributed().get_client()
        except ValueError:
            raise SchedulerError("no Dask client: pass client=, or create a "
                                 "distributed.Client first") from None
    if isinstance(data, da.Array):
        if data.ndim != 2:
            raise InvalidInputError(f"expected a 2-D array (n, d), got shape {data.shape}")
        array: Any = data
        array = array.rechunk({1: -1})
        blocks = list(array.to_delayed()[:, 0])
        sizes = array.chunks[0]
        starts: list[int | None] = [None] * len(sizes)
        if all(isinstance(s, int) for s in sizes):
            starts = [sum(sizes[:i]) for i in range(len(sizes))]
    elif hasattr(data, "to_delayed") and hasattr(data, "columns"):
        blocks = list(data.to_delayed())
        starts = [None] * len(blocks)
    else:
        raise InvalidInputError(f"expected a Dask DataFrame or array, not {type(data).__name__}")
    fmt, writer = _output(out, format)
    opts = Options(fmt, proba, labels, chunk_rows)
    staging = str(writer.staging.resolve())
    try:
        tasks = [delayed(score_block, pure=False)(b, ref, i, starts[i], staging, opts)
                 for i, b in enumerate(blocks)]
        futures = runner.compute(tasks)
        done = _run(runner, futures, writer, progress)
        return _summary(started, done, writer, runner, ref)
    finally:
        if writer.committed is None:
            writer.discard()


def loads_per_worker(client: Any) -> dict[str, int]:
    """How many models each worker process loaded (:data:`worker_loads`), by address."""
    def count() -> int:
        return dask_tasks.worker_loads

    return dict(client.run(count))


