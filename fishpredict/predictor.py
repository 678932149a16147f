"""The Predictor: loads models once, keeps them, and answers predictions.

A Predictor holds several models by name (one per k, for the KNN models this
project grew from) and picks one per call. Models come from a directory with a
``manifest.json`` (see :mod:`fishpredict.artifacts`), from a single trusted
file, or, with no source at all, from the *embedded default*: KNN models for
k = 1, 5, 15, 25, 49 trained in memory on the 49 built-in fish.

Loaded models live in a process-wide cache keyed by file identity (path, size,
mtime, sha256), so a second Predictor over the same files unpickles nothing.
``reload()`` re-reads files that changed and swaps the model table atomically.
``cache=False`` reproduces the naive design the seed measured: the model file
is unpickled on every call. It exists only so benchmarks can compare.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from . import artifacts, fastknn
from .dataset import FEATURES, LANGUAGES, SPECIES_NAMES, Language
from .errors import InvalidInputError, ModelLoadError, UnknownModelError

EMBEDDED: Final = "embedded"


@dataclass(frozen=True)
class ModelInfo:
    """What a loaded model is and where it came from (the body of ``GET /models``)."""

    name: str
    k: int | None
    classes: tuple[Any, ...]
    estimator: str
    sha256: str
    source: str
    fast_path: bool
    sklearn_version: str = ""
    feature_names: tuple[str, ...] = FEATURES

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "k": self.k,
            "classes": list(self.classes),
            "estimator": self.estimator,
            "sha256": self.sha256,
            "source": self.source,
            "fast_path": self.fast_path,
            "feature_names": list(self.feature_names),
        }


@dataclass(frozen=True)
class LoadedModel:
    """One model ready to predict: the estimator, its fast path, its labels."""

    info: ModelInfo
    estimator: Any
    fast: fastknn.FastKNN | None
    #: per language, the display name of each class index
    names: Mapping[Language, tuple[str, ...]]
    blob: bytes = field(repr=False, default=b"")  # joblib bytes, for cache=False
    path: str | None = None

    @property
    def name(self) -> str:
        return self.info.name

    def predict_codes(self, X: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
        if self.fast is not None:
            return self.fast.predict_codes(X)
        return self.codes_of(self.estimator.predict(X))

    def predict_code(self, length: float, weight: float) -> int:
        if self.fast is not None:
            return self.fast.predict_one(length, weight)
        X = np.array([[length, weight]], dtype=np.float64)
        return int(self.codes_of(self.estimator.predict(X))[0])

    def codes_of(self, labels: npt.NDArray[Any]) -> npt.NDArray[np.intp]:
        return np.searchsorted(np.asarray(self.info.classes), labels).astype(np.intp)


def _display_names(classes: Sequence[Any]) -> dict[Language, tuple[str, ...]]:
    out: dict[Language, tuple[str, ...]] = {}
    for lang in LANGUAGES:
        table = SPECIES_NAMES[lang]
        out[lang] = tuple(
            table.get(int(c), str(c)) if isinstance(c, (int, np.integer)) else str(c)
            for c in classes
        )
    return out


def _prepare(
    estimator: Any,
    name: str,
    sha256: str,
    source: str,
    *,
    fast_path: bool,
    blob: bytes = b"",
    path: str | None = None,
) -> LoadedModel:
    classes = tuple(
        c.item() if hasattr(c, "item") else c for c in getattr(estimator, "classes_", ())
    )
    fast = fastknn.compile_knn(estimator) if fast_path else None
    if fast is not None and fastknn.check(fast) != 0:
        fast = None  # the exactness check failed: serve through scikit-learn
    info = ModelInfo(
        name=name,
        k=artifacts.neighbours_of(estimator),
        classes=classes,
        estimator=type(estimator).__name__,
        sha256=sha256,
        source=source,
        fast_path=fast is not None,
        sklearn_version=getattr(estimator, "__sklearn_version__", "") or "",
    )
    return LoadedModel(
        info=info,
        estimator=estimator,
        fast=fast,
        names=_display_names(classes),
        blob=blob,
        path=path,
    )


# ---- the process-wide cache ----------------------------------------------------------

_FileKey = tuple[str, int, int, str, bool]  # path, size, mtime_ns, sha256, fast_path
_cache: dict[_FileKey, LoadedModel] = {}
_cache_lock = threading.Lock()
#: how many times a model file was unpickled in this process (for tests and /metrics)
load_count: int = 0


def _load_file(
    path: Path,
    name: str,
    expected_sha256: str | None,
    *,
    trust: bool,
    fast_path: bool,
    use_cache: bool = True,
) -> LoadedModel:
    global load_count
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ModelLoadError(f"model file not found: {path}") from None
    except OSError as exc:
        raise ModelLoadError(f"cannot read model file {path}: {exc.strerror}") from None
    with _cache_lock:
        if use_cache and expected_sha256 is not None:
            key = (str(path.resolve()), st.st_size, st.st_mtime_ns, expected_sha256, fast_path)
            hit = _cache.get(key)
            if hit is not None:
                return replace(hit, info=replace(hit.info, name=name))
        blob = artifacts.read_verified(path, expected_sha256, trust=trust)
        digest = artifacts.sha256_bytes(blob)
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns, digest, fast_path)
        if use_cache and key in _cache:
            return replace(_cache[key], info=replace(_cache[key].info, name=name))
        estimator = artifacts.loads(blob, str(path))
        load_count += 1
        # no blob: the model is back on disk at ``path`` (cache=False reads it from there),
        # and keeping the pickled bytes would hold a second copy of the model in memory
        model = _prepare(estimator, name, digest, str(path), fast_path=fast_path, path=str(path))
        if use_cache:
            _cache[key] = model
        return model


def clear_cache() -> None:
    """Forget every cached model (the next load unpickles again)."""
    with _cache_lock:
        _cache.clear()


_embedded: dict[tuple[tuple[int, ...], str | None, bool], list[LoadedModel]] = {}


def _embedded_models(
    ks: Sequence[int], scale: artifacts.Scale, fast_path: bool
) -> list[LoadedModel]:
    key = (tuple(ks), scale, fast_path)
    with _cache_lock:
        if key not in _embedded:
            models = []
            for k in ks:
                est = artifacts.train(k, scale=scale)
                blob = artifacts.dumps(est)
                models.append(
                    _prepare(
                        est,
                        artifacts.model_name(k, scale),
                        artifacts.sha256_bytes(blob),
                        EMBEDDED,
                        fast_path=fast_path,
                        blob=blob,
                    )
                )
            _embedded[key] = models
        return _embedded[key]


# ---- input checking ------------------------------------------------------------------

_INF: Final = float("inf")


def check_value(name: str, value: Any) -> float:
    """``value`` as a float if it is a finite, non-negative number, else InvalidInputError.

    Text must be an ASCII decimal (``float`` alone would also take ``1_000``
    and non-ASCII digits, which no client means as a number).
    """
    if isinstance(value, bool):
        raise InvalidInputError(f"{name} must be a number, got a boolean")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be a number, got {str(value)[:40]!r}") from None
    if isinstance(value, str) and ("_" in value or not value.isascii()):
        raise InvalidInputError(f"{name} must be a number, got {value[:40]!r}")
    if 0.0 <= x < _INF:  # the common case; NaN fails every comparison
        return x
    if x != x or x == _INF or x == -_INF:
        raise InvalidInputError(f"{name} must be finite, got {value!r}")
    raise InvalidInputError(f"{name} must not be negative, got {value!r}")


def check_array(X: Any) -> npt.NDArray[np.float64]:
    """``X`` as a float64 (n, 2) array of finite non-negative values, else InvalidInputError."""
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInputError("instances must be numbers: rows of [length, weight]") from None
    if arr.ndim == 1 and arr.shape[0] == len(FEATURES):
        arr = arr.reshape(1, -1)
    if arr.ndim != 2 or arr.shape[1] != len(FEATURES):
        raise InvalidInputError(
            f"expected rows of {len(FEATURES)} features ({', '.join(FEATURES)}), "
            f"got an array of shape {arr.shape}"
        )
    if not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
        raise InvalidInputError(f"row {bad}: values must be finite (no NaN or infinity)")
    if (arr < 0).any():
        bad = int(np.flatnonzero((arr < 0).any(axis=1))[0])
        raise InvalidInputError(f"row {bad}: values must not be negative")
    return arr


# ---- the Predictor -------------------------------------------------------------------


class Predictor:
    """Loads models once and predicts with them.

    Args:
        models: a model directory (with ``manifest.json``), a single model file,
            or ``None`` for the embedded default (k = 1, 5, 15, 25, 49 trained in
            memory from the built-in fish).
        cache: keep models in memory (default). ``False`` unpickles the model on
            every call, as the seed's first server did; for benchmarks only.
        fast_path: use the exact numpy KNN fast path where it applies.
        labels: ``"en"`` (bream/smelt) or ``"ko"`` (도미/빙어) for returned labels.
        trust: allow unpickling a model file that no manifest vouches for.
        default: name or k of the model used when a call names none.
        ks, scale: which embedded models to train (only with ``models=None``).

    Thread-safe: the model table is swapped atomically by :meth:`reload`, and
    predictions read one consistent table. Safe to call from async code (the
    calls are short and CPU-bound; see :mod:`fishpredict.batching` to batch).
    """

    def __init__(
        self,
        models: str | os.PathLike[str] | None = None,
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
        self.source = None if models is None else Path(models)
        self.cache = cache
        self.fast_path = fast_path
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
        self._install(self._load_all())

    # -- loading --

    def _load_all(self) -> list[LoadedModel]:
        if self.source is None:
            return list(_embedded_models(self._ks, self._scale, self.fast_path))
        src = self.source
        if src.is_dir():
            entries = artifacts.read_manifest(src)
            if not entries:
                raise ModelLoadError(f"{src / artifacts.MANIFEST_NAME} lists no models")
            return [
                _load_file(
                    src / e.file, e.name, e.sha256, trust=self.trust, fast_path=self.fast_path
                )
                for e in entries
            ]
        if not src.exists():
            raise ModelLoadError(f"model path not found: {src}")
        sha = self._manifest_sha(src)
        name = src.name.rsplit(".", 1)[0]
        return [_load_file(src, name, sha, trust=self.trust, fast_path=self.fast_path)]

    @staticmethod
    def _manifest_sha(path: Path) -> str | None:
        try:
            entries = artifacts.read_manifest(path.parent)
        except ModelLoadError:
            return None
        return next((e.sha256 for e in entries if e.file == path.name), None)

    def _install(self, models: list[LoadedModel]) -> None:
        table = {m.name: m for m in models}
        by_k: dict[int, LoadedModel] = {}
        for m in models:
            if m.info.k is not None:
                by_k.setdefault(m.info.k, m)
        want = self._default_request
        default = (by_k.get(5) or models[0]) if want is None else self._find(want, table, by_k)
        with self._lock:
            self._table, self._by_k, self._default = table, by_k, default

    def reload(self) -> list[str]:
        """Re-read model files that changed on disk; swap the table atomically.

        Returns the names of the models that were reloaded. If any file fails
        (corrupt, sha256 mismatch, unreadable manifest) nothing is swapped, the
        old models keep serving, the error is kept in ``last_reload_error`` and
        re-raised.
        """
        if self.source is None:
            return []
        before = {m.name: (m.info.sha256, m.path) for m in self._table.values()}
        try:
            models = self._load_all()
        except ModelLoadError as exc:
            self.last_reload_error = str(exc)
            raise
        self.last_reload_error = None
        self._install(models)
        return [m.name for m in models if before.get(m.name) != (m.info.sha256, m.path)]

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
            f"no model named {which!r}; loaded: {', '.join(sorted(table)) or 'none'}"
        )

    def model(self, which: str | int | None = None) -> LoadedModel:
        """The model for a name or k (``None``: the default model)."""
        if which is None:
            return self._default
        return self._find(which, self._table, self._by_k)

    def models(self) -> list[ModelInfo]:
        """What is loaded, in load order."""
        return [m.info for m in self._table.values()]

    @property
    def ks(self) -> list[int]:
        return sorted(self._by_k)

    def _live(self, which: str | int | None) -> LoadedModel:
        m = self.model(which)
        if self.cache:
            return m
        # The naive design: unpickle the model on every call.
        global load_count
        blob = Path(m.path).read_bytes() if m.path else m.blob
        est = artifacts.loads(blob, m.info.source)
        load_count += 1
        return replace(
            m, estimator=est, fast=fastknn.compile_knn(est) if m.fast is not None else None
        )

    # -- predicting --

    def label(
        self, code: int, labels: Language | None = None, model: LoadedModel | None = None
    ) -> str:
        m = model or self._default
        return m.names[labels or self.labels][code]

    def predict(
        self,
        length: Any,
        weight: Any,
        k: str | int | None = None,
        *,
        labels: Language | None = None,
    ) -> str:
        """The label of one fish. ``k`` picks the model by k or by name."""
        x = check_value("length", length)
        w = check_value("weight", weight)
        m = self._live(k)
        return m.names[labels or self.labels][m.predict_code(x, w)]

    def predict_codes(self, X: Any, k: str | int | None = None) -> npt.NDArray[np.intp]:
        """Class indices (into the model's ``classes``) for an (n, 2) array."""
        arr = check_array(X)
        if arr.shape[0] == 0:
            return np.empty(0, dtype=np.intp)
        return self._live(k).predict_codes(arr)

    def predict_many(
        self, X: Any, k: str | int | None = None, *, labels: Language | None = None
    ) -> list[str]:
        """Labels for every row of an (n, 2) array of (length, weight)."""
        m = self.model(k)
        names = np.asarray(m.names[labels or self.labels], dtype=object)
        return list(names[self.predict_codes(X, k)])

    def __repr__(self) -> str:
        src = EMBEDDED if self.source is None else str(self.source)
        return (
            f"Predictor({src!r}, models={list(self._table)}, cache={self.cache}, "
            f"fast_path={self.fast_path}, labels={self.labels!r})"
        )
