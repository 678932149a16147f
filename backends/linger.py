"""Lingering close: how every backend ends a connection after a refusal.

Closing a socket whose receive buffer still holds unread bytes makes the kernel
send a reset, and a reset can destroy an answer the client has not read yet (a
client still sending a body we refused, or pipelined requests behind it). So
after its last answer (a refusal says ``Connection: close``) a connection
*lingers*:

1. :func:`half_close` shuts our side for writing once the answers are sent
   (the client sees FIN after the answer) and keeps reading, to see the
   client's end;
2. what still arrives is dropped (:func:`discard`); past :data:`LINGER_BYTES`
   the connection is aborted;
3. the client's close ends it; if it has not come :data:`LINGER_SECONDS` later,
   the caller aborts the connection (each backend keeps that deadline its own
   way: a sweeper, or a timer per connection).

The socket backend (:mod:`fishpredict_backends.socket_connection`), the uvicorn
guard and the aiohttp guard all use these, so they linger alike. Nothing here
runs per request: only when a connection closes.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final

#: how long (s) a closing connection may linger before it is aborted
LINGER_SECONDS: Final = 2.0
#: how many bytes a closing connection may still send (and we drop) before it is aborted
LINGER_BYTES: Final = 1 << 20

__all__ = ["LINGER_BYTES", "LINGER_SECONDS", "discard", "half_close"]

#: what resume_reading raises on a transport without flow control
_NO_FLOW_CONTROL: Final = (AttributeError, NotImplementedError, RuntimeError)


def half_close(transport: asyncio.Transport, *, peer_closed: bool = False) -> bool:
    """Shut our side of ``transport`` for writing and keep reading, to see the client's end.

    Returns True if the connection now lingers: the caller drops what still
    arrives (:func:`discard`) and aborts the transport :data:`LINGER_SECONDS`
    later unless the client closed first. Returns False if there is nothing to
    wait for: the transport was already closing, or it was closed now because
    the client already ended its side (``peer_closed``) or the transport
    cannot half-close (TLS).
    """
    if transport.is_closing():
        return False
    if peer_closed or not transport.can_write_eof():
        transport.close()
        return False
    with contextlib.suppress(*_NO_FLOW_CONTROL):
        transport.resume_reading()  # reading may be paused (back-pressure); the EOF must be seen
    transport.write_eof()  # sent once the answers written before it are
    return True


def discard(transport: asyncio.Transport, dropped: int, size: int) -> int:
    """Drop ``size`` more bytes read from a closing connection that already
    dropped ``dropped``; abort it once over :data:`LINGER_BYTES`. Returns the new total."""
    dropped += size
    if dropped > LINGER_BYTES:
        transport.abort()
    return dropped
