"""Tables of the on-time measurement: daily snapshots (the incremental aggregates) and the
indexes on the dossier table that the dashboard's open-day delta needs."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel

from storage.models import Dossier, _dt


class MetricsDaily(SQLModel, table=True):
    """One closed day's counts per (receiving unit, agency, procedure, level, channel, field):
    the day's flows (received, finished early/on time/late, withdrawn) and the stocks at the
    day's end (in progress, overdue), computed by the one counting definition."""

    __tablename__ = "metrics_daily"

    day: date = Field(primary_key=True)
    receiving_unit: str = Field(primary_key=True, max_length=64)
    competent_agency: str = Field(primary_key=True, max_length=64)
    procedure_code: str = Field(primary_key=True, max_length=32)
    level: str = Field(primary_key=True, max_length=16)
    channel: str = Field(primary_key=True, max_length=16)
    field: str = Field(primary_key=True, max_length=300)
    received: int = 0
    finished: int = 0
    early: int = 0
    on_time: int = 0
    late: int = 0
    withdrawn: int = 0
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
