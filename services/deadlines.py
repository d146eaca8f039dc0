"""Deadline watch: one sweep over the dossiers whose clock runs.

Thresholds (each at most once per dossier, step and threshold — a unique ``deadline_notice``
row written with its outbox notice in one transaction, so reruns, parallel watchers and
restarts never repeat one):

- ``step_due_soon``: the step has ≤ ``due_soon_minutes`` working minutes left (1 working day)
  or ≤ ``due_soon_share`` of its time → the assignee and the unit's leaders;
- ``step_overdue``: the step's due instant has passed → the unit (recorded as the unit that
  made the dossier late) and its leaders;
- ``apology_due``: the dossier is ≤ 1 working day from its due instant, not at its last step,
  and has no apology slip yet → the resolving agency's leaders, to issue Form 04 while the law
  still allows it;
- ``dossier_overdue``: the dossier's due instant has passed → the supervisors; flagged
  ``no_apology`` when no apology slip was issued, ``apology_late`` when it came too late.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import col, select

from services.clock import MINUTES_PER_DAY
from services.context import Context
from services.outbox import ALERT_KIND
from states.events import APPROVED, REJECTED
from storage.db import dialect_insert
from storage.models import Dossier, Outbox, User
from storage.models_workflows import DeadlineNotice

STEP_DUE_SOON = "step_due_soon"
STEP_OVERDUE = "step_overdue"
APOLOGY_DUE = "apology_due"
DOSSIER_OVERDUE = "dossier_overdue"


@dataclass(frozen=True)
class DeadlineConfig:
    due_soon_minutes: int = MINUTES_PER_DAY
    due_soon_share: float = 0.2
    supervisor_email: str = "giamsat@motcua.langson.gov.vn"
    mail_domain: str = "motcua.langson.gov.vn"

    @classmethod
    def from_settings(cls, settings: Any) -> DeadlineConfig:
        return cls(
            due_soon_minutes=settings.deadline_due_soon_minutes,
            due_soon_share=settings.deadline_due_soon_share,
            supervisor_email=settings.supervisor_email,
            mail_domain=settings.mail_domain,
        )

    def mailbox(self, name: str) -> str:
        return f"{name}@{self.mail_domain}"


@dataclass
class WatchReport:
    scanned: int = 0
    fired: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class _Notice:
    dossier_id: int
    step: str
    threshold: str
    unit_code: str | None
    due_at: datetime | None
    to: list[str]
    flag: str | None = None


def _candidates(ctx: Context, now: datetime, config: DeadlineConfig) -> list[_Notice]:
    calendar = ctx.calendar
    with ctx.uow() as uow:
        dossiers = uow.session.exec(
            select(Dossier).where(
                col(Dossier.due_at).is_not(None),
                col(Dossier.paused_at).is_(None),
                col(Dossier.result_ready_at).is_(None),
                col(Dossier.received_at).is_not(None),
                col(Dossier.status).not_in(
                    ["submitted", "awaiting_supplement", "returned", "refused", "withdrawn"]
                ),
            )
        ).all()
        leaders: dict[str, list[str]] = defaultdict(list)
        for user in uow.session.exec(
            select(User).where(User.role == "leader", col(User.active).is_(True))
        ).all():
            leaders[user.unit_code].append(user.username)

    def unit_people(unit: str) -> list[str]:
        return [config.mailbox(unit)] + [config.mailbox(u) for u in sorted(leaders[unit])]

    notices: list[_Notice] = []
    for d in dossiers:
        assert d.id is not None and d.due_at is not None
        steps = ctx.catalog.procedure(d.procedure_code).version(d.procedure_version).process
        last_step = steps[-1].id
        step = d.current_step if d.status not in (APPROVED, REJECTED) else None
        if step and d.step_due_at is not None:
            unit = d.step_units.get(step, d.current_unit or "")
            if now > d.step_due_at:
                notices.append(
                    _Notice(d.id, step, STEP_OVERDUE, unit, d.step_due_at, unit_people(unit))
                )
            else:
                left = calendar.working_minutes_between(now, d.step_due_at)
                total = (
                    calendar.working_minutes_between(d.step_entered_at, d.step_due_at)
                    if d.step_entered_at
                    else 0
                )
                if left <= config.due_soon_minutes or left <= config.due_soon_share * total:
                    to = ([config.mailbox(d.assignee)] if d.assignee else []) + unit_people(unit)
                    notices.append(_Notice(d.id, step, STEP_DUE_SOON, unit, d.step_due_at, to))
        if now > d.due_at:
            flag = (
                "no_apology"
                if d.apology_at is None
                else ("apology_late" if d.apology_late else None)
            )
            notices.append(
                _Notice(
                    d.id, "", DOSSIER_OVERDUE, d.current_unit, d.due_at,
                    [config.supervisor_email], flag,
                )
            )  # fmt: skip
        elif (
            d.apology_at is None
            and step is not None
            and step != last_step
            and calendar.working_minutes_between(now, d.due_at) <= MINUTES_PER_DAY
        ):
            notices.append(
                _Notice(
                    d.id, "", APOLOGY_DUE, d.competent_agency, d.due_at,
                    unit_people(d.competent_agency),
                )
            )  # fmt: skip
    return notices


def watch(ctx: Context, config: DeadlineConfig) -> WatchReport:
    """One sweep: record and notify every threshold crossed for the first time."""
    now = ctx.clock.now()
    notices = _candidates(ctx, now, config)
    report = WatchReport(scanned=len(notices))
    if not notices:
        return report
    table = DeadlineNotice.__table__  # type: ignore[attr-defined]
    outbox = Outbox.__table__  # type: ignore[attr-defined]
    with ctx.uow() as uow:
        session = uow.session
        existing = set(
            session.exec(
                select(
                    DeadlineNotice.dossier_id, DeadlineNotice.step, DeadlineNotice.threshold
                ).where(col(DeadlineNotice.dossier_id).in_({n.dossier_id for n in notices}))
            ).all()
        )
        insert = dialect_insert(session.get_bind().dialect.name)
        for n in notices:
            if (n.dossier_id, n.step, n.threshold) in existing:
                continue
            new_id = session.execute(
                insert(table)
                .values(
                    dossier_id=n.dossier_id,
                    step=n.step,
                    threshold=n.threshold,
                    unit_code=n.unit_code,
                    due_at=n.due_at,
                    flag=n.flag,
                    created_at=now,
                )
                .on_conflict_do_nothing(index_elements=["dossier_id", "step", "threshold"])
                .returning(table.c.id)
            ).scalar()
            if new_id is None:
                continue  # another watcher got there first
            outbox_id = session.execute(
                outbox.insert()
                .values(
                    dossier_id=n.dossier_id,
                    kind=ALERT_KIND,
                    target=n.threshold,
                    payload={
                        "template": n.threshold,
                        "to": n.to,
                        "step": n.step or None,
                        "unit": n.unit_code,
                        "flag": n.flag,
                        "apology_note": _apology_note(n.flag),
                        "left": "dưới 01 ngày làm việc",
                    },
                    status="pending",
                    attempts=0,
                    created_at=now,
                    available_at=now,
                )
                .returning(outbox.c.id)
            ).scalar_one()
            session.execute(table.update().where(table.c.id == new_id).values(outbox_id=outbox_id))
            report.fired[n.threshold] += 1
        uow.commit()
    return report


def _apology_note(flag: str | None) -> str | None:
    if flag == "no_apology":
        return "CẢNH BÁO: chưa có Phiếu xin lỗi và hẹn lại ngày trả kết quả (Mẫu 04)."
    if flag == "apology_late":
        return "CẢNH BÁO: Phiếu xin lỗi được lập muộn (ít hơn 01 ngày làm việc trước hạn)."
    return "Đã có Phiếu xin lỗi và hẹn lại ngày trả kết quả."


def late_units(ctx: Context, dossier_id: int) -> list[str]:
    """The units whose step ran over its due instant on this dossier, as the watch saw them."""
    with ctx.uow() as uow:
        rows = uow.session.exec(
            select(DeadlineNotice.unit_code)
            .where(
                DeadlineNotice.dossier_id == dossier_id,
                DeadlineNotice.threshold == STEP_OVERDUE,
            )
            .order_by(col(DeadlineNotice.id))
        ).all()
    return [r for r in rows if r]


__all__ = [
    "APOLOGY_DUE",
    "DOSSIER_OVERDUE",
    "STEP_DUE_SOON",
    "STEP_OVERDUE",
    "DeadlineConfig",
    "WatchReport",
    "late_units",
    "watch",
]
