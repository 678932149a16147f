"""Testing helpers for fishpredict backends, importable by plugin authors.

:class:`ContractSuite` is the HTTP contract suite as a pytest class (and
:class:`ModelSuite` the any-model suite, a zoo of scikit-learn models)::

    from fishpredict.testing import ContractSuite

    class TestMyBackend(ContractSuite):
        backend = "mine"

:func:`run_contract` runs the same checks without pytest's runner;
:func:`start_server` starts a real ``fishpredict serve`` process on a free
loopback port, and :class:`Client` talks to it over a real socket.
Needs pytest (``pip install 'fishpredict[test]'``).
"""

from __future__ import annotations

import pytest

# Rewrite the asserts of the checks so that a failure shows the values compared.
# Must run before the checks are imported.
pytest.register_assert_rewrite(
    "fishpredict.testing.checks",
    "fishpredict.testing.adapter",
    "fishpredict.testing.guards",
    "fishpredict.testing.models_suite",
)

from .client import Client, Reply  # noqa: E402
from .contract import CheckResult, Contract, ContractSuite, check_names, run_contract  # noqa: E402
from .models_suite import ModelSuite  # noqa: E402
from .server import ServerError, ServerProcess, start_server  # noqa: E402

__all__ = [
    "CheckResult",
    "Client",
    "Contract",
    "ContractSuite",
    "ModelSuite",
    "Reply",
    "ServerError",
    "ServerProcess",
    "check_names",
    "run_contract",
    "start_server",
]
