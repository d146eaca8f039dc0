"""Digitized documents (số hóa): one row per stored version of a dossier component or result.

A row is written only after its object is stored and verified. Rows are never updated in place
except to record a deletion (who, when, why): a rescan is a new version, a reuse is a new row that
points at the reused row and its object (linked, not copied)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from storage.models import AwareDateTime

RESULT = "result"  # the component id of a dossier's result (kết quả)


class Document(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("dossier_id", "component", "version"),
        Index("ix_document_holder_type", "holder_id_number", "doc_type_code"),
    )

    id: int | None = Field(default=None, primary_key=True)
    dossier_id: int = Field(foreign_key="dossier.id", index=True)
    component: str = Field(max_length=64)  # the procedure's component id, or "result"
    version: int = 1
    object_key: str = Field(index=True, max_length=300)
    sha256: str = Field(max_length=64)
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    content_type: str = Field(max_length=64)
    page_count: int | None = None
    original_name: str | None = Field(default=None, max_length=255)

    uploaded_by: str = Field(max_length=64)
    uploaded_at: datetime = Field(sa_column=Column(AwareDateTime(), nullable=False))
    reason: str | None = None  # why a rescan (new version) was made
    reused_from_id: int | None = Field(default=None, foreign_key="document.id", index=True)

    # minimum metadata of a digitized paper (DOMAIN.md §5)
    doc_type_code: str | None = Field(default=None, max_length=64)
    holder_id_number: str | None = Field(default=None, max_length=32)
    name: str | None = None
    summary: str | None = None
    valid_from: date | None = None
    valid_to: date | None = None
    scope: str | None = None

    deleted_at: datetime | None = Field(default=None, sa_column=Column(AwareDateTime()))
    deleted_by: str | None = Field(default=None, max_length=64)
    deletion_reason: str | None = None


class DigitizationExemption(SQLModel, table=True):
    """A component that is not digitized again, with the reason of DOMAIN.md §5."""

    __tablename__ = "digitization_exemption"
    __table_args__ = (UniqueConstraint("dossier_id", "component"),)

    id: int | None = Field(default=None, primary_key=True)
    dossier_id: int = Field(foreign_key="dossier.id", index=True)
    component: str = Field(max_length=64)
    reason: str = Field(max_length=32)  # shared_data / shown_only / online / confidential
    note: str | None = None
    recorded_by: str = Field(max_length=64)
    recorded_at: datetime = Field(sa_column=Column(AwareDateTime(), nullable=False))


__all__ = ["RESULT", "DigitizationExemption", "Document"]
