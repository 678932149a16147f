"""What a model does, asked of the model itself when it loads.

scikit-learn's tags say whether an estimator accepts missing values, but a
``Pipeline`` that starts with a ``SimpleImputer``, a custom step, or an ONNX graph
may accept them whatever its tags say. :func:`accepts_missing` asks: it calls
``predict`` on a row of missing values (``NaN``, or ``None`` in a text column), and,
if that is refused, on rows with one missing value each among the first
:data:`PROBE_COLUMNS` features. A model that answers any of them (one well-formed answer) takes JSON
``null``; a row it still refuses gets the estimator's own 400. A manifest's
``"allows_nan"`` overrides the probe either way.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import Any, Final

from fishpredict.models import outputs
from fishpredict.models import rows as rowslib
from fishpredict.models.signature import Feature, Signature

#: features probed one at a time when a row of nothing but missing values is refused
PROBE_COLUMNS: Final = 16


def _neutral(f: Feature) -> Any:
    """A value the column takes: a known category, or 0 within the bounds."""
    if f.kind == "string":
        return f.categories[0] if f.categories else ""
    if f.minimum is not None and f.minimum > 0:
        return f.minimum
    if f.maximum is not None and f.maximum < 0:
        return f.maximum
    return 0.0


def _answers(estimator: Any, sig: Signature, row: list[Any]) -> bool:
    try:
        rows = rowslib.from_json_rows(sig, [row])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            outputs.checked("probe", "predict", estimator.predict(rows.data), 1)
    except Exception:
        return False
    return True


def accepts_missing(estimator: Any, sig: Signature) -> bool:
    """True if ``estimator.predict`` answers a row holding missing values."""
    if not sig.features:
        return False
    open_sig = replace(sig, allows_nan=True)
    if _answers(estimator, open_sig, [None] * sig.n_features):
        return True
    base = [_neutral(f) for f in sig.features]
    for j in range(min(sig.n_features, PROBE_COLUMNS)):
        row = list(base)
        row[j] = None
        if _answers(estimator, open_sig, row):
            return True
    return False
