"""One transition's writes in SQL, not through the ORM's unit of work.

A lifecycle event changes a few columns of one dossier, adds one event row (the process control
slip) and a few outbox rows. The ORM's flush of that (change tracking, dependency sort, one
``RETURNING`` per row) cost about a sixth of a transition's CPU (benchmarks.transitions); here
it is three statements: the dossier's ``UPDATE … WHERE version = <read>`` (the optimistic lock
that ``Dossier``'s ``version_id_col`` gives ORM writes), the event's ``INSERT`` with its
sequence number counted in the same statement, and one ``INSERT`` of the outbox rows.

The dossier is detached from the session first (``detach``), so that the commit does not
flush it a second time.
"""

from __future__ import annotations

import copy
from typing import Any

from sqlalchemy import bindparam, func, insert, inspect, select, update
from sqlmodel import Session, SQLModel

from storage.models import Dossier, DossierEvent, Outbox

_DOSSIER = Dossier.__table__  # type: ignore[attr-defined]
_EVENT = DossierEvent.__table__  # type: ignore[attr-defined]
_OUTBOX = Outbox.__table__  # type: ignore[attr-defined]


def _columns(model: type[SQLModel]) -> tuple[tuple[str, str], ...]:
    """(attribute, column name) of every mapped column."""
    return tuple((a.key, a.columns[0].name) for a in inspect(model).column_attrs)


_DOSSIER_COLUMNS = _columns(Dossier)
_EVENT_COLUMNS = tuple(c for c in _columns(DossierEvent) if c[1] not in ("id", "seq"))
_OUTBOX_COLUMNS = tuple(c for c in _columns(Outbox) if c[1] != "id")
# Statements built once, values bound at execution: building one per call (``.values(**row)``)
# cost more than the ORM's flush. The SET clause is the parameters' columns.
_UPDATE_DOSSIER = update(_DOSSIER).where(
    _DOSSIER.c.id == bindparam("_id"), _DOSSIER.c.version == bindparam("_read_version")
)
# the dossier's row is locked by the UPDATE before: no other transaction adds an event to it
# before this one commits, so the count is the next number
_INSERT_EVENT = insert(_EVENT).values(
    seq=select(func.count() + 1)
    .select_from(_EVENT)
    .where(_EVENT.c.dossier_id == bindparam("_of"))
    .scalar_subquery()
)
_INSERT_OUTBOX = insert(_OUTBOX)


def detach(session: Session, dossier: Dossier) -> dict[str, Any]:
    """Take ``dossier`` out of the session and return its column values as read (the
    ``before`` of ``save_transition``); JSON values are copied, so that a change in place
    shows."""
    if dossier in session:
        session.expunge(dossier)
    return {
        key: copy.deepcopy(value) if isinstance(value, dict | list) else value
        for key, value in ((key, getattr(dossier, key)) for key, _ in _DOSSIER_COLUMNS)
    }


def save_transition(
    session: Session,
    dossier: Dossier,
    before: dict[str, Any],
    event: DossierEvent,
    outbox: list[Outbox],
) -> bool:
    """Write the dossier's changed columns, the event with the next ``seq``, the outbox rows;
    False, with nothing written, if another transaction changed the dossier since ``before``
    (the caller refuses: stale). Sets ``dossier.version``."""
    version = before["version"]
    changed = {
        column: getattr(dossier, key)
        for key, column in _DOSSIER_COLUMNS
        if key != "version" and getattr(dossier, key) != before[key]
    }
    result = session.execute(
        _UPDATE_DOSSIER,
        {**changed, "version": version + 1, "_id": dossier.id, "_read_version": version},
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    dossier.version = version + 1
    row = {column: getattr(event, key) for key, column in _EVENT_COLUMNS}
    session.execute(_INSERT_EVENT, {**row, "_of": dossier.id})
    if outbox:
        session.execute(
            _INSERT_OUTBOX,
            [{column: getattr(o, key) for key, column in _OUTBOX_COLUMNS} for o in outbox],
        )
    return True
