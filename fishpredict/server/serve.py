"""``fishpredict serve``: load once, bind, serve in one process or a supervised few.

1. Load the models once, in the parent process.
2. Listen on one address (loopback unless told otherwise):
   :mod:`fishpredict.server.binding`.
3. With one worker, serve in this process (:mod:`fishpredict.server.loop`).
   With ``workers=N``, fork N workers after loading, so they share the model
   pages copy-on-write; the parent supervises: a worker that dies is replaced,
   and its replacement takes over the same listening socket
   (:mod:`fishpredict.server.supervisor`).
4. SIGTERM/SIGINT: every worker stops accepting, marks itself not ready
   (``/readyz`` answers 503), finishes in-flight requests within the drain
   timeout, and exits 0. SIGHUP, or ``POST /admin/reload`` on any worker, reloads
   the models from disk in every worker together, or in none
   (:mod:`fishpredict.server.reload`).

The layers' names stay importable from here (``bind``, ``listen``,
``HAVE_REUSEPORT``, ``new_event_loop``, ``run_worker``, ``supervise``, ...).
"""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from typing import TextIO

from fishpredict.app.config import ServeConfig
from fishpredict.app.metrics import Metrics
from fishpredict.app.service import Service
from fishpredict.errors import ConfigError
from fishpredict.plugins import registry
from fishpredict.predictor import Predictor
from fishpredict.server.binding import BACKLOG, HAVE_REUSEPORT, bind, listen, raise_fd_limit
from fishpredict.server.loop import WORKER_FAILED, limit_native_threads, new_event_loop, run_worker
from fishpredict.server.reload import Coordinator
from fishpredict.server.signals import HANDLED_SIGNALS, remember_signals
from fishpredict.server.supervisor import fork_worker, supervise

__all__ = [
    "BACKLOG",
    "HANDLED_SIGNALS",
    "HAVE_REUSEPORT",
    "WORKER_FAILED",
    "bind",
    "fork_worker",
    "limit_native_threads",
    "listen",
    "new_event_loop",
    "raise_fd_limit",
    "run_worker",
    "serve",
    "supervise",
]


def serve(
    backend_name: str,
    config: ServeConfig,
    predictor: Predictor | Callable[[], Predictor],
    *,
    announce: TextIO | None = sys.stdout,
) -> int:
    """Run ``fishpredict serve``: the exit code (0 after a clean drain)."""
    backend = registry().get_available_backend(backend_name)
    pred = predictor if isinstance(predictor, Predictor) else predictor()
    per_worker = config.workers > 1 and config.reuse_port and HAVE_REUSEPORT
    if per_worker:
        sockets = listen(config.host, config.port, config.workers)
    else:
        sockets = [bind(config.host, config.port)]
    port = sockets[0].getsockname()[1]
    previous = {signum: signal.getsignal(signum) for signum in HANDLED_SIGNALS}
    remember_signals()
    if announce is not None:
        print(
            f"fishpredict: serving {len(pred.models())} models with backend {backend.name!r}, "
            f"{config.workers} worker{'s' if config.workers > 1 else ''}"
            f"{' (one accept queue each)' if per_worker else ''}, "
            f"on http://{config.host}:{port}",
            file=announce,
            flush=True,
        )
    try:
        if config.workers == 1:
            return run_worker(backend, Service(pred, config), sockets[0])

        # The workers share their metrics through files here (fishpredict.app.metrics_share).
        share_dir = None
        if config.metrics:
            try:
                share_dir = tempfile.mkdtemp(prefix="fishpredict-metrics-")
            except OSError as exc:
                raise ConfigError(f"no directory for the workers' metrics: {exc}") from None

        def work(index: int) -> int:
            mine = sockets[index] if per_worker else sockets[0]
            for other in sockets:
                if other is not mine:
                    other.close()  # this process's copy only; the supervisor keeps them
            metrics = Metrics(share_dir=share_dir) if share_dir is not None else None
            return run_worker(backend, Service(pred, config, metrics=metrics), mine)

        try:
            return supervise(work, config.workers, config.drain_timeout, Coordinator(pred))
        finally:
            if share_dir is not None:
                shutil.rmtree(share_dir, ignore_errors=True)
    finally:
        for sock in sockets:
            sock.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
