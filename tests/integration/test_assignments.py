"""Assignment of dossiers to specialists and leaders' delegations: the services on SQLite and
PostgreSQL, the API and the pages through the app."""

from __future__ import annotations

import functools
from datetime import datetime, timedelta

import pytest
from sqlmodel import select

from services.assignments import (
    AlreadyAssigned,
    AssigneeNotInUnit,
    AssignmentRefused,
    DelegationRefused,
    NotAssignable,
    NotUnitLeader,
    NotYourDelegation,
    assign,
    assignments_of,
    delegate,
    list_delegations,
    revoke_delegation,
)
from services.clock import TZ, FixedClock
from services.context import Context
from services.directory import create_officer, hash_password
from services.dossiers import Applicant, DossierIn, act, submit_dossier
from services.errors import InvalidInput, OutsideYourAgency, StaleDossier, TransitionRejected
from services.forms import build_form
from services.slip import control_slip, render_text
from services.worklist import DossierFilter, list_dossiers
from states.lifecycle import Actor
from storage.models import Dossier, DossierEvent
from storage.models_assignments import Assignment

CENTRE = "000.00.01.H37"
JUSTICE = "000.00.02.H37"
POLICE = "000.00.20.H37"
PROVINCE = "000.00.00.H37"
PASSWORD = "mat-khau-thu"

COUNTER = Actor("quay_tt", "counter", CENTRE)
LEADER = Actor("ld_stp", "leader", JUSTICE)
LAN = Actor("cv_lan", "specialist", JUSTICE)
MINH = Actor("cv_minh", "specialist", JUSTICE)
POLICE_LEADER = Actor("ld_ca", "leader", POLICE)
POLICE_SPECIALIST = Actor("cv_ca", "specialist", POLICE)
POLICE_SYSTEM = Actor(f"system@{POLICE}", "system", POLICE)
ADMIN = Actor("quantri_t", "admin", PROVINCE)
OFFICERS = [COUNTER, LEADER, LAN, MINH, POLICE_LEADER, POLICE_SPECIALIST, ADMIN]


def at(clock: FixedClock, text: str) -> datetime:
    instant = datetime.fromisoformat(text)
    clock.set(instant)
    return instant


@functools.cache
def password_hash() -> str:
    return hash_password(PASSWORD)


@pytest.fixture
def people(ctx: Context) -> None:
    for a in OFFICERS:
        create_officer(
            ctx, a.username, a.username, a.role, a.unit_code, password_hash=password_hash()
        )


def at_appraisal(ctx: Context, n: int = 1) -> list[str]:
    """``n`` criminal-record dossiers received at the centre and forwarded to Justice."""
    codes = []
    for i in range(n):
        dossier = submit_dossier(
            ctx,
            COUNTER,
            DossierIn(
                procedure_code="MOJ.lltp",
                receiving_unit=CENTRE,
                applicant=Applicant(name=f"Hoàng Văn Đức {i}", id_number=f"02019000{i:04d}"),
                components=["request_form", "applicant_id"],
            ),
        )
        act(ctx, COUNTER, dossier.code, "forward", None)
        codes.append(dossier.code)
    return codes


def dossier(ctx: Context, code: str) -> Dossier:
    with ctx.uow() as uow:
        return uow.get_dossier(code)


def history(ctx: Context, code: str) -> list[Assignment]:
    return assignments_of(ctx, ADMIN, code)[1]


# --- services, both databases -------------------------------------------------------------------


def test_a_leader_assigns_a_batch_and_each_assignment_is_recorded(
    ctx: Context, people: None
) -> None:
    clock = ctx.clock
    assert isinstance(clock, FixedClock)
    codes = at_appraisal(ctx, 3)
    before = {c: dossier(ctx, c).version for c in codes}
    when = at(clock, "2025-03-03T10:15:00+07:00")
    done = assign(ctx, LEADER, codes, LAN.username, "Phân công thụ lý hồ sơ LLTP")
    assert [a.code for a in done] == codes
    for item in done:
        row = dossier(ctx, item.code)
        assert row.assignee == LAN.username
        assert row.version == item.version == before[item.code] + 1  # the row's version moved
        (record,) = history(ctx, item.code)
        assert (record.kind, record.assignee, record.previous_assignee) == (
            "assign",
            "cv_lan",
            None,
        )
        assert (record.assigned_by, record.on_behalf_of, record.at) == ("ld_stp", None, when)
        assert (record.step_id, record.unit_code) == ("appraisal", JUSTICE)
        assert record.reason == "Phân công thụ lý hồ sơ LLTP"
    # the specialist's worklist: the dossiers assigned to them
    mine = list_dossiers(ctx, LAN, DossierFilter(assignee=LAN.username, open_only=True))
    assert sorted(d.code for d in mine) == sorted(codes)
    assert list_dossiers(ctx, MINH, DossierFilter(assignee=MINH.username)) == []


def test_reassignment_records_the_previous_assignee(ctx: Context, people: None) -> None:
    clock = ctx.clock
    assert isinstance(clock, FixedClock)
    (code,) = at_appraisal(ctx)
    assign(ctx, LEADER, [code], LAN.username, "Phân công thụ lý")
    clock.advance(timedelta(hours=1))
    with pytest.raises(AssignmentRefused) as refused:  # the same person again: nothing to do
        assign(ctx, LEADER, [code], LAN.username, "Lại")
    assert isinstance(refused.value.failures[0][1], AlreadyAssigned)
    with pytest.raises(InvalidInput):  # every assignment says why
        assign(ctx, LEADER, [code], MINH.username, "  ")
    assign(ctx, LEADER, [code], MINH.username, "Chuyên viên Lan nghỉ phép")
    first, second = history(ctx, code)
    assert (first.kind, first.assignee) == ("assign", "cv_lan")
    assert (second.kind, second.assignee, second.previous_assignee) == (
        "reassign", "cv_minh", "cv_lan",
    )  # fmt: skip
    assert second.reason == "Chuyên viên Lan nghỉ phép" and second.at > first.at
    assert dossier(ctx, code).assignee == MINH.username


def test_only_a_leader_of_the_step_unit_assigns_and_a_batch_is_all_or_nothing(
    ctx: Context, people: None
) -> None:
    codes = at_appraisal(ctx, 2)
    # the third one is still at the counter's intake step (unit of the centre)
    waiting = submit_dossier(
        ctx,
        COUNTER,
        DossierIn(
            procedure_code="MOJ.lltp",
            receiving_unit=CENTRE,
            applicant=Applicant(name="Vi Thị Hoa"),
            components=["request_form", "applicant_id"],
        ),
    ).code
    for actor in (LAN, POLICE_LEADER, COUNTER):
        with pytest.raises(AssignmentRefused) as refused:
            assign(ctx, actor, codes, MINH.username, "Phân công")
        assert [c for c, _ in refused.value.failures] == codes
        assert all(isinstance(e, NotUnitLeader) for _, e in refused.value.failures)
    # one dossier of the batch cannot be assigned: none is, and the error names it
    with pytest.raises(AssignmentRefused) as refused:
        assign(ctx, LEADER, [*codes, waiting, "000.00.01.H37-250303-9999"], LAN.username, "x")
    failures = dict(refused.value.failures)
    assert set(failures) == {waiting, "000.00.01.H37-250303-9999"}
    assert isinstance(failures[waiting], NotUnitLeader)  # intake is the centre's step
    assert failures["000.00.01.H37-250303-9999"].code == "dossier_not_found"
    assert all(dossier(ctx, c).assignee is None and history(ctx, c) == [] for c in codes)
    # a leader of a unit the dossier never passes through does not even see it
    create_officer(ctx, "ld_xa", "ld_xa", "leader", "000.00.05.H37")
    with pytest.raises(AssignmentRefused) as refused:
        assign(ctx, Actor("ld_xa", "leader", "000.00.05.H37"), codes[:1], LAN.username, "x")
    assert isinstance(refused.value.failures[0][1], OutsideYourAgency)
    # a version seen before a change is refused (optimistic locking)
    stale = dossier(ctx, codes[0]).version - 1
    with pytest.raises(AssignmentRefused) as refused:
        assign(ctx, LEADER, codes, LAN.username, "x", expected={codes[0]: stale})
    assert isinstance(refused.value.failures[0][1], StaleDossier)
    with pytest.raises(InvalidInput):
        assign(ctx, LEADER, [codes[0], codes[0]], LAN.username, "x")


def test_only_specialists_of_that_unit_are_given_dossiers(ctx: Context, people: None) -> None:
    (code,) = at_appraisal(ctx)
    for other in (POLICE_SPECIALIST.username, LEADER.username, COUNTER.username):
        with pytest.raises(AssignmentRefused) as refused:
            assign(ctx, LEADER, [code], other, "Phân công")
        assert isinstance(refused.value.failures[0][1], AssigneeNotInUnit)
    assert history(ctx, code) == []


def test_the_assignee_follows_the_step(ctx: Context, people: None) -> None:
    """Forwarded to another unit, nobody of Justice holds it; sent back to appraisal, the one
    last assigned there has it again."""
    (code,) = at_appraisal(ctx)
    assign(ctx, LEADER, [code], LAN.username, "Phân công")
    act(ctx, LAN, code, "forward", None)
    row = dossier(ctx, code)
    assert (row.status, row.assignee) == ("verification", None)
    with pytest.raises(AssignmentRefused) as refused:  # the police's step: their leader's call
        assign(ctx, LEADER, [code], MINH.username, "x")
    assert isinstance(refused.value.failures[0][1], NotUnitLeader)
    act(ctx, POLICE_SYSTEM, code, "send_back", None, reason="Thiếu thông tin nơi cư trú")
    row = dossier(ctx, code)
    assert (row.status, row.assignee) == ("appraisal", LAN.username)
    act(ctx, LAN, code, "request_supplement", None, reason="Thiếu bản sao CCCD")
    with pytest.raises(AssignmentRefused) as refused:  # waiting for the applicant's papers
        assign(ctx, LEADER, [code], MINH.username, "x")
    assert isinstance(refused.value.failures[0][1], NotAssignable)
    act(ctx, COUNTER, code, "supplement", None)
    assert dossier(ctx, code).assignee == LAN.username


def test_a_delegation_holds_only_during_its_period_on_the_working_clock(
    ctx: Context, people: None
) -> None:
    clock = ctx.clock
    assert isinstance(clock, FixedClock)
    codes = at_appraisal(ctx, 4)
    start = datetime(2025, 3, 4, 7, 30, tzinfo=TZ)
    end = datetime(2025, 3, 5, 17, 30, tzinfo=TZ)
    with pytest.raises(NotUnitLeader):  # only a leader delegates
        delegate(ctx, LAN, MINH.username, start, end, "Đi công tác")
    with pytest.raises(DelegationRefused):  # to someone of the same unit
        delegate(ctx, LEADER, POLICE_SPECIALIST.username, start, end, "Đi công tác")
    with pytest.raises(InvalidInput):
        delegate(ctx, LEADER, MINH.username, end, start, "Đi công tác")
    given = delegate(ctx, LEADER, MINH.username, start, end, "Lãnh đạo đi công tác Hà Nội")
    assert (given.leader, given.deputy, given.unit_code, given.created_by) == (
        "ld_stp", "cv_minh", JUSTICE, "ld_stp",
    )  # fmt: skip
    with pytest.raises(DelegationRefused):  # the same period twice
        delegate(ctx, LEADER, MINH.username, start, end, "Lần nữa")

    at(clock, "2025-03-04T07:29:00+07:00")  # before
    with pytest.raises(AssignmentRefused):
        assign(ctx, MINH, codes[:1], LAN.username, "Phân công")
    at(clock, "2025-03-04T07:30:00+07:00")  # from the first minute
    assert list_delegations(ctx, MINH, active_only=True)[0].id == given.id
    (done,) = assign(ctx, MINH, codes[:1], LAN.username, "Phân công thay lãnh đạo")
    assert (done.assignment.assigned_by, done.assignment.on_behalf_of) == ("cv_minh", "ld_stp")
    assert done.assignment.delegation_id == given.id
    # the delegated leader's lifecycle events: approve at the leader's step, in the leader's name
    act(ctx, LAN, codes[1], "forward", None)
    act(ctx, POLICE_SYSTEM, codes[1], "forward", None)
    approved = act(ctx, MINH, codes[1], "approve", None, decision_ref="LLTP-9/2025")
    assert approved.status == "approved"
    with ctx.uow() as uow:
        event = uow.session.exec(
            select(DossierEvent).where(
                DossierEvent.dossier_id == approved.id, DossierEvent.event == "approve"
            )
        ).one()
    assert (event.actor_username, event.actor_role, event.actor_unit) == (
        "cv_minh", "leader", JUSTICE,
    )  # fmt: skip
    assert event.data["on_behalf_of"] == "ld_stp"
    # a plain specialist still cannot approve
    act(ctx, LAN, codes[2], "forward", None)
    act(ctx, POLICE_SYSTEM, codes[2], "forward", None)
    with pytest.raises(TransitionRejected):
        act(ctx, LAN, codes[2], "approve", None, decision_ref="x")

    at(clock, "2025-03-05T17:30:00+07:00")  # the period is over
    with pytest.raises(AssignmentRefused):
        assign(ctx, MINH, codes[3:], LAN.username, "Phân công")
    with pytest.raises(TransitionRejected):
        act(ctx, MINH, codes[2], "approve", None, decision_ref="x")
    assert list_delegations(ctx, MINH, active_only=True) == []


def test_a_revoked_delegation_stops_at_once(ctx: Context, people: None) -> None:
    clock = ctx.clock
    assert isinstance(clock, FixedClock)
    codes = at_appraisal(ctx, 2)
    now = at(clock, "2025-03-03T09:00:00+07:00")
    given = delegate(ctx, LEADER, MINH.username, now, now + timedelta(days=7), "Nghỉ phép")
    assign(ctx, MINH, codes[:1], LAN.username, "Phân công")
    with pytest.raises(NotYourDelegation):
        revoke_delegation(ctx, MINH, given.id or 0)
    clock.advance(timedelta(minutes=30))
    revoked = revoke_delegation(ctx, LEADER, given.id or 0, "Đã về cơ quan")
    assert (revoked.revoked_by, revoked.revoke_reason) == ("ld_stp", "Đã về cơ quan")
    with pytest.raises(AssignmentRefused):
        assign(ctx, MINH, codes[1:], LAN.username, "Phân công")
    with pytest.raises(DelegationRefused):
        revoke_delegation(ctx, LEADER, given.id or 0)
    assert list_delegations(ctx, LEADER)[0].revoked_at is not None


def test_the_slip_lists_every_assignment(ctx: Context, people: None) -> None:
    clock = ctx.clock
    assert isinstance(clock, FixedClock)
    (code,) = at_appraisal(ctx)
    at(clock, "2025-03-03T10:00:00+07:00")
    assign(ctx, LEADER, [code], LAN.username, "Phân công thụ lý")
    at(clock, "2025-03-03T14:00:00+07:00")
    assign(ctx, LEADER, [code], MINH.username, "Chuyên viên Lan nghỉ ốm")
    slip = control_slip(ctx, code)
    assert [r.event for r in slip.rows] == ["receive", "forward"]  # transitions unchanged
    timeline = [(r.kind, r.event, r.giver, r.receiver, r.note) for r in slip.timeline]
    assert timeline == [
        ("event", "receive", "quay_tt", None, None),
        ("event", "forward", "quay_tt", None, None),
        ("assignment", "assign", "ld_stp", "cv_lan", "Phân công thụ lý"),
        ("assignment", "reassign", "ld_stp", "cv_minh", "Chuyên viên Lan nghỉ ốm"),
    ]
    text = render_text(slip)
    assert "10 giờ 00 phút, ngày 03 tháng 03 năm 2025 | Phân công thụ lý" in text
    assert "(ld_stp) → nhận: Sở Tư pháp tỉnh Lạng Sơn (cv_minh)" in text
    assert "Phân công lại (trước: cv_lan)" in text
    form = build_form(ctx, LEADER, code, "control_slip", "http://127.0.0.1:8000")
    rows = [r for r in form.table_rows if r[1].startswith("Phân công")]
    assert len(rows) == 2 and rows[1][3].endswith("(cv_minh)") and rows[1][5].endswith("nghỉ ốm")
