"""Unit of work: one transaction per use case, committed once or not at all."""

from __future__ import annotations

from types import TracebackType

from sqlalchemy import Engine
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import Session, select

from services.errors import DossierNotFound, StaleDossier
from storage.models import Dossier


class UnitOfWork:
    """``with uow: ...; uow.commit()`` — anything not committed is rolled back on exit."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._session: Session | None = None
        self._locked: tuple[str, int] | None = None  # code and version read

    @property
    def session(self) -> Session:
        if self._session is None:
            raise RuntimeError("UnitOfWork used outside its 'with' block")
        return self._session

    def __enter__(self) -> UnitOfWork:
        self._session = Session(self.engine, expire_on_commit=False)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._session is not None
        locked = self._locked
        try:
            # detach first so that rows read here stay readable after the block
            self._session.expunge_all()
            self._session.rollback()
        finally:
            self._session.close()
            self._session = None
            self._locked = None
        if isinstance(exc, StaleDataError):  # a flush found the row changed under us
            raise StaleDossier(*(locked or ("?", 0))) from None

    def commit(self) -> None:
        self.session.commit()

    def get_dossier(self, code: str, *, version: int | None = None) -> Dossier:
        """The dossier row; with ``version``, refuse a stale one (optimistic locking)."""
        dossier = self.session.exec(select(Dossier).where(Dossier.code == code)).first()
        if dossier is None:
            raise DossierNotFound(code)
        if version is not None and dossier.version != version:
            raise StaleDossier(code, version, dossier.version)
        self._locked = (dossier.code, dossier.version)
        return dossier
