"""Procedures, agencies and users (read-only)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlmodel import select

from api.auth import Officer, OfficerDep, require_roles
from api.deps import ContextDep
from api.errors import ResourceNotFound
from api.schemas import (
    AgencyPublic,
    ComponentPublic,
    ProcedureDetail,
    ProcedureSummary,
    StepPublic,
    UserPublic,
    problems,
)
from services.access import PROVINCE_WIDE_ROLES, units_under
from services.catalog import Procedure, ProcedureVersion
from services.errors import CatalogError
from storage.models import User

router = APIRouter(prefix="/api/v1", tags=["catalog"])


def _summary(procedure: Procedure, version: ProcedureVersion) -> ProcedureSummary:
    return ProcedureSummary(
        code=procedure.code,
        name=procedure.name,
        field=procedure.field,
        version=version.version,
        level=version.level,
        time_limit=version.time_limit,
        inter_agency=version.inter_agency,
    )


@router.get("/procedures", response_model=list[ProcedureSummary], responses=problems(401))
def list_procedures(
    ctx: ContextDep,
    _officer: OfficerDep,
    on: Annotated[date | None, Query(description="version in force on (default today)")] = None,
) -> list[ProcedureSummary]:
    """Thủ tục hành chính với phiên bản đang áp dụng / procedures with the version in force."""
    day = on or ctx.clock.now().date()
    result = []
    for procedure in sorted(ctx.catalog.procedures.values(), key=lambda p: p.code):
        try:
            result.append(_summary(procedure, procedure.version_at(day)))
        except CatalogError:
            continue
    return result


@router.get("/procedures/{code}", response_model=ProcedureDetail, responses=problems(401, 404))
def show_procedure(
    code: str,
    ctx: ContextDep,
    _officer: OfficerDep,
    version: Annotated[int | None, Query(ge=1, le=10_000)] = None,
) -> ProcedureDetail:
    """Một thủ tục: quy trình nội bộ, thời hạn, thành phần / one procedure with its process."""
    try:
        procedure = ctx.catalog.procedure(code)
        v = procedure.version(version) if version else procedure.version_at(ctx.clock.now().date())
    except CatalogError as error:
        raise ResourceNotFound(error.message_vi, error.message_en) from None
    return ProcedureDetail(
        **_summary(procedure, v).model_dump(),
        name_en=procedure.name_en,
        effective_from=v.effective_from,
        effective_to=v.effective_to,
        competent_agency=v.competent_agency,
        fee=v.fee,
        components=[ComponentPublic(**c.model_dump(exclude={"shown_only"})) for c in v.components],
        process=[StepPublic(**s.model_dump()) for s in v.process],
    )


def _agency(unit: object) -> AgencyPublic:
    return AgencyPublic.model_validate(unit, from_attributes=True)


@router.get("/agencies", response_model=list[AgencyPublic], responses=problems(401))
def list_agencies(ctx: ContextDep, _officer: OfficerDep) -> list[AgencyPublic]:
    """Cơ quan, đơn vị / agencies and units."""
    return [_agency(u) for u in sorted(ctx.catalog.units.values(), key=lambda u: u.code)]


@router.get("/agencies/{code}", response_model=AgencyPublic, responses=problems(401, 404))
def show_agency(code: str, ctx: ContextDep, _officer: OfficerDep) -> AgencyPublic:
    unit = ctx.catalog.units.get(code)
    if unit is None:
        raise ResourceNotFound(f"Không có đơn vị {code}", f"No unit {code}", unit=code)
    return _agency(unit)


@router.get("/users", response_model=list[UserPublic], responses=problems(401, 403))
def list_users(
    ctx: ContextDep,
    officer: Annotated[Officer, Depends(require_roles("leader", "supervisor", "admin"))],
    unit: Annotated[str | None, Query(max_length=64)] = None,
    role: Annotated[str | None, Query(max_length=16)] = None,
) -> list[UserPublic]:
    """Cán bộ / officers: a leader sees the unit's, a supervisor the units under it."""
    visible: set[str] | None
    if officer.role in PROVINCE_WIDE_ROLES:
        home = ctx.catalog.units.get(officer.unit_code)
        visible = (
            None
            if home and home.kind == "province"
            else units_under(ctx.catalog, officer.unit_code)
        )
    else:
        visible = {officer.unit_code}
    query = select(User).order_by(User.username)
    if unit:
        query = query.where(User.unit_code == unit)
    if role:
        query = query.where(User.role == role)
    with ctx.uow() as uow:
        users = uow.session.exec(query).all()
    return [
        UserPublic.model_validate(u, from_attributes=True)
        for u in users
        if visible is None or u.unit_code in visible
    ]
