"""``fishpredict cluster up`` options (fishpredict/cli/cluster.py) into a ClusterConfig:
--models [NAME=]PATH (repeatable, made absolute for the replicas) and --trust reach
every replica's ``serve`` command line; --containers' options and errors that need no
engine. tests/ops/test_cluster.py runs real clusters, tests/ops/test_containers.py
container ones."""

from __future__ import annotations

import os
import subprocess
import sys
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


# ---- --containers: what is refused before any engine is asked ---------------------------------


def _cli(*args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, **({"PATH": path} if path is not None else {}))
    return subprocess.run([sys.executable, "-m", "fishpredict", *args], capture_output=True,
                          text=True, timeout=120, check=False, env=env)


@pytest.mark.parametrize(("args", "message"), [
    (["--engine", "podman"], "--engine needs --containers"),
    (["--build"], "--build needs --containers"),
    (["--containers", "--nginx", "/usr/sbin/nginx"], "--nginx names the host's nginx"),
    (["--containers", "--engine", "lxc"], "Invalid value for '--engine'"),
])
def test_container_options_misused_are_usage_errors(args: list[str], message: str) -> None:
    done = _cli("cluster", "up", *args)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr


def test_no_container_engine_is_one_line(tmp_path: Path) -> None:
    done = _cli("cluster", "up", "--containers", "--run-dir", str(tmp_path / "run"),
                path=str(tmp_path))
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "fishpredict cluster: error: no container engine to run: docker: not installed; "
        "podman: not installed"]


def test_a_damaged_container_state_is_one_line_for_status_down_and_up(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "containers.json").write_text('{"version": 99}')
    for command in ("status", "down"):
        done = _cli("cluster", command, "--run-dir", str(run))
        assert done.returncode == 1, done.stderr
        assert done.stderr.splitlines() == [
            f"fishpredict cluster: error: {run / 'containers.json'} is not a fishpredict "
            "container state file"]
    done = _cli("cluster", "up", "--run-dir", str(run))  # a process cluster is refused there
    assert done.returncode == 1
    assert "a container cluster is up in" in done.stderr and len(done.stderr.splitlines()) == 1


def test_models_are_mounted_read_only_where_the_replicas_look(tmp_path: Path) -> None:
    from fishpredict.errors import ClusterError
    from fishpredict.ops.containers import ContainerCluster, ContainerConfig

    model = tmp_path / "own" / "rf.joblib"
    model.parent.mkdir()
    model.write_bytes(b"x")
    config = ContainerConfig(run_dir=tmp_path / "run", workers_per_replica=2, fast_path=False,
                             serve_args=("--models", f"rf={model}", "--models",
                                         str(model.parent), "--trust"))
    argv, mounts = ContainerCluster(config)._serve_argv()
    assert argv == ["fishpredict", "serve", "--backend", "socket", "--host", "0.0.0.0",
                    "--port", "8080", "--workers", "2", "--no-fast-path",
                    "--models", "rf=/models/0/rf.joblib", "--models", "/models/1/own",
                    "--trust"]
    assert mounts == ["--volume", f"{model}:/models/0/rf.joblib:ro",
                      "--volume", f"{model.parent}:/models/1/own:ro"]
    missing = ContainerConfig(run_dir=tmp_path / "run", serve_args=("--models", "/nonexistent"))
    with pytest.raises(ClusterError, match="--models /nonexistent: no such file"):
        ContainerCluster(missing)._serve_argv()


def test_images_are_built_from_a_checkout_or_not_at_all(tmp_path: Path) -> None:
    from fishpredict.errors import ClusterError
    from fishpredict.ops.engine import Engine, source_dir

    root = Path(__file__).resolve().parents[2]
    assert source_dir() == root == source_dir(root)
    with pytest.raises(ClusterError, match=r"no docker/Dockerfile in .*pass --source DIR"):
        source_dir(tmp_path)
    with pytest.raises(ClusterError, match="must be docker or podman, got 'lxc'"):
        Engine.find("lxc")
