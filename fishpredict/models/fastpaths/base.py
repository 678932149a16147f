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
from operator import add, mul, sub, truediv
from typing import Any, Final

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


# ---- one row in plain floats ---------------------------------------------------------

RowTransform = Callable[[list[float]], list[float]]
#: one scaler's operations on one value, in order: ("sub"|"div"|"mul"|"add", constants
#: per feature) or ("clip", (lo, hi)); what its ``transform`` does to each element
RowStep = tuple[str, Any]


def _floats(values: Any) -> list[float]:
    return np.asarray(values, dtype=np.float64).tolist()  # type: ignore[no-any-return]


def row_steps(estimator: Any) -> list[list[RowStep]] | None:
    """The scalers of :func:`unwrap`, each as its elementwise float operations
    (``StandardScaler``: sub mean, div scale; ``MinMaxScaler``: mul scale, add min,
    clip; ``MaxAbsScaler``: div scale, clip), or None when :func:`unwrap` finds none of
    its cases or a scale is 0 (Python floats raise on a division by zero)."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler

    if type(estimator) is not Pipeline:
        return []
    steps = [s for _, s in estimator.steps if s is not None and not
             (isinstance(s, str) and s == "passthrough")]
    out: list[list[RowStep]] = []
    for step in steps[:-1]:
        kind = type(step)
        ops: list[RowStep] = []
        if kind is StandardScaler:
            if step.with_mean:
                ops.append(("sub", _floats(step.mean_)))
            if step.with_std:
                ops.append(("div", _floats(step.scale_)))
        elif kind is MinMaxScaler:
            ops += [("mul", _floats(step.scale_)), ("add", _floats(step.min_))]
            if step.clip:
                ops.append(("clip", tuple(float(v) for v in step.feature_range)))
        elif kind is MaxAbsScaler:
            ops.append(("div", _floats(step.scale_)))
            if getattr(step, "clip", False):
                ops.append(("clip", (-1.0, 1.0)))
        else:
            return None
        if any(op == "div" and 0.0 in values for op, values in ops):
            return None
        out.append(ops)
    return out


_BINARY: Final = {"sub": sub, "div": truediv, "mul": mul, "add": add}


def _row_op(op: str, values: Any) -> RowTransform:
    if op == "clip":
        lo, hi = values
        return lambda x: [min(max(v, lo), hi) for v in x]
    fn = _BINARY[op]
    return lambda x: list(map(fn, x, values))


def row_chain(estimator: Any) -> tuple[RowTransform | None] | None:
    """The scalers of :func:`unwrap` for one row of Python floats, with the same float
    operations (elementwise, so the same bits): ``(transform,)`` (None: no scalers), or
    None (see :func:`row_steps`)."""
    steps = row_steps(estimator)
    return None if steps is None else (row_chain_of(steps),)


def row_chain_of(steps: list[list[RowStep]]) -> RowTransform | None:
    """One function applying :func:`row_steps`' operations in order (None: none)."""
    fns = [_row_op(op, values) for ops in steps for op, values in ops]
    if not fns:
        return None
    if len(fns) == 1:
        return fns[0]

    def apply(x: list[float]) -> list[float]:
        for fn in fns:
            x = fn(x)
        return x

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
