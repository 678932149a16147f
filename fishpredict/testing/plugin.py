"""The ``pytest11`` plugin of fishpredict's suites: assert rewriting for the checks.

pytest imports this module at start-up, before it collects a test, so the
modules named here are imported with their asserts rewritten and a failed
check shows the values it compared. Nothing else happens here.
"""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite(
    "fishpredict.testing.checks",
    "fishpredict.testing.adapter",
    "fishpredict.testing.guards",
    "fishpredict.testing.models_suite",
)
