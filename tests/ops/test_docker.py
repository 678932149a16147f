"""docker/: the images, the nginx config and the compose files, checked without
running a container (tests/ops/test_containers.py builds and runs them):
Dockerfiles are parsed, compose files are rendered by a real Compose
implementation (``podman-compose config``, over Debian's podman) and validated
against the compose-spec JSON schema (check-jsonschema's built-in
``vendor.compose-spec``), the nginx config must equal its template's rendering
and pass ``nginx -t``, the health-check one-liners are run against a real
``fishpredict serve``, and the host's nginx shows what the backup upstream lines
do for a replica that starts after nginx.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml
from dockerfile_parse import DockerfileParser

from fishpredict.ops import nginx as nginxconf
from fishpredict.server.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
BACKENDS = ("starlette", "aiohttp", "socket")
COMPOSE_FILES = {b: DOCKER / f"compose.{b}.yaml" for b in BACKENDS}


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, value) of a Dockerfile's final stage, comments left out."""
    structure = [
        (s["instruction"], s["value"])
        for s in DockerfileParser(str(path)).structure
        if s["instruction"] != "COMMENT"
    ]
    last_from = max(i for i, (ins, _) in enumerate(structure) if ins == "FROM")
    return structure[last_from:]


def all_from_images(path: Path) -> list[str]:
    images: list[str] = DockerfileParser(str(path)).parent_images
    return images


def exec_form(value: str) -> list[str]:
    """The JSON array of an exec-form CMD/HEALTHCHECK CMD."""
    parsed = json.loads(value)
    assert isinstance(parsed, list) and all(isinstance(a, str) for a in parsed)
    return parsed


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def compose(backend: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILES[backend].read_text())
    return data


def upstream_servers(conf: str, backup: bool = False) -> list[str]:
    """The primary (or the ``backup``) servers of the ml_servers upstream."""
    block = re.search(r"upstream ml_servers \{(.*?)\}", conf, re.S)
    assert block, "no ml_servers upstream"
    lines = re.findall(r"^\s*server\s+(\S+)([^;]*);", block.group(1), re.M)
    return [addr for addr, params in lines if ("backup" in params.split()) == backup]


# ---- the model-server image -------------------------------------------------------------


def test_base_images_are_pinned() -> None:
    for path in (DOCKER / "Dockerfile", DOCKER / "nginx" / "Dockerfile"):
        for image in all_from_images(path):
            _, _, tag = image.partition(":")
            assert tag and tag != "latest", f"{path}: {image} is not pinned to a version"
            assert re.match(r"\d+\.\d+", tag), f"{path}: {image} names no version"
    assert all_from_images(DOCKER / "Dockerfile")[-1] == "python:3.11-slim"
    assert all_from_images(DOCKER / "nginx" / "Dockerfile") == ["nginx:1.25.1"]  # the seed's


def test_server_image_runs_as_non_root_before_cmd() -> None:
    final = instructions(DOCKER / "Dockerfile")
    names = [ins for ins, _ in final]
    assert "USER" in names and "CMD" in names
    user_at = max(i for i, n in enumerate(names) if n == "USER")
    assert user_at < names.index("CMD")
    user = final[user_at][1].split(":")[0]
    assert user not in ("root", "0") and user.isdigit(), "a numeric non-root uid"
    # no instruction after USER needs root
    assert "RUN" not in names[user_at:]


def test_server_image_cmd_binds_all_interfaces_on_the_exposed_port() -> None:
    final = dict(instructions(DOCKER / "Dockerfile"))
    cmd = exec_form(final["CMD"])
    assert cmd[:2] == ["fishpredict", "serve"]
    assert option(cmd, "--host") == "0.0.0.0"
    assert final["EXPOSE"].split() == [option(cmd, "--port")] == ["8080"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "fishpredict" in scripts, "CMD runs the console script pyproject installs"


def test_server_image_installs_the_serve_and_skops_extras() -> None:
    structure = DockerfileParser(str(DOCKER / "Dockerfile")).structure
    runs = " ".join(s["value"] for s in structure if s["instruction"] == "RUN")
    assert '".[serve,skops]"' in runs, "the wheels built"
    assert '"fishpredict[serve,skops]"' in runs, "and installed"
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert {"serve", "skops"} <= set(extras)


def test_server_image_healthcheck_uses_python_not_curl() -> None:
    final = dict(instructions(DOCKER / "Dockerfile"))
    check = final["HEALTHCHECK"]
    argv = exec_form(check[check.index("CMD") + 3 :].strip())
    assert argv[:2] == ["python", "-c"]
    assert "urllib.request" in argv[2] and "/healthz" in argv[2] and ":8080/" in argv[2]
    assert "curl" not in check


def test_copied_sources_exist_and_are_not_dockerignored() -> None:
    ignore = [
        ln.strip()
        for ln in (ROOT / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert ignore[0] == "**", "everything is ignored unless named"
    allowed = {ln[1:].rstrip("/") for ln in ignore if ln.startswith("!")}
    for step in DockerfileParser(str(DOCKER / "Dockerfile")).structure:
        if step["instruction"] != "COPY" or step["value"].startswith("--from"):
            continue
        *sources, _dest = step["value"].split()
        for src in sources:
            assert (ROOT / src).exists(), f"COPY {src}: no such file in the build context"
            assert src.rstrip("/") in allowed, f"COPY {src} is excluded by .dockerignore"


# ---- the nginx image and its config --------------------------------------------------------


def test_default_conf_is_the_rendered_template() -> None:
    assert (DOCKER / "nginx" / "default.conf").read_text() == nginxconf.render_docker_site(), (
        "docker/nginx/default.conf is stale: regenerate it from the template "
        "(see docker/nginx/Dockerfile)"
    )


def test_template_is_shipped_in_the_package() -> None:
    shipped = resources.files("fishpredict").joinpath("templates", nginxconf.SITE_TEMPLATE)
    assert shipped.is_file()
    text = nginxconf.template_text()
    for directive in (
        "keepalive 64;",
        "proxy_http_version 1.1;",
        'proxy_set_header Connection "";',
        "proxy_next_upstream error timeout http_502 http_503 non_idempotent;",
        "proxy_next_upstream_tries",
        "proxy_connect_timeout",
        "server_tokens off;",
        "access_log off;",
    ):
        assert directive in text


def test_nginx_image_installs_default_conf() -> None:
    final = instructions(DOCKER / "nginx" / "Dockerfile")
    assert ("COPY", "default.conf /etc/nginx/conf.d/default.conf") in final
    assert dict(final)["EXPOSE"] == "80"
    assert "HEALTHCHECK" in dict(final)


def test_fill_is_strict_both_ways() -> None:
    from fishpredict.errors import ConfigError

    assert nginxconf.fill("a {{ x }} b", {"x": "1"}) == "a 1 b"
    with pytest.raises(ConfigError, match="needs values for: x"):
        nginxconf.fill("a {{ x }}", {})
    with pytest.raises(ConfigError, match="no placeholder for: y"):
        nginxconf.fill("a {{ x }}", {"x": "1", "y": "2"})
    with pytest.raises(ConfigError, match="host:port"):
        nginxconf.render_site(["ml-1"], "80")
    with pytest.raises(ConfigError, match="absolute"):
        nginxconf.render_main("", "relative/dir")


@pytest.mark.nginx
def test_docker_default_conf_passes_nginx_t(tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    site = (DOCKER / "nginx" / "default.conf").read_text()
    # compose's service names resolve only inside docker's network: point them at loopback
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    site = re.sub(r"ml-\d+:8080", "127.0.0.1:8080", site)
    site = site.replace("listen 80;", f"listen 127.0.0.1:{port};")
    for d in nginxconf.temp_dirs(tmp_path):
        d.parent.mkdir(parents=True, exist_ok=True)
    conf = tmp_path / "nginx.conf"
    conf.write_text(nginxconf.render_main(site, tmp_path))
    nginxconf.check_config(nginx, conf, tmp_path)


def test_every_replica_has_a_never_failing_backup_twin() -> None:
    site = nginxconf.render_site(["127.0.0.1:1", "127.0.0.1:2"], "80")
    assert upstream_servers(site) == upstream_servers(site, backup=True) == [
        "127.0.0.1:1", "127.0.0.1:2"]
    assert "    server 127.0.0.1:1 backup max_fails=0;" in site.splitlines()
    assert "proxy_next_upstream_tries 0;" in site  # each peer once, within the timeout


def _first_status_once_a_replica_listens(tmp_path: Path, site: str, ports: list[int],
                                         listen: int) -> tuple[list[int], int]:
    """Run nginx with ``site``; ask it while no replica listens (so it marks them all
    failed), start a real replica on ``ports[0]``, and ask once more: the statuses."""
    from fishpredict.ops.health import probe
    from fishpredict.server.ports import wait_for_port

    nginx = nginxconf.find_nginx()
    for d in nginxconf.temp_dirs(tmp_path):
        d.parent.mkdir(parents=True, exist_ok=True)
    conf = tmp_path / "nginx.conf"
    conf.write_text(nginxconf.render_main(site, tmp_path, worker_processes="1"))
    argv = [nginx, "-p", str(tmp_path), "-c", str(conf)]
    if nginxconf.has_error_log_flag(nginx):
        argv += ["-e", str(tmp_path / "error.log")]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_for_port(listen, 10, procs[0])
        before = [int(probe("127.0.0.1", listen).split("(")[-1].rstrip(")")) for _ in range(5)]
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "fishpredict", "serve", "--port", str(ports[0])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_for_port(ports[0], 60, procs[1])
        deadline = time.monotonic() + 60
        while probe("127.0.0.1", ports[0]) != "ready":
            assert time.monotonic() < deadline and procs[1].poll() is None
            time.sleep(0.05)
        after = probe("127.0.0.1", listen)
        return before, 200 if after == "ready" else int(after.split("(")[-1].rstrip(")"))
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.mark.nginx
def test_a_replica_that_starts_late_is_served_at_once(tmp_path: Path) -> None:
    """While no replica answers, nginx marks every one failed for fail_timeout and
    answers 502 "no live upstreams" without trying them, even once one is ready: at
    start-up (podman-compose starts nginx with the replicas) that is a storm of 502s.
    The backup twins, never marked failed, are still tried: the first request after a
    replica is ready gets its answer. Without them (the control) it does not."""
    if nginxconf.nginx_path() is None:
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    for variant, expected in (("control", 502), ("shipped", 200)):
        ports = [free_port() for _ in range(3)]
        site = nginxconf.render_site([f"127.0.0.1:{p}" for p in ports[:2]],
                                     f"127.0.0.1:{ports[2]}")
        # a fail_timeout longer than the replica's start makes the outcome certain
        site = site.replace("fail_timeout=2s", "fail_timeout=60s")
        if variant == "control":
            site = "\n".join(ln for ln in site.splitlines() if " backup " not in ln)
        (tmp_path / variant).mkdir()
        before, first = _first_status_once_a_replica_listens(tmp_path / variant, site,
                                                              ports[:2], ports[2])
        assert before == [502] * 5, variant
        assert first == expected, f"{variant}: the first answer once a replica is ready"


# ---- compose files ----------------------------------------------------------------------------


def test_compose_files_differ_only_in_the_backend() -> None:
    texts = {b: COMPOSE_FILES[b].read_text().replace(b, "BACKEND") for b in BACKENDS}
    assert texts["starlette"] == texts["aiohttp"] == texts["socket"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_compose_file_matches_the_compose_spec_schema(backend: str) -> None:
    import jsonschema
    from check_jsonschema.builtin_schemas import vendor

    schema = json.loads(resources.files(vendor).joinpath("compose-spec.json").read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(compose(backend))]
    assert errors == []
    broken = compose(backend)
    broken["services"]["nginx"]["depends_on"]["ml-1"]["condition"] = "service_happy"
    assert list(validator.iter_errors(broken)), "the schema check can fail"


@pytest.mark.parametrize("backend", BACKENDS)
def test_compose_structure(backend: str) -> None:
    services = compose(backend)["services"]
    assert set(services) == {"ml-1", "ml-2", "nginx"}
    entry_points = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"][
        "fishpredict"
    ]
    for name in ("ml-1", "ml-2"):
        svc = services[name]
        assert (DOCKER / svc["build"]["context"] / svc["build"]["dockerfile"]).resolve() == (
            DOCKER / "Dockerfile"
        )
        cmd = svc["command"]
        assert option(cmd, "--backend") == backend and backend in entry_points
        assert option(cmd, "--host") == "0.0.0.0"
        assert "readyz" in " ".join(svc["healthcheck"]["test"])
        assert svc["read_only"] is True and svc["cap_drop"] == ["ALL"]
    nginx = services["nginx"]
    assert (DOCKER / nginx["build"]["context"] / "Dockerfile").exists()
    assert nginx["ports"] == ["127.0.0.1:70:80"], "published on loopback port 70, as in the seed"
    assert nginx["depends_on"] == {
        "ml-1": {"condition": "service_healthy"},
        "ml-2": {"condition": "service_healthy"},
    }
    assert "healthcheck" in nginx


@pytest.mark.parametrize("backend", BACKENDS)
def test_nginx_upstreams_are_the_compose_services(backend: str) -> None:
    services = compose(backend)["services"]
    conf = (DOCKER / "nginx" / "default.conf").read_text()
    expected = sorted(
        f"{name}:{option(svc['command'], '--port')}"
        for name, svc in services.items()
        if name.startswith("ml-")
    )
    assert sorted(upstream_servers(conf)) == expected
    # each replica again as a backup that is never taken out: start-up is not fatal
    assert sorted(upstream_servers(conf, backup=True)) == expected
    listen = re.search(r"^\s*listen\s+(\d+);", conf, re.M)
    assert listen and services["nginx"]["ports"][0].rsplit(":", 1)[1] == listen.group(1)


def _podman_compose() -> list[str]:
    """podman-compose (from PyPI, a test dependency), run by this interpreter."""
    assert shutil.which("podman"), "podman is not installed (.ci/run installs it)"
    return [sys.executable, "-m", "podman_compose"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_podman_compose_renders_the_file(backend: str) -> None:
    """A real Compose implementation reads the file, anchors and merge keys included."""
    done = subprocess.run(
        [*_podman_compose(), "-f", str(COMPOSE_FILES[backend]), "config"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    rendered = yaml.safe_load(done.stdout)
    assert rendered["name"] == f"fishpredict-{backend}"
    assert set(rendered["services"]) == {"ml-1", "ml-2", "nginx"}
    for name in ("ml-1", "ml-2"):  # the x-model-server anchor, merged into each
        svc = rendered["services"][name]
        assert option(svc["command"], "--backend") == backend
        assert svc["healthcheck"]["test"] == compose(backend)["services"][name]["healthcheck"][
            "test"]
        assert Path(svc["build"]["context"]).resolve() == ROOT


def test_podman_compose_config_can_fail(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE_FILES["socket"].read_text().replace("*model-server", "*nothing"))
    done = subprocess.run([*_podman_compose(), "-f", str(broken), "config"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0 and "undefined alias" in done.stderr


def test_check_jsonschema_accepts_every_compose_file() -> None:
    """check-jsonschema's command line, with its built-in compose-spec schema."""
    exe = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec"]
    done = subprocess.run([*exe, *map(str, COMPOSE_FILES.values())],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok -- validation done" in done.stdout


# ---- the health-check one-liners, run for real ---------------------------------------------


@pytest.fixture(scope="module")
def server_port() -> Iterator[int]:
    """A real ``fishpredict serve`` (default backend) on a free loopback port."""
    from fishpredict.errors import FishpredictError
    from fishpredict.plugins import registry

    try:
        registry().get_available_backend("socket")
    except FishpredictError as exc:
        pytest.skip(f"default backend unavailable: {exc}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "fishpredict", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"on http://127\.0\.0\.1:(\d+)", line)
        assert match, f"serve did not announce its port: {line!r}"
        yield int(match.group(1))
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _run_check(argv: list[str], port: int) -> int:
    argv = [a.replace(":8080/", f":{port}/") for a in argv]
    assert argv[0] == "python"
    return subprocess.run(
        [sys.executable, *argv[1:]], capture_output=True, timeout=30, check=False
    ).returncode


def test_image_healthcheck_passes_against_a_live_server(server_port: int) -> None:
    check = dict(instructions(DOCKER / "Dockerfile"))["HEALTHCHECK"]
    argv = exec_form(check[check.index("CMD") + 3 :].strip())
    assert _run_check(argv, server_port) == 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    assert _run_check(argv, dead) != 0, "the check fails when nothing answers"


def test_compose_healthcheck_passes_against_a_live_server(server_port: int) -> None:
    test = compose("socket")["services"]["ml-1"]["healthcheck"]["test"]
    assert test[0] == "CMD"
    assert _run_check(test[1:], server_port) == 0
