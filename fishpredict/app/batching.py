"""Adaptive micro-batching: concurrent one-row requests share one ``predict`` call.

scikit-learn's ``predict`` costs about the same for 1 row as for a few hundred,
so a server that calls it once per request is capped near a few thousand
requests/s per core. A :class:`MicroBatcher` lives in one event loop. One-row
jobs for the same model and the same outputs join a queue; a flush takes up to
``max_batch`` rows at a time and predicts them in one call, whatever the
protocol that decoded them (``/fish``, ``/predict``, V2, V1).

The call runs in the event loop's own thread. While it runs, new requests wait
in the kernel's socket buffers; as soon as it returns, the loop reads all of
them, and they go together in the next call: the busier the server, the bigger
the batches. (A worker thread was measured slower: ``predict`` holds the GIL
for most of its time, so the hand-off only added cost.)

Adaptive: when a row arrives and nothing is queued or running, it is sent on
the next turn of the loop, so a lone client pays no wait. ``wait_us > 0``
additionally waits up to that long for more rows, but only when more than one
row is already waiting.

Each caller gets the answer for its own row. Every estimator call's output is
checked (one entry per row, the promised shape and kind:
:mod:`fishpredict.models.outputs`) before any row of it is answered. If a batched
call raises or its output fails that check, the rows are retried one by one (each
call checked again), so a bad row, or a model that drops rows, fails only the
requests whose own row it fails, each with its own error (a 400 for a refused
input, a 500 naming the model for its own failure), and never hands one caller
another's answer.
A batched answer is scikit-learn's answer for the batch: for models whose
arithmetic is per row (trees, forests, KNN, SVMs) it is bit for bit the
one-row answer; for models computed with matrix products on the whole batch,
a float may differ from the one-row call in its last bits (see docs/predictor.md).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from fishpredict.app.messages import Answer, Job
from fishpredict.models.rows import Rows

if TYPE_CHECKING:
    from fishpredict.app.metrics import Metrics


@dataclass
class _Queue:
    jobs: list[tuple[Job, asyncio.Future[Answer]]] = field(default_factory=list)
    #: a flush is scheduled on the loop
    scheduled: bool = False
    #: this round already waited ``wait_us`` for company
    waited: bool = False


def _combine(rows: list[Rows]) -> Rows:
    if rows[0].frame is not None:
        import pandas as pd

        frame = pd.concat([r.frame for r in rows], ignore_index=True)
        return Rows(len(frame), frame=frame, has_nan=any(r.has_nan for r in rows))
    arrays = [r.array for r in rows]
    X: np.ndarray[Any, Any] = np.concatenate(arrays)  # type: ignore[arg-type]
    return Rows(len(X), array=X, has_nan=any(r.has_nan for r in rows))


def _split(answer: Answer, i: int) -> Answer:
    def row(a: Any) -> Any:
        return None if a is None else a[i : i + 1]

    return Answer(codes=row(answer.codes), values=row(answer.values), proba=row(answer.proba))


class MicroBatcher:
    """Coalesces concurrent one-row jobs per (model, outputs) (one per event loop).

    No task per batch: a flush is a plain loop callback, so a lone request
    costs one future and one callback more than calling the model directly.
    """

    def __init__(
        self, max_batch: int = 256, wait_us: int = 0, *, metrics: Metrics | None = None
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.max_batch = max_batch
        self.wait_s = wait_us / 1e6
        self.metrics = metrics
        self._queues: dict[tuple[int, bool, bool], _Queue] = {}
        #: the loop every submit runs in, when the server said so (:meth:`bind`)
        self._loop: asyncio.AbstractEventLoop | None = None
        #: calls made and rows predicted (for tests and benchmarks)
        self.calls = 0
        self.rows = 0

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Every submit from now on runs in ``loop``: a worker's one loop for its life.

        Unbound, each submit asks asyncio for the running loop, which on Python 3.11
        makes a ``getpid`` system call (its fork check): measured at 2-3 % of a
        micro-batched request's CPU on a virtual machine."""
        self._loop = loop

    async def submit(self, job: Job) -> Answer:
        """The answer to a one-row job, predicted together with its neighbours in time."""
        loop = self._loop or asyncio.get_running_loop()
        fut: asyncio.Future[Answer] = loop.create_future()
        key = (id(job.model), job.predict, job.proba)
        q = self._queues.get(key)
        if q is None:
            q = self._queues[key] = _Queue()
        q.jobs.append((job, fut))
        if not q.scheduled:
            q.scheduled = True
            loop.call_soon(self._flush, key, q)  # after this turn's other reads
        return await fut

    def _flush(self, key: tuple[int, bool, bool], q: _Queue) -> None:
        loop = self._loop or asyncio.get_running_loop()
        if self.wait_s > 0 and not q.waited and 1 < len(q.jobs) < self.max_batch:
            q.waited = True  # others are queued: give more a moment to join
            loop.call_later(self.wait_s, self._flush, key, q)
            return
        q.waited = False
        batch = q.jobs[: self.max_batch]
        del q.jobs[: self.max_batch]
        first = batch[0][0]
        try:
            rows = batch[0][0].rows if len(batch) == 1 else _combine([j.rows for j, _ in batch])
            answer = Job(first.model, rows, proba=first.proba, predict=first.predict).run()
        except Exception:
            self._one_by_one(batch)
        else:
            self.calls += 1
            self.rows += len(batch)
            if self.metrics is not None:
                self.metrics.batch_size.observe(len(batch))
            for i, (_, fut) in enumerate(batch):
                if not fut.done():
                    fut.set_result(answer if len(batch) == 1 else _split(answer, i))
        if q.jobs:  # arrived meanwhile, or over max_batch: next turn, after the loop reads
            loop.call_soon(self._flush, key, q)
        else:
            q.scheduled = False
            if self._queues.get(key) is q:
                del self._queues[key]

    def _one_by_one(self, batch: list[tuple[Job, asyncio.Future[Answer]]]) -> None:
        for job, fut in batch:
            try:
                answer = job.run()
            except Exception as exc:  # only this row's caller sees it
                if not fut.done():
                    fut.set_exception(exc)
            else:
                self.calls += 1
                self.rows += 1
                if not fut.done():
                    fut.set_result(answer)

    def close(self) -> None:
        """Kept for symmetry with other resources; the batcher holds no threads."""
