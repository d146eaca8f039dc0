"""Tables of the on-time measurement: daily snapshots (the incremental aggregates) and the
indexes on the dossier table that the dashboard's open-day delta needs."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel

from storage.models import Dossier, _dt


class MetricsDaily(SQLModel, table=True):
    """One closed day's counts per (receiving unit, agency, procedure, level, channel, field), by
    the one counting definition: the flows *cumulated from the beginning* to the day's end
    (received, finished early/on time/late, withdrawn — so a period's flows are the difference
    of two days' rows, whatever its length) and the stocks at the day's end (in progress,
    overdue)."""

    __tablename__ = "metrics_daily"

    day: date = Field(primary_key=True)
    receiving_unit: str = Field(primary_key=True, max_length=64)
    competent_agency: str = Field(primary_key=True, max_length=64)
    procedure_code: str = Field(primary_key=True, max_length=32)
    level: str = Field(primary_key=True, max_length=16)
    channel: str = Field(primary_key=True, max_length=16)
    field: str = Field(primary_key=True, max_length=300)
    cum_received: int = 0
    cum_finished: int = 0
    cum_early: int = 0
    cum_on_time: int = 0
    cum_late: int = 0
    cum_withdrawn: int = 0
    in_progress: int = 0
    overdue: int = 0


class MetricsDay(SQLModel, table=True):
    """A day whose snapshot is computed (even when it has no rows)."""

    __tablename__ = "metrics_day"

    day: date = Field(primary_key=True)
    rows: int = 0
    computed_at: datetime = _dt(nullable=False)


_dossier = Dossier.__table__  # type: ignore[attr-defined]
OPEN_WHERE = "received_at IS NOT NULL AND result_ready_at IS NULL AND withdrawn_at IS NULL"
ix_dossier_received_at = Index("ix_dossier_received_at", _dossier.c.received_at)
ix_dossier_withdrawn_at = Index("ix_dossier_withdrawn_at", _dossier.c.withdrawn_at)
ix_dossier_open_due = Index(
    "ix_dossier_open_due",
    _dossier.c.due_at,
    postgresql_where=text(OPEN_WHERE),
    sqlite_where=text(OPEN_WHERE),
)
ix_dossier_refused_at = Index("ix_dossier_refused_at", _dossier.c.refused_at)
MULTI_WHERE = "supplement_count > 1"
ix_dossier_multi_supplement = Index(
    "ix_dossier_multi_supplement",
    _dossier.c.competent_agency,
    postgresql_where=text(MULTI_WHERE),
    sqlite_where=text(MULTI_WHERE),
)
