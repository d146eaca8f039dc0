"""One transition's writes in SQL, not through the ORM's unit of work.

A lifecycle event changes a few columns of one dossier, adds one event row (the process control
slip) and a few outbox rows. The ORM's flush of that (change tracking, dependency sort, one
``RETURNING`` per row) cost about a sixth of a transition's CPU (benchmarks.transitions); here
it is three statements: the dossier's ``UPDATE … WHERE version = <read>`` (the optimistic lock
that ``Dossier``'s ``version_id_col`` gives ORM writes), the event's ``INSERT`` with its
sequence number counted in the same statement, and one ``INSERT`` of the outbox rows.

On PostgreSQL the three are one statement of data-modifying CTEs (``WITH d AS (UPDATE …),
e AS (INSERT … FROM d), o AS (INSERT … FROM d) SELECT count(*), max(assignee) FROM d``), with
the lookup of the assignee at the step entered as a subquery of the UPDATE: one round trip
instead of four, and the inserts take no row when the UPDATE found the dossier changed. The
event and the outbox rows travel as one JSON parameter each (``json_populate_record(set)``), so
the statement's text depends only on the dossier's columns changed (built once per set, values
bound at execution) and has few parameters (psycopg caches the parsing of a statement with at
most 50).

On PostgreSQL that statement, and the read of the dossier before it (``load_dossier``), run on
the session's connection through the driver (psycopg, prepared), each value through its column
type's own conversion: SQLAlchemy's work around an execution (and the ORM's load) was a large
share of a transition's CPU, measured with callgrind. SQLite keeps the SQLAlchemy statements.

The dossier is detached from the session first (``detach``), so that the commit does not
flush it a second time.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
from collections.abc import Callable, Iterator
from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, bindparam, func, insert, inspect, select, text, update
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.base import instance_state
from sqlalchemy.orm.instrumentation import manager_of_class
from sqlalchemy.sql.dml import UpdateBase
from sqlmodel import Session, SQLModel

from storage.models import Dossier, DossierEvent, Outbox, column_values

_DOSSIER = Dossier.__table__  # type: ignore[attr-defined]
_EVENT = DossierEvent.__table__  # type: ignore[attr-defined]
_OUTBOX = Outbox.__table__  # type: ignore[attr-defined]


def _columns(model: type[SQLModel]) -> tuple[tuple[str, str], ...]:
    """(attribute, column name) of every mapped column."""
    return tuple((a.key, a.columns[0].name) for a in inspect(model).column_attrs)


_DOSSIER_COLUMNS = _columns(Dossier)
_DOSSIER_KEYS = tuple(key for key, _ in _DOSSIER_COLUMNS)
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
_INSERT_DOSSIER = insert(_DOSSIER).returning(_DOSSIER.c.id)
_NEW_DOSSIER_COLUMNS = tuple(c for c in _DOSSIER_COLUMNS if c[1] != "id")


def _quoted(columns: tuple[tuple[str, str], ...], prefix: str = "") -> str:
    return ", ".join(f'{prefix}"{name}"' for _, name in columns)


# the assignee is per step: back at a step, the one last assigned there has it again
_LAST_ASSIGNEE_SQL = """(SELECT a.assignee FROM assignment AS a
    WHERE a.dossier_id = {_id} AND a.step_id = {_assignee_at} ORDER BY a.id DESC LIMIT 1)"""
_LAST_ASSIGNEE = text(
    "SELECT " + _LAST_ASSIGNEE_SQL.format(_id=":_id", _assignee_at=":_assignee_at")
)


@functools.lru_cache(maxsize=256)
def _one_statement(changed: tuple[str, ...], assignee_lookup: bool) -> str:
    """PostgreSQL: the dossier's UPDATE, the event's and the outbox rows' INSERTs as one
    statement, in psycopg's ``%(name)s`` style (it runs on the driver's connection); parameters
    ``d_<column>`` (the dossier's changed columns and ``version``), ``_id``,
    ``_read_version``, ``event`` (a JSON object), ``outbox`` (a JSON array) and, with
    ``assignee_lookup``, ``_assignee_at`` (the step whose last assignee the dossier gets).
    Returns the number of dossiers updated (1, or 0 when stale) and the assignee."""
    sets = ", ".join(f'"{c}" = %(d_{c})s' for c in (*changed, "version"))
    if assignee_lookup:
        lookup = _LAST_ASSIGNEE_SQL.format(_id="%(_id)s", _assignee_at="%(_assignee_at)s")
        sets += f", assignee = {lookup}"
    event_columns = _quoted(_EVENT_COLUMNS)
    outbox_columns = _quoted(_OUTBOX_COLUMNS)
    return f"""WITH d AS (
  UPDATE dossier SET {sets} WHERE id = %(_id)s AND version = %(_read_version)s
  RETURNING id, assignee
), e AS (
  INSERT INTO dossier_event ({event_columns}, seq)
  SELECT {_quoted(_EVENT_COLUMNS, "r.")},
         (SELECT count(*) + 1 FROM dossier_event WHERE dossier_id = d.id)
  FROM d, json_populate_record(NULL::dossier_event, CAST(%(event)s AS json)) AS r
), o AS (
  INSERT INTO outbox ({outbox_columns})
  SELECT {_quoted(_OUTBOX_COLUMNS, "r.")}
  FROM d, json_populate_recordset(NULL::outbox, CAST(%(outbox)s AS json)) AS r
)
SELECT count(*), max(assignee) FROM d"""


@functools.cache
def _bind_processors(dialect: Dialect) -> dict[str, Callable[[Any], Any] | None]:
    """Column name → the column type's conversion of a value written (aware datetimes, JSON),
    or None: what SQLAlchemy would apply, for a statement run on the driver's connection."""
    return {c.name: c.type._cached_bind_processor(dialect) for c in _DOSSIER.columns}


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"not JSON: {type(value).__name__}")


def _values(row: Any, columns: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """``row``'s values by column name."""
    return {column: getattr(row, key) for key, column in columns}


_LOAD_DOSSIER = f"SELECT {_quoted(_DOSSIER_COLUMNS)} FROM dossier WHERE code = %s"
_DOSSIER_CLASS = manager_of_class(Dossier)
_DOSSIER_MAPPER = inspect(Dossier)


@functools.cache
def _result_processors(dialect: Dialect) -> tuple[tuple[str, Callable[[Any], Any] | None], ...]:
    """(attribute, the column type's conversion of a value read, or None), per column."""
    return tuple(
        (key, _DOSSIER.c[column].type._cached_result_processor(dialect, None))
        for key, column in _DOSSIER_COLUMNS
    )


@contextlib.contextmanager
def _driver(session: Session) -> Iterator[tuple[Connection, Any]]:
    """The session's connection and its driver (psycopg) connection, for a statement sent
    straight to the driver. A driver error comes out as SQLAlchemy would raise it (its
    ``DBAPIError`` subclass: a lost server is an ``OperationalError``, which the API answers
    with 503), and a connection found dead is invalidated, so the pool opens a new one."""
    connection = session.connection()
    driver = connection.connection.driver_connection
    dialect = connection.dialect
    try:
        yield connection, driver
    except dialect.loaded_dbapi.Error as error:
        lost = dialect.is_disconnect(error, connection.connection.dbapi_connection, None)
        if lost:
            connection.invalidate(error)
        raise DBAPIError.instance(
            None,
            None,
            error,
            dialect.loaded_dbapi.Error,
            connection_invalidated=lost,
            dialect=dialect,
        ) from error


def load_dossier(session: Session, code: str) -> Dossier | None:
    """PostgreSQL: the dossier with ``code``, detached (not held by the session: a change to it
    is not written by the commit), read with one plain statement on the session's connection.

    The ORM's load of the same row, and the session work around it, cost about three times the
    CPU (610 µs against 205 µs, measured); a lifecycle event reads its dossier this way and
    writes it itself (``save_transition``). The instance is built as the ORM builds a loaded
    one (``__dict__`` filled, each value through its column type's conversion: aware datetimes
    in Asia/Ho_Chi_Minh)."""
    with _driver(session) as (connection, driver):
        row = driver.execute(_LOAD_DOSSIER, (code,), prepare=True).fetchone()
    return None if row is None else _detached(connection.dialect, row)


def load_dossiers(
    session: Session, statement: Select[Any], params: dict[str, Any]
) -> list[Dossier]:
    """PostgreSQL: the dossiers ``statement`` (a ``select(Dossier)`` with ``bindparam``s named
    in ``params``) finds, detached, read on the driver as ``load_dossier`` reads one. The
    statement is compiled once (keep it: built once per shape, as ``services.worklist`` does)
    and its values are bound at each read. The ORM's load of a worklist's 20 rows was a fifth
    of the read's CPU."""
    with _driver(session) as (connection, driver):
        sql, values = _for_driver(statement, connection.dialect, params, dossier_columns=True)
        rows = driver.execute(sql, values, prepare=True).fetchall()
    return [_detached(connection.dialect, row) for row in rows]


def _for_driver(
    statement: Select[Any] | UpdateBase,
    dialect: Dialect,
    params: dict[str, Any],
    *,
    dossier_columns: bool = False,
) -> tuple[str, dict[str, Any]]:
    """``statement`` in psycopg's ``%(name)s`` style and its values: ``params`` through their
    column types' conversions (JSON, aware datetimes) and the values the statement holds
    itself. With ``dossier_columns``, a select of the dossier's columns in
    ``_DOSSIER_COLUMNS``' order."""
    sql, constants, processors = _compiled(statement, dialect, frozenset(params), dossier_columns)
    values = dict(constants)
    for name, value in params.items():
        convert = processors.get(name)
        values[name] = value if convert is None else convert(value)
    return sql, values


@functools.lru_cache(maxsize=1024)
def _compiled(
    statement: Select[Any] | UpdateBase,
    dialect: Dialect,
    names: frozenset[str],
    dossier_columns: bool,
) -> tuple[str, dict[str, Any], dict[str, Callable[[Any], Any]]]:
    """Compiled once per statement and set of parameters: the text (lists of ``IN``
    expanded), the values the statement holds itself, the conversions of its parameters."""
    if dossier_columns:
        assert isinstance(statement, Select)
        columns = [_DOSSIER.c[column] for _, column in _DOSSIER_COLUMNS]
        compiled = statement.with_only_columns(*columns).compile(dialect=dialect)
    else:
        compiled = statement.compile(dialect=dialect, column_keys=sorted(names))
    if compiled.insert_prefetch or compiled.update_prefetch:
        # a column default computed by SQLAlchemy at execution: not done on the driver
        raise ValueError(f"give every column a value: {compiled.insert_prefetch}")
    given = {name: None for name, bind in compiled.binds.items() if name in names or bind.required}
    expanded = compiled.construct_expanded_state(given)
    constants = {k: v for k, v in expanded.parameters.items() if k not in given}
    processors: dict[str, Callable[[Any], Any]] = {
        k: p for k, p in compiled._bind_processors.items() if callable(p)
    }
    return expanded.statement, constants, processors


def _detached(dialect: Dialect, row: Any) -> Dossier:
    dossier: Dossier = _DOSSIER_CLASS.new_instance()
    values = dossier.__dict__
    for (key, convert), value in zip(_result_processors(dialect), row, strict=True):
        values[key] = value if convert is None else convert(value)
    # its identity, as ``make_transient_to_detached`` sets it, without that function's
    # bookkeeping (nothing to expire or forget here): it cost as much as the rest
    instance_state(dossier).key = _DOSSIER_MAPPER.identity_key_from_primary_key((dossier.id,))
    return dossier


def execute(session: Session, statement: UpdateBase, params: dict[str, Any]) -> list[Any]:
    """The rows (tuples) of a Core ``statement`` built once (a module constant) with
    ``params`` for its ``bindparam``s or columns. On PostgreSQL sent through the driver in the
    session's transaction: compiled once per statement and set of parameters, each value
    through its column type's conversion (JSON, aware datetimes), the values it holds itself
    (``.values(state="done")``) added; the rows as the driver gives them (fit for scalars:
    ids, counters). SQLAlchemy's work around one execution cost more than the statement: a
    keyed receipt sends four. Elsewhere ``session.execute``."""
    dialect = session.get_bind().dialect
    if dialect.name != "postgresql":
        result = session.connection().execute(statement, params)
        return [tuple(row) for row in result] if result.returns_rows else []
    sql, values = _for_driver(statement, dialect, params)
    with _driver(session) as (_, driver):
        cursor = driver.execute(sql, values, prepare=True)
        return cursor.fetchall() if cursor.description is not None else []


def insert_dossier(session: Session, dossier: Dossier) -> None:
    """Write a new dossier (one ``INSERT … RETURNING id``) and set its ``id``; the instance is
    then as one read and detached. The ORM's flush of the same (change tracking, the unit of
    work's sort) cost more: 2.4 % of the instructions of a transition of the mix (callgrind)."""
    values = _values(dossier, _NEW_DOSSIER_COLUMNS)
    ((dossier.id,),) = execute(session, _INSERT_DOSSIER, values)
    make_transient_to_detached(dossier)


def detach(session: Session, dossier: Dossier) -> dict[str, Any]:
    """Take ``dossier`` out of the session and return its column values as read (the
    ``before`` of ``save_transition``); JSON values are copied, so that a change in place
    shows."""
    if dossier in session:
        session.expunge(dossier)
    values = column_values(dossier)
    return {
        key: copy.deepcopy(value) if isinstance(value, dict | list) else value
        for key, value in ((key, values[key]) for key in _DOSSIER_KEYS)
    }


def save_transition(
    session: Session,
    dossier: Dossier,
    before: dict[str, Any],
    event: DossierEvent,
    outbox: list[Outbox],
    *,
    assignee_at: str | None = None,
) -> bool:
    """Write the dossier's changed columns, the event with the next ``seq``, the outbox rows;
    False, with nothing written, if another transaction changed the dossier since ``before``
    (the caller refuses: stale). Sets ``dossier.version``; with ``assignee_at`` (a step the
    dossier enters), sets ``dossier.assignee`` to the one last assigned at that step, looked
    up in the same statement on PostgreSQL."""
    version = before["version"]
    now = column_values(dossier)
    changed = {
        column: now[key]
        for key, column in _DOSSIER_COLUMNS
        if key != "version" and now[key] != before[key]
    }
    if assignee_at is not None:
        changed.pop("assignee", None)
    dialect = session.get_bind().dialect
    if dialect.name == "postgresql":
        # on the driver's connection, with the columns' own conversions: SQLAlchemy's work
        # around one execution was a third of this function's CPU (benchmarks.transitions)
        convert = _bind_processors(dialect)
        params: dict[str, Any] = {}
        for column, value in changed.items():
            process = convert[column]
            params[f"d_{column}"] = value if process is None else process(value)
        params.update(
            d_version=version + 1,
            _id=dossier.id,
            _read_version=version,
            _assignee_at=assignee_at,
            event=json.dumps(_values(event, _EVENT_COLUMNS), default=_json_value),
            outbox=json.dumps([_values(o, _OUTBOX_COLUMNS) for o in outbox], default=_json_value),
        )
        statement = _one_statement(tuple(changed), assignee_at is not None)
        with _driver(session) as (_, driver):
            found = driver.execute(statement, params, prepare=True).fetchone()
        assert found is not None
        moved, assignee = found
        if moved != 1:
            return False
        dossier.version = version + 1
        if assignee_at is not None:
            dossier.assignee = assignee
        return True
    if assignee_at is not None:
        params = {"_id": dossier.id, "_assignee_at": assignee_at}
        dossier.assignee = changed["assignee"] = session.execute(_LAST_ASSIGNEE, params).scalar()
    result = session.execute(
        _UPDATE_DOSSIER,
        {**changed, "version": version + 1, "_id": dossier.id, "_read_version": version},
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    dossier.version = version + 1
    session.execute(_INSERT_EVENT, {**_values(event, _EVENT_COLUMNS), "_of": dossier.id})
    if outbox:
        session.execute(_INSERT_OUTBOX, [_values(o, _OUTBOX_COLUMNS) for o in outbox])
    return True
