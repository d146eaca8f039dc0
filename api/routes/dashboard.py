"""Supervisor dashboard: the page (``/dashboard``) and its JSON (``/api/v1/dashboard/...``).

Numbers come from ``services.metrics`` (daily snapshots + the open day's delta, equal to the
counting definition over the rows) and ``services.indicators766``; every count in the table by
agency links to the very dossiers behind it. Supervisors and admins see the province; a leader
sees their own agency.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.auth import MaybeOfficerDep, Officer, require_roles
from api.deps import ContextDep
from api.templating import templates
from services.context import Context
from services.errors import DomainError, InvalidInput
from services.indicators766 import PROVINCE, score_card
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
            "due_soon": [_brief(ctx, d) for d in soon],
            "overdue": [_brief(ctx, d) for d in overdue],
            "late": [_brief(ctx, d) for d in late],
        }


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
            "start": (start or default[0]).isoformat(),
            "end": (end or default[1]).isoformat(),
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
