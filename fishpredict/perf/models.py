"""``fishpredict perf models``: each fast-path family against ``estimator.predict``, and
the models without one against scikit-learn, in one process, one table.

A zoo of models is trained on the datasets scikit-learn ships (KNN, logistic
regression, a scaler + logistic pipeline, a decision tree, a 100-tree forest, a ridge
regression, and three models only scikit-learn answers: gradient boosting, an SVC, an
MLP). Each is loaded as ``fishpredict serve`` loads it
(:func:`fishpredict.models.build.build`: signature, fast path, load-time check) and
timed on the path the server takes, on training rows perturbed by 1%: one row through
``LoadedModel.predict_row_code`` (classifiers; the fast path's ``predict_one``) or
``predict_values`` (regressors), 64 rows through ``predict_codes``/``predict_values``
in one call; against ``estimator.predict`` on the same rows. Targets (issue 10): one
row >= 30x for KNN, linear, scaler + linear and trees, >= 50x for the 100-tree forest;
64 rows >= 5x per fast-path family; a model without a fast path at most 10% slower
than scikit-learn.
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from fishpredict.models.build import build
from fishpredict.models.loaded import LoadedModel
from fishpredict.models.rows import Rows
from fishpredict.perf.machine import header, table
from fishpredict.perf.modelbatching import http_part
from fishpredict.perf.report import load_line, verdict

Say = Callable[[str], None]
#: no fast path: fishpredict may be at most this much slower than scikit-learn
SLOWER_AT_MOST = 0.10
#: rounds of each pair of timings
ROUNDS = 48


@dataclass
class Entry:
    """One model of the benchmark: how to train it, its data, its targets."""

    name: str
    train: Callable[[], tuple[Any, Any]]  # (fitted estimator, rows)
    one_target: float | None  # speed-up wanted for one row; None: no fast path
    batch_target: float | None


def _zoo(quick: bool) -> list[Entry]:
    from sklearn import datasets
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC
    from sklearn.tree import DecisionTreeClassifier

    iris = datasets.load_iris(return_X_y=True)
    wine = datasets.load_wine(return_X_y=True)
    cancer = datasets.load_breast_cancer(return_X_y=True)
    diabetes = datasets.load_diabetes(return_X_y=True)
    digits = datasets.load_digits(return_X_y=True)
    trees = 10 if quick else 100

    def fit(est: Any, data: tuple[Any, Any]) -> Callable[[], tuple[Any, Any]]:
        return lambda: (est.fit(*data), data[0])

    return [
        Entry("iris-knn", fit(KNeighborsClassifier(5), iris), 30, 5),
        Entry("cancer-logistic", fit(LogisticRegression(max_iter=5000), cancer), 30, 5),
        Entry("wine-scaled-logistic", fit(make_pipeline(StandardScaler(), LogisticRegression(
            max_iter=2000)), wine), 30, 5),
        Entry("cancer-tree", fit(DecisionTreeClassifier(random_state=0), cancer), 30, 5),
        Entry(f"cancer-forest-{trees}", fit(RandomForestClassifier(trees, random_state=0),
                                            cancer), 50, 5),
        Entry("diabetes-ridge", fit(Ridge(alpha=0.5), diabetes), 30, 5),
        Entry("cancer-boosting", fit(GradientBoostingClassifier(
            n_estimators=20 if quick else 100, random_state=0), cancer), None, None),
        Entry("digits-svc", fit(SVC(gamma=0.001), digits), None, None),
        Entry("digits-mlp", fit(MLPClassifier((32,), max_iter=300, random_state=0),
                                (digits[0] / 16.0, digits[1])), None, None),
    ]


@dataclass(frozen=True)
class Pair:
    """Two calls timed in turns: the median CPU seconds per call of each, and the median
    of the per-round ratios ``a / b`` (how many times faster ``b`` is)."""

    a_s: float
    b_s: float
    ratio: float


def paired(a: Callable[[], Any], b: Callable[[], Any], seconds: float, rounds: int = ROUNDS
           ) -> Pair:
    """Time ``a`` and ``b`` in CPU seconds (``time.process_time``: time the process was
    not running, because other jobs had the cores, does not count). Each round runs a
    fixed number of calls of each, sized so that the rounds take ``seconds`` in all; the
    two go back to back (who goes first alternates), so a round's ratio compares them
    under the same machine state, and the median of the rounds' ratios ignores the
    rounds a neighbour or a frequency change spoiled."""
    calls = []
    for fn in (a, b):
        fn()
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < 0.02 or n < 5:
            fn()
            n += 1
        per = (time.perf_counter() - t0) / n
        calls.append(max(3, int(seconds / rounds / 2 / per)))
    times: list[list[float]] = [[], []]
    for r in range(rounds):
        for i in (0, 1) if r % 2 == 0 else (1, 0):
            fn, n = (a, b)[i], calls[i]
            t0 = time.process_time()
            for _ in range(n):
                fn()
            times[i].append((time.process_time() - t0) / n)
    ratios = [x / y if y > 0 else float("inf") for x, y in zip(*times, strict=True)]
    return Pair(statistics.median(times[0]), statistics.median(times[1]),
                statistics.median(ratios))


def _one_row_call(model: LoadedModel, x: Any) -> Callable[[], Any]:
    """The server's one-row path (``Job.run``'s): a class code, or a value."""
    if model.is_classifier:
        return lambda: model.predict_row_code(x)
    rows = Rows(1, array=x.reshape(1, -1))
    return lambda: model.predict_values(rows)


def _batch_call(model: LoadedModel, X: Any) -> Callable[[], Any]:
    rows = Rows(len(X), array=X)
    if model.is_classifier:
        return lambda: model.predict_codes(rows)
    return lambda: model.predict_values(rows)


def _measure(entry: Entry, seconds: float) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings of the small models
        est, data = entry.train()
    model = build(est, entry.name, sha256="0" * 64, source=f"perf:{entry.name}")
    base = np.asarray(data, dtype=np.float64)[:64]  # training rows, perturbed by 1%
    X = np.ascontiguousarray(base * (1 + np.random.default_rng(0).normal(0, 0.01, base.shape)))
    x = np.ascontiguousarray(X[0])
    one = paired(lambda: est.predict(X[:1]), _one_row_call(model, x), seconds)
    batch = paired(lambda: est.predict(X), _batch_call(model, X), seconds)
    out: dict[str, Any] = {"name": entry.name, "estimator": type(est).__name__,
                           "fast_path": model.info.fast_path}
    for part, pair, target in (("one_row", one, entry.one_target),
                               ("rows_64", batch, entry.batch_target)):
        wanted = target if target is not None else 1.0 / (1.0 + SLOWER_AT_MOST)
        out[part] = {"sklearn_s": pair.a_s, "fishpredict_s": pair.b_s, "speedup": pair.ratio,
                     "target": wanted, "met": bool(pair.ratio >= wanted)}
    return out


def _noise(seconds: float) -> float:
    """How far from 1x the method puts a call against itself (a 1-row SVC)."""
    from sklearn import datasets
    from sklearn.svm import SVC

    X, y = datasets.load_iris(return_X_y=True)
    est = SVC().fit(X, y)
    row = np.ascontiguousarray(X[:1])
    return abs(paired(lambda: est.predict(row), lambda: est.predict(row), seconds).ratio - 1)


def _ratio_text(speed: float) -> str:
    """Two decimals near 1x (where the 10% line is), one above."""
    return f"{speed:.2f}x" if speed < 10 else f"{speed:.1f}x"


def _target_text(r: dict[str, Any], fast: bool) -> str:
    return f">= {r['target']:g}x" if fast else f"<= {SLOWER_AT_MOST:.0%} slower"


def _table(results: list[dict[str, Any]]) -> str:
    rows: list[tuple[str, ...]] = [(
        "model", "estimator", "fast path", "1 row sklearn us", "1 row fishpredict us",
        "ratio", "target", "", "64 rows sklearn us", "64 rows fishpredict us", "ratio",
        "target", "")]
    for r in results:
        fast = r["fast_path"] is not None
        line: list[str] = [r["name"], r["estimator"], r["fast_path"] or "-"]
        for part in ("one_row", "rows_64"):
            p = r[part]
            line += [f"{p['sklearn_s'] * 1e6:.1f}", f"{p['fishpredict_s'] * 1e6:.1f}",
                     _ratio_text(p["speedup"]), _target_text(p, fast), verdict(p["met"])]
        rows.append(tuple(line))
    return table(rows)


def run(*, quick: bool = False, seconds: float | None = None, only: tuple[str, ...] = (),
        say: Say = print, http: bool = True) -> dict[str, Any]:
    """Train the zoo, time every model's one-row and 64-row predict both ways, print one
    table and return its figures. ``only`` keeps the models whose names start with one
    of its strings; ``seconds`` is the time per pair of figures. ``http``: also
    micro-batching on vs off over HTTP (:mod:`fishpredict.perf.modelbatching`)."""
    secs = seconds if seconds is not None else (0.5 if quick else 3.0)
    entries = [e for e in _zoo(quick) if not only or e.name.startswith(only)]
    say(header("fishpredict perf models"))
    say(load_line("before"))
    say("# one row: LoadedModel.predict_row_code (classifiers) or predict_values "
        "(regressors), the server's path, vs estimator.predict on the same (1, d) row; "
        "64 rows: predict_codes / predict_values vs estimator.predict; CPU time per call "
        f"(process_time), both back to back in {ROUNDS} rounds, {secs:g} s per pair; the "
        "times are the medians of the rounds, the ratio the median of the rounds' ratios")
    results = [_measure(e, secs) for e in entries]
    noise = _noise(secs)
    say(f"# noise: the same scikit-learn call timed against itself: {1 + noise:.3f}x")
    say("")
    say(table_text := _table(results))
    missed = [f"{r['name']} ({part})" for r in results for part in ("one_row", "rows_64")
              if not r[part]["met"]]
    say(f"\ntargets: {len(results) * 2 - len(missed)} of {len(results) * 2} met"
        + (f"; NOT MET: {', '.join(missed)}" if missed else ""))
    batching = None
    if http:
        batching = http_part(quick=quick, say=say)
    say(load_line("after"))
    return {"models": results, "table": table_text, "noise": noise,
            "all_met": not missed and (batching is None or batching["met"]),
            "seconds_per_measurement": secs, "http_batching": batching}
