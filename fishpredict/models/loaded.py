"""One model ready to answer: the estimator, its signature, its fast path.

:class:`LoadedModel` is what the predictor keeps per name and what the
contract, the micro-batcher and the bulk scorer call. Classifiers answer in
*codes* (indices into the signature's ``classes``), so an answer becomes
labels, display names or probabilities' column order without searching;
other models answer in values. A fast path, when one compiled and passed its
load-time check, answers every finite row; rows with a missing value, and
every row of a model without a fast path, go to the estimator itself.

Every estimator call's output is checked (:mod:`fishpredict.models.outputs`) before
any row of it is answered. An estimator that raises a ``ValueError`` refuses the
client's input (:class:`ModelRefusedError`, a 400 naming the first row it refuses);
any other exception, or an output that is wrong, is the model's own failure
(:class:`ModelFailedError`, a 500 naming the model).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Final, Protocol, cast

import numpy as np
import numpy.typing as npt

from fishpredict.errors import (
    InvalidInputError,
    ModelFailedError,
    ModelRefusedError,
)
from fishpredict.models import outputs
from fishpredict.models.rows import RowCheck, Rows, row_checker
from fishpredict.models.signature import Signature

IntArray = npt.NDArray[np.intp]
FloatArray = npt.NDArray[np.float64]

#: the longest cleaned estimator message passed on to a client
MESSAGE_CHARS: Final = 300
#: the memo key of a model's classes as an array, whether sorted, and code by label
_CLASSES: Final = ("codes_of", "classes")


class FastPath(Protocol):
    """What :mod:`fishpredict.models.fastpaths` compiles an estimator into."""

    family: str
    task: str
    n_features: int
    has_proba: bool
    #: its one-row path costs more than a share of a batch: the server micro-batches
    #: concurrent one-row requests for it as for a model without a fast path
    prefers_batches: bool

    def predict(self, X: FloatArray) -> npt.NDArray[Any]: ...
    def predict_one(self, x: FloatArray) -> int | float: ...
    #: one finite, checked row as Python floats (the hot path: no numpy where it can)
    def predict_row(self, row: list[float]) -> int | float: ...
    def predict_proba(self, X: FloatArray) -> FloatArray: ...


@dataclass(frozen=True)
class ModelInfo:
    """What a loaded model is and where it came from (one entry of ``GET /models``)."""

    name: str
    estimator: str
    sha256: str
    source: str
    signature: Signature
    format: str = "joblib"
    fast_path: str | None = None  # the family, when a fast path answers
    k: int | None = None
    sklearn_version: str = ""

    @property
    def classes(self) -> tuple[Any, ...]:
        return self.signature.classes or ()

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.signature.names

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "k": self.k,
            "classes": list(self.classes),
            "estimator": self.estimator,
            "format": self.format,
            "sha256": self.sha256,
            "source": self.source,
            "fast_path": self.fast_path is not None,
            "fast_path_family": self.fast_path,
            "feature_names": list(self.feature_names),
            "signature": self.signature.as_dict(),
        }


_ADDRESS = re.compile(r" at 0x[0-9a-f]+")


def clean_message(exc: BaseException) -> str:
    """An estimator's error as one short line a client may read (no addresses, no paths)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = _ADDRESS.sub("", text)
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "…"


def _subset(rows: Rows, lo: int, hi: int) -> Any:
    if rows.frame is not None:
        return rows.frame.iloc[lo:hi]
    assert rows.array is not None
    return rows.array[lo:hi]


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to predict (immutable; a reload builds a new one)."""

    info: ModelInfo
    estimator: Any
    fast: FastPath | None = None
    blob: bytes = field(repr=False, default=b"")  # joblib bytes of embedded models
    path: str | None = None
    #: encodings of this model's answers, kept by the protocols (labels as JSON ...)
    memo: dict[object, object] = field(default_factory=dict, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def signature(self) -> Signature:
        return self.info.signature

    @property
    def is_classifier(self) -> bool:
        return self.info.signature.task == "classifier" and self.info.signature.classes is not None

    @property
    def has_proba(self) -> bool:
        return "predict_proba" in self.info.signature.outputs

    @cached_property
    def row_check(self) -> RowCheck | None:
        """The check of one row of this model, specialised from its signature
        (:func:`fishpredict.models.rows.row_checker`); None for a DataFrame model."""
        return row_checker(self.info.signature)

    @property
    def names(self) -> Mapping[str, tuple[str, ...]]:
        """Per language, the display name of each class (empty if the model has none)."""
        return self.info.signature.display

    def labels_for(self, language: str | None) -> tuple[Any, ...]:
        """What each class code is shown as: display names in ``language`` if the model
        has them, else the classes as the estimator returns them."""
        if language is not None and language in self.info.signature.display:
            return self.info.signature.display[language]
        return self.info.classes

    # -- calling the estimator --

    def _call(self, method: str, rows: Rows) -> npt.NDArray[Any]:
        fn = getattr(self.estimator, method)
        data = rows.data
        if rows.frame is None and getattr(self.estimator, "feature_names_in_", None) is None:
            try:  # no feature names to warn about: spare the warnings machinery (~25 us)
                out = fn(data)
            except Exception as exc:
                raise self._refusal(method, rows, exc) from None
        else:
            try:
                with warnings.catch_warnings():
                    # a model fitted on a DataFrame of numbers is given a float array
                    warnings.filterwarnings("ignore",
                                            message="X does not have valid feature names")
                    out = fn(data)
            except Exception as exc:
                raise self._refusal(method, rows, exc) from None
        n_classes = len(self.info.classes) if method == "predict_proba" and \
            self.info.signature.classes is not None else None
        return outputs.checked(self.name, method, out, rows.n, n_classes)

    def _refusal(self, method: str, rows: Rows, exc: Exception
                 ) -> ModelRefusedError | ModelFailedError:
        """Name the first row the estimator refuses (by bisection: a few calls); an
        exception that is no refusal of the input is the model's failure."""
        if not outputs.is_client_error(exc):
            return outputs.failure(self.name, method, exc)
        fn = getattr(self.estimator, method)
        lo, hi = 0, rows.n
        first_exc: Exception = exc
        while hi - lo > 1:
            mid = (lo + hi) // 2
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    fn(_subset(rows, lo, mid))
            except Exception as e:
                hi, first_exc = mid, e
            else:
                lo = mid
        where = f"row {lo}: " if rows.n > 1 else ("row 0: " if rows.n == 1 else "")
        return ModelRefusedError(
            f"{where}model {self.name!r} refused the input: {clean_message(first_exc)}"
        )

    def codes_of(self, labels: npt.NDArray[Any]) -> IntArray:
        """Class codes of labels the estimator returned."""
        known = self.memo.get(_CLASSES)
        if known is None:  # once per model: the classes as an array, sorted?, by label
            array = np.asarray(self.info.classes)
            table = {c: i for i, c in enumerate(self.info.classes)}
            known = self.memo[_CLASSES] = (array, _sorted(array), table)
        classes, ordered, table = cast("tuple[npt.NDArray[Any], bool, dict[Any, int]]", known)
        if labels.ndim != 1:
            raise ModelFailedError(f"model {self.name!r} returned labels of shape "
                                   f"{labels.shape}, expected ({len(labels)},)")
        if len(labels) == 1:  # one row (the hot path): one dict look-up
            code = table.get(labels[0].item() if hasattr(labels[0], "item") else labels[0])
            if code is not None:
                return np.array([code], dtype=np.intp)
        try:
            codes = classes.searchsorted(labels) if ordered else None
        except TypeError:  # labels of another type than the classes
            codes = None
        # a label past the last class clips to it, and then differs: one comparison
        if codes is None or not (classes.take(codes, mode="clip") == labels).all():
            try:
                return np.array([table[v.item() if hasattr(v, "item") else v] for v in labels],
                                dtype=np.intp)
            except (KeyError, TypeError) as exc:  # TypeError: an unhashable label
                raise ModelFailedError(
                    f"model {self.name!r} returned a label {exc} that is not one of its classes"
                ) from None
        return codes.astype(np.intp, copy=False)

    # -- predicting --

    def predict_codes(self, rows: Rows) -> IntArray:
        """Class codes for every row (classifiers)."""
        if rows.n == 0:
            return np.empty(0, dtype=np.intp)
        fast = self.fast
        if fast is not None and rows.array is not None:
            if not rows.has_nan:
                return np.asarray(fast.predict(rows.array), dtype=np.intp)
            return self._mixed(
                rows, fast.predict, lambda r: self.codes_of(self._call("predict", r))
            )
        return self.codes_of(self._call("predict", rows))

    def predict_values(self, rows: Rows) -> npt.NDArray[Any]:
        """What ``estimator.predict`` returns, for any model."""
        if self.is_classifier:
            return np.asarray(self.info.classes, dtype=object)[self.predict_codes(rows)]
        if rows.n == 0:
            return np.empty(0, dtype=np.float64)
        fast = self.fast
        if fast is not None and rows.array is not None:
            if not rows.has_nan:
                return np.asarray(fast.predict(rows.array))
            return self._mixed(rows, fast.predict, lambda r: self._call("predict", r))
        return self._call("predict", rows)

    def predict_proba(self, rows: Rows) -> FloatArray:
        """Class probabilities, one row per instance, columns in ``classes`` order."""
        if not self.has_proba:
            raise InvalidInputError(
                f"model {self.name!r} gives no probabilities (it has no predict_proba)"
            )
        if rows.n == 0:
            return np.empty((0, len(self.info.classes)), dtype=np.float64)
        fast = self.fast
        if fast is not None and fast.has_proba and rows.array is not None:
            if not rows.has_nan:
                return fast.predict_proba(rows.array)
            return self._mixed(rows, fast.predict_proba, lambda r: self._call("predict_proba", r))
        return np.asarray(self._call("predict_proba", rows), dtype=np.float64)

    def _mixed(self, rows: Rows, fast_fn: Any, slow_fn: Any) -> npt.NDArray[Any]:
        """Finite rows through the fast path, rows with NaN through the estimator."""
        assert rows.array is not None
        nan = np.isnan(rows.array).any(axis=1)
        slow = slow_fn(Rows(int(nan.sum()), array=rows.array[nan], has_nan=True))
        if nan.all():
            return np.asarray(slow)
        quick = np.asarray(fast_fn(np.ascontiguousarray(rows.array[~nan])))
        out = np.empty((rows.n, *quick.shape[1:]), dtype=np.result_type(quick, slow))
        out[~nan] = quick
        out[nan] = slow
        return out

    def predict_row_code(self, x: FloatArray) -> int:
        """The class code of one finite, checked row of a numeric classifier (the hot path)."""
        fast = self.fast
        if fast is not None:
            return int(fast.predict_one(x))
        rows = Rows(1, array=x.reshape(1, -1))
        return int(self.codes_of(self._call("predict", rows))[0])

    def with_estimator(self, estimator: Any, fast: FastPath | None) -> LoadedModel:
        return replace(self, estimator=estimator, fast=fast, memo={})

    def renamed(self, name: str) -> LoadedModel:
        return replace(self, info=replace(self.info, name=name), memo={})


def _sorted(classes: npt.NDArray[Any]) -> bool:
    try:
        return bool(len(classes) < 2 or (classes[1:] > classes[:-1]).all())
    except TypeError:
        return False
