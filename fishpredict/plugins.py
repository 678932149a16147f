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

import os
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from types import CodeType, FrameType, ModuleType, TracebackType
from typing import TYPE_CHECKING, Any

import pluggy

from fishpredict import hookspecs
from fishpredict.backend import Backend
from fishpredict.errors import BackendUnavailableError, PluginError, UnknownBackendError

if TYPE_CHECKING:
    import click

ENTRY_POINT_GROUP = "fishpredict"
BLOCK_ENV = "FISHPREDICT_BLOCK_PLUGINS"
ALLOW_ENV = "FISHPREDICT_PLUGINS"
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


def _impl_codes(hook: Any) -> dict[CodeType, str]:
    """The code object of each implementation of ``hook`` -> its plugin's name."""
    return {impl.function.__code__: impl.plugin_name for impl in hook.get_hookimpls()}


def _plugin_in(codes: dict[CodeType, str], tb: TracebackType | None) -> str | None:
    """The plugin whose hook implementation raised, from the traceback."""
    found = None
    while tb is not None:
        found = codes.get(tb.tb_frame.f_code, found)
        tb = tb.tb_next
    return found


class Registry:
    """A plugin manager plus the backends its plugins registered."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self._backends: dict[str, tuple[Backend, str]] = {}
        self._loaded = False
        self._lock = threading.RLock()
        self._dists: dict[str, tuple[str, str]] = {}
        #: the plugin being called, while a hook is called one plugin at a time
        self._current: str | None = None
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

    def _call(
        self, name: str, reset: Callable[[], None], **kwargs: Any
    ) -> dict[str, str]:
        """Call the hook ``name`` through pluggy (its ordering, wrappers and tracing
        apply); a plugin whose implementation raises is set aside, ``reset`` undoes
        what the call did, and the hook is called again without it. Returns plugin
        name -> why it was set aside. A :class:`PluginError` (two plugins claiming
        one name) is not a broken plugin: it is raised.

        A register callback learns which plugin calls it from the stack
        (:meth:`calling_plugin`); implementations that share one code object (made
        by one factory) cannot be told apart there, so those hooks are called one
        plugin at a time, each call still through pluggy."""
        hook = getattr(self.pm.hook, name)
        failed: dict[str, str] = {}
        while True:
            impls = [i for i in hook.get_hookimpls() if i.plugin_name not in failed]
            codes = [i.function.__code__ for i in impls]
            try:
                if len(set(codes)) == len(codes):
                    skip = [self.pm.get_plugin(p) for p in failed]
                    (self.pm.subset_hook_caller(name, skip) if skip else hook)(**kwargs)
                else:
                    everyone = [self.pm.get_plugin(i.plugin_name) for i in impls]
                    for impl in reversed(impls):  # pluggy's calling order
                        self._current = impl.plugin_name
                        others = [p for p in everyone if p is not impl.plugin]
                        self.pm.subset_hook_caller(name, others)(**kwargs)
                return failed
            except PluginError:
                raise
            except Exception as exc:  # a broken plugin must not take the others down
                plugin = self._current or _plugin_in(_impl_codes(hook), exc.__traceback__)
                if plugin is None or plugin in failed:
                    raise
                failed[plugin] = f"{type(exc).__name__}: {exc}"
                reset()
            finally:
                self._current = None

    def calling_plugin(self, codes: dict[CodeType, str]) -> str:
        """The plugin whose hook implementation is running below this call."""
        if self._current is not None:
            return self._current
        frame: FrameType | None = sys._getframe(2)
        while frame is not None:
            name = codes.get(frame.f_code)
            if name is not None:
                return name
            frame = frame.f_back
        return "(unknown plugin)"

    def _collect(self) -> None:
        found: dict[str, tuple[Backend, str]] = {}
        codes = _impl_codes(self.pm.hook.register_backends)

        def register(backend: Backend) -> None:
            plugin = self.calling_plugin(codes)
            if not isinstance(backend, Backend):
                raise PluginError(
                    f"plugin {plugin!r} registered {backend!r}, which is not a Backend"
                )
            if backend.name in found and found[backend.name][1] != plugin:
                raise PluginError(
                    f"backend name {backend.name!r} is registered by both "
                    f"{found[backend.name][1]!r} and {plugin!r}"
                )
            found[backend.name] = (backend, plugin)

        failed = self._call("register_backends", found.clear, register=register)
        self.broken.update(failed)
        self._backends = found

    def register_commands(
        self, cli: click.Group, builtin: Sequence[ModuleType] = ()
    ) -> dict[str, str]:
        """Let every plugin add its commands to ``cli`` through the ``register_commands``
        hook; ``builtin``: the command line's own command groups, registered here as
        plugins and called before any entry-point plugin. Returns plugin name -> why it
        added nothing or not all: an exception (the plugin is set aside, whatever it
        added undone) or a command name already taken (the first command stays)."""
        self.load()
        with self._lock:
            # pluggy calls the implementation registered last first
            for module in reversed(builtin):
                if self.pm.get_plugin(module.__name__) is None:
                    self.pm.register(module, name=module.__name__)
        codes = _impl_codes(self.pm.hook.register_commands)
        before = dict(cli.commands)
        refused: dict[str, str] = {}
        add_command = cli.add_command

        def guarded(cmd: click.Command, name: str | None = None) -> None:
            name = name or cmd.name
            if name in cli.commands:
                refused[self.calling_plugin(codes)] = f"command name {name} is taken"
                return
            add_command(cmd, name)

        def reset() -> None:
            cli.commands.clear()
            cli.commands.update(before)

        cli.add_command = guarded  # type: ignore[method-assign]
        try:
            failed = self._call("register_commands", reset, cli=cli)
        finally:
            del cli.add_command
        return {**refused, **failed}

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
