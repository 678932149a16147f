"""The header every benchmark prints: machine, Python and library versions."""

from __future__ import annotations

import os
import platform
from importlib import metadata

PACKAGES = ("fishpredict", "numpy", "scikit-learn", "starlette", "uvicorn", "aiohttp",
            "httptools", "uvloop", "fastapi")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def header(title: str) -> str:
    """A few lines naming the benchmark, the machine and the versions."""
    vers = ", ".join(f"{k} {v}" for k, v in versions().items())
    return "\n".join([
        f"# {title}",
        f"# machine: {cpu_model()}, {os.cpu_count()} cores, {platform.system()} "
        f"{platform.release()}",
        f"# python {platform.python_version()}; {vers}",
    ])


def table(rows: list[tuple[str, ...]]) -> str:
    """Left-aligned columns; the first row is the header."""
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
