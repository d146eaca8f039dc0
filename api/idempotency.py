"""``Idempotency-Key`` on POSTs: replay the first answer, never run the use case twice."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Header
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.auth import Officer
from services.context import Context
from services.idempotency import StoredResponse, release, reserve, store

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=128,
        description="Same key (per officer) → the first answer is replayed; no second dossier",
    ),
]


def run_once(
    ctx: Context,
    officer: Officer,
    key: str | None,
    target: str,
    fingerprint: str,
    handler: Callable[[], tuple[int, Any, dict[str, str]]],
) -> JSONResponse:
    """Run ``handler`` (status, body, headers) once per ``key``; replay it for a repeat."""
    if key is None:
        status, body, headers = handler()
        return JSONResponse(_encoded(body), status_code=status, headers=headers)
    digest = hashlib.sha256(f"{target}\n{fingerprint}".encode()).hexdigest()
    replay = reserve(ctx, officer.username, key, target, digest)
    if replay is not None:
        return JSONResponse(
            replay.body,
            status_code=replay.status_code,
            headers={**replay.headers, "Idempotent-Replayed": "true"},
        )
    try:
        status, body, headers = handler()
    except BaseException:
        release(ctx, officer.username, key)
        raise
    encoded = _encoded(body)
    store(ctx, officer.username, key, StoredResponse(status, encoded, headers))
    return JSONResponse(encoded, status_code=status, headers=headers)


def _encoded(body: Any) -> Any:
    """JSON-ready data of a response body: pydantic's own dump for a model (a fifth of the
    time of ``jsonable_encoder`` on a dossier, which walks the dump once more)."""
    if isinstance(body, BaseModel):
        return body.model_dump(mode="json")
    return jsonable_encoder(body)
