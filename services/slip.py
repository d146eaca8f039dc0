"""Phiếu kiểm soát quá trình giải quyết hồ sơ (Form 05), read from the event log."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import select

from services.assignments import assignment_rows
from services.context import Context
from states.events import EVENT_LABELS
from storage.models import Dossier, DossierEvent, Unit
from storage.models_assignments import Assignment

TIMELINESS_VI = {"early": "Trước hạn", "on_time": "Đúng hạn", "late": "Quá hạn"}


def vietnamese_instant(at: datetime) -> str:
    """``HH giờ mm phút, ngày dd tháng MM năm yyyy`` as the form writes it."""
    return f"{at:%H} giờ {at:%M} phút, ngày {at:%d} tháng {at:%m} năm {at:%Y}"


@dataclass(frozen=True)
class SlipRow:
    seq: int
    event: str
    label: str
    at: datetime
    from_unit: str | None
    to_unit: str | None
    giver: str
    step_id: str | None
    step_due_at: datetime | None
    result: str | None  # early / on_time / late for the step the dossier left
    note: str | None
    receiver: str | None = None  # the officer given the dossier (assignments)
    kind: str = "event"  # "event" (a transition) or "assignment" (phân công thụ lý)


@dataclass(frozen=True)
class Slip:
    dossier: Dossier
    unit_names: dict[str, str]
    rows: list[SlipRow]  # the transitions, by seq
    assignments: list[SlipRow] = field(default_factory=list)  # who was given it, by whom, why

    @property
    def timeline(self) -> list[SlipRow]:
        """Transitions and assignments in time order (an assignment after the transition that
        brought the dossier to the step), as the printed slip lists them."""
        rows = [(r.at, 0, r.seq, r) for r in self.rows]
        rows += [(a.at, 1, i, a) for i, a in enumerate(self.assignments)]
        return [r for *_, r in sorted(rows, key=lambda t: t[:3])]


def assignment_row(a: Assignment) -> SlipRow:
    """One assignment as a slip row: the leader (or deputy) gives the dossier to a specialist."""
    reassigned = a.kind == "reassign"
    label = f"Phân công lại (trước: {a.previous_assignee})" if reassigned else "Phân công thụ lý"
    notes = [a.reason or ""]
    if a.on_behalf_of:
        notes.append(f"thừa ủy quyền của {a.on_behalf_of}")
    return SlipRow(
        seq=0,
        event=a.kind,
        label=label,
        at=a.at,
        from_unit=a.unit_code,
        to_unit=a.unit_code,
        giver=a.assigned_by,
        step_id=a.step_id,
        step_due_at=None,
        result=None,
        note="; ".join(n for n in notes if n) or None,
        receiver=a.assignee,
        kind="assignment",
    )


def control_slip(ctx: Context, code: str) -> Slip:
    with ctx.uow() as uow:
        dossier = uow.get_dossier(code)
        events = uow.session.exec(
            select(DossierEvent)
            .where(DossierEvent.dossier_id == dossier.id)
            .order_by(DossierEvent.seq)  # type: ignore[arg-type]
        ).all()
        names = {u.code: u.name for u in uow.session.exec(select(Unit)).all()}
        assignments = [assignment_row(a) for a in assignment_rows(uow.session, dossier.id)]
    rows = [
        SlipRow(
            seq=e.seq,
            event=e.event,
            label=EVENT_LABELS.get(e.event, (e.event, e.event))[0],
            at=e.at,
            from_unit=e.from_unit,
            to_unit=e.to_unit,
            giver=e.actor_username,
            step_id=e.step_id,
            step_due_at=e.step_due_at,
            result=e.step_timeliness or e.data.get("timeliness"),
            note=_note(e),
        )
        for e in events
    ]
    return Slip(dossier=dossier, unit_names=names, rows=rows, assignments=assignments)


def _note(event: DossierEvent) -> str | None:
    on_behalf_of = (event.data or {}).get("on_behalf_of")
    if not on_behalf_of:
        return event.reason
    return "; ".join(x for x in (event.reason, f"thừa ủy quyền của {on_behalf_of}") if x)


def render_text(slip: Slip) -> str:
    d = slip.dossier
    name = slip.unit_names.get
    lines = [
        "PHIẾU KIỂM SOÁT QUÁ TRÌNH GIẢI QUYẾT HỒ SƠ",
        f"Mã hồ sơ: {d.code}",
        f"Thủ tục: {d.procedure_code} (phiên bản {d.procedure_version}, quy tắc {d.rule_set})",
        f"Người nộp: {d.applicant_name}",
        f"Cơ quan chủ trì giải quyết: {name(d.competent_agency, d.competent_agency)}",
        "Cơ quan phối hợp: "
        + ", ".join(
            sorted({name(u, u) for u in d.step_units.values()} - {name(d.competent_agency, "")})
        ),
        f"Tiếp nhận: {vietnamese_instant(d.received_at) if d.received_at else '—'}",
        f"Hẹn trả: {vietnamese_instant(d.appointment_at) if d.appointment_at else '—'}",
        "",
    ]
    for number, row in enumerate(slip.timeline, 1):
        result = TIMELINESS_VI.get(row.result or "", "")
        lines.append(
            f"{number:>2}. {vietnamese_instant(row.at)} | {row.label} | "
            f"giao: {name(row.from_unit or '', row.from_unit or '—')} ({row.giver}) → "
            f"nhận: {name(row.to_unit or '', row.to_unit or '—')}"
            + (f" ({row.receiver})" if row.receiver else "")
            + (f" | bước {row.step_id}: {result}" if row.step_id and result else "")
            + (f" | kết quả: {result}" if row.event == "mark_result_ready" and result else "")
            + (f" | ghi chú: {row.note}" if row.note else "")
        )
    if d.timeliness:
        lines.append("")
        lines.append(f"Kết quả giải quyết: {TIMELINESS_VI[d.timeliness]}")
    return "\n".join(lines)
