"""Serving configuration: every limit and knob, with its default, in one place.

docs/reliability.md lists each limit, its default and the status a client sees.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from fishpredict.errors import ConfigError
from fishpredict.fish.dataset import LANGUAGES, Language


@dataclass(frozen=True)
class ServeConfig:
    """How a server behaves. Immutable; build a new one to change it."""

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    #: with workers > 1: one listening socket per worker on the one port (SO_REUSEPORT;
    #: the kernel spreads connections), else one socket every worker accepts on
    reuse_port: bool = True
    labels: Language = "en"
    #: largest request body accepted (bytes); more -> 413
    max_body_bytes: int = 16 * 1024 * 1024
    #: most rows in one batch request; more -> 413
    max_batch_rows: int = 1_000_000
    #: most open client connections per worker; more -> 503 ``too_many_connections`` and close
    max_connections: int = 2048
    #: most requests being handled at once per worker; more -> 503 + Retry-After
    max_inflight: int = 1024
    #: seconds to receive a whole request head (slowloris guard); more -> 408 and close
    header_timeout: float = 10.0
    #: seconds an idle keep-alive connection is kept (then closed without an answer)
    keepalive_timeout: float = 5.0
    #: seconds a request body may take to arrive (more -> 408 ``request_timeout``, from
    #: ``Service.read_body`` or the backend's own deadline), and, on the socket backend,
    #: an answer may take to be made (more -> 503 ``timeout``)
    request_timeout: float = 30.0
    #: seconds to finish in-flight requests after SIGTERM/SIGINT
    drain_timeout: float = 10.0
    #: Retry-After seconds sent with 503/429
    retry_after: int = 1
    #: micro-batching: most rows per coalesced predict call (<= 1: off)
    batch_max: int = 256
    #: micro-batching: most microseconds to wait for more rows when others are queued
    #: (a lone request never waits). At 64 connections 200 us beat both 1 ms (which
    #: left the server idle while the batch was already whole) and 0: 10.0x against
    #: 8.3x batching off on the scikit-learn KNN path, 12,041 against 9,484 requests/s
    #: on a 100-tree forest's fast batches (docs/performance.md, "Micro-batching's wait")
    batch_wait_us: int = 200
    #: admin routes (POST /admin/reload) are off unless a token is set
    admin_token: str | None = None
    #: serve /metrics
    metrics: bool = True

    def __post_init__(self) -> None:
        if self.labels not in LANGUAGES:
            raise ConfigError(f"labels must be one of {', '.join(LANGUAGES)}, got {self.labels!r}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be 0..65535, got {self.port}")
        if self.workers < 1:
            raise ConfigError(f"workers must be at least 1, got {self.workers}")
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
                raise ConfigError(f"{f.name} must not be negative, got {value}")
        if self.admin_token is not None and len(self.admin_token) < 16:
            raise ConfigError("admin token must be at least 16 characters")

    def replace(self, **changes: Any) -> ServeConfig:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        unknown = set(changes) - set(values)
        if unknown:
            raise ConfigError(f"unknown settings: {', '.join(sorted(unknown))}")
        values.update(changes)
        return ServeConfig(**values)
