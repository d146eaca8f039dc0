"""benchmarks.httpload: a virtual user keeps its connection (HTTP/1.1 keep-alive), as a browser
or a proxy in front of the API would; a new connection per request measured the TCP set-up."""

from __future__ import annotations

import asyncio

from benchmarks.httpload import Connection


async def _serve(answers: list[bytes]) -> tuple[asyncio.Server, list[int]]:
    opened: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        opened.append(1)
        while answers and await reader.readuntil(b"\r\n\r\n"):
            writer.write(answers.pop(0))
            await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0), opened


def _answer(body: bytes, *extra: bytes) -> bytes:
    head = [b"HTTP/1.1 200 OK", b"content-length: %d" % len(body), *extra]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def test_a_user_sends_its_requests_on_one_connection_until_told_to_close() -> None:
    async def run() -> tuple[list[bytes], int]:
        answers = [_answer(b"one"), _answer(b"two", b"connection: close"), _answer(b"three")]
        server, opened = await _serve(answers)
        port = server.sockets[0].getsockname()[1]
        conn = Connection("127.0.0.1", port)
        bodies = [(await conn.request("GET", "/")).body for _ in range(3)]
        conn.close()
        server.close()
        return bodies, len(opened)

    bodies, connections = asyncio.run(run())
    assert bodies == [b"one", b"two", b"three"]
    assert connections == 2  # the first two on one connection, the third after "close"
