"""Where settings become an engine, a context, an object store (api and CLI only)."""

from __future__ import annotations

import functools
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine

from services.catalog import default_catalog, load_catalog
from services.context import Context
from services.settings import Settings, get_settings
from storage.db import make_engine, migrate


@functools.cache
def engine_for(url: str) -> Engine:
    return make_engine(url)


def open_context(settings: Settings | None = None, *, upgrade: bool = True) -> Context:
    settings = settings or get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = engine_for(settings.effective_database_url)
    if upgrade:
        migrate(engine)
    catalog = load_catalog(settings.catalog_dir) if settings.catalog_dir else default_catalog()
    return Context(engine=engine, catalog=catalog)


async def get_context(request: Request) -> Context:
    """The app's Context, built once (``create_app``); tests may override this dependency.

    The dependencies every request shares (this one, the settings, the signed-in officer) are
    ``async``: a plain ``def`` one costs a hop through the thread pool per request (measured by
    benchmarks.transitions). The first use, which migrates, still runs in the pool, as does
    ``get_store`` (it may connect to the object store)."""
    ctx: Context | None = getattr(request.app.state, "ctx", None)
    if ctx is None:
        ctx = request.app.state.ctx = await run_in_threadpool(open_context)
    return ctx


async def get_app_settings(request: Request) -> Settings:
    return settings_of(request)


def settings_of(request: Request) -> Settings:
    settings: Settings | None = getattr(request.app.state, "settings", None)
    return settings or get_settings()


ContextDep = Annotated[Context, Depends(get_context)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
