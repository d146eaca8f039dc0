"""Import of historical dossiers from a province's old system (JSON Lines, one dossier a line).

The line format is a contract (issue 6)::

    {"ref": "old-system id", "procedure": "1.001612", "unit": "<receiving unit code>",
     "channel": "counter|online|post", "received_at": "2025-01-24T09:30:00+07:00",
     "applicant": {"name": "…", "id_number": "…", "phone": "…"},
     "events": [{"event": "forward", "at": "…+07:00", "role": "specialist"},
                {"event": "request_supplement", "at": "…", "role": "specialist", "reason": "…"},
                {"event": "extend", "at": "…", "role": "leader", "reason": "…",
                 "new_appointment": "…"}, …]}

Each line is replayed through the real use cases (``submit_dossier`` then ``act`` for every
event) with a :class:`FixedClock` set to each instant, so the procedure version and rule set are
the ones in force at ``received_at`` and every due instant comes from the clock rules — nothing
stored is taken on trust. A line is one transaction: if any event is refused, nothing of that line
is kept. A ``ref`` already imported is skipped (idempotent).

Actors (**[motcua]** mapping): the old system's role labels are not ours, so the importer acts as
the officer the procedure's internal process names at the point where the dossier stands, at the
unit where it stands:

* counter events (``supplement``, ``withdraw``, ``return_result``, a ``request_supplement`` before
  receipt) — role ``counter`` at the receiving unit;
* step events (``forward``, ``send_back``, ``request_supplement``) — the current step's role at
  ``dossier.step_units[status]``; ``system`` (another agency's system) when the line says
  ``system`` and the step is inter-agency;
* ``approve`` / ``reject`` — the last step's role at its unit; the decision reference is the
  line's ``decision_ref`` or ``<ref>/KQ``;
* ``mark_result_ready`` — ``counter`` at the receiving unit when the line says ``counter``, else the
  last step's unit (role ``leader`` unless the line says ``specialist``);
* ``extend`` — ``leader`` at the current step's unit (the last step's once decided).

The line's ``role`` must be one of counter, specialist, leader, system, admin. Where the lifecycle
needs a reason (supplementation request, send back, reject, withdraw, extend) and the line gives
none, the reason is "(nhập từ hệ thống cũ, không ghi lý do)". A first event ``refuse`` records a
dossier refused at the counter at ``received_at`` (never received, not counted). Every other rule
holds as for a live dossier: e.g. a late dossier needs its ``extend`` (apology slip) before
``return_result``, an apology comes once, events must follow the lifecycle in time order.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal, cast

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from services.clock import TZ, FixedClock
from services.context import Context
from services.dossiers import Applicant, DossierIn, act, procedure_of, submit_dossier
from services.errors import DomainError
from services.metrics import invalidate_snapshots
from states.events import AWAITING_SUPPLEMENT, SUBMITTED, Event
from states.lifecycle import Actor
from storage.models import Dossier

ROLES = ("counter", "specialist", "leader", "system", "admin")
DEFAULT_REASON = "(nhập từ hệ thống cũ, không ghi lý do)"
_NEEDS_REASON = {"request_supplement", "send_back", "reject", "withdraw", "extend"}


class ImportApplicant(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1, max_length=200)
    id_number: str | None = Field(default=None, max_length=32)
    phone: str | None = Field(default=None, max_length=32)


class ImportEvent(BaseModel):
    model_config = ConfigDict(extra="ignore")

    event: Literal[
        "request_supplement",
        "supplement",
        "forward",
        "send_back",
        "approve",
        "reject",
        "mark_result_ready",
        "return_result",
        "refuse",
        "withdraw",
        "extend",
    ]
    at: AwareDatetime
    role: Literal["counter", "specialist", "leader", "system", "admin"]
    reason: str | None = None
    new_appointment: AwareDatetime | None = None
    decision_ref: str | None = None


class ImportLine(BaseModel):
    model_config = ConfigDict(extra="ignore")

    ref: str = Field(min_length=1, max_length=128)
    procedure: str = Field(min_length=1)
    unit: str = Field(min_length=1)
    channel: Literal["counter", "online", "post"]
    received_at: AwareDatetime
    applicant: ImportApplicant
    events: list[ImportEvent] = Field(default_factory=list)


@dataclass
class LineRefused:
    line: int
    ref: str | None
    message_vi: str
    message_en: str

    def __str__(self) -> str:
        ref = f" ({self.ref})" if self.ref else ""
        return (
            f"Dòng {self.line}{ref}: {self.message_vi} / Line {self.line}{ref}: {self.message_en}"
        )


@dataclass
class ImportResult:
    imported: int = 0
    skipped: int = 0
    refused: list[LineRefused] = field(default_factory=list)
    codes: dict[str, str] = field(default_factory=dict)  # ref → dossier code (imported lines)

    @property
    def lines(self) -> int:
        return self.imported + self.skipped + len(self.refused)


class _Refused(Exception):
    def __init__(self, message_vi: str, message_en: str) -> None:
        super().__init__(message_en)
        self.message_vi = message_vi
        self.message_en = message_en


def import_file(
    ctx: Context, path: Path, *, progress: Callable[[ImportResult], None] | None = None
) -> ImportResult:
    with path.open(encoding="utf-8") as handle:
        return import_lines(ctx, handle, progress=progress)


def import_lines(
    ctx: Context,
    lines: Iterable[str],
    *,
    progress: Callable[[ImportResult], None] | None = None,
    progress_every: int = 500,
) -> ImportResult:
    result = ImportResult()
    invalidated: list[date] = []
    for number, raw in enumerate(lines, start=1):
        if raw.strip():
            _one_line(ctx, number, raw, result, invalidated)
        if progress is not None and number % progress_every == 0:
            progress(result)
    if progress is not None:
        progress(result)
    return result


def _one_line(
    ctx: Context, number: int, raw: str, result: ImportResult, invalidated: list[date]
) -> None:
    ref: str | None = None
    try:
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as error:
            raise _Refused(
                f"JSON không hợp lệ: {error.msg}", f"invalid JSON: {error.msg}"
            ) from None
        if isinstance(data, dict) and isinstance(data.get("ref"), str):
            ref = data["ref"]
        try:
            line = ImportLine.model_validate(data)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "dòng"
            raise _Refused(
                f"trường {where} không hợp lệ: {first['msg']}",
                f"field {where} is invalid: {first['msg']}",
            ) from None
        _check_order(line)
        with ctx.engine.connect() as connection:
            transaction = connection.begin()
            try:
                exists = connection.execute(
                    select(Dossier.__table__.c.id).where(  # type: ignore[attr-defined]
                        Dossier.__table__.c.external_ref == line.ref  # type: ignore[attr-defined]
                    )
                ).first()
                if exists is not None:
                    transaction.rollback()
                    result.skipped += 1
                    return
                code = _replay(ctx, connection, line)
                day = line.received_at.astimezone(TZ).date()
                if not invalidated or day < invalidated[0]:
                    with Session(bind=connection) as session:
                        invalidate_snapshots(session, day)
                        session.flush()
                    invalidated[:] = [day]
                transaction.commit()
            except BaseException:
                if transaction.is_active:
                    transaction.rollback()
                raise
        result.imported += 1
        result.codes[line.ref] = code
    except _Refused as refused:
        result.refused.append(LineRefused(number, ref, refused.message_vi, refused.message_en))
    except DomainError as error:
        result.refused.append(LineRefused(number, ref, error.message_vi, error.message_en))
    except IntegrityError:
        # imported meanwhile by another run: the unique ref makes the import idempotent
        result.skipped += 1


def _check_order(line: ImportLine) -> None:
    previous = line.received_at
    for index, event in enumerate(line.events, start=1):
        if event.at < previous:
            raise _Refused(
                f"sự kiện thứ {index} ({event.event}) sớm hơn sự kiện trước",
                f"event {index} ({event.event}) is earlier than the one before",
            )
        previous = event.at
        if event.event == "refuse" and index != 1:
            raise _Refused(
                "chỉ được từ chối tiếp nhận ở sự kiện đầu tiên",
                "refuse can only be the first event",
            )


def _replay(ctx: Context, connection: Any, line: ImportLine) -> str:
    clock = FixedClock(line.received_at.astimezone(TZ))
    line_ctx = Context(
        engine=cast(Engine, connection), catalog=ctx.catalog, calendar=ctx.calendar, clock=clock
    )
    counter = Actor("import.counter", "counter", line.unit)
    data = DossierIn(
        procedure_code=line.procedure,
        receiving_unit=line.unit,
        channel=line.channel,
        applicant=Applicant(
            name=line.applicant.name,
            id_number=line.applicant.id_number,
            phone=line.applicant.phone,
        ),
        external_ref=line.ref,
    )
    events = list(line.events)
    if events and events[0].event == "refuse":
        first = events.pop(0)
        dossier = submit_dossier(
            line_ctx, counter, data, then="refuse", reason=first.reason or DEFAULT_REASON
        )
    else:
        dossier = submit_dossier(line_ctx, counter, data)
    for index, event in enumerate(events, start=1):
        clock.set(event.at.astimezone(TZ))
        actor = actor_for(ctx, dossier, event.event, event.role)
        reason = event.reason or (DEFAULT_REASON if event.event in _NEEDS_REASON else None)
        try:
            dossier = act(
                line_ctx,
                actor,
                dossier.code,
                cast(Event, event.event),
                dossier.version,
                reason=reason,
                decision_ref=event.decision_ref or f"{line.ref}/KQ",
                new_appointment=(
                    event.new_appointment.astimezone(TZ) if event.new_appointment else None
                ),
            )
        except DomainError as error:
            raise _Refused(
                f"sự kiện thứ {index} ({event.event}, {event.at.isoformat()}): {error.message_vi}",
                f"event {index} ({event.event}, {event.at.isoformat()}): {error.message_en}",
            ) from None
    return dossier.code


def actor_for(ctx: Context, dossier: Dossier, name: str, role: str) -> Actor:
    """The officer who sends event ``name`` where the dossier stands (module docstring)."""
    version = procedure_of(ctx, dossier)
    steps = {step.id: step for step in version.process}
    last = version.process[-1]
    status = dossier.status
    if name in ("supplement", "withdraw", "return_result", "refuse") or (
        name == "request_supplement" and status in (SUBMITTED, AWAITING_SUPPLEMENT)
    ):
        return Actor("import.counter", "counter", dossier.receiving_unit)
    if name in ("approve", "reject"):
        return Actor(f"import.{last.role}", last.role, dossier.step_units[last.id])
    if name == "mark_result_ready":
        if role == "counter":
            return Actor("import.counter", "counter", dossier.receiving_unit)
        role = "specialist" if role == "specialist" else "leader"
        return Actor(f"import.{role}", role, dossier.step_units[last.id])
    if name == "extend":
        unit = dossier.step_units[status] if status in steps else dossier.step_units[last.id]
        return Actor("import.leader", "leader", unit)
    if status in steps:
        step = steps[status]
        role = "system" if role == "system" and step.inter_agency else step.role
        return Actor(f"import.{role}", role, dossier.step_units[status])
    # the machine will explain why the event does not fit here
    return Actor(f"import.{role}", role, dossier.current_unit or dossier.receiving_unit)
