"""A bounded soak run: high load, a fixed mix of good and bad requests, proof that nothing is lost.

``fishpredict soak`` starts a server itself (``--backend NAME``) or loads one
at a URL, and for ``--duration`` seconds (a hard cap) keeps ``--connections``
keep-alive connections busy with a fixed mix (:data:`MIX`): good requests
(``GET /fish``, ``POST /predict`` as JSON and as ``.npy``), every answer checked
against a local :class:`~fishpredict.predictor.Predictor`, and bad ones (bad
values, malformed JSON, unknown routes, oversized bodies and batches, wrong
methods and content types), each with the status it must get.

*Unexpected* is: a 5xx, a status a request must not get, a wrong answer to a
good request, a connection error or a timeout. The run also reads the
server's resident memory (VmRSS of the server and its workers, from /proc) after
a warm-up and at the end. It passes with no unexpected error and RSS growth of at
most ``max_rss_growth_pct``.
"""

from __future__ import annotations

import asyncio
import io
import json
import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Final

import numpy as np

from .errors import ConfigError

#: no soak may last longer than this (seconds), whatever it is asked
MAX_DURATION_S: Final = 3600.0

#: (kind, share of every 100 requests, the status it must get)
MIX: Final[tuple[tuple[str, int, int], ...]] = (
    ("fish", 40, 200),
    ("predict_json", 15, 200),
    ("predict_npy", 10, 200),
    ("bad_value", 7, 400),
    ("malformed_json", 5, 400),
    ("unknown_route", 5, 404),
    ("wrong_method", 5, 405),
    ("wrong_content_type", 4, 415),
    ("oversized_body", 4, 413),
    ("too_many_rows", 3, 413),
    ("nan_literal", 2, 400),
)
EXPECTED_STATUS: Final = {kind: status for kind, _, status in MIX}
GOOD: Final = frozenset(kind for kind, _, status in MIX if status == 200)
KS: Final = (1, 5, 15, 25, 49)
JSON: Final = "application/json"
NPY: Final = "application/x-npy"
POOL: Final = 128
BATCH_ROWS: Final = 32


@dataclass(frozen=True)
class SoakConfig:
    """One soak run. With ``url`` None, a server of ``backend`` is started."""

    url: str | None = None
    backend: str = "socket"
    duration_s: float = 60.0
    connections: int = 32
    #: server workers (only when the soak starts the server)
    workers: int = 1
    #: the server's body and batch limits (passed to the server the soak starts)
    max_body_bytes: int = 64 * 1024
    max_batch_rows: int = 1000
    #: pid of the server at ``url``, to read its memory (None: not measured)
    pid: int | None = None
    max_rss_growth_pct: float = 10.0
    timeout_s: float = 10.0
    seed: int = 0
    allow_remote: bool = False

    @property
    def warmup_s(self) -> float:
        """Load before the start RSS is read: a tenth of the run, at most 5 s."""
        return min(5.0, self.duration_s / 10)

    def validated(self) -> SoakConfig:
        if not 0 < self.duration_s <= MAX_DURATION_S:
            raise ConfigError(
                f"duration must be in (0, {MAX_DURATION_S:g}] s, got {self.duration_s}"
            )
        if not 1 <= self.connections <= 10_000:
            raise ConfigError(f"connections must be 1..10000, got {self.connections}")
        if self.url is not None:
            from .bench.config import is_loopback, parse_target

            host = parse_target(self.url).host
            if not self.allow_remote and not is_loopback(host):
                raise ConfigError(f"refusing to soak non-loopback {host!r} without --allow-remote")
        return self


# ---- the requests --------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One pre-built request: its kind, raw bytes, and the answer it must get."""

    kind: str
    raw: bytes
    #: the expected labels for a good request (one for /fish), else None
    labels: tuple[str, ...] | None = None


def _http(host: str, method: str, target: str, body: bytes = b"", ctype: str = "") -> bytes:
    head = f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n"
    if ctype == NPY:
        head += f"Content-Type: {NPY}\r\nAccept: {NPY}\r\n"
    elif ctype:
        head += f"Content-Type: {ctype}\r\n"
    if method == "POST":
        head += f"Content-Length: {len(body)}\r\n"
    return (head + "\r\n").encode("latin-1") + body


def _bad_requests(config: SoakConfig) -> dict[str, list[tuple[str, str, bytes, str]]]:
    """Each bad kind's requests as (method, target, body, content type)."""
    rows = b'{"instances":[' + b"[30,600]," * config.max_batch_rows + b"[30,600]]}"
    big = b'{"instances":[' + b"[30,600]," * (config.max_body_bytes // 9 + 1) + b"[1,1]]}"
    return {
        "bad_value": [("GET", "/fish?length=abc&weight=600", b"", ""),
                      ("GET", "/fish?length=-3&weight=600&k=5", b"", ""),
                      ("GET", "/fish?length=30&weight=600&k=two", b"", "")],
        "malformed_json": [("POST", "/predict", b'{"instances": [[30, 600]', JSON)],
        "unknown_route": [("GET", "/nowhere", b"", ""), ("POST", "/fish/predict", b"{}", JSON)],
        "wrong_method": [("DELETE", "/fish", b"", ""), ("GET", "/predict", b"", "")],
        "wrong_content_type": [("POST", "/predict", b"30,600", "text/csv")],
        "oversized_body": [("POST", "/predict", big, JSON)],
        "too_many_rows": [("POST", "/predict", rows, JSON)],
        "nan_literal": [("POST", "/predict", b'{"instances":[[NaN,600]]}', JSON)],
    }  # fmt: skip


def build_requests(config: SoakConfig, host: str) -> dict[str, list[Request]]:
    """Every kind's pool of requests; good answers come from a local Predictor."""
    from .predictor import Predictor

    predictor = Predictor()
    rng = np.random.default_rng(config.seed)
    n = POOL * BATCH_ROWS
    rows = np.column_stack(
        [np.round(rng.uniform(8, 45, n), 1), np.round(rng.uniform(5, 1100, n), 1)]
    )
    pools: dict[str, list[Request]] = {kind: [] for kind, _, _ in MIX}
    for i in range(POOL):
        k, (x, w) = KS[i % len(KS)], rows[i]
        fish = _http(host, "GET", f"/fish?length={x}&weight={w}&k={k}")
        pools["fish"].append(Request("fish", fish, (predictor.predict(x, w, k),)))
        batch = rows[i * BATCH_ROWS : (i + 1) * BATCH_ROWS]
        labels = tuple(predictor.predict_many(batch, k))
        body = json.dumps({"instances": batch.tolist()}).encode()
        raw = _http(host, "POST", f"/predict?k={k}", body, JSON)
        pools["predict_json"].append(Request("predict_json", raw, labels))
        buf = io.BytesIO()
        np.save(buf, batch, allow_pickle=False)
        raw = _http(host, "POST", f"/predict?k={k}", buf.getvalue(), NPY)
        pools["predict_npy"].append(Request("predict_npy", raw, labels))
    for kind, requests in _bad_requests(config).items():
        pools[kind] = [Request(kind, _http(host, *r)) for r in requests]
    return pools


def schedule(seed: int) -> list[str]:
    """100 kinds in the proportions of :data:`MIX`, in a fixed shuffled order."""
    kinds = [kind for kind, weight, _ in MIX for _ in range(weight)]
    random.Random(seed).shuffle(kinds)
    return kinds


def check_answer(request: Request, status: int, body: bytes) -> str | None:
    """Why an answer is unexpected, or None when it is right."""
    if status >= 500:
        return "5xx"
    want = EXPECTED_STATUS[request.kind]
    if status != want:
        return f"status {status} (want {want})"
    if request.labels is None:
        return None
    try:
        if request.kind == "predict_npy":
            got = tuple(str(v) for v in np.load(io.BytesIO(body), allow_pickle=False).tolist())
        elif request.kind == "predict_json":
            got = tuple(json.loads(body)["predictions"])
        else:
            got = (json.loads(body)["prediction"],)
    except (ValueError, KeyError, TypeError, OSError):
        return "unreadable answer"
    return None if got == request.labels else "wrong answer"


# ---- the load ------------------------------------------------------------------------


@dataclass
class Tally:
    """What the run saw."""

    served: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    by_kind: Counter[str] = field(default_factory=Counter)
    #: reason -> count; every one of them fails the run
    unexpected: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    #: refused requests whose connection the server closed without an answer
    closed: int = 0
    #: requests sent again on a new connection after a kept one turned out closed
    retried: int = 0

    def fail(self, reason: str, request: Request, detail: str = "") -> None:
        self.unexpected[reason] += 1
        if len(self.examples) < 10:
            self.examples.append(f"{request.kind}: {reason} {detail}"[:300])


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool, bytes]:
    """(status, server closes after it, body) of one response."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            body += (await reader.readexactly(size + 2))[:-2]
        await reader.readuntil(b"\r\n")
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers.get("connection", "").lower() == "close", body


Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _send(conn: Conn, request: Request, timeout: float) -> tuple[int, bool, bytes]:
    reader, writer = conn
    writer.write(request.raw)
    async with asyncio.timeout(timeout):
        await writer.drain()
        return await _read_response(reader)


async def _user(
    host: str, port: int, pools: dict[str, list[Request]], order: list[str], offset: int,
    deadline: float, config: SoakConfig, tally: Tally,
) -> None:  # fmt: skip
    """One connection's loop until the deadline: send, read, check. A kept-alive
    connection found closed before any answer byte is replaced and the request sent
    once more (as browsers do); counted in ``tally.retried``."""
    conn: Conn | None = None
    n = offset
    loop = asyncio.get_running_loop()
    while loop.time() < deadline:
        kind = order[n % len(order)]
        request = pools[kind][(n // len(order) + offset) % len(pools[kind])]
        n += 1
        for attempt in (0, 1):
            reused = conn is not None
            try:
                if conn is None:
                    async with asyncio.timeout(config.timeout_s):
                        conn = await asyncio.open_connection(host, port)
            except OSError as exc:  # refused, or TimeoutError
                tally.fail("connection error", request, f"connect: {exc!r}")
                break
            try:
                status, close, body = await _send(conn, request, config.timeout_s)
            except TimeoutError:
                tally.fail("timeout", request)
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
                silent = isinstance(exc, ConnectionError) or (
                    isinstance(exc, asyncio.IncompleteReadError) and not exc.partial
                )
                if kind == "oversized_body" and silent:
                    tally.closed += 1  # refused by closing, which the contract allows
                    tally.by_kind[kind] += 1
                elif reused and attempt == 0 and silent:
                    tally.retried += 1
                    _close(conn)
                    conn = None
                    continue
                else:
                    tally.fail("connection error", request, repr(exc))
            else:
                tally.served += 1
                tally.by_status[status] += 1
                tally.by_kind[kind] += 1
                why = check_answer(request, status, body)
                if why is not None:
                    tally.fail(why, request, body[:120].decode("utf-8", "replace"))
                if not close:
                    break
            _close(conn)  # after an error, a timeout or "Connection: close"
            conn = None
            break
    _close(conn)


def _close(conn: Conn | None) -> None:
    if conn is not None:
        conn[1].close()


# ---- memory --------------------------------------------------------------------------


def tree_rss(pid: int) -> int:
    """Resident bytes (VmRSS from /proc/<pid>/status) of ``pid`` and its descendants
    (the forked workers of ``--workers N``)."""
    import psutil

    try:
        pids = [pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in pids:
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue  # a worker that ended meanwhile
        total += sum(int(ln.split()[1]) * 1024 for ln in status.splitlines() if ln[:6] == "VmRSS:")
    return total


# ---- the run -------------------------------------------------------------------------


@dataclass
class SoakResult:
    """The outcome: the tally, memory, and how the server it started ended."""

    config: SoakConfig
    target: str
    elapsed_s: float
    tally: Tally
    #: server RSS (bytes): before any load, after the warm-up, at the end, the most seen
    rss_before: int | None = None
    rss_start: int | None = None
    rss_end: int | None = None
    rss_peak: int | None = None
    #: for a server the soak started: its exit code after SIGTERM, tracebacks in its log
    server_exit: int | None = None
    server_tracebacks: int = 0
    server_alive: bool = True

    @property
    def growth_pct(self) -> float | None:
        if not self.rss_start or self.rss_end is None:
            return None
        return 100.0 * (self.rss_end - self.rss_start) / self.rss_start

    @property
    def unexpected(self) -> int:
        return (
            sum(self.tally.unexpected.values())
            + self.server_tracebacks
            + (0 if self.server_alive and self.server_exit in (None, 0) else 1)
        )

    @property
    def passed(self) -> bool:
        growth = self.growth_pct
        return self.unexpected == 0 and (growth is None or growth <= self.config.max_rss_growth_pct)


async def _run_load(host: str, port: int, config: SoakConfig, pid: int | None,
                    result: SoakResult) -> None:  # fmt: skip
    pools = build_requests(config, f"{host}:{port}")
    order = schedule(config.seed)
    loop = asyncio.get_running_loop()
    start = loop.time()
    deadline = start + config.duration_s
    users = [
        asyncio.ensure_future(
            _user(host, port, pools, order, i * 7, deadline, config, result.tally)
        )
        for i in range(config.connections)
    ]
    if pid is not None:
        await asyncio.sleep(config.warmup_s)
        peak = result.rss_start = tree_rss(pid)
        while loop.time() < deadline - 0.5:
            await asyncio.sleep(min(1.0, deadline - 0.5 - loop.time()))
            peak = max(peak, tree_rss(pid))
        result.rss_peak = peak
    await asyncio.gather(*users)
    result.elapsed_s = loop.time() - start
    if pid is not None:
        result.rss_end = tree_rss(pid)
        result.rss_peak = max(result.rss_peak or 0, result.rss_end)


def run_soak(config: SoakConfig) -> SoakResult:
    """Run the soak; start (and afterwards stop) a server unless ``config.url`` is given."""
    from .bench.config import parse_target
    from .testing.faults import healthy

    config = config.validated()
    server = None
    if config.url is None:
        from .testing.server import start_server

        server = start_server(
            config.backend, "--workers", str(config.workers),
            "--max-body-bytes", str(config.max_body_bytes),
            "--max-batch-rows", str(config.max_batch_rows),
        )  # fmt: skip
        url, target = server.url, f"{config.backend} backend, started, pid {server.pid}"
        pid: int | None = server.pid
    else:
        url, pid, target = config.url, config.pid, config.url
    host, port = parse_target(url).host, parse_target(url).port
    result = SoakResult(config, target, 0.0, Tally())
    try:
        if pid is not None:
            result.rss_before = tree_rss(pid)
        from .serve import new_event_loop

        loop = new_event_loop()
        try:
            loop.run_until_complete(_run_load(host, port, config, pid, result))
        finally:
            loop.close()
        result.server_alive = healthy(host, port)
    finally:
        if server is not None:
            result.server_exit = server.stop()
            result.server_tracebacks = server.stderr_text().count(
                "Traceback (most recent call last)"
            )
            server.close()
    return result


def _mb(n: int | None) -> str:
    return "n/a" if n is None else f"{n / 1e6:.1f} MB"


def format_text(result: SoakResult) -> str:
    """The report ``fishpredict soak`` prints."""
    t, c = result.tally, result.config
    mix = ", ".join(f"{kind} {weight}%" for kind, weight, _ in MIX)
    statuses = "  ".join(f"{s}: {n:,}" for s, n in sorted(t.by_status.items()))
    bad = "  ".join(f"{k}: {t.by_kind[k]:,}" for k, _, _ in MIX if k not in GOOD)
    good = "  ".join(f"{k}: {t.by_kind[k]:,}" for k, _, _ in MIX if k in GOOD)
    growth = result.growth_pct
    lines = [
        f"fishpredict soak: {result.target}; {c.duration_s:g} s, {c.connections} connections",
        f"mix (per 100 requests): {mix}",
        f"requests served      {t.served:,} ({t.served / max(result.elapsed_s, 1e-9):,.0f}/s)",
        f"answers by status    {statuses}",
        f"good requests        {good} (every answer checked)",
        f"bad requests         {bad}",
        f"  refused by close   {t.closed:,} (oversized bodies); resent after a keep-alive "
        f"close: {t.retried:,}",
        f"unexpected errors    {sum(t.unexpected.values()):,}"
        + "".join(f"  {why}: {n:,}" for why, n in t.unexpected.most_common()),
        *[f"  e.g. {e}" for e in t.examples[:5]],
    ]  # fmt: skip
    if result.rss_start is not None:
        lines.append(
            f"server RSS           before load {_mb(result.rss_before)}, after {c.warmup_s:g} s "
            f"warm-up {_mb(result.rss_start)}, end {_mb(result.rss_end)}, "
            f"peak {_mb(result.rss_peak)}; growth {growth:+.2f}% (limit {c.max_rss_growth_pct:g}%)"
        )
    else:
        lines.append("server RSS           not measured (give --pid for a server at a URL)")
    if result.server_exit is not None:
        lines.append(
            f"server               healthy after the run: "
            f"{'yes' if result.server_alive else 'NO'}; exit code after SIGTERM "
            f"{result.server_exit}; tracebacks in its log: {result.server_tracebacks}"
        )
    lines.append(f"result               {'PASS' if result.passed else 'FAIL'}")
    return "\n".join(lines)


def to_json(result: SoakResult) -> str:
    """The figures as JSON (``fishpredict soak --out-json``)."""
    t = result.tally
    doc = {
        "config": asdict(result.config),
        "target": result.target,
        "elapsed_s": result.elapsed_s,
        "served": t.served,
        "by_status": {str(k): v for k, v in sorted(t.by_status.items())},
        "by_kind": dict(t.by_kind),
        "unexpected": dict(t.unexpected),
        "examples": t.examples,
        "closed": t.closed,
        "retried": t.retried,
        "rss": {"before": result.rss_before, "start": result.rss_start, "end": result.rss_end,
                "peak": result.rss_peak, "growth_pct": result.growth_pct},
        "server": {"exit": result.server_exit, "tracebacks": result.server_tracebacks,
                   "healthy_after": result.server_alive},
        "passed": result.passed,
    }  # fmt: skip
    return json.dumps(doc, indent=2) + "\n"
