"""Render nginx configurations from the one template fishpredict ships.

``fishpredict/templates/nginx.conf.template`` holds the load-balancing part
(the ``ml_servers`` upstream and the proxying ``server``). The same template
yields both ``docker/nginx/default.conf`` (replicas ``ml-1:8080`` and
``ml-2:8080``, listening on port 80; a test checks the file equals the
rendering) and the configuration of ``fishpredict cluster up`` (replicas on
loopback ports), so what is measured locally is what ships in the image.

``nginx-main.conf.template`` wraps that part into a whole configuration whose
every path (pid, error log, temp files) lies inside the cluster's run
directory, so a local nginx needs neither root nor the system's files.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from fishpredict.errors import ClusterError, ConfigError

SITE_TEMPLATE = "nginx.conf.template"
MAIN_TEMPLATE = "nginx-main.conf.template"

#: a failed connection or 502/503 takes a replica out of rotation for FAIL_TIMEOUT
MAX_FAILS = 1
FAIL_TIMEOUT = "2s"
#: every replica is listed a second time as a ``backup`` that is never taken out
#: (max_fails=0): while all are out of rotation (at start-up, before any replica
#: answers) nginx still tries them, so the first replica ready serves at once
#: instead of after FAIL_TIMEOUT of "no live upstreams" 502s
BACKUP_MAX_FAILS = 0

#: the replicas the seed's docker setup ran (``docker run --link ml-1 --link ml-2``)
DOCKER_UPSTREAMS = ("ml-1:8080", "ml-2:8080")
DOCKER_LISTEN = "80"

_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")


@dataclass(frozen=True)
class Upstream:
    """One ``server`` line of the ``ml_servers`` upstream."""

    address: str
    max_fails: int = MAX_FAILS
    fail_timeout: str = FAIL_TIMEOUT
    backup: bool = False

    def line(self) -> str:
        if self.backup:
            return f"    server {self.address} backup max_fails={BACKUP_MAX_FAILS};"
        return (
            f"    server {self.address} max_fails={self.max_fails} "
            f"fail_timeout={self.fail_timeout};"
        )


#: where Debian's nginx packages put the binary (often not on a non-root PATH)
DEBIAN_NGINX = "/usr/sbin/nginx"


def nginx_path() -> str | None:
    """The installed nginx binary: ``nginx`` on PATH, else Debian's, else None."""
    found = shutil.which("nginx")
    if found is None and os.access(DEBIAN_NGINX, os.X_OK):
        found = DEBIAN_NGINX
    return found


def find_nginx(explicit: str | None = None) -> str:
    """The nginx binary to run; :class:`ClusterError` saying how to install it."""
    hint = "install it (apt-get install nginx-light) or pass --nginx PATH"
    if explicit is not None:
        found = shutil.which(explicit)
        if found is None:
            raise ClusterError(f"nginx not found at {explicit}: {hint}")
        return found
    found = nginx_path()
    if found is None:
        raise ClusterError(f"nginx not found on PATH or at /usr/sbin/nginx: {hint}")
    return found


def template_text(name: str = SITE_TEMPLATE) -> str:
    """The text of a template shipped in ``fishpredict/templates``."""
    return resources.files("fishpredict").joinpath("templates", name).read_text("utf-8")


def fill(template: str, values: Mapping[str, str]) -> str:
    """Replace every ``{{ name }}`` in ``template``.

    Strict both ways: a placeholder without a value, or a value without a
    placeholder, is a :class:`ConfigError`, so a renamed placeholder cannot
    silently leave ``{{ ... }}`` in a configuration nginx would reject.
    """
    used = set(_PLACEHOLDER.findall(template))
    missing = used - set(values)
    if missing:
        raise ConfigError(f"nginx template needs values for: {', '.join(sorted(missing))}")
    unused = set(values) - used
    if unused:
        raise ConfigError(f"nginx template has no placeholder for: {', '.join(sorted(unused))}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def render_site(upstreams: Iterable[str | Upstream], listen: str) -> str:
    """The load-balancing configuration (http context): upstream + server.

    ``upstreams`` are ``host:port`` strings (or :class:`Upstream`), each
    followed in the pool by its never-failing ``backup`` twin (see
    :data:`BACKUP_MAX_FAILS`); ``listen`` is what nginx's ``listen`` takes,
    e.g. ``"80"`` or ``"127.0.0.1:8070"``.
    """
    servers = [u if isinstance(u, Upstream) else Upstream(u) for u in upstreams]
    if not servers:
        raise ConfigError("an nginx upstream needs at least one server")
    for s in servers:
        if not re.fullmatch(r"[A-Za-z0-9.\-\[\]:]+:\d{1,5}", s.address):
            raise ConfigError(f"upstream address must be host:port, got {s.address!r}")
    servers += [Upstream(s.address, backup=True) for s in servers if not s.backup]
    return fill(
        template_text(SITE_TEMPLATE),
        {"upstream_servers": "\n".join(s.line() for s in servers), "listen": listen},
    )


def render_docker_site() -> str:
    """What ``docker/nginx/default.conf`` must contain: the seed's two containers."""
    return render_site(DOCKER_UPSTREAMS, DOCKER_LISTEN)


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line if line.strip() else "" for line in text.splitlines())


def render_main(
    site: str,
    run_dir: str | Path,
    *,
    worker_processes: str = "auto",
    worker_connections: int = 4096,
) -> str:
    """A whole ``nginx.conf`` for a local cluster: ``site`` inside ``http {}``,
    with pid, error log and temp paths under ``run_dir`` (an absolute path)."""
    run = Path(run_dir)
    if not run.is_absolute():
        raise ConfigError(f"nginx run directory must be absolute, got {run_dir}")
    if any(c in str(run) for c in " ;{}'\"\\$#"):
        raise ConfigError(f"nginx run directory must not contain spaces or ;{{}}'\"\\$#: {run}")
    return fill(
        template_text(MAIN_TEMPLATE),
        {
            "worker_processes": worker_processes,
            "worker_connections": str(worker_connections),
            "run_dir": str(run),
            "site": _indent(site.rstrip("\n")),
        },
    )


def temp_dirs(run_dir: str | Path) -> list[Path]:
    """The temp directories :func:`render_main` names (nginx wants their parent to exist)."""
    base = Path(run_dir) / "nginx-tmp"
    return [base / name for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")]


def has_error_log_flag(nginx: str) -> bool:
    """nginx >= 1.19.5 takes ``-e FILE``: the error log to use before the config is read
    (older ones first try the compiled-in path, which a non-root user cannot open)."""
    try:
        done = subprocess.run(
            [nginx, "-v"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    match = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", done.stderr + done.stdout)
    return match is not None and tuple(int(g) for g in match.groups()) >= (1, 19, 5)


def check_config(nginx: str, conf: str | Path, prefix: str | Path) -> None:
    """Run ``nginx -t`` on ``conf``; :class:`ConfigError` with nginx's own words if it fails."""
    argv = [nginx, "-t", "-q", "-p", str(prefix), "-c", str(conf)]
    if has_error_log_flag(nginx):
        argv += ["-e", str(Path(prefix) / "nginx-error.log")]
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"cannot run {nginx} -t: {exc}") from None
    if done.returncode != 0:
        lines = [ln for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
        detail = "; ".join(lines[-3:]) or f"exit code {done.returncode}"
        raise ConfigError(f"nginx rejected {conf}: {detail}")


__all__ = [
    "DOCKER_LISTEN",
    "DOCKER_UPSTREAMS",
    "Upstream",
    "check_config",
    "fill",
    "find_nginx",
    "has_error_log_flag",
    "render_docker_site",
    "render_main",
    "temp_dirs",
    "template_text",
]
