"""fishpredict: serve a scikit-learn model over HTTP through swappable backends,
and measure how fast it serves.

>>> from fishpredict import Predictor
>>> Predictor().predict(30.0, 600.0, k=5)
'bream'
"""

from __future__ import annotations

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
from .predictor import ModelInfo, Predictor

__version__ = "0.1.0"

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
