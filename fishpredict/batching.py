"""Adaptive micro-batching: concurrent one-fish requests share one ``predict`` call.

scikit-learn's ``predict`` costs about the same for 1 row as for a few hundred,
so a server that calls it once per request is capped near 1,000 requests/s per
core. A :class:`MicroBatcher` lives in one event loop. Requests for the same
model join a queue; one drain task per model takes up to ``max_batch`` rows at
a time and predicts them in one call.

The call runs in the event loop's own thread. While it runs, new requests wait
in the kernel's socket buffers; as soon as it returns, the loop reads all of
them, and they go together in the next call: the busier the server, the bigger
the batches. (A worker thread was measured slower: ``predict`` holds the GIL
for most of its time, so the hand-off only added cost.)

Adaptive: when a row arrives and nothing is queued or running, it is sent on
the next turn of the loop, so a lone client pays no wait. ``wait_us > 0``
additionally waits up to that long for more rows, but only when more than one
row is already waiting.

Each caller gets the answer for its own row. If a batched call raises, the rows
are retried one by one, so an error in one row fails only that row's request.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .metrics import Metrics
    from .predictor import LoadedModel


@dataclass
class _Queue:
    model: LoadedModel
    rows: list[tuple[float, float, asyncio.Future[int]]] = field(default_factory=list)
    #: a flush is scheduled on the loop
    scheduled: bool = False
    #: this round already waited ``wait_us`` for company
    waited: bool = False


class MicroBatcher:
    """Coalesces concurrent single-row predictions per model (one per event loop).

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
        self._queues: dict[int, _Queue] = {}
        #: calls made and rows predicted (for tests and benchmarks)
        self.calls = 0
        self.rows = 0

    async def predict_one(self, model: LoadedModel, length: float, weight: float) -> int:
        """The class index for one row, predicted together with its neighbours in time."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[int] = loop.create_future()
        key = id(model)
        q = self._queues.get(key)
        if q is None:
            q = self._queues[key] = _Queue(model)
        q.rows.append((length, weight, fut))
        if not q.scheduled:
            q.scheduled = True
            loop.call_soon(self._flush, key, q)  # after this turn's other reads
        return await fut

    def _flush(self, key: int, q: _Queue) -> None:
        loop = asyncio.get_running_loop()
        if self.wait_s > 0 and not q.waited and 1 < len(q.rows) < self.max_batch:
            q.waited = True  # others are queued: give more a moment to join
            loop.call_later(self.wait_s, self._flush, key, q)
            return
        q.waited = False
        batch = q.rows[: self.max_batch]
        del q.rows[: self.max_batch]
        X = np.array([(x, w) for x, w, _ in batch], dtype=np.float64)
        try:
            codes = q.model.predict_codes(X)
        except Exception:
            self._one_by_one(batch, q.model)
        else:
            self.calls += 1
            self.rows += len(batch)
            if self.metrics is not None:
                self.metrics.batch_size.observe(len(batch))
            for (_, _, fut), code in zip(batch, codes.tolist(), strict=True):
                if not fut.done():
                    fut.set_result(code)
        if q.rows:  # arrived meanwhile, or over max_batch: next turn, after the loop reads
            loop.call_soon(self._flush, key, q)
        else:
            q.scheduled = False
            if self._queues.get(key) is q:
                del self._queues[key]

    def _one_by_one(self, batch: list[tuple[float, float, asyncio.Future[int]]],
                    model: LoadedModel) -> None:
        for x, w, fut in batch:
            try:
                code = model.predict_code(x, w)
            except Exception as exc:  # only this row's caller sees it
                if not fut.done():
                    fut.set_exception(exc)
            else:
                self.calls += 1
                self.rows += 1
                if not fut.done():
                    fut.set_result(code)

    def close(self) -> None:
        """Kept for symmetry with other resources; the batcher holds no threads."""
