"""``fishpredict serve``: serve any models over HTTP through a backend.

Every :class:`fishpredict.app.config.ServeConfig` limit has a flag; the defaults
come from ServeConfig itself, so the command line and the library cannot
disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from fishpredict.app.config import ServeConfig
from fishpredict.cli.options import POSITIVE_INT, SECONDS, predictor_options
from fishpredict.errors import ConfigError

#: every ServeConfig knob ``serve`` exposes: (field, click type, help)
LIMITS: list[tuple[str, Any, str]] = [
    ("batch_max", POSITIVE_INT, "micro-batching: most rows per predict call; 1 turns it off"),
    ("batch_wait_us", click.INT, "micro-batching: most microseconds to wait for more rows"),
    ("max_body_bytes", POSITIVE_INT, "largest request body in bytes; more -> 413"),
    ("max_batch_rows", POSITIVE_INT, "most rows in one batch request; more -> 413"),
    ("max_connections", POSITIVE_INT, "most open connections per worker; more -> 503"),
    ("max_inflight", POSITIVE_INT, "most requests handled at once per worker; more -> 503"),
    ("header_timeout", SECONDS, "seconds to receive a request head; then closed"),
    ("keepalive_timeout", SECONDS, "seconds an idle keep-alive connection is kept"),
    ("request_timeout", SECONDS, "seconds for a request body to arrive; then 408"),
    ("drain_timeout", SECONDS, "seconds to finish in-flight requests on SIGTERM"),
    ("retry_after", click.INT, "the Retry-After seconds sent with a 503"),
]

F = Callable[..., Any]


def limit_options(func: F) -> F:
    """One ``--max-body-bytes N``-style option per entry of :data:`LIMITS`."""
    defaults = ServeConfig()
    for field, kind, text in reversed(LIMITS):
        default = getattr(defaults, field)
        shown = f"{default:,}" if isinstance(default, int) else f"{default:g}"
        func = click.option(f"--{field.replace('_', '-')}", field, type=kind, default=default,
                            metavar="N", help=f"{text} (default {shown})")(func)
    return func


@click.command(short_help="serve the models over HTTP",
               epilog="Limits: docs/reliability.md says what a client sees past each.")
@click.option("--backend", default="socket", show_default=True,
              help="serving backend (see `fishpredict backends`)")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="address to bind (loopback only by default)")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="port (0 = any free)")
@click.option("--workers", type=POSITIVE_INT, default=1, show_default=True,
              help="worker processes, forked after the models load")
@click.option("--shared-socket", "reuse_port", is_flag=True, flag_value=False, default=True,
              help="with --workers N: every worker accepts on one shared socket, instead of "
              "one accept queue per worker on the port (SO_REUSEPORT, the default on "
              "Linux), which spreads connections evenly")
@predictor_options
@click.option("--no-cache", "cache", is_flag=True, flag_value=False, default=True,
              help="unpickle the model on every request (the seed's first design; "
              "for benchmarks only)")
@limit_options
@click.option("--admin-token-env", default=None, metavar="VAR",
              help="enable POST /admin/reload, with the token read from this "
              "environment variable")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default="info", show_default=True)
def serve(backend: str, host: str, port: int, workers: int, reuse_port: bool,
          models: tuple[tuple[str | None, str], ...], trust: bool, fast_path: bool,
          labels: str, cache: bool, admin_token_env: str | None, log_level: str,
          **limits: Any) -> int:
    """Serve the models over HTTP.

    --models takes a model file (joblib/pickle, .skops, .onnx) or a directory, as
    NAME=PATH to serve it under NAME; repeat it for several models. A model that
    fails to load is one line and a non-zero exit.
    """
    import logging
    import os
    import sys

    from fishpredict.cli.options import model_sources
    from fishpredict.plugins import registry
    from fishpredict.predictor import Predictor
    from fishpredict.server.serve import serve as run_server

    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    token = None
    if admin_token_env:
        token = os.environ.get(admin_token_env)
        if not token:
            raise ConfigError(f"environment variable {admin_token_env} is empty or unset")
    config = ServeConfig(host=host, port=port, workers=workers, reuse_port=reuse_port,
                         labels=labels, admin_token=token,  # type: ignore[arg-type]
                         **limits)
    registry().get_available_backend(backend)  # fail fast, before loading models
    predictor = Predictor(model_sources(models), cache=cache, fast_path=fast_path,
                          labels=labels, trust=trust)  # type: ignore[arg-type]
    return run_server(backend, config, predictor)
