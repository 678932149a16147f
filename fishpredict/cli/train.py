"""``fishpredict train``: one KNN fish model per k, written as a model directory."""

from __future__ import annotations

import click

from fishpredict.cli.options import k_option
from fishpredict.errors import ConfigError


@click.command(short_help="train one KNN model per k and write a model directory")
@k_option()
@click.option("--out", default="models", show_default=True, type=click.Path(file_okay=False),
              help="output directory")
@click.option("--scale", type=click.Choice(["standard"]), default=None,
              help="put a StandardScaler in front of the classifier")
def train(ks: list[int], out: str, scale: str | None) -> int:
    """Train one KNN model per k and write a model directory."""
    from fishpredict.fish import training as artifacts
    from fishpredict.models.manifest import MANIFEST_NAME

    try:
        entries = artifacts.save_models(out, ks, scale="standard" if scale else None)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    except OSError as exc:
        raise ConfigError(f"cannot write to {out}: {exc.strerror}") from None
    for e in entries:
        click.echo(f"{e.name}\tk={e.k}\t{out}/{e.file}\tsha256={e.sha256[:16]}")
    click.echo(f"manifest: {out}/{MANIFEST_NAME}")
    return 0
