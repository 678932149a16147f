"""fishpredict-httpserver: a fishpredict serving backend on asyncio streams and
httptools, and a complete example of a third-party backend plugin.

The entry point (group ``fishpredict``) names :mod:`fishpredict_httpserver.plugin`;
``fishpredict serve --backend httpserver`` then serves through
:mod:`fishpredict_httpserver.server`.
"""

from __future__ import annotations

__version__ = "0.1.0"
