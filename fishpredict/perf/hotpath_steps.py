"""``fishpredict perf hotpath``, part b: µs per step of one request, in one process.

The three requests of part a (:mod:`fishpredict.perf.hotpath`), each over the same
distinct rows, step by step through the functions the socket backend's hot path calls:

============  =================================================================
decode        the query string or JSON body to raw values (``fish_hot_decode``,
              ``infer_hot_decode``)
validate      the model's row check, specialised from its signature
predict       the model's one-row predict (``FastPath.predict_row``)
encode        the answer's bytes (``fish_hot_encode``, ``infer_hot_encode``)
metrics       counting the answer (``Metrics.observe``)
transport     the socket backend's own work per request: llhttp's callbacks, the
              answer's HTTP head, the write (to a transport that keeps nothing), with a
              service that hands back a ready answer
============  =================================================================

then the whole request through the socket backend's protocol with the real service,
the same with the hot paths off (the general way every other request takes), and the
Python ceiling's protocol (:mod:`fishpredict.perf.ceiling`) on the same bytes. Each
figure is CPU time (``process_time``), the best of several rounds over every row.
The kernel's part (the socket calls, loopback TCP) is in none of them: part a has it.
"""

from __future__ import annotations

import asyncio
import importlib
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

from fishpredict.app.messages import Response
from fishpredict.app.protocols import native, v2
from fishpredict.app.service import Service
from fishpredict.perf.ceiling import Ceiling
from fishpredict.perf.hotpath_workloads import FISH_MODEL, IRIS_MODEL, WORKLOADS, write_models
from fishpredict.perf.loads import Say
from fishpredict.perf.machine import table
from fishpredict.predictor import Predictor

#: distinct rows each step runs over
ROWS: Final = 2000


class NullTransport:
    """A transport that takes every write and keeps nothing (in-process timing)."""

    def write(self, data: bytes) -> None:
        self.last = data

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def close(self) -> None: ...

    def abort(self) -> None: ...


def per_call(fn: Callable[[Any], Any], inputs: Sequence[Any], rounds: int) -> float:
    """µs of CPU per call of ``fn`` over ``inputs``: the best of ``rounds`` rounds."""
    for x in inputs[:200]:
        fn(x)
    best = float("inf")
    for _ in range(rounds):
        t0 = time.process_time()
        for x in inputs:
            fn(x)
        best = min(best, time.process_time() - t0)
    return best / len(inputs) * 1e6


def _service(tmp: Path) -> Any:
    args = write_models(tmp)  # --models FISH_DIR --models iris=PATH --trust
    fish, iris = args[1], args[3].split("=", 1)[1]
    return Service(Predictor([fish, iris], trust=True))


def _protocols(loop: asyncio.AbstractEventLoop) -> Callable[[Any], Any]:
    """``make(service)``: a socket-backend connection over a :class:`NullTransport`."""
    # the socket backend's own protocol, in process: a plugin module, loaded by name
    socket_http = importlib.import_module("fishpredict_backends.socket_http")

    def make(service: Any) -> Any:
        proto = socket_http.HttpProtocol(socket_http.ServerState(service, loop))
        proto.connection_made(NullTransport())
        return proto

    return make


def _fish_steps(service: Any, queries: list[str], rounds: int) -> dict[str, float]:
    service.handle("GET", "/fish", queries[0], {})  # builds the model's hot state
    model = service.predictor.model(FISH_MODEL)
    check, predict_row = model.memo["fish-hot"]
    decoded = [native.fish_hot_decode(q) for q in queries]
    rows = [check((x, w)) for _k, x, w in decoded]  # type: ignore[misc]
    items = [(predict_row(r), x, w) for r, (_k, x, w) in zip(rows, decoded, strict=True)]  # type: ignore[misc]
    metrics = service.metrics
    return {
        "decode": per_call(native.fish_hot_decode, queries, rounds),
        "validate": per_call(lambda d: check((d[1], d[2])), decoded, rounds),
        "predict": per_call(predict_row, rows, rounds),
        "encode": per_call(lambda i: native.fish_hot_encode(service, model, *i), items,
                           rounds),
        "metrics": per_call(lambda _: metrics.observe("/fish", "GET", 200, 1e-4, FISH_MODEL),
                            rows, rounds),
    }


def _v2_steps(service: Any, name: str, bodies: list[bytes], rounds: int) -> dict[str, float]:
    service.handle("POST", f"/v2/models/{name}/infer", "", {}, bodies[0])
    model = service.predictor.model(name)
    check, predict_row, d, answers = model.memo["v2-hot"]
    decoded = [v2.infer_hot_decode(b, d) for b in bodies]
    rows = [check(x[1]) for x in decoded]  # type: ignore[index]
    pairs = [(answers[predict_row(r)], x[0]) for r, x in zip(rows, decoded, strict=True)]  # type: ignore[index]
    metrics = service.metrics
    return {
        "decode": per_call(lambda b: v2.infer_hot_decode(b, d), bodies, rounds),
        "validate": per_call(lambda x: check(x[1]), decoded, rounds),
        "predict": per_call(predict_row, rows, rounds),
        "encode": per_call(lambda p: v2.infer_hot_encode(*p), pairs, rounds),
        "metrics": per_call(lambda _: metrics.observe(v2.INFER_ROUTE, "POST", 200, 1e-4, name),
                            rows, rounds),
    }


def _answering(service: Any, response: Any) -> Any:
    """A service of the same class that hands back ``response`` to every request."""

    class Ready(type(service)):  # type: ignore[misc]
        def respond(self, *args: Any) -> Any:
            return response

    return Ready(None)


def _steps(service: Any, loop: asyncio.AbstractEventLoop, rounds: int
           ) -> dict[str, dict[str, float]]:
    make = _protocols(loop)
    out: dict[str, dict[str, float]] = {}
    for w in WORKLOADS:
        pool = list(w.pool(ROWS, 11, "127.0.0.1:8000").requests)
        target = pool[0].split(b" ", 2)[1].decode()
        if w.key == "fish":
            steps = _fish_steps(service, [r.split(b" ", 2)[1].decode().partition("?")[2]
                                          for r in pool], rounds)
            answer = service.handle("GET", "/fish", target.partition("?")[2], {})
        else:
            bodies = [r.split(b"\r\n\r\n", 1)[1] for r in pool]
            steps = _v2_steps(service, FISH_MODEL if w.key == "v2-fish" else IRIS_MODEL,
                              bodies, rounds)
            answer = service.handle("POST", target, "", {}, bodies[0])
        ready = _answering(service, Response(answer.status, answer.body))
        steps["transport"] = per_call(make(ready).data_received, pool, rounds)
        steps["sum"] = sum(steps.values())
        steps["whole"] = per_call(make(service).data_received, pool, rounds)
        hot, service.hot = service.hot, {}
        try:
            steps["general"] = per_call(make(service).data_received, pool, rounds)
        finally:
            service.hot = hot
        ceiling = Ceiling()
        ceiling.connection_made(NullTransport())  # type: ignore[arg-type]
        steps["ceiling"] = per_call(ceiling.data_received, pool, rounds)
        out[w.key] = steps
    return out


LABELS: Final = {
    "decode": "decode (query or JSON body -> raw values)",
    "validate": "validate (the model's row check)",
    "predict": "predict (one-row plain-float kernel)",
    "encode": "encode (the answer's bytes)",
    "metrics": "metrics (one observe)",
    "transport": "transport (socket backend, ready answer)",
    "sum": "sum of the steps",
    "whole": "whole request, socket backend, hot path",
    "general": "whole request, socket backend, general way",
    "ceiling": "the Python ceiling's protocol",
}


def run_steps(*, quick: bool = False, say: Say = print) -> dict[str, Any]:
    """Part b: time each step, print the table, return the figures (µs)."""
    rounds = 3 if quick else 9
    with tempfile.TemporaryDirectory(prefix="fishpredict-hotpath-steps-") as tmp:
        service = _service(Path(tmp))
        loop = asyncio.new_event_loop()
        try:
            figures = _steps(service, loop, rounds)
        finally:
            loop.close()
    keys = list(figures)
    say(f"\n## b. µs of CPU per request, in one process ({ROWS:,} distinct rows each, best "
        f"of {rounds} rounds)")
    rows: list[tuple[str, ...]] = [("step", *keys)]
    for step, label in LABELS.items():
        rows.append((label, *(f"{figures[k][step]:.2f}" for k in keys)))
    say(table(rows))
    say("(the kernel's part of a request, the socket calls and loopback TCP, is in none of "
        "these: part a has it; the sum leaves out the dispatch between the steps: route "
        "and model look-ups, the clock, the calls)")
    return figures


__all__ = ["ROWS", "run_steps"]
