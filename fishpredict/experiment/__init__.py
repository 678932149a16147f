"""Experiments that reproduce the seed's write-up from one command.

``fishpredict experiment seed`` (:func:`run_seed`) runs the seed's four
experiments on this machine, in one run, and writes a Markdown report with
PNG charts and findings computed from the figures (see ``docs/seed-report.md``).

Modules, one idea each: ``options`` (what to run, the common load),
``costs`` (the parts of one request, timed in-process), ``loads``
(experiments 1-3: servers under the common load), ``rows`` (experiment 4:
per-row requests vs the batch endpoint), ``findings`` (sentences from the
figures), ``charts`` (PNGs), ``report`` (the Markdown), ``seed`` (the run).
"""

from __future__ import annotations

from fishpredict.experiment.options import SeedOptions
from fishpredict.experiment.seed import run_seed

__all__ = ["SeedOptions", "run_seed"]
