"""On-time measurement, counted from the dossier rows by the one definition of DOMAIN.md §2.

For a period [from, to] (whole local days, Asia/Ho_Chi_Minh), ``lo`` = 00:00 of ``from`` and
``hi`` = 00:00 of the day after ``to``:

received     received within [lo, hi); refused-at-counter dossiers are never received
finished     result handed to the counter (``result_ready_at``) within [lo, hi), whatever the
             receipt date, approval or reasoned rejection alike; split early / on time / late by
             the dossier's timeliness against its due instant
in_progress  received before ``hi``, neither finished nor withdrawn before ``hi``
overdue      in progress whose due instant in force at ``hi`` had passed before ``hi``; a dossier
             paused (awaiting the applicant's papers) at ``hi`` only if that due instant had
             passed before the pause. Exact at any past ``hi``: where a later supplementation or
             withdrawal changed the dossier's clock columns, the state at ``hi`` is replayed
             from the event log (the receipt due instant recomputed by the clock, each resume's
             due instant read from its event)
withdrawn    received dossiers withdrawn within [lo, hi) — counted apart, never as late
             (**[motcua]** a dossier withdrawn before it was ever received is not counted)
on_time_rate (early + on time) / finished × 100, half-up to 2 decimals; empty when finished is 0

``on_time_report`` is the definition (one SQL pass plus the replay above). ``fast_report`` gives
the same numbers from the daily snapshots (``storage.models_metrics``) plus the open day's delta;
the property test in tests/integration/test_metrics_aggregates.py holds them equal.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

from sqlalchemy import and_, case, delete, func, or_, select
from sqlmodel import Session

from services.clock import TZ, WorkingCalendar, default_calendar
from services.errors import InvalidInput
from storage.models import Dossier, DossierEvent, ProcedureVersionRow
from storage.models_metrics import MetricsDaily, MetricsDay

Grouping = Literal["unit", "agency", "procedure", "level", "channel", "field"]
GROUPINGS: tuple[Grouping, ...] = ("unit", "agency", "procedure", "level", "channel", "field")
Period = Literal["day", "week", "month", "quarter", "year"]

_DOSSIER_COLUMNS = {
    "unit": "receiving_unit",
    "agency": "competent_agency",
    "procedure": "procedure_code",
    "level": "level",
    "channel": "channel",
}
COUNTS = ("received", "finished", "early", "on_time", "late", "in_progress", "overdue", "withdrawn")
FLOWS = ("received", "finished", "early", "on_time", "late", "withdrawn")
STOCKS = ("in_progress", "overdue")


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

    def counts(self) -> tuple[int, ...]:
        return tuple(getattr(self, name) for name in COUNTS)


@dataclass(frozen=True)
class Filters:
    """Restrict a report to one level, agency, receiving unit, procedure, channel or field."""

    level: str | None = None
    agency: str | None = None
    unit: str | None = None
    procedure: str | None = None
    channel: str | None = None
    field: str | None = None

    def items(self) -> list[tuple[str, str]]:
        return [(f.name, getattr(self, f.name)) for f in fields(self) if getattr(self, f.name)]


NO_FILTERS = Filters()


def on_time_rate(early: int, on_time: int, finished: int) -> Decimal | None:
    if finished == 0:
        return None
    rate = Decimal(early + on_time) * 100 / Decimal(finished)
    return rate.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def format_rate(rate: Decimal | None) -> str:
    return "" if rate is None else f"{rate:.2f}"


# a period is asked for by people: a day outside these is a typing error (and year 1 or 9999
# overflows once moved to UTC), refused as invalid input rather than a server error
EARLIEST_DAY = date(1900, 1, 1)
LATEST_DAY = date(9998, 12, 31)


def period_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """[00:00 of ``start``, 00:00 of the day after ``end``) in Asia/Ho_Chi_Minh."""
    for day in (start, end):
        if not EARLIEST_DAY <= day <= LATEST_DAY:
            raise InvalidInput(
                f"Ngày {day} nằm ngoài khoảng {EARLIEST_DAY:%d/%m/%Y}–{LATEST_DAY:%d/%m/%Y}",
                f"The day {day} is outside {EARLIEST_DAY}–{LATEST_DAY}",
                field="period",
            )
    return (
        datetime.combine(start, time(0), TZ),
        datetime.combine(end + timedelta(days=1), time(0), TZ),
    )


def _batched(items: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for index in range(0, len(items), size):
        yield items[index : index + size]


def _count(condition: Any) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _dossier_columns() -> Any:
    return Dossier.__table__.c  # type: ignore[attr-defined]


def _field_column() -> Any:
    p = ProcedureVersionRow.__table__.c  # type: ignore[attr-defined]
    return p.field


def _with_field(statement: Any) -> Any:
    d = _dossier_columns()
    p = ProcedureVersionRow.__table__.c  # type: ignore[attr-defined]
    return statement.join_from(
        Dossier.__table__,  # type: ignore[attr-defined]
        ProcedureVersionRow.__table__,  # type: ignore[attr-defined]
        and_(p.code == d.procedure_code, p.version == d.procedure_version),
    )


def _group_column(by: Grouping) -> Any:
    if by == "field":
        return _field_column()
    return getattr(_dossier_columns(), _DOSSIER_COLUMNS[by])


def _needs_field(groups: Sequence[Grouping], filters: Filters) -> bool:
    return "field" in groups or filters.field is not None


def _filter_conditions(filters: Filters) -> list[Any]:
    conditions = []
    for name, value in filters.items():
        column = _field_column() if name == "field" else _group_column(name)  # type: ignore[arg-type]
        conditions.append(column == value)
    return conditions


def _in_progress(d: Any, hi: datetime) -> Any:
    return and_(
        d.received_at.is_not(None),
        d.received_at < hi,
        or_(d.result_ready_at.is_(None), d.result_ready_at >= hi),
        or_(d.withdrawn_at.is_(None), d.withdrawn_at >= hi),
    )


def _overdue_by_columns(d: Any, hi: datetime) -> Any:
    """Overdue at ``hi`` read from the current columns (exact unless the clock moved later)."""
    return and_(
        _in_progress(d, hi),
        d.due_at < hi,
        or_(d.paused_at.is_(None), d.paused_at >= hi, d.due_at < d.paused_at),
    )


def grouped_counts(
    session: Session,
    start: date,
    end: date,
    groups: Sequence[Grouping],
    filters: Filters = NO_FILTERS,
    *,
    calendar: WorkingCalendar | None = None,
) -> dict[tuple[str, ...], list[int]]:
    """Counts (in ``COUNTS`` order) per tuple of group keys, exact by the definition above."""
    lo, hi = period_bounds(start, end)
    d = _dossier_columns()
    keys = [_group_column(g) for g in groups]
    finished_in = and_(d.result_ready_at >= lo, d.result_ready_at < hi)
    statement = select(
        *keys,
        _count(and_(d.received_at >= lo, d.received_at < hi)),
        _count(finished_in),
        _count(and_(finished_in, d.timeliness == "early")),
        _count(and_(finished_in, d.timeliness == "on_time")),
        _count(and_(finished_in, d.timeliness == "late")),
        _count(_in_progress(d, hi)),
        _count(_overdue_by_columns(d, hi)),
        _count(and_(d.received_at.is_not(None), d.withdrawn_at >= lo, d.withdrawn_at < hi)),
    )
    if _needs_field(groups, filters):
        statement = _with_field(statement)
    statement = statement.where(
        d.received_at.is_not(None), d.received_at < hi, *_filter_conditions(filters)
    ).group_by(*keys)
    result: dict[tuple[str, ...], list[int]] = {}
    for values in session.execute(statement).all():
        result[tuple(values[: len(keys)])] = [int(v) for v in values[len(keys) :]]
    for key, delta in _overdue_corrections(session, hi, groups, filters, calendar).items():
        result[key][COUNTS.index("overdue")] += delta
    return result


def _overdue_corrections(
    session: Session,
    hi: datetime,
    groups: Sequence[Grouping],
    filters: Filters,
    calendar: WorkingCalendar | None,
) -> dict[tuple[str, ...], int]:
    """Dossiers in progress at ``hi`` whose clock columns changed after ``hi`` (a later resume
    moved ``due_at``, a later withdrawal cleared ``paused_at``): replay their events up to
    ``hi`` and return, per group, exact overdue minus the column-based one."""
    d = _dossier_columns()
    e = DossierEvent.__table__.c  # type: ignore[attr-defined]
    p = ProcedureVersionRow.__table__.c  # type: ignore[attr-defined]
    later_change = (
        select(e.dossier_id)
        .where(e.at >= hi, e.event.in_(("supplement", "withdraw")))
        .distinct()
        .scalar_subquery()
    )
    keys = [_group_column(g) for g in groups]
    statement = (
        select(
            d.id, d.received_at, d.due_at, d.paused_at, p.time_limit, *keys
        )
        .join_from(
            Dossier.__table__,  # type: ignore[attr-defined]
            ProcedureVersionRow.__table__,  # type: ignore[attr-defined]
            and_(p.code == d.procedure_code, p.version == d.procedure_version),
        )
        .where(_in_progress(d, hi), d.id.in_(later_change), *_filter_conditions(filters))
    )  # fmt: skip
    candidates = session.execute(statement).all()
    if not candidates:
        return {}
    calendar = calendar or default_calendar()
    ids = [row[0] for row in candidates]
    events: dict[int, list[Any]] = defaultdict(list)
    for chunk in _batched(ids, 500):
        for ev in session.execute(
            select(e.dossier_id, e.event, e.from_state, e.to_state, e.at, e.data)
            .where(e.dossier_id.in_(chunk), e.at < hi)
            .order_by(e.dossier_id, e.seq)
        ).all():
            events[ev[0]].append(ev)
    corrections: dict[tuple[str, ...], int] = defaultdict(int)
    for row in candidates:
        dossier_id, received_at, due_at, paused_at = row[0], row[1], row[2], row[3]
        by_columns = (
            due_at is not None
            and due_at < hi
            and (paused_at is None or paused_at >= hi or due_at < paused_at)
        )
        due = calendar.due_at_receipt(received_at, Decimal(row[4]))
        paused: datetime | None = None
        for ev in events[dossier_id]:
            if ev.event == "request_supplement" and ev.from_state != "submitted":
                paused = ev.at
            elif ev.event == "supplement" and ev.to_state != "submitted":
                paused = None
                if (ev.data or {}).get("due_at"):
                    due = datetime.fromisoformat(ev.data["due_at"])
        exact = due < hi and (paused is None or due < paused)
        if exact != by_columns:
            corrections[tuple(row[5:])] += 1 if exact else -1
    return corrections


def on_time_report(
    session: Session,
    start: date,
    end: date,
    by: Grouping = "unit",
    filters: Filters = NO_FILTERS,
    *,
    calendar: WorkingCalendar | None = None,
) -> list[OnTimeRow]:
    """One row per group with something to show, sorted by key (the definition, from the rows)."""
    counts = grouped_counts(session, start, end, [by], filters, calendar=calendar)
    return _rows(counts)


def _rows(counts: dict[tuple[str, ...], list[int]]) -> list[OnTimeRow]:
    rows = []
    for key in sorted(counts, key=lambda k: tuple("" if v is None else str(v) for v in k)):
        row = OnTimeRow(str(key[0]) if key[0] is not None else "", *counts[key])
        if any((row.received, row.finished, row.in_progress, row.withdrawn)):
            rows.append(row)
    return rows


def total(rows: Iterable[OnTimeRow], key: str = "TOTAL") -> OnTimeRow:
    rows = list(rows)
    return OnTimeRow(key, *(sum(getattr(r, f) for r in rows) for f in COUNTS))


# --- Incremental aggregates: daily snapshots plus the open days' delta -------------------------

SNAPSHOT_DIMS: tuple[Grouping, ...] = ("unit", "agency", "procedure", "level", "channel", "field")
_SNAPSHOT_COLUMNS = {
    "unit": "receiving_unit",
    "agency": "competent_agency",
    "procedure": "procedure_code",
    "level": "level",
    "channel": "channel",
    "field": "field",
}


BEGINNING = date(2000, 1, 1)  # before any dossier: cumulated flows count from here


def snapshot_day(session: Session, day: date, *, calendar: WorkingCalendar | None = None) -> int:
    """(Re)compute the snapshot of one closed day per (unit, agency, procedure, level, channel,
    field): the flows cumulated from the beginning to the day's end and the stocks at its end,
    by :func:`grouped_counts` itself. Returns the number of rows written. The caller commits."""
    counts = grouped_counts(session, BEGINNING, day, SNAPSHOT_DIMS, calendar=calendar)
    session.execute(delete(MetricsDaily).where(MetricsDaily.day == day))  # type: ignore[arg-type]
    session.execute(delete(MetricsDay).where(MetricsDay.day == day))  # type: ignore[arg-type]
    written = 0
    for key, values in counts.items():
        if not any(values):
            continue
        dims: dict[str, Any] = dict(zip(_SNAPSHOT_COLUMNS.values(), key, strict=True))
        row = MetricsDaily(day=day, **dims)
        for name, value in zip(COUNTS, values, strict=True):
            setattr(row, name if name in STOCKS else f"cum_{name}", value)
        session.add(row)
        written += 1
    session.add(MetricsDay(day=day, rows=written, computed_at=datetime.now(TZ)))
    session.flush()
    return written


def ensure_snapshots(
    session: Session,
    days: Iterable[date],
    *,
    today: date,
    calendar: WorkingCalendar | None = None,
) -> int:
    """Compute the missing snapshots among ``days`` (closed days only: before ``today``).
    Returns the number computed. The caller commits."""
    wanted = {day for day in days if day < today}
    if not wanted:
        return 0
    done = set(session.execute(select(_md().day).where(_md().day.in_(wanted))).scalars())
    for day in sorted(wanted - done):
        snapshot_day(session, day, calendar=calendar)
    return len(wanted - done)


def refresh_snapshots(
    session: Session,
    start: date,
    end: date,
    *,
    today: date,
    calendar: WorkingCalendar | None = None,
) -> int:
    """The snapshot flow: every closed day in [start, end] gets its snapshot (run once a day for
    yesterday). Returns the number of days computed. The caller commits."""
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    return ensure_snapshots(session, days, today=today, calendar=calendar)


def _md() -> Any:
    return MetricsDay.__table__.c  # type: ignore[attr-defined]


def invalidate_snapshots(session: Session, since: date) -> None:
    """History changed from ``since`` on (an import): drop the snapshots from that day."""
    session.execute(delete(MetricsDaily).where(MetricsDaily.day >= since))  # type: ignore[arg-type]
    session.execute(delete(MetricsDay).where(MetricsDay.day >= since))  # type: ignore[arg-type]


def _snapshot_filter(filters: Filters) -> list[Any]:
    c = MetricsDaily.__table__.c  # type: ignore[attr-defined]
    return [getattr(c, _SNAPSHOT_COLUMNS[name]) == value for name, value in filters.items()]


def _snapshot_counts(
    session: Session, start: date, end: date, by: Grouping, filters: Filters
) -> dict[tuple[str, ...], list[int]]:
    """Flows over [start, end] = cumulated at ``end`` − cumulated at ``start - 1``; stocks of
    day ``end``: two days of snapshot rows, whatever the period's length."""
    c = MetricsDaily.__table__.c  # type: ignore[attr-defined]
    key = getattr(c, _SNAPSHOT_COLUMNS[by])
    before = start - timedelta(days=1)
    statement = (
        select(
            key,
            *(
                func.coalesce(
                    func.sum(
                        case(
                            (c.day == end, getattr(c, f"cum_{name}")),
                            else_=-getattr(c, f"cum_{name}"),
                        )
                    ),
                    0,
                )
                for name in FLOWS
            ),
            *(
                func.coalesce(func.sum(case((c.day == end, getattr(c, name)), else_=0)), 0)
                for name in STOCKS
            ),
        )
        .where(c.day.in_((before, end)), *_snapshot_filter(filters))
        .group_by(key)
    )
    result: dict[tuple[str, ...], list[int]] = {}
    for values in session.execute(statement).all():
        flows = dict(zip(FLOWS, values[1 : 1 + len(FLOWS)], strict=True))
        stocks = dict(zip(STOCKS, values[1 + len(FLOWS) :], strict=True))
        merged = {**flows, **stocks}
        result[(values[0],)] = [int(merged[name]) for name in COUNTS]
    return result


def _snapshot_in_progress(
    session: Session, day: date, by: Grouping, filters: Filters
) -> dict[tuple[str, ...], int]:
    """The in-progress stock at the end of the closed ``day``, per group, from its snapshot."""
    c = MetricsDaily.__table__.c  # type: ignore[attr-defined]
    key = getattr(c, _SNAPSHOT_COLUMNS[by])
    statement = (
        select(key, func.coalesce(func.sum(c.in_progress), 0))
        .where(c.day == day, *_snapshot_filter(filters))
        .group_by(key)
    )
    return {(k,): int(v) for k, v in session.execute(statement).all()}


def _open_counts(
    session: Session,
    start: date,
    end: date,
    by: Grouping,
    filters: Filters,
    now: datetime,
    calendar: WorkingCalendar | None,
) -> dict[tuple[str, ...], list[int]]:
    """The open days (``start`` is today or later): flows from the indexed instants; the stocks
    at the end without reading every open dossier — in progress = yesterday's stock (its
    snapshot) + received − finished − withdrawn since today began (a dossier is finished or
    withdrawn, never both, and only once received), overdue from the partial index on the open
    dossiers' due instants, reading only those due before the end. No event is later than
    ``now``, so the open days' flows are today's."""
    today = now.astimezone(TZ).date()
    lo, hi = period_bounds(start, end)
    assert hi > now, "open days end after now"
    d = _dossier_columns()
    key = _group_column(by)
    extra = _filter_conditions(filters)

    def zero() -> list[int]:
        return [0] * len(COUNTS)

    def run(statement: Any, names: Sequence[str], into: dict[tuple[str, ...], list[int]]) -> None:
        if _needs_field([by], filters):
            statement = _with_field(statement)
        for values in session.execute(statement.group_by(key)).all():
            row = into[(values[0],)]
            for name, value in zip(names, values[1:], strict=True):
                row[COUNTS.index(name)] += int(value)

    def flows(lo: datetime, into: dict[tuple[str, ...], list[int]]) -> None:
        run(
            select(key, func.count()).where(d.received_at >= lo, d.received_at < hi, *extra),
            ["received"],
            into,
        )
        run(
            select(
                key,
                func.count(),
                _count(d.timeliness == "early"),
                _count(d.timeliness == "on_time"),
                _count(d.timeliness == "late"),
            ).where(d.result_ready_at >= lo, d.result_ready_at < hi, *extra),
            ["finished", "early", "on_time", "late"],
            into,
        )
        run(
            select(key, func.count()).where(
                d.withdrawn_at >= lo, d.withdrawn_at < hi, d.received_at.is_not(None), *extra
            ),
            ["withdrawn"],
            into,
        )

    result: dict[tuple[str, ...], list[int]] = defaultdict(zero)
    flows(lo, result)
    since_today = result
    if start > today:
        since_today = defaultdict(zero)
        flows(period_bounds(today, end)[0], since_today)
    yesterday = today - timedelta(days=1)
    if ensure_snapshots(session, [yesterday], today=today, calendar=calendar):
        session.commit()
    stock = _snapshot_in_progress(session, yesterday, by, filters)
    received, finished, withdrawn, in_progress = (
        COUNTS.index(n) for n in ("received", "finished", "withdrawn", "in_progress")
    )
    for group in set(stock) | set(since_today):
        moved = since_today.get(group) or zero()
        result[group][in_progress] = (
            stock.get(group, 0) + moved[received] - moved[finished] - moved[withdrawn]
        )
    run(
        select(key, func.count()).where(
            d.received_at.is_not(None),
            d.result_ready_at.is_(None),
            d.withdrawn_at.is_(None),
            d.due_at < hi,
            or_(d.paused_at.is_(None), d.due_at < d.paused_at),
            *extra,
        ),
        ["overdue"],
        result,
    )
    return dict(result)


def fast_counts(
    session: Session,
    start: date,
    end: date,
    by: Grouping,
    filters: Filters = NO_FILTERS,
    *,
    now: datetime,
    calendar: WorkingCalendar | None = None,
) -> dict[tuple[str, ...], list[int]]:
    """The same numbers as :func:`grouped_counts` from the snapshots of the closed days (computed
    here if missing) plus the open days' delta."""
    today = now.astimezone(TZ).date()
    closed_end = min(end, today - timedelta(days=1))
    counts: dict[tuple[str, ...], list[int]] = defaultdict(lambda: [0] * len(COUNTS))
    if start <= closed_end:
        boundaries = (start - timedelta(days=1), closed_end)
        if ensure_snapshots(session, boundaries, today=today, calendar=calendar):
            session.commit()
        for key, values in _snapshot_counts(session, start, closed_end, by, filters).items():
            counts[key] = list(values)
    if end >= today:
        open_start = max(start, today)
        open_part = _open_counts(session, open_start, end, by, filters, now, calendar)
        for key in set(counts) | set(open_part):
            merged = counts[key]
            values = open_part.get(key, [0] * len(COUNTS))
            for index, name in enumerate(COUNTS):
                if name in STOCKS:
                    merged[index] = values[index]  # the stock at the end of the period
                else:
                    merged[index] += values[index]
    return dict(counts)


def fast_report(
    session: Session,
    start: date,
    end: date,
    by: Grouping = "unit",
    filters: Filters = NO_FILTERS,
    *,
    now: datetime,
    calendar: WorkingCalendar | None = None,
) -> list[OnTimeRow]:
    return _rows(fast_counts(session, start, end, by, filters, now=now, calendar=calendar))


def period_buckets(start: date, end: date, period: Period) -> list[tuple[date, date]]:
    """Consecutive [first, last] day ranges covering [start, end], cut by ``period``."""
    buckets: list[tuple[date, date]] = []
    day = start
    while day <= end:
        if period == "day":
            last = day
        elif period == "week":
            last = day + timedelta(days=6 - day.weekday())
        elif period == "month":
            last = _month_end(day.year, day.month)
        elif period == "quarter":
            last = _month_end(day.year, ((day.month - 1) // 3) * 3 + 3)
        else:
            last = date(day.year, 12, 31)
        last = min(last, end)
        buckets.append((day, last))
        day = last + timedelta(days=1)
    return buckets


def _month_end(year: int, month: int) -> date:
    first_next = date(year + (month == 12), month % 12 + 1, 1)
    return first_next - timedelta(days=1)


def trend(
    session: Session,
    start: date,
    end: date,
    period: Period = "month",
    filters: Filters = NO_FILTERS,
    *,
    now: datetime,
    calendar: WorkingCalendar | None = None,
) -> list[tuple[date, date, OnTimeRow]]:
    """Totals per period bucket (day, week, month, quarter, year): one query over the snapshot
    rows of the buckets' boundary days, plus the open days' delta for a bucket reaching today."""
    today = now.astimezone(TZ).date()
    buckets = period_buckets(start, end, period)
    needed: set[date] = set()
    for first, last in buckets:
        closed_end = min(last, today - timedelta(days=1))
        if first <= closed_end:
            needed.update((first - timedelta(days=1), closed_end))
    if ensure_snapshots(session, needed, today=today, calendar=calendar):
        session.commit()
    by_day: dict[date, dict[str, int]] = {}
    if needed:
        c = MetricsDaily.__table__.c  # type: ignore[attr-defined]
        names = [f"cum_{n}" for n in FLOWS] + list(STOCKS)
        statement = (
            select(c.day, *(func.coalesce(func.sum(getattr(c, n)), 0) for n in names))
            .where(c.day.in_(needed), *_snapshot_filter(filters))
            .group_by(c.day)
        )
        for values in session.execute(statement).all():
            by_day[values[0]] = dict(zip(names, (int(v) for v in values[1:]), strict=True))
    zero = dict.fromkeys([f"cum_{n}" for n in FLOWS] + list(STOCKS), 0)
    result = []
    for first, last in buckets:
        totals = dict.fromkeys(COUNTS, 0)
        closed_end = min(last, today - timedelta(days=1))
        if first <= closed_end:
            after = by_day.get(closed_end, zero)
            before = by_day.get(first - timedelta(days=1), zero)
            for name in FLOWS:
                totals[name] = after[f"cum_{name}"] - before[f"cum_{name}"]
            for name in STOCKS:
                totals[name] = after[name]
        if last >= today:
            open_part = _open_counts(
                session, max(first, today), last, "level", filters, now, calendar
            )
            for index, name in enumerate(COUNTS):
                value = sum(v[index] for v in open_part.values())
                totals[name] = value if name in STOCKS else totals[name] + value
        result.append((first, last, OnTimeRow(f"{first}", *(totals[n] for n in COUNTS))))
    return result


# --- Lateness by responsible unit (the unit whose step ran over) --------------------------------

RESPONSIBLE_HEADER = (
    "unit_code,steps_finished,steps_early,steps_on_time,steps_late,"
    "late_dossiers,inter_agency_steps_late,step_on_time_rate"
)


@dataclass(frozen=True)
class ResponsibleRow:
    key: str
    steps_finished: int
    steps_early: int
    steps_on_time: int
    steps_late: int
    late_dossiers: int
    inter_agency_steps_late: int

    @property
    def step_on_time_rate(self) -> Decimal | None:
        return on_time_rate(self.steps_early, self.steps_on_time, self.steps_finished)


def responsible_unit_report(
    session: Session,
    start: date,
    end: date,
    filters: Filters = NO_FILTERS,
    *,
    inter_agency_steps: dict[str, set[str]] | None = None,
) -> list[ResponsibleRow]:
    """Per unit that ran a step: steps left within the period (from the event log) split by the
    step's timeliness, and the dossiers finished late in the period that this unit made late.

    A late dossier is attributed to every unit with a late step on it; when no step was late
    (the time ran out between the decision and the handoff to the counter), to the unit that
    handed the result to the counter (``from_unit`` of ``mark_result_ready``). A step left by
    ``request_supplement`` has no timeliness (its clock pauses) and a step ended by the
    applicant's withdrawal is not a finished step: neither is counted.
    ``inter_agency_steps`` maps a procedure code to its inter-agency step ids (from the catalog).
    """
    lo, hi = period_bounds(start, end)
    d = _dossier_columns()
    e = DossierEvent.__table__.c  # type: ignore[attr-defined]
    steps = (
        select(e.from_unit, e.step_timeliness, e.step_id, d.procedure_code)
        .join_from(DossierEvent.__table__, Dossier.__table__, e.dossier_id == d.id)  # type: ignore[attr-defined]
        .where(
            e.step_timeliness.is_not(None),
            e.event != "withdraw",
            e.at >= lo,
            e.at < hi,
            *_filter_conditions(filters),
        )
    )
    if filters.field:
        steps = _with_field(steps)
    table: dict[str, list[int]] = defaultdict(lambda: [0] * 6)
    inter = inter_agency_steps or {}
    for unit, verdict, step_id, procedure in session.execute(steps).all():
        row = table[unit or ""]
        row[0] += 1
        row[{"early": 1, "on_time": 2, "late": 3}[verdict]] += 1
        if verdict == "late" and step_id in inter.get(procedure, set()):
            row[5] += 1
    late = select(d.id).where(
        d.result_ready_at >= lo,
        d.result_ready_at < hi,
        d.timeliness == "late",
        *_filter_conditions(filters),
    )
    if filters.field:
        late = _with_field(late)
    late_ids = [r[0] for r in session.execute(late).all()]
    for chunk in _batched(late_ids, 500):
        units: dict[int, set[str]] = defaultdict(set)
        handoff: dict[int, str] = {}
        for dossier_id, event, verdict, unit in session.execute(
            select(e.dossier_id, e.event, e.step_timeliness, e.from_unit).where(
                e.dossier_id.in_(chunk),
                or_(e.step_timeliness == "late", e.event == "mark_result_ready"),
            )
        ).all():
            if verdict == "late":
                units[dossier_id].add(unit or "")
            if event == "mark_result_ready":
                handoff[dossier_id] = unit or ""
        for dossier_id in chunk:
            for unit in units.get(dossier_id) or {handoff.get(dossier_id, "")}:
                table[unit][4] += 1
    return [ResponsibleRow(key, *table[key]) for key in sorted(table)]


# --- Lists behind the numbers (drill-down) ------------------------------------------------------

Measure = Literal[
    "received", "finished", "early", "on_time", "late", "in_progress", "overdue", "withdrawn"
]


def dossiers_behind(
    session: Session,
    start: date,
    end: date,
    measure: Measure,
    by: Grouping | None = None,
    key: str | None = None,
    filters: Filters = NO_FILTERS,
    *,
    calendar: WorkingCalendar | None = None,
    limit: int | None = None,
) -> list[Dossier]:
    """The very dossiers counted in one cell of :func:`on_time_report`, by code."""
    lo, hi = period_bounds(start, end)
    d = _dossier_columns()
    finished_in = and_(d.result_ready_at >= lo, d.result_ready_at < hi)
    conditions: dict[str, Any] = {
        "received": and_(d.received_at >= lo, d.received_at < hi),
        "finished": finished_in,
        "early": and_(finished_in, d.timeliness == "early"),
        "on_time": and_(finished_in, d.timeliness == "on_time"),
        "late": and_(finished_in, d.timeliness == "late"),
        "in_progress": _in_progress(d, hi),
        "overdue": _in_progress(d, hi),
        "withdrawn": and_(d.received_at.is_not(None), d.withdrawn_at >= lo, d.withdrawn_at < hi),
    }
    statement = select(Dossier).where(conditions[measure], *_filter_conditions(filters))
    if by is not None and key is not None:
        statement = statement.where(_group_column(by) == key)
    if _needs_field([by] if by else [], filters):
        statement = _with_field(statement)
    statement = statement.order_by(d.code)
    if limit is not None and measure != "overdue":
        statement = statement.limit(limit)
    found = list(session.execute(statement).scalars())
    if measure == "overdue":
        found = [x for x in found if is_overdue_at(session, x, hi, calendar)]
        if limit is not None:
            found = found[:limit]
    return found


def is_overdue_at(
    session: Session, dossier: Dossier, hi: datetime, calendar: WorkingCalendar | None
) -> bool:
    """Overdue at ``hi`` for one dossier (replaying its events like the report does)."""
    p = ProcedureVersionRow.__table__.c  # type: ignore[attr-defined]
    e = DossierEvent.__table__.c  # type: ignore[attr-defined]
    limit = session.execute(
        select(p.time_limit).where(
            p.code == dossier.procedure_code, p.version == dossier.procedure_version
        )
    ).scalar_one()
    assert dossier.received_at is not None
    due = (calendar or default_calendar()).due_at_receipt(dossier.received_at, Decimal(limit))
    paused: datetime | None = None
    for ev in session.execute(
        select(e.event, e.from_state, e.to_state, e.at, e.data)
        .where(e.dossier_id == dossier.id, e.at < hi)
        .order_by(e.seq)
    ).all():
        if ev.event == "request_supplement" and ev.from_state != "submitted":
            paused = ev.at
        elif ev.event == "supplement" and ev.to_state != "submitted":
            paused = None
            if (ev.data or {}).get("due_at"):
                due = datetime.fromisoformat(ev.data["due_at"])
    return due < hi and (paused is None or due < paused)


def due_soon(
    session: Session,
    now: datetime,
    until: datetime,
    filters: Filters = NO_FILTERS,
    *,
    limit: int = 50,
) -> list[Dossier]:
    """Open dossiers whose clock runs and whose due instant falls in [now, until), soonest first
    (partial index ``ix_dossier_open_due``)."""
    d = _dossier_columns()
    statement = select(Dossier).where(
        d.received_at.is_not(None),
        d.result_ready_at.is_(None),
        d.withdrawn_at.is_(None),
        d.paused_at.is_(None),
        d.due_at >= now,
        d.due_at < until,
        *_filter_conditions(filters),
    )
    if filters.field:
        statement = _with_field(statement)
    return list(session.execute(statement.order_by(d.due_at).limit(limit)).scalars())


def overdue_now(
    session: Session, now: datetime, filters: Filters = NO_FILTERS, *, limit: int = 50
) -> list[Dossier]:
    """Open dossiers overdue at ``now`` (a paused one only if it was overdue before the pause),
    the longest overdue first."""
    d = _dossier_columns()
    statement = select(Dossier).where(
        d.received_at.is_not(None),
        d.result_ready_at.is_(None),
        d.withdrawn_at.is_(None),
        d.due_at < now,
        or_(d.paused_at.is_(None), d.due_at < d.paused_at),
        *_filter_conditions(filters),
    )
    if filters.field:
        statement = _with_field(statement)
    return list(session.execute(statement.order_by(d.due_at).limit(limit)).scalars())


def finished_late(
    session: Session, start: date, end: date, filters: Filters = NO_FILTERS, *, limit: int = 50
) -> list[Dossier]:
    """Dossiers finished late in the period, the latest first."""
    lo, hi = period_bounds(start, end)
    d = _dossier_columns()
    statement = select(Dossier).where(
        d.result_ready_at >= lo,
        d.result_ready_at < hi,
        d.timeliness == "late",
        *_filter_conditions(filters),
    )
    if filters.field:
        statement = _with_field(statement)
    return list(
        session.execute(statement.order_by(d.result_ready_at.desc()).limit(limit)).scalars()
    )
