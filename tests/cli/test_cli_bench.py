"""``fishpredict bench`` options (fishpredict/cli/bench.py) into a BenchConfig, and a
short real run in each request protocol. tests/bench/test_bench_cli.py has the outputs and
the one-line errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier

from fishpredict.bench import config as bench_config
from fishpredict.cli import bench as bench_cli
from fishpredict.cli import main
from fishpredict.server.process import ServerProcess, start_server


def test_endpoints_are_the_bench_configs() -> None:
    assert bench_cli.ENDPOINTS == bench_config.ENDPOINTS


def test_every_option_reaches_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []

    def fake_run(config: Any, pool: Any = None) -> Any:
        seen.append(config)
        raise SystemExit(0)

    monkeypatch.setattr("fishpredict.bench.run_bench", fake_run)
    with pytest.raises(SystemExit):
        main(["bench", "http://127.0.0.1:8000", "--processes", "2", "--threads", "3",
              "--duration", "1.5", "--endpoint", "v1", "--model", "knn-k5", "--batch-rows",
              "4", "--body", "npy", "--k", "1,5", "--seed", "7", "--no-check", "--header",
              "X-A: b", "--no-uvloop", "--timeout", "2", "--late-ms", "3", "--quiet"])
    (c,) = seen
    assert (c.processes, c.threads, c.duration_s, c.endpoint, c.model) == (
        2, 3, 1.5, "v1", "knn-k5")
    assert (c.batch_rows, c.body, c.ks, c.seed, c.check_answers) == (4, "npy", (1, 5), 7, False)
    assert c.extra_headers == (("X-A", "b"),) and c.use_uvloop is False
    assert (c.timeout_s, c.late_ms, c.progress) == (2.0, 3.0, False)


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with start_server("socket") as srv:
        yield srv


@pytest.mark.parametrize("endpoint", ["fish", "batch", "v2", "v1"])
def test_a_short_run_in_each_protocol_checks_its_answers(
    server: ServerProcess, endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["bench", server.url, "--endpoint", endpoint, "--requests", "40", "--threads",
                 "2", "--batch-rows", "3", "--quiet", "--json", "-"])
    out = capsys.readouterr().out
    assert code == 0, out
    doc = json.loads(out[out.index("\n{") + 1:])
    assert doc["config"]["endpoint"] == endpoint
    assert doc["successes"] == 40 and doc["errors"] == {}


def test_any_models_columns_by_header_name(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """``--endpoint batch|v2|v1 --model NAME --data FILE``: the rows are that model's feature
    columns, read by name from the file (in another order, beside an extra column)."""
    X, y = load_iris(return_X_y=True, as_frame=True)
    joblib.dump(RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y),
                tmp_path / "rf.joblib")
    data = X.iloc[:, ::-1].assign(note="x")
    data.to_csv(tmp_path / "rows.csv", index=False)
    with start_server("socket", "--models", str(tmp_path / "rf.joblib"), "--trust") as srv:
        for endpoint in ("batch", "v2", "v1"):
            code = main(["bench", srv.url, "--endpoint", endpoint, "--model", "rf", "--data",
                         str(tmp_path / "rows.csv"), "--requests", "30", "--threads", "2",
                         "--batch-rows", "5", "--quiet", "--json", "-"])
            out = capsys.readouterr().out
            assert code == 0, out
            doc = json.loads(out[out.index("\n{") + 1:])
            assert doc["successes"] == 30 and doc["errors"] == {}, doc["errors"]
        data.drop(columns=["petal width (cm)"]).to_csv(tmp_path / "short.csv", index=False)
        assert main(["bench", srv.url, "--endpoint", "v2", "--model", "rf", "--data",
                     str(tmp_path / "short.csv"), "--requests", "3", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fishpredict bench: error: ") and err.count("\n") == 1
    assert "short.csv" in err and "petal width (cm)" in err
