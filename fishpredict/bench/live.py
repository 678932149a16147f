"""What watches a run second by second: SLO abort, the target's metrics, the live page.

:class:`LiveRun` is the runner's observer (see :data:`fishpredict.bench.runner.Observer`).
After each whole second it samples the target's ``/metrics`` (when asked), puts
the run so far on the live page, and with ``--slo-abort`` stops the run once an
SLO is lost for good. :meth:`LiveRun.finish` completes a finished result with
the same parts (SLO verdicts, baseline comparison, target metrics), so the live
page's last document, the HTML report and the JSON are one and the same.
"""

from __future__ import annotations

from typing import Any

from fishpredict.bench.baseline import compare
from fishpredict.bench.config import BenchConfig
from fishpredict.bench.html import state_of
from fishpredict.bench.result import BenchResult
from fishpredict.bench.slo import Slo, evaluate, lost_for_good, threshold
from fishpredict.bench.stats import SecondStats
from fishpredict.bench.target import TargetWatch
from fishpredict.bench.web import LiveServer


class LiveRun:
    def __init__(self, config: BenchConfig, *, slos: list[Slo] | None = None,
                 abort: bool = False, baseline: dict[str, Any] | None = None,
                 baseline_source: str = "", web: LiveServer | None = None,
                 watch: TargetWatch | None = None) -> None:
        self.cfg = config
        self.slos = slos or []
        self.abort = abort
        self.baseline = baseline
        self.baseline_source = baseline_source
        self.web = web
        self.watch = watch
        self.best_second = 0

    def prime(self) -> None:
        """Take the target's first metrics before the load, so that second 0 has figures."""
        if self.watch is not None:
            self.watch.sample(-1)

    def __call__(self, run: Any, sec: SecondStats) -> None:
        if self.watch is not None:
            self.watch.sample(sec.second)
        self.best_second = max(self.best_second, sec.successes + sec.error_count)
        if self.abort and self.slos:
            self._check_abort(run, sec)
        if self.web is not None:
            snap: BenchResult = run.snapshot()
            self.web.publish(self.complete(snap), "running")

    def _check_abort(self, run: Any, sec: SecondStats) -> None:
        cfg = self.cfg
        tl = run.timeline
        hist = tl.total_histogram()
        errors = sum(tl.total_errors().values())
        requests = hist.total + errors
        done_s = sec.second + 1
        if cfg.requests is not None:
            future = max(0, cfg.requests - requests)
        else:
            left = max(0.0, cfg.effective_duration_s - done_s)
            future = 2 * max(self.best_second, cfg.peak_rate) * left
        bound_s = cfg.effective_duration_s if cfg.requests is None else done_s
        for slo in self.slos:
            limit = threshold(slo, self.baseline)
            if lost_for_good(slo, limit, hist, requests, hist.total, errors, future, bound_s):
                run.stop(f"SLO {slo.text!r} lost for good after {done_s} s")
                return

    def complete(self, result: BenchResult) -> dict[str, Any]:
        """Fill in the SLO verdicts, baseline comparison and target metrics; the JSON."""
        if self.watch is not None:
            result.target_metrics = list(self.watch.samples)
        if self.baseline is not None:
            result.baseline = compare(result.to_dict(), self.baseline, self.baseline_source)
        if self.slos:
            result.slo = evaluate(result.to_dict(), self.slos, self.baseline)
        return result.to_dict()

    def finish(self, result: BenchResult) -> dict[str, Any]:
        """The final document; the live page shows it from now on."""
        doc = self.complete(result)
        if self.web is not None:
            self.web.publish(doc, state_of(doc, True))
        return doc
