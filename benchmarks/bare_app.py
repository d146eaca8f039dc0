"""The framework's own limit: the product's HTTP stack serving one bare indexed read.

``uvicorn benchmarks.bare_app:create_app --factory`` — FastAPI, a sync route (run in the thread
pool like the product's routes), a SQLModel session from the product's engine factory
(``storage.db.make_engine``, same pool), one ``SELECT`` of a dossier by its unique code, a small
pydantic answer, the same number of request threads (``MOTCUA_REQUEST_THREADS``). No
authentication, no domain logic: what any endpoint costs at least.
The database is ``MOTCUA_DATABASE_URL``. Not part of the product (benchmarks/ only)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from datetime import datetime

import anyio
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from sqlmodel import Session, select

from services.settings import Settings
from storage.db import make_engine
from storage.models import Dossier


class DossierBrief(BaseModel):
    code: str
    status: str
    version: int
    due_at: datetime | None


def create_app() -> FastAPI:
    engine = make_engine(os.environ["MOTCUA_DATABASE_URL"])
    threads = Settings().request_threads  # as api.app's lifespan sets them

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/bare/dossiers/{code}")
    def read(code: str) -> DossierBrief:
        with Session(engine) as session:
            row = session.exec(select(Dossier).where(Dossier.code == code)).first()
        if row is None:
            raise HTTPException(404)
        return DossierBrief(
            code=row.code, status=row.status, version=row.version, due_at=row.due_at
        )

    return app
