"""The ``fishpredict`` command line, on click: one module per command group.

The core commands live here: ``train``, ``serve``, ``backends``, ``data``,
``evaluate``, ``predict`` and ``models``. The other groups (``perf``,
``cluster``, ``bench``, ``experiment``, ``soak``) are added through the
``register_commands(cli)`` hook, the way a third-party plugin adds its own
(the ``builtin`` of :meth:`fishpredict.plugins.Registry.register_commands`).
Shared options and types are in :mod:`fishpredict.cli.options`; how errors end (one line, a non-zero
exit) in :mod:`fishpredict.cli.group`.

Every command imports what it needs when it runs, so ``fishpredict --help``,
``fishpredict backends`` and ``fishpredict bench --help`` import no
scikit-learn.
"""

from __future__ import annotations

from fishpredict.cli.backends import backends
from fishpredict.cli.data import data
from fishpredict.cli.evaluate import evaluate
from fishpredict.cli.group import cli, main
from fishpredict.cli.models import models
from fishpredict.cli.predict import predict
from fishpredict.cli.serve import serve
from fishpredict.cli.train import train

for _command in (train, serve, backends, data, evaluate, predict, models):
    cli.add_command(_command)

__all__ = ["cli", "main"]
