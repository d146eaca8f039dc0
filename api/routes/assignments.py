"""Assignments (phân công thụ lý) and leaders' delegations (ủy quyền).

``POST /api/v1/assignments`` assigns one or many dossiers to a specialist, all or nothing: a
refused batch answers one problem (409 ``assignment_refused``, or the status every refusal
shares) whose ``errors`` list each refused dossier with its own ``code``, ``status`` and
messages; nothing was assigned.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field, model_validator
from sqlmodel import col, select

from api.auth import MaybeOfficerDep, Officer, OfficerDep
from api.deps import ContextDep
from api.errors import domain_problem, problem, problem_response, status_of
from api.idempotency import IdempotencyKey, run_once
from api.schemas import problems
from services.assignments import (
    DEPUTY_ROLES,
    MAX_BATCH,
    AssignmentRefused,
    assign,
    assignments_of,
    delegate,
    leader_units,
    list_delegations,
    revoke_delegation,
    specialists_of,
)
from services.context import Context
from services.errors import DomainError, InvalidInput
from storage.models import TZ, User
from storage.models_assignments import Assignment, Delegation

router = APIRouter(prefix="/api/v1", tags=["assignments"])

Code = Annotated[str, Field(min_length=1, max_length=48)]


class AssignmentTarget(BaseModel):
    code: Code
    version: int | None = Field(
        default=None, ge=1, le=999_999_999, description="the dossier's ETag seen; stale → refused"
    )


class AssignmentCreate(BaseModel):
    """Giao hồ sơ cho chuyên viên / assign dossiers to a specialist of the step's unit."""

    dossiers: list[Code | AssignmentTarget] = Field(
        min_length=1,
        max_length=MAX_BATCH,
        description="dossier codes, or {code, version} to refuse a dossier changed since",
    )
    assignee: str = Field(min_length=1, max_length=64, description="the specialist's username")
    reason: str = Field(min_length=1, max_length=2000, description="lý do / nội dung phân công")

    def codes(self) -> list[str]:
        return [d if isinstance(d, str) else d.code for d in self.dossiers]

    def expected(self) -> dict[str, int]:
        return {
            d.code: d.version
            for d in self.dossiers
            if isinstance(d, AssignmentTarget) and d.version is not None
        }


class AssignmentPublic(BaseModel):
    id: int
    dossier: str
    step_id: str | None
    unit_code: str | None
    kind: Literal["assign", "reassign"]
    assignee: str
    previous_assignee: str | None
    assigned_by: str
    on_behalf_of: str | None = Field(description="the leader whose delegation was used")
    reason: str | None
    at: datetime

    @classmethod
    def of(cls, code: str, row: Assignment) -> AssignmentPublic:
        return cls(
            id=row.id or 0,
            dossier=code,
            step_id=row.step_id,
            unit_code=row.unit_code,
            kind="reassign" if row.kind == "reassign" else "assign",
            assignee=row.assignee,
            previous_assignee=row.previous_assignee,
            assigned_by=row.assigned_by,
            on_behalf_of=row.on_behalf_of,
            reason=row.reason,
            at=row.at,
        )


class AssignedDossier(BaseModel):
    code: str
    version: int = Field(description="the dossier's new ETag")
    assignment: AssignmentPublic


class AssignmentBatch(BaseModel):
    items: list[AssignedDossier]


class AssignmentHistory(BaseModel):
    code: str
    assignee: str | None = Field(description="the current assignee")
    items: list[AssignmentPublic]


class DelegationCreate(BaseModel):
    """Ủy quyền của lãnh đạo / the signed-in leader delegates to a deputy of the unit."""

    deputy: str = Field(min_length=1, max_length=64)
    valid_from: datetime
    valid_to: datetime
    reason: str = Field(min_length=1, max_length=2000)

    @model_validator(mode="after")
    def _aware(self) -> DelegationCreate:
        if self.valid_from.tzinfo is None or self.valid_to.tzinfo is None:
            raise ValueError("valid_from and valid_to need a time zone offset")
        return self


class DelegationPublic(BaseModel):
    id: int
    unit_code: str
    leader: str
    deputy: str
    valid_from: datetime
    valid_to: datetime
    reason: str | None
    created_by: str
    created_at: datetime
    revoked_at: datetime | None
    revoked_by: str | None
    revoke_reason: str | None
    active: bool = Field(description="in force now")

    @classmethod
    def of(cls, row: Delegation, now: datetime) -> DelegationPublic:
        return cls(
            id=row.id or 0,
            unit_code=row.unit_code,
            leader=row.leader,
            deputy=row.deputy,
            valid_from=row.valid_from,
            valid_to=row.valid_to,
            reason=row.reason,
            created_by=row.created_by,
            created_at=row.created_at,
            revoked_at=row.revoked_at,
            revoked_by=row.revoked_by,
            revoke_reason=row.revoke_reason,
            active=row.active_at(now),
        )


class DelegationList(BaseModel):
    items: list[DelegationPublic]


def refused_problem(error: AssignmentRefused, instance: str) -> Response:
    """The batch's problem: one entry per refused dossier; the status they share, else 409."""
    entries: list[dict[str, Any]] = []
    for code, failure in error.failures:
        body, status = domain_problem(failure)
        entries.append(
            {
                "dossier": code,
                "code": failure.code,
                "status": status,
                "detail": failure.message_vi,
                "detail_en": failure.message_en,
                **{k: v for k, v in body.items() if k in ("unit", "state", "expected", "actual")},
            }
        )
    statuses = {e["status"] for e in entries}
    status = statuses.pop() if len(statuses) == 1 else status_of(error)
    return problem_response(
        problem(status, error.code, error.message_vi, error.message_en, instance, errors=entries)
    )


@router.post(
    "/assignments",
    status_code=201,
    response_model=AssignmentBatch,
    responses=problems(401, 403, 404, 409, 412, 422),
)
def create_assignments(
    body: AssignmentCreate,
    request: Request,
    ctx: ContextDep,
    officer: OfficerDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Phân công / giao lại hồ sơ cho chuyên viên / assign or reassign dossiers, all or none.

    Only a leader of the unit holding each dossier's current step (or a deputy with a
    delegation in force, or an admin), only to an active specialist of that unit, with a reason.
    A refused batch assigns nothing and lists each refused dossier in ``errors``.
    The same ``Idempotency-Key`` replays the first answer."""

    def handle() -> tuple[int, Any, dict[str, str]]:
        done = assign(
            ctx,
            officer.actor,
            body.codes(),
            body.assignee,
            body.reason,
            expected=body.expected(),
        )
        items = [
            AssignedDossier(
                code=a.code, version=a.version, assignment=AssignmentPublic.of(a.code, a.assignment)
            )
            for a in done
        ]
        return 201, AssignmentBatch(items=items), {}

    try:
        return run_once(
            ctx,
            officer,
            idempotency_key,
            "POST /api/v1/assignments",
            body.model_dump_json(),
            handle,
        )
    except AssignmentRefused as error:
        return refused_problem(error, request.url.path)


@router.get(
    "/dossiers/{code}/assignments",
    response_model=AssignmentHistory,
    responses=problems(401, 403, 404),
)
def dossier_assignments(code: str, ctx: ContextDep, officer: OfficerDep) -> AssignmentHistory:
    """Lịch sử phân công của hồ sơ / who was given the dossier, by whom, when and why."""
    dossier, rows = assignments_of(ctx, officer.actor, code)
    return AssignmentHistory(
        code=dossier.code,
        assignee=dossier.assignee,
        items=[AssignmentPublic.of(dossier.code, r) for r in rows],
    )


@router.post(
    "/delegations",
    status_code=201,
    response_model=DelegationPublic,
    responses=problems(401, 403, 404, 409, 422),
)
def create_delegation(
    body: DelegationCreate,
    ctx: ContextDep,
    officer: OfficerDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Ủy quyền / the signed-in leader lets a deputy (a leader or specialist of the same unit)
    act as leader of the unit from ``valid_from`` until ``valid_to``: assign dossiers and send
    the leader's lifecycle events, recorded in the leader's name."""

    def handle() -> tuple[int, Any, dict[str, str]]:
        row = delegate(ctx, officer.actor, body.deputy, body.valid_from, body.valid_to, body.reason)
        return (
            201,
            DelegationPublic.of(row, ctx.clock.now()),
            {"Location": f"/api/v1/delegations/{row.id}"},
        )

    return run_once(
        ctx,
        officer,
        idempotency_key,
        "POST /api/v1/delegations",
        body.model_dump_json(),
        handle,
    )


@router.get("/delegations", response_model=DelegationList, responses=problems(401, 422))
def delegations(
    ctx: ContextDep,
    officer: OfficerDep,
    active: Annotated[bool, Query(description="only those in force now")] = False,
) -> DelegationList:
    """Các ủy quyền của đơn vị / delegations of the officer's unit (a supervisor: the units
    under theirs), newest first."""
    now = ctx.clock.now()
    rows = list_delegations(ctx, officer.actor, active_only=active)
    return DelegationList(items=[DelegationPublic.of(r, now) for r in rows])


@router.delete(
    "/delegations/{delegation_id}",
    response_model=DelegationPublic,
    responses=problems(401, 403, 404, 409, 422),
)
def revoke(
    delegation_id: Annotated[int, Path(ge=1, le=2_147_483_647)],
    ctx: ContextDep,
    officer: OfficerDep,
    reason: Annotated[str | None, Query(max_length=2000)] = None,
) -> DelegationPublic:
    """Thu hồi ủy quyền / revoke a delegation from now on (the leader who gave it, or an
    admin); it stays listed with who revoked it, when and why."""
    row = revoke_delegation(ctx, officer.actor, delegation_id, reason)
    return DelegationPublic.of(row, ctx.clock.now())


# --- officer pages: assign from the worklist, delegate ----------------------------------------

pages_router = APIRouter(include_in_schema=False)


def worklist_panel(ctx: Context, officer: Officer) -> dict[str, Any]:
    """What the worklist page needs for assignment: the units where the officer may assign now
    (own as leader, or by a delegation in force), that unit's specialists, the delegations."""
    actor = officer.actor
    powers = leader_units(ctx, actor)
    unit = officer.unit_code
    can_assign = unit in powers
    now = ctx.clock.now()
    delegations = list_delegations(ctx, actor, limit=20) if officer.role != "counter" else []
    deputies: list[Any] = []
    if officer.role == "leader":
        with ctx.uow() as uow:
            deputies = list(
                uow.session.exec(
                    select(User)
                    .where(
                        User.unit_code == unit,
                        col(User.role).in_(sorted(DEPUTY_ROLES)),
                        col(User.active).is_(True),
                        User.username != officer.username,
                    )
                    .order_by(col(User.role), col(User.username))
                ).all()
            )
    return {
        "can_assign": can_assign,
        "acting_for": powers.get(unit) if can_assign else None,
        "specialists": specialists_of(ctx, unit) if can_assign else [],
        "delegations": [(d, d.active_at(now), d.valid_to > now) for d in delegations],
        "deputies": deputies,
        "now_local": now.strftime("%Y-%m-%dT%H:%M"),
    }


def _to_worklist(**query: str | int) -> RedirectResponse:
    return RedirectResponse(f"/worklist?{urlencode(query)}", status_code=303)


def _worklist_error(request: Request, ctx: Context, officer: Officer, error: str, status: int,
                    problems_list: list[str] | None = None) -> Response:  # fmt: skip
    from api.routes.pages import worklist_page

    page = worklist_page(request, ctx, officer, error=error, error_items=problems_list or [])
    page.status_code = status
    return page


@pages_router.post("/worklist/assign", response_model=None)
def assign_page(
    request: Request,
    ctx: ContextDep,
    officer: MaybeOfficerDep,
    assignee: Annotated[str, Form(max_length=64)] = "",
    reason: Annotated[str, Form(max_length=2000)] = "",
    dossier: Annotated[list[str] | None, Form(max_length=80)] = None,
) -> Response:
    """The leader's worklist form: the ticked dossiers (``CODE@VERSION``) to one specialist."""
    if officer is None:
        return RedirectResponse("/signin?next=/worklist", status_code=303)
    picked = dossier or []
    codes, expected = [], {}
    for value in picked:
        code, _, version = value.rpartition("@")
        if not code:
            code, version = value, ""
        codes.append(code)
        if version.isdigit() and len(version) < 10:
            expected[code] = int(version)
    try:
        if not assignee:
            raise InvalidInput("Cần chọn chuyên viên", "Choose a specialist")
        done = assign(ctx, officer.actor, codes, assignee, reason, expected=expected)
    except AssignmentRefused as refused:
        items = [f"{code}: {error.message_vi}" for code, error in refused.failures]
        return _worklist_error(request, ctx, officer, "Không hồ sơ nào được phân công.", 409, items)
    except DomainError as error:
        return _worklist_error(request, ctx, officer, error.message_vi, status_of(error))
    return _to_worklist(assigned=len(done), to=assignee)


@pages_router.post("/worklist/delegations", response_model=None)
def delegate_page(
    request: Request,
    ctx: ContextDep,
    officer: MaybeOfficerDep,
    deputy: Annotated[str, Form(max_length=64)] = "",
    valid_from: Annotated[str, Form(max_length=32)] = "",
    valid_to: Annotated[str, Form(max_length=32)] = "",
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    if officer is None:
        return RedirectResponse("/signin?next=/worklist", status_code=303)
    try:
        start, end = _local(valid_from), _local(valid_to)
        delegate(ctx, officer.actor, deputy, start, end, reason)
    except DomainError as error:
        return _worklist_error(request, ctx, officer, error.message_vi, status_of(error))
    return _to_worklist(delegated=deputy)


@pages_router.post("/worklist/delegations/{delegation_id}/revoke", response_model=None)
def revoke_page(
    delegation_id: int,
    request: Request,
    ctx: ContextDep,
    officer: MaybeOfficerDep,
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    if officer is None:
        return RedirectResponse("/signin?next=/worklist", status_code=303)
    try:
        revoke_delegation(ctx, officer.actor, delegation_id, reason)
    except DomainError as error:
        return _worklist_error(request, ctx, officer, error.message_vi, status_of(error))
    return _to_worklist(revoked=delegation_id)


def _local(text: str) -> datetime:
    """A ``datetime-local`` field, read on the Asia/Ho_Chi_Minh clock."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput("Thời điểm không hợp lệ (ngày giờ)", "Invalid date and time") from None
    return value if value.tzinfo else value.replace(tzinfo=TZ)
