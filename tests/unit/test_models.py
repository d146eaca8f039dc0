"""storage.models.new_row: the same row as the table model's constructor, without its cost."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlmodel import Session, SQLModel, select

from storage.models import Dossier, DossierEvent, Outbox, column_values, new_row

NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
EVENT = {
    "dossier_id": 1,
    "seq": 0,
    "event": "forward",
    "from_state": "intake",
    "to_state": "appraisal",
    "at": NOW,
    "actor_username": "motcua1",
    "actor_role": "counter",
    "actor_unit": "000.00.01.H37",
    "reason": None,
}
OUTBOX = {"dossier_id": 1, "kind": "handoff", "target": "x", "created_at": NOW, "available_at": NOW}


@pytest.mark.parametrize(("model", "values"), [(DossierEvent, EVENT), (Outbox, OUTBOX)])
def test_new_row_is_the_constructors_row(model: type[SQLModel], values: dict[str, object]) -> None:
    built, fast = model(**values), new_row(model, **values)
    assert fast.model_dump() == built.model_dump()
    assert fast.model_fields_set == built.model_fields_set
    assert fast.__dict__.keys() == built.__dict__.keys()
    # default factories give each row its own value
    assert new_row(model, **values).model_dump() == fast.model_dump()
    if model is Outbox:
        assert isinstance(fast, Outbox) and fast.payload == {} and fast.status == "pending"
        assert fast.payload is not new_row(Outbox, **OUTBOX).payload


def test_new_row_refuses_unknown_and_missing_fields() -> None:
    with pytest.raises(TypeError, match="no field"):
        new_row(Outbox, **OUTBOX, colour="red")
    with pytest.raises(TypeError, match="kind is required"):
        new_row(Outbox, dossier_id=1, created_at=NOW, available_at=NOW)


def test_the_orm_writes_a_new_row_and_a_later_change_to_it() -> None:
    engine = create_engine("sqlite://")
    SQLModel.metadata.create_all(engine, tables=[Outbox.__table__])  # type: ignore[attr-defined]
    with Session(engine) as session:
        row = new_row(Outbox, **{**OUTBOX, "dossier_id": None})
        row.attempts = 2
        session.add(row)
        session.commit()
        stored = session.exec(select(Outbox)).one()
        assert (stored.kind, stored.target, stored.status, stored.attempts) == (
            "handoff",
            "x",
            "pending",
            2,
        )


def test_a_new_dossier_row_has_the_constructors_defaults() -> None:
    values: dict[str, Any] = {
        "code": "000.00.01.H37-261207-0001",
        "procedure_code": "1.004873",
        "procedure_version": 1,
        "rule_set": "nd61",
        "receiving_unit": "000.00.01.H37",
        "competent_agency": "000.00.01.H37",
        "level": "commune",
        "channel": "counter",
        "applicant_name": "Nguyễn Thị Bích",
        "components": [{"id": "request_form"}],
        "step_units": {},
        "status": "submitted",
        "submitted_at": NOW,
    }
    assert values.keys() <= Dossier.model_fields.keys()
    assert new_row(Dossier, **values).model_dump() == Dossier(**values).model_dump()


def test_column_values_are_the_loaded_dict_or_each_attribute() -> None:
    row = new_row(Outbox, **OUTBOX)
    assert column_values(row) is row.__dict__  # every field loaded: no attribute read
    del row.__dict__["target"]  # as an expired attribute
    values = column_values(row)
    assert values is not row.__dict__
    assert values["target"] is None and values["kind"] == "handoff"
    assert set(values) == set(Outbox.model_fields)
