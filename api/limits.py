"""Limits on what a request may carry, checked before any route runs (an ASGI middleware).

* header block larger than ``request_max_header_kib`` → 431 ``headers_too_large`` (uvicorn's
  httptools parser has no limit of its own; its h11 parser answers 400 itself far above ours);
* body larger than ``request_max_body_kib`` (JSON, urlencoded forms, anything else) or
  ``request_max_form_mib`` (``multipart/form-data``: the feedback form's attachment) → 413
  ``body_too_large``: from ``Content-Length`` before reading, or counted while the route reads a
  body sent without one;
* a NUL character in the path, the query string, a JSON body (the ``\\u0000`` escape) or an
  urlencoded form (``%00``) → 400 ``nul_character``: no text field accepts it, and PostgreSQL
  refuses it in text columns where SQLite would store it.

The streamed document upload (``POST /api/v1/dossiers/{code}/documents/{component}``) is left to
its own limits (``document_max_file_mib``, ``document_max_dossier_mib``: 413
``document_too_large``), which it enforces while streaming.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import PROBLEM_MEDIA_TYPE, problem
from services.settings import Settings

STREAMED_UPLOAD = re.compile(r"^/api/v1/dossiers/[^/]+/documents/[^/]+/?$")
# a JSON string escape for U+0000: an odd run of backslashes, then u0000
JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


class _TooLarge(Exception):
    """Raised inside ``receive`` once the body passes the limit; the middleware answers 413."""


class RequestLimits:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.max_body = settings.request_max_body_kib * 1024
        self.max_form = settings.request_max_form_mib * 1024 * 1024
        self.max_headers = settings.request_max_header_kib * 1024

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        if sum(len(k) + len(v) + 4 for k, v in headers) > self.max_headers:
            await _answer(send, 431, "headers_too_large",
                          f"Tiêu đề yêu cầu vượt quá {self.max_headers // 1024} KiB",
                          f"The request headers exceed {self.max_headers // 1024} KiB")  # fmt: skip
            return
        path: str = scope["path"]
        query: bytes = scope.get("query_string", b"")
        if "\x00" in path or b"%00" in query or b"\x00" in query:
            await _nul(send)
            return
        if scope["method"] == "POST" and STREAMED_UPLOAD.match(path):
            await self.app(scope, receive, send)
            return
        content_type = _header(headers, b"content-type").lower()
        limit = self.max_form if content_type.startswith("multipart/") else self.max_body
        length = _header(headers, b"content-length")
        if length.isdigit() and int(length) > limit:
            await _too_large(send, limit)
            return
        # FastAPI reads a body without a Content-Type as JSON too
        if (
            not content_type
            or "json" in content_type
            or content_type.startswith("application/x-www-form-urlencoded")
        ):
            await self._scanned(scope, receive, send, limit, content_type)
            return
        await self._counted(scope, receive, send, limit)

    async def _scanned(
        self, scope: Scope, receive: Receive, send: Send, limit: int, content_type: str
    ) -> None:
        """Small text bodies: read whole (within the limit), refuse NUL, then hand them on."""
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            body += message.get("body", b"")
            if len(body) > limit:
                await _too_large(send, limit)
                return
            if not message.get("more_body", False):
                break
        nul = re.compile(rb"%00") if "urlencoded" in content_type else JSON_NUL
        if nul.search(body) or b"\x00" in body:
            await _nul(send)
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _counted(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """Other bodies (forms with files, raw bodies): count while the route reads."""
        seen = 0
        exceeded = False
        started = False

        async def counting() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    exceeded = True
                    raise _TooLarge()
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if exceeded:  # whatever the route answers after the limit was hit is dropped
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting, guarded)
        except _TooLarge:
            pass
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await _too_large(send, limit)


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


async def _answer(send: Send, status: int, code: str, vi: str, en: str, **extra: Any) -> None:
    from fastapi.responses import JSONResponse

    body = problem(status, code, vi, en, **extra)
    response = JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE)
    response.headers["Connection"] = "close"
    await send({"type": "http.response.start", "status": status, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


async def _too_large(send: Send, limit: int) -> None:
    size = f"{limit // 1024} KiB" if limit < 1024 * 1024 else f"{limit // (1024 * 1024)} MiB"
    await _answer(send, 413, "body_too_large",
                  f"Nội dung yêu cầu vượt quá {size}", f"The request body exceeds {size}",
                  limit_bytes=limit)  # fmt: skip


async def _nul(send: Send) -> None:
    await _answer(
        send,
        400,
        "nul_character",
        "Dữ liệu chứa ký tự NUL (\\u0000), không được chấp nhận",
        "The request contains a NUL character (\\u0000), which is not accepted",
    )
