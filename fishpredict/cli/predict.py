"""``fishpredict predict``: predict a table of rows, through a running server (``--url``)
or on a Dask cluster (``--scheduler``).

- ``--url URL --model NAME``: any model the server serves; its feature columns
  are read by header name (see :mod:`fishpredict.bulk.tables`);
- ``--url URL [--k K,...]``: the fish models by k, as the seed's bulk prediction
  (``Length,Weight[,Species]`` plus one column per k);
- ``--scheduler ADDR|local[:N] --models PATH --model NAME``: the model is shipped
  to every Dask worker once and each input partition is scored there
  (:func:`fishpredict.bulk.dask.score_files`).
"""

from __future__ import annotations

from typing import Any

import click

from fishpredict.cli.options import POSITIVE_INT, IntList, ModelPath, trust_option
from fishpredict.errors import ConfigError

_MODES = ("--url (through a server) or --scheduler (on Dask)")


@click.command(short_help="predict a data file through a running server, or on Dask")
@click.option("--url", default=None, help="the server, e.g. http://127.0.0.1:8000")
@click.option("--scheduler", default=None, metavar="ADDR|local[:N]",
              help="score on Dask instead: a scheduler address, or local[:N] for a local "
              "cluster of N worker processes")
@click.option("--data", required=True,
              help="input rows: a .csv/.parquet/.npy file, a glob or a directory (fish by k: "
              "also .npz; Length,Weight[,Species])")
@click.option("--model", default=None, metavar="NAME",
              help="the model to predict with, by name (any model: its feature columns are "
              "read by header name)")
@click.option("--k", "ks", type=IntList(), default=None,
              help="fish models by k through --url: comma-separated k (default: 5)")
@click.option("--models", "models", type=ModelPath(), multiple=True,
              help="with --scheduler: model file or directory, repeatable (default: the "
              "embedded fish models)")
@trust_option()
@click.option("--proba", is_flag=True, help="also write probability_<class> columns")
@click.option("--out", default=None,
              help="output: a .csv or .parquet file, or a directory of part files "
              "(default predictions.csv; --scheduler: required)")
@click.option("--keep", "keep", multiple=True, metavar="COL",
              help="an input column (an id) to write beside each answer; repeatable "
              "(--model and --scheduler)")
@click.option("--chunk-rows", type=POSITIVE_INT, default=None,
              help="rows per request (memory stays flat; default 200,000 .npy rows by k, "
              "10,000 JSON rows by --model)")
def predict(url: str | None, scheduler: str | None, data: str, model: str | None,
            ks: list[int] | None, models: tuple[tuple[str | None, str], ...], trust: bool,
            proba: bool, out: str | None, keep: tuple[str, ...], chunk_rows: int | None) -> int:
    """Predict a data file through a running server (--url), or on Dask (--scheduler)."""
    if (url is None) == (scheduler is None):
        raise ConfigError(f"give one of {_MODES}")
    if out is not None:
        from fishpredict.tables.writers import check_output_name

        check_output_name(out)
    if len(set(keep)) != len(keep):
        raise ConfigError("--keep: each column once")
    if scheduler is not None:
        return _on_dask(scheduler, data, model, ks, models, trust, proba, out, keep)
    assert url is not None
    if models or trust:
        raise ConfigError("--models/--trust apply to --scheduler; with --url the server's "
                          "models answer")
    if model is not None or (ks is None and not _has_knn(url)):
        if ks is not None:
            raise ConfigError("give --model or --k, not both")
        return _by_model(url, data, model, proba, out or "predictions.csv",
                         chunk_rows or 10_000, keep)
    if proba:
        raise ConfigError("--proba needs --model NAME")
    if keep:
        raise ConfigError("--keep needs --model NAME (the fish by k keep their own columns)")
    return _by_k(url, data, ks or [5], out or "predictions.csv", chunk_rows or 200_000)


def _has_knn(url: str) -> bool:
    """Whether the server serves models by k (the fish models)."""
    from fishpredict.bulk.client import Client

    with Client(url) as client:
        return any(m.get("k") is not None for m in client.get_json("/models")["models"])


def _progress(total: int | None) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="rows", unit_scale=True, disable=None, leave=False)


def _by_model(url: str, data: str, model: str | None, proba: bool, out: str,
              chunk_rows: int, keep: tuple[str, ...]) -> int:
    from fishpredict.bulk.tables import predict_table
    from fishpredict.tables import inputs as tables

    with _progress(tables.count_rows(data)) as bar:
        s = predict_table(url, data, out, model=model, proba=proba, chunk_rows=chunk_rows,
                          progress=bar, keep=keep)
    rate = s.rows / s.seconds if s.seconds > 0 else float("inf")
    click.echo(f"wrote {s.rows:,} rows of {s.files} file{'s' if s.files != 1 else ''} "
               f"predicted by {s.model} to {s.out} in {s.seconds:.2f} s "
               f"({rate:,.0f} predictions/s)")
    return 0


def _by_k(url: str, data: str, ks: list[int], out: str, chunk_rows: int) -> int:
    from fishpredict.bulk import remote
    from fishpredict.fish import files as datafiles

    total = datafiles.count_rows(data)
    first = next(iter(datafiles.iter_chunks(data, 1)), None)
    has_labels = first is not None and first[1] is not None
    with _progress(total) as bar:
        summary = remote.predict_to_csv(url, datafiles.iter_chunks(data, chunk_rows), ks,
                                        out, has_labels, progress=bar)
    click.echo(f"wrote {summary.rows:,} rows x {len(ks)} k to {summary.out} in "
               f"{summary.seconds:.2f} s ({summary.rows * len(ks) / summary.seconds:,.0f} "
               "predictions/s)")
    return 0


def _on_dask(scheduler: str, data: str, model: str | None, ks: list[int] | None,
             models: tuple[tuple[str | None, str], ...], trust: bool, proba: bool,
             out: str | None, keep: tuple[str, ...]) -> int:
    import json

    from fishpredict.cli.options import model_sources

    if ks is not None:
        raise ConfigError("--k applies to --url; with --scheduler name the model with --model")
    if out is None:
        raise ConfigError("--scheduler needs --out (a directory of part files, or a file)")
    try:
        from fishpredict.bulk.dask import score_files
    except ImportError as exc:
        raise ConfigError(f"fishpredict predict --scheduler needs {exc.name}: "
                          "pip install 'fishpredict[dask]'") from None
    summary = score_files(models=model_sources(models), model=model, data=data, out=out,
                          scheduler=scheduler, proba=proba, trust=trust, keep=keep)
    click.echo(json.dumps(summary, default=str))
    return 0
