"""Shared fixtures: real databases (SQLite file and PostgreSQL), the catalog, a movable clock."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from services.catalog import default_catalog
from services.clock import TZ, FixedClock, default_calendar
from services.context import Context
from services.directory import create_officer, sync_catalog
from services.dossiers import Applicant, DossierIn, submit_dossier
from states.lifecycle import Actor
from storage.db import make_engine, migrate
from storage.models import Dossier

PG_ADMIN_URL = os.environ.get(
    "MOTCUA_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/motcua_test"
)
# each test session gets its own database, so that parallel runs never share rows
PG_DATABASE = f"motcua_t{os.getpid()}"
PG_URL = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + PG_DATABASE

_pg_engine: Engine | None = None


def _admin(statement: str) -> None:
    admin = make_engine(PG_ADMIN_URL, pool_size=1)
    try:
        with admin.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text(statement))
    finally:
        admin.dispose()


def pg_engine() -> Engine:
    """One migrated PostgreSQL database per session; a missing server fails, never skips."""
    global _pg_engine
    if _pg_engine is None:
        try:
            _admin(f'DROP DATABASE IF EXISTS "{PG_DATABASE}"')
            _admin(f'CREATE DATABASE "{PG_DATABASE}"')
            engine = make_engine(PG_URL, pool_size=12)
            migrate(engine)
        except Exception as exc:  # pragma: no cover - environment problem
            pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is not usable (run `make services`): {exc}")
        _pg_engine = engine
    return _pg_engine


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _pg_engine
    if _pg_engine is not None:
        _pg_engine.dispose()
        _pg_engine = None
        _admin(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')


def _truncate(engine: Engine) -> None:
    with engine.begin() as conn:
        tables = [
            r[0]
            for r in conn.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname='public' "
                    "AND tablename <> 'alembic_version'"
                )
            )
        ]
        if tables:
            quoted = ", ".join(f'"{t}"' for t in tables)
            conn.execute(text(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE"))


_sqlite_migrated: Path | None = None


def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file per session; each test gets a copy (a migration run costs
    ~0.2 s, a copy 0.3 ms)."""
    global _sqlite_migrated
    if _sqlite_migrated is None:
        path = tmp_path_factory.mktemp("template") / "motcua.db"
        engine = make_engine(f"sqlite:///{path}")
        migrate(engine)
        engine.dispose()
        with contextlib.closing(sqlite3.connect(path)) as conn:  # fold the WAL into the file
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        _sqlite_migrated = path
    return _sqlite_migrated


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    """Every persistence test runs against both backends."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("db") / "motcua.db"
        shutil.copyfile(_sqlite_template(tmp_path_factory), path)
        engine = make_engine(f"sqlite:///{path}")
        yield engine
        engine.dispose()
    else:
        engine = pg_engine()
        _truncate(engine)
        yield engine
        _truncate(engine)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2025, 3, 3, 8, 0, tzinfo=TZ))  # a Monday


@pytest.fixture
def ctx(engine: Engine, clock: FixedClock) -> Context:
    context = Context(
        engine=engine, catalog=default_catalog(), calendar=default_calendar(), clock=clock
    )
    sync_catalog(context)
    return context


@pytest.fixture
def pg_ctx(clock: FixedClock) -> Iterator[Context]:
    engine = pg_engine()
    _truncate(engine)
    context = Context(
        engine=engine, catalog=default_catalog(), calendar=default_calendar(), clock=clock
    )
    sync_catalog(context)
    yield context
    _truncate(engine)


def officer(ctx: Context, username: str, role: str, unit: str) -> None:
    create_officer(ctx, username, username, role, unit, None)


def criminal_record(ctx: Context, counter: Actor, unit: str) -> Dossier:
    """A criminal-record certificate request (MOJ.lltp) received by ``counter`` at ``unit``."""
    return submit_dossier(
        ctx,
        counter,
        DossierIn(
            procedure_code="MOJ.lltp",
            receiving_unit=unit,
            applicant=Applicant(name="Hoàng Văn Thụ", id_number="020099001234"),
            components=["request_form", "applicant_id"],
        ),
    )


@contextlib.contextmanager
def statements_sent(ctx: Context) -> Iterator[list[tuple[str, bool]]]:
    """(SQL, run in autocommit) of every statement sent while the block runs: through
    SQLAlchemy (the engine and its autocommit twin) and straight through psycopg (the hot
    statements of a lifecycle event, storage.transitions)."""
    import psycopg
    from sqlalchemy import event

    from storage.db import autocommit_twin

    sent: list[tuple[str, bool]] = []

    def through_sqlalchemy(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        driver = conn.connection.dbapi_connection
        sent.append((statement, getattr(driver, "autocommit", False) is True))

    engines = [ctx.engine]
    if ctx.engine.dialect.name == "postgresql":
        engines.append(autocommit_twin(ctx.engine))
    original = psycopg.Connection.execute

    def through_psycopg(self: psycopg.Connection[Any], query: Any, *args: Any, **kw: Any) -> Any:
        sent.append((str(query), self.autocommit))
        return original(self, query, *args, **kw)

    for engine in engines:
        event.listen(engine, "before_cursor_execute", through_sqlalchemy)
    psycopg.Connection.execute = through_psycopg  # type: ignore[method-assign]
    try:
        yield sent
    finally:
        psycopg.Connection.execute = original  # type: ignore[method-assign]
        for engine in engines:
            event.remove(engine, "before_cursor_execute", through_sqlalchemy)
