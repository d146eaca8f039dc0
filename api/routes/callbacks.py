"""Authenticated callbacks from other agencies' systems (liên thông).

``POST /api/v1/callbacks/agency/{unit_code}`` — the body is an ``AgencyAnswerIn`` (JSON), signed
with the agency's shared secret: ``X-Motcua-Timestamp: <unix seconds>`` and
``X-Motcua-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>``. A bad or
stale signature → 401; the same answer id twice → 200 with ``"status": "duplicate"`` and
nothing applied twice. The answer moves the dossier on as the unit's system actor.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from services.agencies import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    AgencyAnswerIn,
    AgencyDirectory,
    AgencyNotConfigured,
    receive_answer,
    verify_signature,
)
from services.context import Context
from services.settings import Settings, get_settings

router = APIRouter(prefix="/api/v1/callbacks", tags=["callbacks"])


def _context(request: Request) -> Context:
    ctx: Context | None = getattr(request.app.state, "ctx", None)
    if ctx is None:
        from api.deps import open_context

        ctx = request.app.state.ctx = open_context()
    return ctx


def _settings(request: Request) -> Settings:
    settings: Settings | None = getattr(request.app.state, "settings", None)
    return settings or get_settings()


@router.post("/agency/{unit_code}", summary="Lời đáp của hệ thống cơ quan phối hợp")
async def agency_callback(unit_code: str, request: Request) -> dict[str, Any]:
    body = await request.body()
    directory = AgencyDirectory.from_settings(_settings(request))
    unauthorized = HTTPException(
        status_code=401,
        detail="Chữ ký không hợp lệ hoặc đã quá hạn / bad or expired signature",
    )
    try:
        secret = directory.secret_for(unit_code)
    except AgencyNotConfigured:
        raise unauthorized from None
    if not verify_signature(
        secret,
        request.headers.get(TIMESTAMP_HEADER),
        body,
        request.headers.get(SIGNATURE_HEADER),
        now=time.time(),
    ):
        raise unauthorized
    try:
        answer = AgencyAnswerIn.model_validate_json(body)
    except ValidationError as error:
        raise HTTPException(status_code=422, detail=error.errors(include_url=False)) from None
    ctx = _context(request)
    result = await run_in_threadpool(receive_answer, ctx, unit_code, answer)
    return {
        "status": result.status,
        "dossier_code": result.dossier_code,
        "dossier_status": result.dossier_status,
    }
