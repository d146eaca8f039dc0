"""Assignments (phân công thụ lý) and leaders' delegations (ủy quyền).

``POST /api/v1/assignments`` assigns one or many dossiers to a specialist, all or nothing: a
refused batch answers one problem (409 ``assignment_refused``, or the status every refusal
shares) whose ``errors`` list each refused dossier with its own ``code``, ``status`` and
messages; nothing was assigned.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, model_validator

from api.auth import OfficerDep
from api.deps import ContextDep
from api.errors import domain_problem, problem, problem_response, status_of
from api.idempotency import IdempotencyKey, run_once
from api.schemas import problems
from services.assignments import (
    MAX_BATCH,
    AssignmentRefused,
    assign,
    assignments_of,
    delegate,
    list_delegations,
    revoke_delegation,
)
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
) -> JSONResponse:
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
