"""The HTTP contract suite: every point of the contract, over a real socket.

A plugin author checks a backend with three lines::

    from fishpredict.testing import ContractSuite

    class TestMyBackend(ContractSuite):
        backend = "mine"

The suite starts ``python -m fishpredict serve --backend mine --port 0`` once
per class (plus, lazily, a second server with ``--labels ko`` and an admin
token), checks every route, status and body against an in-process
:class:`fishpredict.Predictor` and :class:`fishpredict.app.service.Service`, and
at teardown sends SIGTERM and asserts the server exited 0.
:func:`run_contract` runs the same checks without pytest.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from fishpredict.app.config import ServeConfig
from fishpredict.app.service import Service
from fishpredict.fish.dataset import Language
from fishpredict.predictor import Predictor
from fishpredict.server.client import Client
from fishpredict.server.process import ServerProcess, start_server
from fishpredict.testing.checks.errors import ErrorChecks
from fishpredict.testing.checks.predict import FishChecks, PredictChecks
from fishpredict.testing.checks.service import ServiceChecks

#: the limits the suite starts servers with (small, so 413 is cheap to reach)
MAX_BODY_BYTES = 65536
MAX_BATCH_ROWS = 1000
#: the environment variable that carries the admin token to the second server
ADMIN_TOKEN_ENV = "FISHPREDICT_CONTRACT_ADMIN_TOKEN"
#: a fixed token: the servers listen on loopback only, for the length of a test class
ADMIN_TOKEN = "contract-suite-admin-token-0123456789"


class Contract:
    """The servers under test and the in-process references they must agree with.

    ``main``: ``--labels en``, the suite's limits, no admin token.
    ``ko`` (started on first use): ``--labels ko`` and an admin token.
    """

    def __init__(
        self,
        backend: str,
        *,
        server_args: Sequence[str] = (),
        models: str | None = None,
    ) -> None:
        self.backend = backend
        self.server_args = tuple(server_args)
        self.models = models
        self.max_body_bytes = MAX_BODY_BYTES
        self.max_batch_rows = MAX_BATCH_ROWS
        self.admin_token = ADMIN_TOKEN
        self.reference = Predictor(models, labels="en")
        self.reference_ko = Predictor(models, labels="ko")
        self._services: dict[str, Service] = {}
        self._ko: ServerProcess | None = None
        self.main = start_server(backend, *self._args("en"))

    def _args(self, labels: Language) -> list[str]:
        args = [
            "--labels",
            labels,
            "--max-body-bytes",
            str(self.max_body_bytes),
            "--max-batch-rows",
            str(self.max_batch_rows),
        ]
        if self.models is not None:
            args += ["--models", self.models]
        return args + list(self.server_args)

    @property
    def ko(self) -> ServerProcess:
        """The second server (Korean labels, admin token), started on first use."""
        if self._ko is None:
            env = dict(os.environ)
            env[ADMIN_TOKEN_ENV] = self.admin_token
            self._ko = start_server(
                self.backend, *self._args("ko"), "--admin-token-env", ADMIN_TOKEN_ENV, env=env
            )
        return self._ko

    def client(self, server: ServerProcess | None = None) -> Client:
        """A new keep-alive client to ``server`` (default: the main one)."""
        return (server or self.main).client()

    def service(self, labels: Language = "en") -> Service:
        """An in-process Service configured like the server with these labels:
        what the wire must answer, byte for byte."""
        if labels not in self._services:
            config = ServeConfig(
                labels=labels,
                max_body_bytes=self.max_body_bytes,
                max_batch_rows=self.max_batch_rows,
                admin_token=self.admin_token if labels == "ko" else None,
            )
            predictor = self.reference if labels == "en" else self.reference_ko
            self._services[labels] = Service(predictor, config)
        return self._services[labels]

    def assert_alive(self, server: ServerProcess | None = None) -> None:
        """The server still runs and answers ``/healthz`` with 200."""
        srv = server or self.main
        assert srv.proc.poll() is None, f"the server died:\n{srv.stderr_text()[-3000:]}"
        with srv.client() as c:
            reply = c.get("/healthz")
        assert reply.status == 200, f"/healthz answered {reply!r} after the previous requests"

    def stop(self) -> dict[str, int]:
        """SIGTERM every server started; their exit codes by role."""
        codes: dict[str, int] = {}
        for role, server in (("main", self.main), ("ko", self._ko)):
            if server is not None:
                codes[role] = server.stop()
                server.close()
        return codes

    def stderr(self) -> str:
        parts = [f"--- main server stderr ---\n{self.main.stderr_text()}"]
        if self._ko is not None:
            parts.append(f"--- ko server stderr ---\n{self._ko.stderr_text()}")
        return "\n".join(parts)


class ContractSuite(FishChecks, PredictChecks, ServiceChecks, ErrorChecks):
    """Subclass in a test module and set ``backend`` to check a backend.

    Class attributes:

    ``backend``
        the name ``fishpredict serve --backend`` takes (required).
    ``server_args``
        extra ``fishpredict serve`` arguments (e.g. ``("--workers", "1")``);
        they must not change what the contract answers.
    ``models``
        a model directory to serve (default: the embedded models).
    """

    backend: ClassVar[str] = ""
    server_args: ClassVar[tuple[str, ...]] = ()
    models: ClassVar[str | None] = None

    @pytest.fixture(scope="class")
    @classmethod
    def contract(cls) -> Iterator[Contract]:
        if not cls.backend:
            pytest.fail(f"{cls.__name__} must set `backend = <name>`")
        contract = Contract(cls.backend, server_args=cls.server_args, models=cls.models)
        try:
            yield contract
        finally:
            codes = contract.stop()
        bad = {role: code for role, code in codes.items() if code != 0}
        assert not bad, (
            f"the {cls.backend!r} server did not exit 0 after SIGTERM: {bad}\n{contract.stderr()}"
        )


def check_names() -> list[str]:
    """Every check of the suite, in definition order."""
    names: list[str] = []
    for cls in reversed(ContractSuite.__mro__):
        for name in vars(cls):
            if name.startswith("test_") and name not in names:
                names.append(name)
    return names


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check run by :func:`run_contract`."""

    name: str
    outcome: str  # "passed" | "failed" | "skipped"
    detail: str = ""


def run_contract(
    backend: str,
    *,
    server_args: Sequence[str] = (),
    models: str | None = None,
    select: Callable[[str], bool] | None = None,
) -> list[CheckResult]:
    """Run the contract suite against ``backend`` without pytest's runner.

    Returns one :class:`CheckResult` per check; the servers are stopped and
    their clean exit recorded as the last result (``"clean_exit"``).
    """
    suite = ContractSuite()
    contract = Contract(backend, server_args=server_args, models=models)
    results: list[CheckResult] = []
    try:
        for name in check_names():
            if select is not None and not select(name):
                continue
            method: Callable[[Contract], Any] = getattr(suite, name)
            try:
                method(contract)
            except pytest.skip.Exception as exc:
                results.append(CheckResult(name, "skipped", str(exc)))
            except AssertionError as exc:
                results.append(CheckResult(name, "failed", str(exc) or traceback.format_exc()))
            except Exception:
                results.append(CheckResult(name, "failed", traceback.format_exc()))
            else:
                results.append(CheckResult(name, "passed"))
    finally:
        codes = contract.stop()
    bad = {role: code for role, code in codes.items() if code != 0}
    results.append(CheckResult("clean_exit", "failed" if bad else "passed", f"exit codes {codes}"))
    return results
