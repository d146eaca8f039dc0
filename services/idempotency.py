"""Idempotency keys for POSTs: the first successful answer is kept and replayed for the same key
and user; a second dossier is never created by a double click or a network retry.

``run_once`` claims the key (a row unique per user and key) at the start of one transaction, runs
the use case inside that transaction (``services.uow.joined``), stores the answer in the row and
commits once: the dossier and its stored answer are written together or not at all. A crash
before the commit leaves nothing, so a retry runs afresh; an error is not kept either (the
transaction rolls back). A concurrent duplicate waits on the key's unique index until the first
commits, then replays its answer (or, if the first failed, runs itself).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select, update

from services.context import Context
from services.errors import DomainError
from services.uow import joined
from storage.db import dialect_insert
from storage.models_api import IdempotencyRecord
from storage.transitions import execute


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


_TABLE = IdempotencyRecord.__table__  # type: ignore[attr-defined]
# ``INSERT … ON CONFLICT DO NOTHING RETURNING id`` of a pending record: a row back when the key
# was free
_CLAIMS = {
    dialect: dialect_insert(dialect)(_TABLE)
    .on_conflict_do_nothing(index_elements=["username", "key"])
    .returning(_TABLE.c.id)
    for dialect in ("postgresql", "sqlite")
}
_FIND = select(
    _TABLE.c.target,
    _TABLE.c.request_hash,
    _TABLE.c.state,
    _TABLE.c.status_code,
    _TABLE.c.response_body,
    _TABLE.c.response_headers,
).where(_TABLE.c.username == bindparam("u"), _TABLE.c.key == bindparam("k"))
_STORE = (
    update(_TABLE)
    .where(_TABLE.c.username == bindparam("u"), _TABLE.c.key == bindparam("k"))
    .values(state="done")
)


def run_once(
    ctx: Context,
    username: str,
    key: str,
    target: str,
    request_hash: str,
    handler: Callable[[], StoredResponse],
) -> tuple[StoredResponse, bool]:
    """``handler``'s answer and False, its writes and the answer committed together; or, for a
    key already answered, that answer and True (``handler`` not run)."""
    with ctx.uow() as uow:
        session = uow.session
        claim = _CLAIMS[session.get_bind().dialect.name]
        claimed = execute(
            session,
            claim,
            {
                "username": username,
                "key": key,
                "target": target,
                "request_hash": request_hash,
                "state": "pending",
                "response_headers": {},
                "created_at": ctx.clock.now(),
            },
        )
        if not claimed:
            # answered by a committed transaction (a concurrent one was waited for above)
            found = session.execute(_FIND, {"u": username, "k": key}).one()
            if found.request_hash != request_hash or found.target != target:
                raise IdempotencyMismatch()
            if found.state != "done" or found.status_code is None:
                raise IdempotencyInProgress()  # a record left by an older release
            return StoredResponse(
                found.status_code, found.response_body, found.response_headers
            ), True
        with joined(session):
            response = handler()
        session.expunge_all()  # what the use cases did not commit is dropped (``joined``)
        execute(
            session,
            _STORE,
            {
                "u": username,
                "k": key,
                "status_code": response.status_code,
                "response_body": response.body,
                "response_headers": response.headers,
            },
        )
        uow.commit()
    return response, False
