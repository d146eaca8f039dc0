"""Units of work: read-only ones run without a transaction on PostgreSQL and never write."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from services.context import Context
from storage.models_api import IdempotencyRecord


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
