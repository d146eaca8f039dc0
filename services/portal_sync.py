"""National public-service portal (Cổng Dịch vụ công quốc gia) status sync.

Each status change the portal must know becomes a ``portal_sync`` outbox row, written by the
transition's own transaction (``services.dossiers._outbox_rows`` calls
:func:`portal_sync_rows`), and delivered to the configured portal endpoint
(``MOTCUA_PORTAL_ENDPOINT``) with the outbox idempotency key. Without an endpoint the rows are
closed without sending (embedded default). ``reconcile`` lists the dossiers whose last sync
failed.

The portal's status codes, mapped from our states in this ONE table. **[practice — verify]**:
codes as provincial systems send them to the national portal's dossier-sync service
(1 new … 10 returned); confirm against the portal's current integration spec.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import func, select

from services.catalog import ProcedureVersion
from services.context import Context
from services.outbox import DEAD, DONE, Claimed, DeliveryError, PermanentDeliveryError
from storage.models import Dossier, Outbox, new_row

PORTAL_SYNC = "portal_sync"

# our state (or "received": the receipt itself; "in_process": any process step, approved,
# rejected) → (portal status code, portal label)
PORTAL_STATUS: dict[str, tuple[str, str]] = {
    "submitted": ("1", "Mới đăng ký"),
    "received": ("2", "Được tiếp nhận"),
    "refused": ("3", "Không được tiếp nhận"),
    "in_process": ("4", "Đang xử lý"),
    "awaiting_supplement": ("5", "Yêu cầu bổ sung giấy tờ"),
    "withdrawn": ("7", "Công dân yêu cầu rút hồ sơ"),
    "result_ready": ("9", "Đã xử lý xong"),
    "returned": ("10", "Đã trả kết quả"),
}


def portal_key(event: str, to_state: str) -> str:
    if event == "receive":
        return "received"
    return to_state if to_state in PORTAL_STATUS else "in_process"


def portal_sync_rows(
    dossier: Dossier, version: ProcedureVersion, event: str, to_state: str, now: datetime
) -> list[Outbox]:
    """The sync row of one transition, when the portal's status changes with it."""
    key = portal_key(event, to_state)
    if key == "in_process" and event != "supplement":
        return []  # moving between steps (or deciding) does not change the portal's status
    if event == "extend":
        return []
    code, label = PORTAL_STATUS[key]
    return [
        new_row(
            Outbox,
            dossier_id=dossier.id,
            kind=PORTAL_SYNC,
            target="portal",
            payload={
                "code": dossier.code,
                "event": event,
                "status": to_state,
                "portal_status": code,
                "portal_label": label,
                "procedure_code": dossier.procedure_code,
                "procedure_version": version.version,
                "at": now.isoformat(),
            },
            created_at=now,
            available_at=now,
        )
    ]


class PortalClient:
    def __init__(self, endpoint: str | None, *, timeout_s: float = 10.0) -> None:
        self.endpoint = endpoint
        self.http = httpx.Client(timeout=timeout_s)

    def deliver(self, item: Claimed) -> None:
        if not self.endpoint:
            return  # no portal configured: nothing to send
        body: dict[str, Any] = {"idempotency_key": item.key, **item.payload}
        try:
            response = self.http.post(
                self.endpoint, json=body, headers={"Idempotency-Key": item.key}
            )
        except httpx.HTTPError as error:
            raise DeliveryError(f"portal: {type(error).__name__}: {error}") from None
        if response.status_code >= 500 or response.status_code in (408, 429):
            raise DeliveryError(f"portal: HTTP {response.status_code}")
        if response.status_code >= 400:
            raise PermanentDeliveryError(f"portal: HTTP {response.status_code}")

    def close(self) -> None:
        self.http.close()


@dataclass(frozen=True)
class SyncFailure:
    dossier_code: str
    outbox_id: int
    portal_status: str | None
    status: str  # dead, or pending after a failed attempt
    attempts: int
    last_error: str | None
    at: datetime


def reconcile(ctx: Context) -> list[SyncFailure]:
    """Dossiers whose LAST portal sync row failed (dead, or waiting for a retry)."""
    table = Outbox.__table__  # type: ignore[attr-defined]
    last = (
        select(table.c.dossier_id, func.max(table.c.id).label("last_id"))
        .where(table.c.kind == PORTAL_SYNC)
        .group_by(table.c.dossier_id)
        .subquery()
    )
    dossiers = Dossier.__table__  # type: ignore[attr-defined]
    statement = (
        select(table, dossiers.c.code.label("dossier_code"))
        .join(last, table.c.id == last.c.last_id)
        .join(dossiers, dossiers.c.id == table.c.dossier_id)
        .where(table.c.status != DONE, (table.c.status == DEAD) | (table.c.last_error.is_not(None)))
        .order_by(table.c.id)
    )
    with ctx.engine.connect() as conn:
        rows = conn.execute(statement).all()
    return [
        SyncFailure(
            dossier_code=r.dossier_code,
            outbox_id=r.id,
            portal_status=(r.payload or {}).get("portal_status"),
            status=r.status,
            attempts=r.attempts,
            last_error=r.last_error,
            at=r.created_at,
        )
        for r in rows
    ]


__all__ = [
    "PORTAL_STATUS",
    "PORTAL_SYNC",
    "PortalClient",
    "SyncFailure",
    "portal_key",
    "portal_sync_rows",
    "reconcile",
]
