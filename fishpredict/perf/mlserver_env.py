"""MLServer's own virtual environment, for ``fishpredict perf peers``.

MLServer is a reference to measure against, not a dependency of fishpredict:
it lives in a virtual environment of its own, created on first use under
``~/.cache/fishpredict/mlserver-venv`` (``$XDG_CACHE_HOME`` is honoured) with
``mlserver`` and ``mlserver-sklearn`` from the package index, and the
scikit-learn, joblib and numpy releases this process runs, so that both
servers unpickle the very same model files into the very same estimators.
A marker file written last says the environment is whole; one without it (an
interrupted install) is made again. :func:`mlserver_executable` also takes a
path the user gives: a virtual environment or an ``mlserver`` executable.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Final

from fishpredict.errors import ConfigError
from fishpredict.ops.venvs import locked

#: the MLServer releases the peer benchmark was written against; the uvloop of their
#: day (MLServer 1.7.1's inference workers call ``asyncio.get_event_loop()`` before any
#: loop runs, which uvloop 0.22 and later refuse: the worker dies at start)
MLSERVER_PACKAGES: Final = ("mlserver==1.7.1", "mlserver-sklearn==1.7.1", "uvloop==0.21.0")
#: taken at this process's release: what a joblib file needs to unpickle the same, and
#: httptools, which MLServer does not require but with which uvicorn parses HTTP in C
#: instead of with h11: MLServer gets its fastest HTTP path, as fishpredict has it
SAME_AS_HERE: Final = ("scikit-learn", "joblib", "numpy", "httptools")
MARKER: Final = ".fishpredict-ready"
#: longest a pip install may take (seconds)
INSTALL_TIMEOUT_S: Final = 1800.0


def default_venv() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "fishpredict" / "mlserver-venv"


def pinned_packages() -> tuple[str, ...]:
    """What goes into the environment: MLServer, and :data:`SAME_AS_HERE` at the
    releases this process runs."""
    from importlib.metadata import version

    return MLSERVER_PACKAGES + tuple(f"{name}=={version(name)}" for name in SAME_AS_HERE)


def _bin(venv: Path, name: str) -> Path:
    return venv / "bin" / name


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def mlserver_executable(given: str | None = None, say: Callable[[str], None] = print) -> Path:
    """The ``mlserver`` executable to run: from ``given`` (a virtual environment or the
    executable itself), else from the default environment, made first when missing."""
    if given is not None:
        path = Path(given).expanduser()
        if path.is_dir():
            exe = _bin(path, "mlserver")
            if not _is_executable(exe):
                raise ConfigError(f"{path} is not a virtual environment with mlserver "
                                  f"installed (no {exe})")
            return exe
        if _is_executable(path):
            return path
        raise ConfigError(f"--mlserver {given}: neither a virtual environment nor an "
                          "executable mlserver")
    return _bin(ensure_venv(default_venv(), say=say), "mlserver")


def is_ready(venv: Path, packages: tuple[str, ...]) -> bool:
    """Whether ``venv`` was made whole, with these packages."""
    marker = venv / MARKER
    try:
        made = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return bool(made.get("packages") == list(packages)
                and _is_executable(_bin(venv, "mlserver")))


def ensure_venv(venv: Path, say: Callable[[str], None] = print,
                packages: tuple[str, ...] | None = None) -> Path:
    """Make ``venv`` with ``packages`` (default: :func:`pinned_packages`) unless it is
    already there; return it. A failed install raises :class:`ConfigError` with pip's
    last lines."""
    packages = packages if packages is not None else pinned_packages()
    with locked(venv):
        if is_ready(venv, packages):
            return venv
        if venv.exists():
            shutil.rmtree(venv)
        say(f"... creating MLServer's virtual environment in {venv} (first use; "
            f"{', '.join(packages)})")
        _run([sys.executable, "-m", "venv", str(venv)], "python -m venv")
        _run([str(_bin(venv, "python")), "-m", "pip", "install", "--quiet", *packages],
             "pip install")
        (venv / MARKER).write_text(json.dumps({"packages": list(packages)}) + "\n")
    return venv


def _run(argv: list[str], what: str) -> None:
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=INSTALL_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise ConfigError(f"{what} took longer than {INSTALL_TIMEOUT_S:g} s") from None
    if done.returncode != 0:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise ConfigError(f"{what} failed (exit {done.returncode}): {tail}")
