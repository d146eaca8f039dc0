"""Liên thông: another agency's system (police, tax, social insurance…) as seen from motcua.

Out: the ``inter_agency`` outbox row is POSTed to that agency's endpoint with the outbox
idempotency key (header ``Idempotency-Key``) and an HMAC signature of the body.
In: the agency answers later through the signed callback
(``POST /api/v1/callbacks/agency/{unit_code}``), idempotent by the agency's own answer id;
the answer moves the dossier on as that unit's system actor
(``Actor("system.<unit>", "system", unit)``).

Signature: ``X-Motcua-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>`` with
``X-Motcua-Timestamp`` (Unix seconds; ±5 minutes accepted) — the same scheme both ways, one
shared secret per agency (settings ``MOTCUA_AGENCY_SECRETS`` / ``MOTCUA_AGENCY_DEFAULT_SECRET``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from pydantic import BaseModel, Field
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from services.context import Context
from services.dossiers import act, procedure_of
from services.errors import DomainError, DossierNotFound, StaleDossier, TransitionRejected
from services.outbox import Claimed, DeliveryError, PermanentDeliveryError
from states.lifecycle import SYSTEM, Actor
from storage.models import Dossier
from storage.models_workflows import AgencyAnswer

SIGNATURE_HEADER = "X-Motcua-Signature"
TIMESTAMP_HEADER = "X-Motcua-Timestamp"
KEY_HEADER = "Idempotency-Key"
TOLERANCE_S = 300


class AgencyNotConfigured(DomainError):
    code = "agency_not_configured"

    def __init__(self, unit_code: str, what: tuple[str, str]) -> None:
        super().__init__(
            f"Chưa cấu hình {what[0]} cho hệ thống của cơ quan {unit_code}",
            f"No {what[1]} configured for the system of agency {unit_code}",
            unit=unit_code,
        )


class BadSignature(DomainError):
    code = "bad_signature"

    def __init__(self, unit_code: str) -> None:
        super().__init__(
            f"Chữ ký của lời đáp từ cơ quan {unit_code} không hợp lệ hoặc đã quá hạn",
            f"The answer from agency {unit_code} has a bad or expired signature",
            unit=unit_code,
        )


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def signed_headers(secret: str, body: bytes, *, now: float | None = None) -> dict[str, str]:
    timestamp = str(int(now if now is not None else time.time()))
    return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(secret, timestamp, body)}


def verify_signature(
    secret: str, timestamp: str | None, body: bytes, signature: str | None, *, now: float
) -> bool:
    if not timestamp or not signature:
        return False
    try:
        age = abs(now - int(timestamp))
    except ValueError:
        return False
    if age > TOLERANCE_S:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def system_actor(unit_code: str) -> Actor:
    return Actor(f"system.{unit_code}", SYSTEM, unit_code)


@dataclass(frozen=True)
class AgencyDirectory:
    """Where each agency's system listens and the secret it shares with us."""

    endpoints: dict[str, str] = field(default_factory=dict)
    default_endpoint: str | None = None
    secrets: dict[str, str] = field(default_factory=dict)
    default_secret: str | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> AgencyDirectory:
        return cls(
            endpoints=dict(settings.agency_endpoints),
            default_endpoint=settings.agency_default_endpoint,
            secrets=dict(settings.agency_secrets),
            default_secret=settings.agency_default_secret,
        )

    def endpoint_for(self, unit_code: str) -> str:
        url = self.endpoints.get(unit_code) or self.default_endpoint
        if not url:
            raise AgencyNotConfigured(unit_code, ("địa chỉ tiếp nhận", "endpoint"))
        return url

    def secret_for(self, unit_code: str) -> str:
        secret = self.secrets.get(unit_code) or self.default_secret
        if not secret:
            raise AgencyNotConfigured(unit_code, ("khóa bí mật", "shared secret"))
        return secret


def _dossier_rows(ctx: Context, ids: list[int]) -> dict[int, Any]:
    table = Dossier.__table__  # type: ignore[attr-defined]
    with ctx.engine.connect() as conn:
        rows = conn.execute(sa_select(table).where(table.c.id.in_(ids))).all()
    return {r.id: _dossier_data(r) for r in rows}


def _dossier_data(dossier: Any) -> dict[str, Any]:
    return {
        "code": dossier.code,
        "procedure_code": dossier.procedure_code,
        "procedure_version": dossier.procedure_version,
        "receiving_unit": dossier.receiving_unit,
        "competent_agency": dossier.competent_agency,
        "applicant": {
            "name": dossier.applicant_name,
            "id_number": dossier.applicant_id_number,
            "address": dossier.applicant_address,
        },
        "components": dossier.components,
        "request_summary": dossier.request_summary,
        "received_at": dossier.received_at.isoformat() if dossier.received_at else None,
        "step_due_at": dossier.step_due_at.isoformat() if dossier.step_due_at else None,
        "due_at": dossier.due_at.isoformat() if dossier.due_at else None,
    }


class AgencyClient:
    """Sends inter-agency outbox rows to the other agency's system (one HTTP client, shared)."""

    def __init__(
        self,
        ctx: Context,
        directory: AgencyDirectory,
        *,
        callback_base_url: str,
        timeout_s: float = 10.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.ctx = ctx
        self.directory = directory
        self.callback_base_url = callback_base_url.rstrip("/")
        self._prepared: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.http = client or httpx.Client(
            timeout=timeout_s, limits=httpx.Limits(max_connections=64, max_keepalive_connections=64)
        )

    def prepare(self, items: Sequence[Claimed]) -> None:
        """Read the dossiers of a batch in one query (each delivery then takes its own)."""
        ids = sorted({i.dossier_id for i in items if i.dossier_id is not None})
        if ids:
            rows = _dossier_rows(self.ctx, ids)
            with self._lock:
                self._prepared = rows  # the previous batch's are dropped

    def _dossier(self, dossier_id: int | None) -> dict[str, Any]:
        if dossier_id is None:
            raise PermanentDeliveryError("inter-agency row without a dossier")
        with self._lock:
            data = self._prepared.get(dossier_id)
        if data is None:
            data = _dossier_rows(self.ctx, [dossier_id]).get(dossier_id)
        if data is None:
            raise PermanentDeliveryError(f"dossier {dossier_id} not found")
        return data

    def callback_url(self, unit_code: str) -> str:
        return f"{self.callback_base_url}/api/v1/callbacks/agency/{unit_code}"

    def deliver(self, item: Claimed) -> None:
        unit = item.target
        if not unit:
            raise PermanentDeliveryError("inter-agency row without a target unit")
        try:
            url = self.directory.endpoint_for(unit)
            secret = self.directory.secret_for(unit)
        except AgencyNotConfigured as error:
            raise PermanentDeliveryError(error.message_en) from None
        body = json.dumps(
            {
                "idempotency_key": item.key,
                "unit": unit,
                "step": item.payload.get("step"),
                "event": item.payload.get("event"),
                "dossier": self._dossier(item.dossier_id),
                "callback_url": self.callback_url(unit),
            },
            ensure_ascii=False,
        ).encode()
        headers = {"Content-Type": "application/json", KEY_HEADER: item.key}
        headers.update(signed_headers(secret, body))
        try:
            response = self.http.post(url, content=body, headers=headers)
        except httpx.HTTPError as error:
            raise DeliveryError(f"{unit}: {type(error).__name__}: {error}") from None
        if response.status_code in (408, 409, 425, 429) or response.status_code >= 500:
            raise DeliveryError(f"{unit}: HTTP {response.status_code}")
        if response.status_code >= 400:
            raise PermanentDeliveryError(
                f"{unit}: HTTP {response.status_code} {response.text[:200]}"
            )

    def close(self) -> None:
        self.http.close()


class AgencyAnswerIn(BaseModel):
    """What another agency's system sends back when it has done its step."""

    answer_id: str = Field(min_length=1, max_length=128)
    dossier_code: str = Field(min_length=1, max_length=48)
    idempotency_key: str | None = Field(default=None, max_length=64)
    outcome: Literal["forward", "send_back"] = "forward"
    note: str | None = Field(default=None, max_length=2000)
    data: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class AnswerResult:
    status: Literal["applied", "duplicate"]
    dossier_code: str
    dossier_status: str


def _dossier_left_step(ctx: Context, code: str, unit_code: str) -> Dossier | None:
    """The dossier, if it is no longer at this unit's inter-agency step (answer already applied
    or overtaken), else None."""
    with ctx.uow() as uow:
        dossier = uow.get_dossier(code)
    steps = {s.id: s for s in procedure_of(ctx, dossier).process}
    step = steps.get(dossier.status)
    at_unit_step = (
        step is not None and step.inter_agency and dossier.step_units.get(step.id) == unit_code
    )
    return None if at_unit_step else dossier


def receive_answer(ctx: Context, unit_code: str, answer: AgencyAnswerIn) -> AnswerResult:
    """Apply an agency's (already authenticated) answer exactly once per answer id."""
    now = ctx.clock.now()
    with ctx.uow() as uow:
        current = uow.get_dossier(answer.dossier_code)  # DossierNotFound before storing
        existing = uow.session.exec(
            select(AgencyAnswer).where(
                AgencyAnswer.unit_code == unit_code, AgencyAnswer.answer_id == answer.answer_id
            )
        ).first()
        if existing is None:
            uow.session.add(
                AgencyAnswer(
                    unit_code=unit_code,
                    answer_id=answer.answer_id,
                    dossier_code=answer.dossier_code,
                    idempotency_key=answer.idempotency_key,
                    outcome=answer.outcome,
                    data={"note": answer.note, **answer.data},
                    received_at=now,
                )
            )
            try:
                uow.commit()
            except IntegrityError:
                existing = None  # the same answer, arriving twice at once: fall through
        elif existing.status == "applied":
            return AnswerResult("duplicate", current.code, current.status)

    actor = system_actor(unit_code)
    status: Literal["applied", "duplicate"] = "applied"
    try:
        with ctx.uow() as uow:
            dossier = uow.get_dossier(answer.dossier_code)
        if answer.outcome == "forward":
            dossier = act(ctx, actor, dossier.code, "forward", dossier.version)
        else:
            dossier = act(
                ctx,
                actor,
                dossier.code,
                "send_back",
                dossier.version,
                reason=answer.note or "Cơ quan phối hợp trả lại hồ sơ",
            )
    except (StaleDossier, TransitionRejected):
        moved = _dossier_left_step(ctx, answer.dossier_code, unit_code)
        if moved is None:
            raise
        dossier, status = moved, "duplicate"  # applied by the twin of this answer
    with ctx.uow() as uow:
        row = uow.session.exec(
            select(AgencyAnswer).where(
                AgencyAnswer.unit_code == unit_code, AgencyAnswer.answer_id == answer.answer_id
            )
        ).one()
        if row.status != "applied":
            row.status = "applied"
            row.applied_at = ctx.clock.now()
            uow.session.add(row)
            uow.commit()
    return AnswerResult(status, dossier.code, dossier.status)


__all__ = [
    "KEY_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "AgencyAnswerIn",
    "AgencyClient",
    "AgencyDirectory",
    "AgencyNotConfigured",
    "AnswerResult",
    "BadSignature",
    "DossierNotFound",
    "receive_answer",
    "sign",
    "signed_headers",
    "system_actor",
    "verify_signature",
]
