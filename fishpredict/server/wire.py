"""A :class:`~fishpredict.app.service.Response` as HTTP/1.1 bytes, built from cached pieces.

For backends that write raw HTTP (the socket backend, the refusals the uvicorn
and aiohttp guards write before their framework sees a request, a plugin on
asyncio streams). A response is written with one ``transport.write`` of
``status line + Content-Type + Date + Content-Length + extra headers +
Connection + blank line + body``. The status line and Content-Type are cached
per ``(status, content type)``; the Date line is rebuilt once a second by the
sweep (:meth:`fishpredict.server.flow.Limits.refresh`); so the per-request work is one
bytes formatting call.
No ``Server`` header is sent (no banner to fingerprint).
"""

from __future__ import annotations

import email.utils
import time
from typing import Final

from fishpredict.app.messages import Response
from fishpredict.app.service import describe_status

#: ``Connection`` lines; an HTTP/1.1 keep-alive answer needs none.
CLOSE: Final = b"Connection: close\r\n"
KEEP_ALIVE: Final = b"Connection: keep-alive\r\n"
NO_CONNECTION: Final = b""

#: the interim answer to ``Expect: 100-continue``
CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"

_prefixes: dict[tuple[int, str], bytes] = {}


def _prefix(status: int, content_type: str) -> bytes:
    key = (status, content_type)
    prefix = _prefixes.get(key)
    if prefix is None:
        line = f"HTTP/1.1 {status} {describe_status(status)}\r\nContent-Type: {content_type}\r\n"
        prefix = _prefixes[key] = _latin1(line)
    return prefix


def _latin1(text: str) -> bytes:
    return text.encode("latin-1", "replace")


def _extra(headers: tuple[tuple[str, str], ...]) -> bytes:
    """The contract's extra headers (Allow, Retry-After, ...); CR/LF can never split a head."""
    lines = []
    for name, value in headers:
        if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
            continue
        lines.append(f"{name}: {value}\r\n")
    return _latin1("".join(lines))


def encode(response: Response, date: bytes, connection: bytes, head_only: bool = False) -> bytes:
    """The whole answer as one bytes object; ``head_only`` for HEAD requests
    (the Content-Length still says how long the body would be)."""
    body = response.body
    extra = _extra(response.headers) if response.headers else b""
    prefix = _prefixes.get((response.status, response.content_type))
    return b"%s%sContent-Length: %d\r\n%s%s\r\n%s" % (
        prefix if prefix is not None else _prefix(response.status, response.content_type),
        date,
        len(body),
        extra,
        connection,
        b"" if head_only else body,
    )


def date_line(epoch_seconds: float) -> bytes:
    """``Date: Tue, 15 Nov 1994 08:12:31 GMT\\r\\n`` for the given time."""
    return _latin1(f"Date: {email.utils.formatdate(epoch_seconds, usegmt=True)}\r\n")


def refusal(response: Response, date: bytes | None = None) -> bytes:
    """A refusal's bytes: ``response`` with ``Connection: close`` (and the Date line,
    made now unless given)."""
    return encode(response, date if date is not None else date_line(time.time()), CLOSE)
