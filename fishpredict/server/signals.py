"""The signals ``fishpredict serve`` handles, and those that come too early.

SIGTERM/SIGINT: every worker stops accepting, marks itself not ready
(``/readyz`` answers 503), finishes in-flight requests within the drain
timeout, and exits 0. SIGHUP reloads the models from disk. A signal that
arrives before a process's real handlers are in place (right after the announce
line, or in a worker just forked) is remembered in :data:`early` and handled
once they are.
"""

from __future__ import annotations

import signal

#: The signals serve handles.
HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
#: Signals that arrived before the real handlers were in place (see remember_signals).
early: list[int] = []


def _remember(signum: int, _frame: object) -> None:
    """Start-up handler: a SIGTERM sent right after the announce line (or before a
    worker's event loop runs) is remembered and handled, not fatal. Other threads
    (BLAS, OpenMP) exist by then, so blocking the signal would not be enough."""
    early.append(signum)


def remember_signals(*, forget: bool = True) -> None:
    """Until the real handlers are in place, remember the handled signals in :data:`early`."""
    if forget:
        early.clear()
    for signum in HANDLED_SIGNALS:
        signal.signal(signum, _remember)
