"""The hostile-model suite over every available backend: models that drop rows, raise or
answer what JSON cannot carry, and real models at their edges (overflowing values,
missing values, category dtypes, ONNX), each answer checked against scikit-learn or
onnxruntime."""

from __future__ import annotations

import pytest

from fishpredict.plugins import list_backends
from fishpredict.testing.hostile_suite import HostileSuite

pytest.importorskip("pandas")
pytest.importorskip("skl2onnx")
pytest.importorskip("onnxruntime")

_AVAILABLE = sorted(info.name for info in list_backends() if info.available)

for _name in ("aiohttp", "httpserver", "socket", "starlette"):
    _cls = type(f"TestHostile_{_name}", (HostileSuite,), {"backend": _name})
    if _name not in _AVAILABLE:
        _cls = pytest.mark.skip(reason=f"backend {_name!r} is not installed")(_cls)
    globals()[_cls.__name__] = _cls
del _cls
