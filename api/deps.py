"""Where settings become an engine, a context, an object store (api and CLI only)."""

from __future__ import annotations

import functools

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
