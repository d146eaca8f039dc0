"""Citizen lookup: dossier code + last 4 digits of the applicant's ID number or phone.

Shows the status, the appointment and the step in progress, nothing more. Wrong digits and an
unknown code give the same answer; every lookup is counted (``services.accounts.count_lookup``).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import select

from services.accounts import count_lookup
from services.context import Context
from services.dossiers import procedure_of
from services.errors import DomainError
from states.events import RETURNED, STATE_LABELS
from storage.models import Dossier


class LookupNotFound(DomainError):
    code = "lookup_not_found"
    http_status = 404

    def __init__(self) -> None:
        super().__init__(
            "Không tìm thấy hồ sơ với mã và 4 chữ số đã nhập",
            "No dossier matches this code and these 4 digits",
        )


@dataclass(frozen=True)
class LookupView:
    code: str
    status: str
    status_label: str
    appointment_at: datetime | None
    step_in_progress: str | None
    can_rate: bool


def _last4(value: str | None) -> str | None:
    digits = "".join(ch for ch in (value or "") if ch.isdigit())
    return digits[-4:] if len(digits) >= 4 else None


def matches(dossier: Dossier, digits: str) -> bool:
    """Constant-time comparison against both the ID number's and the phone's last 4 digits."""
    given = digits.strip().encode()
    ok = False
    for candidate in (_last4(dossier.applicant_id_number), _last4(dossier.applicant_phone)):
        if candidate is not None and hmac.compare_digest(candidate.encode(), given):
            ok = True
    return ok


def find_for_citizen(ctx: Context, code: str, digits: str, client: str) -> Dossier:
    count_lookup(ctx, code, client)
    code = code.strip().upper()
    with ctx.uow() as uow:
        dossier = uow.session.exec(select(Dossier).where(Dossier.code == code)).first()
    if dossier is None or len(digits.strip()) != 4 or not matches(dossier, digits):
        raise LookupNotFound()
    return dossier


def lookup(ctx: Context, code: str, digits: str, client: str) -> LookupView:
    dossier = find_for_citizen(ctx, code, digits, client)
    step = None
    if dossier.current_step:
        version = procedure_of(ctx, dossier)
        step = next((s.name for s in version.process if s.id == dossier.current_step), None)
    label = STATE_LABELS.get(dossier.status, (step or "Đang giải quyết", ""))[0]
    if dossier.status not in STATE_LABELS:
        label = "Đang giải quyết"
    return LookupView(
        code=dossier.code,
        status=dossier.status,
        status_label=label,
        appointment_at=dossier.appointment_at,
        step_in_progress=step,
        can_rate=dossier.status == RETURNED,
    )
