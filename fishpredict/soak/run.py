"""A bounded soak run: high load, a fixed mix of good and bad requests, proof that nothing is lost.

``fishpredict soak`` starts a server itself (``--backend NAME``) or loads one
at a URL, and for ``--duration`` seconds (a hard cap) keeps ``--connections``
keep-alive connections busy with a fixed mix (:data:`fishpredict.soak.mix.MIX`): good requests
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
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fishpredict.bench.config import parse_target
from fishpredict.server.process import start_server
from fishpredict.server.serve import new_event_loop
from fishpredict.soak.faults import healthy
from fishpredict.soak.mix import (
    GOOD,
    MIX,
    Request,
    SoakConfig,
    build_requests,
    check_answer,
    schedule,
)

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
    config = config.validated()
    server = None
    if config.url is None:
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
