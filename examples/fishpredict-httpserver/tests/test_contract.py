"""The whole fishpredict HTTP contract, over a real socket, against this backend."""

from fishpredict.testing import ContractSuite


class TestHTTPServerBackend(ContractSuite):
    backend = "httpserver"
