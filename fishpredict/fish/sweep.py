"""The k sweep: accuracy and speed of each model on labelled fish.

The seed predicted 100,000 sampled rows for k = 1, 5, 15, 25, 49 and found
100% accuracy for k = 1 to 25, while k = 49 (every training fish) answers the
majority class, bream, for every row, so its accuracy is the bream share of the
data. :func:`evaluate` measures that locally through
:meth:`Predictor.predict_codes`; :func:`format_table` prints it. The two meet at
:class:`Row`, so another evaluator (for example one that asks a server over
HTTP) can produce Rows and reuse the same table.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from fishpredict.errors import ConfigError, DataError
from fishpredict.fish.dataset import BREAM, SMELT, SPECIES_NAMES, Language, label_of

if TYPE_CHECKING:
    from fishpredict.predictor import Predictor

FloatArray = npt.NDArray[np.float64]
LabelArray = npt.NDArray[np.int64]

#: Rows per predict call when evaluating in-memory arrays.
CHUNK_ROWS: Final = 262_144


@dataclass(frozen=True)
class Row:
    """The result for one model over one data set."""

    k: int
    #: rows evaluated
    rows: int
    #: rows whose predicted label equals the true one
    correct: int
    #: time spent predicting (for a remote evaluator: the wall time of the requests)
    seconds: float
    #: rows predicted bream
    bream_answers: int
    #: rows of the data labelled bream (the same in every Row of one evaluation)
    bream_rows: int
    model: str = ""

    @property
    def accuracy(self) -> float:
        return self.correct / self.rows if self.rows else 0.0

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")

    @property
    def bream_share(self) -> float:
        """Share of bream in the data."""
        return self.bream_rows / self.rows if self.rows else 0.0

    @property
    def all_bream(self) -> bool:
        """Every answer was bream (what k = 49 does on the 49 fish)."""
        return self.rows > 0 and self.bream_answers == self.rows


def _class_labels(predictor: Predictor, k: int) -> LabelArray:
    """Fish label (1 bream, 0 smelt) of each class index of the model for ``k``."""
    model = predictor.model(k)
    labels: list[int] = []
    for c in model.info.classes:
        try:
            label = label_of(c) if isinstance(c, str) else int(c)
        except (TypeError, ValueError):
            label = -1
        if label not in (0, 1):
            raise ConfigError(
                f"model {model.name} predicts {list(model.info.classes)}, "
                "not fish labels (1/0 or bream/smelt)"
            )
        labels.append(label)
    return np.array(labels, dtype=np.int64)


def evaluate_chunks(
    predictor: Predictor, chunks: Iterable[tuple[FloatArray, Any]], ks: Sequence[int]
) -> list[Row]:
    """Evaluate every k over ``(X, y)`` chunks, reading the data once.

    Only the ``predict_codes`` calls are timed. Raises DataError if a chunk has
    no labels, and UnknownModelError (before any work) for a k not loaded.
    """
    tables = {k: _class_labels(predictor, k) for k in ks}
    correct = dict.fromkeys(ks, 0)
    answers = dict.fromkeys(ks, 0)
    seconds = dict.fromkeys(ks, 0.0)
    rows = bream_rows = 0
    for X, y in chunks:
        if y is None:
            raise DataError(
                "the data has no labels (a Species column, or y); evaluation needs them"
            )
        for k in ks:
            start = time.perf_counter()
            codes = predictor.predict_codes(X, k)
            seconds[k] += time.perf_counter() - start
            predicted = tables[k][codes]
            correct[k] += int(np.count_nonzero(predicted == y))
            answers[k] += int(np.count_nonzero(predicted == BREAM))
        rows += len(y)
        bream_rows += int(np.count_nonzero(y == BREAM))
    return [
        Row(
            k=k,
            rows=rows,
            correct=correct[k],
            seconds=seconds[k],
            bream_answers=answers[k],
            bream_rows=bream_rows,
            model=predictor.model(k).name,
        )
        for k in ks
    ]


def evaluate(
    predictor: Predictor,
    X: FloatArray,
    y: LabelArray,
    ks: Sequence[int],
    chunk_rows: int = CHUNK_ROWS,
) -> list[Row]:
    """Evaluate every k on in-memory ``X`` (n, 2) and labels ``y`` (n,)."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if len(X) != len(y):
        raise DataError(f"X has {len(X)} rows but y has {len(y)} labels")
    chunks = ((X[i : i + chunk_rows], y[i : i + chunk_rows]) for i in range(0, len(X), chunk_rows))
    return evaluate_chunks(predictor, chunks, ks)


def format_table(rows: Sequence[Row], labels: Language = "en") -> str:
    """The k sweep as text: one line per k, then notes that explain the numbers.

    Models whose every answer is bream get a note saying that their accuracy is
    the bream share of the data (computed from the data, not assumed).
    """
    if not rows:
        return "no results"
    names = SPECIES_NAMES[labels]
    first = rows[0]
    lines = [
        f"data: {first.rows:,} rows, {first.bream_share:.3%} {names[BREAM]} "
        f"({first.bream_rows:,} {names[BREAM]}, "
        f"{first.rows - first.bream_rows:,} {names[SMELT]})",
        f"{'k':>4}  {'model':<12} {'rows':>12} {'correct':>12} {'accuracy':>9} {'rows/s':>12}",
    ]
    for r in rows:
        lines.append(
            f"{r.k:>4}  {r.model:<12} {r.rows:>12,} {r.correct:>12,} "
            f"{r.accuracy:>9.3%} {r.rows_per_s:>12,.0f}"
        )
    for r in rows:
        if r.all_bream:
            same = "=" if r.correct == r.bream_rows else "!="
            lines.append(
                f"note: k={r.k}: every answer is {names[BREAM]}, so accuracy "
                f"{r.accuracy:.3%} {same} {names[BREAM]} share {r.bream_share:.3%}"
            )
    return "\n".join(lines)
