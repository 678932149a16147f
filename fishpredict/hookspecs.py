"""The hooks a fishpredict plugin can implement.

A plugin is a module (or any object) named by an entry point in the
``fishpredict`` group, with functions decorated by :data:`hookimpl`::

    # pyproject.toml of your package
    [project.entry-points.fishpredict]
    mybackend = "my_package.plugin"

    # my_package/plugin.py
    from fishpredict import hookimpl
    from fishpredict.backend import Backend

    class MyBackend(Backend):
        name = "mine"
        ...

    @hookimpl
    def register_backends(register):
        register(MyBackend())

The built-in backends (starlette, aiohttp, socket) register exactly this way,
and so do the built-in command groups that are not the core (``bench``,
``perf``, ``experiment``, ``cluster``, ``soak``: see :mod:`fishpredict.cli`).
This module's docstrings are the one copy of the hook reference; the
plugin-authoring guide in docs/plugins.md quotes them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

    from fishpredict.backend import Backend

PROJECT_NAME = "fishpredict"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_backends(register: Callable[[Backend], None]) -> None:
    """Register serving backends.

    Call ``register(backend)`` once per :class:`fishpredict.backend.Backend`
    instance the plugin provides. A backend's ``name`` must be unique among
    all installed plugins; a clash is an error naming both plugins.
    Do not import heavy dependencies here: the hook runs for
    ``fishpredict backends`` too, where a backend whose dependencies are
    missing must still be listed (as unavailable).
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add commands to the ``fishpredict`` command line.

    ``cli`` is the root :class:`click.Group`; call ``cli.add_command(command)``
    (or decorate functions with ``@cli.command()``) for each command or group
    the plugin provides. The hook runs when the command line first lists or
    looks up its commands, so keep it light: import what a command needs inside
    the command's function. A name already taken (by fishpredict or another
    plugin) is refused with a one-line warning and the first command stays.
    """
