"""The incremental aggregates (daily snapshots + the open days' delta) always give the numbers of
the counting definition over the rows — on random histories made by the real use cases.

Histories: dossiers of an inter-agency procedure (MOJ.lltp at the provincial centre: Justice,
police) and a district one (1.001612), received over a window that spans Tết 2025, each walked
through random allowed events (supplementation pauses, send-backs, rejections, apology slips,
withdrawals, refusals at the counter, dossiers left in progress) with a FixedClock. The report is
taken at a first instant, the history goes on, and it is taken again: snapshots computed at the
first look are reused at the second, as the daily flow would.
"""

from __future__ import annotations

import random
import tempfile
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func
from sqlmodel import select

from services.catalog import default_catalog
from services.clock import TZ, FixedClock, default_calendar
from services.context import Context
from services.directory import sync_catalog
from services.dossiers import Applicant, DossierIn, act, allowed_events, submit_dossier
from services.errors import DomainError
from services.importer import actor_for
from services.metrics import (
    GROUPINGS,
    Filters,
    dossiers_behind,
    fast_report,
    on_time_report,
)
from states.lifecycle import Actor
from storage.db import make_engine, migrate
from storage.models import Dossier
from storage.models_metrics import MetricsDay

START = datetime(2025, 1, 20, 7, 0, tzinfo=TZ)
SOURCES = [("MOJ.lltp", "000.00.01.H37"), ("1.001612", "000.01.31.H37")]
WEIGHTS = {
    "forward": 6, "send_back": 0.5, "request_supplement": 1.2, "supplement": 4, "approve": 5,
    "reject": 0.6, "mark_result_ready": 5, "return_result": 5, "withdraw": 0.4, "extend": 0.7,
}  # fmt: skip


@dataclass
class Walk:
    code: str | None
    version: int | None
    next_at: datetime
    source: tuple[str, str]
    final: bool = False


def _gap(rng: random.Random) -> timedelta:
    return timedelta(minutes=rng.choice([20, 90, 240, 600, 1440, 2880, 4320, 8640]))


def _advance(ctx: Context, clock: FixedClock, rng: random.Random, w: Walk, until: datetime) -> None:
    while not w.final and w.next_at <= until:
        clock.set(w.next_at)
        w.next_at = w.next_at + _gap(rng)
        if w.code is None:
            procedure, unit = w.source
            counter = Actor("p.counter", "counter", unit)
            then = rng.choices(["receive", "refuse", "request_supplement"], [20, 1, 1])[0]
            data = DossierIn(
                procedure_code=procedure,
                receiving_unit=unit,
                channel=rng.choice(["counter", "online", "post"]),
                applicant=Applicant(name="Nguyễn Văn A"),
            )
            dossier = submit_dossier(ctx, counter, data, then=then, reason="Thiếu giấy tờ")  # type: ignore[arg-type]
            w.code, w.version = dossier.code, dossier.version
            w.final = then == "refuse"
            continue
        if rng.random() < 0.04:  # left in progress for good
            w.final = True
            return
        with ctx.uow() as uow:
            dossier = uow.get_dossier(w.code)
        events = [e for e in allowed_events(ctx, dossier) if e in WEIGHTS]
        if not events:
            w.final = True
            return
        if dossier.status == "submitted":
            events = [e for e in events if e != "withdraw"]
        event = rng.choices(events, [WEIGHTS[e] for e in events])[0]
        appointment = None
        if event == "extend":
            base = max(dossier.due_at or w.next_at, clock.now())
            appointment = base + timedelta(days=3)
        try:
            dossier = act(
                ctx,
                actor_for(ctx, dossier, event, "specialist"),
                w.code,
                event,  # type: ignore[arg-type]
                dossier.version,
                reason="Lý do",
                decision_ref="1/QĐ",
                new_appointment=appointment,
            )
        except DomainError:
            continue  # e.g. a late dossier without its apology slip: try again later
        w.final = dossier.status in ("returned", "withdrawn", "refused")


def _history(
    ctx: Context, seed: int, dossiers: int
) -> tuple[FixedClock, list[Walk], random.Random]:
    rng = random.Random(seed)
    clock = ctx.clock
    assert isinstance(clock, FixedClock)
    walks = [
        Walk(
            None,
            None,
            START + timedelta(minutes=rng.randrange(0, 40 * 24 * 60)),
            rng.choice(SOURCES),
        )
        for _ in range(dossiers)
    ]
    return clock, walks, rng


def _check(ctx: Context, now: datetime, rng: random.Random) -> None:
    today = now.date()
    periods = [
        (date(2025, 1, 20), today),
        (date(2025, 1, 1), date(2025, 1, 31)),
        (date(2025, 2, 3), today + timedelta(days=3)),
        (today, today),
    ]
    for _ in range(3):
        a = date(2025, 1, 15) + timedelta(days=rng.randrange(0, 60))
        periods.append((a, a + timedelta(days=rng.randrange(0, 40))))
    with ctx.uow() as uow:
        session = uow.session
        for start, end in periods:
            for by in GROUPINGS:
                exact = on_time_report(session, start, end, by, calendar=ctx.calendar)
                fast = fast_report(session, start, end, by, now=now, calendar=ctx.calendar)
                assert fast == exact, (start, end, by)
            for filters in (Filters(level="province"), Filters(procedure="1.001612")):
                exact = on_time_report(session, start, end, "agency", filters)
                assert fast_report(session, start, end, "agency", filters, now=now) == exact
            # the drill-down lists exactly the dossiers behind each number
            for row in on_time_report(session, start, end, "unit"):
                for measure in ("late", "overdue", "in_progress", "received"):
                    found = dossiers_behind(session, start, end, measure, "unit", row.key)
                    assert len(found) == getattr(row, measure), (measure, row)
        # a direct count over the rows, independent of the SQL above
        lo = datetime.combine(periods[0][0], datetime.min.time(), TZ)
        hi = datetime.combine(periods[0][1] + timedelta(days=1), datetime.min.time(), TZ)
        rows = session.exec(select(Dossier)).all()
        received = sum(1 for d in rows if d.received_at and lo <= d.received_at < hi)
        late = sum(
            1
            for d in rows
            if d.result_ready_at and lo <= d.result_ready_at < hi and d.timeliness == "late"
        )
        report = on_time_report(session, *periods[0], "unit")
        assert sum(r.received for r in report) == received
        assert sum(r.late for r in report) == late


def _run(ctx: Context, seed: int, dossiers: int) -> None:
    clock, walks, rng = _history(ctx, seed, dossiers)
    first = START + timedelta(days=rng.randrange(20, 35), hours=rng.randrange(0, 24))
    second = first + timedelta(days=rng.randrange(5, 25), hours=rng.randrange(0, 24))
    for w in walks:
        _advance(ctx, clock, rng, w, first)
    _check(ctx, first, rng)
    with ctx.uow() as uow:
        kept = uow.session.exec(select(func.count()).select_from(MetricsDay)).one()
    assert kept > 0  # closed days were snapshotted
    for w in walks:
        _advance(ctx, clock, rng, w, second)
    _check(ctx, second, rng)
    _check_trend(ctx, second)


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(seed=st.integers(0, 2**32 - 1))
def test_aggregates_equal_counts_over_the_rows_sqlite(seed: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{Path(folder) / 'p.db'}")
        try:
            migrate(engine)
            ctx = Context(
                engine=engine,
                catalog=default_catalog(),
                calendar=default_calendar(),
                clock=FixedClock(START),
            )
            sync_catalog(ctx)
            _run(ctx, seed, dossiers=30)
        finally:
            engine.dispose()


def test_aggregates_equal_counts_over_the_rows_postgresql(pg_ctx: Context) -> None:
    _run(pg_ctx, seed=20250129, dossiers=40)


def _check_trend(ctx: Context, now: datetime) -> None:
    from services.metrics import total, trend

    with ctx.uow() as uow:
        for period in ("day", "week", "month"):
            start, end = date(2025, 1, 13), now.date() + timedelta(days=2)
            for first, last, row in trend(uow.session, start, end, period, now=now):  # type: ignore[arg-type]
                exact = total(on_time_report(uow.session, first, last, "unit"))
                assert row.counts() == exact.counts(), (period, first, last)
