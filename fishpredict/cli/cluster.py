"""``fishpredict cluster up / status / down``: N ``serve`` replicas behind a real nginx.

Registered through the ``register_commands`` hook, as a plugin's commands are.
"""

from __future__ import annotations

from typing import Any

import click

from fishpredict.cli.options import (
    POSITIVE_INT,
    SECONDS,
    fast_path_option,
    json_option,
    model_args,
    models_option,
    trust_option,
    write_json,
)
from fishpredict.errors import ClusterError, ConfigError
from fishpredict.hookspecs import hookimpl

_RUN_DIR_HELP = "where the state, logs and nginx config live (default: ./.fishpredict-cluster)"


def run_dir_option(func: Any) -> Any:
    return click.option("--run-dir", default=None, type=click.Path(file_okay=False),
                        help=_RUN_DIR_HELP)(func)


@click.group(short_help="run N replicas behind a real nginx on loopback")
def cluster() -> None:
    """Start, inspect or stop a local cluster: N `fishpredict serve` replicas behind
    nginx, configured from the same template as docker/nginx/default.conf (see
    docs/cluster.md)."""


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(cluster)


def _cluster(run_dir: str | None, containers: bool | None = None, **options: Any) -> Any:
    """The cluster in ``run_dir``: in containers if asked for (``containers=True``) or,
    when not said (None), if the run directory holds a container cluster."""
    from pathlib import Path

    try:
        from fishpredict.ops.cluster import DEFAULT_RUN_DIR, Cluster, ClusterConfig
        from fishpredict.ops.containers import ContainerCluster, ContainerConfig, has_containers
    except ImportError as exc:
        raise ConfigError(f"fishpredict cluster needs {exc.name}: "
                          "pip install 'fishpredict[serve,bench]'") from None
    path = Path(run_dir or DEFAULT_RUN_DIR)
    if containers is None:
        containers = has_containers(path)
    elif not containers and has_containers(path):
        raise ClusterError(f"a container cluster is up in {path.resolve()}; stop it with: "
                           f"fishpredict cluster down --run-dir {path}")
    if containers:
        return ContainerCluster(ContainerConfig(run_dir=path, **options))
    return Cluster(ClusterConfig(run_dir=path, **options))


@cluster.command()
@click.option("--backend", default="socket", show_default=True,
              help="serving backend of every replica")
@click.option("--replicas", type=POSITIVE_INT, default=2, show_default=True, help="replicas")
@click.option("--port", type=click.IntRange(1, 65535), default=8070, show_default=True,
              help="nginx's port")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="nginx's address (replicas are always loopback)")
@click.option("--workers-per-replica", type=POSITIVE_INT, default=1, show_default=True,
              help="`serve --workers` of each replica")
@models_option("a model file or directory for every replica (as `serve --models`), "
               "repeatable (default: the embedded models)")
@trust_option()
@fast_path_option("replicas always predict through scikit-learn")
@run_dir_option
@click.option("--nginx", default=None, metavar="PATH", type=click.Path(dir_okay=False),
              help="nginx binary (default: nginx on PATH, else /usr/sbin/nginx)")
@click.option("--startup-timeout", type=SECONDS, default=60.0, show_default=True,
              help="seconds to wait for every process to be ready")
@click.option("--containers", is_flag=True,
              help="run the replicas and nginx in containers built from docker/'s files")
@click.option("--engine", type=click.Choice(["docker", "podman"]), default=None,
              help="with --containers: the engine (default: docker if its daemon "
                   "answers, else podman)")
@click.option("--build", is_flag=True,
              help="with --containers: rebuild the images even if they exist")
@click.option("--source", default=None, metavar="DIR", type=click.Path(file_okay=False),
              help="with --containers: the fishpredict checkout to build the images from "
                   "(default: the one installed, else the current directory)")
def up(backend: str, replicas: int, port: int, host: str, workers_per_replica: int,
       models: tuple[tuple[str | None, str], ...], trust: bool, fast_path: bool,
       run_dir: str | None, nginx: str | None, startup_timeout: float, containers: bool,
       engine: str | None, build: bool, source: str | None) -> int:
    """Start the replicas and nginx, wait until ready, return."""
    serve_args = tuple(model_args(models)) + (("--trust",) if trust else ())
    options: dict[str, Any] = dict(
        backend=backend, replicas=replicas, port=port, host=host,
        workers_per_replica=workers_per_replica, fast_path=fast_path,
        startup_timeout=startup_timeout, serve_args=serve_args)
    if containers:
        if nginx is not None:
            raise click.UsageError("--nginx names the host's nginx; with --containers "
                                   "nginx runs in its image")
        options.update(engine=engine, build=build, source=source)
    else:
        given = [name for name, value in (("--engine", engine), ("--build", build),
                                          ("--source", source)) if value]
        if given:
            raise click.UsageError(f"{given[0]} needs --containers")
        options.update(nginx=nginx)
    c = _cluster(run_dir, containers, **options)
    url = c.up()
    where = f" in {c.engine.name} containers" if containers else ""
    click.echo(f"fishpredict: cluster of {replicas} {backend} replica"
               f"{'s' if replicas > 1 else ''}{where} behind nginx on {url} "
               f"(run dir {c.run_dir})")
    return 0


@cluster.command()
@run_dir_option
@json_option("print JSON (to FILE if given)")
def status(run_dir: str | None, json_out: str | None) -> int:
    """Each process alive or dead, each /readyz."""
    s = _cluster(run_dir).status()
    if json_out is not None:
        write_json(json_out, {"url": s.url, "run_dir": str(s.run_dir), "healthy": s.healthy,
                              "processes": [vars(p) for p in s.processes]})
    else:
        click.echo(f"cluster {s.url} (run dir {s.run_dir}): "
                   f"{'healthy' if s.healthy else 'NOT healthy'}")
        for p in s.processes:
            click.echo(f"  {p.role:<11} pid {p.pid:<8} port {p.port:<6} "
                       f"{'alive' if p.alive else 'dead':<6} {p.health}")
    return 0 if s.healthy else 1


@cluster.command()
@run_dir_option
@click.option("--timeout", type=SECONDS, default=15.0, show_default=True,
              help="seconds each process gets after SIGTERM before SIGKILL")
def down(run_dir: str | None, timeout: float) -> int:
    """Stop everything `up` started, remove the state."""
    c = _cluster(run_dir, stop_timeout=timeout)
    if not c.state_path.exists():
        click.echo(f"fishpredict: no cluster in {c.run_dir}; nothing to stop")
        return 0
    killed = c.down()
    note = f" (killed after {timeout:g}s: {', '.join(killed)})" if killed else ""
    click.echo(f"fishpredict: cluster in {c.run_dir} stopped{note}")
    return 0
