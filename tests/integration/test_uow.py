"""Units of work: read-only ones run without a transaction on PostgreSQL and never write;
one-statement ones (a lifecycle event) write with one statement and no transaction around it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, insert, inspect, select, text
from sqlalchemy.exc import OperationalError

from services.clock import FixedClock
from services.context import Context
from services.dossiers import act
from services.errors import DossierNotFound, StaleDossier
from services.worklist import DossierFilter, list_dossiers
from states.lifecycle import Actor
from storage.models import Dossier, DossierEvent
from storage.models_api import IdempotencyRecord
from storage.transitions import execute
from tests.conftest import criminal_record, statements_sent

CENTRE = "000.00.01.H37"
COUNTER = Actor("motcua1", "counter", CENTRE)


def test_a_read_only_unit_of_work_reads_and_refuses_to_commit(ctx: Context) -> None:
    postgres = ctx.engine.dialect.name == "postgresql"
    with ctx.uow(read_only=True) as uow:
        count = uow.session.execute(select(func.count()).select_from(IdempotencyRecord))
        assert count.scalar_one() == 0
        driver = uow.session.connection().connection.dbapi_connection
        if postgres:  # no BEGIN / ROLLBACK round trips around the read
            assert driver.autocommit is True
        with pytest.raises(RuntimeError):
            uow.commit()
    # the pooled connection is back in transactions for the next unit of work
    with ctx.uow() as uow:
        driver = uow.session.connection().connection.dbapi_connection
        if postgres:
            assert driver.autocommit is False


def test_nothing_added_in_a_read_only_unit_of_work_is_written(ctx: Context) -> None:
    with ctx.uow(read_only=True) as uow:
        uow.session.add(
            IdempotencyRecord(
                username="u", key="k", target="t", request_hash="h", created_at=ctx.clock.now()
            )
        )
        # no autoflush before a query: in autocommit that would write for good
        found = uow.session.execute(select(func.count()).select_from(IdempotencyRecord))
        assert found.scalar_one() == 0
    with ctx.uow() as uow:
        found = uow.session.execute(select(func.count()).select_from(IdempotencyRecord))
        assert found.scalar_one() == 0


def test_an_event_runs_without_begin_or_commit_round_trips_on_postgresql(ctx: Context) -> None:
    postgres = ctx.engine.dialect.name == "postgresql"
    dossier = criminal_record(ctx, COUNTER, CENTRE)
    with statements_sent(ctx) as sent:
        forwarded = act(ctx, COUNTER, dossier.code, "forward", dossier.version)
    assert forwarded.version == dossier.version + 1
    # PostgreSQL: every statement outside a transaction (the write is one statement)
    autocommit = [flag for _, flag in sent]
    assert sent and (all(autocommit) if postgres else not any(autocommit))
    assert sum("UPDATE dossier SET" in sql for sql, _ in sent) == 1
    with ctx.uow(read_only=True) as uow:  # written for good: the event and the dossier
        found = uow.get_dossier(dossier.code)
        events = uow.session.execute(
            select(func.count()).where(DossierEvent.dossier_id == dossier.id)  # type: ignore[arg-type]
        ).scalar_one()
    assert (found.version, found.status, events) == (forwarded.version, forwarded.status, 2)


def test_a_stale_event_writes_nothing(ctx: Context) -> None:
    dossier = criminal_record(ctx, COUNTER, CENTRE)
    act(ctx, COUNTER, dossier.code, "forward", dossier.version)
    with pytest.raises(StaleDossier):
        act(ctx, COUNTER, dossier.code, "forward", dossier.version)
    with ctx.uow(read_only=True) as uow:
        events = uow.session.execute(
            select(func.count()).where(DossierEvent.dossier_id == dossier.id)  # type: ignore[arg-type]
        ).scalar_one()
    assert events == 2


def test_a_one_statement_unit_of_work_refuses_orm_changes_it_would_lose(ctx: Context) -> None:
    record = IdempotencyRecord(
        username="u", key="k", target="t", request_hash="h", created_at=ctx.clock.now()
    )
    with ctx.uow(one_statement=True) as uow:
        uow.session.add(record)
        if ctx.engine.dialect.name == "postgresql":
            with pytest.raises(RuntimeError):
                uow.commit()
        else:  # an ordinary transaction elsewhere
            uow.commit()


def test_read_dossier_gives_what_the_orm_reads_detached(ctx: Context) -> None:
    """On PostgreSQL ``read_dossier`` reads without the ORM (storage.transitions.load_dossier):
    every column comes back as the ORM gives it (aware datetimes in the local zone, JSON)."""
    dossier = criminal_record(ctx, COUNTER, CENTRE)
    act(ctx, COUNTER, dossier.code, "forward", dossier.version)
    with ctx.uow(read_only=True) as uow:
        read = uow.read_dossier(dossier.code)
        assert read not in uow.session and inspect(read).detached
        orm = uow.get_dossier(dossier.code)
        for attribute in Dossier.model_fields:
            assert getattr(read, attribute) == getattr(orm, attribute), attribute
            assert type(getattr(read, attribute)) is type(getattr(orm, attribute)), attribute
        assert read.received_at is not None and read.received_at.utcoffset() == timedelta(hours=7)
        assert read.step_units and read.components
        with pytest.raises(StaleDossier):
            uow.read_dossier(dossier.code, version=read.version - 1)
        with pytest.raises(DossierNotFound):
            uow.read_dossier("000.00.01.H37-000000-0000")


def test_a_connection_lost_under_a_driver_statement_is_a_database_error(pg_ctx: Context) -> None:
    """A lifecycle event's statements go straight to psycopg (storage.transitions); a server
    gone under them still raises SQLAlchemy's OperationalError (the API's 503) and the dead
    connection leaves the pool."""
    ctx = pg_ctx
    dossier = criminal_record(ctx, COUNTER, CENTRE)
    with ctx.uow(one_statement=True) as uow:
        pid = uow.session.connection().connection.driver_connection.info.backend_pid
        with ctx.engine.connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(OperationalError) as raised:
            uow.read_dossier(dossier.code)
        assert raised.value.connection_invalidated
    forwarded = act(ctx, COUNTER, dossier.code, "forward", dossier.version)  # a new connection
    assert forwarded.version == dossier.version + 1


def test_worklist_filters_bind_their_values_per_read(ctx: Context) -> None:
    """``list_dossiers`` builds one statement per shape of filters and binds the values at
    each read: two reads of the same shape with other values see their own rows."""
    first = criminal_record(ctx, COUNTER, CENTRE)
    second = criminal_record(ctx, COUNTER, CENTRE)
    act(ctx, COUNTER, second.code, "forward", second.version)
    moved = list_dossiers(ctx, COUNTER, DossierFilter(status="appraisal"))
    still = list_dossiers(ctx, COUNTER, DossierFilter(status=first.status))
    assert [d.code for d in moved] == [second.code]
    assert [d.code for d in still] == [first.code]
    assert second.due_at is not None
    before_due = second.due_at + timedelta(minutes=1)
    both = list_dossiers(ctx, COUNTER, DossierFilter(due_before=before_due, open_only=True))
    assert {d.code for d in both} == {first.code, second.code}
    assert list_dossiers(ctx, COUNTER, DossierFilter(due_before=first.submitted_at)) == []
    newest_first = list_dossiers(ctx, COUNTER, DossierFilter(), limit=1)
    assert [d.code for d in newest_first] == [second.code]
    assert newest_first[0].id is not None
    older = list_dossiers(ctx, COUNTER, DossierFilter(), after_id=newest_first[0].id, limit=1)
    assert [d.code for d in older] == [first.code]
    assert list_dossiers(ctx, COUNTER, DossierFilter(agency="000.00.02.H37", status="appraisal"))
    assert not list_dossiers(ctx, COUNTER, DossierFilter(agency="000.00.99.H37"))


def test_worklist_reads_what_the_orm_reads_detached(ctx: Context, clock: FixedClock) -> None:
    """On PostgreSQL a worklist is read without the ORM (storage.transitions.load_dossiers:
    the statement compiled once, its lists of states expanded, aware datetimes converted as
    bound): every column as the ORM gives it, and ``late_only`` (a bound instant, the final
    states' list) finds the dossier once it is overdue, and only then."""
    first = criminal_record(ctx, COUNTER, CENTRE)
    second = criminal_record(ctx, COUNTER, CENTRE)
    act(ctx, COUNTER, second.code, "forward", second.version)
    read = list_dossiers(ctx, COUNTER, DossierFilter(open_only=True))
    assert [d.code for d in read] == [second.code, first.code]
    with ctx.uow(read_only=True) as uow:
        assert not any(d in uow.session for d in read)
        for dossier in read:
            orm = uow.get_dossier(dossier.code)
            for attribute in Dossier.model_fields:
                assert getattr(dossier, attribute) == getattr(orm, attribute), attribute
                assert type(getattr(dossier, attribute)) is type(getattr(orm, attribute))
    assert list_dossiers(ctx, COUNTER, DossierFilter(late_only=True)) == []
    assert second.due_at is not None
    clock.set(second.due_at + timedelta(days=1))
    late = list_dossiers(ctx, COUNTER, DossierFilter(late_only=True, status="appraisal"))
    assert [d.code for d in late] == [second.code]


def test_a_statement_on_the_driver_needs_every_column_given(pg_ctx: Context) -> None:
    """storage.transitions.execute sends a Core statement straight to psycopg on PostgreSQL:
    a column default that SQLAlchemy would compute at execution is not computed there, so a
    statement that needs one is refused instead of writing NULL."""
    table = Dossier.__table__  # type: ignore[attr-defined]
    with pg_ctx.uow() as uow, pytest.raises(ValueError, match="every column"):
        execute(uow.session, insert(table), {"code": "x"})
