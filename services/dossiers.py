"""Dossier use cases: submit and receive, then every lifecycle event, one transaction each.

Each use case loads the row (with its version), asks the procedure's machine whether the event
is allowed (guards raise with the reason), applies the clock rules, writes the new state, one
event row (the process control slip) and the outbox rows, and commits once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from statemachine.exceptions import TransitionNotAllowed

from services.assignments import acting_actor
from services.catalog import ProcedureVersion
from services.clock import MINUTES_PER_DAY, timeliness
from services.context import Context
from services.errors import DomainError, InvalidInput, StaleDossier, TransitionRejected
from services.fees import payment_required, unpaid_charge_blocking
from services.portal_sync import portal_sync_rows
from states.events import (
    APPROVED,
    AWAITING_SUPPLEMENT,
    EVENT_LABELS,
    REJECTED,
    SUBMITTED,
    Event,
    LifecycleRuleBroken,
)
from states.lifecycle import Actor, DossierFacts, allowed_event_ids, is_final, machine_for
from storage.db import next_sequence
from storage.models import Dossier, DossierEvent, Outbox, new_row
from storage.transitions import detach, insert_dossier, save_transition

CitizenNotice = Literal["received", "supplement_requested", "result_ready", "apology"]


class Applicant(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    id_number: str | None = Field(default=None, max_length=32)
    phone: str | None = Field(default=None, max_length=32)
    email: str | None = Field(default=None, max_length=128)
    address: str | None = Field(default=None, max_length=500)


class DossierIn(BaseModel):
    """What the counter (or the portal) submits."""

    procedure_code: str
    receiving_unit: str
    channel: Literal["counter", "online", "post"] = "counter"
    applicant: Applicant
    components: list[str] = Field(default_factory=list)
    request_summary: str | None = None
    external_ref: str | None = None


def procedure_key(code: str, version: int) -> str:
    return f"{code}@{version}"


def procedure_of(ctx: Context, dossier: Dossier) -> ProcedureVersion:
    return ctx.catalog.procedure(dossier.procedure_code).version(dossier.procedure_version)


def _share_minutes(share: Decimal) -> int:
    return int(share * MINUTES_PER_DAY)


def submit_dossier(
    ctx: Context,
    actor: Actor,
    data: DossierIn,
    *,
    then: Event | None = "receive",
    reason: str | None = None,
) -> Dossier:
    """Create the dossier with its code and, in the same transaction, receive it (or refuse it,
    or guide the applicant once to supplement it: ``then``)."""
    now = ctx.clock.now()
    procedure = ctx.catalog.procedure(data.procedure_code)
    version = procedure.version_at(now.date())
    rule_set = ctx.catalog.rule_set_at(now.date())
    unit = ctx.catalog.unit(data.receiving_unit)
    if unit.valid_to is not None and now.date() > unit.valid_to:
        raise InvalidInput(
            f"Đơn vị {unit.code} đã dừng hoạt động từ {unit.valid_to}",
            f"Unit {unit.code} ceased on {unit.valid_to}",
        )
    known = {c.id for c in version.components}
    unknown = [c for c in data.components if c not in known]
    if unknown:
        raise InvalidInput(
            f"Thành phần hồ sơ không có trong danh mục của thủ tục: {', '.join(unknown)}",
            f"Components not in the procedure's published list: {', '.join(unknown)}",
        )
    step_units = {
        step.id: ctx.catalog.resolve_agency(step.agency, unit.code) for step in version.process
    }
    with ctx.uow() as uow:
        if data.external_ref:  # checked in this transaction: an importer's outer one stays alive
            _refuse_taken_ref(uow.session, data.external_ref)
        number = next_sequence(uow.session, unit.code, now.date())
        dossier = new_row(
            Dossier,
            code=f"{unit.code}-{now:%y%m%d}-{number:04d}",
            external_ref=data.external_ref,
            procedure_code=procedure.code,
            procedure_version=version.version,
            rule_set=rule_set.id,
            receiving_unit=unit.code,
            competent_agency=ctx.catalog.resolve_agency(version.competent_agency, unit.code),
            level=version.level,
            channel=data.channel,
            applicant_name=data.applicant.name,
            applicant_id_number=data.applicant.id_number,
            applicant_phone=data.applicant.phone,
            applicant_email=data.applicant.email,
            applicant_address=data.applicant.address,
            request_summary=data.request_summary,
            components=[{"id": c} for c in data.components],
            step_units=step_units,
            status=SUBMITTED,
            current_unit=unit.code,
            submitted_at=now,
        )
        try:
            insert_dossier(uow.session, dossier)
        except IntegrityError:  # the same reference sent twice at once: the other one won
            if not data.external_ref:
                raise
            uow.session.rollback()
            _refuse_taken_ref(uow.session, data.external_ref)
            raise
        if then is not None:
            _apply(ctx, uow.session, dossier, version, actor, then, now, reason=reason)
        uow.commit()
    return dossier


class ExternalRefTaken(DomainError):
    """A dossier with this reference (the national portal's id) was already received."""

    code = "external_ref_taken"
    http_status: ClassVar[int] = 409

    def __init__(self, ref: str, existing: str) -> None:
        super().__init__(
            f"Mã hồ sơ liên thông {ref} đã được tiếp nhận thành hồ sơ {existing}",
            f"The reference {ref} was already received as dossier {existing}",
            dossier=existing,
        )


def _refuse_taken_ref(session: Any, ref: str) -> None:
    existing = session.exec(select(Dossier.code).where(Dossier.external_ref == ref)).first()
    if existing is not None:
        raise ExternalRefTaken(ref, existing)


def act(
    ctx: Context,
    actor: Actor,
    code: str,
    event: Event,
    expected_version: int | None,
    *,
    reason: str | None = None,
    decision_ref: str | None = None,
    new_appointment: datetime | None = None,
    visible: Callable[[Dossier], None] | None = None,
) -> Dossier:
    """Send one lifecycle event to a dossier (optimistic lock on ``expected_version``).

    ``visible`` (the caller's access check, raising) sees the row first, in the same unit of
    work: not found, then not yours, then stale — with one read of the row. The only write is
    the transition's one statement (``save_transition``), checked against the version read."""
    now = ctx.clock.now()
    with ctx.uow(one_statement=True) as uow:
        if visible is None:
            dossier = uow.read_dossier(code, version=expected_version)
        else:
            dossier = uow.read_dossier(code)
            visible(dossier)
            if expected_version is not None and dossier.version != expected_version:
                raise StaleDossier(code, expected_version, dossier.version)
        charge = unpaid_charge_blocking(uow.session, dossier, event)
        if charge is not None:  # the fee is due before this event (every caller, one guard)
            raise payment_required(code, event, charge)
        version = procedure_of(ctx, dossier)
        # a deputy with a delegation in force acts as the unit's leader (services.assignments)
        leader_step = any(s.id == dossier.status and s.role == "leader" for s in version.process)
        actor, delegation = acting_actor(uow.session, actor, dossier, event, leader_step, now)
        _apply(
            ctx,
            uow.session,
            dossier,
            version,
            actor,
            event,
            now,
            reason=reason,
            decision_ref=decision_ref,
            new_appointment=new_appointment,
            on_behalf_of=delegation.leader if delegation else None,
        )
        uow.commit()
    return dossier


def facts_of(dossier: Dossier) -> DossierFacts:
    return DossierFacts(
        status=dossier.status,
        receiving_unit=dossier.receiving_unit,
        step_units=dossier.step_units,
        paused_from=dossier.paused_from,
        late=dossier.timeliness == "late",
        apology_issued=dossier.apology_at is not None,
        supplement_count=dossier.supplement_count,
    )


def allowed_events(ctx: Context, dossier: Dossier) -> list[str]:
    """Events the machine has from the dossier's state (guards not evaluated)."""
    if is_final(dossier.status):
        return []
    return list(
        allowed_event_ids(
            procedure_key(dossier.procedure_code, dossier.procedure_version),
            procedure_of(ctx, dossier).process,
            dossier.status,
        )
    )


def _apply(
    ctx: Context,
    session: Any,
    dossier: Dossier,
    version: ProcedureVersion,
    actor: Actor,
    event: Event,
    now: datetime,
    *,
    reason: str | None = None,
    decision_ref: str | None = None,
    new_appointment: datetime | None = None,
    on_behalf_of: str | None = None,
) -> None:
    calendar = ctx.calendar
    before = detach(session, dossier)  # written in SQL at the end (storage.transitions)
    steps = {step.id: step for step in version.process}
    facts = facts_of(dossier)
    machine = machine_for(
        procedure_key(dossier.procedure_code, dossier.procedure_version), version.process, facts
    )
    if event == "extend":
        _check_new_appointment(dossier, new_appointment, now)
    from_state = dossier.status
    from_unit = dossier.current_unit
    try:
        machine.send(
            event,
            actor=actor,
            reason=reason,
            decision_ref=decision_ref,
            new_appointment=new_appointment,
        )
    except LifecycleRuleBroken as broken:
        raise TransitionRejected(
            broken.message_vi, broken.message_en, rule=broken.rule, event=event
        ) from None
    except TransitionNotAllowed:
        label_vi, label_en = EVENT_LABELS.get(event, (event, event))
        raise TransitionRejected(
            f"Không thể '{label_vi}' khi hồ sơ ở trạng thái {from_state}",
            f"Cannot '{label_en}' while the dossier is {from_state}",
            rule="not_allowed",
            event=event,
            state=from_state,
        ) from None
    to_state = facts.status
    record = new_row(
        DossierEvent,
        dossier_id=dossier.id,
        seq=0,
        event=event,
        from_state=from_state,
        to_state=to_state,
        at=now,
        actor_username=actor.username,
        actor_role=actor.role,
        actor_unit=actor.unit_code,
        from_unit=from_unit,
        reason=reason,
        data={"on_behalf_of": on_behalf_of} if on_behalf_of else {},
    )
    # leaving a step: record that step's timeliness on the slip
    if from_state in steps and to_state != from_state:
        record.step_id = from_state
        record.step_entered_at = dossier.step_entered_at
        record.step_due_at = dossier.step_due_at
        if event != "request_supplement" and dossier.step_due_at is not None:
            record.step_timeliness = timeliness(now, dossier.step_due_at)

    notices: list[CitizenNotice] = []
    if event == "receive":
        start = calendar.start_of_count(now)
        dossier.received_at = now
        dossier.count_start = start
        dossier.due_at = calendar.due_at_receipt(now, version.time_limit)
        dossier.appointment_at = dossier.due_at
        _enter_step(ctx, dossier, version, to_state, start, at_receipt=True)
        notices.append("received")
    elif event in ("forward", "send_back"):
        _enter_step(ctx, dossier, version, to_state, now)
    elif event == "request_supplement":
        dossier.paused_from = facts.paused_from
        dossier.supplement_count = facts.supplement_count
        if from_state != SUBMITTED:
            assert dossier.due_at is not None and dossier.step_due_at is not None
            dossier.paused_at = now
            dossier.remaining_minutes = calendar.working_minutes_between(now, dossier.due_at)
            dossier.step_remaining_minutes = calendar.working_minutes_between(
                now, dossier.step_due_at
            )
            record.data["remaining_minutes"] = dossier.remaining_minutes
        dossier.current_unit = dossier.receiving_unit
        notices.append("supplement_requested")
    elif event == "supplement":
        dossier.paused_from = None
        if to_state != SUBMITTED:
            _resume_clock(ctx, dossier, version, now)
            dossier.current_unit = dossier.step_units[to_state]
        record.data["due_at"] = dossier.due_at.isoformat() if dossier.due_at else None
    elif event in ("approve", "reject"):
        dossier.decision = "approved" if to_state == APPROVED else "rejected"
        dossier.decision_ref = decision_ref
        record.data["decision_ref"] = decision_ref
    elif event == "mark_result_ready":
        assert dossier.due_at is not None
        dossier.result_ready_at = now
        dossier.timeliness = timeliness(now, dossier.due_at)
        dossier.current_unit = dossier.receiving_unit
        record.data["timeliness"] = dossier.timeliness
        record.to_unit = dossier.receiving_unit
        notices.append("result_ready")
    elif event == "return_result":
        dossier.returned_at = now
    elif event == "extend":
        assert new_appointment is not None
        dossier.apology_at = now
        dossier.apology_reason = reason
        due = dossier.due_at
        # The law wants the slip at least one working day before the due instant.
        dossier.apology_late = due is None or (
            calendar.working_minutes_between(now, due) < MINUTES_PER_DAY
        )
        dossier.appointment_at = new_appointment
        record.data.update(
            new_appointment=new_appointment.isoformat(), apology_late=dossier.apology_late
        )
        notices.append("apology")
    elif event == "refuse":
        dossier.refused_at = now
    elif event == "withdraw":
        dossier.withdrawn_at = now
        dossier.paused_at = None

    previous_step = dossier.current_step
    if to_state in steps:
        dossier.current_step = to_state
    elif to_state not in (AWAITING_SUPPLEMENT,):
        dossier.current_step = None
    assignee_at = None  # the step whose last assignee the dossier gets (storage.transitions)
    if dossier.current_step != previous_step:
        # the assignee is per step: back at a step, the one last assigned there has it again
        # (at receipt the dossier enters its first step: no one was assigned there yet)
        if event == "receive" or dossier.current_step is None:
            dossier.assignee = None
        else:
            assignee_at = dossier.current_step
    if to_state in steps and event not in ("supplement",):
        record.to_unit = dossier.step_units[to_state]
        record.data["step_due_at"] = (
            dossier.step_due_at.isoformat() if dossier.step_due_at else None
        )
    if to_state in (APPROVED, REJECTED):
        dossier.current_unit = dossier.step_units[version.process[-1].id]
    dossier.status = to_state

    outbox = _outbox_rows(dossier, version, event, from_unit, to_state, now, notices)
    if not save_transition(session, dossier, before, record, outbox, assignee_at=assignee_at):
        raise StaleDossier(dossier.code, before["version"])


def _enter_step(
    ctx: Context,
    dossier: Dossier,
    version: ProcedureVersion,
    step_id: str,
    start: datetime,
    *,
    at_receipt: bool = False,
) -> None:
    step = next(s for s in version.process if s.id == step_id)
    calendar = ctx.calendar
    dossier.step_entered_at = start
    if at_receipt:
        # the first step starts with the count (15:00 rule already applied to ``start``)
        dossier.step_due_at = (
            calendar.add_working_minutes(start, _share_minutes(step.share))
            if step.share > 0
            else calendar.end_of_working_day(start.date())
        )
    else:
        dossier.step_due_at = calendar.due_after_step_start(start, step.share)
    dossier.current_unit = dossier.step_units[step_id]


def _resume_clock(ctx: Context, dossier: Dossier, version: ProcedureVersion, now: datetime) -> None:
    """The papers are back: the clock restarts with the time that was left (DOMAIN.md §1)."""
    calendar = ctx.calendar
    rule_set = ctx.catalog.rule_set(dossier.rule_set)
    if rule_set.supplement_clock == "restart":
        dossier.due_at = calendar.due_at_receipt(now, version.time_limit)
    elif dossier.remaining_minutes is not None and dossier.remaining_minutes > 0:
        dossier.due_at = calendar.resume_due(now, dossier.remaining_minutes)
    # remaining <= 0: it was already overdue when paused; the due instant stays where it was
    if dossier.step_remaining_minutes is not None and dossier.step_remaining_minutes > 0:
        dossier.step_due_at = calendar.resume_due(now, dossier.step_remaining_minutes)
    if dossier.apology_at is None:
        dossier.appointment_at = dossier.due_at
    dossier.paused_at = None
    dossier.remaining_minutes = None
    dossier.step_remaining_minutes = None


def _check_new_appointment(
    dossier: Dossier, new_appointment: datetime | None, now: datetime
) -> None:
    if new_appointment is None:
        return  # the machine's guard explains
    if new_appointment.tzinfo is None:
        raise InvalidInput("Ngày hẹn mới phải có múi giờ", "The new appointment needs a time zone")
    if dossier.due_at is not None and new_appointment <= dossier.due_at:
        raise InvalidInput(
            "Ngày hẹn mới phải sau ngày hẹn ban đầu",
            "The new appointment must be after the original one",
        )
    if new_appointment <= now:
        raise InvalidInput("Ngày hẹn mới phải ở tương lai", "The new appointment must be ahead")


def _outbox_rows(
    dossier: Dossier,
    version: ProcedureVersion,
    event: Event,
    from_unit: str | None,
    to_state: str,
    now: datetime,
    notices: list[CitizenNotice],
) -> list[Outbox]:
    rows: list[Outbox] = []
    steps = {step.id: step for step in version.process}
    base = {"code": dossier.code, "event": event, "status": to_state}
    if event in ("forward", "send_back", "receive") and to_state in steps:
        to_unit = dossier.step_units[to_state]
        if to_unit != from_unit or event == "receive":
            kind = "inter_agency" if steps[to_state].inter_agency else "handoff"
            rows.append(
                Outbox(
                    dossier_id=dossier.id,
                    kind=kind,
                    target=to_unit,
                    payload={**base, "step": to_state},
                    created_at=now,
                    available_at=now,
                )
            )
    for notice in notices:
        rows.append(
            new_row(
                Outbox,
                dossier_id=dossier.id,
                kind="notify_citizen",
                target=notice,
                payload=base,
                created_at=now,
                available_at=now,
            )
        )
    rows.extend(portal_sync_rows(dossier, version, event, to_state, now))  # issue 5
    return rows
