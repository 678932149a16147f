"""A container engine (Docker or podman) run through its command line, and the
images of docker/ built with it.

Both engines take the same commands for what fishpredict needs (``run``,
``inspect``, ``port``, ``stop``, ``rm``, ``network``, ``build``), so one small
wrapper serves both. Every call has a timeout, and a failing one becomes a
:class:`ClusterError` with the engine's own last words on one line.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from fishpredict.errors import ClusterError

ENGINES = ("docker", "podman")

#: the images docker/compose.*.yaml name, built from docker/'s Dockerfiles
SERVER_IMAGE = "fishpredict:0.1.0"
NGINX_IMAGE = "fishpredict-nginx:0.1.0"

#: what an engine says when a base image cannot be pulled
_PULL_FAILED = (
    "pinging container registry",
    "pull access denied",
    "no such host",
    "failed to resolve source metadata",
    "error pulling image",
    "repository does not exist",
    "did not resolve to an alias",
)
_RLIMIT_REFUSED = "error setting rlimit"

BASE_IMAGE_HINT = (
    "no registry reachable? scripts/build-base-images.sh builds stand-in base "
    "images from Debian packages (docs/cluster.md)"
)
RLIMIT_HINT = (
    "podman cannot give containers its default resource limits on this host: install "
    "docker/podman/containers.conf as /etc/containers/containers.conf.d/fishpredict.conf "
    "(docs/cluster.md)"
)


def last_words(text: str, lines: int = 2) -> str:
    """The last non-empty lines of an engine's output, on one line."""
    tail = [ln.strip() for ln in text.splitlines() if ln.strip()][-lines:]
    return " | ".join(tail) or "(no output)"


@dataclass(frozen=True)
class Engine:
    """``docker`` or ``podman``, by the path of its command line."""

    name: str
    path: str

    @classmethod
    def find(cls, name: str | None = None) -> Engine:
        """The engine called ``name``; without one, the first of docker and podman
        that answers ``info`` (a docker client without a daemon does not)."""
        if name is not None and name not in ENGINES:
            raise ClusterError(f"container engine must be docker or podman, got {name!r}")
        tried = []
        for candidate in [name] if name else list(ENGINES):
            path = shutil.which(candidate)
            if path is None:
                tried.append(f"{candidate}: not installed")
                continue
            engine = cls(candidate, path)
            problem = engine.unusable()
            if problem is None:
                return engine
            tried.append(f"{candidate}: {problem}")
        raise ClusterError(f"no container engine to run: {'; '.join(tried)}")

    def unusable(self) -> str | None:
        """Why this engine cannot be used, or None."""
        try:
            done = self.run(["info"], timeout=30, check=False)
        except ClusterError as exc:
            return str(exc)
        if done.returncode != 0:
            return last_words(done.stderr + done.stdout, 1)
        return None

    def run(
        self, args: list[str], timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """``ENGINE args``; with ``check``, a :class:`ClusterError` if it fails."""
        try:
            done = subprocess.run(
                [self.path, *args],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            what = f"{self.name} {args[0]}"
            raise ClusterError(f"{what} did not finish within {timeout:g}s") from None
        except OSError as exc:
            raise ClusterError(f"cannot run {self.path}: {exc.strerror}") from None
        if check and done.returncode != 0:
            words = last_words(done.stderr + done.stdout)
            hint = f"; {RLIMIT_HINT}" if _RLIMIT_REFUSED in words else ""
            raise ClusterError(f"{self.name} {args[0]} failed: {words}{hint}")
        return done

    def out(self, args: list[str], timeout: float = 120) -> str:
        return self.run(args, timeout).stdout.strip()

    def image_id(self, image: str) -> str | None:
        done = self.run(["image", "inspect", "--format", "{{.Id}}", image], timeout=60,
                        check=False)
        return done.stdout.strip() or None if done.returncode == 0 else None

    def image_exists(self, image: str) -> bool:
        return self.image_id(image) is not None

    def state(self, container: str) -> tuple[bool, int, int]:
        """(running, host pid, exit code) of a container; (False, 0, -1) if there is none."""
        done = self.run(
            ["inspect", "--format", "{{.State.Running}} {{.State.Pid}} {{.State.ExitCode}}",
             container],
            timeout=60,
            check=False,
        )
        fields = done.stdout.split()
        if done.returncode != 0 or len(fields) != 3:
            return False, 0, -1
        return fields[0] == "true", int(fields[1]), int(fields[2])

    def host_port(self, container: str, port: int) -> int:
        """The host port a container's ``port`` is published on."""
        out = self.out(["port", container, f"{port}/tcp"], timeout=60)
        try:
            return int(out.splitlines()[0].rsplit(":", 1)[1])
        except (IndexError, ValueError):
            what = f"{self.name} port {container}"
            raise ClusterError(f"{what}: no published port ({out!r})") from None

    def logs(self, container: str, lines: int | None = None) -> str:
        args = ["logs", *(["--tail", str(lines)] if lines else []), container]
        done = self.run(args, timeout=60, check=False)
        return done.stdout + done.stderr

    def build(self, dockerfile: Path, context: Path, tag: str, log: Path) -> None:
        """``ENGINE build`` with the host's network (pip reaches PyPI as the host does);
        the whole output goes to ``log``."""
        args = ["build", "--network", "host", "-f", str(dockerfile), "-t", tag, str(context)]
        if self.name == "podman":
            args[1:1] = ["--format", "docker"]  # keeps HEALTHCHECK for compose
        done = self.run(args, timeout=1800, check=False)
        log.write_text(done.stdout + done.stderr, "utf-8")
        if done.returncode != 0:
            words = last_words(done.stdout + done.stderr)
            pulled = any(p in (done.stdout + done.stderr) for p in _PULL_FAILED)
            hint = f"; {BASE_IMAGE_HINT}" if pulled else ""
            raise ClusterError(f"{self.name} build of {tag} failed (log {log}): {words}{hint}")


def source_dir(explicit: str | Path | None = None) -> Path:
    """The fishpredict checkout whose docker/ the images are built from: ``explicit``,
    else the one this package lies in, else the current directory."""
    candidates = (
        [Path(explicit)] if explicit is not None
        else [*Path(__file__).resolve().parents, Path.cwd()]
    )
    for root in candidates:
        if (root / "docker" / "Dockerfile").is_file() and (root / "pyproject.toml").is_file():
            return root.resolve()
    where = candidates[0] if explicit is not None else "this installation or the current directory"
    raise ClusterError(
        f"no docker/Dockerfile in {where}: the images are built from a fishpredict "
        "source checkout (pass --source DIR), or must exist already"
    )


def ensure_images(
    engine: Engine, log_dir: Path, source: str | Path | None = None, rebuild: bool = False
) -> list[str]:
    """Build the server and nginx images from docker/ where missing (all with
    ``rebuild``); the images built."""
    wanted = [
        (SERVER_IMAGE, Path("docker/Dockerfile"), Path(".")),
        (NGINX_IMAGE, Path("docker/nginx/Dockerfile"), Path("docker/nginx")),
    ]
    built = []
    for image, dockerfile, context in wanted:
        before = engine.image_id(image)
        if not rebuild and before is not None:
            continue
        root = source_dir(source)
        log = log_dir / f"build-{image.split(':')[0]}.log"
        engine.build(root / dockerfile, root / context, image, log)
        built.append(image)
        if before is not None and engine.image_id(image) != before:
            # the image this build replaced, now untagged: gone, unless a container uses it
            engine.run(["rmi", before], timeout=120, check=False)
    return built


__all__ = [
    "ENGINES",
    "NGINX_IMAGE",
    "SERVER_IMAGE",
    "Engine",
    "ensure_images",
    "last_words",
    "source_dir",
]
