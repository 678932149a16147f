"""`experiment seed` on a busy machine: it says the run is inconclusive instead of
concluding, and by default it does not overwrite the committed docs/seed-report.md."""

from __future__ import annotations

import math
from types import SimpleNamespace

from click.testing import CliRunner

from fishpredict.cli import cli
from fishpredict.experiment.costs import RequestCosts
from fishpredict.experiment.noise import disturbances
from fishpredict.experiment.options import SeedOptions

GOOD = RequestCosts(unpickle_us=50.0, sklearn_predict_us=500.0, fast_predict_us=2.0,
                    model_bytes=5000, load_and_predict_us=580.0)
# the "-9.5 us" run: unpickle + predict measured faster than predict alone
CONTRADICTORY = RequestCosts(unpickle_us=50.0, sklearn_predict_us=500.0, fast_predict_us=2.0,
                             model_bytes=5000, load_and_predict_us=490.5)


def run(load: float, end: float, costs: RequestCosts) -> SimpleNamespace:
    return SimpleNamespace(load_average=load, load_average_end=end, costs=costs)


def test_an_idle_machine_and_consistent_timings_conclude() -> None:
    assert disturbances(run(0.2, 0.3, GOOD), cores=2) == []
    assert disturbances(run(math.nan, math.nan, GOOD), cores=2) == []


def test_a_busy_machine_is_inconclusive() -> None:
    (reason,) = disturbances(run(1.7, 0.3, GOOD), cores=2)
    assert "busy when the run began" in reason and "1.70 on 2 cores" in reason
    assert len(disturbances(run(1.7, 2.5, GOOD), cores=2)) == 2


def test_contradictory_timings_are_inconclusive() -> None:
    (reason,) = disturbances(run(0.1, 0.1, CONTRADICTORY), cores=2)
    assert "contradict" in reason and "490.5 us" in reason


def test_the_default_out_is_not_the_committed_report() -> None:
    assert SeedOptions().out.as_posix() == "seed-report.md"
    help_text = CliRunner().invoke(cli, ["experiment", "seed", "--help"]).output
    assert "[default: seed-report.md]" in help_text


def test_the_report_draws_no_conclusion_from_a_disturbed_run() -> None:
    from datetime import UTC, datetime

    from fishpredict.experiment.report import SeedRun, render

    text = render(SeedRun(options=SeedOptions(quick=True), started=datetime.now(UTC),
                          costs=CONTRADICTORY, load_average=0.1, load_average_end=0.1))
    assert "**This run is inconclusive**" in text
    assert text.count("- Inconclusive: the per-request timings contradict") == 3
    assert "-9.5 us" not in text and "-0%" not in text
