"""``fishpredict evaluate``: the seed's k sweep, accuracy and rows/s per k."""

from __future__ import annotations

from typing import Any

import click

from fishpredict.cli.options import (
    POSITIVE_INT,
    fast_path_option,
    k_option,
    labels_option,
    model_sources,
    models_option,
    trust_option,
)
from fishpredict.errors import ConfigError


@click.command(short_help="accuracy and speed of each k on labelled fish")
@click.option("--data", required=True,
              help="labelled data file (.csv, .parquet, .npy or .npz), e.g. from 'data sample'")
@k_option()
@models_option("a model file or directory (as `serve --models`), repeatable (default: models "
               "trained in memory on the 49 built-in fish)")
@trust_option()
@fast_path_option("predict through scikit-learn only, not the exact numpy fast path")
@click.option("--scale", type=click.Choice(["standard"]), default=None,
              help="built-in models only: put a StandardScaler in front of the classifier")
@labels_option("species names in the table")
@click.option("--chunk-rows", type=POSITIVE_INT, default=None,
              help="rows read and predicted at a time")
@click.option("--url", default=None,
              help="evaluate through a running server (its .npy batch endpoint) instead of "
              "in this process, e.g. http://127.0.0.1:8000")
def evaluate(data: str, ks: list[int], models: tuple[tuple[str | None, str], ...], trust: bool,
             fast_path: bool, scale: str | None, labels: str, chunk_rows: int | None,
             url: str | None) -> int:
    """Accuracy and speed of each k on labelled fish.

    The seed's k sweep: predict every row of a labelled data file with each k and
    print accuracy and rows/s. Local: the models run in this process.
    """
    from fishpredict.fish import files as datafiles
    from fishpredict.fish.sweep import evaluate_chunks, format_table

    chunks = datafiles.iter_chunks(data, chunk_rows or datafiles.CHUNK_ROWS)
    if url is not None:
        from fishpredict.bulk.remote import evaluate_remote

        if models or scale or not fast_path or trust:
            raise ConfigError("--models/--scale/--no-fast-path/--trust apply to local "
                              "evaluation; with --url the server's models answer")
        click.echo(f"through {url} (POST /predict, .npy batches; rows/s = request time)")
        rows = evaluate_remote(url, chunks, ks)
    else:
        rows = evaluate_chunks(_predictor(models, trust, fast_path, scale, labels, ks),
                               chunks, ks)
    click.echo(format_table(rows, labels))  # type: ignore[arg-type]
    return 0


def _predictor(models: tuple[tuple[str | None, str], ...], trust: bool, fast_path: bool,
               scale: str | None, labels: Any, ks: list[int]) -> Any:
    from fishpredict.predictor import Predictor

    if not models:
        try:
            return Predictor(ks=ks, scale="standard" if scale else None, fast_path=fast_path,
                             labels=labels)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if scale is not None:
        raise ConfigError("--scale applies to the built-in models only; "
                          "a model directory brings its own")
    return Predictor(model_sources(models), trust=trust, fast_path=fast_path, labels=labels)
