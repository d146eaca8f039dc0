"""Tables of the workflows: deadline notices (once per dossier, step and threshold), the
notification log (what was sent for which outbox row), and the answers of other agencies."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from storage.models import _dt


class DeadlineNotice(SQLModel, table=True):
    """A deadline threshold crossed by a dossier; the unique key makes each notice fire once,
    across runs, workers and restarts. ``unit_code`` records the unit concerned (for
    ``step_overdue``: the unit that made the dossier late)."""

    __tablename__ = "deadline_notice"
    __table_args__ = (UniqueConstraint("dossier_id", "step", "threshold"),)

    id: int | None = Field(default=None, primary_key=True)
    dossier_id: int = Field(foreign_key="dossier.id", index=True)
    step: str = Field(max_length=48)  # "" for thresholds of the whole dossier
    threshold: str = Field(max_length=32)
    unit_code: str | None = Field(default=None, max_length=64, index=True)
    due_at: datetime | None = _dt()
    flag: str | None = Field(default=None, max_length=32)  # e.g. no_apology / apology_late
    created_at: datetime = _dt(nullable=False)
    outbox_id: int | None = None


class NotificationLog(SQLModel, table=True):
    """One message sent for one outbox row, channel and recipient (a re-delivery of the same
    row after a crash finds it here and does not send it again)."""

    __tablename__ = "notification_log"
    __table_args__ = (UniqueConstraint("outbox_id", "channel", "recipient"),)

    id: int | None = Field(default=None, primary_key=True)
    outbox_id: int = Field(index=True)
    dossier_id: int | None = Field(default=None, index=True)
    channel: str = Field(max_length=16)  # email / sms / inbox
    recipient: str = Field(max_length=200)
    template: str = Field(max_length=48)
    subject: str
    sent_at: datetime = _dt(nullable=False)


class AgencyAnswer(SQLModel, table=True):
    """An answer from another agency's system, received through the signed callback;
    idempotent by the agency's own answer id."""

    __tablename__ = "agency_answer"
    __table_args__ = (UniqueConstraint("unit_code", "answer_id"),)

    id: int | None = Field(default=None, primary_key=True)
    unit_code: str = Field(max_length=64)
    answer_id: str = Field(max_length=128)
    dossier_code: str = Field(max_length=48, index=True)
    idempotency_key: str | None = Field(default=None, max_length=64)
    outcome: str = Field(max_length=16)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    status: str = Field(default="received", max_length=16)  # received / applied
    received_at: datetime = _dt(nullable=False)
    applied_at: datetime | None = _dt()


class DocumentText(SQLModel, table=True):
    """What the digitization pipeline found in one stored document: checksum verified again,
    page count, preview image key, OCR text (Tesseract ``vie``) kept for search."""

    __tablename__ = "document_text"

    id: int | None = Field(default=None, primary_key=True)
    document_id: int = Field(foreign_key="document.id", unique=True)
    dossier_id: int = Field(index=True)
    checksum_ok: bool
    page_count: int | None = None
    preview_key: str | None = Field(default=None, max_length=300)
    text: str = ""
    text_folded: str = ""  # casefolded, what the search compares
    error: str | None = None
    processed_at: datetime = _dt(nullable=False)


__all__ = ["AgencyAnswer", "DeadlineNotice", "DocumentText", "NotificationLog"]
