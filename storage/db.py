"""Engine and sessions: SQLite file by default, PostgreSQL by URL. Nothing here reads settings."""

from __future__ import annotations

import functools
import time
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, bindparam, event, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DisconnectionError
from sqlmodel import Session, SQLModel, create_engine

from storage.models import DossierSequence
from storage.transitions import execute

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def make_engine(url: str, *, echo: bool = False, pool_size: int = 10) -> Engine:
    """An engine for ``url``; SQLite gets WAL, foreign keys and write transactions that lock
    at BEGIN (``BEGIN IMMEDIATE``), so two writers queue instead of failing half-way."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url, echo=echo, connect_args={"check_same_thread": False, "timeout": 30}
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    engine = create_engine(url, echo=echo, pool_size=pool_size, max_overflow=pool_size)
    _ping_when_idle(engine)
    return engine


@functools.cache
def autocommit_twin(engine: Engine) -> Engine:
    """PostgreSQL: an engine on ``engine``'s database whose connections stay in autocommit (each
    statement a transaction of its own: no ``BEGIN`` / ``COMMIT`` round trips), with a pool of
    its own of the same size. ``engine.execution_options(isolation_level="AUTOCOMMIT")`` would
    share the pool, but it switches each connection at checkout and back at checkin, and its
    joined event dispatch cost more CPU than the round trips save (+5 % of a transition's
    Python instructions, measured with callgrind)."""
    size = engine.pool.size()  # type: ignore[attr-defined]
    twin = create_engine(
        engine.url, pool_size=size, max_overflow=size, isolation_level="AUTOCOMMIT"
    )
    _ping_when_idle(twin)
    return twin


IDLE_PING_S = 1.0


def _ping_when_idle(engine: Engine) -> None:
    """SQLAlchemy's ``pool_pre_ping``, but only for a connection idle in the pool for over
    ``IDLE_PING_S``: the ping costs a round trip and ~90 µs of CPU per transaction (measured),
    a tenth of a transition's budget under load, where connections come back within
    milliseconds. A busy connection found dead (PostgreSQL restarted) fails its statement with
    an OperationalError instead — the API answers 503 + Retry-After — and SQLAlchemy then drops
    every pooled connection older than the failure, so the next request reconnects
    (tests/crash)."""

    @event.listens_for(engine, "connect")
    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info["checked_in"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("checked_in", 0.0) <= IDLE_PING_S:
            return
        try:
            with dbapi_conn.cursor() as cursor:
                cursor.execute("SELECT 1")
            dbapi_conn.rollback()
        except Exception as error:  # the pool retries with a new connection
            raise DisconnectionError(str(error)) from error


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "heads")


def create_all(engine: Engine) -> None:
    """Schema straight from the models (used to check the migrations match)."""
    SQLModel.metadata.create_all(engine)


def dialect_insert(dialect: str) -> Any:
    """The ``insert`` with ``ON CONFLICT`` of ``dialect`` (``postgresql`` or ``sqlite``)."""
    return pg_insert if dialect == "postgresql" else sqlite_insert


def next_sequence(session: Session, unit_code: str, day: date) -> int:
    """Next number for ``unit_code`` on ``day``, in the caller's transaction.

    The upsert locks the counter row until commit; a rollback gives the number back, so the
    numbers in use are gap-free."""
    statement = _NEXT_SEQUENCE[session.get_bind().dialect.name]
    ((last,),) = execute(session, statement, {"unit": unit_code, "day": day})
    return int(last)


def _next_sequence_statement(dialect: str) -> Any:
    table = DossierSequence.__table__  # type: ignore[attr-defined]
    return (
        dialect_insert(dialect)(table)
        .values(unit_code=bindparam("unit"), day=bindparam("day"), last=1)
        .on_conflict_do_update(index_elements=["unit_code", "day"], set_={"last": table.c.last + 1})
        .returning(table.c.last)
    )


# built once per dialect (built per call, it was an eighth of a receipt's CPU)
_NEXT_SEQUENCE = {d: _next_sequence_statement(d) for d in ("postgresql", "sqlite")}


def ping(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
