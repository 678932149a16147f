"""fishpredict: serve a scikit-learn model over HTTP through swappable backends,
and measure how fast it serves.

>>> from fishpredict import Predictor
>>> Predictor().predict(30.0, 600.0, k=5)
'bream'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
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
from .hookspecs import hookimpl

if TYPE_CHECKING:
    from .predictor import ModelInfo, Predictor

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """``Predictor`` and ``ModelInfo`` import scikit-learn: load them on first use, so
    that ``import fishpredict`` (and ``fishpredict --help``) stays light."""
    if name in ("Predictor", "ModelInfo"):
        from . import predictor

        return getattr(predictor, name)
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
