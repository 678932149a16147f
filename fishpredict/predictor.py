"""The Predictor: loads models once, keeps them by name, and answers predictions.

A Predictor holds any number of models, each with its signature (see
:mod:`fishpredict.models.signature`), and picks one per call by name (or, for
KNN models, by k). Models come from model files (joblib/pickle, skops, ONNX),
from directories with a ``manifest.json`` (see :mod:`fishpredict.models.manifest`) or
without one, or, with no source at all, from the *embedded default*: KNN fish
classifiers for k = 1, 5, 15, 25, 49 trained in memory on the 49 built-in fish.

Loaded models live in a process-wide cache keyed by file identity (path, size,
mtime, sha256), so a second Predictor over the same files loads nothing.
``reload()`` re-reads the sources and swaps the model table atomically.
``cache=False`` reproduces the naive design the seed measured: the model file
is unpickled on every call (scikit-learn answers). It exists for benchmarks.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from fishpredict.errors import InvalidInputError, ModelLoadError, UnknownModelError
from fishpredict.fish import training as artifacts
from fishpredict.fish.dataset import LANGUAGES, Language
from fishpredict.fish.training import EMBEDDED, embedded_models
from fishpredict.models import rows as rowslib
from fishpredict.models import store
from fishpredict.models.loaded import LoadedModel, ModelInfo
from fishpredict.models.signature import Signature
from fishpredict.models.store import Source, load_source, reread, sources_of

__all__ = ["Predictor", "check_value", "clear_cache", "models_version"]

_INF: Final = float("inf")


def check_value(name: str, value: Any) -> float:
    """``value`` as a finite float, else :class:`InvalidInputError`.

    Text must be an ASCII decimal (``float`` alone would also take ``1_000``
    and non-ASCII digits, which no client means as a number). Bounds are the
    model's business (its signature), not this function's.
    """
    if isinstance(value, bool):
        raise InvalidInputError(f"{name} must be a number, got a boolean")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be a number, got {str(value)[:40]!r}") from None
    if isinstance(value, str) and ("_" in value or not value.isascii()):
        raise InvalidInputError(f"{name} must be a number, got {value[:40]!r}")
    if -_INF < x < _INF:
        return x
    raise InvalidInputError(f"{name} must be finite, got {value!r}")


def models_version(models: Iterable[LoadedModel]) -> str:
    """A digest of the models' names and sha256s: equal versions serve the same models."""
    import hashlib

    text = "\n".join(sorted(f"{m.name}={m.info.sha256}" for m in models))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def clear_cache() -> None:
    """Forget every cached model file (the next load reads it again)."""
    store.clear_cache()


class Predictor:
    """Loads models once and predicts with them.

    Args:
        models: where the models come from: ``None`` for the embedded fish
            models; a model file or a directory (with a ``manifest.json``, or
            holding model files); a list of those; or a mapping of model name
            to file or directory (a directory must then hold one model).
        cache: keep models in memory (default). ``False`` unpickles the model
            on every call, as the seed's first server did; for benchmarks only.
        fast_path: answer through the exact numpy fast paths where they apply.
        labels: the language of display names for models that have them
            (``"en"``: bream/smelt, ``"ko"``: 도미/빙어 for the fish models).
        trust: allow loading pickles (and skops files with types skops does not
            trust) that no manifest vouches for.
        default: name or k of the model used when a call names none.
        ks, scale: which embedded models to train (only with ``models=None``).

    Thread-safe: the model table is swapped atomically by :meth:`reload`, and
    predictions read one consistent table.
    """

    def __init__(
        self,
        models: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
        | Mapping[str, str | os.PathLike[str]] | None = None,
        *,
        cache: bool = True,
        fast_path: bool = True,
        labels: Language = "en",
        trust: bool = False,
        default: str | int | None = None,
        ks: Iterable[int] = artifacts.DEFAULT_KS,
        scale: artifacts.Scale = None,
    ) -> None:
        if labels not in LANGUAGES:
            raise InvalidInputError(f"labels must be one of {', '.join(LANGUAGES)}, got {labels!r}")
        self.sources: list[Source] = sources_of(models)
        self.source = None if models is None else (
            self.sources[0].path if len(self.sources) == 1 else None)
        self.cache = cache
        self.fast_path = fast_path and cache
        self.labels: Language = labels
        self.trust = trust
        self._ks = tuple(ks)
        self._scale = scale
        self._default_request = default
        self._lock = threading.Lock()
        self._table: dict[str, LoadedModel] = {}
        self._by_k: dict[int, LoadedModel] = {}
        self._default: LoadedModel
        self.last_reload_error: str | None = None
        #: models the sources hold that were unloaded (V2 repository ``unload``)
        self.unloaded: set[str] = set()
        self._all: list[LoadedModel] = []
        self._install(self._load_all())

    # -- loading --

    def _load_all(self) -> list[LoadedModel]:
        if not self.sources:
            return list(embedded_models(self._ks, self._scale, self.fast_path))
        models: list[LoadedModel] = []
        origin: dict[str, str] = {}
        for src in self.sources:
            for m in load_source(src, trust=self.trust, fast_path=self.fast_path):
                if m.name in origin:
                    raise ModelLoadError(
                        f"two models are named {m.name!r} ({origin[m.name]} and "
                        f"{m.info.source}); name one with NAME=PATH"
                    )
                origin[m.name] = m.info.source
                models.append(m)
        return models

    def _install(self, models: list[LoadedModel]) -> None:
        self._all = list(models)
        table = {m.name: m for m in models if m.name not in self.unloaded}
        models = list(table.values())
        by_k: dict[int, LoadedModel] = {}
        for m in models:
            if m.info.k is not None:
                by_k.setdefault(m.info.k, m)
        want = self._default_request
        default = (by_k.get(5) or models[0]) if want is None else self._find(want, table, by_k)
        with self._lock:
            self._table, self._by_k, self._default = table, by_k, default

    def reload(self) -> list[str]:
        """Re-read the model sources; swap the table atomically.

        Returns the names of the models that changed. If any source fails
        (corrupt, sha256 mismatch, unreadable manifest, a name clash) nothing
        is swapped, the old models keep serving, the error is kept in
        ``last_reload_error`` and re-raised.
        """
        return self.install(self.prepare())

    def prepare(self) -> list[LoadedModel]:
        """The models the sources hold now, loaded but not serving (the first half of a
        reload; :meth:`install` is the second). A failure is kept in
        ``last_reload_error`` and re-raised; nothing changes."""
        if not self.sources:
            return list(self._all)
        try:
            models = self._load_all()
        except ModelLoadError as exc:
            self.last_reload_error = str(exc)
            raise
        return models

    def install(self, models: list[LoadedModel], *, load: str | None = None,
                unload: str | None = None) -> list[str]:
        """Serve ``models`` (from :meth:`prepare`) from now on, with the model ``load``
        served again or ``unload`` no longer (check them with :meth:`check_change`
        first); the names that changed."""
        before = {m.name: (m.info.sha256, m.path) for m in self._table.values()}
        self.last_reload_error = None
        if load is not None:
            self.unloaded.discard(load)
        if unload is not None:
            self.unloaded.add(unload)
        self._install(models)
        now = {m.name: (m.info.sha256, m.path) for m in self._table.values()}
        return [n for n in now if before.get(n) != now[n]] + [n for n in before if n not in now]

    def check_change(self, models: list[LoadedModel], *, load: str | None = None,
                     unload: str | None = None) -> None:
        """:class:`ModelLoadError` if ``load`` is not among ``models``, or ``unload`` is
        not served or is the last model served."""
        names = [m.name for m in models]
        if load is not None and load not in names:
            raise ModelLoadError(f"no model named {load[:60]!r} in the model sources; "
                                 f"they hold: {', '.join(names) or 'none'}")
        if unload is not None:
            if unload not in self._table:
                raise ModelLoadError(f"no model named {unload[:60]!r} is served")
            if len(self._table) == 1:
                raise ModelLoadError(f"{unload!r} is the last model served; a server "
                                     "serves at least one")

    def repository(self) -> list[tuple[LoadedModel, bool]]:
        """Every model the sources held at the last (re)load, and whether it is served."""
        return [(m, m.name not in self.unloaded) for m in self._all]

    @property
    def version(self) -> str:
        """What this predictor serves, in 16 hex digits (:func:`models_version`)."""
        return models_version(self._table.values())

    # -- lookup --

    @staticmethod
    def _find(
        which: str | int, table: Mapping[str, LoadedModel], by_k: Mapping[int, LoadedModel]
    ) -> LoadedModel:
        if isinstance(which, int) and not isinstance(which, bool):
            if which in by_k:
                return by_k[which]
            known = ", ".join(str(k) for k in sorted(by_k)) or "none"
            raise UnknownModelError(f"no model with k={which}; loaded k: {known}")
        if isinstance(which, str) and which in table:
            return table[which]
        raise UnknownModelError(
            f"no model named {str(which)[:60]!r}; loaded: {', '.join(sorted(table)) or 'none'}"
        )

    def model(self, which: str | int | None = None) -> LoadedModel:
        """The model for a name or k (``None``: the default model)."""
        if which is None:
            return self._default
        found = (self._by_k.get(which) if isinstance(which, int) and which.__class__ is int
                 else self._table.get(which) if which.__class__ is str else None)
        return found if found is not None else self._find(which, self._table, self._by_k)

    def models(self) -> list[ModelInfo]:
        """What is loaded, in load order."""
        return [m.info for m in self._table.values()]

    def signature(self, which: str | int | None = None) -> Signature:
        """What a model takes and gives."""
        return self.model(which).signature

    def signatures(self) -> dict[str, Signature]:
        """Every loaded model's signature, by name."""
        return {name: m.signature for name, m in self._table.items()}

    @property
    def ks(self) -> list[int]:
        return sorted(self._by_k)

    def _live(self, which: str | int | None) -> LoadedModel:
        m = self.model(which)
        if self.cache:
            return m
        # The naive design: unpickle the model on every call; scikit-learn answers.
        return reread(m)

    # -- predicting --

    def rows(self, data: Any, which: str | int | None = None) -> rowslib.Rows:
        """``data`` (lists, objects keyed by feature name, an array or a DataFrame)
        checked against a model's signature."""
        sig = self.model(which).signature
        if hasattr(data, "columns") and hasattr(data, "iloc"):
            return rowslib.from_frame(sig, data)
        if isinstance(data, np.ndarray):
            if data.ndim == 1 and data.shape[0] == sig.n_features:
                data = data.reshape(1, -1)  # one row
            return rowslib.from_array(sig, data)
        if isinstance(data, (list, tuple)):
            data = list(data)
            if data and not isinstance(data[0], (list, tuple, dict)):
                data = [data]  # one row
            return rowslib.from_json_rows(sig, [list(r) if isinstance(r, tuple) else r
                                                for r in data])
        if isinstance(data, dict):
            return rowslib.from_json_rows(sig, [data])
        raise InvalidInputError(f"rows must be a list, an array or a DataFrame, not "
                                f"{type(data).__name__}")

    def predict_rows(
        self, data: Any, model: str | int | None = None, *, labels: Language | None = None
    ) -> list[Any]:
        """What the model predicts for each row: labels (display names in ``labels``'
        language where the model has them) or values."""
        m = self._live(model)
        rows = self.rows(data, model)
        if m.is_classifier:
            shown = np.asarray(m.labels_for(labels or self.labels), dtype=object)
            return list(shown[m.predict_codes(rows)])
        return list(m.predict_values(rows).tolist())

    def predict_proba(self, data: Any, model: str | int | None = None) -> npt.NDArray[np.float64]:
        """Class probabilities for each row; columns in ``signature(model).classes`` order."""
        return self._live(model).predict_proba(self.rows(data, model))

    def predict(
        self,
        length: Any,
        weight: Any,
        k: str | int | None = None,
        *,
        labels: Language | None = None,
    ) -> Any:
        """The label of one fish (any two-feature model). ``k`` picks the model by k or name."""
        x = check_value("length", length)
        w = check_value("weight", weight)
        if self.cache:  # one row of Python floats, checked and predicted without numpy
            m = self.model(k)
            fast, check = m.fast, m.row_check
            if fast is not None and check is not None and m.is_classifier:
                row = check((x, w))
                if row is not None:
                    return m.labels_for(labels or self.labels)[int(fast.predict_row(row))]
        return self.predict_rows([[x, w]], k, labels=labels)[0]

    def predict_codes(self, X: Any, k: str | int | None = None) -> npt.NDArray[np.intp]:
        """Class codes (indices into the model's ``classes``) for every row of ``X``."""
        m = self._live(k)
        return m.predict_codes(self.rows(X, k))

    def predict_many(
        self, X: Any, k: str | int | None = None, *, labels: Language | None = None
    ) -> list[Any]:
        """Labels for every row of ``X`` (for the fish: rows of (length, weight))."""
        return self.predict_rows(X, k, labels=labels)

    def label(
        self, code: int, labels: Language | None = None, model: LoadedModel | None = None
    ) -> Any:
        m = model or self._default
        return m.labels_for(labels or self.labels)[code]

    def __repr__(self) -> str:
        src = EMBEDDED if not self.sources else ", ".join(str(s.path) for s in self.sources)
        return (
            f"Predictor({src!r}, models={list(self._table)}, cache={self.cache}, "
            f"fast_path={self.fast_path}, labels={self.labels!r})"
        )

