"""The process model of ``fishpredict serve``.

1. Load the models once, in the parent process.
2. Listen on one address (loopback unless told otherwise).
3. With one worker, serve in this process. With ``workers=N``, fork N
   workers after loading, so they share the model pages copy-on-write
   (``gc.freeze`` keeps the collector from dirtying them). The parent binds
   the port before forking and supervises: a worker that dies is replaced,
   and its replacement takes over the same listening socket.

   How the workers accept (``ServeConfig.reuse_port``): by default, where the
   kernel has ``SO_REUSEPORT``, each worker has its own accept queue on the
   one port and the kernel spreads new connections over them by a hash of
   the client's address. With one socket shared by every worker, whichever
   worker wakes first takes every connection queued at that moment: a burst
   of 64 keep-alive connections measured 64 + 0 in three runs of five
   (docs/performance.md), leaving one worker idle for the whole load.
4. SIGTERM/SIGINT: every worker stops accepting, marks itself not ready
   (``/readyz`` answers 503), finishes in-flight requests within the drain
   timeout, and exits 0. SIGHUP reloads the models from disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import gc
import logging
import os
import resource
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from typing import TextIO

from .backend import Backend
from .config import ServeConfig
from .contract import Service
from .errors import ConfigError
from .metrics import Metrics
from .plugins import registry
from .predictor import Predictor

log = logging.getLogger("fishpredict.serve")

#: Exit code of a worker whose backend raised.
WORKER_FAILED = 70
#: The signals serve handles.
HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
#: Signals that arrived before the real handlers were in place (see _remember).
_early: list[int] = []


def _remember(signum: int, _frame: object) -> None:
    """Start-up handler: a SIGTERM sent right after the announce line (or before a
    worker's event loop runs) is remembered and handled, not fatal. Other threads
    (BLAS, OpenMP) exist by then, so blocking the signal would not be enough."""
    _early.append(signum)


def _remember_signals(*, forget: bool = True) -> None:
    if forget:
        _early.clear()
    for signum in HANDLED_SIGNALS:
        signal.signal(signum, _remember)


#: whether this kernel can give each worker its own accept queue on one port
HAVE_REUSEPORT = hasattr(socket, "SO_REUSEPORT") and sys.platform.startswith("linux")


def bind(host: str, port: int, backlog: int = 4096, *, reuse_port: bool = False
         ) -> socket.socket:
    """A listening, non-blocking TCP socket; :class:`ConfigError` if the address is unusable.

    ``reuse_port`` sets ``SO_REUSEPORT``, so that more sockets may join the port
    (see :func:`listen`).
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot resolve host {host!r}: {exc.strerror}") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(addr)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"port {port} on {host} is already in use") from None
        if exc.errno == errno.EACCES:
            raise ConfigError(f"no permission to listen on {host}:{port}") from None
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def listen(host: str, port: int, count: int, backlog: int = 4096) -> list[socket.socket]:
    """``count`` listening sockets on one port, joined with ``SO_REUSEPORT``: one accept
    queue per worker, the kernel spreading new connections over them.

    A plain socket binds first and is closed again, so that a port some other
    process listens on is refused as in :func:`bind` (a ``SO_REUSEPORT`` socket
    would join another process's group of the same user instead). With port 0
    it picks the free port that the group then binds.
    """
    probe = bind(host, port, backlog)
    port = probe.getsockname()[1]
    probe.close()
    group: list[socket.socket] = []
    try:
        for _ in range(count):
            group.append(bind(host, port, backlog, reuse_port=True))
    except ConfigError:
        for sock in group:
            sock.close()
        raise
    return group


def raise_fd_limit() -> None:
    """Let a worker hold as many connections as the hard limit allows."""
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when installed (faster), else asyncio's. uvloop's accepts every
    queued connection per turn, as asyncio's does (see :mod:`fishpredict.accept`)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    global _fair_loop
    if _fair_loop is None:
        from .accept import fair_accept_loop_class

        _fair_loop = fair_accept_loop_class(uvloop.Loop)
    loop: asyncio.AbstractEventLoop = _fair_loop()
    return loop


_fair_loop: type[asyncio.AbstractEventLoop] | None = None


async def _serve_until_signalled(backend: Backend, service: Service, sock: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_stop(signame: str) -> None:
        if not stop.is_set():
            log.info("%s: draining (up to %.0fs)", signame, service.config.drain_timeout)
            service.draining = True
            stop.set()

    def on_hup() -> None:
        response = service.reload()
        log.info("SIGHUP: reload answered %d", response.status)

    loop.add_signal_handler(signal.SIGTERM, on_stop, "SIGTERM")
    loop.add_signal_handler(signal.SIGINT, on_stop, "SIGINT")
    loop.add_signal_handler(signal.SIGHUP, on_hup)
    for signum in _early:
        if signum == signal.SIGHUP:
            on_hup()
        else:
            on_stop(signal.Signals(signum).name)
    _early.clear()
    task = asyncio.ensure_future(backend.serve(service, sock, stop))
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if not task.done():
        # The backend drains on its own; give it the drain timeout plus a margin.
        try:
            await asyncio.wait_for(task, service.config.drain_timeout + 2.0)
        except TimeoutError:
            log.warning("backend did not finish draining in time; exiting anyway")
    else:
        stopper.cancel()
        task.result()  # a backend that returned without being stopped: surface its error


def limit_native_threads() -> None:
    """One BLAS/OpenMP thread per worker process.

    A server's parallelism is its worker processes. scikit-learn's OpenMP
    thread pool would otherwise compete with the event loop for the cores, and
    GNU OpenMP's pool does not survive ``fork`` (a forked worker that enters a
    parallel region can stall), so workers keep native code single-threaded.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a scikit-learn dependency
        return
    threadpool_limits(limits=1)


def run_worker(backend: Backend, service: Service, sock: socket.socket) -> int:
    """Serve in this process until SIGTERM/SIGINT; the exit code."""
    raise_fd_limit()
    limit_native_threads()
    # Everything alive now (models, modules) stays: keep the collector off it, so
    # full collections under load are short and forked pages stay shared.
    gc.collect()
    gc.freeze()
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(_serve_until_signalled(backend, service, sock))
    except Exception:
        log.exception("worker %d failed", os.getpid())
        return WORKER_FAILED
    finally:
        with contextlib.suppress(Exception):
            loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        if service.metrics is not None:
            try:
                service.metrics.close()  # the last counts, for the siblings that stay
            except Exception:
                log.exception("worker %d could not share its last metrics", os.getpid())
    return 0


def _fork_worker(work: Callable[[], int]) -> int:
    # A signal that reached the child before Python's after-fork reset would be
    # dropped, so the child starts with them blocked (kept pending by the kernel)
    # and unblocks once its start-up handler is in place.
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            _remember_signals(forget=False)  # until this worker's event loop handles them
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
            code = work()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return pid


def supervise(work: Callable[[int], int], workers: int, drain_timeout: float) -> int:
    """Fork ``workers`` children, child ``i`` running ``work(i)``; replace any that
    dies with a new child of the same index, and forward SIGTERM/SIGINT/SIGHUP.
    Returns 0 when every worker drained cleanly."""
    gc.collect()
    gc.freeze()  # keep model pages shared: the collector won't touch frozen objects
    #: pid -> (worker index, start time)
    children: dict[int, tuple[int, float]] = {}
    stopping = False
    received: list[int] = []

    supervisor = os.getpid()

    def on_signal(signum: int, _frame: object) -> None:
        if os.getpid() != supervisor:  # a child just forked, before its own handlers
            _early.append(signum)
        else:
            received.append(signum)

    old = {s: signal.signal(s, on_signal) for s in HANDLED_SIGNALS}
    received.extend(_early)
    _early.clear()
    try:
        for index in range(workers):
            children[_fork_worker(functools.partial(work, index))] = (index, time.monotonic())
        failures = 0
        deadline: float | None = None
        while children:
            while received:
                signum = received.pop(0)
                if signum == signal.SIGHUP:
                    for pid in children:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGHUP)
                    continue
                if not stopping:
                    stopping = True
                    deadline = time.monotonic() + drain_timeout + 5.0
                    for pid in children:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGTERM)
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                if deadline is not None and time.monotonic() > deadline:
                    for p in children:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(p, signal.SIGKILL)
                    failures += 1
                    deadline = None
                time.sleep(0.05)  # a supervisor tick; signals are handled on the next pass
                continue
            index, started = children.pop(pid)
            code = os.waitstatus_to_exitcode(status)
            if stopping:
                failures += code != 0
                continue
            log.warning("worker %d exited with %d; starting a new one", pid, code)
            if time.monotonic() - started < 1.0:
                time.sleep(1.0)  # a worker that dies at once: don't spin
            children[_fork_worker(functools.partial(work, index))] = (index, time.monotonic())
        return 0 if failures == 0 else 1
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


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
    _remember_signals()
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

        # The workers share their metrics through files here (fishpredict.metrics_share).
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
            return supervise(work, config.workers, config.drain_timeout)
        finally:
            if share_dir is not None:
                shutil.rmtree(share_dir, ignore_errors=True)
    finally:
        for sock in sockets:
            sock.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
