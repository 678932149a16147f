"""The plugin system: entry points, lazy loading, the registry, the env filters,
``fishpredict backends``, and the docs of every hook.

End-to-end cases install a throwaway plugin distribution by putting a
``*.dist-info`` directory (with an ``entry_points.txt``) on ``PYTHONPATH`` of a
subprocess, exactly as pip would leave it.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import socket
import subprocess
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import pytest

import fishpredict
from fishpredict import hookimpl, hookspecs
from fishpredict.app.service import Service
from fishpredict.backend import Backend
from fishpredict.errors import BackendUnavailableError, FishpredictError, UnknownBackendError
from fishpredict.plugins import Registry, get_backend, list_backends

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "plugins.md"
BUILTIN = {"aiohttp", "socket", "starlette"}


def run(
    *args: str, env: dict[str, str], code: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m fishpredict ARGS`` (or ``python -c CODE``) with ``env``, bounded in time."""
    argv = (
        [sys.executable, "-c", code]
        if code is not None
        else [sys.executable, "-m", "fishpredict", *args]
    )
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)


def backends_json(env: dict[str, str]) -> list[dict[str, Any]]:
    result = run("backends", "--json", env=env)
    assert result.returncode == 0, result.stderr
    listed: list[dict[str, Any]] = json.loads(result.stdout)
    return listed


class Dummy(Backend):
    """A backend that never serves (the registry only needs its class attributes)."""

    name = "dummy"
    summary = "a test double"

    async def serve(self, service: Service, sock: socket.socket, stop: asyncio.Event) -> None:
        raise NotImplementedError


def plugin_module(name: str, *backends: Backend) -> types.ModuleType:
    """A plugin as a module object, registering ``backends``."""
    module = types.ModuleType(name)

    @hookimpl
    def register_backends(register: object) -> None:
        for backend in backends:
            register(backend)  # type: ignore[operator]

    module.register_backends = register_backends  # type: ignore[attr-defined]
    return module


def fake_distribution(tmp_path: Path, dist: str, module: str, ep_name: str, source: str) -> None:
    """Write ``module.py`` and ``<dist>-0.3.0.dist-info`` declaring entry point ``ep_name``."""
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
    info = tmp_path / f"{dist.replace('-', '_')}-0.3.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.3.0\n")
    (info / "entry_points.txt").write_text(f"[fishpredict]\n{ep_name} = {module}\n")


PLUGIN_SOURCE = """
    from fishpredict import hookimpl
    from fishpredict.backend import Backend

    class Needy(Backend):
        name = "{name}"
        summary = "needs a module nobody has"
        requires = ("no_such_module_for_fishpredict",)

        async def serve(self, service, sock, stop):
            raise NotImplementedError

    @hookimpl
    def register_backends(register):
        register(Needy())
"""


# ---- lazy loading ------------------------------------------------------------------------


def test_importing_fishpredict_loads_no_plugin(clean_env: dict[str, str]) -> None:
    code = (
        "import sys, fishpredict, fishpredict.plugins, fishpredict.app.service, "
        "fishpredict.server.serve, fishpredict.cli\n"
        "fishpredict.plugins.registry()\n"
        "print([m for m in sys.modules if m.startswith(('fishpredict_', 'starlette', 'aiohttp'))])"
    )
    result = run(env=clean_env, code=code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_listing_backends_imports_no_heavy_dependency(clean_env: dict[str, str]) -> None:
    code = (
        "import sys\nfrom fishpredict.plugins import list_backends\nnames = list_backends()\n"
        "print([m for m in sys.modules if m.split('.')[0] in "
        "('starlette', 'uvicorn', 'aiohttp', 'httptools', 'http.server')])"
    )
    result = run(env=clean_env, code=code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# ---- the registry ------------------------------------------------------------------------


def test_unknown_backend_lists_known_names() -> None:
    with pytest.raises(UnknownBackendError) as info:
        get_backend("nope")
    message = str(info.value)
    assert "'nope'" in message
    for backend in list_backends():
        assert backend.name in message


def test_builtin_backends_register_through_the_entry_point_group() -> None:
    infos = {i.name: i for i in list_backends()}
    assert set(infos) >= BUILTIN
    for name in BUILTIN:
        assert infos[name].plugin == name
        assert infos[name].distribution == "fishpredict"
        assert infos[name].version == fishpredict.__version__


def test_hook_register_backends() -> None:
    """A plugin's ``register_backends`` may register several backends; each appears."""
    registry = Registry()

    class Other(Dummy):
        name = "dummy-two"

    registry.register_plugin(plugin_module("in_test_plugin", Dummy(), Other()), name="in-test")
    assert {"dummy", "dummy-two"} <= {i.name for i in registry.backends()}
    info = next(i for i in registry.backends() if i.name == "dummy")
    assert (info.plugin, info.distribution, info.summary) == (
        "in-test",
        "(registered in code)",
        "a test double",
    )
    assert isinstance(registry.get_backend("dummy"), Dummy)


def test_hook_register_commands() -> None:
    """A plugin's ``register_commands`` adds commands after the built-in groups; one
    that raises, or takes a name already used, adds nothing and the others still work."""
    import click

    @click.command(name="hello")
    def hello() -> None:
        click.echo("hi")

    good, clash, broken = (types.ModuleType(n) for n in ("good_cmds", "clash_cmds", "bad_cmds"))

    @hookimpl
    def add_hello(cli: click.Group) -> None:
        cli.add_command(hello)

    @hookimpl
    def take_serve(cli: click.Group) -> None:
        cli.add_command(click.Command("bench"))

    @hookimpl
    def boom(cli: click.Group) -> None:
        raise RuntimeError("no commands today")

    good.register_commands = add_hello  # type: ignore[attr-defined]
    clash.register_commands = take_serve  # type: ignore[attr-defined]
    broken.register_commands = boom  # type: ignore[attr-defined]
    registry = Registry()
    for module in (good, clash, broken):
        registry.register_plugin(module, name=module.__name__)
    group = click.Group("fishpredict")
    from fishpredict.cli import bench, cluster, experiment, perf, soak

    failed = registry.register_commands(group, (perf, cluster, bench, experiment, soak))
    assert list(group.commands)[:5] == ["perf", "cluster", "bench", "experiment", "soak"]
    assert group.commands["hello"] is hello
    assert group.commands["bench"].callback is not None  # the built-in bench stayed
    assert failed == {"clash_cmds": "command name bench is taken",
                      "bad_cmds": "RuntimeError: no commands today"}


def test_register_after_load_recollects() -> None:
    registry = Registry()
    registry.load()
    registry.register_plugin(plugin_module("late_plugin", Dummy()), name="late")
    assert registry.get_backend("dummy").name == "dummy"


def test_register_refuses_what_is_not_a_backend() -> None:
    registry = Registry()
    registry.register_plugin(plugin_module("bad_plugin", object()), name="bad")  # type: ignore[arg-type]
    with pytest.raises(FishpredictError, match=r"'bad'.*not a Backend"):
        registry.backends()


def test_name_clash_names_both_plugins() -> None:
    registry = Registry()
    registry.register_plugin(plugin_module("first_plugin", Dummy()), name="first")
    registry.register_plugin(plugin_module("second_plugin", Dummy()), name="second")
    with pytest.raises(FishpredictError) as info:
        registry.backends()
    assert "'dummy'" in str(info.value)
    assert "'first'" in str(info.value) and "'second'" in str(info.value)


def test_missing_requires_is_listed_unavailable() -> None:
    class Needy(Dummy):
        name = "needy"
        requires = ("json", "no_such_module_for_fishpredict")

    registry = Registry()
    registry.register_plugin(plugin_module("needy_plugin", Needy()), name="needy-plugin")
    info = next(i for i in registry.backends() if i.name == "needy")
    assert not info.available and info.missing == ("no_such_module_for_fishpredict",)
    with pytest.raises(BackendUnavailableError, match="no_such_module_for_fishpredict"):
        registry.get_available_backend("needy")


# ---- the environment filters and the CLI -------------------------------------------------


def test_block_plugins_hides_a_backend(clean_env: dict[str, str]) -> None:
    env = {**clean_env, "FISHPREDICT_BLOCK_PLUGINS": "starlette, aiohttp"}
    names = {b["name"] for b in backends_json(env)}
    assert "socket" in names and not names & {"starlette", "aiohttp"}
    result = run("serve", "--backend", "starlette", "--port", "0", env=env)
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "unknown backend 'starlette'" in result.stderr


def test_allow_list_loads_only_those(clean_env: dict[str, str]) -> None:
    env = {**clean_env, "FISHPREDICT_PLUGINS": "aiohttp"}
    assert [b["name"] for b in backends_json(env)] == ["aiohttp"]


def test_backends_json_fields(clean_env: dict[str, str]) -> None:
    listed = backends_json(clean_env)
    assert [b["name"] for b in listed] == sorted(b["name"] for b in listed)
    for b in listed:
        assert set(b) == {
            "name",
            "plugin",
            "distribution",
            "version",
            "summary",
            "available",
            "missing",
        }
        assert isinstance(b["available"], bool) and b["available"] == (not b["missing"])
    human = run("backends", env=clean_env)
    assert human.returncode == 0 and human.stdout.splitlines()[0].split()[:2] == ["NAME", "PLUGIN"]


def test_third_party_distribution_end_to_end(tmp_path: Path, clean_env: dict[str, str]) -> None:
    """An installed plugin whose requirement is missing: listed as unavailable,
    and ``serve`` refuses it in one line."""
    fake_distribution(
        tmp_path, "fishpredict-needy", "needy_plugin", "needy", PLUGIN_SOURCE.format(name="needy")
    )
    env = {**clean_env, "PYTHONPATH": str(tmp_path)}
    needy = next(b for b in backends_json(env) if b["name"] == "needy")
    assert needy == {
        "name": "needy",
        "plugin": "needy",
        "distribution": "fishpredict-needy",
        "version": "0.3.0",
        "summary": "needs a module nobody has",
        "available": False,
        "missing": ["no_such_module_for_fishpredict"],
    }
    result = run("serve", "--backend", "needy", "--port", "0", env=env)
    assert result.returncode != 0 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no_such_module_for_fishpredict" in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_third_party_name_clash_is_one_line(tmp_path: Path, clean_env: dict[str, str]) -> None:
    fake_distribution(
        tmp_path, "fishpredict-clash", "clash_plugin", "clash", PLUGIN_SOURCE.format(name="socket")
    )
    env = {**clean_env, "PYTHONPATH": str(tmp_path)}
    result = run("backends", env=env)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "'socket'" in lines[0], result.stderr
    assert "'clash'" in lines[0] and "'socket'" in lines[0].split("both", 1)[1]


def test_broken_plugin_does_not_take_the_others_down(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    """A plugin whose import fails: the others still load, and asking for it
    answers one line that names it and why."""
    fake_distribution(
        tmp_path, "fishpredict-broken", "broken_plugin", "broken", "import no_such_dependency\n"
    )
    env = {**clean_env, "PYTHONPATH": str(tmp_path)}
    assert {b["name"] for b in backends_json(env)} >= BUILTIN
    result = run("serve", "--backend", "broken", "--port", "0", env=env)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "broken (ModuleNotFoundError" in lines[0] and "no_such_dependency" in lines[0]


# ---- the docs of the hooks ---------------------------------------------------------------


def hooks() -> list[types.FunctionType]:
    return [
        fn
        for fn in vars(hookspecs).values()
        if inspect.isfunction(fn) and hasattr(fn, f"{hookspecs.PROJECT_NAME}_spec")
    ]


def signature_line(fn: types.FunctionType) -> str:
    """``def name(args) -> ret:`` as written in the source, on one line."""
    source = inspect.getsource(fn)
    head = source[source.index("def ") : source.index(":\n", source.index(")")) + 1]
    return re.sub(r"\s+", " ", head).replace("( ", "(").replace(", )", ")")


def test_there_are_hooks() -> None:
    assert [fn.__name__ for fn in hooks()] == ["register_backends", "register_commands"]


@pytest.mark.parametrize("hook", hooks(), ids=lambda fn: fn.__name__)
def test_every_hook_is_documented_with_its_signature(hook: types.FunctionType) -> None:
    docs = DOCS.read_text("utf-8")
    assert signature_line(hook) in docs, f"docs/plugins.md lacks `{signature_line(hook)}`"
    first = (hook.__doc__ or "").strip().splitlines()[0]
    assert first in docs, f"docs/plugins.md does not quote the docstring of {hook.__name__}"


@pytest.mark.parametrize("hook", hooks(), ids=lambda fn: fn.__name__)
def test_every_hook_has_a_test(hook: types.FunctionType) -> None:
    source = Path(__file__).read_text("utf-8")
    assert f"def test_hook_{hook.__name__}(" in source


@pytest.mark.parametrize("attribute", ["name", "summary", "requires"])
def test_backend_attributes_are_documented(attribute: str) -> None:
    assert attribute in Backend.__annotations__
    assert re.search(rf"\b{attribute}: ClassVar\[", DOCS.read_text("utf-8")), attribute


@pytest.mark.parametrize("method", ["missing", "available", "serve"])
def test_backend_methods_are_documented_with_their_signature(method: str) -> None:
    line = signature_line(getattr(Backend, method))
    assert line in DOCS.read_text("utf-8"), f"docs/plugins.md lacks `{line}`"


def test_hooks_are_called_through_pluggy_so_wrappers_see_them() -> None:
    """A wrapper implementation wraps the one call of each hook: the registry calls
    ``pm.hook.register_backends(...)``, not each implementation's function."""
    seen: list[str] = []
    wrapper = types.ModuleType("tracing_plugin")

    @hookimpl(wrapper=True)
    def register_backends(register: object) -> object:
        seen.append("before")
        result = yield
        seen.append("after")
        return result

    wrapper.register_backends = register_backends  # type: ignore[attr-defined]
    registry = Registry()
    registry.register_plugin(plugin_module("first_plugin", Dummy()), name="first")
    registry.register_plugin(wrapper, name="tracing")
    assert "dummy" in [b.name for b in registry.backends()]
    assert seen == ["before", "after"]


def test_a_plugin_that_raises_while_registering_is_set_aside() -> None:
    broken = types.ModuleType("broken_plugin")

    @hookimpl
    def register_backends(register: object) -> None:
        raise RuntimeError("cannot register today")

    broken.register_backends = register_backends  # type: ignore[attr-defined]
    registry = Registry()
    registry.register_plugin(plugin_module("first_plugin", Dummy()), name="first")
    registry.register_plugin(broken, name="broken")
    assert ("dummy", "first") in [(b.name, b.plugin) for b in registry.backends()]
    assert registry.broken["broken"] == "RuntimeError: cannot register today"
