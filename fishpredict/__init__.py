"""fishpredict: serve a scikit-learn model over HTTP through swappable backends,
and measure how fast it serves.

>>> from fishpredict import Predictor
>>> Predictor().predict(30.0, 600.0, k=5)
'bream'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fishpredict.errors import (
    BackendUnavailableError,
    ClusterError,
    ConfigError,
    DataError,
    FishpredictError,
    IntegrityError,
    InvalidInputError,
    ModelLoadError,
    UnknownBackendError,
    UnknownModelError,
)
from fishpredict.hookspecs import hookimpl
from fishpredict.version import __version__

if TYPE_CHECKING:
    from fishpredict.models.loaded import ModelInfo
    from fishpredict.predictor import Predictor



def __getattr__(name: str) -> Any:
    """``Predictor`` and ``ModelInfo`` import scikit-learn: load them on first use, so
    that ``import fishpredict`` (and ``fishpredict --help``) stays light."""
    if name == "Predictor":
        from fishpredict.predictor import Predictor

        return Predictor
    if name == "ModelInfo":
        from fishpredict.models.loaded import ModelInfo

        return ModelInfo
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "BackendUnavailableError",
    "ClusterError",
    "ConfigError",
    "DataError",
    "FishpredictError",
    "IntegrityError",
    "InvalidInputError",
    "ModelInfo",
    "ModelLoadError",
    "Predictor",
    "UnknownBackendError",
    "UnknownModelError",
    "__version__",
    "hookimpl",
]
