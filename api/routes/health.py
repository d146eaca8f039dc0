"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ContextDep
from api.schemas import Health, problems
from services.errors import DomainError
from storage.db import ping

router = APIRouter(tags=["health"])


class DatabaseDown(DomainError):
    code = "database_unreachable"
    http_status = 503


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process answers."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses=problems(503))
def readyz(ctx: ContextDep) -> Health:
    """The database is reachable."""
    try:
        ping(ctx.engine)
    except Exception:
        raise DatabaseDown(
            "Không kết nối được cơ sở dữ liệu", "The database is unreachable"
        ) from None
    return Health(status="ok", database=ctx.engine.dialect.name)
