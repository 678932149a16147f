"""The kinds of bad input the any-model suite sends, built from a model's signature."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fishpredict.testing.zoo import ZooModel

BadRow = tuple[str, Any, str]  # kind, the row, a text the error message must name


def _allows_nan(m: ZooModel) -> bool:
    from sklearn.utils import get_tags

    return bool(get_tags(m.estimator).input_tags.allow_nan)


def bad_rows(m: ZooModel, good: list[Any], names: list[str]) -> Iterator[BadRow]:
    """Every kind of bad row that applies to ``m`` (``good``: a valid row of it)."""
    n = len(names)
    numeric = [i for i, v in enumerate(good) if not isinstance(v, str)]
    text = [i for i, v in enumerate(good) if isinstance(v, str)]
    first = numeric[0]
    yield "a value too many", [*good, 1.0], f"has {n + 1} values"
    yield "a value too few", good[:-1], f"has {n - 1} values"
    yield "an empty list", [], "is empty"
    yield "an empty object", {}, "is empty"
    keyed = dict(zip(names, good, strict=True))
    yield "an unknown feature name", {**keyed, "no-such-feature": 1.0}, "no-such-feature"
    yield "a missing feature name", {k: v for k, v in keyed.items() if k != names[0]}, names[0]
    with_text = list(good)
    with_text[first] = "abc"
    yield "text in a numeric column", with_text, names[first]
    with_bool = list(good)
    with_bool[first] = True
    yield "true/false in a numeric column", with_bool, names[first]
    if not _allows_nan(m):
        with_null = list(good)
        with_null[first] = None
        yield "null where the model takes no missing value", with_null, names[first]
    for spec in (m.signature or {}).get("features", []):
        if "minimum" in spec:
            i = names.index(spec["name"])
            below = list(good)
            below[i] = spec["minimum"] - 1.0
            yield "a value under the manifest's minimum", below, spec["name"]
    for i in text:
        unknown = list(good)
        unknown[i] = "no-such-category"
        yield "an unknown category", unknown, names[i]
        number = list(good)
        number[i] = 3.0
        yield "a number in a text column", number, names[i]
