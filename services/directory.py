"""Units, officers and procedure versions in the database, mirrored from the catalog."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from sqlmodel import Session, select

from services.catalog import Catalog
from services.context import Context
from services.errors import InvalidInput, UnknownUser
from states.lifecycle import Actor
from storage.models import ProcedureVersionRow, Unit, User

ROLES = ("counter", "specialist", "leader", "supervisor", "digitizer", "admin")
_hasher = PasswordHasher()


def sync_catalog(ctx: Context) -> None:
    """Insert units and procedure versions that the database does not have yet.

    A procedure version once stored is never rewritten: dossiers refer to it."""
    catalog: Catalog = ctx.catalog
    with ctx.uow() as uow:
        session = uow.session
        known_units = set(session.exec(select(Unit.code)).all())
        # parents first so that a tree always resolves
        for unit in sorted(catalog.units.values(), key=lambda u: u.code.count(".") and 0):
            if unit.code not in known_units:
                session.add(
                    Unit(
                        code=unit.code,
                        name=unit.name,
                        kind=unit.kind,
                        level=unit.level,
                        parent_code=unit.parent,
                        valid_from=unit.valid_from,
                        valid_to=unit.valid_to,
                    )
                )
        known_versions = set(
            session.exec(select(ProcedureVersionRow.code, ProcedureVersionRow.version)).all()
        )
        for procedure in catalog.procedures.values():
            for version in procedure.versions:
                if (procedure.code, version.version) in known_versions:
                    continue
                session.add(
                    ProcedureVersionRow(
                        code=procedure.code,
                        version=version.version,
                        name=procedure.name,
                        field=procedure.field,
                        level=version.level,
                        time_limit=version.time_limit,
                        effective_from=version.effective_from,
                        effective_to=version.effective_to,
                        inter_agency=version.inter_agency,
                        definition=version.model_dump(mode="json"),
                    )
                )
        uow.commit()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except VerificationError:
        return False


def create_officer(
    ctx: Context,
    username: str,
    full_name: str,
    role: str,
    unit_code: str,
    password: str | None = None,
    *,
    password_hash: str | None = None,
) -> User:
    if role not in ROLES:
        raise InvalidInput(f"Vai trò không hợp lệ: {role}", f"Unknown role: {role}")
    ctx.catalog.unit(unit_code)
    with ctx.uow() as uow:
        existing = uow.session.exec(select(User).where(User.username == username)).first()
        if existing is not None:
            return existing
        user = User(
            username=username,
            full_name=full_name,
            role=role,
            unit_code=unit_code,
            password_hash=password_hash or (hash_password(password) if password else None),
        )
        uow.session.add(user)
        uow.commit()
    return user


def actor_of(session: Session, username: str) -> Actor:
    user = session.exec(select(User).where(User.username == username)).first()
    if user is None or not user.active:
        raise UnknownUser(username)
    return Actor(username=user.username, role=user.role, unit_code=user.unit_code)
