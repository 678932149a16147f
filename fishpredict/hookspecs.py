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

The built-in backends (starlette, aiohttp, socket) register exactly this way.
This module's docstrings are the one copy of the hook reference; the
plugin-authoring guide in docs/plugins.md quotes them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .backend import Backend

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
