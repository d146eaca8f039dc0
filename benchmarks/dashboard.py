"""Dashboard queries at scale: p95 latency against a plain GROUP BY over the dossier rows.

    uv run python -m benchmarks.dashboard [--dossiers 200000] [--repeat 40] [--keep]
    uv run python -m benchmarks.dashboard --dossiers 10000000

Creates (or recreates) the PostgreSQL database ``motcua_bench`` on the server of
``MOTCUA_BENCH_URL`` (default: the test server, ``postgresql://postgres@127.0.0.1:5432``),
migrates it and loads N dossiers with ``COPY`` (psycopg ``cursor.copy``): three years of receipts
(1/7/2023 → 30/6/2026) on the working days of the calendar, at the catalog's receiving units
with the procedures each takes (districts until 30/6/2025, communes after), channels, due instants
from the one working-time clock, ~97% finished early or on time, ~1% withdrawn, the last weeks
partly open (some overdue). No supplementation pauses and no event rows: the dashboard's queries
do not read them. The daily snapshots of the closed days are then built in bulk by SQL (the same
cumulated flows and stocks the snapshot flow computes day by day), and checked equal to the counting
definition over the rows on sample periods.

Measured, each ``--repeat`` times (p50 / p95): the dashboard's queries — the table by agency for
the current quarter (snapshots + the open day's delta), the 12-month trend, the due-soon list,
the overdue list, the late list and the 766 progress score card — and the plain GROUP BY of the
same table by agency over the rows (``services.metrics.on_time_report``); the ratio is printed.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from datetime import time as dtime
from typing import Any

import psycopg
from sqlalchemy import text
from sqlmodel import Session

from services.catalog import default_catalog
from services.clock import TZ, default_calendar, timeliness
from services.context import Context
from services.demo import receiving_units
from services.directory import sync_catalog
from services.metrics import (
    Filters,
    due_soon,
    fast_report,
    finished_late,
    on_time_report,
    overdue_now,
    trend,
)
from storage.db import make_engine, migrate

from .report import Report

DEFAULT_SERVER = os.environ.get("MOTCUA_BENCH_URL", "postgresql://postgres@127.0.0.1:5432")
DATABASE = "motcua_bench"
FIRST_DAY = date(2023, 7, 1)
LAST_DAY = date(2026, 6, 30)
NOW = datetime(2026, 6, 30, 16, 0, tzinfo=TZ)
COLUMNS = (
    "code", "procedure_code", "procedure_version", "rule_set", "receiving_unit",
    "competent_agency", "level", "channel", "applicant_name", "components", "step_units",
    "status", "current_step", "current_unit", "submitted_at", "received_at", "count_start",
    "due_at", "appointment_at", "supplement_count", "result_ready_at", "timeliness",
    "returned_at", "withdrawn_at", "version", "decision",
)  # fmt: skip


def _server_url(url: str) -> str:
    return url.rsplit("/", 1)[0] if url.count("/") > 2 else url


def create_database(server: str, name: str = DATABASE) -> str:
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}"


def _sources(ctx: Context, day: date) -> list[tuple[Any, ...]]:
    out = []
    for unit, codes in receiving_units(ctx, day):
        for code in codes:
            version = ctx.catalog.procedure(code).version_at(day)
            steps = {s.id: ctx.catalog.resolve_agency(s.agency, unit) for s in version.process}
            out.append(
                (
                    unit,
                    code,
                    version.version,
                    ctx.catalog.rule_set_at(day).id,
                    ctx.catalog.resolve_agency(version.competent_agency, unit),
                    version.level,
                    version.time_limit,
                    steps,
                    version.process[0].id,
                )
            )
    return out


def _ts(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def generate(ctx: Context, url: str, n: int, seed: int, say: Callable[[str], None] = print) -> None:
    """Load ``n`` dossiers with COPY, in receipt order."""
    import json

    rng = random.Random(seed)
    calendar = ctx.calendar
    days = []
    day = FIRST_DAY
    while day <= LAST_DAY:
        if calendar.is_working_day(day):
            days.append(day)
        day += timedelta(days=1)
    eras = {
        "before": _sources(ctx, date(2025, 6, 30)),
        "after": _sources(ctx, date(2025, 7, 1)),
    }
    per_day = n / len(days)
    sequence: dict[tuple[str, date], int] = {}
    started = time.perf_counter()
    written = 0
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY dossier ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            carry = 0.0
            for day in days:
                sources = eras["before" if day < date(2025, 7, 1) else "after"]
                carry += per_day
                count = int(carry)
                carry -= count
                for _ in range(count):
                    if written >= n:
                        break
                    src = rng.choice(sources)
                    unit, code, version, rule_set, agency, level, limit, steps, first = src
                    minute = rng.randrange(0, 600)  # 07:30 … 17:30, the breaks included
                    received = datetime.combine(day, dtime(7, 30), TZ) + timedelta(minutes=minute)
                    due = calendar.due_at_receipt(received, limit)
                    number = sequence.get((unit, day), 0) + 1
                    sequence[(unit, day)] = number
                    channel = rng.choices(("online", "counter", "post"), (60, 37, 3))[0]
                    roll = rng.random()
                    ready = withdrawn = returned = None
                    verdict = None
                    status, step, holder = first, first, steps[first]
                    span = (due - received).total_seconds()
                    if roll < 0.01:
                        withdrawn = received + timedelta(seconds=span * rng.random())
                        status, step, holder = "withdrawn", None, unit
                        if withdrawn > NOW:  # still open at the end of the data
                            withdrawn, status, step, holder = None, first, first, steps[first]
                    else:
                        if roll < 0.035:
                            ready = due + timedelta(hours=rng.choice((2, 20, 50, 200)))
                        else:
                            ready = received + timedelta(seconds=max(60, span * rng.random()))
                        if (
                            ready > NOW - timedelta(days=rng.choice((0, 0, 1, 5, 20)))
                            and (NOW - received < timedelta(days=30))
                        ) or ready > NOW:
                            ready = None  # still open at the end of the data
                        if ready is not None:
                            verdict = timeliness(ready, due)
                            returned = ready + timedelta(hours=rng.choice((1, 20, 70)))
                            status, step, holder = "returned", None, unit
                            if returned > NOW:
                                returned, status = None, "result_ready"
                    copy.write_row(
                        (
                            f"{unit}-{day:%y%m%d}-{number:04d}", code, version, rule_set, unit,
                            agency, level, channel, "Nguyễn Văn A", "[]", json.dumps(steps),
                            status, step, holder, _ts(received), _ts(received), _ts(received),
                            _ts(due), _ts(due), 0, _ts(ready), verdict, _ts(returned),
                            _ts(withdrawn), 1, "approved" if ready else None,
                        )
                    )  # fmt: skip
                    written += 1
        conn.commit()
    say(f"loaded {written:,} dossiers by COPY in {time.perf_counter() - started:.1f} s")


DIMS = "receiving_unit, competent_agency, procedure_code, level, channel, field"
SNAPSHOT_SQL = [
    f"""CREATE TEMP TABLE bench_g AS
    SELECT row_number() OVER () AS gid, {DIMS} FROM (
      SELECT DISTINCT x.receiving_unit, x.competent_agency, x.procedure_code, x.level,
             x.channel, p.field
      FROM dossier x JOIN procedure_version p
        ON p.code = x.procedure_code AND p.version = x.procedure_version) s""",
    "ANALYZE bench_g",  # temporary tables are never analysed by autovacuum
    """CREATE TEMP TABLE bench_d AS
    SELECT g.gid,
           (x.received_at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date AS rd,
           (x.result_ready_at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date AS fd,
           (x.withdrawn_at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date AS wd,
           (x.due_at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date AS dd,
           COALESCE((x.result_ready_at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date,
                    (x.withdrawn_at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date) AS ed,
           x.timeliness
    FROM dossier x
    JOIN procedure_version p ON p.code = x.procedure_code AND p.version = x.procedure_version
    JOIN bench_g g ON g.receiving_unit = x.receiving_unit
      AND g.competent_agency = x.competent_agency AND g.procedure_code = x.procedure_code
      AND g.level = x.level AND g.channel = x.channel AND g.field = p.field
    WHERE x.received_at IS NOT NULL""",
    "ANALYZE bench_d",
    """CREATE TEMP TABLE bench_daily AS
    SELECT gid, day, sum(received) received, sum(finished) finished, sum(early) early,
           sum(on_time) on_time, sum(late) late, sum(withdrawn) withdrawn, sum(ip) ip,
           sum(od) od
    FROM (
      SELECT gid, rd AS day, 1 AS received, 0 AS finished, 0 AS early, 0 AS on_time,
             0 AS late, 0 AS withdrawn, 1 AS ip, 0 AS od FROM bench_d
      UNION ALL
      SELECT gid, fd, 0, 1, (timeliness = 'early')::int, (timeliness = 'on_time')::int,
             (timeliness = 'late')::int, 0, -1, 0 FROM bench_d WHERE fd IS NOT NULL
      UNION ALL
      SELECT gid, wd, 0, 0, 0, 0, 0, 1, -1, 0 FROM bench_d WHERE wd IS NOT NULL
      UNION ALL
      SELECT gid, dd, 0, 0, 0, 0, 0, 0, 0, 1 FROM bench_d WHERE ed IS NULL OR dd < ed
      UNION ALL
      SELECT gid, ed, 0, 0, 0, 0, 0, 0, 0, -1 FROM bench_d WHERE ed IS NOT NULL AND dd < ed
    ) deltas
    WHERE day <= :last
    GROUP BY gid, day""",
    "CREATE INDEX ON bench_daily (gid, day)",
    "ANALYZE bench_daily",
    f"""INSERT INTO metrics_daily (day, {DIMS}, cum_received, cum_finished, cum_early,
      cum_on_time, cum_late, cum_withdrawn, in_progress, overdue)
    SELECT t.day, {", ".join("g." + c.strip() for c in DIMS.split(","))}, t.received,
           t.finished, t.early, t.on_time, t.late, t.withdrawn, t.in_progress, t.overdue
    FROM (
      SELECT s.gid, s.day::date AS day,
             sum(COALESCE(f.received, 0)) OVER w AS received,
             sum(COALESCE(f.finished, 0)) OVER w AS finished,
             sum(COALESCE(f.early, 0)) OVER w AS early,
             sum(COALESCE(f.on_time, 0)) OVER w AS on_time,
             sum(COALESCE(f.late, 0)) OVER w AS late,
             sum(COALESCE(f.withdrawn, 0)) OVER w AS withdrawn,
             sum(COALESCE(f.ip, 0)) OVER w AS in_progress,
             sum(COALESCE(f.od, 0)) OVER w AS overdue
      FROM (SELECT gid, generate_series(CAST(:first AS date), CAST(:last AS date),
                                        interval '1 day')::date AS day FROM bench_g) s
      LEFT JOIN bench_daily f ON f.gid = s.gid AND f.day = s.day
      WINDOW w AS (PARTITION BY s.gid ORDER BY s.day)
    ) t JOIN bench_g g ON g.gid = t.gid
    WHERE t.received + t.finished + t.withdrawn + t.in_progress + t.overdue > 0""",
]


def build_snapshots(ctx: Context, say: Callable[[str], None] = print) -> None:
    started = time.perf_counter()
    last = NOW.date() - timedelta(days=1)
    with Session(ctx.engine) as session:
        first = session.execute(
            text("SELECT min((received_at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date) FROM dossier")
        ).scalar_one()
        # the planner multiplies the selectivities of the six equal columns of the groups and
        # expects ~20,000 rows where there are millions: it then picks nested loops over bitmap
        # scans (no end in sight at 10M); the bulk build wants hash joins
        session.execute(text("SET LOCAL enable_nestloop = off"))
        for statement in SNAPSHOT_SQL:
            session.execute(text(statement), {"first": first, "last": last})
        session.execute(
            text(
                "INSERT INTO metrics_day (day, rows, computed_at) "
                "SELECT s::date, 0, now() FROM generate_series("
                "CAST(:first AS date), CAST(:last AS date), interval '1 day') s"
            ),
            {"first": first, "last": last},
        )
        session.commit()
        session.execute(text("ANALYZE"))
        rows = session.execute(text("SELECT count(*) FROM metrics_daily")).scalar_one()
    say(f"snapshots: {rows:,} daily rows in {time.perf_counter() - started:.1f} s")


def check_equal(ctx: Context, say: Callable[[str], None] = print) -> None:
    periods = [
        (date(2024, 1, 1), date(2024, 3, 31)),
        (date(2025, 6, 15), date(2025, 7, 15)),
        (date(2026, 4, 1), NOW.date()),
    ]
    with Session(ctx.engine) as session:
        for start, end in periods:
            exact = on_time_report(session, start, end, "agency", calendar=ctx.calendar)
            fast = fast_report(session, start, end, "agency", now=NOW, calendar=ctx.calendar)
            if fast != exact:
                raise SystemExit(f"snapshot numbers differ from the rows for {start}..{end}")
    say(f"snapshot numbers == counts over the rows on {len(periods)} sample periods")


def measure(
    name: str, run: Callable[[], object], repeat: int, say: Callable[[str], None] = print
) -> tuple[float, float]:
    run()  # warm
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    p50 = statistics.median(times)
    p95 = times[max(0, round(0.95 * len(times)) - 1)]
    say(f"  {name:<44} p50 {p50:8.1f} ms   p95 {p95:8.1f} ms")
    return p50, p95


def size_label(n: int) -> str:
    """1000000 → '1M', 200000 → '200k' (the section of BENCHMARKS.md for that size)."""
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dossiers", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--server", default=_server_url(DEFAULT_SERVER))
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep the loaded rows (the snapshots are built if the database has none)",
    )
    parser.add_argument("--database", default=DATABASE)
    args = parser.parse_args()
    label = size_label(args.dossiers)
    rep = Report(
        f"dashboard-{label}",
        f"Dashboard and report at {label} dossiers (`benchmarks.dashboard`)",
        database_url=f"{args.server}/postgres",
    )
    say = rep.print

    url = (
        f"{args.server}/{args.database}"
        if args.reuse
        else create_database(args.server, args.database)
    )
    engine = make_engine(url, pool_size=2)
    ctx = Context(engine=engine, catalog=default_catalog(), calendar=default_calendar())
    if not args.reuse:
        migrate(engine)
        sync_catalog(ctx)
        generate(ctx, url, args.dossiers, args.seed, say)
        started = time.perf_counter()
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
        say(f"VACUUM ANALYZE in {time.perf_counter() - started:.1f} s")
        build_snapshots(ctx, say)
    else:
        with Session(engine) as s:
            built = s.execute(text("SELECT count(*) FROM metrics_day")).scalar_one()
        if not built:
            say(f"reusing the rows of {args.database}; building the snapshots")
            build_snapshots(ctx, say)
    with Session(engine) as s:
        rows = s.execute(text("SELECT count(*) FROM dossier")).scalar_one()
        size = s.execute(text("SELECT pg_size_pretty(pg_database_size(current_database()))"))
        say(f"database: {rows:,} dossiers, {size.scalar_one()} on disk")
    check_equal(ctx, say)

    quarter = (date(2026, 4, 1), NOW.date())
    year = (date(2025, 7, 1), NOW.date())
    calendar = ctx.calendar
    from services.indicators766 import progress_indicator

    say(f"dashboard queries at {args.dossiers:,} dossiers (PostgreSQL, {args.repeat} runs):")
    with Session(engine) as s:
        queries: list[tuple[str, Callable[[], object]]] = [
            (
                "table by agency, current quarter",
                lambda: fast_report(s, *quarter, "agency", now=NOW, calendar=calendar),
            ),
            (
                "table by agency, quarter, level=commune",
                lambda: fast_report(
                    s, *quarter, "agency", Filters(level="commune"), now=NOW, calendar=calendar
                ),
            ),
            (
                "on-time trend, 12 months",
                lambda: trend(s, *year, "month", now=NOW, calendar=calendar),
            ),
            ("due-soon list (2 days)", lambda: due_soon(s, NOW, NOW + timedelta(days=2))),
            ("overdue list", lambda: overdue_now(s, NOW)),
            ("late list, current quarter", lambda: finished_late(s, *quarter)),
            (
                "766 progress score card by agency",
                lambda: progress_indicator(s, *quarter, now=NOW, calendar=calendar),
            ),
        ]
        results = [measure(name, run, args.repeat, say) for name, run in queries]
        dashboard_p95 = max(p95 for _, p95 in results)
        say("plain GROUP BY over the rows (the counting definition, the report's limit):")
        _, group_by_p95 = measure(
            "table by agency, current quarter",
            lambda: on_time_report(s, *quarter, "agency", calendar=calendar),
            max(3, args.repeat // 8),
            say,
        )
    say(
        f"slowest dashboard query p95 {dashboard_p95:.1f} ms; plain GROUP BY p95 "
        f"{group_by_p95:.1f} ms; ratio {group_by_p95 / dashboard_p95:.1f}×"
    )
    rep.goal(
        f"every dashboard query p95 < 100 ms (slowest {dashboard_p95:.1f} ms)",
        dashboard_p95 < 100,
    )
    rep.goal(
        "slowest dashboard query faster than the plain GROUP BY over the rows (p95)",
        dashboard_p95 < group_by_p95,
    )
    engine.dispose()
    rep.save()


if __name__ == "__main__":
    main()
