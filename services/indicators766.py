"""Decision 766/QĐ-TTg (23/6/2022) service-index indicators that motcua's data supports, per
competent agency and for the province, with their points (DOMAIN.md §6). One formula per
function, each with its source; correct them here.

Points below the threshold: points = rate × max / threshold, full points at or above it
**[practice]**; where no threshold is published the points are proportional (max × rate / 100)
**[motcua]**. Rates are half-up to two decimals, empty when the denominator is 0.

The dashboard's on-time rate (DOMAIN.md §2 Counting, ``services.metrics``) and the 766 progress
indicator below are different numbers; both are shown, each under its own name.

Feedback handled on time, satisfaction with feedback handling and online payment come from
``services.indicators_feedback`` (another module, same conventions); the score card gathers all.
Not covered (no data in motcua yet): publicity/transparency (18 points), the national portal's
sync rate (taken as 1), satisfaction with dossier handling's "dislike" votes beyond complaints.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import and_, case, exists, func, literal_column, or_, select
from sqlmodel import Session

from services.clock import WorkingCalendar
from services.metrics import (
    COUNTS,
    NO_FILTERS,
    Filters,
    fast_counts,
    is_overdue_at,
    period_bounds,
)
from storage.models import Dossier
from storage.models_documents import DigitizationExemption, Document

PROVINCE = "TỈNH"


def rate(part: int, whole: int) -> Decimal | None:
    if whole == 0:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.01"), ROUND_HALF_UP)


def points(value: Decimal | None, maximum: int, threshold: int | None = None) -> Decimal | None:
    """rate × max / threshold below the threshold, max at or above it; proportional without."""
    if value is None:
        return None
    full = Decimal(threshold if threshold is not None else 100)
    result = min(Decimal(maximum), Decimal(maximum) * value / full)
    return result.quantize(Decimal("0.01"), ROUND_HALF_UP)


@dataclass(frozen=True)
class Indicator:
    group: str  # progress / online / digitization / satisfaction / payment
    name_vi: str
    name_en: str
    maximum: int
    threshold: int | None
    part: int
    whole: int
    source: str

    @property
    def rate(self) -> Decimal | None:
        return rate(self.part, self.whole)

    @property
    def points(self) -> Decimal | None:
        return points(self.rate, self.maximum, self.threshold)


@dataclass
class ScoreCard:
    agency: str
    indicators: list[Indicator] = field(default_factory=list)

    @property
    def points(self) -> Decimal:
        return sum((i.points or Decimal(0) for i in self.indicators), Decimal(0))

    @property
    def maximum(self) -> int:
        return sum(i.maximum for i in self.indicators)


def _d() -> Any:
    return Dossier.__table__.c  # type: ignore[attr-defined]


def _count(condition: Any) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _where(filters: Filters) -> list[Any]:
    d = _d()
    columns = {
        "level": d.level,
        "agency": d.competent_agency,
        "unit": d.receiving_unit,
        "procedure": d.procedure_code,
        "channel": d.channel,
    }
    return [columns[name] == value for name, value in filters.items() if name in columns]


# --- Progress of resolution (20 points) ---------------------------------------------------------

PROGRESS_SOURCE = (
    "QĐ 766/QĐ-TTg, nhóm tiến độ giải quyết (20 điểm); công thức theo đặc tả Cổng DVC quốc gia "
    "[practice]: (hoàn thành đúng/trước hạn + đang giải quyết còn hạn) / (tiếp nhận hoặc xử lý "
    "trong kỳ); bổ sung hơn 1 lần tính quá hạn; rút, từ chối, dừng tính là đã kết thúc"
)


@dataclass(frozen=True)
class ProgressCounts:
    on_time_finished: int  # early + on time, at most one supplementation request
    within_time_open: int  # in progress at the end, not overdue, at most one request
    ended_otherwise: int  # withdrawn in the period, refused at the counter in the period
    handled: int  # finished + in progress at the end + ended otherwise


def progress_counts(
    session: Session,
    start: date,
    end: date,
    filters: Filters = NO_FILTERS,
    *,
    now: datetime,
    calendar: WorkingCalendar | None = None,
) -> dict[str, ProgressCounts]:
    """Per competent agency. **[motcua]** choices: the period's dossiers are those finished in
    it, in progress at its end, withdrawn in it or refused at the counter in it (received or
    handled); withdrawn and refused ones count as ended and not late (numerator and
    denominator); a dossier asked for supplementation more than once counts as late whatever its
    timeliness (DOMAIN.md §1). The supplementation time is already outside the clock (pause).
    Counts from the snapshots (``fast_counts``) corrected by the rare multi-supplement and
    refused dossiers read from the rows."""
    counts = fast_counts(session, start, end, "agency", filters, now=now, calendar=calendar)
    index = {name: i for i, name in enumerate(COUNTS)}
    lo, hi = period_bounds(start, end)
    d = _d()
    finished_in = and_(d.result_ready_at >= lo, d.result_ready_at < hi)
    open_at_end = and_(
        d.received_at.is_not(None),
        d.received_at < hi,
        or_(d.result_ready_at.is_(None), d.result_ready_at >= hi),
        or_(d.withdrawn_at.is_(None), d.withdrawn_at >= hi),
    )
    # dossiers with more than one supplementation request (partial index): late for 766
    multi_rows: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    candidates = session.execute(
        select(Dossier)
        .where(
            d.supplement_count > literal_column("1"),
            or_(finished_in, open_at_end),
            *_where(filters),
        )
        .order_by(d.id)
    ).scalars()
    for dossier in candidates:
        finished = dossier.result_ready_at is not None and lo <= dossier.result_ready_at < hi
        if finished and dossier.timeliness in ("early", "on_time"):
            multi_rows[dossier.competent_agency][0] += 1
        elif not finished and not is_overdue_at(session, dossier, hi, calendar):
            multi_rows[dossier.competent_agency][1] += 1
    refused = dict(
        session.execute(
            select(d.competent_agency, func.count())
            .where(d.refused_at >= lo, d.refused_at < hi, *_where(filters))
            .group_by(d.competent_agency)
        ).all()
    )
    result: dict[str, ProgressCounts] = {}
    for agency in sorted({k[0] for k in counts} | set(refused)):
        values = counts.get((agency,), [0] * len(COUNTS))
        fixes = multi_rows.get(agency, [0, 0])
        ended = values[index["withdrawn"]] + int(refused.get(agency, 0))
        result[agency] = ProgressCounts(
            on_time_finished=values[index["early"]] + values[index["on_time"]] - fixes[0],
            within_time_open=values[index["in_progress"]] - values[index["overdue"]] - fixes[1],
            ended_otherwise=ended,
            handled=values[index["finished"]] + values[index["in_progress"]] + ended,
        )
    return result


def progress_indicator(
    session: Session,
    start: date,
    end: date,
    filters: Filters = NO_FILTERS,
    *,
    now: datetime,
    calendar: WorkingCalendar | None = None,
) -> dict[str, Indicator]:
    """20 points, proportional (threshold unconfirmed). Per agency and ``PROVINCE``."""
    counts = progress_counts(session, start, end, filters, now=now, calendar=calendar)
    out: dict[str, Indicator] = {}
    totals = [0, 0]
    for agency, c in counts.items():
        part = c.on_time_finished + c.within_time_open + c.ended_otherwise
        totals[0] += part
        totals[1] += c.handled
        out[agency] = _progress(part, c.handled)
    out[PROVINCE] = _progress(*totals)
    return out


def _progress(part: int, whole: int) -> Indicator:
    return Indicator(
        "progress",
        "Tiến độ giải quyết (hồ sơ đúng hạn và trước hạn)",
        "Progress of resolution (early or on time)",
        20,
        None,
        part,
        whole,
        PROGRESS_SOURCE,
    )


# --- Online dossiers (part of 12) ---------------------------------------------------------------

ONLINE_SOURCE = (
    "QĐ 766, nhóm dịch vụ công trực tuyến (12 điểm): hồ sơ trực tuyến / tổng hồ sơ tiếp nhận × tỷ "
    "lệ đồng bộ × 100, đạt tối đa khi ≥ 50% [practice]; motcua: tỷ lệ đồng bộ = 1, 12 điểm"
)


def online_indicator(
    session: Session, start: date, end: date, filters: Filters = NO_FILTERS
) -> dict[str, Indicator]:
    lo, hi = period_bounds(start, end)
    d = _d()
    rows = session.execute(
        select(d.competent_agency, _count(d.channel == "online"), func.count())
        .where(d.received_at >= lo, d.received_at < hi, *_where(filters))
        .group_by(d.competent_agency)
    ).all()
    out = {agency: _online(int(a), int(b)) for agency, a, b in rows}
    out[PROVINCE] = _online(sum(int(r[1]) for r in rows), sum(int(r[2]) for r in rows))
    return out


def _online(part: int, whole: int) -> Indicator:
    return Indicator(
        "online", "Hồ sơ trực tuyến", "Online dossiers", 12, 50, part, whole, ONLINE_SOURCE
    )


# --- Digitization (16 of 22 here) ---------------------------------------------------------------

DIGITIZATION_SOURCES = {
    "e_result": "QĐ 766, số hóa: hồ sơ có kết quả điện tử / hồ sơ trong phạm vi; 6 điểm; đạt ≥ 80%",
    "components": (
        "QĐ 766, số hóa: hồ sơ có thành phần được số hóa (có tệp) và kết quả điện tử / tổng; "
        "4 điểm; đạt ≥ 80%"
    ),
    "reuse": "QĐ 766, số hóa: hồ sơ tái sử dụng ≥ 1 thành phần đã số hóa / tổng; 2 điểm; ≥ 80%",
    "shared": (
        "QĐ 766, số hóa: hồ sơ có ≥ 1 tệp từ kho dữ liệu hoặc kết quả điện tử được chia sẻ / "
        "tổng; 4 điểm; motcua: tỷ lệ thuận"
    ),
}


def digitization_indicators(
    session: Session, start: date, end: date, filters: Filters = NO_FILTERS
) -> dict[str, list[Indicator]]:
    """Over the dossiers finished in the period (**[motcua]**: every procedure is taken as having
    a paper result, so all are in scope). A component counts as digitized when a live
    (not deleted) document of it is stored or a digitization exemption is recorded (data shared
    from a national database, paper only shown, online submission, confidential — Circular
    03/2025 art. 5); an online dossier's components arrived electronic. "Shared for reuse" is
    read as: an e-result stored or a component reused from the citizen's data store."""
    lo, hi = period_bounds(start, end)
    d = _d()
    doc = Document.__table__.c  # type: ignore[attr-defined]
    ex = DigitizationExemption.__table__.c  # type: ignore[attr-defined]
    live = doc.deleted_at.is_(None)
    has_result = exists().where(doc.dossier_id == d.id, doc.component == "result", live)
    has_reuse = exists().where(doc.dossier_id == d.id, doc.reused_from_id.is_not(None), live)
    statement = select(d.id, d.competent_agency, d.channel, d.components, has_result, has_reuse)
    rows = session.execute(
        statement.where(d.result_ready_at >= lo, d.result_ready_at < hi, *_where(filters))
    ).all()
    ids = [r[0] for r in rows]
    covered: dict[int, set[str]] = defaultdict(set)
    for index in range(0, len(ids), 500):
        chunk = ids[index : index + 500]
        for dossier_id, component in session.execute(
            select(doc.dossier_id, doc.component).where(doc.dossier_id.in_(chunk), live)
        ).all():
            covered[dossier_id].add(component)
        for dossier_id, component in session.execute(
            select(ex.dossier_id, ex.component).where(ex.dossier_id.in_(chunk))
        ).all():
            covered[dossier_id].add(component)
    tallies: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for dossier_id, agency, channel, components, result, reuse in rows:
        wanted = {c["id"] for c in (components or []) if isinstance(c, dict) and "id" in c}
        digitized = channel == "online" or wanted <= covered[dossier_id]
        for key in (agency, PROVINCE):
            t = tallies[key]
            t[0] += 1
            t[1] += bool(result)
            t[2] += bool(result) and digitized
            t[3] += bool(reuse)
            t[4] += bool(result) or bool(reuse)
    out: dict[str, list[Indicator]] = {}
    for key, t in tallies.items():
        out[key] = [
            Indicator("digitization", "Hồ sơ có kết quả điện tử", "Dossiers with an e-result",
                      6, 80, t[1], t[0], DIGITIZATION_SOURCES["e_result"]),
            Indicator("digitization", "Hồ sơ được số hóa thành phần và kết quả",
                      "Dossiers with digitized components and e-result", 4, 80, t[2], t[0],
                      DIGITIZATION_SOURCES["components"]),
            Indicator("digitization", "Tái sử dụng dữ liệu số hóa", "Reuse of digitized data",
                      2, 80, t[3], t[0], DIGITIZATION_SOURCES["reuse"]),
            Indicator("digitization", "Số hóa và chia sẻ để tái sử dụng",
                      "Digitized and shared for reuse", 4, None, t[4], t[0],
                      DIGITIZATION_SOURCES["shared"]),
        ]  # fmt: skip
    return out


def score_card(
    session: Session,
    start: date,
    end: date,
    filters: Filters = NO_FILTERS,
    *,
    now: datetime,
    calendar: WorkingCalendar | None = None,
    catalog: Any = None,
) -> list[ScoreCard]:
    """The indicators per agency, the province (``PROVINCE``) last."""
    cards: dict[str, ScoreCard] = {}

    def card(key: str) -> ScoreCard:
        return cards.setdefault(key, ScoreCard(key))

    for key, indicator in progress_indicator(
        session, start, end, filters, now=now, calendar=calendar
    ).items():
        card(key).indicators.append(indicator)
    for key, indicator in online_indicator(session, start, end, filters).items():
        card(key).indicators.append(indicator)
    for key, indicators in digitization_indicators(session, start, end, filters).items():
        card(key).indicators.extend(indicators)
    try:
        from services import indicators_feedback as fb
    except ImportError:  # pragma: no cover - the feedback module is optional
        fb = None  # type: ignore[assignment]
    # feedback and payments are counted per agency: with no filter, or an agency filter alone
    by_agency = {name for name, _ in filters.items()} <= {"agency"}
    if fb is not None and by_agency:
        rows = fb.feedback_indicators(session, start, end, now, agency=filters.agency)
        for row in [*rows, fb.total_feedback(rows, PROVINCE)]:
            card(row.agency).indicators.extend(
                [
                    Indicator("satisfaction", "Phản ánh, kiến nghị xử lý đúng hạn",
                              "Feedback handled on time", 6, None, row.handled_on_time,
                              row.all, "QĐ 766 [law] — services/indicators_feedback.py"),
                    Indicator("satisfaction", "Hài lòng với việc xử lý phản ánh",
                              "Satisfaction with feedback handling", 6, None,
                              row.all - row.dissatisfied_or_late, row.all,
                              "QĐ 766 [law] — services/indicators_feedback.py"),
                ]
            )  # fmt: skip
        if catalog is not None:
            payments = fb.online_payment_share(session, catalog, start, end, agency=filters.agency)
            part = whole = 0
            for p in payments:
                part += p.paid_online
                whole += p.with_fee
                card(p.agency).indicators.append(_payment(p.paid_online, p.with_fee))
            card(PROVINCE).indicators.append(_payment(part, whole))
    ordered = sorted(k for k in cards if k != PROVINCE) + ([PROVINCE] if PROVINCE in cards else [])
    return [cards[k] for k in ordered]


def _payment(part: int, whole: int) -> Indicator:
    return Indicator(
        "payment",
        "Hồ sơ thanh toán trực tuyến",
        "Dossiers paid online",
        6,
        None,
        part,
        whole,
        "QĐ 766, thanh toán trực tuyến (6/10 điểm) [practice] — services/indicators_feedback.py",
    )
