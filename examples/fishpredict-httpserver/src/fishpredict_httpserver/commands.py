"""The plugin's command: ``fishpredict httpserver-info``.

A plugin adds commands to the ``fishpredict`` command line through the
``register_commands(cli)`` hook: ``cli`` is the root click group. The hook runs
whenever the command line lists its commands, so this module imports nothing
heavy; the command imports what it needs when it runs.
"""

from __future__ import annotations

import json

import click

from fishpredict import hookimpl


@click.command(name="httpserver-info",
               short_help="the httpserver backend this plugin provides, and whether it works")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def info(as_json: bool) -> None:
    """Show the httpserver backend this plugin provides: name, version, summary, and
    whether its dependencies are installed."""
    from . import __version__
    from .plugin import HTTPServerBackend

    backend = HTTPServerBackend()
    facts = {
        "backend": backend.name,
        "version": __version__,
        "summary": backend.summary,
        "available": backend.available(),
        "serve": f"fishpredict serve --backend {backend.name}",
    }
    if as_json:
        click.echo(json.dumps(facts))
        return
    for key, value in facts.items():
        click.echo(f"{key:<10} {value}")


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Give the ``fishpredict`` command line ``httpserver-info``."""
    cli.add_command(info)
