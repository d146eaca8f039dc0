"""Unit of work: one transaction per use case, committed once or not at all.

A caller may run use cases inside a transaction of its own (``joined``): their units of work
then share its session, ``commit`` only flushes, and everything commits or rolls back with the
caller's transaction — an ``Idempotency-Key``'s stored answer commits with the dossier it
describes (services.idempotency), never one without the other.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import TracebackType
from typing import Any

from sqlalchemy import Engine, bindparam
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import Session, select
from sqlmodel.sql.expression import SelectOfScalar

from services.errors import DossierNotFound, StaleDossier
from storage.db import autocommit_twin
from storage.models import Dossier
from storage.transitions import load_dossier, load_dossiers

_JOINED: ContextVar[Session | None] = ContextVar("motcua_joined_session", default=None)


@contextmanager
def joined(session: Session) -> Iterator[None]:
    """Units of work opened in this block (same thread or task) on ``session``'s engine join
    ``session``'s transaction instead of opening their own: their ``commit`` flushes, their
    end neither rolls back nor detaches. The caller commits or rolls back once; before that it
    should ``expunge_all`` — ORM changes never flushed are then dropped, as a unit of work that
    did not commit drops them (SQL a joined unit of work ran without committing is not: the
    use cases run this way commit or raise)."""
    token = _JOINED.set(session)
    try:
        yield
    finally:
        _JOINED.reset(token)


# built once (a statement built per call cost a tenth of the read, measured)
_BY_CODE = select(Dossier).where(Dossier.code == bindparam("code"))


class UnitOfWork:
    """``with uow: ...; uow.commit()`` — anything not committed is rolled back on exit.

    ``read_only``: on PostgreSQL the statements run without a transaction around them (no
    ``BEGIN`` and ``ROLLBACK`` round trips: a fifth of a worklist read's CPU, measured by
    benchmarks.transitions); each statement still sees one consistent snapshot. Nothing is
    flushed by itself and ``commit`` refuses.

    ``one_statement``: the use case reads, then writes with a single statement (a lifecycle
    event on PostgreSQL: storage.transitions, whose ``UPDATE … WHERE version = <read>`` checks
    that nothing changed since the read). On PostgreSQL that statement is its own transaction,
    all or nothing, and the reads run as with ``read_only``: no ``BEGIN`` and ``COMMIT`` round
    trips. ``commit`` then only checks that no ORM change was left unwritten (it would be lost);
    nothing is flushed by itself. Elsewhere (SQLite) it is an ordinary unit of work. Isolation
    is the same as a READ COMMITTED transaction's: its reads take no locks either."""

    def __init__(
        self, engine: Engine, *, read_only: bool = False, one_statement: bool = False
    ) -> None:
        self.engine = engine
        self.read_only = read_only
        # on PostgreSQL, with an engine of its own (not a caller's connection and transaction)
        self._autocommit = isinstance(engine, Engine) and engine.dialect.name == "postgresql"
        self.one_statement = one_statement and self._autocommit
        self._session: Session | None = None
        self._locked: tuple[str, int] | None = None  # code and version read
        self._joined = False  # in a caller's transaction (``joined``)

    @property
    def session(self) -> Session:
        if self._session is None:
            raise RuntimeError("UnitOfWork used outside its 'with' block")
        return self._session

    def __enter__(self) -> UnitOfWork:
        outer = _JOINED.get()
        if outer is not None and outer.get_bind() is self.engine:
            self._session, self._joined = outer, True
        elif self.read_only or self.one_statement:
            bind = autocommit_twin(self.engine) if self._autocommit else self.engine
            self._session = Session(bind, autoflush=False, expire_on_commit=False)
        else:
            self._session = Session(self.engine, expire_on_commit=False)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._session is not None
        locked, session, joined_ = self._locked, self._session, self._joined
        self._session, self._locked, self._joined = None, None, False
        if not joined_:  # joined: the caller's transaction commits or rolls back
            # detaches the rows first (they stay readable after the block), then ends the
            # transaction (rolled back when not committed) and gives the connection back
            session.close()
        if isinstance(exc, StaleDataError):  # a flush found the row changed under us
            raise StaleDossier(*(locked or ("?", 0))) from None

    def commit(self) -> None:
        """Commit; joined to a caller's transaction, write (flush) and let the caller commit."""
        if self.read_only:
            raise RuntimeError("a read-only unit of work does not commit")
        if self._joined:
            self.session.flush()
        elif self.one_statement:
            session = self.session
            if session.new or session.dirty or session.deleted:
                raise RuntimeError("a one-statement unit of work has ORM changes not written")
        else:
            self.session.commit()

    def get_dossier(self, code: str, *, version: int | None = None) -> Dossier:
        """The dossier row; with ``version``, refuse a stale one (optimistic locking)."""
        dossier = self.session.exec(_BY_CODE, params={"code": code}).first()
        return self._checked(code, dossier, version)

    def read_dossier(self, code: str, *, version: int | None = None) -> Dossier:
        """The dossier row, detached: ``commit`` does not write a change to it (a lifecycle
        event writes its own: storage.transitions). On PostgreSQL read without the ORM
        (``load_dossier``: a third of the CPU)."""
        if self.session.get_bind().dialect.name == "postgresql":
            return self._checked(code, load_dossier(self.session, code), version)
        dossier = self.get_dossier(code, version=version)
        self.session.expunge(dossier)
        return dossier

    def read_dossiers(
        self, statement: SelectOfScalar[Dossier], params: dict[str, Any]
    ) -> list[Dossier]:
        """The dossiers ``statement`` (a ``select(Dossier)``, its ``bindparam`` values in
        ``params``) finds, detached; on PostgreSQL read without the ORM (``load_dossiers``)."""
        if self.session.get_bind().dialect.name == "postgresql":
            return load_dossiers(self.session, statement, params)
        rows = list(self.session.exec(statement, params=params).all())
        for row in rows:
            self.session.expunge(row)
        return rows

    def _checked(self, code: str, dossier: Dossier | None, version: int | None) -> Dossier:
        if dossier is None:
            raise DossierNotFound(code)
        if version is not None and dossier.version != version:
            raise StaleDossier(code, version, dossier.version)
        self._locked = (dossier.code, dossier.version)
        return dossier
