"""Demo: agencies, officers and a stream of dossiers over N days, on the real services and clock.

Every action goes through the same use cases as the counter's (``submit_dossier``/``act``),
with the clock set to the simulated instant, in time order. Lateness, supplementation, apology
slips, withdrawals and refusals happen at realistic rates; nothing is written around the rules.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from sqlmodel import col, select, update

from services.assignments import assign
from services.catalog import ProcedureVersion
from services.clock import MINUTES_PER_DAY, TZ, FixedClock
from services.context import Context
from services.directory import create_officer, hash_password, sync_catalog
from services.dossiers import Applicant, DossierIn, act, submit_dossier
from services.errors import DomainError
from states.events import Event
from states.lifecycle import Actor
from storage.models import Dossier, Outbox, User

DEMO_PASSWORD = "motcua-demo"
FAMILY = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vi", "Hà", "Nông", "Lương", "Hoàng Văn"]
GIVEN = ["Văn An", "Thị Bình", "Minh Châu", "Đức Dũng", "Thu Hà", "Quốc Huy", "Thị Lan", "Văn Nam"]


@dataclass(order=True)
class _Job:
    at: datetime
    order: int
    run: Callable[[], object] = field(compare=False)


@dataclass
class DemoResult:
    start: date
    end: date
    submitted: int = 0
    actions: int = 0
    rejected_actions: int = 0
    refusals: dict[str, int] = field(default_factory=dict)


def receiving_units(ctx: Context, day: date) -> list[tuple[str, list[str]]]:
    """Receiving units in operation on ``day`` with the procedures each can take."""
    catalog = ctx.catalog
    units = [
        u
        for u in catalog.units.values()
        if u.valid_from <= day and (u.valid_to is None or day <= u.valid_to)
    ]
    result: list[tuple[str, list[str]]] = []
    for unit in sorted(units, key=lambda u: u.code):
        if unit.kind not in ("centre", "commune", "ward", "district"):
            continue
        codes = []
        for procedure in catalog.procedures.values():
            try:
                version = procedure.version_at(day)
            except DomainError:
                continue
            if not _takes(unit.kind, unit.level, version):
                continue
            try:
                for step in version.process:
                    catalog.resolve_agency(step.agency, unit.code)
                catalog.resolve_agency(version.competent_agency, unit.code)
            except DomainError:
                continue
            codes.append(procedure.code)
        if codes:
            result.append((unit.code, sorted(codes)))
    return result


def _takes(kind: str, level: str, version: ProcedureVersion) -> bool:
    if kind == "centre":
        return version.level == "province"
    return version.level == level


def ensure_officers(ctx: Context, day: date) -> dict[tuple[str, str], str]:
    """One officer per (unit, role) the demo procedures need; returns usernames."""
    needed: set[tuple[str, str]] = set()
    for unit_code, codes in receiving_units(ctx, day):
        needed.add((unit_code, "counter"))
        needed.add((unit_code, "leader"))
        for code in codes:
            version = ctx.catalog.procedure(code).version_at(day)
            for step in version.process:
                unit = ctx.catalog.resolve_agency(step.agency, unit_code)
                needed.add((unit, step.role))
                needed.add((unit, "leader"))
    usernames: dict[tuple[str, str], str] = {}
    shared_hash = _demo_hash()
    for index, (unit_code, role) in enumerate(sorted(needed)):
        username = f"{role}.{unit_code}".lower().replace(".", "_")
        create_officer(
            ctx,
            username,
            f"{FAMILY[index % len(FAMILY)]} {GIVEN[index % len(GIVEN)]}",
            role,
            unit_code,
            password_hash=shared_hash,
        )
        usernames[(unit_code, role)] = username
        if role == "specialist":  # a second specialist: the leader shares the work out
            create_officer(
                ctx,
                f"{username}_2",
                f"{FAMILY[(index + 3) % len(FAMILY)]} {GIVEN[(index + 5) % len(GIVEN)]}",
                role,
                unit_code,
                password_hash=shared_hash,
            )
    return usernames


@functools.cache
def _demo_hash() -> str:
    """Demo accounts share one password; hash it once (argon2 is slow on purpose)."""
    return hash_password(DEMO_PASSWORD)


def ensure_supervisors(ctx: Context) -> None:
    province = next((u.code for u in ctx.catalog.units.values() if u.kind == "province"), None)
    if province:
        create_officer(ctx, "giamsat", "Giám sát Văn phòng UBND tỉnh", "supervisor", province,
                       password_hash=_demo_hash())  # fmt: skip
        create_officer(ctx, "quantri", "Quản trị hệ thống", "admin", province,
                       password_hash=_demo_hash())  # fmt: skip


def run_demo(ctx: Context, days: int, seed: int, end: date | None = None) -> DemoResult:
    """Simulate ``days`` calendar days ending on ``end`` (default today)."""
    rng = random.Random(seed)
    end = end or datetime.now(TZ).date()
    start = end - timedelta(days=days - 1)
    sync_catalog(ctx)
    ensure_supervisors(ctx)
    clock = FixedClock(datetime.combine(start, time(7, 0), TZ))
    sim = Context(engine=ctx.engine, catalog=ctx.catalog, calendar=ctx.calendar, clock=clock)
    officers: dict[tuple[str, str], str] = {}
    for day in {start, end}:
        officers.update(ensure_officers(ctx, day))
    with ctx.uow() as uow:
        users = {u.username: u for u in uow.session.exec(select(User)).all()}

    def actor(unit: str, role: str) -> Actor:
        user = users[officers[(unit, role)]]
        return Actor(user.username, user.role, user.unit_code)

    def handler(dossier: Dossier, unit: str, role: str) -> Actor:
        """The specialist assigned to the dossier at this step; the unit's leader assigns one
        of its two specialists (by the code, not the random stream) when nobody has it yet."""
        if role != "specialist":
            return actor(unit, role)
        if dossier.assignee is None:
            first = officers[(unit, role)]
            pick = first if sum(map(ord, dossier.code)) % 2 == 0 else f"{first}_2"
            try:
                assign(sim, actor(unit, "leader"), [dossier.code], pick, "Phân công thụ lý")
            except DomainError:
                return actor(unit, role)
            dossier.assignee = pick
        user = users[dossier.assignee]
        return Actor(user.username, user.role, user.unit_code)

    result = DemoResult(start=start, end=end)
    horizon = datetime.combine(end, time(17, 30), TZ)
    jobs: list[_Job] = []
    order = itertools.count()
    calendar = ctx.calendar

    def schedule(at: datetime, run: Callable[[], object]) -> None:
        if at <= horizon:
            heapq.heappush(jobs, _Job(at, next(order), run))

    def later(at: datetime, working_minutes: int) -> datetime:
        return calendar.add_working_minutes(calendar.next_working_instant(at), working_minutes)

    def do(code: str, event: Event, who: Actor, **kw: object) -> Dossier | None:
        result.actions += 1
        try:
            return act(sim, who, code, event, None, **kw)  # type: ignore[arg-type]
        except DomainError as error:
            result.rejected_actions += 1
            rule = f"{event}:{error.details.get('rule', error.code)}"
            result.refusals[rule] = result.refusals.get(rule, 0) + 1
            return None

    def progress(dossier: Dossier, version: ProcedureVersion) -> None:
        """Plan the next action of a dossier from its current state."""
        now = clock.now()
        status = dossier.status
        steps = {s.id: s for s in version.process}
        code = dossier.code
        if status in steps:
            step = steps[status]
            unit = dossier.step_units[status]
            # the time this step has left (same-day steps share what is left of the day)
            left = steps_after = len(version.process) - version.process.index(step)
            if dossier.step_due_at is not None:
                left = calendar.working_minutes_between(now, dossier.step_due_at)
                if step.share == 0:
                    left = left // steps_after
            share = max(left, 10)
            worker = (
                actor(unit, step.role) if step.inter_agency else handler(dossier, unit, step.role)
            )
            roll = rng.random()
            if roll < 0.06 and dossier.supplement_count == 0 and step.role != "counter":
                at = later(now, int(share * rng.uniform(0.1, 0.5)))

                def ask() -> None:
                    d = do(code, "request_supplement", worker,
                           reason="Thiếu bản sao giấy tờ theo danh mục")  # fmt: skip
                    if d:
                        back = later(clock.now(), rng.randint(1, 4) * MINUTES_PER_DAY)

                        def supplied() -> None:
                            d2 = do(code, "supplement", actor(d.receiving_unit, "counter"))
                            if d2:
                                progress(d2, version)

                        schedule(back, supplied)

                schedule(at, ask)
                return
            if roll < 0.07:
                at = later(now, int(share * rng.uniform(0.1, 0.5)))
                schedule(at, lambda: do(code, "withdraw", actor(dossier.receiving_unit, "counter"),
                                        reason="Công dân xin rút hồ sơ"))  # fmt: skip
                return
            factor = rng.uniform(1.1, 2.5) if roll > 0.985 else rng.uniform(0.1, 0.9)
            at = later(now, int(share * factor))
            is_last = step is version.process[-1]
            if is_last:
                rejected = rng.random() < 0.04
                event: Event = "reject" if rejected else "approve"

                def decide() -> None:
                    why = "Không đủ điều kiện theo quy định" if rejected else None
                    d = do(code, event, worker, decision_ref=f"QĐ-{code}",
                           reason=why)  # fmt: skip
                    if d:
                        progress(d, version)

                schedule(at, decide)
            else:
                who = "system" if step.inter_agency else step.role

                def forward() -> None:
                    a = worker
                    if who == "system":
                        a = Actor(f"system.{unit}", "system", unit)
                    d = do(code, "forward", a)
                    if d:
                        progress(d, version)

                schedule(at, forward)
            # an overrun is foreseen: the resolving agency's leader sends the apology slip in time
            due = dossier.due_at
            if due is not None and at > due and dossier.apology_at is None and rng.random() < 0.8:
                apology_at = max(now, calendar.add_working_minutes(due, 0) - timedelta(days=2))
                leader_unit = unit
                schedule(apology_at, lambda: _apologise(code, leader_unit))
        elif status in ("approved", "rejected"):
            unit = dossier.step_units[version.process[-1].id]
            budget = 60
            if dossier.due_at is not None:
                budget = max(1, min(budget, calendar.working_minutes_between(now, dossier.due_at)))
            at = later(now, rng.randint(1, budget) if rng.random() > 0.01 else 120)

            def ready() -> None:
                d = do(code, "mark_result_ready", actor(unit, "leader"))
                if d:
                    progress(d, version)

            schedule(at, ready)
        elif status == "result_ready":
            at = later(now, rng.randint(30, 2 * MINUTES_PER_DAY))

            def give_back() -> None:
                d = do(code, "return_result", actor(dossier.receiving_unit, "counter"))
                if d is None:  # late without an apology slip: issue it (recorded as late), return
                    _apologise(code, dossier.step_units[version.process[-1].id])
                    do(code, "return_result", actor(dossier.receiving_unit, "counter"))

            schedule(at, give_back)

    def _apologise(code: str, unit: str) -> None:
        now = clock.now()
        with ctx.uow() as uow:
            current = uow.get_dossier(code)
        if current.apology_at is not None or current.due_at is None:
            return
        new = calendar.add_working_minutes(max(now, current.due_at), rng.randint(1, 3) * 480)
        do(code, "extend", actor(unit, "leader"), reason="Cần xác minh thêm với cơ quan liên quan",
           new_appointment=new)  # fmt: skip

    def arrivals(day: date) -> Iterator[tuple[datetime, str, str]]:
        for unit_code, codes in receiving_units(ctx, day):
            for _ in range(rng.randint(1, 4)):
                minute = rng.randint(0, 9 * 60 + 30)
                at = datetime.combine(day, time(7, 30), TZ) + timedelta(minutes=minute)
                yield at, unit_code, rng.choice(codes)

    def submit(at: datetime, unit_code: str, procedure_code: str) -> None:
        version = ctx.catalog.procedure(procedure_code).version_at(at.date())
        data = DossierIn(
            procedure_code=procedure_code,
            receiving_unit=unit_code,
            channel=rng.choice(["counter", "counter", "online", "post"]),
            applicant=Applicant(
                name=f"{rng.choice(FAMILY)} {rng.choice(GIVEN)}",
                id_number=f"020{rng.randint(0, 10**9 - 1):09d}",
                phone=f"09{rng.randint(0, 10**8 - 1):08d}",
                address="Lạng Sơn",
            ),
            components=[c.id for c in version.components if c.required and not c.shown_only],
        )
        roll = rng.random()
        then: Event = "receive"
        reason = None
        if roll < 0.02:
            then, reason = "refuse", "Không thuộc thẩm quyền giải quyết"
        elif roll < 0.05:
            then, reason = "request_supplement", "Thiếu tờ khai theo mẫu"
        result.submitted += 1
        try:
            dossier = submit_dossier(sim, actor(unit_code, "counter"), data, then=then,
                                     reason=reason)  # fmt: skip
        except DomainError:
            result.rejected_actions += 1
            return
        if then == "receive":
            progress(dossier, version)
        elif then == "request_supplement":
            back = later(at, rng.randint(1, 3) * MINUTES_PER_DAY)

            def came_back() -> None:
                d = do(dossier.code, "supplement", actor(unit_code, "counter"))
                if d:
                    d2 = do(d.code, "receive", actor(unit_code, "counter"))
                    if d2:
                        progress(d2, version)

            schedule(back, came_back)

    day = start
    while day <= end:
        if calendar.is_working_day(day):
            for at, unit_code, procedure_code in arrivals(day):
                schedule(at, functools.partial(submit, at, unit_code, procedure_code))
        day += timedelta(days=1)

    first_row = _last_outbox_id(ctx)
    while jobs:
        job = heapq.heappop(jobs)
        clock.set(max(job.at, clock.now()))
        job.run()
    _settle_simulated_outbox(ctx, first_row)
    return result


def _last_outbox_id(ctx: Context) -> int:
    with ctx.uow() as uow:
        last = uow.session.exec(select(Outbox.id).order_by(col(Outbox.id).desc())).first()
    return last or 0


def _settle_simulated_outbox(ctx: Context, after_id: int) -> None:
    """The simulation played the other agencies and the past notices itself: its outbox rows
    are marked delivered (``claimed_by='demo'``) so a server started on the demo data does not
    send weeks-old notices nor hand dossiers to agencies that are not configured."""
    with ctx.uow() as uow:
        uow.session.exec(
            update(Outbox)
            .where(col(Outbox.id) > after_id, col(Outbox.status) == "pending")
            .values(status="done", claimed_by="demo", delivered_at=Outbox.created_at)
        )
        uow.commit()
