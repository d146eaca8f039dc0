"""A small HTTP/1.1 load client for the benchmarks: keep-alive connections on asyncio (uvloop),
responses parsed by httptools (the C parser uvicorn itself uses).

httpx costs ~1 ms of client CPU per request, which on a 2-core machine would measure the client
more than the server (STACK.md: it saturates near 600 req/s); this client costs a few tens of
µs per request. ``wrk`` is not installed here and cannot carry a stateful mix (ETags, codes).

Each virtual user owns one connection and sends its requests one after the other; latencies are
recorded per kind of request (µs, from the first byte sent to the last byte received)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

import httptools
import orjson


class HttpError(Exception):
    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}: {body[:300]!r}")
        self.status = status
        self.body = body


@dataclass
class Response:
    status: int
    headers: dict[bytes, bytes]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


class _Parsed:
    """httptools callbacks for one response."""

    __slots__ = ("body", "done", "headers")

    def __init__(self) -> None:
        self.headers: dict[bytes, bytes] = {}
        self.body: list[bytes] = []
        self.done = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.done = True


class Connection:
    """One keep-alive connection; requests are sent one at a time."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: Any = None,
    ) -> Response:
        if self.writer is None:
            await self._open()
        assert self.reader is not None and self.writer is not None
        payload = b"" if body is None else orjson.dumps(body)
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        if body is not None:
            lines.append("Content-Type: application/json")
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(payload)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode()
        self.writer.write(head + payload)
        parsed = _Parsed()
        parser = httptools.HttpResponseParser(parsed)
        while not parsed.done:
            data = await self.reader.read(65536)
            if not data:
                self.close()
                raise ConnectionError("the server closed the connection")
            parser.feed_data(data)
        response = Response(parser.get_status_code(), parsed.headers, b"".join(parsed.body))
        # HTTP/1.1 keeps the connection unless the answer says "close" (httptools'
        # should_keep_alive() is only meaningful before the message completes: after, it is
        # always False, and every request paid a new connection)
        closing = parsed.headers.get(b"connection", b"").lower() == b"close"
        if closing or parser.get_http_version() != "1.1":
            self.close()
        return response

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


@dataclass
class Recorder:
    """Latencies per kind inside the measurement window [start, end) (monotonic seconds)."""

    start: float = float("inf")
    end: float = float("inf")
    latencies: dict[str, list[int]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)

    async def timed(self, kind: str, call: Awaitable[Response], expect: int = 200) -> Response:
        """Await ``call`` (a request not started yet) and record how long it took."""
        began = time.monotonic()
        response = await call
        finished = time.monotonic()
        if response.status != expect:
            if self.start <= began and finished < self.end:
                key = f"{kind} {response.status}"
                self.errors[key] = self.errors.get(key, 0) + 1
            raise HttpError(response.status, response.body)
        if self.start <= began and finished < self.end:
            self.latencies.setdefault(kind, []).append(int((finished - began) * 1e6))
        return response


def percentile(sorted_values: list[int], q: float) -> float:
    """Nearest-rank percentile of already sorted values (µs → ms)."""
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * len(sorted_values)) - 1))
    return sorted_values[index] / 1000


def install_uvloop() -> None:
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        pass
