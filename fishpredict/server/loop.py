"""One worker process: its event loop, the backend serving until told to stop.

:func:`run_worker` freezes what is loaded (so forked pages stay shared and
full collections stay short), keeps native code single-threaded, runs the
backend in uvloop's loop when installed (:func:`new_event_loop`), turns
SIGTERM/SIGINT into the backend's ``stop`` event (after which it drains) and
SIGHUP into a model reload.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket

from fishpredict.app.service import Service
from fishpredict.backend import Backend
from fishpredict.server import reload as cluster
from fishpredict.server import signals
from fishpredict.server.accept import fair_accept_loop_class
from fishpredict.server.binding import raise_fd_limit

log = logging.getLogger("fishpredict.server.serve")

#: Exit code of a worker whose backend raised.
WORKER_FAILED = 70


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when installed (faster), else asyncio's. uvloop's accepts every
    queued connection per turn, as asyncio's does (see :mod:`fishpredict.server.accept`)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    global _fair_loop
    if _fair_loop is None:
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
    link = cluster.link_for(service)  # --workers N: reloads go through the supervisor
    if link is not None:
        link.attach(loop)
    for signum in signals.early:
        if signum == signal.SIGHUP:
            on_hup()
        else:
            on_stop(signal.Signals(signum).name)
    signals.early.clear()
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
    if service.batcher is not None:
        service.batcher.bind(loop)  # this process's one loop
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
