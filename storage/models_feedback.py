"""Tables of feedback (phản ánh, kiến nghị) and fees: feedback items and their events, the fee
charged on a dossier (its payment status), payments, and the gateway callbacks seen."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from storage.models import _dt


class FeedbackItem(SQLModel, table=True):
    """One feedback item on administrative regulations, with its clock and answer."""

    __tablename__ = "feedback_item"
    __table_args__ = (Index("ix_feedback_agency_status", "agency_code", "status"),)

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, index=True, max_length=48)
    channel: str = Field(default="web", max_length=16)  # web / counter / portal
    external_ref: str | None = Field(default=None, unique=True, max_length=128)
    author_name: str = Field(max_length=200)
    author_contact: str | None = Field(default=None, max_length=200)
    author_consent: bool = False  # the author agreed to publish the answer
    procedure_code: str | None = Field(default=None, index=True, max_length=32)
    subject: str = Field(max_length=300)
    text: str
    attachments: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))

    status: str = Field(index=True, max_length=32)
    agency_code: str = Field(index=True, max_length=64)  # agency holding (and counted for) it
    category: str | None = Field(default=None, max_length=32)
    competent_agency: str | None = Field(default=None, max_length=64)
    assignee: str | None = Field(default=None, max_length=64)
    forwarded_to: str | None = Field(default=None, max_length=64)
    rejection_reason: str | None = None

    received_at: datetime = _dt(nullable=False)
    due_at: datetime = _dt(nullable=False)  # answer approved within 15 working days
    step_entered_at: datetime | None = _dt()
    step_due_at: datetime | None = _dt()
    handled_at: datetime | None = _dt(index=True)
    timeliness: str | None = Field(default=None, max_length=16)
    finished_at: datetime | None = _dt()  # rejected / forwarded / closed

    answer: str | None = None
    answer_by: str | None = Field(default=None, max_length=64)
    approved_by: str | None = Field(default=None, max_length=64)
    published_at: datetime | None = _dt()
    satisfaction: str | None = Field(default=None, max_length=16)  # satisfied / dissatisfied
    rated_at: datetime | None = _dt()
    version: int = 1


class FeedbackEvent(SQLModel, table=True):
    """One transition of a feedback item, with the step's due instant and timeliness."""

    __tablename__ = "feedback_event"
    __table_args__ = (UniqueConstraint("feedback_id", "seq"),)

    id: int | None = Field(default=None, primary_key=True)
    feedback_id: int = Field(foreign_key="feedback_item.id", index=True)
    seq: int
    event: str = Field(max_length=32)
    from_state: str = Field(max_length=32)
    to_state: str = Field(max_length=32)
    at: datetime = _dt(nullable=False)
    actor_username: str = Field(max_length=64)
    actor_role: str = Field(max_length=16)
    actor_unit: str = Field(max_length=64)
    step_due_at: datetime | None = _dt()
    step_timeliness: str | None = Field(default=None, max_length=16)
    reason: str | None = None
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))


class DossierCharge(SQLModel, table=True):
    """The fee assessed on one dossier and its payment status (lệ phí của hồ sơ).

    ``wait`` says whether the dossier waits for payment before receipt or before return;
    ``status`` is ``unpaid``, ``paid`` or ``exempt`` (nothing to pay)."""

    __tablename__ = "dossier_charge"

    id: int | None = Field(default=None, primary_key=True)
    dossier_id: int = Field(foreign_key="dossier.id", unique=True, index=True)
    dossier_code: str = Field(index=True, max_length=48)
    procedure_code: str = Field(max_length=32)
    agency_code: str = Field(index=True, max_length=64)
    amount: int  # đồng
    lines: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    exemption: str | None = None
    wait: str = Field(default="none", max_length=16)  # none / before_receipt / before_return
    status: str = Field(default="unpaid", max_length=16)
    method: str | None = Field(default=None, max_length=16)  # cash / online
    paid_at: datetime | None = _dt()
    assessed_at: datetime = _dt(nullable=False)
    assessed_by: str = Field(max_length=64)


class Payment(SQLModel, table=True):
    """A payment of a dossier's charge: cash at the counter (with a receipt number) or an online
    request through the gateway (pending until its signed callback says paid)."""

    __tablename__ = "payment"

    id: int | None = Field(default=None, primary_key=True)
    order_ref: str = Field(unique=True, index=True, max_length=64)
    charge_id: int = Field(foreign_key="dossier_charge.id", index=True)
    dossier_code: str = Field(index=True, max_length=48)
    amount: int
    method: str = Field(max_length=16)  # cash / online
    status: str = Field(default="pending", max_length=16)  # pending / paid / failed
    receipt_number: str | None = Field(default=None, unique=True, max_length=64)
    gateway_ref: str | None = Field(default=None, max_length=64)
    gateway_txn: str | None = Field(default=None, max_length=64)
    payment_url: str | None = None
    qr_payload: str | None = None
    created_at: datetime = _dt(nullable=False)
    created_by: str = Field(max_length=64)
    paid_at: datetime | None = _dt()


class PaymentCallback(SQLModel, table=True):
    """A gateway callback seen (by its event id): a replay finds it here and changes nothing."""

    __tablename__ = "payment_callback"
    __table_args__ = (UniqueConstraint("gateway", "event_id"),)

    id: int | None = Field(default=None, primary_key=True)
    gateway: str = Field(max_length=32)
    event_id: str = Field(max_length=128)
    order_ref: str = Field(index=True, max_length=64)
    outcome: str = Field(max_length=16)  # applied / ignored / mismatch
    body: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    received_at: datetime = _dt(nullable=False)


__all__ = ["DossierCharge", "FeedbackEvent", "FeedbackItem", "Payment", "PaymentCallback"]
