"""Virtual environments of their own for peers and clients that clash with ours
(MLServer for ``perf peers``, KServe's client for the tests): one creator at a time."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def locked(venv: Path) -> Iterator[None]:
    """Hold ``venv``'s creation lock (two runs starting at once share one environment)."""
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
