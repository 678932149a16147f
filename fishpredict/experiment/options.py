"""What ``fishpredict experiment seed`` runs: :class:`SeedOptions` and the load shape.

One load shape serves experiments 1 to 3, so their figures compare: an
nGrinder-like closed model of ``users`` virtual users in two generator
processes (one per core of the 2-core machine this was made for; the seed
used 10 processes x 100 threads), started in ten equal steps over the first
40 % of the run, each user one keep-alive connection with one request in
flight. ``--quick`` shortens every load and slice so that the whole command
runs in about two minutes (what CI runs); the default is a longer, steadier run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fishpredict.bench import BenchConfig
from fishpredict.errors import ConfigError

#: the seed's sweep of neighbour counts (experiment 4)
KS: tuple[int, ...] = (1, 5, 15, 25, 49)
#: k values the loads cycle through: every answer can be checked against its
#: label (k = 49 answers bream for every fish, so its smelt answers are "wrong")
LOAD_KS: tuple[int, ...] = (1, 5, 15, 25)
#: ramp-up steps, nGrinder style (the seed: 100 more threads per step up to 1,000)
RAMP_STEPS = 10
#: share of each load spent ramping up; the rest runs with every user on
RAMP_SHARE = 0.4
#: the seed raised its threads every 5 seconds; long runs keep that interval
SEED_RAMP_INTERVAL_S = 5.0
#: per-request timeout of the loads; a slow server shows errors, not a hang
LOAD_TIMEOUT_S = 10.0
#: the seed's per-row experiment: 100,000 rows x 5 k = 500,000 requests
SEED_ROWS = 100_000
#: every server of the run is on loopback
HOST = "127.0.0.1"


@dataclass(frozen=True)
class SeedOptions:
    """The options of one run; ``None`` means "the default for quick or full"."""

    out: Path = Path("docs/seed-report.md")
    quick: bool = False
    #: seconds per load (experiments 1-3)
    duration_s: float | None = None
    #: virtual users at the end of the ramp-up
    users: int = 1000
    #: sequential per-row requests measured per k and server (experiment 4)
    slice_requests: int | None = None
    #: rows of experiment 4 (the seed: 100,000)
    rows: int = SEED_ROWS
    #: seed of the generated rows
    seed: int = 1
    #: fishpredict backends of experiment 2
    backends: tuple[str, ...] = ("starlette", "aiohttp", "socket")
    #: the command line printed at the top of the report
    command: str = "fishpredict experiment seed"

    def validated(self) -> SeedOptions:
        """The options themselves, or :class:`ConfigError` naming the bad one."""
        if self.duration_s is not None and not 1.0 <= self.duration_s <= 600.0:
            raise ConfigError(f"--duration must be 1..600 seconds, got {self.duration_s:g}")
        if not 2 <= self.users <= 10_000:
            raise ConfigError(f"--users must be 2..10000, got {self.users}")
        if self.slice_requests is not None and not 10 <= self.slice_requests <= 100_000:
            raise ConfigError(f"--slice must be 10..100000, got {self.slice_requests}")
        if not 1_000 <= self.rows <= 10_000_000:
            raise ConfigError(f"rows must be 1,000..10,000,000, got {self.rows}")
        if self.out.suffix != ".md":
            raise ConfigError(f"--out must be a .md file, got {self.out}")
        return self

    # -- derived ------------------------------------------------------------------------
    @property
    def load_seconds(self) -> float:
        return self.duration_s if self.duration_s is not None else (5.0 if self.quick else 30.0)

    @property
    def slice_size(self) -> int:
        if self.slice_requests is not None:
            return self.slice_requests
        return 300 if self.quick else 2000

    @property
    def processes(self) -> int:
        """Generator processes: two (one per core) when the users split evenly."""
        return 2 if self.users % 2 == 0 else 1

    @property
    def threads(self) -> int:
        return self.users // self.processes

    @property
    def ramp_step(self) -> int:
        return max(1, self.users // RAMP_STEPS)

    @property
    def ramp_interval_s(self) -> float:
        """Seconds between steps: the ramp ends at :data:`RAMP_SHARE` of the run (steps at
        most the seed's 5 s apart), so most of the run has every user on."""
        return min(SEED_RAMP_INTERVAL_S, RAMP_SHARE * self.load_seconds / (RAMP_STEPS - 1))

    @property
    def chart_dir(self) -> Path:
        """Where the PNGs go: ``docs/seed-report.md`` -> ``docs/seed-report/``."""
        return self.out.with_suffix("")

    def load_config(self, url: str) -> BenchConfig:
        """The one load of experiments 1-3, against ``url``."""
        return BenchConfig(
            url=url,
            processes=self.processes,
            threads=self.threads,
            duration_s=self.load_seconds,
            ramp_up_s=self.ramp_interval_s,
            ramp_step=self.ramp_step,
            ks=LOAD_KS,
            seed=self.seed,
            timeout_s=LOAD_TIMEOUT_S,
        ).validated()

    def slice_config(self, url: str, k: int, data: str) -> BenchConfig:
        """Experiment 4's per-row slice: one user, ``slice_size`` sequential requests."""
        return BenchConfig(
            url=url,
            processes=1,
            threads=1,
            requests=self.slice_size,
            duration_s=max(30.0, self.slice_size * 0.05),
            ks=(k,),
            data=data,
            pool_size=self.slice_size,
            seed=self.seed,
            check_answers=False,
            timeout_s=LOAD_TIMEOUT_S,
        ).validated()

    def describe_load(self) -> str:
        """The load in one sentence, for the report."""
        return (
            f"closed model, {self.users:,} virtual users = {self.processes} processes x "
            f"{self.threads} threads, {self.ramp_step:,} more every "
            f"{self.ramp_interval_s:.2f} s ({RAMP_STEPS} steps over the first "
            f"{RAMP_SHARE:.0%} of the run), "
            f"{self.load_seconds:g} s per load, GET /fish with varied generated fish and "
            f"k cycling {', '.join(map(str, LOAD_KS))}, every answer checked, "
            f"{LOAD_TIMEOUT_S:g} s timeout"
        )
