"""Sign-in: a bearer token for the API (the pages use the same token as a cookie)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from api.auth import Officer, OfficerDep, require_roles
from api.deps import ContextDep, SettingsDep
from api.schemas import OfficerPublic, SignIn, TokenPublic, problems
from services.accounts import TOKEN_HOURS, issue_token, service_identity, sign_in

SERVICE_TOKEN_HOURS = 24 * 30

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post("/token", response_model=TokenPublic, responses=problems(401, 422, 429))
def create_token(
    body: SignIn, request: Request, ctx: ContextDep, settings: SettingsDep
) -> TokenPublic:
    """Đăng nhập / sign in with username and password; failed attempts are rate-limited."""
    identity = sign_in(ctx, body.username, body.password, client_of(request))
    now = ctx.clock.now()
    return TokenPublic(
        access_token=issue_token(identity, settings.secret_key, now),
        expires_at=now + timedelta(hours=TOKEN_HOURS),
        officer=OfficerPublic(**identity.__dict__),
    )


@router.get("/me", response_model=OfficerPublic, responses=problems(401))
def me(officer: OfficerDep) -> OfficerPublic:
    """Cán bộ đang đăng nhập / the signed-in officer."""
    return OfficerPublic(**officer.__dict__)


class ServiceTokenIn(BaseModel):
    unit_code: str = Field(min_length=1, max_length=64)


@router.post("/service-token", response_model=TokenPublic, responses=problems(401, 403, 404, 422))
def create_service_token(
    body: ServiceTokenIn,
    ctx: ContextDep,
    settings: SettingsDep,
    _admin: Annotated[Officer, Depends(require_roles("admin"))],
) -> TokenPublic:
    """Token for another agency's system (role ``system`` of that unit), which answers the
    inter-agency steps of its unit through the same event endpoint. Admins only."""
    ctx.catalog.unit(body.unit_code)
    identity = service_identity(body.unit_code)
    now = ctx.clock.now()
    return TokenPublic(
        access_token=issue_token(identity, settings.secret_key, now, hours=SERVICE_TOKEN_HOURS),
        expires_at=now + timedelta(hours=SERVICE_TOKEN_HOURS),
        officer=OfficerPublic(**identity.__dict__),
    )
