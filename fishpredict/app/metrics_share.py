"""Sharing one worker's metric samples with its sibling workers.

With ``fishpredict serve --workers N`` every worker counts in its own memory,
and a scrape of ``/metrics`` reaches whichever worker the kernel hands the
connection to. So that any worker can answer for the whole server, each worker
writes a snapshot of its samples to ``<dir>/<pid>-<start>.json`` in a private
directory the supervisor made before forking: every :data:`SHARE_EVERY_S`
seconds from a daemon thread (only when something changed), on every scrape it
answers, and once more when it exits. A scrape is then the sum of every file.

Merging (:func:`merge`), per sample name and labels:

- counters, histograms and summaries add up over every worker that ever ran,
  dead ones included: a replaced worker's file stays, so totals never go
  backwards (``*_created`` takes the earliest);
- gauges (``fishpredict_worker_info``, ``fishpredict_models_loaded``) take the
  largest value over the workers still alive; a dead worker's are dropped.

Totals never go backwards from one scrape to the next, whichever worker answers
them: a worker writes its own file before it answers, and a file only grows.
A sibling's counts can be up to :data:`SHARE_EVERY_S` old. A worker killed with
SIGKILL loses what it counted after its last write (at most that last second);
one that exits cleanly loses nothing. The hot path never touches a file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fishpredict.app.series import Family, Sample, Series, unavailable

log = logging.getLogger("fishpredict.app.metrics")

#: seconds between two snapshots of a worker (when its counts changed)
SHARE_EVERY_S = 1.0
#: the version of the snapshot file layout
FORMAT = 1
#: metric types whose samples are counts, added up over workers
SUMMED_TYPES = frozenset({"counter", "histogram", "summary"})
#: the metric types of the text format (prometheus-client's ``METRIC_TYPES``)
METRIC_TYPES = frozenset({"counter", "gauge", "summary", "histogram", "gaugehistogram",
                          "unknown", "info", "stateset"})

#: one sample: (sample name, labels, value)
@dataclass(frozen=True)
class Snapshot:
    """Every sample of one worker process at one moment.

    ``started`` tells this process from an earlier one with the same pid (its
    start time in clock ticks from ``/proc``, else nanoseconds since the epoch).
    """

    pid: int
    started: int
    families: tuple[Family, ...]


def take(pid: int, started: int, families: Iterable[Family]) -> Snapshot:
    """A snapshot of ``families`` (:meth:`fishpredict.app.metrics.Metrics.families`)."""
    return Snapshot(pid, started, tuple(families))


def exposition(families: Iterable[Family]) -> bytes:
    """``families`` in the Prometheus text format, written by prometheus-client
    (imported now: serving never needs it until a scrape);
    :class:`~fishpredict.errors.MetricsUnavailable` without it."""
    try:
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.metrics_core import Metric
    except ImportError:
        raise unavailable() from None
    metrics = []
    for fam in families:
        metric = Metric(fam.name, fam.documentation, fam.type)
        for name, labels, value in fam.samples:
            metric.add_sample(name, labels, value)
        metrics.append(metric)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(metrics))
    return bytes(generate_latest(registry))


def encode(snapshot: Snapshot) -> bytes:
    """The file contents of ``snapshot`` (JSON)."""
    return json.dumps(
        {
            "format": FORMAT,
            "pid": snapshot.pid,
            "started": snapshot.started,
            "families": [
                {
                    "name": f.name,
                    "type": f.type,
                    "help": f.documentation,
                    "samples": [list(s) for s in f.samples],
                }
                for f in snapshot.families
            ],
        },
        separators=(",", ":"),
    ).encode()


def _sample(raw: Any) -> Sample:
    name, labels, value = raw
    if (
        not isinstance(name, str)
        or not isinstance(labels, dict)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items())
        or isinstance(value, bool)
        or not isinstance(value, int | float)
    ):
        raise ValueError(f"not a sample: {raw!r:.100}")
    return name, labels, float(value)


def _family(raw: Any) -> Family:
    name, typ, doc, samples = raw["name"], raw["type"], raw["help"], raw["samples"]
    if (
        not isinstance(name, str)
        or typ not in METRIC_TYPES
        or not isinstance(doc, str)
        or not isinstance(samples, list)
    ):
        raise ValueError(f"not a metric family: {name!r:.100}")
    return Family(name, typ, doc, tuple(_sample(s) for s in samples))


def decode(data: bytes) -> Snapshot:
    """The snapshot in ``data``; :class:`ValueError` if it is not a whole, valid one."""
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError("not a fishpredict metrics snapshot")
        pid, started, families = doc["pid"], doc["started"], doc["families"]
        if not (isinstance(pid, int) and isinstance(started, int) and isinstance(families, list)):
            raise ValueError("bad pid, start or families")
        return Snapshot(pid, started, tuple(_family(f) for f in families))
    except (KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        raise ValueError(f"malformed snapshot: {exc!r}") from None


def merge(
    own: Snapshot, others: Iterable[Snapshot], alive: Callable[[Snapshot], bool]
) -> list[Family]:
    """One set of metric families for the whole server (see the module docstring).

    ``own`` is the answering worker (alive, and its families come first, in its
    registry's order); ``alive`` tells whether another snapshot's process still runs.
    """
    kinds: dict[str, tuple[str, str]] = {}  # family name -> (type, help)
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for snap, live in [(own, True), *((o, alive(o)) for o in others)]:
        for fam in snap.families:
            kind = kinds.setdefault(fam.name, (fam.type, fam.documentation))
            if kind[0] != fam.type:  # another version's layout: can't be merged
                continue
            summed = fam.type in SUMMED_TYPES
            if not (summed or live):
                continue
            into = values.setdefault(fam.name, {})
            created = fam.name + "_created"
            for name, labels, value in fam.samples:
                key = (name, tuple(sorted(labels.items())))
                old = into.get(key)
                if old is None:
                    into[key] = value
                elif name == created:
                    into[key] = min(old, value)
                elif summed:
                    into[key] = old + value
                else:
                    into[key] = max(old, value)
    return [
        Family(name, typ, doc, tuple((sample, dict(pairs), value)
                                     for (sample, pairs), value in values.get(name, {}).items()))
        for name, (typ, doc) in kinds.items()
    ]


def _stat(pid: int) -> tuple[bytes, int] | None:
    """(state, start time in clock ticks) of process ``pid`` from ``/proc``; None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    try:
        fields = stat.rsplit(b")", 1)[1].split()  # the command name may hold spaces
        return fields[0], int(fields[19])  # fields 3 and 22 of proc(5)
    except (IndexError, ValueError):
        return None


#: whether /proc tells processes apart (Linux); elsewhere pids and signal 0 have to do
_HAVE_PROC = _stat(os.getpid()) is not None


def start_token(pid: int) -> int:
    """What tells process ``pid`` (running now) from another that had the same pid."""
    stat = _stat(pid) if _HAVE_PROC else None
    return stat[1] if stat is not None else time.time_ns()


def is_alive(snapshot: Snapshot) -> bool:
    """Whether the process that wrote ``snapshot`` still runs (a zombie does not; nor
    does a new process that got the same pid)."""
    if _HAVE_PROC:
        stat = _stat(snapshot.pid)
        return stat is not None and stat[0] not in (b"Z", b"X") and stat[1] == snapshot.started
    try:
        os.kill(snapshot.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Fixed:
    """A collector that yields metric families built beforehand."""

    def __init__(self, metrics: Sequence[Any]) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Any]:
        return self._metrics


class SharedMetrics:
    """One worker's side of the shared directory: writes its snapshot, reads its
    siblings', and renders the whole server's metrics.

    ``families`` gives this worker's metrics now (:meth:`Metrics.families
    <fishpredict.app.metrics.Metrics.families>`, which includes :attr:`errors`:
    ``fishpredict_metrics_share_errors_total{operation}``, sibling files skipped as
    unreadable or corrupt (``read``) and snapshots this worker failed to write
    (``write``). Either is logged once.
    """

    def __init__(self, directory: str | os.PathLike[str],
                 families: Callable[[], Iterable[Family]]) -> None:
        self.directory = os.fspath(directory)
        self.families = families
        self.pid = os.getpid()
        self.started = start_token(self.pid)
        self.path = os.path.join(self.directory, f"{self.pid}-{self.started}.json")
        self.errors: Series = Series(
            "fishpredict_metrics_share_errors",
            "Sibling worker snapshots skipped (read) or not written (write)",
            "counter",
            ["operation"],
        )
        for operation in ("read", "write"):
            self.errors.labels(operation)
        self._lock = threading.Lock()  # one writer at a time: a file never goes back
        self._written = b""
        self._logged: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- this worker's snapshot --

    def start(self) -> None:
        """Write a first snapshot, then one every :data:`SHARE_EVERY_S` from a daemon thread."""
        self.flush()
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="fishpredict-metrics-share", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(SHARE_EVERY_S):
            try:
                self.flush()
            except Exception:  # keep sharing: one bad collect must not end the thread
                log.exception("metrics snapshot failed")

    def flush(self) -> Snapshot:
        """Snapshot this worker now and write it unless it is unchanged; the snapshot."""
        with self._lock:
            snap = take(self.pid, self.started, self.families())
            data = encode(snap)
            if data != self._written:
                try:
                    self._write(data)
                    self._written = data
                except OSError as exc:
                    self._error("write", "write", f"cannot write {self.path}: {exc}")
            return snap

    def _write(self, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, self.path)  # readers see the old file or the new one, whole
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def close(self) -> None:
        """Stop the thread and write a last snapshot (when the worker exits). Idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(SHARE_EVERY_S + 1.0)
            self._thread = None
        self.flush()

    # -- the siblings --

    def siblings(self) -> list[Snapshot]:
        """The latest snapshot of every other worker that ran, skipping bad files."""
        own = os.path.basename(self.path)
        snaps = []
        try:
            names = sorted(os.listdir(self.directory))
        except OSError as exc:
            self._error("read", self.directory, f"cannot list {self.directory}: {exc}")
            return []
        for name in names:
            if name == own or name.startswith(".") or not name.endswith(".json"):
                continue
            path = os.path.join(self.directory, name)
            try:
                snaps.append(decode(Path(path).read_bytes()))
            except FileNotFoundError:
                continue  # the server is shutting down
            except (OSError, ValueError) as exc:
                self._error("read", path, f"skipping metrics snapshot {path}: {exc}")
        return snaps

    def render(self) -> bytes:
        """The whole server's metrics in the Prometheus text format."""
        return exposition(merge(self.flush(), self.siblings(), is_alive))

    def _error(self, operation: str, what: str, message: str) -> None:
        """Count a failed read or write; log the first failure of each file (``what``)."""
        self.errors.labels(operation).inc()
        if what not in self._logged:
            self._logged.add(what)
            log.warning("%s", message)
