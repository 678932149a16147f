"""The starlette backend over real sockets, in real ``fishpredict serve`` processes.

Only what is specific to an adapter (see :class:`fishpredict.testing.adapter.AdapterSuite`);
the HTTP contract itself is the shared contract suite's job (tests/backends/test_contract.py).
"""

from __future__ import annotations

import pytest

from fishpredict.testing.adapter import AdapterSuite

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")


class TestStarletteAdapter(AdapterSuite):
    backend = "starlette"
    plugin_module = "fishpredict_backends.starlette_backend"
    server_modules = ('starlette', 'uvicorn')
