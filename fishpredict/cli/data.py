"""``fishpredict data generate`` / ``data sample``: synthetic labelled fish, and sampling."""

from __future__ import annotations

import os
import time
from typing import Any

import click

from fishpredict.cli.options import NON_NEGATIVE_INT, POSITIVE_INT

_OUT_HELP = "output file; its suffix picks the format: .csv, .parquet, .npy or .npz"


@click.group(help="Make synthetic labelled fish, or sample a data file.\n\n"
             "Synthetic labelled fish (see docs/data.md) and sampling. File formats by "
             "suffix: .csv, .parquet, .npy, .npz.",
             short_help="make synthetic labelled fish, or sample a data file")
def data() -> None:
    pass


def _describe_written(written: Any, seconds: float) -> str:
    share = "" if written.bream_share is None else f", {written.bream_share:.2%} bream"
    rate = written.rows / seconds if seconds > 0 else float("inf")
    return (f"wrote {written.rows:,} rows{share} to {written.path} ({written.format}, "
            f"{written.size / 1e6:,.1f} MB) in {seconds:.2f} s ({rate:,.0f} rows/s)")


@data.command()
@click.option("--rows", type=POSITIVE_INT, default=10_000_000,
              help="how many fish (default: 10,000,000, as in the seed)")
@click.option("--seed", type=NON_NEGATIVE_INT, default=42, show_default=True,
              help="random seed")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help=_OUT_HELP)
@click.option("--chunk-rows", type=POSITIVE_INT, default=None,
              help="rows generated and written at a time (memory only; the rows do not "
              "depend on it)")
def generate(rows: int, seed: int, out: str, chunk_rows: int | None) -> int:
    """Write N synthetic labelled fish to a file."""
    from fishpredict.fish import synth

    start = time.perf_counter()
    written = synth.write(out, rows, seed, chunk_rows=chunk_rows or synth.CHUNK_ROWS,
                          progress=not os.environ.get("CI"))
    click.echo(_describe_written(written, time.perf_counter() - start))
    return 0


@data.command()
@click.option("--data", "source", default=None,
              help="file to sample (.csv, .parquet, .npy or .npz), read once in chunks; if "
              "omitted, the N rows are drawn from the generator directly (the same rows as "
              "'data generate --rows N --seed SEED')")
@click.option("--n", type=POSITIVE_INT, default=100_000,
              help="rows to draw (default: 100,000, as in the seed)")
@click.option("--seed", type=NON_NEGATIVE_INT, default=1, show_default=True,
              help="random seed")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help=_OUT_HELP)
@click.option("--chunk-rows", type=POSITIVE_INT, default=None,
              help="rows read at a time (memory only; the sample does not depend on it)")
def sample(source: str | None, n: int, seed: int, out: str, chunk_rows: int | None) -> int:
    """Draw N rows at random, without replacement."""
    from fishpredict.fish import files as datafiles
    from fishpredict.fish import synth

    start = time.perf_counter()
    if source is None:
        click.echo(f"no --data: drawing {n:,} fish from the generator (seed {seed})")
        written = synth.write(out, n, seed, chunk_rows=chunk_rows or synth.CHUNK_ROWS,
                              progress=not os.environ.get("CI"))
    else:
        chunks = datafiles.iter_chunks(source, chunk_rows or datafiles.CHUNK_ROWS)
        drawn = datafiles.sample_chunks(chunks, n, seed, source=source)
        click.echo(f"sampled {len(drawn.X):,} of {drawn.population:,} rows of {source} "
                   f"(seed {seed})")
        written = datafiles.write(out, drawn.X, drawn.y)
    click.echo(_describe_written(written, time.perf_counter() - start))
    return 0
