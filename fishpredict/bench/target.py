"""The target's own view while it is loaded: its ``GET /metrics``, once a second.

Used by ``--web`` and ``--html`` when the target is a fishpredict server (its
``/metrics`` has ``fishpredict_*`` series; any other target is left alone). Each
sample holds, over the second since the last one:

* ``server_rps``: requests the server answered (``fishpredict_requests_total``);
* ``handle_ms``: their mean handling time (``fishpredict_request_duration_seconds``);
* ``in_server``: requests inside the server on average, ``server_rps x handle_ms``
  (Little's law on the server's own counters: it exports no queue gauge);
* ``batch_rows``: mean rows per coalesced predict call (``fishpredict_batch_rows``;
  None without micro-batching);
* ``worker_cpu``: each worker's CPU share (percent of one core), for the pids of
  ``fishpredict_worker_info``, read from ``/proc/PID/stat``: the target is on
  this machine (loopback), so its processes can be measured directly.
"""

from __future__ import annotations

import http.client
import os
import re
import time
from typing import Any

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][\w:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<v>\S+)")
_PID = re.compile(r'pid="(\d+)"')


def parse_metrics(text: str) -> dict[str, Any]:
    """The sums this module needs from a Prometheus text exposition."""
    sums: dict[str, float] = {}
    pids: list[int] = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            continue
        name = m["name"]
        try:
            v = float(m["v"])
        except ValueError:
            continue
        if name == "fishpredict_worker_info":
            p = _PID.search(m["labels"] or "")
            if p and v > 0:
                pids.append(int(p[1]))
            continue
        if name in ("fishpredict_requests_total", "fishpredict_request_duration_seconds_sum",
                    "fishpredict_request_duration_seconds_count", "fishpredict_batch_rows_sum",
                    "fishpredict_batch_rows_count"):
            sums[name] = sums.get(name, 0.0) + v
    return {"sums": sums, "pids": sorted(set(pids))}


def _cpu_seconds(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


class TargetWatch:
    """Polls ``http://host:port{prefix}/metrics``; :meth:`sample` once a second."""

    def __init__(self, host: str, port: int, prefix: str = "", timeout_s: float = 0.5) -> None:
        self.host, self.port = host, port
        self.path = prefix.rstrip("/") + "/metrics"
        self.timeout_s = timeout_s
        self.enabled = True
        self._last: tuple[float, dict[str, float], dict[int, float]] | None = None
        self.samples: list[dict[str, Any]] = []

    def _scrape(self) -> dict[str, Any] | None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        try:
            conn.request("GET", self.path)
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200 or b"fishpredict_" not in body:
                return None
            return parse_metrics(body.decode("utf-8", "replace"))
        except (OSError, http.client.HTTPException):
            return None
        finally:
            conn.close()

    def sample(self, second: int) -> dict[str, Any] | None:
        """Scrape now; the figures since the previous scrape (None for the first, or
        when the target is not a fishpredict server: then it stops asking)."""
        if not self.enabled:
            return None
        got = self._scrape()
        now = time.monotonic()
        if got is None:
            if self._last is None:
                self.enabled = False  # not fishpredict (or no /metrics): leave it alone
            return None
        cpu = {pid: c for pid in got["pids"] if (c := _cpu_seconds(pid)) is not None}
        last, self._last = self._last, (now, got["sums"], cpu)
        if last is None:
            return None
        t0, s0, cpu0 = last
        dt = max(now - t0, 1e-3)
        s1 = got["sums"]

        def delta(name: str) -> float:
            return float(s1.get(name, 0.0) - s0.get(name, 0.0))

        answered = delta("fishpredict_requests_total")
        n = delta("fishpredict_request_duration_seconds_count")
        handle_s = delta("fishpredict_request_duration_seconds_sum") / n if n > 0 else None
        batches = delta("fishpredict_batch_rows_count")
        rps = answered / dt
        out = {
            "second": second,
            "server_rps": rps,
            "handle_ms": None if handle_s is None else 1000 * handle_s,
            "in_server": None if handle_s is None else rps * handle_s,
            "batch_rows": delta("fishpredict_batch_rows_sum") / batches if batches > 0 else None,
            "worker_cpu": {str(pid): round(100 * (c - cpu0[pid]) / dt, 1)
                           for pid, c in cpu.items() if pid in cpu0},
        }
        self.samples.append(out)
        return out
