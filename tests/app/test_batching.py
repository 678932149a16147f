"""Micro-batching is exact: every caller gets the answer for its own row."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import numpy as np
import pytest

from fishpredict import Predictor
from fishpredict.app.batching import MicroBatcher
from fishpredict.app.messages import Answer, Job
from fishpredict.fish.dataset import load_fish
from fishpredict.models.build import build
from fishpredict.models.loaded import LoadedModel
from fishpredict.models.rows import Rows


class PickyModel:
    """A fitted-looking estimator that refuses any batch holding length 13."""

    classes_ = np.array([0, 1])
    n_features_in_ = 2

    def __init__(self) -> None:
        self.calls: list[int] = []

    def predict(self, X: np.ndarray) -> np.ndarray:
        self.calls.append(len(X))
        if (X[:, 0] == 13.0).any():
            raise ValueError("unlucky fish")
        return (X[:, 0] > 20).astype(int)


def one(model: LoadedModel, x: float, w: float, *, proba: bool = False) -> Job:
    """A one-row job, as a protocol decodes it."""
    return Job(model, Rows(1, array=np.array([[x, w]], dtype=np.float64)), proba=proba)


def code(answer: Answer) -> int:
    assert answer.codes is not None and answer.codes.shape == (1,)
    return int(answer.codes[0])


def rows(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(8, 45, n), rng.uniform(5, 1100, n)])


def test_each_caller_gets_its_own_answer_mixed_k() -> None:
    p = Predictor(fast_path=False)
    X = rows(600)
    ks = [p.ks[i % len(p.ks)] for i in range(len(X))]
    expected = [code(one(p.model(k), x, w).run()) for (x, w), k in zip(X, ks, strict=True)]
    batcher = MicroBatcher(max_batch=64)

    async def main() -> list[Answer]:
        return await asyncio.gather(*[
            batcher.submit(one(p.model(k), float(x), float(w)))
            for (x, w), k in zip(X, ks, strict=True)])

    assert [code(a) for a in asyncio.run(main())] == expected
    assert batcher.rows == len(X)
    assert batcher.calls < len(X) / 10  # they really were coalesced
    batcher.close()


def test_lone_request_goes_at_once() -> None:
    p = Predictor(fast_path=False)
    batcher = MicroBatcher(max_batch=64, wait_us=500_000)  # a long wait would show

    async def main() -> tuple[int, float]:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        answer = await batcher.submit(one(p.model(5), 30.0, 600.0))
        return code(answer), loop.time() - t0

    got, elapsed = asyncio.run(main())
    assert p.model(5).info.classes[got] == 1
    assert elapsed < 0.25  # did not wait for company
    assert batcher.calls == 1
    batcher.close()


def test_max_batch_is_respected() -> None:
    p = Predictor(fast_path=False)
    sizes: list[int] = []
    model = p.model(5)
    orig = model.estimator.predict

    class Spy:
        def __getattr__(self, name: str) -> Any:
            return getattr(model.estimator, name)

        def predict(self, X: np.ndarray) -> np.ndarray:
            sizes.append(len(X))
            return orig(X)

    spied = dataclasses.replace(model, estimator=Spy())
    batcher = MicroBatcher(max_batch=16)

    async def main() -> list[Answer]:
        return await asyncio.gather(*[
            batcher.submit(one(spied, float(x), float(w))) for x, w in rows(100, 1)])

    asyncio.run(main())
    assert max(sizes) <= 16 and sum(sizes) == 100
    batcher.close()


def test_failing_row_fails_only_its_request() -> None:
    est = PickyModel()
    model = build(est, "picky", sha256="0" * 64, source="test", fast_path=True)
    assert model.fast is None
    batcher = MicroBatcher(max_batch=32)
    data = [(30.0, 500.0), (13.0, 10.0), (10.0, 8.0), (25.0, 300.0)] * 5

    async def main() -> list[Any]:
        return await asyncio.gather(
            *[batcher.submit(one(model, x, w)) for x, w in data], return_exceptions=True)

    results = asyncio.run(main())
    for (x, _), r in zip(data, results, strict=True):
        if x == 13.0:
            assert isinstance(r, ValueError) and "unlucky fish" in str(r)
        else:
            assert code(r) == int(x > 20)
    batcher.close()


def test_service_batches_concurrent_fish_requests() -> None:
    from fishpredict.app.config import ServeConfig
    from fishpredict.app.service import Service

    fish = load_fish()
    service = Service(Predictor(fast_path=False), ServeConfig(batch_max=128))
    assert service.batcher is not None

    async def main() -> list[bytes]:
        rs = await asyncio.gather(*[
            service.handle_async("GET", "/fish", f"length={x}&weight={w}&k=1", {})
            for x, w in fish.X])
        return [r.body for r in rs]

    bodies = asyncio.run(main())
    labels = [b'"bream"' in b for b in bodies]
    assert labels == [bool(v) for v in fish.y]
    assert service.batcher.calls < len(fish.X)


@pytest.mark.parametrize("bad", [0, -1])
def test_max_batch_must_be_positive(bad: int) -> None:
    with pytest.raises(ValueError):
        MicroBatcher(max_batch=bad)


def test_probabilities_are_batched_per_row() -> None:
    p = Predictor(fast_path=False)
    model = p.model(15)
    X = rows(200, 2)
    expected = model.estimator.predict_proba(X)
    batcher = MicroBatcher(max_batch=64)

    async def main() -> list[Answer]:
        return await asyncio.gather(*[
            batcher.submit(one(model, float(x), float(w), proba=True)) for x, w in X])

    answers = asyncio.run(main())
    got = np.vstack([a.proba for a in answers if a.proba is not None])
    assert got.shape == expected.shape and np.array_equal(got, expected)
    assert batcher.calls < len(X) / 10


class DroppingModel:
    """Answers only rows whose length is not 13: a batch's output is short; 7 divides by 0."""

    classes_ = np.array([0, 1])
    n_features_in_ = 2

    def predict(self, X: np.ndarray) -> np.ndarray:
        if (X[:, 0] == 7.0).any():
            raise ZeroDivisionError("float division by zero")
        kept = X[X[:, 0] != 13.0]
        return (kept[:, 0] > 20).astype(int)


def test_a_short_output_never_crosses_answers() -> None:
    """The batch's output is one row short: it is retried row by row; only the requests
    whose own row is dropped (or raises) fail, each with the model's 500."""
    from fishpredict.errors import ModelFailedError

    model = build(DroppingModel(), "dropping", sha256="0" * 64, source="test")
    batcher = MicroBatcher(max_batch=64)
    data = [(30.0, 500.0), (13.0, 10.0), (10.0, 8.0), (7.0, 1.0), (25.0, 300.0)] * 6

    async def main() -> list[Any]:
        return await asyncio.gather(
            *[batcher.submit(one(model, x, w)) for x, w in data], return_exceptions=True)

    results = asyncio.run(main())
    for (x, _), r in zip(data, results, strict=True):
        if x in (13.0, 7.0):
            assert isinstance(r, ModelFailedError) and r.status == 500, r
            assert "'dropping'" in str(r)
            assert ("0 rows for 1" in str(r)) if x == 13.0 else ("ZeroDivisionError" in str(r))
        else:
            assert code(r) == int(x > 20)
