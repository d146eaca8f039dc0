"""Decision 766/QĐ-TTg indicators on feedback and online payment, counted from the rows.

Sources (DOMAIN.md §6):
* feedback handled on time (6 points) = handled on time or early / all feedback in scope × 100
  **[law]**;
* satisfaction with feedback handling (6 points) = (all − answered "dissatisfied" or handled
  late) / all × 100 **[law]** — an item both late and rated dissatisfied is subtracted once;
* dossiers paid online (6 of the 10 payment points) = paid online / dossiers of procedures with a
  non-zero fee **[practice: the national portal's formula spec]**.

[motcua] choices where the formula leaves room (one place to correct them):
* "in scope": every feedback item not rejected as out of scope and not forwarded to another
  agency; it is counted for the agency holding it (``agency_code``);
* an item belongs to the period of its reckoning instant: its approval (``handled_at``) when it
  was handled by its due instant, else its due instant (late, whether answered later or not yet,
  counted once the due instant has passed by ``as_of``). So an item is counted in exactly one
  period, and a past period's figures do not move;
* a dossier counts for online payment in the period of its receipt, for its competent agency; a
  dossier whose charge was assessed at 0 (exempt) has no fee to pay and is not counted;
* rates are rounded half-up to two decimals and empty when the denominator is 0; points are
  proportional (no threshold is published for these indicators): points = max × rate / 100.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, case, func, or_, select

from services.metrics import period_bounds
from storage.models import Dossier
from storage.models_feedback import DossierCharge, FeedbackItem

if TYPE_CHECKING:
    from sqlmodel import Session

    from services.catalog import Catalog

OUT_OF_SCOPE_STATES = ("rejected", "forwarded")
FEEDBACK_POINTS = Decimal(6)
PAYMENT_POINTS = Decimal(6)


def rate(part: int, whole: int) -> Decimal | None:
    if whole == 0:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.01"), ROUND_HALF_UP)


def points(value: Decimal | None, maximum: Decimal) -> Decimal | None:
    if value is None:
        return None
    return (maximum * value / 100).quantize(Decimal("0.01"), ROUND_HALF_UP)


@dataclass(frozen=True)
class FeedbackIndicatorRow:
    agency: str
    all: int  # feedback in scope reckoned in the period
    early: int
    on_time: int
    late: int  # handled late, or not handled by a due instant that has passed
    dissatisfied: int  # handled on time but rated "dissatisfied"

    @property
    def handled_on_time(self) -> int:
        return self.early + self.on_time

    @property
    def dissatisfied_or_late(self) -> int:
        return self.late + self.dissatisfied

    @property
    def on_time_rate(self) -> Decimal | None:
        """Feedback handled on time (%) — Decision 766."""
        return rate(self.handled_on_time, self.all)

    @property
    def satisfaction_rate(self) -> Decimal | None:
        """Satisfaction with feedback handling (%) — Decision 766."""
        return rate(self.all - self.dissatisfied_or_late, self.all)

    @property
    def on_time_points(self) -> Decimal | None:
        return points(self.on_time_rate, FEEDBACK_POINTS)

    @property
    def satisfaction_points(self) -> Decimal | None:
        return points(self.satisfaction_rate, FEEDBACK_POINTS)


def feedback_indicators(
    session: Session, start: date, end: date, as_of: datetime, *, agency: str | None = None
) -> list[FeedbackIndicatorRow]:
    """One row per agency with feedback reckoned in [start, end], sorted by agency (only
    ``agency`` when given)."""
    lo, hi = period_bounds(start, end)
    f: Any = FeedbackItem.__table__.c  # type: ignore[attr-defined]

    def count(condition: Any) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    handled_in_time = and_(
        f.handled_at.is_not(None),
        f.timeliness.in_(("early", "on_time")),
        f.handled_at >= lo,
        f.handled_at < hi,
    )
    late = and_(
        f.due_at >= lo,
        f.due_at < hi,
        f.due_at < as_of,
        or_(f.handled_at.is_(None), f.timeliness == "late"),
    )
    statement = (
        select(
            f.agency_code,
            count(or_(handled_in_time, late)),
            count(and_(handled_in_time, f.timeliness == "early")),
            count(and_(handled_in_time, f.timeliness == "on_time")),
            count(late),
            count(and_(handled_in_time, f.satisfaction == "dissatisfied")),
        )
        .where(
            f.status.not_in(OUT_OF_SCOPE_STATES),
            *([f.agency_code == agency] if agency else []),
        )
        .group_by(f.agency_code)
        .order_by(f.agency_code)
    )
    rows = []
    for values in session.execute(statement).all():
        row = FeedbackIndicatorRow(values[0], *(int(v) for v in values[1:]))
        if row.all:
            rows.append(row)
    return rows


def total_feedback(rows: list[FeedbackIndicatorRow], key: str = "TOTAL") -> FeedbackIndicatorRow:
    return FeedbackIndicatorRow(
        key,
        sum(r.all for r in rows),
        sum(r.early for r in rows),
        sum(r.on_time for r in rows),
        sum(r.late for r in rows),
        sum(r.dissatisfied for r in rows),
    )


REPORT_HEADER = (
    "agency_code", "all_in_scope", "early", "on_time", "late", "dissatisfied",
    "handled_on_time", "satisfied", "handled_on_time_pct", "satisfaction_pct",
    "on_time_points", "satisfaction_points",
)  # fmt: skip


def _text(value: Decimal | None) -> str:
    return "" if value is None else f"{value:.2f}"


def feedback_table(rows: list[FeedbackIndicatorRow]) -> list[list[str]]:
    """Header and one line per agency, then ``TOTAL`` (when any row): what the report prints.
    ``handled_on_time`` and ``satisfied`` are the numerators of the two 766 rates."""
    table = [list(REPORT_HEADER)]
    for r in [*rows, total_feedback(rows)] if rows else []:
        table.append(
            [
                r.agency, str(r.all), str(r.early), str(r.on_time), str(r.late),
                str(r.dissatisfied), str(r.handled_on_time), str(r.all - r.dissatisfied_or_late),
                _text(r.on_time_rate), _text(r.satisfaction_rate),
                _text(r.on_time_points), _text(r.satisfaction_points),
            ]
        )  # fmt: skip
    return table


@dataclass(frozen=True)
class OnlinePaymentRow:
    agency: str
    with_fee: int  # dossiers received in the period, of procedures with a non-zero fee
    paid_online: int

    @property
    def share(self) -> Decimal | None:
        return rate(self.paid_online, self.with_fee)

    @property
    def points(self) -> Decimal | None:
        return points(self.share, PAYMENT_POINTS)


def fee_bearing_versions(catalog: Catalog) -> set[tuple[str, int]]:
    """Procedure versions with a non-zero fee (schedule, else the catalog's base fee)."""
    found = set()
    for procedure in catalog.procedures.values():
        for version in procedure.versions:
            charges = (
                version.fees.charges_something
                if version.fees is not None
                else version.fee_amount > 0
            )
            if charges:
                found.add((procedure.code, version.version))
    return found


def online_payment_share(
    session: Session, catalog: Catalog, start: date, end: date, *, agency: str | None = None
) -> list[OnlinePaymentRow]:
    """Dossiers paid online / dossiers of procedures with a non-zero fee, per competent agency
    (only ``agency`` when given)."""
    lo, hi = period_bounds(start, end)
    versions = fee_bearing_versions(catalog)
    d: Any = Dossier.__table__.c  # type: ignore[attr-defined]
    c: Any = DossierCharge.__table__.c  # type: ignore[attr-defined]
    statement = (
        select(
            d.competent_agency, d.procedure_code, d.procedure_version, c.amount, c.status, c.method
        )
        .select_from(Dossier.__table__.outerjoin(DossierCharge.__table__, c.dossier_id == d.id))  # type: ignore[attr-defined]
        .where(
            d.received_at >= lo,
            d.received_at < hi,
            d.procedure_code.in_(sorted({code for code, _ in versions})),
            *([d.competent_agency == agency] if agency else []),
        )
    )
    with_fee: dict[str, int] = defaultdict(int)
    paid: dict[str, int] = defaultdict(int)
    for agency, code, version, amount, status, method in session.execute(statement).all():
        if (code, version) not in versions or (amount is not None and amount == 0):
            continue
        with_fee[agency] += 1
        if status == "paid" and method == "online":
            paid[agency] += 1
    return [OnlinePaymentRow(a, with_fee[a], paid[a]) for a in sorted(with_fee)]


__all__ = [
    "REPORT_HEADER",
    "FeedbackIndicatorRow",
    "OnlinePaymentRow",
    "feedback_indicators",
    "feedback_table",
    "online_payment_share",
    "rate",
    "total_feedback",
]
