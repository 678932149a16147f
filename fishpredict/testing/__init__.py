"""Testing helpers for fishpredict backends, importable by plugin authors.

:class:`ContractSuite` is the HTTP contract suite as a pytest class (and
:class:`ModelSuite` the any-model suite, a zoo of scikit-learn models)::

    from fishpredict.testing import ContractSuite

    class TestMyBackend(ContractSuite):
        backend = "mine"

:func:`run_contract` runs the same checks without pytest's runner;
:func:`start_server` starts a real ``fishpredict serve`` process on a free
loopback port, and :class:`Client` talks to it over a real socket.
The suites need pytest (``pip install 'fishpredict[test]'``); importing this
package does not: each name is imported on first use, and pytest only by the
suites. The ``pytest11`` plugin :mod:`fishpredict.testing.plugin` has pytest
rewrite the checks' asserts, so that a failure shows the values compared.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fishpredict.server.client import Client, ClientReply
    from fishpredict.server.process import ServerProcess, start_server
    from fishpredict.testing.contract import (
        CheckResult,
        Contract,
        ContractSuite,
        check_names,
        run_contract,
    )
    from fishpredict.testing.models_suite import ModelSuite

#: public name -> the module that defines it
_HOMES = {
    "Client": "fishpredict.server.client",
    "ClientReply": "fishpredict.server.client",
    "ServerProcess": "fishpredict.server.process",
    "start_server": "fishpredict.server.process",
    "CheckResult": "fishpredict.testing.contract",
    "Contract": "fishpredict.testing.contract",
    "ContractSuite": "fishpredict.testing.contract",
    "check_names": "fishpredict.testing.contract",
    "run_contract": "fishpredict.testing.contract",
    "ModelSuite": "fishpredict.testing.models_suite",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)


__all__ = [
    "CheckResult",
    "Client",
    "ClientReply",
    "Contract",
    "ContractSuite",
    "ModelSuite",
    "ServerProcess",
    "check_names",
    "run_contract",
    "start_server",
]
