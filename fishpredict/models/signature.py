"""A model's signature: what it takes and what it gives, as plain data.

Every loaded model carries one. The contract validates requests against it,
``GET /models`` and ``fishpredict models inspect`` show it, the V2 protocol
derives its tensor metadata from it. It is read from the fitted estimator
(``feature_names_in_``, ``n_features_in_``, ``classes_``, the encoders of a
``ColumnTransformer``, scikit-learn's tags) and completed by the manifest
(per-feature bounds, display names of classes, kinds the estimator cannot
tell).

Nothing here knows about fish: the embedded fish models are one signature
among others (features ``length`` and ``weight``, both ``>= 0``, classes
``0``/``1`` displayed as bream/smelt or 도미/빙어).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal, cast

import numpy as np

Kind = Literal["number", "string"]
Task = Literal["classifier", "regressor", "other"]

KINDS: Final[tuple[str, ...]] = ("number", "string")
TASKS: Final[tuple[str, ...]] = ("classifier", "regressor", "other")
#: the outputs a request may ask for, in the order they are listed
OUTPUTS: Final[tuple[str, ...]] = ("predict", "predict_proba")


@dataclass(frozen=True)
class Feature:
    """One input column.

    ``kind`` is ``"number"`` (a float64 column) or ``"string"`` (text, for a
    pipeline that encodes it). ``categories`` are the values an encoder knows,
    when it refuses others. ``minimum``/``maximum`` are inclusive bounds from
    the manifest; rows outside them are refused.
    """

    name: str
    kind: Kind = "number"
    minimum: float | None = None
    maximum: float | None = None
    categories: tuple[Any, ...] | None = None
    #: the column was fitted as a pandas ``category`` dtype with these categories: the
    #: DataFrame the model is given has that very dtype (a value outside them is missing)
    levels: tuple[Any, ...] | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.levels is not None:
            out["dtype"] = "category"
            out["levels"] = list(self.levels)
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        if self.categories is not None:
            out["categories"] = list(self.categories)
        return out


@dataclass(frozen=True)
class Signature:
    """What a model takes (features) and gives (task, classes, outputs).

    ``frame``: the estimator must be given a pandas DataFrame with the fitted
    column names (a pipeline that selects columns by name or encodes strings);
    otherwise it gets a float64 array in feature order. ``named``: it was
    fitted with feature names (so rows may be objects keyed by name, and are
    anyway). ``display``: per language, a display name for each class, in the
    order of ``classes`` (the fish models have ``en`` and ``ko``).
    """

    features: tuple[Feature, ...]
    task: Task
    classes: tuple[Any, ...] | None = None
    outputs: tuple[str, ...] = ("predict",)
    allows_nan: bool = False
    frame: bool = False
    named: bool = False
    display: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        return len(self.features)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @property
    def numeric(self) -> bool:
        """Every feature is a number (the input can be one float64 array)."""
        return all(f.kind == "number" for f in self.features)

    @property
    def bounded(self) -> bool:
        return any(f.minimum is not None or f.maximum is not None for f in self.features)

    def index(self, name: str) -> int | None:
        for i, f in enumerate(self.features):
            if f.name == name:
                return i
        return None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "features": [f.as_dict() for f in self.features],
            "task": self.task,
            "outputs": list(self.outputs),
            "allows_nan": self.allows_nan,
            "input": "dataframe" if self.frame else "array",
        }
        if self.classes is not None:
            out["classes"] = list(self.classes)
        if self.display:
            out["display"] = {lang: list(names) for lang, names in self.display.items()}
        return out


# ---- reading a signature off a fitted estimator ------------------------------------


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value JSON can carry (``np.int64(1)`` -> ``1``)."""
    return value.item() if isinstance(value, np.generic) else value


def _task(estimator: Any) -> Task:
    kind = getattr(estimator, "_estimator_type", None)
    if kind is None:
        try:
            from sklearn.utils import get_tags

            kind = get_tags(estimator).estimator_type
        except Exception:  # not a scikit-learn estimator, or an old one
            kind = None
    if kind == "classifier" or (kind is None and hasattr(estimator, "classes_")):
        return "classifier"
    if kind == "regressor":
        return "regressor"
    return "other"


def _allows_nan(estimator: Any) -> bool:
    try:
        from sklearn.utils import get_tags

        return bool(get_tags(estimator).input_tags.allow_nan)
    except Exception:
        return False


def _string_columns(estimator: Any) -> dict[str, tuple[Any, ...] | None]:
    """Columns a ColumnTransformer hands to an encoder of text categories,
    with the categories when the encoder refuses unknown ones."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    found: dict[str, tuple[Any, ...] | None] = {}
    steps = estimator.steps if isinstance(estimator, Pipeline) else [("", estimator)]
    for _, step in steps:
        if not isinstance(step, ColumnTransformer) or not hasattr(step, "transformers_"):
            continue
        for _, transformer, columns in step.transformers_:
            encoder = transformer
            if isinstance(encoder, Pipeline):  # e.g. imputer -> encoder
                encoder = next(
                    (s for _, s in encoder.steps if hasattr(s, "categories_")), encoder
                )
            cats = getattr(encoder, "categories_", None)
            if cats is None or isinstance(columns, slice) or callable(columns):
                continue
            cols = [columns] if isinstance(columns, str) else list(columns)
            for col, values in zip(cols, cats, strict=False):
                if not isinstance(col, str) or values.dtype.kind not in "OUS":
                    continue
                strict = getattr(encoder, "handle_unknown", "error") == "error"
                known = tuple(_plain(v) for v in values if v is not None and v == v)
                found[col] = known if strict else None
    return found


def _native_categories(estimator: Any) -> dict[str, tuple[Any, ...]]:
    """Text columns a HistGradientBoosting model fitted with ``categorical_features=
    "from_dtype"`` (or by name) encodes itself, with the categories it was fitted on."""
    pre = getattr(estimator, "_preprocessor", None)
    names = getattr(estimator, "feature_names_in_", None)
    if pre is None or names is None or not hasattr(pre, "transformers_"):
        return {}
    found: dict[str, tuple[Any, ...]] = {}
    for _, transformer, columns in pre.transformers_:
        cats = getattr(transformer, "categories_", None)
        if cats is None:
            continue
        mask = np.asarray(columns)
        index = np.flatnonzero(mask) if mask.dtype == bool else mask.astype(int)
        for i, values in zip(index, cats, strict=False):
            if values.dtype.kind in "OUS":
                found[str(names[i])] = tuple(_plain(v) for v in values
                                             if v is not None and v == v)
    return found


def _selects_by_name(estimator: Any) -> bool:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    steps = estimator.steps if isinstance(estimator, Pipeline) else [("", estimator)]
    for _, step in steps:
        if isinstance(step, ColumnTransformer) and hasattr(step, "transformers_"):
            for _, _, columns in step.transformers_:
                cols = [columns] if isinstance(columns, str) else columns
                if isinstance(cols, Sequence) and any(isinstance(c, str) for c in cols):
                    return True
    return False


def signature_of(estimator: Any) -> Signature:
    """The signature a fitted estimator tells about itself (no manifest)."""
    names = getattr(estimator, "feature_names_in_", None)
    n_in = getattr(estimator, "n_features_in_", None)
    if names is not None:
        feature_names = [str(n) for n in names]
    elif isinstance(n_in, (int, np.integer)):
        feature_names = [f"x{i}" for i in range(int(n_in))]
    else:
        feature_names = []
    strings = _string_columns(estimator) if names is not None else {}
    native = _native_categories(estimator)
    features = tuple(
        Feature(n, "string", categories=strings[n]) if n in strings
        else Feature(n, "string", levels=native[n]) if n in native else Feature(n)
        for n in feature_names
    )
    task = _task(estimator)
    classes = getattr(estimator, "classes_", None)
    outputs = ["predict"]
    # hasattr, not callable(getattr()): SVC(probability=False) hides predict_proba this way
    if task == "classifier" and hasattr(estimator, "predict_proba"):
        outputs.append("predict_proba")
    return Signature(
        features=features,
        task=task,
        classes=None if classes is None or np.ndim(classes) != 1
        else tuple(_plain(c) for c in classes),
        outputs=tuple(outputs),
        allows_nan=_allows_nan(estimator),
        frame=bool(strings) or bool(native) or _selects_by_name(estimator),
        named=names is not None,
    )


# ---- the manifest's part -----------------------------------------------------------


def _bound(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} must be a number, got {value!r}")
    return float(value)


def with_manifest(sig: Signature, doc: Mapping[str, Any] | None) -> Signature:
    """``sig`` completed by a manifest's ``signature`` object.

    The manifest may name the features (for a model fitted without names),
    give each a kind and bounds, set ``allows_nan``, and give ``display``
    names for the classes. It may not contradict the estimator: a feature
    count that differs is a ``ValueError``.
    """
    if not doc:
        return sig
    out = sig
    feats = doc.get("features")
    if feats is not None:
        if not isinstance(feats, list) or not all(isinstance(f, (dict, str)) for f in feats):
            raise ValueError("signature.features must be a list of names or objects")
        if sig.features and len(feats) != len(sig.features):
            raise ValueError(
                f"the manifest lists {len(feats)} features, the model takes {len(sig.features)}"
            )
        new = []
        for i, f in enumerate(feats):
            spec = {"name": f} if isinstance(f, str) else f
            base = sig.features[i] if sig.features else Feature(str(spec.get("name", f"x{i}")))
            name = str(spec.get("name", base.name))
            if sig.named and name != base.name:
                raise ValueError(
                    f"feature {i} is {base.name!r} in the model, {name!r} in the manifest"
                )
            kind = spec.get("kind", base.kind)
            if kind not in KINDS:
                raise ValueError(f"feature {name!r}: kind must be one of {', '.join(KINDS)}")
            kind = cast(Kind, kind)
            new.append(
                replace(
                    base,
                    name=name,
                    kind=kind,
                    minimum=_bound(spec.get("minimum", base.minimum), f"{name}.minimum"),
                    maximum=_bound(spec.get("maximum", base.maximum), f"{name}.maximum"),
                )
            )
        out = replace(out, features=tuple(new), frame=out.frame or any(
            f.kind == "string" for f in new))
    if "allows_nan" in doc:
        out = replace(out, allows_nan=bool(doc["allows_nan"]))
    display = doc.get("display")
    if display:
        if not isinstance(display, dict):
            raise ValueError("signature.display must map a language to class names")
        n = len(out.classes or ())
        table = {}
        for lang, names in display.items():
            if not isinstance(names, list) or len(names) != n:
                raise ValueError(f"signature.display.{lang} must list {n} class names")
            table[str(lang)] = tuple(str(x) for x in names)
        out = replace(out, display=table)
    return out


def manifest_part(sig: Signature) -> dict[str, Any]:
    """What a manifest stores of a signature (read back by :func:`with_manifest`)."""
    doc: dict[str, Any] = {"features": [f.as_dict() for f in sig.features]}
    for f in doc["features"]:
        for key in ("categories", "dtype", "levels"):
            f.pop(key, None)  # the estimator knows them
    doc["allows_nan"] = sig.allows_nan
    if sig.display:
        doc["display"] = {lang: list(names) for lang, names in sig.display.items()}
    return doc
