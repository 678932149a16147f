"""Before any load: prove the target answers, and learn what it answers at rest.

:func:`preflight` first sends one request of each *group* of the pool (one per
endpoint, model and k, see :attr:`Pool.groups`), one at a time within the
request timeout (``--timeout``): a refused connection, or any answer but 2xx (an
unknown ``--model`` or ``--k`` is a 404), stops the run before it starts, in one
line that quotes the server's own error message. Then, when answers are to be checked, it
sends every distinct request of the pool once over a few connections and keeps
each answer as that request's *reference*: what the model itself answers for
those rows. Under load an answer is wrong only when it differs from its
reference (a label that the model gets "wrong" at rest is not the server's
fault; it only lowers the accuracy, which is reported on its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import replace
from typing import Any

import httptools

from fishpredict.bench.config import BenchConfig
from fishpredict.bench.payloads import Pool, Reference, batch_values, fish_answer
from fishpredict.errors import ConfigError, FishpredictError

#: connections that fetch the reference answers
REFERENCE_CONNECTIONS = 4


class _Answer:
    """httptools callbacks for one response."""

    def __init__(self) -> None:
        self.body = b""
        self.done = False

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.done = True


class _Client:
    """One keep-alive connection that sends raw requests and reads whole answers."""

    def __init__(self, host: str, port: int, timeout_s: float) -> None:
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def ask(self, raw: bytes) -> tuple[int, bytes]:
        return await asyncio.wait_for(self._ask(raw), self.timeout_s)

    async def _ask(self, raw: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        answer = _Answer()
        parser = httptools.HttpResponseParser(answer)
        self.writer.write(raw)
        while not answer.done:
            data = await self.reader.read(65536)
            if not data:
                await self.close()
                raise ConnectionResetError("the server closed the connection")
            parser.feed_data(data)
        status = int(parser.get_status_code())
        if not parser.should_keep_alive():
            await self.close()
        return status, answer.body

    async def close(self) -> None:
        writer, self.writer = self.writer, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def _request_line(raw: bytes) -> str:
    return raw.split(b"\r\n", 1)[0].decode("latin-1").rsplit(" ", 1)[0]


def _server_message(body: bytes) -> str:
    """The error message of a contract error answer, else the body's start."""
    try:
        doc = json.loads(body)
        err = doc.get("error") if isinstance(doc, dict) else None
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str):
            return err
    except ValueError:
        pass
    text = body[:120].decode("utf-8", "replace").strip()
    return " ".join(text.split()) or "(no body)"


def reference_of(raw: bytes, body: bytes) -> Reference:
    """What to compare later answers of request ``raw`` with: the label of a ``/fish``
    answer, the parsed predictions of a batch answer, or None (not checkable)."""
    if raw.startswith(b"GET ") and b"/fish?" in raw.split(b"\r\n", 1)[0]:
        return fish_answer(body)
    if raw.startswith(b"POST "):
        return batch_values(body)
    return None


async def _probe(config: BenchConfig, pool: Pool) -> None:
    t = config.target
    # the request timeout: a cold server's first answer may be slow; a refusal is not
    client = _Client(t.host, t.port, config.timeout_s)
    seen: dict[str, int] = {}
    for i, group in enumerate(pool.groups or ("",) * len(pool)):
        seen.setdefault(group, i)
    try:
        for group, i in seen.items():
            raw = pool.requests[i]
            what = group or _request_line(raw)
            try:
                status, body = await client.ask(raw)
            except TimeoutError:
                raise FishpredictError(
                    f"pre-flight: {what}: no answer from {t.url} within "
                    f"{client.timeout_s:g} s"
                ) from None
            except OSError as exc:
                raise FishpredictError(
                    f"pre-flight: {t.url} does not answer: {exc.strerror or exc}"
                ) from None
            if not 200 <= status < 300:
                raise ConfigError(
                    f"pre-flight: {what} answered HTTP {status}: {_server_message(body)}"
                )
    finally:
        await client.close()


async def _references(config: BenchConfig, pool: Pool) -> tuple[Reference, ...]:
    t = config.target
    distinct: dict[bytes, int] = {}
    for raw in pool.requests:
        distinct.setdefault(raw, len(distinct))
    todo = list(distinct)
    answers: dict[bytes, Reference] = {}

    async def work() -> None:
        client = _Client(t.host, t.port, config.timeout_s)
        try:
            while todo:
                raw = todo.pop()
                try:
                    status, body = await client.ask(raw)
                except (OSError, TimeoutError) as exc:
                    raise FishpredictError(
                        f"pre-flight: {_request_line(raw)}: {type(exc).__name__}: {exc}"
                    ) from None
                if not 200 <= status < 300:
                    raise ConfigError(f"pre-flight: {_request_line(raw)} answered HTTP "
                                      f"{status}: {_server_message(body)}")
                answers[raw] = reference_of(raw, body)
        finally:
            await client.close()

    await asyncio.gather(*(work() for _ in range(min(REFERENCE_CONNECTIONS, len(todo)))))
    return tuple(answers[raw] for raw in pool.requests)


def preflight(config: BenchConfig, pool: Pool, *, references: bool = True) -> Pool:
    """Probe the target; with ``references`` (and answers to check) return the pool with
    each request's reference answer, else the pool as it was."""

    async def both() -> Any:
        await _probe(config, pool)
        if references:
            return await _references(config, pool)
        return None

    ref = asyncio.run(both())
    return pool if ref is None else replace(pool, reference=ref)
