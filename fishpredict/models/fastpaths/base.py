"""What every fast-path family shares: unwrapping a ``Pipeline`` into scalers and a
final estimator, the scalers' exact arithmetic, and asking the estimator itself.

A scaler is replayed with the very float operations scikit-learn's ``transform``
performs (``StandardScaler``: ``X -= mean_``, ``X /= scale_``; ``MinMaxScaler``:
``X *= scale_``, ``X += min_``, optional clip; ``MaxAbsScaler``: ``X /= scale_``),
so the final step sees bit-identical input.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from fishpredict.errors import ModelRefusedError
from fishpredict.models import outputs
from fishpredict.models.loaded import clean_message

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
Transform = Callable[[FloatArray], FloatArray]


def _standard(scaler: Any) -> Transform | None:
    mean = scaler.mean_ if scaler.with_mean else None
    scale = scaler.scale_ if scaler.with_std else None
    if mean is not None:
        mean = np.asarray(mean).astype(np.float64, copy=False)
    if scale is not None:
        scale = np.asarray(scale).astype(np.float64, copy=False)

    def apply(X: FloatArray) -> FloatArray:
        if mean is not None:
            X = X - mean
            if scale is not None:
                X /= scale
        elif scale is not None:
            X = X / scale
        else:
            X = X.copy()
        return X

    return apply


def _minmax(scaler: Any) -> Transform | None:
    scale = np.asarray(scaler.scale_, dtype=np.float64)
    low = np.asarray(scaler.min_, dtype=np.float64)
    clip = bool(scaler.clip)
    lo, hi = (float(v) for v in scaler.feature_range)

    def apply(X: FloatArray) -> FloatArray:
        X = X * scale
        X += low
        if clip:
            np.clip(X, lo, hi, out=X)
        return X

    return apply


def _maxabs(scaler: Any) -> Transform | None:
    scale = np.asarray(scaler.scale_, dtype=np.float64)
    clip = bool(getattr(scaler, "clip", False))

    def apply(X: FloatArray) -> FloatArray:
        X = X / scale
        if clip:
            np.clip(X, -1.0, 1.0, out=X)
        return X

    return apply


def _scaler(step: Any) -> Transform | None:
    from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler

    kind = type(step)
    if getattr(step, "n_features_in_", None) is None:
        return None
    if kind is StandardScaler:
        return _standard(step)
    if kind is MinMaxScaler:
        return _minmax(step)
    if kind is MaxAbsScaler:
        return _maxabs(step)
    return None


def unwrap(estimator: Any) -> tuple[list[Transform], Any] | None:
    """``(scalers, final)`` for a bare estimator or a ``Pipeline`` of supported
    scalers ending in it; None when a step is something else."""
    from sklearn.pipeline import Pipeline

    if type(estimator) is not Pipeline:
        return [], estimator
    steps = [s for _, s in estimator.steps if s is not None and not
             (isinstance(s, str) and s == "passthrough")]
    if not steps:
        return None
    scalers: list[Transform] = []
    for step in steps[:-1]:
        if getattr(step, "_sklearn_output_config", {}).get("transform") not in (None, "default"):
            return None  # a scaler set to output DataFrames
        fn = _scaler(step)
        if fn is None:
            return None
        scalers.append(fn)
    return scalers, steps[-1]


class NotFinite(Exception):
    """A scaler's output holds a value that is not finite (a huge input overflowed).

    scikit-learn's next step validates its input and refuses infinity, so the fast path
    hands such rows to the estimator, whose verdict (a refusal) is the answer."""


def chain(scalers: list[Transform]) -> Transform | None:
    """One function applying ``scalers`` in order (None when there are none); it raises
    :class:`NotFinite` where a scaler's output is not finite, as the next step would."""
    if not scalers:
        return None
    isfinite, errstate = np.isfinite, np.errstate

    if len(scalers) == 1:
        only = scalers[0]

        def one(X: FloatArray) -> FloatArray:
            with errstate(over="ignore", invalid="ignore"):
                X = only(X)
            if not isfinite(X).all():
                raise NotFinite
            return X

        return one

    def apply(X: FloatArray) -> FloatArray:
        for fn in scalers:
            with errstate(over="ignore", invalid="ignore"):
                X = fn(X)
            if not isfinite(X).all():
                raise NotFinite
        return X

    return apply


def ask(estimator: Any, method: str, X: FloatArray, first_row: int = 0) -> npt.NDArray[Any]:
    """``estimator.method(X)``: an error it raises becomes the 400 the estimator's own
    path would give (a :class:`ModelRefusedError` naming the row)."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="X does not have valid feature names")
            warnings.filterwarnings("ignore", category=RuntimeWarning)  # its overflow casts
            return np.asarray(getattr(estimator, method)(X))
    except Exception as exc:
        if not outputs.is_client_error(exc):
            raise outputs.failure(type(estimator).__name__, method, exc) from None
        where = f"row {first_row}: " if len(X) == 1 else ""
        raise ModelRefusedError(
            f"{where}the model refused the input: {clean_message(exc)}"
        ) from None


def codes_of(classes: npt.NDArray[Any], labels: npt.NDArray[Any]) -> IntArray:
    """Indices into ``classes`` (sorted, as ``classes_`` always is) of ``labels``."""
    return np.searchsorted(classes, labels).astype(np.intp, copy=False)
