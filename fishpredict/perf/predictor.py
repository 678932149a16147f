"""``fishpredict perf predictor``: the core's speed and memory targets, side by side.

1. one-row predict: the fast path vs scikit-learn's ``predict``, same model;
2. 100,000 rows: the fast path vs scikit-learn, every k;
3. 10,000,000 generated rows predicted in chunks: peak extra memory;
4. ``data generate`` of 10,000,000 rows to ``.npy``: seconds.
Parts 3 and 4 run in a fresh child process each, so their peak memory is their own.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import tempfile
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from fishpredict import Predictor
from fishpredict.fish import synth
from fishpredict.perf.machine import header, table


def per_call(fn: Callable[[], Any], min_seconds: float, min_calls: int = 50) -> float:
    """Seconds per call: repeated until ``min_seconds`` have passed (best of 3 rounds)."""
    fn()  # warm up
    best = float("inf")
    for _ in range(3):
        calls = 0
        t0 = time.perf_counter()
        while True:
            fn()
            calls += 1
            elapsed = time.perf_counter() - t0
            if calls >= min_calls and elapsed >= min_seconds / 3:
                break
        best = min(best, elapsed / calls)
    return best


def _rss_mb() -> float:
    with open("/proc/self/statm", encoding="ascii") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _child_chunked_predict(rows: int, chunk: int, q: Any) -> None:
    p = Predictor()
    start_rss = _rss_mb()
    t0 = time.perf_counter()
    bream = 0
    for X, _y in synth.generate(rows, seed=42, chunk_rows=chunk):
        bream += int(np.count_nonzero(p.predict_codes(X, 5)))
    seconds = time.perf_counter() - t0
    q.put({"seconds": seconds, "extra_mb": _peak_mb() - start_rss, "bream": bream})


def _child_generate(rows: int, path: str, q: Any) -> None:
    start_rss = _rss_mb()
    t0 = time.perf_counter()
    synth.write(path, rows, seed=42, progress=False)
    q.put({"seconds": time.perf_counter() - t0, "extra_mb": _peak_mb() - start_rss,
           "bytes": os.path.getsize(path)})


def _in_child(target: Callable[..., None], *args: Any) -> dict[str, float]:
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, q))
    proc.start()
    try:
        result: dict[str, float] = q.get(timeout=600)
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.kill()
    return result


def run(big_rows: int = 10_000_000, chunk_rows: int = 1_000_000, quick: bool = False,
        say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the suite, print it, and return the figures as a dict."""
    if quick:
        big_rows = min(big_rows, 1_000_000)
    say(header("fishpredict perf predictor"))
    fast, slow = Predictor(), Predictor(fast_path=False)
    secs = 1.0 if quick else 3.0

    # 1. one row
    one_fast = per_call(lambda: fast.predict(30.0, 600.0, k=5), secs)
    one_sk = per_call(lambda: slow.predict(30.0, 600.0, k=5), secs)
    say("\n## one-row predict (k=5, same model)")
    say(table([("path", "us/call", "calls/s", "ratio"),
               ("scikit-learn predict", f"{one_sk * 1e6:.1f}", f"{1 / one_sk:,.0f}", "1.0x"),
               ("fast path", f"{one_fast * 1e6:.1f}", f"{1 / one_fast:,.0f}",
                f"{one_sk / one_fast:.1f}x")]))
    say(f"target: fast path >= 50x scikit-learn -> {one_sk / one_fast:.1f}x "
        f"{'MET' if one_sk / one_fast >= 50 else 'NOT MET'}")

    # 2. 100,000 rows
    X, _ = synth.sample(100_000, seed=7)
    rows: list[tuple[str, ...]] = [("k", "scikit-learn ms", "fast path ms", "fast/sklearn speed")]
    batch: dict[int, tuple[float, float]] = {}
    for k in fast.ks:
        t_fast = per_call(partial(fast.predict_codes, X, k), secs / 2, min_calls=3)
        t_sk = per_call(partial(slow.predict_codes, X, k), secs / 2, min_calls=3)
        batch[k] = (t_sk, t_fast)
        rows.append((str(k), f"{t_sk * 1e3:.1f}", f"{t_fast * 1e3:.1f}", f"{t_sk / t_fast:.2f}x"))
    say("\n## 100,000 rows")
    say(table(rows))
    worst = min(t_sk / t_fast for t_sk, t_fast in batch.values())
    say(f"target: fast path at least as fast as scikit-learn for 100,000 rows -> worst "
        f"{worst:.2f}x {'MET' if worst >= 1.0 else 'NOT MET'}")

    # 3. big chunked prediction, memory
    big = _in_child(_child_chunked_predict, big_rows, chunk_rows)
    say(f"\n## {big_rows:,} generated rows predicted in chunks of {chunk_rows:,} (k=5)")
    say(table([("rows/s", "seconds", "peak extra memory MB"),
               (f"{big_rows / big['seconds']:,.0f}", f"{big['seconds']:.1f}",
                f"{big['extra_mb']:.0f}")]))
    say(f"target: peak extra memory <= 500 MB -> {big['extra_mb']:.0f} MB "
        f"{'MET' if big['extra_mb'] <= 500 else 'NOT MET'}")

    # 4. data generate to .npy
    with tempfile.TemporaryDirectory() as tmp:
        gen = _in_child(_child_generate, big_rows, os.path.join(tmp, "fish.npy"))
    say(f"\n## data generate {big_rows:,} rows to .npy")
    say(table([("seconds", "MB written", "peak extra memory MB"),
               (f"{gen['seconds']:.2f}", f"{gen['bytes'] / 2**20:.0f}",
                f"{gen['extra_mb']:.0f}")]))
    if big_rows == 10_000_000:
        say(f"target: <= 10 s -> {gen['seconds']:.2f} s "
            f"{'MET' if gen['seconds'] <= 10 else 'NOT MET'}")
    return {"one_row": {"sklearn_s": one_sk, "fast_s": one_fast},
            "batch_100k": {str(k): {"sklearn_s": a, "fast_s": b} for k, (a, b) in batch.items()},
            "chunked": big, "generate": gen}
