"""What a benchmark run should do: :class:`BenchConfig`, and its validation.

A run is always bounded: by ``duration_s`` (default 10 s, at most
:data:`MAX_DURATION_S`) and/or by ``requests``; whichever comes first stops it.
Targets must be loopback addresses unless ``allow_remote`` is set.
"""

from __future__ import annotations

import ipaddress
import math
import os
import socket
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal
from urllib.parse import urlsplit

from fishpredict.bench.stages import Schedule, Stages
from fishpredict.errors import ConfigError

#: what each request is: ``GET /fish`` (one row), ``POST /predict`` (``batch_rows`` rows),
#: a fixed ``GET``, or ``batch_rows`` rows in the V2 (``/v2/models/{model}/infer``) or
#: KServe V1 (``/v1/models/{model}:predict``) protocol
Endpoint = Literal["fish", "batch", "get", "v2", "v1"]
ENDPOINTS: tuple[str, ...] = ("fish", "batch", "get", "v2", "v1")
#: the endpoints whose requests name no model (``--model`` is refused with them)
NO_MODEL_ENDPOINTS: tuple[str, ...] = ("fish", "get")
BodyFormat = Literal["json", "npy"]
Engine = Literal["native", "wrk"]

DEFAULT_DURATION_S = 10.0
#: no run may last longer than this, whatever it is asked
MAX_DURATION_S = 3600.0
MAX_REQUESTS = 1_000_000_000
MAX_USERS = 100_000
MAX_RATE = 10_000_000.0
#: a send later than this after its intended time counts as late (open model)
DEFAULT_LATE_MS = 2.0


@dataclass(frozen=True)
class Target:
    """Where the requests go: ``http://host:port`` plus an optional path prefix."""

    host: str
    port: int
    path: str
    query: str

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        q = f"?{self.query}" if self.query else ""
        return f"http://{self.host_header}{self.path or '/'}{q}"


def parse_target(url: str) -> Target:
    """Split ``http://host[:port][/prefix][?query]``; only plain HTTP is supported."""
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise ConfigError(f"only http:// targets are supported, got {url!r}")
    if not parts.hostname:
        raise ConfigError(f"no host in target URL {url!r}")
    try:
        port = parts.port or 80
    except ValueError:
        raise ConfigError(f"bad port in target URL {url!r}") from None
    return Target(host=parts.hostname, port=port, path=parts.path, query=parts.query)


def is_loopback(host: str) -> bool:
    """True when every address ``host`` resolves to is a loopback address."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return False
    addrs = {str(info[4][0]).split("%")[0] for info in infos}  # drop an IPv6 zone
    return bool(addrs) and all(ipaddress.ip_address(a).is_loopback for a in addrs)


@dataclass(frozen=True)
class BenchConfig:
    """One benchmark run. Defaults give a 10 s closed-model run of 16 users.

    Closed model (``rate is None``): ``processes x threads`` virtual users, each
    one keep-alive connection with one request in flight. Open model
    (``rate`` set): requests at fixed intended times, ``rate`` per second in
    total, over ``connections`` connections; latency counts from the intended
    send time.
    """

    url: str
    processes: int = 1
    threads: int = 16
    duration_s: float | None = None
    requests: int | None = None
    #: seconds between ramp-up steps (``None``: every user starts at once)
    ramp_up_s: float | None = None
    #: users added per step (default: a tenth of all users, at least 1)
    ramp_step: int | None = None
    #: users running from the start when ramping (default: ``ramp_step``)
    ramp_initial: int | None = None
    rate: float | None = None
    connections: int | None = None
    endpoint: Endpoint = "fish"
    #: the model a ``batch`` (``/predict?model=``), ``v2`` or ``v1`` request names
    #: (default: the fish KNN of each k in ``ks``)
    model: str | None = None
    batch_rows: int = 16
    body: BodyFormat = "json"
    ks: tuple[int, ...] = (5,)
    data: str | None = None
    pool_size: int = 1024
    seed: int = 0
    check_answers: bool = True
    timeout_s: float = 5.0
    late_ms: float = DEFAULT_LATE_MS
    engine: Engine = "native"
    allow_remote: bool = False
    use_uvloop: bool = True
    start_method: str | None = None
    #: print live progress to stderr
    progress: bool = False
    extra_headers: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    #: open model with a ramping arrival rate: ``(seconds, target rate)`` per stage
    #: (see :mod:`fishpredict.bench.stages`); replaces ``rate``
    stages: Stages | None = None
    #: a mix: ``(weight, "key=value,...")`` per item (see :mod:`fishpredict.bench.mix`)
    mix: tuple[tuple[float, str], ...] = ()
    #: probe the target and learn its answers at rest before the load
    #: (:mod:`fishpredict.bench.preflight`); answers are checked only with it
    preflight: bool = True

    # -- derived --------------------------------------------------------------------------
    @property
    def target(self) -> Target:
        return parse_target(self.url)

    @property
    def open_model(self) -> bool:
        return self.rate is not None or bool(self.stages)

    @property
    def peak_rate(self) -> float:
        """The open model's highest intended rate (0 in the closed model)."""
        if self.stages:
            return max(r for _, r in self.stages)
        return self.rate or 0.0

    @property
    def schedule(self) -> Schedule:
        """The open model's intended arrival rate over time."""
        if self.stages:
            return Schedule(self.stages)
        return Schedule.flat(self.rate or 0.0, self.effective_duration_s)

    @property
    def users(self) -> int:
        """Virtual users (closed model) or connections (open model) in total."""
        if self.open_model:
            return self.connections or max(
                self.processes, min(256, max(16, math.ceil(self.peak_rate / 1000)))
            )
        return self.processes * self.threads

    @property
    def effective_duration_s(self) -> float:
        """The time limit in force: the given one, else the default. With only a request
        count: the cap (closed model), or the schedule's length plus 10 % and 1 s (open)."""
        if self.duration_s is not None:
            return self.duration_s
        if self.stages:
            return min(MAX_DURATION_S, sum(d for d, _ in self.stages))
        if self.requests is None:
            return DEFAULT_DURATION_S
        if self.rate:
            return min(MAX_DURATION_S, self.requests / self.rate * 1.1 + 1.0)
        return MAX_DURATION_S

    @property
    def effective_ramp_step(self) -> int:
        return self.ramp_step or max(1, self.users // 10)

    @property
    def effective_ramp_initial(self) -> int:
        return self.ramp_initial if self.ramp_initial is not None else self.effective_ramp_step

    def user_start_s(self, user: int) -> float:
        """When virtual user ``user`` (0-based, global) starts, nGrinder style.

        ``ramp_initial`` users start at 0; then ``ramp_step`` more every
        ``ramp_up_s`` seconds until all have started.
        """
        if not self.ramp_up_s or self.open_model:
            return 0.0
        initial = self.effective_ramp_initial
        if user < initial:
            return 0.0
        return self.ramp_up_s * (1 + (user - initial) // self.effective_ramp_step)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ks"] = list(self.ks)
        d["extra_headers"] = [list(h) for h in self.extra_headers]
        d["stages"] = [list(st) for st in self.stages] if self.stages else None
        d["mix"] = [list(m) for m in self.mix]
        return d

    def validated(self) -> BenchConfig:
        """Check every value; return the config itself (for chaining) or raise ConfigError."""
        target = self.target
        if not self.allow_remote and not is_loopback(target.host):
            raise ConfigError(
                f"refusing to load non-loopback target {target.host!r}; "
                "pass --allow-remote (allow_remote=True) only for a host you own"
            )
        _positive("processes", self.processes, 1024)
        _positive("threads", self.threads, MAX_USERS)
        if self.processes * self.threads > MAX_USERS:
            raise ConfigError(
                f"at most {MAX_USERS} virtual users, got {self.processes} x {self.threads}"
            )
        if self.duration_s is not None and not 0 < self.duration_s <= MAX_DURATION_S:
            raise ConfigError(
                f"duration must be in (0, {MAX_DURATION_S:g}] seconds, got {self.duration_s}"
            )
        if self.requests is not None:
            _positive("requests", self.requests, MAX_REQUESTS)
        if self.ramp_up_s is not None and not 0 < self.ramp_up_s <= MAX_DURATION_S:
            raise ConfigError(f"ramp-up interval must be positive, got {self.ramp_up_s}")
        if self.ramp_step is not None:
            _positive("ramp step", self.ramp_step, MAX_USERS)
        if self.ramp_initial is not None and not 0 <= self.ramp_initial <= MAX_USERS:
            raise ConfigError(f"ramp initial users must be >= 0, got {self.ramp_initial}")
        if self.rate is not None and not 0 < self.rate <= MAX_RATE:
            raise ConfigError(f"rate must be in (0, {MAX_RATE:g}] requests/s, got {self.rate}")
        if self.connections is not None:
            _positive("connections", self.connections, MAX_USERS)
            if self.connections < self.processes:
                raise ConfigError("need at least one connection per process")
        if self.open_model and self.ramp_up_s:
            raise ConfigError("ramp-up applies to the closed model only (not with --rate)")
        if self.stages is not None:
            if self.rate is not None:
                raise ConfigError("give --rate or --stages, not both")
            if not self.stages or any(d <= 0 or r < 0 or r > MAX_RATE for d, r in self.stages):
                raise ConfigError("every stage needs a positive duration and a rate >= 0")
            if not any(r > 0 for _, r in self.stages):
                raise ConfigError("the stages never send: every target rate is 0")
            if sum(d for d, _ in self.stages) > MAX_DURATION_S:
                raise ConfigError(f"the stages last more than {MAX_DURATION_S:g} s")
        for weight, _ in self.mix:
            if not 0 < weight < 1e9:
                raise ConfigError(f"mix weights must be positive, got {weight:g}")
        _positive("batch rows", self.batch_rows, 100_000)
        _positive("pool size", self.pool_size, 1_000_000)
        if not self.ks or any(k < 1 for k in self.ks):
            raise ConfigError(f"k values must be positive integers, got {list(self.ks)}")
        if not 0 < self.timeout_s <= 600:
            raise ConfigError(f"timeout must be in (0, 600] seconds, got {self.timeout_s}")
        if self.late_ms <= 0:
            raise ConfigError("late threshold must be positive")
        if self.endpoint not in ENDPOINTS:
            raise ConfigError(f"unknown endpoint {self.endpoint!r}; known: {', '.join(ENDPOINTS)}")
        if self.model is not None and (not self.model or "/" in self.model):
            raise ConfigError(f"model must be a model's name, got {self.model!r}")
        if self.model is not None and self.endpoint in NO_MODEL_ENDPOINTS:
            raise ConfigError(f"--model names the model of batch, v2 and v1 requests; "
                              f"--endpoint {self.endpoint} does not send one (add --endpoint v2)")
        if self.body not in ("json", "npy"):
            raise ConfigError(f"unknown body format {self.body!r}; known: json, npy")
        if self.engine not in ("native", "wrk"):
            raise ConfigError(f"unknown engine {self.engine!r}; known: native, wrk")
        if self.data is not None and not os.path.exists(self.data):
            raise ConfigError(f"data file not found: {self.data}")
        return self

    def with_(self, **changes: Any) -> BenchConfig:
        """A copy with some fields changed."""
        return replace(self, **changes)


def _positive(name: str, value: int, limit: int) -> None:
    if not isinstance(value, int) or not 1 <= value <= limit:
        raise ConfigError(f"{name} must be an integer in [1, {limit}], got {value!r}")
