"""Live progress on stderr while a run goes.

On a terminal: one status line, rewritten every second. Elsewhere (a log, CI):
a plain line every :data:`PLAIN_EVERY_S` seconds. ``quiet``: nothing.
"""

from __future__ import annotations

import sys
from typing import TextIO

from fishpredict.bench.stats import SecondStats

PLAIN_EVERY_S = 5


class Progress:
    """Prints one line per finished second (terminal) or every few seconds (plain)."""

    def __init__(
        self, total_s: float, *, enabled: bool = True, stream: TextIO | None = None
    ) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.total_s = total_s
        self.requests = 0
        self.errors = 0
        self._open_line = False

    def second(self, s: SecondStats) -> None:
        """Account for one finished second and show it."""
        self.requests += s.successes + s.error_count
        self.errors += s.error_count
        if not self.enabled:
            return
        p50, p99 = s.hist.percentiles((50.0, 99.0))
        line = (
            f"[{s.second + 1:>4}s/{self.total_s:g}s] users {s.active_users:>5}  "
            f"tps {s.tps:>10,.0f}  p50 {p50 / 1000:7.2f} ms  p99 {p99 / 1000:7.2f} ms  "
            f"errors {s.error_count:>6,} (total {self.errors:,})"
        )
        if self.tty:
            self.stream.write("\r\x1b[K" + line)
            self._open_line = True
        elif (s.second + 1) % PLAIN_EVERY_S == 0:
            self.stream.write(line + "\n")
        self.stream.flush()

    def note(self, text: str) -> None:
        if not self.enabled:
            return
        self.end()
        self.stream.write(text + "\n")
        self.stream.flush()

    def end(self) -> None:
        """Finish the rewritten line, if any, so later output starts on its own line."""
        if self._open_line:
            self.stream.write("\n")
            self.stream.flush()
            self._open_line = False
