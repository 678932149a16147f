"""The limits every backend sets on heads and connections, against this backend."""

from fishpredict.testing.guards import GuardSuite


class TestHTTPServerGuards(GuardSuite):
    backend = "httpserver"
