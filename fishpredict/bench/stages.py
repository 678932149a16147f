"""Open-model stages: an arrival rate that ramps, k6's ``ramping-arrival-rate``.

``--stages 10s:100,30s:2000,10s:0`` starts at rate 0 and moves linearly to each
stage's target over the stage's duration: 0 -> 100/s over 10 s, 100 -> 2,000/s
over 30 s, 2,000 -> 0/s over 10 s. A plain ``--rate R`` is one flat stage.

:class:`Schedule` gives the intended send time of the ``i``-th request over all
processes: the time ``t`` at which the expected count ``N(t) = integral of
rate`` reaches ``i`` (request 0 at the start). Process ``p`` of ``P`` sends
requests ``p, p + P, p + 2P, ...``, so the processes interleave as with a flat
rate. Everything is closed form (a quadratic per stage), so a long run at a
high rate needs no table.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from fishpredict.errors import ConfigError

_STAGE = re.compile(r"^\s*(?P<d>\d+(?:\.\d+)?)\s*(?P<u>ms|s|m|h)?\s*:\s*(?P<r>\d+(?:\.\d+)?)\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}

Stages = tuple[tuple[float, float], ...]


def parse_stages(text: str) -> Stages:
    """``"10s:100,30s:2000,10s:0"`` -> ``((10.0, 100.0), (30.0, 2000.0), (10.0, 0.0))``."""
    out = []
    for part in text.split(","):
        m = _STAGE.match(part)
        if not m:
            raise ConfigError(
                f"bad stage {part.strip()!r}: expected DURATION:RATE, e.g. 10s:100,30s:2000"
            )
        seconds = float(m["d"]) * _UNIT[m["u"]]
        if seconds <= 0:
            raise ConfigError(f"stage {part.strip()!r} has no duration")
        out.append((seconds, float(m["r"])))
    if not any(rate > 0 for _, rate in out):
        raise ConfigError(f"stages {text!r} never send: every target rate is 0")
    return tuple(out)


def format_stages(stages: Sequence[tuple[float, float]]) -> str:
    return ",".join(f"{d:g}s:{r:g}" for d, r in stages)


@dataclass(frozen=True)
class Schedule:
    """A piecewise-linear arrival rate from ``start_rate``; ``stages`` as parsed."""

    stages: Stages
    start_rate: float = 0.0

    @classmethod
    def flat(cls, rate: float, duration_s: float) -> Schedule:
        return cls(((duration_s, rate),), start_rate=rate)

    @property
    def duration_s(self) -> float:
        return sum(d for d, _ in self.stages)

    @property
    def peak_rate(self) -> float:
        return max([self.start_rate, *(r for _, r in self.stages)])

    def _pieces(self) -> list[tuple[float, float, float, float, float]]:
        """(start time, duration, rate at start, rate at end, count before) per stage."""
        out, t, r0, n = [], 0.0, self.start_rate, 0.0
        for d, r1 in self.stages:
            out.append((t, d, r0, r1, n))
            n += (r0 + r1) / 2 * d
            t, r0 = t + d, r1
        return out

    def rate_at(self, t: float) -> float:
        for t0, d, r0, r1, _ in self._pieces():
            if t < t0 + d:
                return r0 + (r1 - r0) * max(0.0, t - t0) / d
        return self.stages[-1][1]

    def count(self, t: float) -> float:
        """Expected requests due in ``[0, t]``: the integral of the rate."""
        if t <= 0:
            return 0.0
        total = 0.0
        for t0, d, r0, r1, n in self._pieces():
            if t <= t0 + d:
                x = t - t0
                return n + r0 * x + (r1 - r0) / d * x * x / 2
            total = n + (r0 + r1) / 2 * d
        return total + self.stages[-1][1] * (t - self.duration_s)  # past the end: last rate

    @property
    def total(self) -> float:
        return self.count(self.duration_s)

    def time_of(self, n: float) -> float:
        """When the count reaches ``n`` (seconds; ``inf`` when it never does)."""
        if n <= 0:
            return 0.0
        for t0, d, r0, r1, before in self._pieces():
            inside = (r0 + r1) / 2 * d
            if n <= before + inside:
                m = n - before
                a = (r1 - r0) / d / 2  # m = r0 x + a x^2
                if abs(a) < 1e-12:
                    return t0 + (m / r0 if r0 > 0 else 0.0)
                disc = max(0.0, r0 * r0 + 4 * a * m)
                x = (2 * m) / (r0 + math.sqrt(disc)) if r0 + math.sqrt(disc) > 0 else 0.0
                return t0 + min(max(x, 0.0), d)
        last = self.stages[-1][1]
        if last <= 0:
            return math.inf
        return self.duration_s + (n - self.total) / last

    def intended_per_second(self, seconds: int) -> list[float]:
        """Requests due in each whole second ``[s, s+1)`` for ``s < seconds``."""
        return [self.count(s + 1) - self.count(s) for s in range(seconds)]
