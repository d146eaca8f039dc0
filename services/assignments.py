"""Phân công thụ lý: a unit leader assigns or reassigns dossiers to the unit's specialists, one
or many at once, and may delegate (ủy quyền) that power to a deputy for a period.

Rules, as built:
- a dossier is assignable while it sits at a step of its internal process (not awaiting the
  applicant's papers, not decided, not closed); the step's unit is ``step_units[current_step]``;
- the actor is a leader of that unit, or a deputy holding a delegation of one of its leaders in
  force at the working clock's "now" (``ctx.clock``), or an admin;
- the assignee is an active specialist of that unit;
- every assignment records who, on whose behalf, when, why, at which step, and the previous
  assignee (``kind`` ``assign`` / ``reassign``); ``Dossier.assignee`` holds the current one,
  and the row's version moves (optimistic locking: a stale ``expected`` version is refused);
- a batch is all or nothing: every dossier is checked first and any refusal refuses the whole
  batch with the list of (dossier, error); nothing is written;
- a delegation also lets the deputy send the leader's lifecycle events on that unit's dossiers
  during the period (``acting_actor``, used by ``services.dossiers.act``): the event row keeps
  the deputy's name with ``on_behalf_of`` the leader.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import Session, col, select

from services.access import PROVINCE_WIDE_ROLES, can_see, units_under
from services.context import Context
from services.errors import (
    DomainError,
    DossierNotFound,
    InvalidInput,
    OutsideYourAgency,
    StaleDossier,
    UnknownUser,
)
from states.lifecycle import ADMIN, Actor
from storage.models import Dossier, User
from storage.models_assignments import Assignment, Delegation

LEADER = "leader"
SPECIALIST = "specialist"
MAX_BATCH = 200
MAX_DELEGATION = timedelta(days=366)
DEPUTY_ROLES = frozenset({SPECIALIST, LEADER})


# --- errors ----------------------------------------------------------------------------------


class NotUnitLeader(DomainError):
    """The actor is neither a leader of the unit nor a deputy by a delegation in force."""

    code = "not_unit_leader"
    http_status: ClassVar[int] = 403

    def __init__(self, username: str, unit: str, dossier: str | None = None) -> None:
        super().__init__(
            f"{username} không phải lãnh đạo đơn vị {unit} (hoặc người được ủy quyền đang "
            "trong thời hạn) nên không được phân công",
            f"{username} is not a leader of unit {unit} (nor a deputy by a delegation in force) "
            "and may not assign",
            dossier=dossier,
            unit=unit,
        )


class AssigneeNotInUnit(DomainError):
    code = "assignee_not_in_unit"
    http_status: ClassVar[int] = 422

    def __init__(self, username: str, unit: str, dossier: str | None = None) -> None:
        super().__init__(
            f"{username} không phải chuyên viên của đơn vị {unit}",
            f"{username} is not a specialist of unit {unit}",
            dossier=dossier,
            unit=unit,
        )


class NotAssignable(DomainError):
    code = "not_assignable"
    http_status: ClassVar[int] = 409

    def __init__(self, dossier: str, state: str) -> None:
        super().__init__(
            f"Hồ sơ {dossier} đang ở trạng thái {state}, không ở một bước giải quyết nên không "
            "phân công được",
            f"Dossier {dossier} is {state}, not at a processing step, and cannot be assigned",
            dossier=dossier,
            state=state,
        )


class AlreadyAssigned(DomainError):
    code = "already_assigned"
    http_status: ClassVar[int] = 409

    def __init__(self, dossier: str, username: str) -> None:
        super().__init__(
            f"Hồ sơ {dossier} đã được giao cho {username}",
            f"Dossier {dossier} is already assigned to {username}",
            dossier=dossier,
        )


class AssignmentRefused(DomainError):
    """All or nothing: at least one dossier of the batch was refused; nothing was assigned."""

    code = "assignment_refused"
    http_status: ClassVar[int] = 409

    def __init__(self, failures: Sequence[tuple[str, DomainError]], total: int) -> None:
        self.failures = list(failures)
        listed = "; ".join(f"{code}: {error.message_vi}" for code, error in self.failures[:5])
        listed_en = "; ".join(f"{code}: {error.message_en}" for code, error in self.failures[:5])
        more = len(self.failures) - 5
        super().__init__(
            f"Không phân công được {len(self.failures)}/{total} hồ sơ nên không hồ sơ nào được "
            f"phân công: {listed}" + (f" (và {more} hồ sơ khác)" if more > 0 else ""),
            f"{len(self.failures)} of {total} dossiers cannot be assigned, so none was: "
            f"{listed_en}" + (f" (and {more} more)" if more > 0 else ""),
        )


class DelegationNotFound(DomainError):
    code = "delegation_not_found"
    http_status: ClassVar[int] = 404

    def __init__(self, delegation_id: int) -> None:
        super().__init__(f"Không có ủy quyền số {delegation_id}", f"No delegation {delegation_id}")


class DelegationRefused(DomainError):
    code = "delegation_refused"
    http_status: ClassVar[int] = 409


class NotYourDelegation(DomainError):
    code = "not_your_delegation"
    http_status: ClassVar[int] = 403


# --- results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Assigned:
    """One dossier of a batch after the commit."""

    code: str
    version: int
    assignment: Assignment


@dataclass(frozen=True)
class Power:
    """Why the actor may act as leader of ``unit``: own role, a delegation, or admin."""

    unit: str
    delegation: Delegation | None = None

    @property
    def on_behalf_of(self) -> str | None:
        return self.delegation.leader if self.delegation else None


# --- delegations ---------------------------------------------------------------------------------


def _text(value: str | None, what_vi: str, what_en: str, limit: int = 2000) -> str:
    text = (value or "").strip()
    if not text:
        raise InvalidInput(f"Cần ghi rõ {what_vi}", f"A {what_en} is required")
    if len(text) > limit:
        raise InvalidInput(
            f"{what_vi.capitalize()} dài quá {limit} ký tự", f"The {what_en} exceeds {limit} chars"
        )
    return text


def _user(session: Session, username: str) -> User | None:
    return session.exec(select(User).where(User.username == username)).first()


def _active_leaders(session: Session, units: set[str]) -> set[tuple[str, str]]:
    rows = session.exec(
        select(User.username, User.unit_code).where(
            User.role == LEADER, col(User.active).is_(True), col(User.unit_code).in_(units)
        )
    ).all()
    return {(u, unit) for u, unit in rows}


def delegations_in_force(session: Session, deputy: str, now: datetime) -> list[Delegation]:
    """The deputy's delegations in force at ``now`` whose leader still leads that unit."""
    rows = session.exec(
        select(Delegation).where(
            Delegation.deputy == deputy,
            col(Delegation.valid_from) <= now,
            col(Delegation.valid_to) > now,
        )
    ).all()
    rows = [d for d in rows if d.active_at(now)]
    if not rows:
        return []
    leaders = _active_leaders(session, {d.unit_code for d in rows})
    return [d for d in rows if (d.leader, d.unit_code) in leaders]


def power_over(session: Session, actor: Actor, unit: str, now: datetime) -> Power | None:
    """Whether ``actor`` may act as a leader of ``unit`` now, and by what right."""
    if actor.role == ADMIN or (actor.role == LEADER and actor.unit_code == unit):
        return Power(unit)
    for delegation in delegations_in_force(session, actor.username, now):
        if delegation.unit_code == unit:
            return Power(unit, delegation)
    return None


def leader_units(ctx: Context, actor: Actor) -> dict[str, Delegation | None]:
    """Units where ``actor`` may assign now: their own (leader) and those delegated to them."""
    now = ctx.clock.now()
    units: dict[str, Delegation | None] = {}
    with ctx.uow() as uow:
        for delegation in delegations_in_force(uow.session, actor.username, now):
            units.setdefault(delegation.unit_code, delegation)
    if actor.role in (LEADER, ADMIN):
        units[actor.unit_code] = None
    return units


def acting_actor(
    session: Session,
    actor: Actor,
    dossier: Dossier,
    event: str,
    leader_step: bool,
    now: datetime,
) -> tuple[Actor, Delegation | None]:
    """The actor a lifecycle event is checked against: a deputy with a delegation in force for
    the unit acts as its leader where the event needs a leader (a leader's step of the process,
    or the apology slip); anyone else is unchanged."""
    if actor.role in (LEADER, ADMIN) or not (leader_step or event == "extend"):
        return actor, None
    if leader_step:
        units = {dossier.step_units.get(dossier.status, "")}
    else:
        units = set(dossier.step_units.values())
    for delegation in delegations_in_force(session, actor.username, now):
        if delegation.unit_code in units:
            return Actor(actor.username, LEADER, delegation.unit_code), delegation
    return actor, None


def delegate(
    ctx: Context,
    leader: Actor,
    deputy: str,
    start: datetime,
    end: datetime,
    reason: str | None,
) -> Delegation:
    """Ủy quyền: ``leader`` lets ``deputy`` (an officer of the same unit) act as leader of the
    unit from ``start`` until ``end``."""
    now = ctx.clock.now()
    why = _text(reason, "lý do ủy quyền", "reason for the delegation")
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidInput("Thời hạn ủy quyền cần múi giờ", "The period needs a time zone")
    if end <= start:
        raise InvalidInput(
            "Thời điểm kết thúc phải sau thời điểm bắt đầu", "The end must be after the start"
        )
    if end <= now:
        raise InvalidInput("Thời hạn ủy quyền đã qua", "The period is already over")
    if end - start > MAX_DELEGATION:
        raise InvalidInput(
            "Thời hạn ủy quyền không quá 366 ngày", "A delegation lasts at most 366 days"
        )
    if leader.role != LEADER:
        raise NotUnitLeader(leader.username, leader.unit_code)
    with ctx.uow() as uow:
        session = uow.session
        giver = _user(session, leader.username)
        if giver is None or not giver.active or giver.role != LEADER:
            raise NotUnitLeader(leader.username, leader.unit_code)
        unit = giver.unit_code
        target = _user(session, deputy)
        if target is None or not target.active:
            raise UnknownUser(deputy)
        if target.username == giver.username:
            raise DelegationRefused(
                "Không thể tự ủy quyền cho chính mình", "A leader cannot delegate to themselves"
            )
        if target.unit_code != unit or target.role not in DEPUTY_ROLES:
            raise DelegationRefused(
                f"{deputy} không phải lãnh đạo hoặc chuyên viên của đơn vị {unit}",
                f"{deputy} is not a leader or specialist of unit {unit}",
                unit=unit,
            )
        overlapping = session.exec(
            select(Delegation).where(
                Delegation.leader == giver.username,
                Delegation.deputy == target.username,
                col(Delegation.valid_from) < end,
                col(Delegation.valid_to) > start,
                col(Delegation.revoked_at).is_(None),
            )
        ).first()
        if overlapping is not None:
            raise DelegationRefused(
                f"Đã có ủy quyền số {overlapping.id} cho {deputy} trùng thời gian",
                f"Delegation {overlapping.id} to {deputy} already covers part of this period",
            )
        row = Delegation(
            unit_code=unit,
            leader=giver.username,
            deputy=target.username,
            valid_from=start,
            valid_to=end,
            reason=why,
            created_by=leader.username,
            created_at=now,
        )
        session.add(row)
        session.flush()
        uow.commit()
    return row


def revoke_delegation(
    ctx: Context, actor: Actor, delegation_id: int, reason: str | None = None
) -> Delegation:
    """Thu hồi ủy quyền, by the leader who gave it (or an admin), from now on."""
    now = ctx.clock.now()
    why = (reason or "").strip()[:2000] or None
    with ctx.uow() as uow:
        row = uow.session.get(Delegation, delegation_id)
        if row is None:
            raise DelegationNotFound(delegation_id)
        if actor.role != ADMIN and actor.username != row.leader:
            raise NotYourDelegation(
                f"Chỉ {row.leader} (người ủy quyền) được thu hồi ủy quyền số {row.id}",
                f"Only {row.leader}, who gave it, may revoke delegation {row.id}",
            )
        if row.revoked_at is not None:
            raise DelegationRefused(
                f"Ủy quyền số {row.id} đã bị thu hồi", f"Delegation {row.id} is already revoked"
            )
        if row.valid_to <= now:
            raise DelegationRefused(
                f"Ủy quyền số {row.id} đã hết hạn", f"Delegation {row.id} has already ended"
            )
        row.revoked_at = now
        row.revoked_by = actor.username
        row.revoke_reason = why
        uow.session.add(row)
        uow.commit()
    return row


def list_delegations(
    ctx: Context, actor: Actor, *, active_only: bool = False, limit: int = 200
) -> list[Delegation]:
    """Delegations of the actor's unit (a supervisor: of the units under theirs), newest
    first; ``active_only``: in force now."""
    now = ctx.clock.now()
    query = select(Delegation)
    if actor.role in PROVINCE_WIDE_ROLES:
        unit = ctx.catalog.units.get(actor.unit_code)
        if unit is None or unit.kind != "province":
            query = query.where(
                col(Delegation.unit_code).in_(units_under(ctx.catalog, actor.unit_code))
            )
    else:
        query = query.where(Delegation.unit_code == actor.unit_code)
    if active_only:
        query = query.where(
            col(Delegation.valid_from) <= now,
            col(Delegation.valid_to) > now,
        )
    query = query.order_by(col(Delegation.valid_from).desc(), col(Delegation.id).desc())
    with ctx.uow() as uow:
        rows = list(uow.session.exec(query.limit(limit)).all())
    return [d for d in rows if d.active_at(now)] if active_only else rows


# --- assignment --------------------------------------------------------------------------------


def specialists_of(ctx: Context, unit: str) -> list[User]:
    """Active specialists of ``unit``, the people a leader may assign to."""
    with ctx.uow() as uow:
        return list(
            uow.session.exec(
                select(User)
                .where(
                    User.unit_code == unit,
                    User.role == SPECIALIST,
                    col(User.active).is_(True),
                )
                .order_by(col(User.username))
            ).all()
        )


def _check_one(
    session: Session,
    ctx: Context,
    actor: Actor,
    code: str,
    expected: int | None,
    assignee: User,
    now: datetime,
) -> tuple[Dossier, Power]:
    dossier = session.exec(select(Dossier).where(Dossier.code == code)).first()
    if dossier is None:
        raise DossierNotFound(code)
    if not can_see(ctx.catalog, actor, dossier):
        raise OutsideYourAgency(code)
    if expected is not None and dossier.version != expected:
        raise StaleDossier(code, expected, dossier.version)
    step = dossier.current_step
    if step is None or dossier.status != step or step not in dossier.step_units:
        raise NotAssignable(code, dossier.status)
    unit = dossier.step_units[step]
    power = power_over(session, actor, unit, now)
    if power is None:
        raise NotUnitLeader(actor.username, unit, code)
    if assignee.role != SPECIALIST or assignee.unit_code != unit:
        raise AssigneeNotInUnit(assignee.username, unit, code)
    if dossier.assignee == assignee.username:
        raise AlreadyAssigned(code, assignee.username)
    return dossier, power


def assign(
    ctx: Context,
    actor: Actor,
    codes: Sequence[str],
    assignee: str,
    reason: str | None,
    *,
    expected: Mapping[str, int] | None = None,
) -> list[Assigned]:
    """Assign (or reassign) the dossiers ``codes`` to the specialist ``assignee``: all of them
    or none (``AssignmentRefused`` lists each refused dossier with its error)."""
    codes = [c.strip() for c in codes]
    if not codes:
        raise InvalidInput("Cần chọn ít nhất một hồ sơ", "Choose at least one dossier")
    if len(codes) > MAX_BATCH:
        raise InvalidInput(
            f"Mỗi lần phân công tối đa {MAX_BATCH} hồ sơ",
            f"At most {MAX_BATCH} dossiers per assignment",
        )
    if len(set(codes)) != len(codes):
        raise InvalidInput("Danh sách hồ sơ có mã trùng nhau", "A dossier code is repeated")
    why = _text(reason, "lý do / nội dung phân công", "reason for the assignment")
    expected = expected or {}
    now = ctx.clock.now()
    done: list[tuple[Dossier, Assignment]] = []
    with ctx.uow() as uow:
        session = uow.session
        target = _user(session, assignee)
        if target is None or not target.active:
            raise UnknownUser(assignee)
        checked: list[tuple[Dossier, Power]] = []
        failures: list[tuple[str, DomainError]] = []
        for code in codes:
            try:
                checked.append(
                    _check_one(session, ctx, actor, code, expected.get(code), target, now)
                )
            except DomainError as error:
                failures.append((code, error))
        if failures:
            raise AssignmentRefused(failures, len(codes))
        for dossier, power in checked:
            previous = dossier.assignee
            row = Assignment(
                dossier_id=dossier.id,  # type: ignore[arg-type]
                step_id=dossier.current_step,
                unit_code=power.unit,
                kind="reassign" if previous else "assign",
                assignee=target.username,
                previous_assignee=previous,
                assigned_by=actor.username,
                on_behalf_of=power.on_behalf_of,
                delegation_id=power.delegation.id if power.delegation else None,
                reason=why,
                at=now,
            )
            code, version = dossier.code, dossier.version
            dossier.assignee = target.username
            session.add(dossier)
            session.add(row)
            try:
                session.flush()
            except StaleDataError:  # another officer changed it since it was read above
                raise AssignmentRefused([(code, StaleDossier(code, version))], len(codes)) from None
            done.append((dossier, row))
        uow.commit()
    return [Assigned(d.code, d.version, a) for d, a in done]


def assignments_of(ctx: Context, actor: Actor, code: str) -> tuple[Dossier, list[Assignment]]:
    """The dossier's assignment history, oldest first (the actor must be able to see it)."""
    with ctx.uow() as uow:
        dossier = uow.get_dossier(code)
        if not can_see(ctx.catalog, actor, dossier):
            raise OutsideYourAgency(code)
        rows = list(
            uow.session.exec(
                select(Assignment)
                .where(Assignment.dossier_id == dossier.id)
                .order_by(col(Assignment.at), col(Assignment.id))
            ).all()
        )
    return dossier, rows


def assignment_rows(session: Session, dossier_id: int | None) -> list[Assignment]:
    """Every assignment of one dossier, oldest first (for the slip)."""
    if dossier_id is None:
        return []
    return list(
        session.exec(
            select(Assignment)
            .where(Assignment.dossier_id == dossier_id)
            .order_by(col(Assignment.at), col(Assignment.id))
        ).all()
    )


def describe(row: Assignment) -> dict[str, Any]:
    """The facts of one assignment, for the pages and the exports."""
    return {
        "kind": row.kind,
        "assignee": row.assignee,
        "previous_assignee": row.previous_assignee,
        "assigned_by": row.assigned_by,
        "on_behalf_of": row.on_behalf_of,
        "at": row.at,
        "reason": row.reason,
        "step_id": row.step_id,
        "unit_code": row.unit_code,
    }
