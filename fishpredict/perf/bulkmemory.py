"""Flat memory of ``fishpredict predict --url``, for part c of ``fishpredict perf scaling``.

The command streams a data file to a server's ``.npy`` batch endpoint in chunks
and writes the answers as it goes, so its memory must not grow with the file.
This runs the real command as a child process on a file of N rows and on one of
10 x N rows, against the same real server, and reads each child's peak resident
memory from the kernel (``os.wait4`` gives the rusage of that one child, not of
the suite's servers). It also counts the output lines, so a run that stopped
early cannot pass as a small one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from fishpredict.errors import ConfigError
from fishpredict.fish import synth
from fishpredict.perf.bulk import Reporter
from fishpredict.perf.loads import SEED_KS
from fishpredict.perf.machine import table
from fishpredict.perf.report import ratio
from fishpredict.perf.servers import fishpredict_server

#: peak memory for 10x the rows, at most this many times the peak for 1x
TARGET_FLAT_RATIO = 1.25
#: seconds one ``fishpredict predict`` run may take before it is stopped
RUN_TIMEOUT_S = 600.0
#: ``--chunk-rows`` of the runs (``fishpredict predict``'s default); a file of fewer
#: rows is one smaller request, so flatness is judged from one full chunk up
CHUNK_ROWS = 200_000


@dataclass(frozen=True)
class PredictRun:
    """One ``fishpredict predict`` process: rows in, lines out, time and peak memory."""

    rows: int
    lines: int
    seconds: float
    max_rss: int  # bytes


def _count_lines(path: Path) -> int:
    n = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            n += block.count(b"\n")
    return n


def run_predict(url: str, data: Path, rows: int, out: Path, ks: tuple[int, ...]) -> PredictRun:
    """Run ``fishpredict predict --url URL --data DATA --k KS --out OUT`` to its end."""
    argv = [sys.executable, "-m", "fishpredict", "predict", "--url", url, "--data", str(data),
            "--k", ",".join(map(str, ks)), "--out", str(out), "--chunk-rows", str(CHUNK_ROWS)]
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=err)
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                os.wait4(proc.pid, 0)
                raise ConfigError(f"fishpredict predict took over {RUN_TIMEOUT_S:g} s")
            time.sleep(0.05)  # polling the child's exit, bounded by the deadline
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        if proc.returncode != 0:
            err.seek(0)
            tail = err.read().decode("utf-8", "replace").strip()[-500:]
            raise ConfigError(f"fishpredict predict exited with {proc.returncode}: {tail}")
    return PredictRun(rows, _count_lines(out), seconds, usage.ru_maxrss * 1024)


def flat_memory_part(r: Reporter, rows: int) -> None:
    """``fishpredict predict --url`` on ``rows`` and ``10 * rows`` generated rows x the seed's
    five k: the peak memory of each run, side by side, and the flat-memory target."""
    say, ks = r.say, tuple(SEED_KS)
    sizes = (rows, 10 * rows)
    say(f"... flat memory: fishpredict predict --url on {sizes[0]:,} and {sizes[1]:,} rows "
        f"x {len(ks)} k")
    runs = []
    with tempfile.TemporaryDirectory(prefix="fishpredict-flat-") as tmp, \
            fishpredict_server("socket") as srv:
        for n in sizes:
            data, out = Path(tmp, f"{n}.npy"), Path(tmp, f"{n}.csv")
            synth.write(data, n, seed=5)
            r.settle()
            runs.append(run_predict(srv.url, data, n, out, ks))
            data.unlink()
            out.unlink()
    small, big = runs
    say(f"\n## c2. flat memory: fishpredict predict --url, .npy in, CSV out, k = "
        f"{','.join(map(str, ks))}, --chunk-rows {CHUNK_ROWS:,}")
    lines: list[tuple[str, ...]] = [
        ("rows", "output lines", "seconds", "predictions/s", "peak RSS MB")
    ]
    for run in runs:
        lines.append((f"{run.rows:,}", f"{run.lines:,}", f"{run.seconds:.1f}",
                      f"{run.rows * len(ks) / run.seconds:,.0f}", f"{run.max_rss / 2**20:,.1f}"))
    say(table(lines))
    complete = all(run.lines == run.rows + 1 for run in runs)  # the header line, then a row each
    say(f"check: every input row has its output line (plus the header) -> "
        f"{'yes' if complete else 'NO'}")
    got = ratio(big.max_rss, small.max_rss)
    text = (f"peak memory for {big.rows:,} rows <= {TARGET_FLAT_RATIO:g}x that for "
            f"{small.rows:,} -> {big.max_rss / 2**20:,.1f} / {small.max_rss / 2**20:,.1f} MB "
            f"= {got:.2f}x")
    if small.rows >= CHUNK_ROWS:
        r.target("flat_memory", complete and got <= TARGET_FLAT_RATIO, text)
    else:
        r.verdicts["flat_memory_lines"] = complete
        say(f"note: {small.rows:,} rows is less than one chunk of {CHUNK_ROWS:,}, so the "
            "two runs do not compare whole chunks")
        say(f"target: {text} (not judged)")
    r.figures["flat_memory"] = {
        "ks": list(ks),
        "runs": [{"rows": x.rows, "lines": x.lines, "seconds": x.seconds,
                  "max_rss_bytes": x.max_rss} for x in runs],
    }
