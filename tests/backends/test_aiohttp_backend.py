"""The aiohttp backend over real sockets, in real ``fishpredict serve`` processes.

Only what is specific to an adapter (see :class:`fishpredict.testing.adapter.AdapterSuite`);
the HTTP contract itself is the shared contract suite's job (tests/backends/test_contract.py).
"""

from __future__ import annotations

import pytest

from fishpredict.testing.adapter import AdapterSuite

pytest.importorskip("aiohttp")


class TestAiohttpAdapter(AdapterSuite):
    backend = "aiohttp"
    plugin_module = "fishpredict_backends.aiohttp_backend"
    server_modules = ("aiohttp",)
