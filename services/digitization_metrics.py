"""Digitization indicators of Decision 766/QĐ-TTg (DOMAIN.md §6), counted from the rows.

One module, each formula with its source; change a definition here and nowhere else.

For a period [from, to] (whole days, Asia/Ho_Chi_Minh) and a grouping (receiving unit, competent
agency or procedure):

received              dossiers received within the period (refused-at-counter ones never are)
digitized_at_receipt  of them, dossiers whose every listed component (required, or optional and
                      submitted) is digitized, reused or exempt by the end of the receipt day
                      **[motcua]** "at receipt" = by the end of the day of receipt
with_reuse            of them, dossiers with at least one component reused from the applicant's
                      electronic data store (kho dữ liệu điện tử)
finished              dossiers whose result was handed to the counter within the period
with_e_result         of them, dossiers with a digitized result (kết quả điện tử) by the end of
                      the period. **[motcua]** every procedure is in scope (the catalog does not
                      yet say which procedures have a paper result)

Rates (percent, half-up to 2 decimals, empty when the denominator is 0) and the 766 points:
- dossiers with digitized components: 4 points, full at ≥ 80 % **[practice, portal spec]**
- dossiers with an electronic result: 6 points, full at ≥ 80 % **[practice, portal spec]**
- reuse of digitized data: 2 points, full at ≥ 80 % **[practice, portal spec]**
Below the threshold, points = rate × max / threshold **[practice]**.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from sqlmodel import Session, col, select

from services.clock import TZ
from services.context import Context
from services.documents import states_of
from storage.models import Dossier
from storage.models_documents import RESULT, DigitizationExemption, Document

Grouping = Literal["unit", "agency", "procedure"]
TOTAL = "TOTAL"


@dataclass(frozen=True)
class Indicator:
    """One Decision 766 digitization indicator: its points and the rate that gives them all."""

    name: str
    points: Decimal
    full_at: Decimal  # percent
    source: str

    def score(self, rate: Decimal | None) -> Decimal | None:
        if rate is None:
            return None
        if rate >= self.full_at:
            return self.points
        return _q(rate * self.points / self.full_at)


COMPONENTS = Indicator(
    "Hồ sơ có thành phần được số hóa / dossiers with digitized components",
    Decimal(4), Decimal(80), "Decision 766/QĐ-TTg; national portal formula spec (practice)",
)  # fmt: skip
E_RESULT = Indicator(
    "Hồ sơ có kết quả điện tử / dossiers with an electronic result",
    Decimal(6), Decimal(80), "Decision 766/QĐ-TTg; national portal formula spec (practice)",
)  # fmt: skip
REUSE = Indicator(
    "Tái sử dụng dữ liệu số hóa / reuse of digitized data",
    Decimal(2), Decimal(80), "Decision 766/QĐ-TTg; national portal formula spec (practice)",
)  # fmt: skip


def _q(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def rate(part: int, whole: int) -> Decimal | None:
    """part / whole × 100, half-up to 2 decimals; ``None`` when ``whole`` is 0."""
    if whole == 0:
        return None
    return _q(Decimal(part) * 100 / Decimal(whole))


@dataclass(frozen=True)
class DigitizationRow:
    key: str
    received: int
    digitized_at_receipt: int
    with_reuse: int
    finished: int
    with_e_result: int

    @property
    def receipt_rate(self) -> Decimal | None:
        return rate(self.digitized_at_receipt, self.received)

    @property
    def result_rate(self) -> Decimal | None:
        return rate(self.with_e_result, self.finished)

    @property
    def reuse_rate(self) -> Decimal | None:
        return rate(self.with_reuse, self.received)

    @property
    def points(self) -> dict[str, Decimal | None]:
        return {
            "components": COMPONENTS.score(self.receipt_rate),
            "e_result": E_RESULT.score(self.result_rate),
            "reuse": REUSE.score(self.reuse_rate),
        }


def _bounds(start: date, end: date) -> tuple[datetime, datetime]:
    from services.metrics import period_bounds

    return period_bounds(start, end)


def _key(dossier: Dossier, by: Grouping) -> str:
    if by == "unit":
        return dossier.receiving_unit
    if by == "agency":
        return dossier.competent_agency
    return dossier.procedure_code


def _batched(items: Sequence[int], size: int = 500) -> Iterable[Sequence[int]]:
    for index in range(0, len(items), size):
        yield items[index : index + size]


def digitization_report(
    ctx: Context, session: Session, start: date, end: date, by: Grouping = "unit"
) -> list[DigitizationRow]:
    """One row per group (sorted by key), counted from the dossier and document rows."""
    lo, hi = _bounds(start, end)
    received = list(
        session.exec(
            select(Dossier).where(col(Dossier.received_at) >= lo, col(Dossier.received_at) < hi)
        ).all()
    )
    finished = list(
        session.exec(
            select(Dossier).where(
                col(Dossier.result_ready_at) >= lo, col(Dossier.result_ready_at) < hi
            )
        ).all()
    )
    ids = sorted({d.id for d in [*received, *finished] if d.id is not None})
    documents: dict[int, list[Document]] = {}
    exemptions: dict[int, list[DigitizationExemption]] = {}
    for batch in _batched(ids):
        for doc in session.exec(select(Document).where(col(Document.dossier_id).in_(batch))):
            documents.setdefault(doc.dossier_id, []).append(doc)
        for ex in session.exec(
            select(DigitizationExemption).where(col(DigitizationExemption.dossier_id).in_(batch))
        ):
            exemptions.setdefault(ex.dossier_id, []).append(ex)

    counts: dict[str, list[int]] = {}
    for dossier in received:
        assert dossier.id is not None and dossier.received_at is not None
        day_end = datetime.combine(dossier.received_at.astimezone(TZ).date(), time(0), TZ)
        states = states_of(
            ctx,
            dossier,
            documents.get(dossier.id, []),
            exemptions.get(dossier.id, []),
            as_of=day_end + timedelta(days=1),
        )
        components = [s for s in states if s.component != RESULT]
        row = counts.setdefault(_key(dossier, by), [0, 0, 0, 0, 0])
        row[0] += 1
        row[1] += all(s.status != "not_digitized" for s in components)
        row[2] += any(s.status == "reused" for s in components)
    for dossier in finished:
        assert dossier.id is not None
        row = counts.setdefault(_key(dossier, by), [0, 0, 0, 0, 0])
        row[3] += 1
        row[4] += any(
            d.component == RESULT
            and d.uploaded_at < hi
            and (d.deleted_at is None or d.deleted_at >= hi)
            for d in documents.get(dossier.id, [])
        )
    return [DigitizationRow(key, *values) for key, values in sorted(counts.items())]


def total(rows: Iterable[DigitizationRow], key: str = TOTAL) -> DigitizationRow:
    sums = [0, 0, 0, 0, 0]
    for row in rows:
        for i, value in enumerate(
            (row.received, row.digitized_at_receipt, row.with_reuse, row.finished,
             row.with_e_result)
        ):  # fmt: skip
            sums[i] += value
    return DigitizationRow(key, *sums)


__all__ = [
    "COMPONENTS",
    "E_RESULT",
    "REUSE",
    "DigitizationRow",
    "Indicator",
    "digitization_report",
    "rate",
    "total",
]
