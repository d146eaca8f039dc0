"""Dossier use cases on the real databases (each test runs on SQLite and on PostgreSQL)."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import date, datetime, timedelta

import pytest
from sqlmodel import select

from services.clock import TZ, FixedClock
from services.context import Context
from services.demo import run_demo
from services.dossiers import Applicant, DossierIn, act, submit_dossier
from services.errors import InvalidInput, StaleDossier, TransitionRejected
from services.metrics import on_time_report
from services.slip import control_slip, render_text
from states.lifecycle import Actor
from storage.models import Dossier, DossierEvent, Outbox
from storage.transitions import detach, save_transition

CENTRE = "000.00.01.H37"  # receives province-level procedures
JUSTICE = "000.00.02.H37"
POLICE = "000.00.20.H37"
COUNTER = Actor("motcua1", "counter", CENTRE)
SPECIALIST = Actor("tuphap1", "specialist", JUSTICE)
POLICE_SYSTEM = Actor("congan", "system", POLICE)
LEADER = Actor("giamdoc", "leader", JUSTICE)


def criminal_record_request(ref: str | None = None) -> DossierIn:
    return DossierIn(
        procedure_code="MOJ.lltp",
        receiving_unit=CENTRE,
        applicant=Applicant(name="Hoàng Văn Thụ", id_number="020099001234", phone="0912345678"),
        components=["request_form", "applicant_id"],
        external_ref=ref,
    )


def at(clock: FixedClock, text: str) -> None:
    clock.set(datetime.fromisoformat(text))


def test_inter_agency_dossier_end_to_end(ctx: Context, clock: FixedClock) -> None:
    at(clock, "2025-03-03T09:00:00+07:00")  # Monday
    dossier = submit_dossier(ctx, COUNTER, criminal_record_request())
    assert dossier.code == f"{CENTRE}-250303-0001"
    assert dossier.status == "intake"
    assert dossier.rule_set == "2018"
    # 10 working days from Monday 09:00 → Monday 17 March 09:00
    assert dossier.due_at == datetime(2025, 3, 17, 9, 0, tzinfo=TZ)
    assert dossier.step_due_at == datetime(2025, 3, 3, 15, 0, tzinfo=TZ)  # 0.5 day share

    steps = [
        ("2025-03-03T10:00:00+07:00", COUNTER, "forward"),
        ("2025-03-04T16:00:00+07:00", SPECIALIST, "forward"),  # appraisal 1.5 d: on time
        ("2025-03-14T10:00:00+07:00", POLICE_SYSTEM, "forward"),  # verification 6 d: late
    ]
    for when, actor, event in steps:
        at(clock, when)
        dossier = act(ctx, actor, dossier.code, event, dossier.version)  # type: ignore[arg-type]
    assert dossier.status == "approval"
    at(clock, "2025-03-14T15:00:00+07:00")
    dossier = act(ctx, LEADER, dossier.code, "approve", dossier.version, decision_ref="15/LLTP")
    dossier = act(ctx, LEADER, dossier.code, "mark_result_ready", dossier.version)
    assert dossier.timeliness == "early"  # before the due date, although one step ran over
    dossier = act(ctx, COUNTER, dossier.code, "return_result", dossier.version)
    assert dossier.status == "returned"

    slip = control_slip(ctx, dossier.code)
    by_step = {row.step_id: row.result for row in slip.rows if row.step_id}
    assert by_step == {
        "intake": "on_time",
        "appraisal": "on_time",
        "verification": "late",
        "approval": "early",
    }
    units = [(row.from_unit, row.to_unit) for row in slip.rows if row.event == "forward"]
    assert units == [(CENTRE, JUSTICE), (JUSTICE, POLICE), (POLICE, JUSTICE)]
    text = render_text(slip)
    assert "PHIẾU KIỂM SOÁT QUÁ TRÌNH GIẢI QUYẾT HỒ SƠ" in text
    assert "09 giờ 00 phút, ngày 03 tháng 03 năm 2025" in text
    with ctx.uow() as uow:
        kinds = Counter(
            o.kind for o in uow.session.exec(select(Outbox).where(Outbox.dossier_id == dossier.id))
        )
    assert kinds["inter_agency"] == 1  # the verification step at the police's system
    assert kinds["handoff"] == 3  # receipt at the counter, to Justice, back to Justice
    assert kinds["notify_citizen"] == 2  # receipt, result ready


def test_supplementation_stops_the_clock(ctx: Context, clock: FixedClock) -> None:
    at(clock, "2025-03-03T09:00:00+07:00")
    dossier = submit_dossier(ctx, COUNTER, criminal_record_request())
    original_due = dossier.due_at
    at(clock, "2025-03-03T10:00:00+07:00")
    dossier = act(ctx, COUNTER, dossier.code, "forward", dossier.version)
    at(clock, "2025-03-04T09:00:00+07:00")
    dossier = act(
        ctx, SPECIALIST, dossier.code, "request_supplement", dossier.version, reason="Thiếu CCCD"
    )
    assert dossier.status == "awaiting_supplement"
    # the papers come back a week later (5 working days), at the same hour
    at(clock, "2025-03-11T09:00:00+07:00")
    dossier = act(ctx, COUNTER, dossier.code, "supplement", dossier.version)
    assert dossier.status == "appraisal"
    assert dossier.due_at == datetime(2025, 3, 24, 9, 0, tzinfo=TZ)
    assert original_due == datetime(2025, 3, 17, 9, 0, tzinfo=TZ)
    assert dossier.supplement_count == 1


def test_a_late_dossier_needs_its_apology_slip(ctx: Context, clock: FixedClock) -> None:
    at(clock, "2025-03-03T09:00:00+07:00")
    code = submit_dossier(ctx, COUNTER, criminal_record_request()).code
    for when, actor, event in [
        ("2025-03-03T10:00:00+07:00", COUNTER, "forward"),
        ("2025-03-05T10:00:00+07:00", SPECIALIST, "forward"),
        ("2025-03-18T10:00:00+07:00", POLICE_SYSTEM, "forward"),
    ]:
        at(clock, when)
        act(ctx, actor, code, event, None)  # type: ignore[arg-type]
    act(ctx, LEADER, code, "approve", None, decision_ref="1")
    dossier = act(ctx, LEADER, code, "mark_result_ready", None)
    assert dossier.timeliness == "late"
    with pytest.raises(TransitionRejected) as refused:
        act(ctx, COUNTER, code, "return_result", None)
    assert refused.value.details["rule"] == "apology_required"
    with pytest.raises(InvalidInput):  # the new appointment must be after the original one
        act(ctx, LEADER, code, "extend", None, reason="x", new_appointment=dossier.due_at)
    new = datetime(2025, 3, 20, 9, 0, tzinfo=TZ)
    dossier = act(ctx, LEADER, code, "extend", None, reason="Chờ xác minh", new_appointment=new)
    assert dossier.apology_late is True  # issued after the due instant
    assert dossier.appointment_at == new
    assert dossier.due_at == datetime(2025, 3, 17, 9, 0, tzinfo=TZ)  # never edited
    dossier = act(ctx, COUNTER, code, "return_result", None)
    assert dossier.status == "returned" and dossier.timeliness == "late"


def test_stale_version_is_a_conflict(ctx: Context, clock: FixedClock) -> None:
    dossier = submit_dossier(ctx, COUNTER, criminal_record_request())
    act(ctx, COUNTER, dossier.code, "forward", dossier.version)
    with pytest.raises(StaleDossier):
        act(ctx, COUNTER, dossier.code, "withdraw", dossier.version, reason="x")


def test_a_transition_written_in_sql_changes_only_what_moved(
    ctx: Context, clock: FixedClock
) -> None:
    """storage.transitions: the UPDATE carries the changed columns and the next version, the
    event gets the next seq; a row changed since it was read is refused with nothing written."""
    dossier = submit_dossier(ctx, COUNTER, criminal_record_request())
    moved = act(ctx, COUNTER, dossier.code, "forward", dossier.version)
    assert moved.version == dossier.version + 1
    with ctx.uow() as uow:
        fresh = uow.get_dossier(dossier.code)
        seqs = uow.session.exec(
            select(DossierEvent.seq)
            .where(DossierEvent.dossier_id == fresh.id)
            .order_by(DossierEvent.seq)  # type: ignore[arg-type]
        ).all()
    assert (fresh.version, fresh.status, fresh.current_step) == (moved.version, moved.status,
                                                                   moved.current_step)  # fmt: skip
    assert fresh.applicant_name == dossier.applicant_name and fresh.due_at == dossier.due_at
    assert list(seqs) == [1, 2]

    with ctx.uow() as uow:  # read, then someone else moves it, then our write
        stale = uow.get_dossier(dossier.code)
        before = detach(uow.session, stale)
    act(ctx, COUNTER, dossier.code, "withdraw", None, reason="Công dân rút")
    with ctx.uow() as uow:
        stale.status = "appraisal_done"
        record = DossierEvent(
            dossier_id=stale.id,  # type: ignore[arg-type]
            seq=0, event="forward", from_state=before["status"], to_state="x", at=clock.now(),
            actor_username="a", actor_role="specialist", actor_unit="u",
        )  # fmt: skip
        assert save_transition(uow.session, stale, before, record, []) is False
        uow.commit()
    with ctx.uow() as uow:
        final = uow.get_dossier(dossier.code)
        count = len(
            uow.session.exec(select(DossierEvent).where(DossierEvent.dossier_id == final.id)).all()
        )
    assert final.status == "withdrawn" and final.version == moved.version + 1
    assert count == 3  # receive, forward, withdraw: nothing of the refused write


def test_a_refused_event_writes_nothing(ctx: Context, clock: FixedClock) -> None:
    dossier = submit_dossier(ctx, COUNTER, criminal_record_request())
    with pytest.raises(TransitionRejected):
        act(ctx, Actor("x", "specialist", "000.00.03.H37"), dossier.code, "forward", None)
    with ctx.uow() as uow:
        fresh = uow.get_dossier(dossier.code)
        events = uow.session.exec(
            select(DossierEvent).where(DossierEvent.dossier_id == fresh.id)
        ).all()
    assert fresh.version == dossier.version and fresh.status == "intake"
    assert [e.event for e in events] == ["receive"]


def test_a_dossier_keeps_the_version_and_rule_set_of_its_receipt(
    ctx: Context, clock: FixedClock
) -> None:
    district_counter = Actor("hk", "counter", "000.00.31.H37")
    at(clock, "2025-06-30T09:00:00+07:00")
    old = submit_dossier(
        ctx,
        district_counter,
        DossierIn(
            procedure_code="1.001612",
            receiving_unit="000.00.31.H37",
            applicant=Applicant(name="Lý Thị Mai"),
        ),
    )
    assert (old.procedure_version, old.rule_set, old.level) == (1, "2018", "district")
    at(clock, "2025-07-01T09:00:00+07:00")
    commune = "000.01.00.H37"
    new = submit_dossier(
        ctx,
        Actor("p", "counter", commune),
        DossierIn(procedure_code="1.001612", receiving_unit=commune, applicant=Applicant(name="A")),
    )
    assert (new.procedure_version, new.rule_set, new.level) == (2, "2025", "commune")
    # the old dossier still moves under its own version after the change
    act(ctx, district_counter, old.code, "forward", None)


def test_demo_summary_equals_a_count_over_the_rows(ctx: Context) -> None:
    result = run_demo(ctx, days=6, seed=7, end=date(2025, 9, 12))
    assert result.submitted > 20
    with ctx.uow() as uow:  # the simulation played its side effects: nothing left to send
        outbox = uow.session.exec(select(Outbox.status, Outbox.claimed_by)).all()
    assert outbox and set(outbox) == {("done", "demo")}
    with ctx.uow() as uow:
        report = {r.key: r for r in on_time_report(uow.session, result.start, result.end)}
        rows = uow.session.exec(select(Dossier)).all()
    lo = datetime.combine(result.start, datetime.min.time(), TZ)
    hi = datetime.combine(result.end + timedelta(days=1), datetime.min.time(), TZ)
    expected: dict[str, Counter[str]] = {}
    for d in rows:
        c = expected.setdefault(d.receiving_unit, Counter())
        if d.received_at and lo <= d.received_at < hi:
            c["received"] += 1
        if d.result_ready_at and lo <= d.result_ready_at < hi:
            c["finished"] += 1
            c[d.timeliness or "?"] += 1
        if (
            d.received_at
            and d.received_at < hi
            and not (d.result_ready_at and d.result_ready_at < hi)
            and not (d.withdrawn_at and d.withdrawn_at < hi)
        ):
            c["in_progress"] += 1
    for unit, c in expected.items():
        if not (c["received"] or c["finished"] or c["in_progress"]):
            continue
        row = report[unit]
        assert (row.received, row.finished, row.early, row.on_time, row.late, row.in_progress) == (
            c["received"], c["finished"], c["early"], c["on_time"], c["late"], c["in_progress"],
        )  # fmt: skip
    assert sum(r.finished for r in report.values()) > 0


def test_concurrent_receipts_get_gap_free_codes(pg_ctx: Context) -> None:
    clock = pg_ctx.clock
    assert isinstance(clock, FixedClock)
    at(clock, "2025-03-03T09:00:00+07:00")
    codes: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def receive_many() -> None:
        barrier.wait()
        for _ in range(10):
            try:
                codes.append(submit_dossier(pg_ctx, COUNTER, criminal_record_request()).code)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

    threads = [threading.Thread(target=receive_many) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    numbers = sorted(int(code.rsplit("-", 1)[1]) for code in codes)
    assert numbers == list(range(1, 81))


def test_two_officers_at_once_one_wins(pg_ctx: Context) -> None:
    dossier = submit_dossier(pg_ctx, COUNTER, criminal_record_request())
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def officer(event: str, reason: str | None) -> None:
        barrier.wait()
        try:
            act(pg_ctx, COUNTER, dossier.code, event, dossier.version, reason=reason)  # type: ignore[arg-type]
            outcomes.append("ok")
        except StaleDossier:
            outcomes.append("conflict")

    threads = [
        threading.Thread(target=officer, args=("forward", None)),
        threading.Thread(target=officer, args=("withdraw", "Công dân rút")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict", "ok"]
    with pg_ctx.uow() as uow:
        fresh = uow.get_dossier(dossier.code)
        events = uow.session.exec(
            select(DossierEvent).where(DossierEvent.dossier_id == fresh.id)
        ).all()
    assert fresh.version == dossier.version + 1
    assert len(events) == 2  # receive + the winner's event, nothing half-written
