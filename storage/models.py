"""SQLModel tables. The dossier rows are the one source of truth for every rate."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Index,
    Integer,
    Numeric,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm.instrumentation import manager_of_class
from sqlmodel import Field, SQLModel

TZ = ZoneInfo("Asia/Ho_Chi_Minh")


class AwareDateTime(TypeDecorator[datetime]):
    """Aware datetimes on every backend: UTC on the wire, Asia/Ho_Chi_Minh when read.

    PostgreSQL stores ``timestamptz``; SQLite has no zone, so values are stored in UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(TZ)


def _dt(*, index: bool = False, nullable: bool = True) -> Any:
    return Field(
        default=None if nullable else ...,
        sa_column=Column(AwareDateTime(), index=index, nullable=nullable),
    )


class Unit(SQLModel, table=True):
    """Agency or unit (cơ quan, đơn vị), mirrored from ``catalog/units.yaml``."""

    code: str = Field(primary_key=True, max_length=64)
    name: str
    kind: str = Field(max_length=32)
    level: str = Field(max_length=16)
    parent_code: str | None = Field(default=None, index=True, max_length=64)
    valid_from: date = date(2000, 1, 1)
    valid_to: date | None = None


class User(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(unique=True, index=True, max_length=64)
    full_name: str
    role: str = Field(max_length=16)
    unit_code: str = Field(foreign_key="unit.code", index=True, max_length=64)
    password_hash: str | None = None
    active: bool = True


class ProcedureVersionRow(SQLModel, table=True):
    """A procedure version as received dossiers refer to it (never rewritten)."""

    __tablename__ = "procedure_version"

    code: str = Field(primary_key=True, max_length=32)
    version: int = Field(primary_key=True)
    name: str
    field: str
    level: str = Field(max_length=16)
    time_limit: Decimal = Field(sa_column=Column(Numeric(6, 1), nullable=False))
    effective_from: date
    effective_to: date | None = None
    inter_agency: bool = False
    definition: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))


_dossier_version = Column("version", Integer, nullable=False, default=1)


class Dossier(SQLModel, table=True):
    """Hồ sơ: one application by one applicant, with its legal clock.

    ``version`` is SQLAlchemy's version counter: every UPDATE says ``WHERE version = <read>``,
    so of two officers acting at once one wins and the other's flush finds no row."""

    __mapper_args__ = {"version_id_col": _dossier_version}

    __table_args__ = (
        Index("ix_dossier_unit_received", "receiving_unit", "received_at"),
        Index("ix_dossier_current_unit_status", "current_unit", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, index=True, max_length=48)
    external_ref: str | None = Field(default=None, unique=True, max_length=128)
    procedure_code: str = Field(index=True, max_length=32)
    procedure_version: int
    rule_set: str = Field(max_length=16)
    receiving_unit: str = Field(max_length=64)
    competent_agency: str = Field(index=True, max_length=64)
    level: str = Field(max_length=16)
    channel: str = Field(default="counter", max_length=16)
    applicant_name: str
    applicant_id_number: str | None = Field(default=None, index=True, max_length=32)
    applicant_phone: str | None = Field(default=None, max_length=32)
    applicant_email: str | None = Field(default=None, max_length=128)
    applicant_address: str | None = None
    request_summary: str | None = None
    components: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    step_units: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON))

    status: str = Field(index=True, max_length=48)
    current_step: str | None = Field(default=None, max_length=48)
    current_unit: str | None = Field(default=None, max_length=64)
    assignee: str | None = Field(default=None, index=True, max_length=64)
    paused_from: str | None = Field(default=None, max_length=48)

    submitted_at: datetime = _dt(nullable=False)
    received_at: datetime | None = _dt()
    count_start: datetime | None = _dt()
    due_at: datetime | None = _dt(index=True)
    appointment_at: datetime | None = _dt()
    step_entered_at: datetime | None = _dt()
    step_due_at: datetime | None = _dt()
    paused_at: datetime | None = _dt()
    remaining_minutes: int | None = None
    step_remaining_minutes: int | None = None
    supplement_count: int = 0
    apology_at: datetime | None = _dt()
    apology_reason: str | None = None
    apology_late: bool | None = None
    decision: str | None = Field(default=None, max_length=16)
    decision_ref: str | None = None
    result_ready_at: datetime | None = _dt(index=True)
    timeliness: str | None = Field(default=None, max_length=16)
    returned_at: datetime | None = _dt()
    refused_at: datetime | None = _dt()
    withdrawn_at: datetime | None = _dt()
    version: int = Field(default=1, sa_column=_dossier_version)


class DossierEvent(SQLModel, table=True):
    """One transition; the rows of a dossier are its process control slip (Form 05)."""

    __tablename__ = "dossier_event"
    __table_args__ = (UniqueConstraint("dossier_id", "seq"),)

    id: int | None = Field(default=None, primary_key=True)
    dossier_id: int = Field(foreign_key="dossier.id", index=True)
    seq: int
    event: str = Field(max_length=32)
    from_state: str = Field(max_length=48)
    to_state: str = Field(max_length=48)
    at: datetime = _dt(nullable=False)
    actor_username: str = Field(max_length=64)
    actor_role: str = Field(max_length=16)
    actor_unit: str = Field(max_length=64)
    from_unit: str | None = Field(default=None, max_length=64)
    to_unit: str | None = Field(default=None, max_length=64)
    step_id: str | None = Field(default=None, max_length=48)
    step_entered_at: datetime | None = _dt()
    step_due_at: datetime | None = _dt()
    step_timeliness: str | None = Field(default=None, max_length=16)
    reason: str | None = None
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))


class Outbox(SQLModel, table=True):
    """A side effect to deliver after commit (handoff, notification, portal sync)."""

    __table_args__ = (Index("ix_outbox_status_available", "status", "available_at"),)

    id: int | None = Field(default=None, primary_key=True)
    dossier_id: int | None = Field(default=None, foreign_key="dossier.id", index=True)
    kind: str = Field(max_length=32)
    target: str | None = Field(default=None, max_length=128)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    status: str = Field(default="pending", max_length=16)
    attempts: int = 0
    created_at: datetime = _dt(nullable=False)
    available_at: datetime = _dt(nullable=False)
    delivered_at: datetime | None = _dt()
    last_error: str | None = None
    # added by migration 0002_workflows: the worker holding the row and until when
    claimed_by: str | None = Field(default=None, max_length=96)
    lease_until: datetime | None = _dt()


class DossierSequence(SQLModel, table=True):
    """Last dossier number per receiving unit and day: codes are gap-free."""

    __tablename__ = "dossier_sequence"

    unit_code: str = Field(primary_key=True, max_length=64)
    day: date = Field(primary_key=True)
    last: int = 0


__all__ = [
    "TZ",
    "AwareDateTime",
    "Dossier",
    "DossierEvent",
    "DossierSequence",
    "Outbox",
    "ProcedureVersionRow",
    "Unit",
    "User",
]


Row = TypeVar("Row", bound=SQLModel)


def new_row(model: type[Row], **values: Any) -> Row:
    """``model(**values)`` for a table model: a new (transient) row with the fields' defaults,
    its values written into the instance's ``__dict__`` as the ORM fills a row it loads.
    SQLModel's constructor sets each field through the ORM's instrumentation: ~75 µs for an
    event row, 3-5 % of a lifecycle event's CPU with its outbox rows. No validation (table
    models get none from their constructor either); an unknown or missing field is an error."""
    fields = _field_defaults(model)
    unknown = values.keys() - fields.keys()
    if unknown:
        raise TypeError(f"{model.__name__} has no field {sorted(unknown)}")
    row: Row = manager_of_class(model).new_instance()
    data = row.__dict__
    for name, (default, factory) in fields.items():
        if name in values:
            data[name] = values[name]
        elif factory is not None:
            data[name] = factory()
        elif default is _REQUIRED:
            raise TypeError(f"{model.__name__}: {name} is required")
        else:
            data[name] = default
    object.__setattr__(row, "__pydantic_fields_set__", set(values))
    return row


_REQUIRED = object()


@functools.cache
def _field_defaults(model: type[SQLModel]) -> dict[str, tuple[Any, Callable[[], Any] | None]]:
    """Field → (default, or ``_REQUIRED``; default factory)."""
    return {
        name: (
            _REQUIRED if field.is_required() else field.default,
            field.default_factory,  # type: ignore[misc]
        )
        for name, field in model.model_fields.items()
    }


def column_values(row: SQLModel) -> Mapping[str, Any]:
    """A table row's values by field: its ``__dict__`` once every field is loaded (read one by
    one through the ORM's instrumentation they cost ~0.3 µs each; a worklist page reads a
    thousand, a transition each column twice), else each attribute read (one not loaded yet).
    Read-only: a change goes through the attribute, as always."""
    values = row.__dict__
    names = _field_names(type(row))
    if values.keys() >= names:
        return values
    return {name: getattr(row, name) for name in names}


@functools.cache
def _field_names(model: type[SQLModel]) -> frozenset[str]:
    return frozenset(model.model_fields)
