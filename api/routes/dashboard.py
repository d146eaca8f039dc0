"""Supervisor dashboard: the page (``/dashboard``) and its JSON (``/api/v1/dashboard/...``).

Numbers come from ``services.metrics`` (daily snapshots + the open day's delta, equal to the
counting definition over the rows) and ``services.indicators766``; every count in the table by
agency links to the very dossiers behind it. Supervisors and admins see the province; a leader
sees their own agency.
"""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from api.auth import MaybeOfficerDep, Officer, require_roles
from api.deps import ContextDep
from api.templating import templates
from services.context import Context
from services.errors import DomainError, InvalidInput
from services.indicators766 import PROVINCE, score_card
from services.indicators_feedback import (
    FeedbackIndicatorRow,
    feedback_indicators,
    feedback_table,
    total_feedback,
)
from services.metrics import (
    COUNTS,
    Filters,
    dossiers_behind,
    due_soon,
    fast_report,
    finished_late,
    format_rate,
    overdue_now,
    total,
    trend,
)
from storage.models import Dossier

if TYPE_CHECKING:
    from sqlmodel import Session

router = APIRouter()
ROLES = ("supervisor", "admin", "leader")
SupervisorDep = Annotated[Officer, Depends(require_roles(*ROLES))]
Measure = Literal[
    "received", "finished", "early", "on_time", "late", "in_progress", "overdue", "withdrawn"
]


EARLIEST, LATEST = date(2000, 1, 1), date(2100, 12, 31)


def _check_period(*days: date | None) -> None:
    for day in days:
        if day is not None and not EARLIEST <= day <= LATEST:
            raise InvalidInput(
                f"Ngày {day} nằm ngoài khoảng {EARLIEST}–{LATEST}",
                f"Date {day} is outside {EARLIEST}–{LATEST}",
            )


def _default_period(ctx: Context) -> tuple[date, date]:
    today = ctx.clock.now().date()
    first = date(today.year, ((today.month - 1) // 3) * 3 + 1, 1)
    return first, today


def _filters(
    officer: Officer, level: str | None, agency: str | None, procedure: str | None
) -> Filters:
    if officer.role == "leader":
        agency = officer.unit_code  # a leader sees their own agency
    return Filters(level=level or None, agency=agency or None, procedure=procedure or None)


def _name(ctx: Context, code: str) -> str:
    if code == PROVINCE:
        return "Toàn tỉnh"
    unit = ctx.catalog.units.get(code)
    return unit.name if unit else code


def _brief(ctx: Context, d: Dossier) -> dict[str, Any]:
    def iso(value: Any) -> str | None:
        return value.isoformat() if value else None

    return {
        "code": d.code,
        "procedure": d.procedure_code,
        "agency": d.competent_agency,
        "agency_name": _name(ctx, d.competent_agency),
        "unit": d.receiving_unit,
        "status": d.status,
        "received_at": iso(d.received_at),
        "due_at": iso(d.due_at),
        "result_ready_at": iso(d.result_ready_at),
        "timeliness": d.timeliness,
        "paused": d.paused_at is not None,
        "apology": d.apology_at is not None,
    }


def _feedback_row(ctx: Context, row: FeedbackIndicatorRow) -> dict[str, Any]:
    """Decision 766 feedback figures of one agency (or ``TOTAL``), with their numerators."""

    def text(value: Any) -> str:
        return "" if value is None else f"{value:.2f}"

    return {
        "key": row.agency,
        "name": "Tổng" if row.agency == "TOTAL" else _name(ctx, row.agency),
        "all": row.all,
        "early": row.early,
        "on_time": row.on_time,
        "late": row.late,
        "dissatisfied": row.dissatisfied,
        "handled_on_time": row.handled_on_time,
        "satisfied": row.all - row.dissatisfied_or_late,
        "on_time_rate": text(row.on_time_rate),
        "satisfaction_rate": text(row.satisfaction_rate),
        "on_time_points": text(row.on_time_points),
        "satisfaction_points": text(row.satisfaction_points),
    }


def feedback_block(
    ctx: Context, session: Session, start: date, end: date, agency: str | None = None
) -> dict[str, Any]:
    """Feedback handled on time and satisfaction with feedback handling (Decision 766), per
    agency holding the feedback, for the period; the same rows as ``motcua report feedback``."""
    rows = feedback_indicators(session, start, end, ctx.clock.now(), agency=agency)
    return {
        "rows": [_feedback_row(ctx, r) for r in rows],
        "total": _feedback_row(ctx, total_feedback(rows)),
    }


def _row(ctx: Context, key: str, values: Any) -> dict[str, Any]:
    return {
        "key": key,
        "name": _name(ctx, key) if key != "TOTAL" else "Tổng",
        **{name: getattr(values, name) for name in COUNTS},
        "on_time_rate": format_rate(values.on_time_rate),
    }


@router.get("/api/v1/dashboard/summary", tags=["dashboard"])
def summary(
    ctx: ContextDep,
    officer: SupervisorDep,
    start: Annotated[date | None, Query(alias="from")] = None,
    end: Annotated[date | None, Query(alias="to")] = None,
    level: Annotated[str | None, Query(max_length=16)] = None,
    agency: Annotated[str | None, Query(max_length=64)] = None,
    procedure: Annotated[str | None, Query(max_length=32)] = None,
) -> dict[str, Any]:
    """The dashboard's numbers for a period (default: this quarter up to today)."""
    _check_period(start, end)
    default = _default_period(ctx)
    start, end = start or default[0], end or default[1]
    if end < start:
        start, end = end, start
    filters = _filters(officer, level, agency, procedure)
    now = ctx.clock.now()
    trend_start = date(end.year - (end.month <= 11), (end.month - 12) % 12 + 1, 1)
    trend_start = max(trend_start, date(2000, 1, 1))
    with ctx.uow() as uow:
        s = uow.session
        rows = fast_report(s, start, end, "agency", filters, now=now, calendar=ctx.calendar)
        series = trend(s, trend_start, end, "month", filters, now=now, calendar=ctx.calendar)
        cards = score_card(
            s, start, end, filters, now=now, calendar=ctx.calendar, catalog=ctx.catalog
        )
        soon = due_soon(s, now, now + timedelta(days=3), filters, limit=30)
        overdue = overdue_now(s, now, filters, limit=30)
        late = finished_late(s, start, end, filters, limit=30)
        feedback = feedback_block(ctx, s, start, end, filters.agency)
        return {
            "from": start.isoformat(),
            "to": end.isoformat(),
            "now": now.isoformat(),
            "filters": dict(filters.items()),
            "target": 99,
            "rows": [_row(ctx, r.key, r) for r in rows],
            "total": _row(ctx, "TOTAL", total(rows)),
            "trend": [
                {
                    "from": first.isoformat(),
                    "to": last.isoformat(),
                    "finished": row.finished,
                    "late": row.late,
                    "on_time_rate": format_rate(row.on_time_rate),
                }
                for first, last, row in series
            ],
            "score_card": [
                {
                    "agency": card.agency,
                    "name": _name(ctx, card.agency),
                    "points": f"{card.points:.2f}",
                    "maximum": card.maximum,
                    "indicators": [
                        {
                            "group": i.group,
                            "name": i.name_vi,
                            "part": i.part,
                            "whole": i.whole,
                            "rate": format_rate(i.rate),
                            "points": "" if i.points is None else f"{i.points:.2f}",
                            "maximum": i.maximum,
                            "source": i.source,
                        }
                        for i in card.indicators
                    ],
                }
                for card in cards
            ],
            "feedback": feedback,
            "due_soon": [_brief(ctx, d) for d in soon],
            "overdue": [_brief(ctx, d) for d in overdue],
            "late": [_brief(ctx, d) for d in late],
        }


FEEDBACK_REPORT = {
    "content": {
        "application/json": {"schema": {"type": "object"}},
        "text/csv": {"schema": {"type": "string"}},
    },
    "description": "JSON (rows per agency and the total), or CSV with format=csv",
}


@router.get(
    "/api/v1/reports/feedback",
    tags=["dashboard"],
    response_model=None,
    responses={200: FEEDBACK_REPORT},
)
def feedback_report(
    ctx: ContextDep,
    officer: SupervisorDep,
    start: Annotated[date, Query(alias="from")],
    end: Annotated[date, Query(alias="to")],
    agency: Annotated[str | None, Query(max_length=64)] = None,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> dict[str, Any] | Response:
    """Decision 766 feedback figures per agency for a period: feedback handled on time and
    satisfaction with feedback handling (as ``motcua report feedback``; a leader gets their own
    agency). ``format=csv`` gives the report's CSV."""
    _check_period(start, end)
    if end < start:
        start, end = end, start
    agency = _filters(officer, None, agency, None).agency
    with ctx.uow() as uow:
        if format == "csv":
            rows = feedback_indicators(uow.session, start, end, ctx.clock.now(), agency=agency)
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="\n").writerows(feedback_table(rows))
            return PlainTextResponse(buffer.getvalue(), media_type="text/csv; charset=utf-8")
        block = feedback_block(ctx, uow.session, start, end, agency)
    return {"from": start.isoformat(), "to": end.isoformat(), **block}


@router.get("/api/v1/dashboard/dossiers", tags=["dashboard"])
def behind(
    ctx: ContextDep,
    officer: SupervisorDep,
    measure: Measure,
    start: Annotated[date, Query(alias="from")],
    end: Annotated[date, Query(alias="to")],
    key: Annotated[str | None, Query(max_length=64, description="agency code; empty = all")] = None,
    level: Annotated[str | None, Query(max_length=16)] = None,
    agency: Annotated[str | None, Query(max_length=64)] = None,
    procedure: Annotated[str | None, Query(max_length=32)] = None,
) -> dict[str, Any]:
    """The very dossiers counted in one cell of the table by agency (drill-down)."""
    _check_period(start, end)
    filters = _filters(officer, level, agency, procedure)
    with ctx.uow() as uow:
        found = dossiers_behind(
            uow.session, start, end, measure, "agency" if key else None, key or None, filters,
            calendar=ctx.calendar, limit=2000,
        )  # fmt: skip
        return {
            "measure": measure,
            "key": key,
            "count": len(found),
            "dossiers": [_brief(ctx, d) for d in found],
        }


@router.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
def dashboard_page(
    request: Request,
    ctx: ContextDep,
    officer: MaybeOfficerDep,
    start: Annotated[date | None, Query(alias="from")] = None,
    end: Annotated[date | None, Query(alias="to")] = None,
    level: Annotated[str | None, Query(max_length=16)] = None,
    agency: Annotated[str | None, Query(max_length=64)] = None,
    procedure: Annotated[str | None, Query(max_length=32)] = None,
) -> Response:
    if officer is None:
        return RedirectResponse("/signin?next=/dashboard", status_code=303)
    if any(d is not None and not EARLIEST <= d <= LATEST for d in (start, end)):
        start = end = None
    if officer.role not in ROLES:
        return templates.TemplateResponse(
            request,
            "dashboard/forbidden.html",
            {"officer": officer},
            status_code=403,
        )
    default = _default_period(ctx)
    first, last = start or default[0], end or default[1]
    if last < first:
        first, last = last, first
    with ctx.uow() as uow:
        feedback = feedback_block(
            ctx, uow.session, first, last, _filters(officer, None, agency, None).agency
        )
    agencies = sorted(
        {
            ctx.catalog.resolve_agency(v.competent_agency, u.code)
            for p in ctx.catalog.procedures.values()
            for v in p.versions
            for u in ctx.catalog.units.values()
            if u.kind in ("centre", "onestop", "commune", "ward", "district")
            and _resolvable(ctx, v.competent_agency, u.code)
        }
    )
    return templates.TemplateResponse(
        request,
        "dashboard/index.html",
        {
            "officer": officer,
            "start": first.isoformat(),
            "end": last.isoformat(),
            "feedback": feedback,
            "level": level or "",
            "agency": agency or "",
            "procedure": procedure or "",
            "agencies": [(code, _name(ctx, code)) for code in agencies],
            "procedures": sorted((p.code, p.name) for p in ctx.catalog.procedures.values()),
        },
    )


def _resolvable(ctx: Context, selector: str, unit: str) -> bool:
    try:
        ctx.catalog.resolve_agency(selector, unit)
    except DomainError:  # a selector that does not apply to this unit
        return False
    return True
