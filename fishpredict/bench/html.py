"""The HTML of a run: the live page (``--web``) and the report file (``--html``).

Both are one page, drawn in the browser from one JSON document: the result as
``--json`` writes it (``BenchResult.to_dict()``). The page holds its CSS, its
script and the data inline, and fetches nothing from the network: the charts
are SVG drawn by the script. So the live page, the report and the JSON cannot
disagree: the page shows the JSON's own numbers. Every figure in the page
carries its raw value in ``data-value`` beside the text it shows.

The live page takes the same document every second over server-sent events
(``/events``) and redraws; the report is the final document, frozen in.
"""

from __future__ import annotations

import html
import json
import os
from functools import cache
from importlib import resources
from typing import Any

from fishpredict.errors import ConfigError


@cache
def _assets() -> tuple[str, str]:
    """The page's CSS and script (``fishpredict/bench/assets/``)."""
    base = resources.files("fishpredict.bench") / "assets"
    return (base / "page.css").read_text("utf-8"), (base / "page.js").read_text("utf-8")


def _script_json(obj: Any) -> str:
    """JSON safe inside a <script> element."""
    text = json.dumps(obj, ensure_ascii=False, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_page(doc: dict[str, Any], state: str, *, live: bool = False) -> str:
    """The page for ``doc`` (a result's ``to_dict()``); ``state``: running, final,
    interrupted or stopped; ``live``: listen for updates on ``events``."""
    title = html.escape(f"fishpredict bench {doc.get('url', '')}")
    data = _script_json({"doc": doc, "state": state, "live": live})
    css, script = _assets()
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{title}</title><meta name=\"viewport\" content=\"width=device-width\">"
        f"<style>{css}</style></head><body>"
        "<header><h1>fishpredict bench <span id=\"status\"></span></h1>"
        "<div class=\"sub\" id=\"sub\"></div></header><main id=\"app\"></main>"
        f"<script id=\"data\" type=\"application/json\">{data}</script>"
        f"<script>{script}</script></body></html>\n"
    )


def state_of(doc: dict[str, Any], final: bool) -> str:
    if not final:
        return "running"
    if doc.get("interrupted"):
        return "interrupted"
    if doc.get("aborted"):
        return "stopped"
    return "final"


def write_html(doc: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Write the self-contained report of a finished run."""
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(render_page(doc, state_of(doc, True)))
    except OSError as exc:
        raise ConfigError(f"cannot write {exc.filename}: {exc.strerror}") from None
