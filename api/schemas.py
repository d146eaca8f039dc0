"""Request and response models of the HTTP API (one family per resource)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.dossiers import Applicant


class Problem(BaseModel):
    """RFC 9457 problem details, with a stable ``code`` and both languages."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=["urn:motcua:problem:dossier_not_found"])
    title: str
    status: int
    code: str
    detail: str = Field(description="Tiếng Việt")
    detail_en: str = Field(description="English")
    instance: str | None = None


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the problem statuses a route can answer."""
    descriptions = {
        401: "Chưa đăng nhập / not signed in",
        403: "Ngoài phạm vi đơn vị / outside your agency or role",
        404: "Không tìm thấy / not found",
        409: "Không được phép ở trạng thái này / not allowed now",
        412: "ETag đã cũ / stale If-Match",
        422: "Dữ liệu không hợp lệ / invalid input",
        428: "Thiếu If-Match / If-Match required",
        429: "Quá nhiều lần thử / rate limited",
    }
    return {
        s: {
            "model": Problem,
            "description": descriptions.get(s, "problem"),
            "content": {"application/problem+json": {}},
        }
        for s in statuses
    }


# --- auth --------------------------------------------------------------------------------------


class SignIn(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class OfficerPublic(BaseModel):
    username: str
    full_name: str
    role: str
    unit_code: str


class TokenPublic(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_at: datetime
    officer: OfficerPublic


# --- catalog -----------------------------------------------------------------------------------


class ComponentPublic(BaseModel):
    id: str
    name: str
    originals: int
    copies: int
    required: bool


class StepPublic(BaseModel):
    id: str
    name: str
    agency: str
    department: str
    role: str
    share: Decimal
    inter_agency: bool


class ProcedureSummary(BaseModel):
    code: str
    name: str
    field: str
    version: int
    level: str
    time_limit: Decimal
    inter_agency: bool


class ProcedureDetail(ProcedureSummary):
    name_en: str
    effective_from: date
    effective_to: date | None
    competent_agency: str
    fee: str
    components: list[ComponentPublic]
    process: list[StepPublic]


class AgencyPublic(BaseModel):
    code: str
    name: str
    kind: str
    level: str
    parent: str | None
    valid_from: date
    valid_to: date | None


class UserPublic(BaseModel):
    username: str
    full_name: str
    role: str
    unit_code: str
    active: bool


# --- dossiers ----------------------------------------------------------------------------------


class DossierCreate(BaseModel):
    """What the counter officer enters. ``action`` receives the dossier (Form 01), asks once for
    the missing papers (Form 02) or refuses it (Form 03), in the same transaction."""

    procedure_code: str = Field(min_length=1, max_length=32)
    applicant: Applicant
    components: list[str] = Field(default_factory=list, max_length=50)
    request_summary: str | None = Field(default=None, max_length=2000)
    channel: Literal["counter", "online", "post"] = "counter"
    receiving_unit: str | None = Field(
        default=None, max_length=64, description="Defaults to the officer's unit"
    )
    action: Literal["receive", "request_supplement", "refuse"] = "receive"
    reason: str | None = Field(default=None, max_length=2000)
    external_ref: str | None = Field(default=None, max_length=128)


class EventIn(BaseModel):
    reason: str | None = Field(default=None, max_length=2000)
    decision_ref: str | None = Field(default=None, max_length=200)
    new_appointment: datetime | None = None


class ApplicantPublic(BaseModel):
    name: str
    id_number: str | None
    phone: str | None
    email: str | None
    address: str | None


class DossierPublic(BaseModel):
    code: str
    version: int
    procedure_code: str
    procedure_version: int
    procedure_name: str
    rule_set: str
    receiving_unit: str
    competent_agency: str
    current_unit: str | None
    status: str
    status_label: str
    current_step: str | None
    current_step_name: str | None
    assignee: str | None
    channel: str
    applicant: ApplicantPublic
    components: list[str]
    request_summary: str | None
    submitted_at: datetime
    received_at: datetime | None
    due_at: datetime | None
    appointment_at: datetime | None
    step_due_at: datetime | None
    paused_at: datetime | None
    supplement_count: int
    apology_at: datetime | None
    decision: str | None
    decision_ref: str | None
    result_ready_at: datetime | None
    returned_at: datetime | None
    timeliness: str | None = Field(description="early / on_time / late once the result is ready")
    progress: str = Field(
        description="so far: early, on_time, late, not_yet_due, overdue, paused, "
        "not_received, closed"
    )
    remaining_working_minutes: int | None
    allowed_events: list[str] = Field(description="events the lifecycle has from this state")


class DossierPage(BaseModel):
    items: list[DossierPublic]
    next_cursor: str | None


class SlipRowPublic(BaseModel):
    seq: int
    event: str
    label: str
    at: datetime
    from_unit: str | None
    from_unit_name: str | None
    to_unit: str | None
    to_unit_name: str | None
    giver: str
    step_id: str | None
    step_due_at: datetime | None
    result: str | None
    note: str | None
    receiver: str | None = Field(default=None, description="officer given the dossier")


class SlipPublic(BaseModel):
    code: str
    applicant_name: str
    procedure_code: str
    competent_agency: str
    coordinating_agencies: list[str]
    received_at: datetime | None
    appointment_at: datetime | None
    timeliness: str | None
    rows: list[SlipRowPublic]
    assignments: list[SlipRowPublic] = Field(
        default_factory=list,
        description="phân công thụ lý: event assign / reassign, giver → receiver, note = why",
    )


# --- lookup and health -------------------------------------------------------------------------


class LookupPublic(BaseModel):
    """What a citizen may learn: status, appointment, the step in progress. Nothing more."""

    code: str
    status: str
    status_label: str
    appointment_at: datetime | None
    step_in_progress: str | None
    can_rate: bool = False


class Health(BaseModel):
    status: Literal["ok"]
    database: str | None = None
