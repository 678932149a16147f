"""Loading plugins and the registry of serving backends.

Plugins are found through the ``fishpredict`` entry-point group and loaded
once, lazily, the first time a backend is asked for. Two environment
variables limit what loads:

``FISHPREDICT_BLOCK_PLUGINS``
    comma-separated entry-point names never to load.
``FISHPREDICT_PLUGINS``
    if set, only these entry-point names load (an allow-list).
"""

from __future__ import annotations

import importlib
import os
import threading
from dataclasses import dataclass
from importlib import metadata
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

import pluggy

from fishpredict import hookspecs
from fishpredict.backend import Backend
from fishpredict.errors import BackendUnavailableError, FishpredictError, UnknownBackendError

if TYPE_CHECKING:
    import click

ENTRY_POINT_GROUP = "fishpredict"
BLOCK_ENV = "FISHPREDICT_BLOCK_PLUGINS"
ALLOW_ENV = "FISHPREDICT_PLUGINS"
#: fishpredict's own command groups that are not the core: plugins registered
#: (in this order, before any entry-point plugin's commands) through the same
#: ``register_commands`` hook third parties implement
BUILTIN_COMMAND_PLUGINS: Final = (
    "fishpredict.cli.perf",
    "fishpredict.cli.cluster",
    "fishpredict.cli.bench",
    "fishpredict.cli.experiment",
    "fishpredict.cli.soak",
)


@dataclass(frozen=True)
class BackendInfo:
    """One registered backend, as ``fishpredict backends`` lists it."""

    name: str
    plugin: str
    distribution: str
    version: str
    summary: str
    available: bool
    missing: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "plugin": self.plugin,
            "distribution": self.distribution,
            "version": self.version,
            "summary": self.summary,
            "available": self.available,
            "missing": list(self.missing),
        }


def _env_names(var: str) -> set[str] | None:
    raw = os.environ.get(var)
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


class Registry:
    """A plugin manager plus the backends its plugins registered."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self._backends: dict[str, tuple[Backend, str]] = {}
        self._loaded = False
        self._lock = threading.RLock()
        self._dists: dict[str, tuple[str, str]] = {}
        #: entry-point name -> why it failed to import
        self.broken: dict[str, str] = {}

    def load(self) -> None:
        """Load the entry-point plugins (once) and collect their backends."""
        with self._lock:
            if self._loaded:
                return
            blocked = _env_names(BLOCK_ENV) or set()
            allowed = _env_names(ALLOW_ENV)
            for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
                if ep.name in blocked or (allowed is not None and ep.name not in allowed):
                    self.pm.set_blocked(ep.name)
                    continue
                if self.pm.get_plugin(ep.name) is not None or self.pm.is_blocked(ep.name):
                    continue
                try:
                    plugin = ep.load()
                except Exception as exc:  # a broken plugin must not take the others down
                    self.broken[ep.name] = f"{type(exc).__name__}: {exc}"
                    continue
                self.pm.register(plugin, name=ep.name)
                if ep.dist is not None:
                    self._dists[ep.name] = (ep.dist.metadata["name"], ep.dist.version)
            self.pm.check_pending()
            self._collect()
            self._loaded = True

    def register_plugin(self, plugin: ModuleType | object, name: str | None = None) -> None:
        """Register a plugin object directly (tests, embedding); re-collects backends."""
        with self._lock:
            self.pm.register(plugin, name=name)
            self.pm.check_pending()
            if self._loaded:
                self._collect()

    def _collect(self) -> None:
        found: dict[str, tuple[Backend, str]] = {}
        for impl in self.pm.hook.register_backends.get_hookimpls():
            plugin_name = impl.plugin_name

            def register(backend: Backend, _plugin: str = plugin_name) -> None:
                if not isinstance(backend, Backend):
                    raise FishpredictError(
                        f"plugin {_plugin!r} registered {backend!r}, which is not a Backend"
                    )
                if backend.name in found and found[backend.name][1] != _plugin:
                    raise FishpredictError(
                        f"backend name {backend.name!r} is registered by both "
                        f"{found[backend.name][1]!r} and {_plugin!r}"
                    )
                found[backend.name] = (backend, _plugin)

            impl.function(register=register)
        self._backends = found

    def register_commands(self, cli: click.Group) -> dict[str, str]:
        """Let every plugin add its commands to ``cli`` (the built-in command groups
        first); returns plugin name -> why it added nothing, for the ones that failed
        (an exception, or a command name already taken: the first command stays)."""
        self.load()
        with self._lock:
            for name in BUILTIN_COMMAND_PLUGINS:
                if self.pm.get_plugin(name) is None:
                    self.pm.register(importlib.import_module(name), name=name)
            impls = sorted(self.pm.hook.register_commands.get_hookimpls(),
                           key=lambda i: i.plugin_name not in BUILTIN_COMMAND_PLUGINS)
        failed: dict[str, str] = {}
        for impl in impls:
            before = dict(cli.commands)
            try:
                impl.function(cli=cli)
            except Exception as exc:  # a broken plugin must not take the command line down
                failed[impl.plugin_name] = f"{type(exc).__name__}: {exc}"
            taken = [n for n, c in before.items() if cli.commands.get(n) is not c]
            if taken:
                cli.commands.update({n: before[n] for n in taken})
                failed[impl.plugin_name] = f"command name {', '.join(taken)} is taken"
        return failed

    def _dist_of(self, plugin_name: str) -> tuple[str, str]:
        return self._dists.get(plugin_name, ("(registered in code)", ""))

    def get_backend(self, name: str) -> Backend:
        """The backend called ``name``; :class:`UnknownBackendError` lists the known ones."""
        self.load()
        if name not in self._backends:
            known = ", ".join(sorted(self._backends)) or "none"
            hint = ""
            if self.broken:
                hint = "; plugins that failed to load: " + "; ".join(
                    f"{n} ({why})" for n, why in sorted(self.broken.items()))
            raise UnknownBackendError(f"unknown backend {name!r}; known backends: {known}{hint}")
        return self._backends[name][0]

    def get_available_backend(self, name: str) -> Backend:
        backend = self.get_backend(name)
        missing = backend.missing()
        if missing:
            raise BackendUnavailableError(
                f"backend {name!r} needs {', '.join(missing)}: "
                f"pip install 'fishpredict[{name}]' (or the plugin's own extras)"
            )
        return backend

    def backends(self) -> list[BackendInfo]:
        """Every registered backend, sorted by name."""
        self.load()
        out = []
        for name in sorted(self._backends):
            backend, plugin = self._backends[name]
            dist, version = self._dist_of(plugin)
            missing = tuple(backend.missing())
            out.append(
                BackendInfo(
                    name=name,
                    plugin=plugin,
                    distribution=dist,
                    version=version,
                    summary=backend.summary,
                    available=not missing,
                    missing=missing,
                )
            )
        return out


_registry: Registry | None = None
_registry_lock = threading.Lock()


def registry() -> Registry:
    """The process-wide registry (created on first use; plugins load lazily)."""
    global _registry
    with _registry_lock:
        if _registry is None:
            _registry = Registry()
        return _registry


def get_backend(name: str) -> Backend:
    """The backend called ``name`` from the process-wide registry."""
    return registry().get_backend(name)


def list_backends() -> list[BackendInfo]:
    return registry().backends()
