"""Citizen lookup API (public, rate-limited)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from api.deps import ContextDep
from api.routes.auth import client_of
from api.schemas import LookupPublic, problems
from services.lookup import lookup

router = APIRouter(prefix="/api/v1", tags=["lookup"])

CodeQuery = Annotated[str, Query(min_length=1, max_length=48, description="Mã hồ sơ")]
DigitsQuery = Annotated[
    str,
    Query(
        min_length=4,
        max_length=4,
        pattern=r"^[0-9]{4}$",
        description="4 số cuối CCCD hoặc số điện thoại / last 4 digits of ID number or phone",
    ),
]


@router.get("/lookup", response_model=LookupPublic, responses=problems(404, 422, 429))
def lookup_dossier(
    code: CodeQuery, digits: DigitsQuery, request: Request, ctx: ContextDep
) -> LookupPublic:
    """Tra cứu hồ sơ / look a dossier up: status, appointment, step in progress only."""
    view = lookup(ctx, code, digits, client_of(request))
    return LookupPublic(**view.__dict__)
