"""What an estimator returns, checked before any row of it is answered, and whose fault
an exception is.

Every call of an estimator's ``predict`` or ``predict_proba`` goes through
:func:`checked`: the output must have one entry per row given (a model whose custom
step drops or adds rows would otherwise hand one client another's prediction), the
shape its method promises (``predict``: ``(n,)`` or ``(n, k)``; ``predict_proba``:
``(n, classes)``), and a kind JSON can carry (numbers, text, booleans; probabilities
as numbers). An output that fails is the model's own failure:
:class:`~fishpredict.errors.ModelFailedError`, a 500 naming the model.

:func:`blame` sorts an exception the estimator raised: a ``ValueError`` is how
scikit-learn says the *input* is wrong (infinity, an unknown category, the wrong
number of features), so it is the client's (a 400); anything else (``ZeroDivisionError``,
``AttributeError``, ``KeyError``, a model that is not fitted ...) is the model's (a 500).
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import numpy.typing as npt

from fishpredict.errors import ModelFailedError

#: element types of an object array that JSON carries as they are
_PLAIN = (str, bool, numbers.Integral, numbers.Real, type(None))


def is_client_error(exc: BaseException) -> bool:
    """True when ``exc``, raised by an estimator, says the input is wrong."""
    if not isinstance(exc, ValueError):
        return False
    try:
        from sklearn.exceptions import NotFittedError
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        return True
    return not isinstance(exc, NotFittedError)


def failure(model: str, method: str, exc: BaseException) -> ModelFailedError:
    """The 500 of an estimator that raised something other than a refusal of its input."""
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    err = ModelFailedError(
        f"model {model!r} failed in {method}: {type(exc).__name__}"
        + (f": {text}" if text else "")
    )
    err.__cause__ = exc
    return err


def _bad(model: str, method: str, what: str) -> ModelFailedError:
    return ModelFailedError(f"model {model!r} returned a wrong output from {method}: {what}")


def _plain_objects(out: npt.NDArray[Any]) -> bool:
    return all(isinstance(v, _PLAIN) for v in out.ravel().tolist())


def checked(model: str, method: str, out: Any, n: int, n_classes: int | None = None
            ) -> npt.NDArray[Any]:
    """``out`` as an array, if it is a well-formed answer of ``method`` for ``n`` rows."""
    try:
        arr = np.asarray(out)
    except Exception as exc:
        raise _bad(model, method, f"cannot be read as an array ({type(exc).__name__})") from None
    if arr.ndim == 0 or arr.shape[0] != n:
        got = "a scalar" if arr.ndim == 0 else f"{arr.shape[0]} rows"
        raise _bad(model, method, f"{got} for {n} rows given")
    if method == "predict_proba":
        want = (n, n_classes) if n_classes is not None else None
        if arr.ndim != 2 or (want is not None and arr.shape != want):
            raise _bad(model, method, f"shape {arr.shape}, expected {want or '(n, classes)'}")
        if arr.dtype.kind not in "biuf":
            raise _bad(model, method, f"probabilities of dtype {arr.dtype}")
        return arr
    if arr.ndim > 2:
        raise _bad(model, method, f"shape {arr.shape}, expected ({n},) or ({n}, k)")
    if arr.dtype.kind in "biufUS":
        return arr
    if arr.dtype.kind == "O" and _plain_objects(arr):
        return arr
    raise _bad(model, method, f"values of dtype {arr.dtype} that JSON cannot carry")
