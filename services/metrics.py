"""On-time measurement, counted from the dossier rows by the one definition of DOMAIN.md §2.

received     received within [from, to] (local whole days); refused-at-counter ones never are
finished     result handed to the counter within the period, split early / on time / late
in_progress  received by the end of ``to``, neither finished nor withdrawn by then
overdue      in progress whose due instant had passed by the end of ``to``; a paused dossier
             only if its due instant had passed before the pause
on_time_rate (early + on time) / finished × 100, half-up to 2 decimals; empty when finished is 0
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

from sqlalchemy import and_, case, func, or_, select
from sqlmodel import Session

from services.clock import TZ
from storage.models import Dossier

Grouping = Literal["unit", "agency", "procedure"]
_GROUP_COLUMNS = {
    "unit": "receiving_unit",
    "agency": "competent_agency",
    "procedure": "procedure_code",
}


@dataclass(frozen=True)
class OnTimeRow:
    key: str
    received: int
    finished: int
    early: int
    on_time: int
    late: int
    in_progress: int
    overdue: int
    withdrawn: int

    @property
    def on_time_rate(self) -> Decimal | None:
        return on_time_rate(self.early, self.on_time, self.finished)


def on_time_rate(early: int, on_time: int, finished: int) -> Decimal | None:
    if finished == 0:
        return None
    rate = Decimal(early + on_time) * 100 / Decimal(finished)
    return rate.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def period_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """[00:00 of ``start``, 00:00 of the day after ``end``) in Asia/Ho_Chi_Minh."""
    return (
        datetime.combine(start, time(0), TZ),
        datetime.combine(end + timedelta(days=1), time(0), TZ),
    )


def on_time_report(
    session: Session, start: date, end: date, by: Grouping = "unit"
) -> list[OnTimeRow]:
    """One row per group, sorted by key, counted in one pass over the rows."""
    lo, hi = period_bounds(start, end)
    d: Any = Dossier.__table__.c  # type: ignore[attr-defined]
    key = getattr(d, _GROUP_COLUMNS[by])

    def count(condition: Any) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    finished_in = and_(d.result_ready_at >= lo, d.result_ready_at < hi)
    in_progress = and_(
        d.received_at < hi,
        or_(d.result_ready_at.is_(None), d.result_ready_at >= hi),
        or_(d.withdrawn_at.is_(None), d.withdrawn_at >= hi),
    )
    overdue = and_(
        in_progress,
        d.due_at < hi,
        or_(d.paused_at.is_(None), d.paused_at >= hi, d.due_at < d.paused_at),
    )
    statement = (
        select(
            key,
            count(and_(d.received_at >= lo, d.received_at < hi)),
            count(finished_in),
            count(and_(finished_in, d.timeliness == "early")),
            count(and_(finished_in, d.timeliness == "on_time")),
            count(and_(finished_in, d.timeliness == "late")),
            count(in_progress),
            count(overdue),
            count(and_(d.withdrawn_at >= lo, d.withdrawn_at < hi)),
        )
        .where(
            or_(
                and_(d.received_at.is_not(None), d.received_at < hi),
            )
        )
        .group_by(key)
        .order_by(key)
    )
    rows = []
    for values in session.execute(statement).all():
        row = OnTimeRow(values[0], *(int(v) for v in values[1:]))
        if any((row.received, row.finished, row.in_progress, row.withdrawn)):
            rows.append(row)
    return rows


def total(rows: list[OnTimeRow], key: str = "TOTAL") -> OnTimeRow:
    return OnTimeRow(
        key,
        *(sum(getattr(r, f) for r in rows) for f in (
            "received", "finished", "early", "on_time", "late", "in_progress", "overdue",
            "withdrawn",
        )),
    )  # fmt: skip
