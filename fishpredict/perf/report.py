"""What every serving suite prints besides its tables: verdicts, ratios, the CPU legend,
the machine's state before and after the run, and the notes a load left.

Kept apart from :mod:`fishpredict.perf.loads` (which measures) so the suites share one
wording for the same thing.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from fishpredict.perf.loads import Measurement

#: how the bench's warning about a saturated machine begins
MACHINE_BUSY_WARNING = "the machine's CPUs were"
#: a machine busier than this (%) in the second before a run earns a warning
BUSY_BEFORE_PCT = 15.0


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def ratio(a: float, b: float) -> float:
    """``a / b``, NaN when ``b`` is zero (a failed baseline shows as nan, not a crash)."""
    return a / b if b else float("nan")


def cores(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def cpu_legend() -> str:
    """What the CPU columns of every suite's tables mean."""
    return (
        "(CPU columns, in cores kept busy on average out of the machine's "
        f"{os.cpu_count() or 1}: server = its process tree; gen = the load generator; irq = "
        "the part of those two spent in interrupt and softirq context, mostly the kernel's "
        "loopback TCP work; other = the rest of the machine's busy time: processes that are "
        "not part of the run)"
    )


def errors_text(m: Measurement) -> str:
    if not m.errors:
        return "0"
    detail = ", ".join(f"{k} {v}" for k, v in sorted(m.errors.items()))
    return f"{m.error_count} ({detail})"


def load_line(when: str = "before") -> str:
    """``# load average before the run: 1.02 0.80 0.55 (1, 5, 15 min)``, and before the run
    how busy the machine is right now (one second's sample), with a warning when other
    processes already take a share of the cores (``when`` is ``before`` or ``after``)."""
    try:
        one, five, fifteen = os.getloadavg()
        line = (
            f"# load average {when} the run: {one:.2f} {five:.2f} {fifteen:.2f} "
            "(1, 5, 15 min; includes this suite's own servers and generator)"
        )
    except OSError:
        line = f"# load average {when} the run: unknown"
    if when != "before":
        return line
    try:
        import psutil
    except ImportError:
        return line
    now = float(psutil.cpu_percent(interval=1.0))
    line += f"\n# machine busy in the second before the run: {now:.0f}%"
    if now > BUSY_BEFORE_PCT:
        line += (
            "\n# WARNING: other processes were using the CPUs: they share the cores with "
            "the servers and the generator, so these figures understate what it can do"
        )
    return line


def env_line() -> str:
    """The environment variables that change how scikit-learn's predict uses threads; the
    servers inherit this process's environment."""
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    values = ", ".join(f"{n}={os.environ.get(n, 'unset')}" for n in names)
    return f"# environment (inherited by the servers): {values}"


def spread_notes(measurements: Sequence[Measurement]) -> list[str]:
    """One line per multi-worker load: how its connections were spread over the workers."""
    out = []
    for m in measurements:
        if m.worker_connections:
            split = " + ".join(map(str, m.worker_connections))
            out.append(f"connections per worker during the load: {m.name}: {split}")
    return out


def notes(measurements: Sequence[Measurement]) -> list[str]:
    """The bench's warnings, once each, with the runs they came from (not the machine-busy
    one: the 'machine busy' column shows that figure for every run)."""
    seen: dict[str, list[str]] = {}
    for m in measurements:
        for w in m.warnings:
            if not w.startswith(MACHINE_BUSY_WARNING):
                seen.setdefault(w, []).append(m.name)
    return [f"note ({', '.join(names)}): {w}" for w, names in seen.items()]
