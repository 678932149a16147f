"""KServe's Python SDK in a virtual environment of its own, for the client tests.

``kserve`` pins older releases of libraries fishpredict uses (pandas 2 where
fishpredict's tests run pandas 3, psutil, urllib3 ...), so its
``InferenceRESTClient`` runs in ``~/.cache/fishpredict/kserve-venv``
(``$XDG_CACHE_HOME`` honoured), made once: by ``.ci/run``
(``python -m fishpredict.testing.kserve_env``) or by the first test that needs it.
A marker written last says the environment is whole; one without it is made again.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Final

from fishpredict.ops.venvs import locked

#: the SDK release the tests were written against
KSERVE_PACKAGES: Final = ("kserve==0.21.0",)
MARKER: Final = ".fishpredict-ready"
INSTALL_TIMEOUT_S: Final = 1200.0


def default_venv() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "fishpredict" / "kserve-venv"


def python_of(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure(venv: Path | None = None) -> Path:
    """The environment's python, the environment made first when it is missing or
    half-made (:class:`RuntimeError` with pip's last words if the install fails)."""
    venv = venv or default_venv()
    marker = venv / MARKER
    with locked(venv):
        if marker.is_file() and marker.read_text() == " ".join(KSERVE_PACKAGES):
            return python_of(venv)
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True,
                       timeout=INSTALL_TIMEOUT_S)
        done = subprocess.run(
            [str(python_of(venv)), "-m", "pip", "install", "-q", "--disable-pip-version-check",
             *KSERVE_PACKAGES], capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
        if done.returncode != 0:
            raise RuntimeError(f"pip install {' '.join(KSERVE_PACKAGES)} into {venv} failed:\n"
                               f"{done.stderr[-2000:]}")
        marker.write_text(" ".join(KSERVE_PACKAGES))
    return python_of(venv)


if __name__ == "__main__":
    print(f"kserve client environment: {ensure()}")
