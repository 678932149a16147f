"""The ``fishpredict`` command line, on click: one module per command group.

The core commands live here: ``train``, ``serve``, ``backends``, ``data``,
``evaluate``, ``predict`` and ``models``. The other groups (``perf``,
``cluster``, ``bench``, ``experiment``, ``soak``) are added through the
``register_commands(cli)`` hook, the way a third-party plugin adds its own
(:data:`fishpredict.plugins.BUILTIN_COMMAND_PLUGINS`). Shared options and types
are in :mod:`fishpredict.cli.options`; how errors end (one line, a non-zero
exit) in :mod:`fishpredict.cli.group`.

Every command imports what it needs when it runs, so ``fishpredict --help``,
``fishpredict backends`` and ``fishpredict bench --help`` import no
scikit-learn.
"""

from __future__ import annotations

from .backends import backends
from .data import data
from .evaluate import evaluate
from .group import cli, main
from .models import models
from .predict import predict
from .serve import serve
from .train import train

for _command in (train, serve, backends, data, evaluate, predict, models):
    cli.add_command(_command)

__all__ = ["cli", "main"]
