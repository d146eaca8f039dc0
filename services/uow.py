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
        self._locked: Dossier | None = None

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
        try:
            self._session.rollback()
        finally:
            self._session.close()
            self._session = None
            self._locked = None

    def commit(self) -> None:
        try:
            self.session.commit()
        except StaleDataError:
            self.session.rollback()
            dossier = self._locked
            raise StaleDossier(
                dossier.code if dossier else "?", dossier.version if dossier else 0
            ) from None

    def get_dossier(self, code: str, *, version: int | None = None) -> Dossier:
        """The dossier row; with ``version``, refuse a stale one (optimistic locking)."""
        dossier = self.session.exec(select(Dossier).where(Dossier.code == code)).first()
        if dossier is None:
            raise DossierNotFound(code)
        if version is not None and dossier.version != version:
            raise StaleDossier(code, version, dossier.version)
        self._locked = dossier
        return dossier
