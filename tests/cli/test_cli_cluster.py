"""``fishpredict cluster up`` options (fishpredict/cli/cluster.py) into a ClusterConfig:
--models [NAME=]PATH (repeatable, made absolute for the replicas) and --trust reach
every replica's ``serve`` command line. tests/ops/test_cluster.py runs real clusters."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from fishpredict.cli import main


class FakeCluster:
    configs: ClassVar[list[Any]] = []

    def __init__(self, config: Any) -> None:
        self.configs.append(config)
        self.run_dir = config.run_dir

    def up(self) -> str:
        return "http://127.0.0.1:8070"


def test_models_and_trust_reach_every_replica(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("fishpredict.ops.cluster.Cluster", FakeCluster)
    monkeypatch.chdir(tmp_path)
    assert main(["cluster", "up", "--replicas", "3", "--models", "rf=own/rf.joblib",
                 "--models", "fish", "--trust", "--no-fast-path", "--run-dir", "run"]) == 0
    (config,) = FakeCluster.configs
    assert config.replicas == 3 and config.fast_path is False and config.models is None
    assert config.serve_args == ("--models", f"rf={tmp_path / 'own' / 'rf.joblib'}",
                                 "--models", str(tmp_path / "fish"), "--trust")
    assert "cluster of 3 socket replicas behind nginx" in capsys.readouterr().out


def test_a_bad_port_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["cluster", "up", "--port", "0"])
    assert exc.value.code == 2
    assert "fishpredict cluster up: error: Invalid value for '--port'" in capsys.readouterr().err
