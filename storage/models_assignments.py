"""Assignment (phân công thụ lý) of dossiers to specialists and leaders' delegations (ủy quyền).

Both tables were first created by migration ``0002_api``; ``0004_assignments`` adds what the
history needs (kind, the previous assignee, the unit, the delegation used; who created and who
revoked a delegation). ``Dossier.assignee`` stays the current assignee; these rows are the
history shown on the process control slip (Form 05).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from storage.models import _dt


class Assignment(SQLModel, table=True):
    """Who was given a dossier to handle at a step, by whom, when and why.

    ``kind`` is ``assign`` (nobody had it at this step) or ``reassign`` (``previous_assignee``
    had it). ``on_behalf_of`` is the leader whose delegation the deputy used."""

    id: int | None = Field(default=None, primary_key=True)
    dossier_id: int = Field(foreign_key="dossier.id", index=True)
    step_id: str | None = Field(default=None, max_length=48)
    unit_code: str | None = Field(default=None, max_length=64)
    kind: str = Field(default="assign", max_length=16)
    assignee: str = Field(max_length=64)
    previous_assignee: str | None = Field(default=None, max_length=64)
    assigned_by: str = Field(max_length=64)
    on_behalf_of: str | None = Field(default=None, max_length=64)
    delegation_id: int | None = Field(default=None, foreign_key="delegation.id")
    reason: str | None = None
    at: datetime = _dt(nullable=False)


class Delegation(SQLModel, table=True):
    """A unit leader lets a deputy act as leader of the unit (assign, and the leader's
    lifecycle events) from ``valid_from`` until ``valid_to``, unless revoked earlier."""

    __table_args__ = (Index("ix_delegation_leader", "leader"),)

    id: int | None = Field(default=None, primary_key=True)
    unit_code: str = Field(max_length=64, index=True)
    leader: str = Field(max_length=64)
    deputy: str = Field(max_length=64, index=True)
    valid_from: datetime = _dt(nullable=False)
    valid_to: datetime = _dt(nullable=False)
    reason: str | None = None
    created_by: str = Field(default="", max_length=64)
    created_at: datetime = _dt(nullable=False)
    revoked_at: datetime | None = _dt()
    revoked_by: str | None = Field(default=None, max_length=64)
    revoke_reason: str | None = None

    def active_at(self, now: datetime) -> bool:
        """In force at ``now``: inside the period and not revoked before ``now``."""
        if not (self.valid_from <= now < self.valid_to):
            return False
        return self.revoked_at is None or now < self.revoked_at


__all__ = ["Assignment", "Delegation"]
