"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine
from sqlmodel import SQLModel

import storage.models  # noqa: F401

# SQLite FTS5 search tables of migration 0004_search_fts and their shadow tables: not models
FTS_TABLES = ("document_text_fts", "dossier_fts")


def _not_fts(name: str | None, type_: str, _parent: Any) -> bool:
    return not (type_ == "table" and name is not None and name.startswith(FTS_TABLES))


def test_migrations_match_the_models(engine: Engine) -> None:
    # `engine` is migrated by the fixture (SQLite and PostgreSQL)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"include_name": _not_fts})
        diff = compare_metadata(context, SQLModel.metadata)
    assert diff == []
