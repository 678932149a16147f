"""``fishpredict models inspect`` / ``add`` / ``list`` / ``remove``: any model file's
signature, and a model directory's manifest: what it lists, adding, replacing and
removing a model."""

from __future__ import annotations

from typing import Any

import click

from fishpredict.cli.options import json_option, trust_option, write_json


@click.group(short_help="inspect a model file; add, list or remove a model directory's models")
def models() -> None:
    """Inspect a model file's signature; add, list or remove the models of a model
    directory (its manifest.json)."""


@models.command()
@click.argument("path", type=click.Path(exists=True))
@trust_option()
@json_option("print the models as JSON (to FILE if given)")
def inspect(path: str, trust: bool, json_out: str | None) -> int:
    """What the models in PATH (a model file or a directory) take and give.

    Loads each model (a joblib/pickle file needs a manifest sha256 or --trust) and
    prints its signature: features with kinds and bounds, task, classes, outputs,
    whether it accepts missing values, and which fast path answers it.
    """
    from fishpredict.predictor import Predictor

    infos = [m.as_dict() for m in Predictor(path, trust=trust).models()]
    if json_out is not None:
        write_json(json_out, infos)
        return 0
    for info in infos:
        click.echo("\n".join(describe(info)))
    return 0


def describe(info: dict[str, Any]) -> list[str]:
    """One model's ``ModelInfo.as_dict()`` as lines of text."""
    sig = info["signature"]
    fast = info.get("fast_path_family") or "none (scikit-learn answers)"
    lines = [
        f"{info['name']}: {info['estimator']} ({info['format']}, sha256 {info['sha256'][:16]})",
        f"  source      {info['source']}",
        f"  task        {sig['task']}",
        f"  outputs     {', '.join(sig['outputs'])}",
        f"  input       {sig['input']}; missing values "
        f"{'accepted' if sig['allows_nan'] else 'refused'}",
        f"  fast path   {fast}",
    ]
    if "classes" in sig:
        lines.append(f"  classes     {', '.join(map(str, sig['classes']))}")
    lines.append(f"  features    {len(sig['features'])}")
    for f in sig["features"]:
        extra = [f"{k} {f[k]:g}" for k in ("minimum", "maximum") if k in f]
        if "categories" in f:
            extra.append(f"categories {', '.join(map(str, f['categories']))}")
        if "levels" in f:
            extra.append(f"category dtype {', '.join(map(str, f['levels']))}")
        lines.append(f"    {f['name']:<20} {f['kind']}" + (f" ({'; '.join(extra)})" if extra
                                                          else ""))
    return lines


@models.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--to", "to", required=True, type=click.Path(file_okay=False),
              help="the model directory (created if missing)")
@click.option("--name", default=None, help="the name to serve it under (default: the file stem)")
@trust_option()
@click.option("--replace", is_flag=True, help="replace a manifest entry of the same name")
def add(file: str, to: str, name: str | None, trust: bool, replace: bool) -> int:
    """Copy FILE into a model directory and list it in its manifest.json (sha256,
    signature), so that `serve --models DIR` loads it without --trust."""
    from fishpredict.models.manifest import MANIFEST_NAME, add_model

    entry = add_model(file, to, name=name, trust=trust, replace=replace)
    click.echo(f"added {entry.name} ({entry.file}, {entry.estimator}, "
               f"sha256={entry.sha256[:16]}) to {to}/{MANIFEST_NAME}")
    return 0


@models.command("list")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@json_option("print the manifest's entries as JSON (to FILE if given)")
def list_(directory: str, json_out: str | None) -> int:
    """The models DIRECTORY's manifest.json lists: name, file, estimator, sha256."""
    from dataclasses import asdict

    from fishpredict.models.manifest import read_manifest

    entries = read_manifest(directory)
    if json_out is not None:
        write_json(json_out, [asdict(e) for e in entries])
        return 0
    for e in entries:
        click.echo(f"{e.name}\t{e.file}\t{e.estimator or '?'}\t{e.format or '?'}\t"
                   f"sha256={e.sha256[:16]}")
    return 0


@models.command()
@click.argument("name")
@click.option("--from", "directory", required=True, type=click.Path(file_okay=False),
              help="the model directory")
@click.option("--keep-file", is_flag=True, help="keep the model file; only unlist it")
def remove(name: str, directory: str, keep_file: bool) -> int:
    """Take model NAME out of a model directory's manifest.json and delete its file (unless
    --keep-file, or another entry uses it). A server serving the directory stops serving
    it at its next reload (POST /admin/reload, or SIGHUP)."""
    from fishpredict.models.manifest import MANIFEST_NAME, remove_model

    entry = remove_model(directory, name, keep_file=keep_file)
    click.echo(f"removed {entry.name} ({entry.file}) from {directory}/{MANIFEST_NAME}")
    return 0
