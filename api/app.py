"""The FastAPI application: API routers under /api/v1, officer pages, citizen lookup, docs."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api import errors
from api.limits import RequestLimits
from api.routes import ROUTERS
from services.context import Context
from services.settings import Settings, get_settings

PAGES_DIR = Path(__file__).resolve().parent / "pages"

DESCRIPTION = """
motcua — Bộ phận Một cửa: tiếp nhận, giải quyết, trả kết quả hồ sơ thủ tục hành chính.

* Sign in with `POST /api/v1/auth/token`, then send `Authorization: Bearer <token>`.
* Errors are RFC 9457 problem details (`application/problem+json`) with a stable `code`,
  `detail` (Vietnamese) and `detail_en`.
* Lifecycle events need `If-Match: "<version>"` (the dossier's ETag): 428 without, 412 if stale.
* POSTs accept `Idempotency-Key`: the same key replays the first answer.
"""


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    anyio.to_thread.current_default_thread_limiter().total_tokens = settings.request_threads
    # What is loaded by now (the modules, FastAPI's routes, ~180,000 objects) lives as long as
    # the process: out of the collector's way. A full collection over it took ~115 ms, a pause
    # of every request in flight (the p99 of benchmarks.transitions).
    gc.collect()
    gc.freeze()
    yield


def create_app(ctx: Context | None = None, settings: Settings | None = None) -> FastAPI:
    """The app; ``ctx`` is built on first use from the settings when not given."""
    from api.routes import auth, catalog, dossiers, forms, health, lookup, pages

    app = FastAPI(
        lifespan=_lifespan,
        title="motcua",
        version="1",
        description=DESCRIPTION,
        docs_url=None,  # our own offline page at /docs (no CDN)
        redoc_url=None,
    )
    app.state.ctx = ctx
    app.state.settings = settings or get_settings()
    errors.install(app)
    app.add_middleware(RequestLimits, settings=app.state.settings)
    # the dossiers' routes first: FastAPI tries the routers in order, route by route, and
    # reaching them after the others cost ~6 % of the instructions of a read of one dossier
    for router in (
        dossiers.router,
        health.router,
        auth.router,
        catalog.router,
        forms.router,
        lookup.router,
        pages.router,
    ):
        app.include_router(router)
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=PAGES_DIR / "static"), name="static")
    _problem_openapi(app)
    return app


def _problem_openapi(app: FastAPI) -> None:
    """Every error answer of every route (ours and the other areas') is documented as what it
    is: an ``application/problem+json`` body, with a ``default`` response for the statuses a
    route does not list (401 from the auth dependency, 404 of an unknown path, 429…)."""
    from fastapi.openapi.utils import get_openapi

    from api.schemas import Problem

    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        spec = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        schemas.setdefault("Problem", Problem.model_json_schema(ref_template="{model}"))
        content = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for operations in spec.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                for status, response in responses.items():
                    if status.isdigit() and int(status) >= 400:
                        response["content"] = dict(content)
                responses.setdefault(
                    "default", {"description": "Problem details (RFC 9457)", "content": content}
                )
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        app.openapi_schema = spec
        return spec

    app.openapi = build  # type: ignore[method-assign]
