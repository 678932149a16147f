"""The Python ceiling: the least a Python HTTP server can do per request.

uvloop runs the loop, httptools (llhttp) parses every request, and each one gets
the same fixed JSON answer, keep-alive, in one ``transport.write``: no routing, no
validation, no model, no limits. Whatever fishpredict adds on top of this is what
``fishpredict perf hotpath`` measures as its share of the ceiling. Run it as
``python -m fishpredict.perf.ceiling PORT``.
"""

from __future__ import annotations

import asyncio
import sys

import httptools

BODY = b'{"prediction":"bream"}'
ANSWER = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
          % (len(BODY), BODY))


class Ceiling(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url = url  # parsed, as a real server must: kept, not used

    def on_message_complete(self) -> None:
        self.transport.write(ANSWER)
        if not self.parser.should_keep_alive():
            self.transport.close()


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Ceiling, "127.0.0.1", port, backlog=1024)
    print(f"ceiling on http://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    await server.serve_forever()


def main() -> None:
    import uvloop

    uvloop.run(serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0))


if __name__ == "__main__":
    main()
