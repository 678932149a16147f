"""The fast path answers exactly what scikit-learn answers, ties included."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from fishpredict import artifacts, fastknn
from fishpredict.dataset import load_fish

KS = (1, 2, 3, 4, 5, 15, 25, 48, 49)


def tie_world() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training points on a small integer grid (many duplicates, random labels)
    and queries on the half-grid: almost every query has several training
    points at exactly its k-th distance."""
    rng = np.random.default_rng(11)
    X = rng.integers(0, 6, (60, 2)).astype(np.float64)
    y = rng.integers(0, 2, 60)
    queries = np.array([[a / 2, b / 2] for a in range(13) for b in range(13)])
    return X, y, queries


def naive_codes(fast: fastknn.FastKNN, X: np.ndarray) -> np.ndarray:
    """What a fast path without boundary-tie detection would answer."""
    Z = fast._transform(X)
    d2 = (Z[:, 0:1] - fast._fit_t[0]) ** 2 + (Z[:, 1:2] - fast._fit_t[1]) ** 2
    idx = np.argsort(d2, axis=1, kind="stable")[:, : fast.k]
    votes = fast._one_hot[idx].sum(axis=1)
    return np.argmax(votes, axis=1)


@pytest.mark.parametrize("algorithm", ["brute", "kd_tree", "ball_tree"])
@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 6, 8, 12])
def test_adversarial_ties_match_sklearn(algorithm: str, k: int) -> None:
    X, y, queries = tie_world()
    est = KNeighborsClassifier(n_neighbors=k, algorithm=algorithm).fit(X, y)
    fast = fastknn.compile_knn(est)
    assert fast is not None
    expected = est.predict(queries)
    assert list(fast.predict(queries)) == list(expected)
    ones = [fast.classes[fast.predict_one(a, b)] for a, b in queries]
    assert ones == list(expected)


def test_ties_are_where_a_naive_version_parts() -> None:
    """The tie world has teeth: without tie detection some answers differ."""
    X, y, queries = tie_world()
    differ = 0
    for k in range(1, 13):
        for algorithm in ("brute", "kd_tree", "ball_tree"):
            est = KNeighborsClassifier(n_neighbors=k, algorithm=algorithm).fit(X, y)
            fast = fastknn.compile_knn(est)
            assert fast is not None
            naive = fast.classes[naive_codes(fast, queries)]
            differ += int(np.count_nonzero(naive != est.predict(queries)))
            assert np.array_equal(fast.predict(queries), est.predict(queries))
    assert differ > 0


@pytest.mark.parametrize("scale", [None, "standard"])
@pytest.mark.parametrize("k", KS)
def test_seed_models_on_check_set(k: int, scale: artifacts.Scale) -> None:
    est = artifacts.train(k, scale=scale)
    fast = fastknn.compile_knn(est)
    assert fast is not None
    fish = load_fish()
    X = fastknn.check_set(fish.X, n_random=5000, seed=k)
    assert np.array_equal(fast.predict(X), est.predict(X))
    assert fastknn.check(fast) == 0


def test_large_batch_spans_chunks() -> None:
    est = artifacts.train(5)
    fast = fastknn.compile_knn(est)
    assert fast is not None
    rng = np.random.default_rng(3)
    X = np.column_stack(
        [
            rng.uniform(5, 45, 3 * fastknn.CHUNK_ROWS + 17),
            rng.uniform(0, 1100, 3 * fastknn.CHUNK_ROWS + 17),
        ]
    )
    assert np.array_equal(fast.predict(X), est.predict(X))


@pytest.mark.parametrize(
    "estimator",
    [
        KNeighborsClassifier(n_neighbors=3, weights="distance"),
        KNeighborsClassifier(n_neighbors=3, p=1),
        KNeighborsClassifier(n_neighbors=3, metric="chebyshev"),
        Pipeline([("s", MinMaxScaler()), ("k", KNeighborsClassifier(3))]),
        LogisticRegression(),
    ],
    ids=["distance-weights", "manhattan", "chebyshev", "minmax-pipeline", "logistic"],
)
def test_uncovered_models_get_no_fast_path(estimator: object) -> None:
    fish = load_fish()
    est = estimator.fit(fish.X, fish.y)  # type: ignore[attr-defined]
    assert fastknn.compile_knn(est) is None


def test_covered_variants() -> None:
    fish = load_fish()
    for est in (
        KNeighborsClassifier(3, metric="euclidean"),
        KNeighborsClassifier(3, p=2, algorithm="brute"),
        Pipeline([("s", StandardScaler()), ("k", KNeighborsClassifier(3))]),
    ):
        est.fit(fish.X, fish.y)
        fast = fastknn.compile_knn(est)
        assert fast is not None
        assert fastknn.check(fast) == 0


def test_check_counts_disagreements() -> None:
    """check() reports differences when the fast path is wrong (here: sabotaged)."""
    est = artifacts.train(5)
    fast = fastknn.compile_knn(est)
    assert fast is not None
    fast._one_hot = fast._one_hot[:, ::-1].copy()  # swap the classes' votes
    assert fastknn.check(fast) > 0


def test_three_classes_with_ties_match_sklearn() -> None:
    X, _, queries = tie_world()
    y = np.random.default_rng(5).integers(0, 3, len(X))
    for k in (1, 2, 3, 5, 8):
        est = KNeighborsClassifier(n_neighbors=k, algorithm="kd_tree").fit(X, y)
        fast = fastknn.compile_knn(est)
        assert fast is not None
        assert np.array_equal(fast.predict(queries), est.predict(queries))
        assert [fast.classes[fast.predict_one(a, b)] for a, b in queries] == list(
            est.predict(queries)
        )


@pytest.mark.parametrize("k", [1, 5, 15, 25])
def test_ties_that_cannot_change_the_vote_are_settled_without_sklearn(k: int) -> None:
    """Generated data sits on a 0.1 grid: exact ties are common, yet the vote
    rarely depends on them, so scikit-learn is asked about almost no row."""
    from fishpredict import synth

    X, _ = synth.sample(50_000, seed=3)
    est = artifacts.train(k)
    fast = fastknn.compile_knn(est)
    assert fast is not None
    asked: list[int] = []

    class Spy:
        def predict(self, rows: np.ndarray) -> np.ndarray:
            asked.append(len(rows))
            return est.predict(rows)

    fast.fallback = Spy()
    assert np.array_equal(fast.predict(X), est.predict(X))
    assert sum(asked) < len(X) // 1000


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("k", [1, 5, 25])
def test_huge_values_match_sklearn_without_warnings(k: int) -> None:
    """Squared distances overflow near 1e154; those rows go to scikit-learn."""
    import warnings

    est = artifacts.train(k)
    fast = fastknn.compile_knn(est)
    assert fast is not None
    X = np.array([[1e308, 1e308], [1e200, 5.0], [30.0, 600.0], [1e154, 1e154], [0.0, 1e160]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's own overflow warnings
        expected = est.predict(X)
        ours = fast.predict(X)
        ones = [fast.classes[fast.predict_one(a, b)] for a, b in X]
    assert list(ours) == list(expected) == ones
    fast.predict(X)  # and our own path raises no warning (filterwarnings=error)


def generated_knn(rows: int, k: int = 5) -> KNeighborsClassifier:
    from fishpredict import synth

    X, y = synth.sample(rows, seed=rows)
    return KNeighborsClassifier(n_neighbors=k).fit(X, y)


def test_a_larger_training_set_batches_through_sklearn_and_answers_one_row_here() -> None:
    est = generated_knn(fastknn.BATCH_MAX_TRAIN * 8)
    fast = fastknn.compile_knn(est)
    assert fast is not None
    X = fastknn.check_set(np.asarray(est._fit_X), n_random=3000, seed=1)
    want = np.searchsorted(fast.classes, est.predict(X))
    assert np.array_equal(fast.predict_codes(X), want)
    one = [fast.predict_one(float(a), float(b)) for a, b in X[::7]]
    assert one == list(want[::7])
    assert fastknn.check(fast) == 0


def test_the_check_set_is_bounded_for_large_training_sets() -> None:
    m = 5000  # 12.5 million pairs: every midpoint would take minutes to check
    X = np.random.default_rng(0).uniform(1, 100, (m, 2))
    got = fastknn.check_set(X, n_random=100)
    assert len(got) == m + fastknn.CHECK_MAX_PAIRS + (m - 1) + 100
    small = load_fish().X
    assert len(fastknn.check_set(small, n_random=0)) == 49 + 49 * 48 // 2


def test_training_sets_past_the_one_row_limit_get_no_fast_path() -> None:
    est = generated_knn(fastknn.ONE_MAX_TRAIN + 1)
    assert fastknn.compile_knn(est) is None


def test_a_sabotaged_one_row_path_is_caught_by_the_check() -> None:
    est = generated_knn(fastknn.BATCH_MAX_TRAIN * 8)
    fast = fastknn.compile_knn(est)
    assert fast is not None and fastknn.check(fast) == 0
    fast._y_codes = 1 - fast._y_codes  # only the one-row path reads these for 2 classes
    assert fastknn.check(fast) > 0
