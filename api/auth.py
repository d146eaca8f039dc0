"""Who is calling: a bearer token (API) or the session cookie (pages), and their role."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from api.deps import ContextDep, SettingsDep, get_context, settings_of
from services.accounts import Forbidden, Identity, NotAuthenticated, read_token
from states.lifecycle import Actor

SESSION_COOKIE = "motcua_session"

bearer_scheme = HTTPBearer(auto_error=False, description="Token from POST /api/v1/auth/token")
cookie_scheme = APIKeyCookie(
    name=SESSION_COOKIE, auto_error=False, description="Session cookie set by the sign-in page"
)


@dataclass(frozen=True)
class Officer:
    username: str
    full_name: str
    role: str
    unit_code: str

    @property
    def actor(self) -> Actor:
        return Actor(username=self.username, role=self.role, unit_code=self.unit_code)

    @classmethod
    def of(cls, identity: Identity) -> Officer:
        return cls(identity.username, identity.full_name, identity.role, identity.unit_code)


def token_of(bearer: HTTPAuthorizationCredentials | None, cookie: str | None) -> str | None:
    if bearer is not None and bearer.scheme.lower() == "bearer" and bearer.credentials:
        return bearer.credentials
    return cookie or None


async def current_officer(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    cookie: Annotated[str | None, Depends(cookie_scheme)],
) -> Officer:
    """The signed-in officer; a 401 problem when the token is missing, invalid or expired.

    The context and the settings are taken from the request, not as dependencies: each
    dependency costs FastAPI's solving on every request of every route that needs an officer
    (the two schemes stay, for the OpenAPI description)."""
    token = token_of(bearer, cookie)
    if token is None:
        raise NotAuthenticated()
    ctx = await get_context(request)
    return Officer.of(read_token(token, settings_of(request).secret_key, ctx.clock.now()))


async def optional_officer(
    request: Request, ctx: ContextDep, settings: SettingsDep
) -> Officer | None:
    """For pages: the officer of the session cookie, or None (the page redirects to sign-in)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    try:
        return Officer.of(read_token(token, settings.secret_key, ctx.clock.now()))
    except NotAuthenticated:
        return None


OfficerDep = Annotated[Officer, Depends(current_officer)]
MaybeOfficerDep = Annotated[Officer | None, Depends(optional_officer)]


def require_roles(*roles: str) -> Callable[[Officer], Awaitable[Officer]]:
    """A dependency that lets through only officers with one of ``roles`` (admin always)."""
    allowed = set(roles)

    async def check(officer: OfficerDep) -> Officer:
        if officer.role not in allowed and officer.role != "admin":
            raise Forbidden(
                f"Vai trò {officer.role} không được thực hiện việc này",
                f"Role {officer.role} may not do this",
                roles=sorted(allowed),
            )
        return officer

    return check
