"""Dossiers: receive, lifecycle events (If-Match + ETag), one, a list, the slip (Form 05)."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response

from api.auth import Officer, OfficerDep
from api.deps import ContextDep
from api.errors import PreconditionRequired
from api.idempotency import IdempotencyKey, run_once
from api.schemas import (
    ApplicantPublic,
    DossierCreate,
    DossierPage,
    DossierPublic,
    EventIn,
    SlipPublic,
    SlipRowPublic,
    problems,
)
from services.access import ensure_can_see
from services.context import Context
from services.dossiers import DossierIn, act, allowed_events, procedure_of, submit_dossier
from services.errors import InvalidInput
from services.slip import SlipRow, control_slip
from services.worklist import DossierFilter, list_dossiers, progress_of
from states.events import EVENTS, STATE_LABELS, Event
from storage.models import Dossier, column_values

router = APIRouter(prefix="/api/v1/dossiers", tags=["dossiers"])


def etag_of(dossier: Dossier) -> str:
    return f'"{dossier.version}"'


def parse_if_match(value: str | None) -> int:
    if value is None or not value.strip():
        raise PreconditionRequired()
    text = value.strip()
    if text.startswith("W/"):
        text = text[2:]
    text = text.strip('"')
    if not text.isdigit() or len(text) > 9:
        raise InvalidInput(
            'If-Match phải là ETag của hồ sơ, ví dụ "3"',
            'If-Match must be the dossier\'s ETag, e.g. "3"',
        )
    return int(text)


def state_label(ctx: Context, dossier: Dossier) -> tuple[str, str | None]:
    """Vietnamese label of the dossier's state and the current step's name."""
    step_name = None
    if dossier.current_step:
        version = procedure_of(ctx, dossier)
        step_name = next((s.name for s in version.process if s.id == dossier.current_step), None)
    if dossier.status in STATE_LABELS:
        return STATE_LABELS[dossier.status][0], step_name
    return step_name or dossier.status, step_name


# the fields shown as stored (the others are computed below)
_AS_STORED = tuple(
    name
    for name in DossierPublic.model_fields
    if name in Dossier.model_fields and name != "components"
)


def to_public(ctx: Context, dossier: Dossier, now: datetime | None = None) -> DossierPublic:
    """The dossier as the API shows it; ``now``: the instant its progress is measured at (one
    for a whole page)."""
    label, step_name = state_label(ctx, dossier)
    progress = progress_of(ctx, dossier, now)
    values = column_values(dossier)  # not attribute by attribute: a page reads a thousand
    return DossierPublic(
        **{name: values[name] for name in _AS_STORED},
        procedure_name=ctx.catalog.procedure(values["procedure_code"]).name,
        status_label=label,
        current_step_name=step_name,
        applicant=ApplicantPublic(
            name=values["applicant_name"],
            id_number=values["applicant_id_number"],
            phone=values["applicant_phone"],
            email=values["applicant_email"],
            address=values["applicant_address"],
        ),
        components=[str(c.get("id")) for c in values["components"]],
        progress=progress.progress,
        remaining_working_minutes=progress.remaining_working_minutes,
        allowed_events=allowed_events(ctx, dossier),
    )


def load_visible(ctx: Context, officer: Officer, code: str) -> Dossier:
    """The dossier if the officer may see it (DossierNotFound 404 / OutsideYourAgency 403)."""
    with ctx.uow(read_only=True) as uow:
        dossier = uow.read_dossier(code)
    ensure_can_see(ctx.catalog, officer.actor, dossier)
    return dossier


def _headers(dossier: Dossier, **extra: str) -> dict[str, str]:
    return {"ETag": etag_of(dossier), **extra}


@router.post(
    "",
    status_code=201,
    response_model=DossierPublic,
    responses=problems(401, 403, 404, 409, 422),
)
def receive_dossier(
    body: DossierCreate,
    ctx: ContextDep,
    officer: OfficerDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Tiếp nhận hồ sơ / receive a dossier (or guide once to supplement, or refuse) at the counter.

    With the same ``Idempotency-Key`` the first answer is replayed and no second dossier is made.
    """

    def handle() -> tuple[int, Any, dict[str, str]]:
        data = DossierIn(
            procedure_code=body.procedure_code,
            receiving_unit=body.receiving_unit or officer.unit_code,
            channel=body.channel,
            applicant=body.applicant,
            components=body.components,
            request_summary=body.request_summary,
            external_ref=body.external_ref,
        )
        dossier = submit_dossier(ctx, officer.actor, data, then=body.action, reason=body.reason)
        return (
            201,
            to_public(ctx, dossier),
            _headers(dossier, Location=f"/api/v1/dossiers/{dossier.code}"),
        )

    return run_once(
        ctx, officer, idempotency_key, "POST /api/v1/dossiers", body.model_dump_json(), handle
    )


@router.get("", response_model=DossierPage, responses=problems(401, 422))
def list_(
    ctx: ContextDep,
    officer: OfficerDep,
    agency: Annotated[str | None, Query(max_length=64, description="passing through")] = None,
    procedure: Annotated[str | None, Query(max_length=32)] = None,
    status: Annotated[str | None, Query(max_length=48)] = None,
    due_before: Annotated[datetime | None, Query()] = None,
    late_only: bool = False,
    assignee: Annotated[
        str | None, Query(max_length=64, description="assigned to (at the current step)")
    ] = None,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Response:
    """Danh sách hồ sơ trong phạm vi của cán bộ / dossiers the officer may see, newest first."""
    after_id = None
    if cursor:
        try:
            after_id = int(base64.urlsafe_b64decode(cursor.encode() + b"==").decode())
        except (ValueError, UnicodeDecodeError):
            raise InvalidInput("Con trỏ trang không hợp lệ", "Invalid cursor") from None
    if due_before is not None and due_before.tzinfo is None:
        raise InvalidInput("due_before cần múi giờ", "due_before needs a time zone")
    filters = DossierFilter(
        agency=agency,
        procedure=procedure,
        status=status,
        due_before=due_before,
        late_only=late_only,
        assignee=assignee,
    )
    rows = list_dossiers(ctx, officer.actor, filters, after_id=after_id, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = (
        base64.urlsafe_b64encode(str(rows[-1].id).encode()).decode().rstrip("=")
        if more and rows
        else None
    )
    now = ctx.clock.now()
    page = DossierPage(items=[to_public(ctx, d, now) for d in rows], next_cursor=next_cursor)
    # serialized here: FastAPI's answer for a model re-validates it (dumped, checked, dumped
    # again), which cost about a tenth of a worklist read
    return Response(page.model_dump_json(), media_type="application/json")


@router.get("/{code}", response_model=DossierPublic, responses=problems(401, 403, 404))
def show(code: str, ctx: ContextDep, officer: OfficerDep, response: Response) -> DossierPublic:
    """Một hồ sơ: bước hiện tại, hạn, tình trạng đúng hạn đến nay / one dossier; ETag = version."""
    dossier = load_visible(ctx, officer, code)
    response.headers["ETag"] = etag_of(dossier)
    return to_public(ctx, dossier)


@router.post(
    "/{code}/events/{event}",
    response_model=DossierPublic,
    responses=problems(401, 403, 404, 409, 412, 422, 428),
)
def send_event(
    code: str,
    event: Event,
    ctx: ContextDep,
    officer: OfficerDep,
    body: EventIn | None = None,
    if_match: Annotated[
        str | None, Header(alias="If-Match", max_length=64, description='ETag, e.g. "3"')
    ] = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Một sự kiện của vòng đời hồ sơ / one lifecycle event. ``If-Match`` is required (428);
    a stale one answers 412."""
    assert event in EVENTS
    payload = body or EventIn()
    expected = parse_if_match(if_match)

    def handle() -> tuple[int, Any, dict[str, str]]:
        dossier = act(
            ctx,
            officer.actor,
            code,
            event,
            expected,
            reason=payload.reason,
            decision_ref=payload.decision_ref,
            new_appointment=payload.new_appointment,
            visible=lambda row: ensure_can_see(ctx.catalog, officer.actor, row),
        )
        return 200, to_public(ctx, dossier), _headers(dossier)

    return run_once(
        ctx,
        officer,
        idempotency_key,
        f"POST /api/v1/dossiers/{code}/events/{event}",
        f"{expected}\n{payload.model_dump_json()}",
        handle,
    )


@router.get("/{code}/slip", response_model=SlipPublic, responses=problems(401, 403, 404))
def slip(code: str, ctx: ContextDep, officer: OfficerDep) -> SlipPublic:
    """Phiếu kiểm soát quá trình giải quyết hồ sơ (Form 05): each handoff and its timeliness."""
    load_visible(ctx, officer, code)
    s = control_slip(ctx, code)
    d = s.dossier
    names = s.unit_names
    coordinating = sorted(set(d.step_units.values()) - {d.competent_agency, d.receiving_unit})

    def public(r: SlipRow) -> SlipRowPublic:
        return SlipRowPublic(
            seq=r.seq,
            event=r.event,
            label=r.label,
            at=r.at,
            from_unit=r.from_unit,
            from_unit_name=names.get(r.from_unit or ""),
            to_unit=r.to_unit,
            to_unit_name=names.get(r.to_unit or ""),
            giver=r.giver,
            step_id=r.step_id,
            step_due_at=r.step_due_at,
            result=r.result,
            note=r.note,
            receiver=r.receiver,
        )

    return SlipPublic(
        code=d.code,
        applicant_name=d.applicant_name,
        procedure_code=d.procedure_code,
        competent_agency=d.competent_agency,
        coordinating_agencies=coordinating,
        received_at=d.received_at,
        appointment_at=d.appointment_at,
        timeliness=d.timeliness,
        rows=[public(r) for r in s.rows],
        assignments=[public(a) for a in s.assignments],
    )
