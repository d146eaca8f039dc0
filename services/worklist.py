"""Dossier lists for officers (scoped by ``services.access``) and the "so far" timeliness."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import String, bindparam, cast, or_
from sqlmodel import col, select

from services.access import PROVINCE_WIDE_ROLES, can_see, units_under
from services.context import Context
from states.events import FINAL_STATES
from states.lifecycle import Actor
from storage.models import Dossier

Progress = Literal[
    "early", "on_time", "late", "not_yet_due", "overdue", "paused", "not_received", "closed"
]


@dataclass(frozen=True)
class DossierProgress:
    """Where the dossier stands against its clock now."""

    progress: Progress
    remaining_working_minutes: int | None  # negative when overdue


def progress_of(ctx: Context, dossier: Dossier, now: datetime | None = None) -> DossierProgress:
    now = now or ctx.clock.now()
    if dossier.timeliness:
        return DossierProgress(dossier.timeliness, None)  # type: ignore[arg-type]
    if dossier.status in FINAL_STATES:
        return DossierProgress("closed", None)
    if dossier.due_at is None:
        return DossierProgress("not_received", None)
    if dossier.paused_at is not None:
        return DossierProgress("paused", dossier.remaining_minutes)
    calendar = ctx.calendar
    if now <= dossier.due_at:
        return DossierProgress("not_yet_due", calendar.working_minutes_between(now, dossier.due_at))
    return DossierProgress("overdue", -calendar.working_minutes_between(dossier.due_at, now))


@functools.lru_cache(maxsize=4096)
def _passes_through(unit_codes: frozenset[str]) -> Any:
    """Dossiers received by, decided by or with a step at one of ``unit_codes``; built once
    per set of units (built per worklist read, it was a sixth of the read's CPU)."""
    step_text = cast(Dossier.step_units, String)
    clauses: list[Any] = []
    for code in sorted(unit_codes):
        clauses += [
            col(Dossier.receiving_unit) == code,
            col(Dossier.competent_agency) == code,
            step_text.like(f'%"{code}"%'),
        ]
    return or_(*clauses)


def scope_filter(ctx: Context, actor: Actor) -> Any | None:
    """SQL pre-filter matching ``services.access.can_see`` (None: sees everything)."""
    units = _scope_units(ctx, actor)
    return None if units is None else _passes_through(units)


def _scope_units(ctx: Context, actor: Actor) -> frozenset[str] | None:
    """The units whose dossiers ``actor`` may see (None: every unit)."""
    if actor.role in PROVINCE_WIDE_ROLES:
        unit = ctx.catalog.units.get(actor.unit_code)
        if unit is not None and unit.kind == "province":
            return None
        return frozenset(units_under(ctx.catalog, actor.unit_code))
    return frozenset({actor.unit_code})


@dataclass(frozen=True)
class DossierFilter:
    agency: str | None = None  # dossiers passing through this unit
    procedure: str | None = None
    status: str | None = None
    due_before: datetime | None = None
    late_only: bool = False  # finished late, or still open past the due instant
    current_unit: str | None = None
    open_only: bool = False  # not returned, refused nor withdrawn
    assignee: str | None = None  # assigned to this officer (at the current step)
    unassigned: bool = False  # nobody assigned at the current step


@functools.lru_cache(maxsize=1024)
def _list_statement(
    scope: frozenset[str] | None,
    agency: str | None,
    bound: frozenset[str],
    flags: tuple[bool, bool],
    order: Literal["id", "due"],
    limit: int,
) -> Any:
    """``list_dossiers``' statement for one shape: the units in scope (None: all), the unit
    passed through (``agency``), the filters given (``bound``: their values are bound at
    execution), ``open_only`` and ``unassigned`` (``flags``). Built per read, the statement and
    its cache key were a fifth of a worklist read's CPU."""
    open_only, unassigned = flags
    query = select(Dossier)
    for units in (scope, frozenset({agency}) if agency else None):
        if units is not None:
            query = query.where(_passes_through(units))
    for name, column in (
        ("procedure", Dossier.procedure_code),
        ("status", Dossier.status),
        ("current_unit", Dossier.current_unit),
        ("assignee", Dossier.assignee),
    ):
        if name in bound:
            query = query.where(col(column) == bindparam(name))
    if open_only:
        query = query.where(col(Dossier.status).not_in(list(FINAL_STATES)))
    if unassigned:
        query = query.where(col(Dossier.assignee).is_(None))
    if "due_before" in bound:
        query = query.where(col(Dossier.due_at) < bindparam("due_before"))
    if "now" in bound:  # late_only
        query = query.where(
            or_(
                col(Dossier.timeliness) == "late",
                (col(Dossier.timeliness).is_(None))
                & (col(Dossier.status).not_in(list(FINAL_STATES)))
                & (col(Dossier.paused_at).is_(None))
                & (col(Dossier.due_at) < bindparam("now")),
            )
        )
    if order == "due":
        query = query.order_by(col(Dossier.due_at).is_(None), col(Dossier.due_at), col(Dossier.id))
    else:
        if "after_id" in bound:
            query = query.where(col(Dossier.id) < bindparam("after_id"))
        query = query.order_by(col(Dossier.id).desc())
    return query.limit(limit)


def list_dossiers(
    ctx: Context,
    actor: Actor,
    filters: DossierFilter,
    *,
    after_id: int | None = None,
    limit: int = 50,
    order: Literal["id", "due"] = "id",
) -> list[Dossier]:
    """Dossiers the actor may see, newest first (``order="id"``, keyset on ``after_id``) or due
    soonest first (``order="due"``, for worklists, no cursor)."""
    # the filters' values are bound at execution: the statement is built once per shape
    values: dict[str, Any] = {
        "procedure": filters.procedure or None,
        "status": filters.status or None,
        "current_unit": filters.current_unit or None,
        "assignee": filters.assignee or None,
        "due_before": filters.due_before or None,
        "now": ctx.clock.now() if filters.late_only else None,
        "after_id": after_id if order == "id" else None,
    }
    params = {name: value for name, value in values.items() if value is not None}
    flags = (filters.open_only, filters.unassigned)
    scope = _scope_units(ctx, actor)
    query = _list_statement(scope, filters.agency or None, frozenset(params), flags, order, limit)
    with ctx.uow(read_only=True) as uow:
        rows = uow.read_dossiers(query, params)
    return [d for d in rows if can_see(ctx.catalog, actor, d)]
