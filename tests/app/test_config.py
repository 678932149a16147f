from __future__ import annotations

import pytest

from fishpredict.app.config import ServeConfig
from fishpredict.errors import ConfigError


def test_defaults_bind_loopback_and_admin_off() -> None:
    c = ServeConfig()
    assert c.host == "127.0.0.1" and c.admin_token is None


@pytest.mark.parametrize(
    "changes",
    [{"port": 70000}, {"workers": 0}, {"labels": "fr"}, {"max_body_bytes": -1},
     {"admin_token": "short"}, {"nope": 1}],
)
def test_bad_settings(changes: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        ServeConfig().replace(**changes)
