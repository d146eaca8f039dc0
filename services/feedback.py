"""Feedback on administrative regulations (phản ánh, kiến nghị — PAKN): use cases, one
transaction each.

The process is data (``catalog/feedback_process.yaml``): this module validates it, builds the
machine of :mod:`states.feedback`, and keeps the clock on the same working calendar as dossiers
(``Context.calendar``):

* due instant of the handling = receipt + 15 working days (the 15:00 rule of dossiers applies to
  the start of the count); ``handled_at`` is when a leader approves the answer, and its
  timeliness (early / on time / late) is :func:`services.clock.timeliness` against that due;
* each state with a ``share`` gets its own due instant when it is entered; leaving it records
  the step's timeliness on the event row;
* a rejection is compared with receipt + 2 working days, an information request with receipt +
  5 working days (DOMAIN.md §6), recorded on the event row;
* the author marks the answer satisfied or dissatisfied once, after it was approved.

Codes: ``PAKN-YYMMDD-NNNN-XXXX`` — a gap-free daily number plus four random characters so that
following an item by its code cannot be done by guessing the next number.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import secrets
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy import or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from statemachine.exceptions import TransitionNotAllowed

from services.catalog import CATALOG_DIR, HalfDays
from services.clock import timeliness
from services.context import Context
from services.errors import CatalogError, DomainError, InvalidInput, TransitionRejected
from states.events import LifecycleRuleBroken
from states.feedback import (
    CATEGORIES,
    EVENT_LABELS,
    FeedbackFacts,
    StateSpec,
    TransitionSpec,
    machine_for,
)
from states.lifecycle import Actor
from storage.db import next_sequence
from storage.models_feedback import FeedbackEvent, FeedbackItem
from storage.objects import ObjectExists, ObjectStore

PROCESS_FILE = CATALOG_DIR / "feedback_process.yaml"
DEFAULT_AGENCY = "000.00.01.H37"  # the Provincial Public Administration Service Centre
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
HANDLED_STATES = ("handled", "published", "closed")
FeedbackEventName = Literal[
    "classify",
    "request_information",
    "assign",
    "draft_answer",
    "send_back",
    "approve_answer",
    "publish",
    "close",
    "forward",
    "reject",
]


# ---------------------------------------------------------------------------------------------
# The process definition (data)
# ---------------------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProcessLimits(_Strict):
    handling: HalfDays
    rejection: HalfDays
    information_request: HalfDays


class ProcessState(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z_]*$")
    name: str
    name_en: str
    initial: bool = False
    final: bool = False
    share: HalfDays | None = None


class ProcessTransition(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    event: str
    sources: list[str] = Field(alias="from", min_length=1)
    to: str | None = None  # absent: internal transition
    internal: bool = False
    guards: list[str] = Field(default_factory=list)


class FeedbackProcess(_Strict):
    limits: ProcessLimits
    states: list[ProcessState] = Field(min_length=2)
    transitions: list[ProcessTransition] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> FeedbackProcess:
        total = sum((s.share or Decimal(0) for s in self.states), Decimal(0))
        if total != self.limits.handling:
            raise ValueError(
                f"states: the shares add up to {total} working days, "
                f"limits.handling is {self.limits.handling}"
            )
        for t in self.transitions:
            if (t.to is None) != t.internal:
                raise ValueError(f"transitions: {t.event} needs either 'to' or 'internal: true'")
        return self

    @property
    def state_specs(self) -> list[StateSpec]:
        return [StateSpec(s.id, s.initial, s.final) for s in self.states]

    @property
    def transition_specs(self) -> list[TransitionSpec]:
        return [
            TransitionSpec(t.event, tuple(t.sources), t.to, tuple(t.guards))
            for t in self.transitions
        ]

    def state(self, state_id: str) -> ProcessState:
        return next(s for s in self.states if s.id == state_id)

    @property
    def initial(self) -> ProcessState:
        return next(s for s in self.states if s.initial)


def load_process(path: Path = PROCESS_FILE) -> FeedbackProcess:
    """Validate the feedback process file; a bad file is refused naming the file and the field."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        process = FeedbackProcess.model_validate(raw)
    except yaml.YAMLError as exc:
        raise CatalogError.bad_file(path, "(YAML)", str(exc)) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        location = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise CatalogError.bad_file(path, location, first["msg"]) from None
    try:
        # building the machine checks states, guards and sources
        machine_for(
            process.state_specs,
            process.transition_specs,
            FeedbackFacts(status=process.initial.id, agency_code="-"),
        )
    except ValueError as exc:
        raise CatalogError.bad_file(path, "transitions", str(exc)) from None
    return process


@functools.cache
def default_process() -> FeedbackProcess:
    return load_process(PROCESS_FILE)


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


class FeedbackNotFound(DomainError):
    code = "feedback_not_found"
    http_status: ClassVar[int] = 404

    def __init__(self, code: str) -> None:
        super().__init__(f"Không tìm thấy phản ánh, kiến nghị {code}", f"Feedback {code} not found")


class StaleFeedback(DomainError):
    code = "feedback_changed"
    http_status: ClassVar[int] = 412

    def __init__(self, code: str, expected: int, actual: int) -> None:
        super().__init__(
            f"Phản ánh {code} vừa được người khác cập nhật; hãy tải lại và thử lại",
            f"Feedback {code} was changed by someone else; reload and try again",
            expected=expected,
            actual=actual,
        )


class RatingRejected(DomainError):
    code = "rating_rejected"
    http_status: ClassVar[int] = 409


# ---------------------------------------------------------------------------------------------
# Use cases
# ---------------------------------------------------------------------------------------------


class FeedbackIn(BaseModel):
    """What anyone sends from the public page (or the counter, or the national portal)."""

    author_name: str = Field(min_length=1, max_length=200)
    author_contact: str | None = Field(default=None, max_length=200)
    procedure_code: str | None = Field(default=None, max_length=32)
    subject: str = Field(min_length=1, max_length=300)
    text: str = Field(min_length=1, max_length=20_000)
    author_consent: bool = False
    channel: Literal["web", "counter", "portal"] = "web"
    agency_code: str | None = None  # the agency the feedback is addressed to
    external_ref: str | None = Field(default=None, max_length=128)  # the portal's own id

    @field_validator(
        "author_contact", "procedure_code", "agency_code", "external_ref", mode="before"
    )
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value.strip() if isinstance(value, str) else value


def _agency_for(ctx: Context, data: FeedbackIn) -> str:
    if data.agency_code:
        return ctx.catalog.unit(data.agency_code).code
    if data.procedure_code:
        version = ctx.catalog.procedure(data.procedure_code).version_at(ctx.clock.now().date())
        if not version.competent_agency.startswith("receiving"):
            return ctx.catalog.unit(version.competent_agency).code
    return DEFAULT_AGENCY


def submit_feedback(ctx: Context, data: FeedbackIn, *, actor: Actor | None = None) -> FeedbackItem:
    """Receive a feedback item: its code, its clock (15 working days) and the first step's due."""
    process = default_process()
    now = ctx.clock.now()
    if data.procedure_code:
        ctx.catalog.procedure(data.procedure_code)  # unknown code → CatalogError
    agency = _agency_for(ctx, data)
    calendar = ctx.calendar
    first = process.initial
    start = calendar.start_of_count(now)
    with ctx.uow() as uow:
        session = uow.session
        if data.external_ref:
            existing = session.exec(
                select(FeedbackItem).where(FeedbackItem.external_ref == data.external_ref)
            ).first()
            if existing is not None:  # the portal sent the same item again
                return existing
        number = next_sequence(session, "PAKN", now.date())
        suffix = "".join(secrets.choice(CODE_ALPHABET) for _ in range(4))
        item = FeedbackItem(
            code=f"PAKN-{now:%y%m%d}-{number:04d}-{suffix}",
            channel=data.channel,
            external_ref=data.external_ref,
            author_name=data.author_name.strip(),
            author_contact=data.author_contact,
            author_consent=data.author_consent,
            procedure_code=data.procedure_code,
            subject=data.subject.strip(),
            text=data.text,
            status=first.id,
            agency_code=agency,
            received_at=now,
            due_at=calendar.due_at_receipt(now, process.limits.handling),
            step_entered_at=start,
            step_due_at=(
                calendar.add_working_minutes(start, calendar.limit_minutes(first.share))
                if first.share
                else None
            ),
        )
        session.add(item)
        try:
            session.flush()
        except IntegrityError:  # the same portal item, sent twice at once
            if not data.external_ref:
                raise
            session.rollback()
            existing = session.exec(
                select(FeedbackItem).where(FeedbackItem.external_ref == data.external_ref)
            ).one()
            return existing
        who = actor or Actor("citizen", "citizen", "")
        session.add(
            FeedbackEvent(
                feedback_id=item.id,  # type: ignore[arg-type]
                seq=1,
                event="receive",
                from_state="",
                to_state=first.id,
                at=now,
                actor_username=who.username,
                actor_role=who.role,
                actor_unit=who.unit_code,
                step_due_at=item.step_due_at,
                data={"channel": data.channel, "due_at": item.due_at.isoformat()},
            )
        )
        uow.commit()
    return item


def _load(session: Any, code: str) -> FeedbackItem:
    item = session.exec(select(FeedbackItem).where(FeedbackItem.code == code)).first()
    if item is None:
        raise FeedbackNotFound(code)
    return item


def get_feedback(ctx: Context, code: str) -> FeedbackItem:
    with ctx.uow() as uow:
        return _load(uow.session, code.strip().upper())


def feedback_events(ctx: Context, code: str) -> list[FeedbackEvent]:
    with ctx.uow() as uow:
        item = _load(uow.session, code)
        return list(
            uow.session.exec(
                select(FeedbackEvent)
                .where(FeedbackEvent.feedback_id == item.id)
                .order_by(col(FeedbackEvent.seq))
            ).all()
        )


def facts_of(item: FeedbackItem) -> FeedbackFacts:
    return FeedbackFacts(
        status=item.status,
        agency_code=item.agency_code,
        category=item.category,
        competent_agency=item.competent_agency,
        assignee=item.assignee,
        author_consent=item.author_consent,
    )


def allowed_feedback_events(item: FeedbackItem) -> list[str]:
    process = default_process()
    machine = machine_for(process.state_specs, process.transition_specs, facts_of(item))
    return sorted({e.id for e in machine.allowed_events})


def act_on_feedback(
    ctx: Context,
    actor: Actor,
    code: str,
    event: FeedbackEventName,
    expected_version: int | None = None,
    *,
    reason: str | None = None,
    category: str | None = None,
    competent_agency: str | None = None,
    assignee: str | None = None,
    answer: str | None = None,
    to_agency: str | None = None,
) -> FeedbackItem:
    """Send one event to a feedback item (the machine's guards decide), in one transaction."""
    process = default_process()
    calendar = ctx.calendar
    now = ctx.clock.now()
    if competent_agency:
        competent_agency = ctx.catalog.unit(competent_agency).code
    if to_agency:
        to_agency = ctx.catalog.unit(to_agency).code
    with ctx.uow() as uow:
        session = uow.session
        item = _load(session, code)
        if expected_version is not None and item.version != expected_version:
            raise StaleFeedback(code, expected_version, item.version)
        facts = facts_of(item)
        machine = machine_for(process.state_specs, process.transition_specs, facts)
        from_state = item.status
        try:
            machine.send(
                event,
                actor=actor,
                reason=reason,
                category=category,
                competent_agency=competent_agency,
                assignee=assignee,
                answer=answer,
                to_agency=to_agency,
            )
        except LifecycleRuleBroken as broken:
            raise TransitionRejected(
                broken.message_vi, broken.message_en, rule=broken.rule, event=event
            ) from None
        except TransitionNotAllowed:
            vi, en = EVENT_LABELS.get(event, (event, event))
            raise TransitionRejected(
                f"Không thể '{vi}' khi phản ánh ở trạng thái {from_state}",
                f"Cannot '{en}' while the feedback is {from_state}",
                rule="not_allowed",
                event=event,
                state=from_state,
            ) from None
        to_state = facts.status
        record = FeedbackEvent(
            feedback_id=item.id,  # type: ignore[arg-type]
            seq=0,
            event=event,
            from_state=from_state,
            to_state=to_state,
            at=now,
            actor_username=actor.username,
            actor_role=actor.role,
            actor_unit=actor.unit_code,
            reason=reason,
            data={},
        )
        if to_state != from_state and item.step_due_at is not None:
            record.step_due_at = item.step_due_at
            record.step_timeliness = timeliness(now, item.step_due_at)
        if event == "classify":
            item.category = facts.category
            item.competent_agency = facts.competent_agency
            record.data.update(category=facts.category, competent_agency=facts.competent_agency)
        elif event == "assign":
            item.assignee = facts.assignee
            record.data["assignee"] = facts.assignee
        elif event == "draft_answer":
            item.answer = answer
            item.answer_by = actor.username
        elif event == "approve_answer":
            item.handled_at = now
            item.approved_by = actor.username
            item.timeliness = timeliness(now, item.due_at)
            record.data["timeliness"] = item.timeliness
        elif event == "publish":
            item.published_at = now
        elif event == "request_information":
            due = calendar.due_at_receipt(item.received_at, process.limits.information_request)
            record.step_due_at = due
            record.step_timeliness = timeliness(now, due)
        elif event == "reject":
            due = calendar.due_at_receipt(item.received_at, process.limits.rejection)
            record.step_due_at = due
            record.step_timeliness = timeliness(now, due)
            item.rejection_reason = reason
        elif event == "forward":
            item.forwarded_to = to_agency
            record.data["to_agency"] = to_agency
        if to_state != from_state:
            state = process.state(to_state)
            item.step_entered_at = now
            item.step_due_at = (
                calendar.due_after_step_start(now, state.share) if state.share is not None else None
            )
            if state.final:
                item.finished_at = now
        item.status = to_state
        item.version += 1
        count = session.exec(
            select(FeedbackEvent.id).where(FeedbackEvent.feedback_id == item.id)
        ).all()
        record.seq = len(count) + 1
        session.add(record)
        session.add(item)
        uow.commit()
    return item


def rate_answer(ctx: Context, code: str, satisfied: bool) -> FeedbackItem:
    """The author marks the answer satisfied or dissatisfied (once, after it was approved)."""
    now = ctx.clock.now()
    with ctx.uow() as uow:
        item = _load(uow.session, code.strip().upper())
        if item.status not in HANDLED_STATES:
            raise RatingRejected(
                "Chỉ đánh giá được khi phản ánh đã có trả lời",
                "The answer can be rated only once it has been approved",
            )
        if item.satisfaction is not None:
            raise RatingRejected(
                "Phản ánh này đã được đánh giá", "This answer has already been rated"
            )
        item.satisfaction = "satisfied" if satisfied else "dissatisfied"
        item.rated_at = now
        item.version += 1
        uow.session.add(item)
        uow.session.add(
            FeedbackEvent(
                feedback_id=item.id,  # type: ignore[arg-type]
                seq=len(
                    uow.session.exec(
                        select(FeedbackEvent.id).where(FeedbackEvent.feedback_id == item.id)
                    ).all()
                )
                + 1,
                event="rate",
                from_state=item.status,
                to_state=item.status,
                at=now,
                actor_username="citizen",
                actor_role="citizen",
                actor_unit="",
                data={"satisfaction": item.satisfaction},
            )
        )
        uow.commit()
    return item


def search_published(ctx: Context, query: str = "", limit: int = 50) -> list[FeedbackItem]:
    """Published answers (the author agreed), newest first, matching ``query`` if given."""
    with ctx.uow() as uow:
        statement = select(FeedbackItem).where(FeedbackItem.published_at.is_not(None))  # type: ignore[union-attr]
        words = [w for w in query.split() if w]
        for word in words[:8]:
            like = f"%{word}%"
            statement = statement.where(
                or_(
                    col(FeedbackItem.subject).ilike(like),
                    col(FeedbackItem.text).ilike(like),
                    col(FeedbackItem.answer).ilike(like),
                    col(FeedbackItem.procedure_code).ilike(like),
                )
            )
        statement = statement.order_by(col(FeedbackItem.published_at).desc()).limit(limit)
        return list(uow.session.exec(statement).all())


def agency_worklist(
    ctx: Context, agency_code: str, *, open_only: bool = True
) -> list[FeedbackItem]:
    """Feedback held by an agency, the nearest step due first."""
    with ctx.uow() as uow:
        statement = select(FeedbackItem).where(FeedbackItem.agency_code == agency_code)
        if open_only:
            statement = statement.where(col(FeedbackItem.finished_at).is_(None))
        statement = statement.order_by(col(FeedbackItem.due_at), col(FeedbackItem.id))
        return list(uow.session.exec(statement).all())


MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
MAX_ATTACHMENTS = 3


def attach_file(
    ctx: Context, store: ObjectStore, code: str, name: str | None, data: bytes
) -> FeedbackItem:
    """Keep one attachment of a feedback item the way dossier documents are kept
    (:mod:`services.documents`): type decided from the content (PDF, JPEG, PNG, TIFF), the key
    from the content hash (``feedback/<code>/<sha256>``, never overwritten), the stored object's
    size checked, and only then the row updated in one transaction. Public attachments are small
    (≤ 10 MiB, at most 3), so they are read whole, not streamed."""
    from services.documents import check_file_name, detect_type

    name = check_file_name(name)
    if not data:
        raise InvalidInput("Tệp đính kèm rỗng", "The attachment is empty")
    if len(data) > MAX_ATTACHMENT_BYTES:
        raise InvalidInput("Tệp đính kèm vượt quá 10 MiB", "The attachment is larger than 10 MiB")
    content_type = detect_type(data[:8192])
    item = get_feedback(ctx, code)
    if len(item.attachments) >= MAX_ATTACHMENTS:
        raise InvalidInput(
            f"Tối đa {MAX_ATTACHMENTS} tệp đính kèm", f"At most {MAX_ATTACHMENTS} attachments"
        )
    digest = hashlib.sha256(data).hexdigest()
    key = f"feedback/{item.code}/{digest}"
    with contextlib.suppress(ObjectExists):  # the same bytes are already kept under their hash
        store.put(key, io.BytesIO(data), length=len(data), content_type=content_type)
    if store.stat(key).size != len(data):
        raise InvalidInput("Lưu tệp không thành công", "The attachment was not stored intact")
    with ctx.uow() as uow:
        row = _load(uow.session, item.code)
        if any(a.get("sha256") == digest for a in row.attachments):
            return row
        row.attachments = [
            *row.attachments,
            {
                "name": name,
                "key": key,
                "sha256": digest,
                "size": len(data),
                "content_type": content_type,
                "at": ctx.clock.now().isoformat(),
            },
        ]
        row.version += 1
        uow.session.add(row)
        uow.commit()
    return row


def category_label(category: str | None) -> tuple[str, str]:
    return CATEGORIES.get(category or "", ("", ""))


def state_label(state: str) -> tuple[str, str]:
    process = default_process()
    for s in process.states:
        if s.id == state:
            return s.name, s.name_en
    return state, state


def check_author_input(data: FeedbackIn) -> None:
    """Refuse obviously empty submissions (the public page's own check)."""
    if not data.text.strip():
        raise InvalidInput("Cần nội dung phản ánh", "The feedback text is required")


__all__ = [
    "FeedbackIn",
    "FeedbackNotFound",
    "FeedbackProcess",
    "RatingRejected",
    "StaleFeedback",
    "act_on_feedback",
    "agency_worklist",
    "allowed_feedback_events",
    "default_process",
    "feedback_events",
    "get_feedback",
    "load_process",
    "rate_answer",
    "search_published",
    "submit_feedback",
]
