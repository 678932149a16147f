"""Shared test fixtures (kept small: most tests build what they need)."""

from __future__ import annotations

import os

import pytest


def pytest_report_header() -> str:
    """Which serving backends this session can test (plugins are loaded once here)."""
    from fishpredict.plugins import list_backends

    names = [f"{i.name}{'' if i.available else ' (unavailable)'}" for i in list_backends()]
    return "fishpredict backends: " + (", ".join(names) or "none")


@pytest.fixture
def clean_env() -> dict[str, str]:
    """This process's environment without the FISHPREDICT_* plugin filters, for subprocesses."""
    return {
        k: v
        for k, v in os.environ.items()
        if k not in ("FISHPREDICT_PLUGINS", "FISHPREDICT_BLOCK_PLUGINS")
    }
