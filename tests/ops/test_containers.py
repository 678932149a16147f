"""docker/'s images and compose stacks, and ``fishpredict cluster up --containers``,
built and run for real with a container engine (podman here; Docker works too).

Once per session the base images are pulled, or where no registry can be reached
built as stand-ins by scripts/build-base-images.sh (cached in the engine's store:
a second session reuses them), and docker/'s two images are built (the engine's
layer cache makes a rebuild of unchanged sources take seconds). Then each compose
stack is brought up, waited for through nginx's ``/readyz`` on 127.0.0.1:70,
benched for 5 s with no error, benched again while one replica is SIGKILLed
(under 1% lost), and taken down, leaving no container, pod or network. Every
stack and cluster is removed in a ``finally``, also when a test fails; images stay.

Skipped, with the reason, only where no engine can run a container. .ci/run sets
FISHPREDICT_REQUIRE_CONTAINERS=1, which turns that skip into a failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml
from dockerfile_parse import DockerfileParser

from fishpredict.errors import ClusterError
from fishpredict.ops.containers import LABEL, ContainerCluster, ContainerConfig
from fishpredict.ops.engine import Engine, ensure_images
from fishpredict.ops.health import probe
from fishpredict.server.ports import free_port

# one engine and loopback port 70 for all: under xdist, keep them on one worker
pytestmark = [pytest.mark.containers, pytest.mark.xdist_group("containers"),
              pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
BACKENDS = ("socket", "starlette", "aiohttp")
BENCH_SECONDS = 5
#: the fraction of requests a replica's SIGKILL may cost
MAX_LOSS = 0.01
REQUIRE = os.environ.get("FISHPREDICT_REQUIRE_CONTAINERS") == "1"


def unavailable(reason: str) -> NoReturn:
    if REQUIRE:
        pytest.fail(f"{reason} (FISHPREDICT_REQUIRE_CONTAINERS=1)")
    pytest.skip(reason)


def base_images() -> list[str]:
    names: list[str] = []
    for path in (DOCKER / "Dockerfile", DOCKER / "nginx" / "Dockerfile"):
        names += [n for n in DockerfileParser(str(path)).parent_images if n not in names]
    return names


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """An engine that runs containers, with docker/'s images built from this tree."""
    try:
        found = Engine.find(os.environ.get("FISHPREDICT_TEST_ENGINE"))
    except ClusterError as exc:
        unavailable(str(exc))
    started = time.monotonic()
    missing = [image for image in base_images() if not found.image_exists(image)]
    for image in missing:  # a machine that reaches a registry takes the real images
        found.run(["pull", image], timeout=300, check=False)
    if any(not found.image_exists(image) for image in missing):
        if os.geteuid() != 0 or not (shutil.which("debootstrap") or
                                     os.access("/usr/sbin/debootstrap", os.X_OK)):
            unavailable(f"base images {missing} cannot be pulled, and their stand-ins need "
                        "root and debootstrap (scripts/build-base-images.sh)")
        done = subprocess.run(
            ["bash", str(ROOT / "scripts" / "build-base-images.sh"), "--engine", found.name],
            capture_output=True, text=True, timeout=900, check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    base_s = time.monotonic() - started
    trial = found.run(["run", "--rm", "--network", "none", base_images()[0], "true"],
                      timeout=120, check=False)
    if trial.returncode != 0:
        unavailable(f"{found.name} cannot run a container here: "
                    f"{(trial.stderr or trial.stdout).strip().splitlines()[-1:]} "
                    "(docs/cluster.md: podman on a host like CI's)")
    started = time.monotonic()
    logs = tmp_path_factory.mktemp("image-builds")
    ensure_images(found, logs, ROOT, rebuild=True)
    build_s = time.monotonic() - started
    print(f"\ncontainers: base images {base_s:.0f} s, docker/ images {build_s:.0f} s")
    return found


# ---- helpers --------------------------------------------------------------------------


def bench(url: str, seconds: float, out: Path,
          during: Callable[[], None] | None = None, at: float = 0.0) -> dict[str, Any]:
    """``fishpredict bench`` for ``seconds``; ``during`` runs ``at`` s after its start,
    while it is still running. Its JSON result."""
    argv = [sys.executable, "-m", "fishpredict", "bench", url, "--duration", str(seconds),
            "--threads", "8", "--quiet", "--json", str(out)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        if during is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(at)  # the bench runs `seconds`: it must not be over by now
            assert proc.poll() is None, "the bench ended before the fault"
            during()
        output, _ = proc.communicate(timeout=seconds + 60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def assert_true(value: bool) -> None:
    assert value


def lost(result: dict[str, Any]) -> float:
    share = int(result["error_count"]) / max(1, int(result["requests"]))
    print(f"  bench {result['url']}: {result['requests']} requests, "
          f"{result['error_count']} errors ({share:.3%}), max {result['latency_ms']['max']} ms")
    return share


def assert_clean_bench(result: dict[str, Any]) -> None:
    assert lost(result) == 0.0, result["errors"]
    assert result["requests"] > 1000, result
    assert result["error_count"] == 0, result["errors"]
    assert result["correct"] == result["checked"] == result["requests"]


def wait_ready(port: int, alive: Callable[[], bool], timeout: float = 120) -> None:
    """Until nginx on 127.0.0.1:``port`` answers /readyz 200; fails at once if a
    container is gone (``alive``), or after ``timeout``."""
    deadline = time.monotonic() + timeout
    health = ""
    while time.monotonic() < deadline:
        health = probe("127.0.0.1", port, timeout=1.0)
        if health == "ready":
            return
        assert alive(), f"a container exited before nginx was ready (last /readyz: {health})"
        time.sleep(0.1)
    pytest.fail(f"nginx on :{port} not ready within {timeout:g} s (last /readyz: {health})")


def ids(engine: Engine, what: str, label: str) -> list[str]:
    args = [what, "ls"] if what in ("network", "pod") else ["ps", "--all"]
    return engine.out([*args, "--quiet", "--filter", f"label={label}"]).split()


# ---- the compose stacks ----------------------------------------------------------------


def compose_command(engine: Engine, backend: str) -> list[str]:
    file = str(DOCKER / f"compose.{backend}.yaml")
    if engine.name == "podman":  # podman-compose, a test dependency
        return [sys.executable, "-m", "podman_compose", "-f", file]
    return [engine.path, "compose", "-f", file]


def published_port(backend: str) -> int:
    spec = yaml.safe_load((DOCKER / f"compose.{backend}.yaml").read_text())
    return int(spec["services"]["nginx"]["ports"][0].split(":")[1])


def remove_project(engine: Engine, project: str) -> None:
    """Whatever of the compose project is left: containers, pod, network."""
    label = f"com.docker.compose.project={project}"
    if found := ids(engine, "container", label):
        engine.run(["rm", "--force", *found], check=False)
    if engine.name == "podman":
        engine.run(["pod", "rm", "--force", "--ignore", f"pod_{project}"], check=False)
    for net in ids(engine, "network", label):
        engine.run(["network", "rm", net], check=False)


@contextlib.contextmanager
def compose_stack(engine: Engine, backend: str) -> Iterator[str]:
    project = f"fishpredict-{backend}"
    remove_project(engine, project)  # a stack an earlier, killed run left
    command = compose_command(engine, backend)
    try:
        done = subprocess.run([*command, "up", "-d"], capture_output=True, text=True,
                              timeout=300, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        yield project
    finally:
        subprocess.run([*command, "down"], capture_output=True, timeout=300, check=False)
        remove_project(engine, project)


@pytest.mark.parametrize("backend", BACKENDS)
def test_compose_stack_serves_loses_under_1pct_to_a_replica_kill_and_goes_away(
    engine: Engine, backend: str, tmp_path: Path
) -> None:
    port = published_port(backend)
    label = f"com.docker.compose.project=fishpredict-{backend}"

    def service(name: str) -> str:
        found = ids(engine, "container", label)
        named = engine.out(["ps", "--all", "--quiet", "--filter", f"label={label}",
                            "--filter", f"label=com.docker.compose.service={name}"]).split()
        assert len(named) == 1 and named[0] in found, (name, named)
        return named[0]

    def all_running() -> bool:
        return all(engine.state(c)[0] for c in ids(engine, "container", label))

    with compose_stack(engine, backend):
        # podman-compose starts nginx before the replicas are ready (it ignores
        # condition: service_healthy): nginx's own settings must carry that
        wait_ready(port, all_running)
        url = f"http://127.0.0.1:{port}"
        assert_clean_bench(bench(url, BENCH_SECONDS, tmp_path / "bench.json"))

        victim = service("ml-1")
        killed = bench(url, BENCH_SECONDS, tmp_path / "kill.json", at=1.5,
                       during=lambda: engine.run(["kill", victim]))
        if engine.name == "podman":  # Docker may restart it (restart: unless-stopped)
            assert not engine.state(victim)[0], "ml-1 still runs"
        assert killed["requests"] > 1000
        assert lost(killed) < MAX_LOSS, killed["errors"]
        assert killed["timeline"][-1]["successes"] > 0, "nothing served after the kill"

        done = subprocess.run([*compose_command(engine, backend), "down"],
                              capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        assert ids(engine, "container", label) == []
        assert ids(engine, "network", label) == []
        if engine.name == "podman":
            assert engine.run(["pod", "exists", f"pod_fishpredict-{backend}"],
                              check=False).returncode != 0


# ---- fishpredict cluster up --containers ---------------------------------------------------


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fishpredict", *args], capture_output=True,
                          text=True, timeout=900, check=False)


def test_cluster_up_containers_bench_kill_status_down(engine: Engine, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    port = free_port()
    cluster = ContainerCluster(ContainerConfig(run_dir=run_dir))
    label = f"{LABEL}={cluster.tag}"
    try:
        up = cli("cluster", "up", "--containers", "--engine", engine.name, "--replicas", "2",
                 "--port", str(port), "--run-dir", str(run_dir))
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"in {engine.name} containers behind nginx on http://127.0.0.1:{port}" in up.stdout
        status = cli("cluster", "status", "--run-dir", str(run_dir), "--json")
        assert status.returncode == 0, status.stdout + status.stderr
        doc = json.loads(status.stdout)
        assert doc["healthy"] and [p["role"] for p in doc["processes"]] == [
            "nginx", "replica-0", "replica-1"]

        url = f"http://127.0.0.1:{port}"
        assert_clean_bench(bench(url, BENCH_SECONDS, tmp_path / "bench.json"))
        killed = bench(url, BENCH_SECONDS, tmp_path / "kill.json", at=1.5,
                       during=lambda: assert_true(cluster.kill_replica(0)))
        assert lost(killed) < MAX_LOSS, killed["errors"]
        assert killed["timeline"][-1]["successes"] > 0

        status = cli("cluster", "status", "--run-dir", str(run_dir))
        assert status.returncode == 1 and "NOT healthy" in status.stdout
        assert [ln.split()[5] for ln in status.stdout.splitlines()[1:]] == [
            "alive", "dead", "alive"], status.stdout

        # back: same container, nginx looks its address up again
        cluster.restart_replica(0)
        assert cluster.status().healthy
        assert_clean_bench(bench(url, 2, tmp_path / "again.json"))

        down = cli("cluster", "down", "--run-dir", str(run_dir))
        assert down.returncode == 0 and "stopped" in down.stdout, down.stdout + down.stderr
        assert ids(engine, "container", label) == []
        assert ids(engine, "network", label) == []
        assert (run_dir / "replica-0.log").read_text().count("fishpredict: serving") == 2
        again = cli("cluster", "status", "--run-dir", str(run_dir))
        assert again.returncode != 0 and "no cluster" in again.stderr
    finally:
        with contextlib.suppress(ClusterError):
            cluster.down()


def test_cluster_up_containers_failing_replica_leaves_nothing(
    engine: Engine, tmp_path: Path
) -> None:
    """A replica that cannot start (an unloadable model): one line, exit 1, nothing left."""
    bad = tmp_path / "models" / "broken.joblib"
    bad.parent.mkdir()
    bad.write_bytes(b"not a model")
    run_dir = tmp_path / "run"
    cluster = ContainerCluster(ContainerConfig(run_dir=run_dir))
    try:
        up = cli("cluster", "up", "--containers", "--engine", engine.name, "--replicas", "1",
                 "--port", str(free_port()), "--run-dir", str(run_dir), "--models", str(bad),
                 "--trust", "--startup-timeout", "60")
        assert up.returncode == 1, up.stdout + up.stderr
        lines = up.stderr.strip().splitlines()
        assert len(lines) == 1 and "replica-0" in lines[0], up.stderr
        assert "Traceback" not in up.stderr
        label = f"{LABEL}={cluster.tag}"
        assert ids(engine, "container", label) == []
        assert ids(engine, "network", label) == []
        assert not (run_dir / "containers.json").exists()
    finally:
        with contextlib.suppress(ClusterError):
            cluster.down()


def test_a_base_image_that_cannot_be_pulled_is_one_line_with_the_way_out(
    engine: Engine, tmp_path: Path
) -> None:
    (tmp_path / "Dockerfile").write_text("FROM docker.io/library/fishpredict-no-such-base:0.0\n")
    with pytest.raises(ClusterError) as exc:
        engine.build(tmp_path / "Dockerfile", tmp_path, "fishpredict-never-built:0",
                     tmp_path / "build.log")
    message = str(exc.value)
    assert "\n" not in message and "build of fishpredict-never-built:0 failed" in message
    assert "scripts/build-base-images.sh" in message, message
    assert not engine.image_exists("fishpredict-never-built:0")
