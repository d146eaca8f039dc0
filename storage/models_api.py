"""Tables of the HTTP layer's use cases: idempotency keys, rate-limit hits, ratings.

(Assignments and delegations, also created by migration 0002_api, live in
``storage.models_assignments``.)"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from storage.models import _dt


class IdempotencyRecord(SQLModel, table=True):
    """First answer to a POST carrying ``Idempotency-Key``, replayed for the same key and user."""

    __tablename__ = "idempotency_record"
    __table_args__ = (UniqueConstraint("username", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64)
    key: str = Field(max_length=128)
    target: str = Field(max_length=300)  # METHOD path
    request_hash: str = Field(max_length=64)
    state: str = Field(default="pending", max_length=16)  # pending / done
    status_code: int | None = None
    response_body: Any = Field(default=None, sa_column=Column(JSON))
    response_headers: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    created_at: datetime = _dt(nullable=False, index=True)


class RateHit(SQLModel, table=True):
    """One counted attempt (failed sign-in, citizen lookup) in a rate-limit bucket."""

    __tablename__ = "rate_hit"
    __table_args__ = (Index("ix_rate_hit_bucket_at", "bucket", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    bucket: str = Field(max_length=200)
    at: datetime = _dt(nullable=False)


class Rating(SQLModel, table=True):
    """The citizen's rating of the service, once per dossier, at or after the return."""

    id: int | None = Field(default=None, primary_key=True)
    dossier_id: int = Field(foreign_key="dossier.id", unique=True)
    score: str = Field(max_length=16)  # satisfied / acceptable / dissatisfied
    comment: str | None = None
    channel: str = Field(default="lookup", max_length=16)
    at: datetime = _dt(nullable=False)


__all__ = ["IdempotencyRecord", "RateHit", "Rating"]
