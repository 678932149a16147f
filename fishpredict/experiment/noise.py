"""When a run of ``experiment seed`` cannot conclude: a busy machine, or contradictory timings.

The findings compare figures measured on a shared 2-core machine. When other
processes were busy (the 1-minute load average at the start or the end of the run
reached :data:`BUSY_LOAD` per core), or when the per-request costs contradict each
other (unpickling and predicting together measured faster than predicting alone:
only a disturbed timing does that), the report states the figures but draws no
conclusion from them, and says why.
"""

from __future__ import annotations

import math
import os
from typing import Protocol

from fishpredict.experiment.costs import RequestCosts

#: a load average per core at or above this means other work shared the CPUs
BUSY_LOAD = 0.5


class _Run(Protocol):
    load_average: float
    load_average_end: float
    costs: RequestCosts


def disturbances(run: _Run, cores: int | None = None) -> list[str]:
    """Why the run's figures cannot support conclusions (empty when they can)."""
    cores = cores or os.cpu_count() or 1
    out = []
    for when, load in (("began", run.load_average), ("ended", run.load_average_end)):
        if math.isfinite(load) and load >= BUSY_LOAD * cores:
            out.append(
                f"the machine was busy when the run {when}: load average {load:.2f} on "
                f"{cores} cores, so other processes shared the CPUs the loads measure"
            )
    c = run.costs
    if not (c.per_request_load_us > 0 and c.unpickle_us > 0 and c.sklearn_predict_us > 0):
        out.append(
            f"the per-request timings contradict each other (unpickle + predict "
            f"{c.load_and_predict_us:.1f} us against predict alone {c.sklearn_predict_us:.1f} "
            "us): other work disturbed them"
        )
    return out
