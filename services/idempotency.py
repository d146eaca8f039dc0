"""Idempotency keys for POSTs: the first successful answer is kept and replayed for the same key
and user; a second dossier is never created by a double click or a network retry.

The key is reserved (a ``pending`` row, unique per user and key) in its own transaction before the
use case runs, and the answer stored after it commits. A concurrent duplicate waits for the first
to finish and replays it. A crash between the use case and storing the answer leaves the key
``pending``: a retry then gets ``IdempotencyInProgress`` (409) rather than a second dossier.
Errors are not kept: the key is released so that a corrected retry can run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from services.context import Context
from services.errors import DomainError
from storage.models_api import IdempotencyRecord

WAIT_SECONDS = 10.0


class IdempotencyMismatch(DomainError):
    code = "idempotency_key_reused"
    http_status = 422

    def __init__(self) -> None:
        super().__init__(
            "Khóa Idempotency-Key này đã được dùng cho một yêu cầu khác",
            "This Idempotency-Key was already used for a different request",
        )


class IdempotencyInProgress(DomainError):
    code = "idempotency_in_progress"
    http_status = 409

    def __init__(self) -> None:
        super().__init__(
            "Yêu cầu với khóa này đang được xử lý; hãy thử lại sau",
            "A request with this key is still being processed; retry later",
        )


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    body: Any
    headers: dict[str, str]


def _find(ctx: Context, username: str, key: str) -> IdempotencyRecord | None:
    with ctx.uow() as uow:
        return uow.session.exec(
            select(IdempotencyRecord).where(
                IdempotencyRecord.username == username, IdempotencyRecord.key == key
            )
        ).first()


def reserve(
    ctx: Context, username: str, key: str, target: str, request_hash: str
) -> StoredResponse | None:
    """``None``: the caller runs the request and then calls ``store`` or ``release``.
    Otherwise the first answer, to replay."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        try:
            with ctx.uow() as uow:
                uow.session.add(
                    IdempotencyRecord(
                        username=username,
                        key=key,
                        target=target,
                        request_hash=request_hash,
                        created_at=ctx.clock.now(),
                    )
                )
                uow.commit()
            return None
        except IntegrityError:
            pass
        record = _find(ctx, username, key)
        if record is None:  # released in between: try again
            continue
        if record.request_hash != request_hash or record.target != target:
            raise IdempotencyMismatch()
        if record.state == "done" and record.status_code is not None:
            return StoredResponse(record.status_code, record.response_body, record.response_headers)
        if time.monotonic() >= deadline:
            raise IdempotencyInProgress()
        time.sleep(0.05)


def store(ctx: Context, username: str, key: str, response: StoredResponse) -> None:
    with ctx.uow() as uow:
        record = uow.session.exec(
            select(IdempotencyRecord).where(
                IdempotencyRecord.username == username, IdempotencyRecord.key == key
            )
        ).one()
        record.state = "done"
        record.status_code = response.status_code
        record.response_body = response.body
        record.response_headers = response.headers
        uow.session.add(record)
        uow.commit()


def release(ctx: Context, username: str, key: str) -> None:
    with ctx.uow() as uow:
        record = uow.session.exec(
            select(IdempotencyRecord).where(
                IdempotencyRecord.username == username,
                IdempotencyRecord.key == key,
                IdempotencyRecord.state == "pending",
            )
        ).first()
        if record is not None:
            uow.session.delete(record)
            uow.commit()
