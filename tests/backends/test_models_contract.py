"""The any-model suite over every available backend: a zoo of scikit-learn models
(every fast-path family and others) served and checked against scikit-learn."""

from __future__ import annotations

import pytest

from fishpredict.plugins import list_backends
from fishpredict.testing import ModelSuite

pytest.importorskip("pandas")
pytest.importorskip("skops")

_AVAILABLE = sorted(info.name for info in list_backends() if info.available)

for _name in ("aiohttp", "httpserver", "socket", "starlette"):
    _cls = type(f"TestModels_{_name}", (ModelSuite,), {"backend": _name})
    if _name not in _AVAILABLE:
        _cls = pytest.mark.skip(reason=f"backend {_name!r} is not installed")(_cls)
    globals()[_cls.__name__] = _cls
del _cls
