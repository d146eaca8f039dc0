"""What every use case needs: the database, the catalog, the working calendar and a clock."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine

from services.catalog import Catalog, default_catalog
from services.clock import Clock, SystemClock, WorkingCalendar, default_calendar
from services.uow import UnitOfWork


@dataclass
class Context:
    engine: Engine
    catalog: Catalog = field(default_factory=default_catalog)
    calendar: WorkingCalendar = field(default_factory=default_calendar)
    clock: Clock = field(default_factory=SystemClock)

    def uow(self, *, read_only: bool = False, one_statement: bool = False) -> UnitOfWork:
        return UnitOfWork(self.engine, read_only=read_only, one_statement=one_statement)
