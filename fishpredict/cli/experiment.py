"""``fishpredict experiment seed``: the seed's four experiments, re-run, in one report.

Registered through the ``register_commands`` hook, as a plugin's commands are.
"""

from __future__ import annotations

import click

from fishpredict.cli.options import POSITIVE_FLOAT, POSITIVE_INT, quick_option
from fishpredict.hookspecs import hookimpl


@click.group(short_help="reproduce the seed's experiments, write a report")
def experiment() -> None:
    """Experiments from the seed's write-up, run on this machine in one run, reported
    side by side (Markdown + PNG charts)."""


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(experiment)


@experiment.command(short_help="the seed's four experiments: unpickle per request, backends, "
                    "nginx + replicas, 100,000 rows per row vs batch")
@quick_option("short loads and slices (about 2 minutes in all; what CI runs)")
@click.option("--out", default="docs/seed-report.md", show_default=True, metavar="FILE.md",
              type=click.Path(dir_okay=False),
              help="the report (charts in OUT-without-.md/)")
@click.option("--duration", type=POSITIVE_FLOAT, default=None, metavar="SECONDS",
              help="seconds per load (default 30, --quick 5)")
@click.option("--users", type=POSITIVE_INT, default=1000, show_default=True,
              help="virtual users at the end of the ramp-up (as the seed)")
@click.option("--slice", "slice_requests", type=POSITIVE_INT, default=None, metavar="N",
              help="sequential per-row requests timed per k and server "
              "(default 2000, --quick 300)")
def seed(quick: bool, out: str, duration: float | None, users: int,
         slice_requests: int | None) -> int:
    """The seed's four experiments.

    Runs on loopback: (1) the seed's FastAPI server unpickling per request vs
    loading once, (2) each fishpredict backend under the same load, (3) one vs two
    replicas behind nginx, (4) 100,000 rows x 5 k per row (extrapolated from a
    slice) vs the batch endpoint. Writes OUT and OUT-without-.md/*.png. Progress
    on stderr.
    """
    import shlex
    from pathlib import Path

    from fishpredict.experiment import SeedOptions, run_seed

    argv = ["fishpredict", "experiment", "seed"] + (["--quick"] if quick else [])
    argv += ["--out", out]
    if duration is not None:
        argv += ["--duration", f"{duration:g}"]
    if users != 1000:
        argv += ["--users", str(users)]
    if slice_requests is not None:
        argv += ["--slice", str(slice_requests)]
    options = SeedOptions(out=Path(out), quick=quick, duration_s=duration, users=users,
                          slice_requests=slice_requests, command=shlex.join(argv))
    for path in run_seed(options):
        click.echo(path)
    return 0
