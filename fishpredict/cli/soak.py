"""``fishpredict soak``: a bounded high-load run of good and bad requests.

Registered through the ``register_commands`` hook, as a plugin's commands are.
"""

from __future__ import annotations

import click

from fishpredict.cli.options import POSITIVE_FLOAT, POSITIVE_INT, json_option, write_text
from fishpredict.errors import ConfigError
from fishpredict.hookspecs import hookimpl


@click.command(short_help="a bounded high-load run of good and bad requests: nothing lost, "
               "memory flat")
@click.argument("url", metavar="URL", required=False, default=None)
@click.option("--backend", default=None,
              help="start a server of this backend for the run (default: socket)")
@click.option("--duration", type=POSITIVE_FLOAT, default=60.0, show_default=True,
              metavar="SECONDS", help="how long to load (at most 3600)")
@click.option("--connections", type=POSITIVE_INT, default=32, show_default=True,
              help="keep-alive connections kept busy")
@click.option("--workers", type=POSITIVE_INT, default=1, show_default=True,
              help="workers of the server the soak starts")
@click.option("--max-body-bytes", type=POSITIVE_INT, default=64 * 1024, show_default=True,
              help="the server's body limit; a started server gets it")
@click.option("--max-batch-rows", type=POSITIVE_INT, default=1000, show_default=True,
              help="the server's batch limit; a started server gets it")
@click.option("--pid", type=POSITIVE_INT, default=None,
              help="pid of the server at URL, to read its memory")
@click.option("--max-rss-growth", type=click.FloatRange(min=0), default=10.0,
              show_default=True, metavar="PERCENT",
              help="fail if the server's RSS grows more than this after warm-up")
@click.option("--seed", type=click.INT, default=0, show_default=True,
              help="seed of the request mix")
@click.option("--allow-remote", is_flag=True,
              help="allow a non-loopback URL (only a host you own)")
@json_option("write the figures as JSON to FILE ('-': stdout)")
def soak(url: str | None, backend: str | None, duration: float, connections: int,
         workers: int, max_body_bytes: int, max_batch_rows: int, pid: int | None,
         max_rss_growth: float, seed: int, allow_remote: bool, json_out: str | None) -> int:
    """A bounded high-load run of good and bad requests: nothing lost, memory flat.

    Load a server (URL, loopback unless --allow-remote; default: start one with
    --backend) for --duration seconds with a fixed mix of good requests (every
    answer checked) and bad ones (each must get its 4xx). Prints requests served,
    answers by status, unexpected errors and the server's memory; exits 1 on any
    unexpected error or RSS growth over the limit. See docs/reliability.md.
    """
    from fishpredict.soak.mix import SoakConfig
    from fishpredict.soak.run import format_text, run_soak, to_json

    if url is not None and backend is not None:
        raise ConfigError("give either a URL or --backend, not both")
    config = SoakConfig(
        url=url, backend=backend or "socket", duration_s=duration, connections=connections,
        workers=workers, max_body_bytes=max_body_bytes, max_batch_rows=max_batch_rows,
        pid=pid, max_rss_growth_pct=max_rss_growth, seed=seed, allow_remote=allow_remote,
    )
    result = run_soak(config)
    click.echo(format_text(result))
    if json_out == "-":
        click.echo(to_json(result))
    elif json_out:
        write_text(json_out, to_json(result))
    return 0 if result.passed else 1


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(soak)
