"""Assignment of dossiers to specialists and leaders' delegations: the services on SQLite and
PostgreSQL, the API and the pages through the app."""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from api.app import create_app
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
from services.settings import Settings
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
    back = act(ctx, POLICE_SYSTEM, code, "send_back", None, reason="Thiếu thông tin nơi cư trú")
    row = dossier(ctx, code)
    assert (row.status, row.assignee) == ("appraisal", LAN.username)
    assert back.assignee == LAN.username  # looked up in the transition's own write
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


# --- API and pages ---------------------------------------------------------------------------


@pytest.fixture
def client(ctx: Context, people: None) -> Iterator[TestClient]:
    app = create_app(ctx, Settings(secret_key="test-secret"))
    with TestClient(app, client=("127.0.0.1", 50001)) as client:
        yield client


def bearer(client: TestClient, username: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/token", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_assignments_and_delegations_over_http(client: TestClient, ctx: Context) -> None:
    clock = ctx.clock
    assert isinstance(clock, FixedClock)
    codes = at_appraisal(ctx, 3)
    leader, lan = bearer(client, "ld_stp"), bearer(client, "cv_lan")
    body = {"dossiers": codes[:2], "assignee": "cv_lan", "reason": "Phân công thụ lý"}
    first = client.post(
        "/api/v1/assignments", json=body, headers={**leader, "Idempotency-Key": "a1"}
    )
    assert first.status_code == 201, first.text
    items = first.json()["items"]
    assert [i["code"] for i in items] == codes[:2]
    assert (
        items[0]["assignment"]["kind"] == "assign"
        and items[0]["assignment"]["assigned_by"] == "ld_stp"
    )
    replay = client.post(
        "/api/v1/assignments", json=body, headers={**leader, "Idempotency-Key": "a1"}
    )
    assert replay.json() == first.json() and replay.headers["Idempotent-Replayed"] == "true"
    # reassign one, with the version seen (its ETag)
    seen = client.get(f"/api/v1/dossiers/{codes[0]}", headers=leader)
    assert seen.json()["assignee"] == "cv_lan"
    again = client.post(
        "/api/v1/assignments",
        json={"dossiers": [{"code": codes[0], "version": seen.json()["version"]}],
              "assignee": "cv_minh", "reason": "Cân đối công việc"},
        headers=leader,
    )  # fmt: skip
    assert again.status_code == 201, again.text
    assert again.json()["items"][0]["assignment"]["previous_assignee"] == "cv_lan"
    listed = client.get(f"/api/v1/dossiers/{codes[0]}/assignments", headers=lan)
    assert listed.status_code == 200
    assert listed.json()["assignee"] == "cv_minh"
    assert [(i["kind"], i["assignee"]) for i in listed.json()["items"]] == [
        ("assign", "cv_lan"), ("reassign", "cv_minh"),
    ]  # fmt: skip
    mine = client.get("/api/v1/dossiers", params={"assignee": "cv_lan"}, headers=lan)
    assert [d["code"] for d in mine.json()["items"]] == [codes[1]]
    slip = client.get(f"/api/v1/dossiers/{codes[0]}/slip", headers=lan).json()
    assert [(a["event"], a["giver"], a["receiver"], a["note"]) for a in slip["assignments"]] == [
        ("assign", "ld_stp", "cv_lan", "Phân công thụ lý"),
        ("reassign", "ld_stp", "cv_minh", "Cân đối công việc"),
    ]

    # refused batch: one problem listing each dossier; nothing assigned
    refused = client.post(
        "/api/v1/assignments",
        json={"dossiers": [codes[2], "000.00.01.H37-250303-9999"], "assignee": "cv_ca",
              "reason": "x"},
        headers=leader,
    )  # fmt: skip
    assert refused.status_code == 409, refused.text
    problem = refused.json()
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert problem["code"] == "assignment_refused" and problem["detail_en"]
    assert {(e["dossier"], e["code"], e["status"]) for e in problem["errors"]} == {
        (codes[2], "assignee_not_in_unit", 422),
        ("000.00.01.H37-250303-9999", "dossier_not_found", 404),
    }
    by_specialist = client.post(
        "/api/v1/assignments", json={**body, "dossiers": [codes[2]]}, headers=lan
    )
    assert by_specialist.status_code == 403  # every refusal is a 403: the batch answers 403
    assert by_specialist.json()["errors"][0]["code"] == "not_unit_leader"
    assert client.get(f"/api/v1/dossiers/{codes[2]}/assignments", headers=lan).json()["items"] == []
    assert (
        client.post(
            "/api/v1/assignments", json={**body, "dossiers": []}, headers=leader
        ).status_code
        == 422
    )

    # delegation: create, list, used by the deputy, revoked
    now = clock.now()
    created = client.post(
        "/api/v1/delegations",
        json={"deputy": "cv_minh", "valid_from": now.isoformat(),
              "valid_to": (now + timedelta(days=2)).isoformat(), "reason": "Đi công tác"},
        headers=leader,
    )  # fmt: skip
    assert created.status_code == 201, created.text
    delegation = created.json()
    assert delegation["active"] and delegation["leader"] == "ld_stp"
    naive = client.post(
        "/api/v1/delegations",
        json={"deputy": "cv_minh", "valid_from": "2025-03-03T09:00:00",
              "valid_to": "2025-03-04T09:00:00", "reason": "x"},
        headers=leader,
    )  # fmt: skip
    assert naive.status_code == 422
    minh = bearer(client, "cv_minh")
    not_leader = {
        "deputy": "cv_lan",
        "valid_from": now.isoformat(),
        "valid_to": (now + timedelta(days=1)).isoformat(),
        "reason": "x",
    }
    assert client.post("/api/v1/delegations", json=not_leader, headers=minh).status_code == 403
    listed_d = client.get("/api/v1/delegations", params={"active": "true"}, headers=minh)
    assert [d["id"] for d in listed_d.json()["items"]] == [delegation["id"]]
    by_deputy = client.post(
        "/api/v1/assignments", json={**body, "dossiers": [codes[2]]}, headers=minh
    )
    assert by_deputy.status_code == 201, by_deputy.text
    assert by_deputy.json()["items"][0]["assignment"]["on_behalf_of"] == "ld_stp"
    assert client.delete(f"/api/v1/delegations/{delegation['id']}", headers=minh).status_code == 403
    gone = client.delete(
        f"/api/v1/delegations/{delegation['id']}", params={"reason": "Đã về"}, headers=leader
    )
    assert gone.status_code == 200 and gone.json()["revoked_by"] == "ld_stp"
    assert not gone.json()["active"]
    assert (
        client.delete(f"/api/v1/delegations/{delegation['id']}", headers=leader).status_code == 409
    )
    assert client.delete("/api/v1/delegations/999999", headers=leader).status_code == 404
    after = client.post(
        "/api/v1/assignments",
        json={**body, "dossiers": [codes[1]], "assignee": "cv_minh"},
        headers=minh,
    )
    assert after.status_code == 403


def signin(client: TestClient, username: str) -> None:
    client.cookies.clear()
    response = client.post(
        "/signin", data={"username": username, "password": PASSWORD}, follow_redirects=False
    )
    assert response.status_code == 303, response.text


def test_the_leader_assigns_from_the_worklist_page(client: TestClient, ctx: Context) -> None:
    codes = at_appraisal(ctx, 3)
    signin(client, "ld_stp")
    page = client.get("/worklist")
    assert page.status_code == 200
    boxes = re.findall(r'name="dossier" value="([^"]+)"', page.text)
    assert sorted(b.split("@")[0] for b in boxes) == sorted(codes)
    assert '<option value="cv_lan">' in page.text and '<option value="cv_minh">' in page.text
    assert 'id="delegate-form"' in page.text
    picked = [b for b in boxes if b.split("@")[0] in codes[:2]]
    done = client.post(
        "/worklist/assign",
        data={"dossier": picked, "assignee": "cv_lan", "reason": "Giao xử lý trong tuần"},
        follow_redirects=False,
    )
    assert done.status_code == 303 and "assigned=2" in done.headers["location"]
    assert "Đã phân công 2 hồ sơ cho cv_lan" in client.get(done.headers["location"]).text
    # the same ticks again: versions moved, nothing assigned, each dossier named
    stale = client.post(
        "/worklist/assign",
        data={"dossier": picked, "assignee": "cv_minh", "reason": "x"},
        follow_redirects=False,
    )
    assert stale.status_code == 409 and stale.text.count("<li>") >= 2
    assert all(dossier(ctx, c).assignee == "cv_lan" for c in codes[:2])
    # delegation form, then the deputy's worklist can assign
    delegated = client.post(
        "/worklist/delegations",
        data={"deputy": "cv_minh", "valid_from": "2025-03-03T07:30", "valid_to": "2025-03-05T17:30",
              "reason": "Đi công tác"},
        follow_redirects=False,
    )  # fmt: skip
    assert delegated.status_code == 303, delegated.text
    assert "Đang hiệu lực" in client.get("/worklist").text
    # the specialist: assigned to me first, then what nobody has yet
    signin(client, "cv_lan")
    lan_page = client.get("/worklist").text
    mine_part, rest = lan_page.split("Hồ sơ chưa phân công tại đơn vị")
    assert codes[0] in mine_part and codes[1] in mine_part and codes[2] not in mine_part
    assert codes[2] in rest and 'name="dossier"' not in lan_page
    signin(client, "cv_minh")
    minh_page = client.get("/worklist").text
    assert "ủy quyền điều hành đơn vị" in minh_page and 'name="dossier"' in minh_page
    # the slip page and Form 05 show the assignments
    dossier_page = client.get(f"/dossiers/{codes[0]}").text
    assert "Phân công thụ lý" in dossier_page and "(cv_lan)" in dossier_page
    form = client.get(f"/dossiers/{codes[0]}/forms/control_slip").text
    assert "Phân công thụ lý" in form and "Giao xử lý trong tuần" in form


def test_two_leaders_at_once_one_assignment_wins(pg_ctx: Context) -> None:
    """Optimistic locking on PostgreSQL: concurrent assignments of one dossier never overwrite
    each other unseen; those that read a changed row are refused, none is half-written."""
    ctx = pg_ctx
    for a in [*OFFICERS, Actor("ld_stp2", "leader", JUSTICE)]:
        create_officer(ctx, a.username, a.username, a.role, a.unit_code)
    (code,) = at_appraisal(ctx)
    before = dossier(ctx, code).version
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def one(leader: str, to: str) -> None:
        barrier.wait()
        try:
            assign(ctx, Actor(leader, "leader", JUSTICE), [code], to, "Phân công")
            outcomes.append("ok")
        except AssignmentRefused as refused:
            outcomes.append(refused.failures[0][1].code)

    threads = [
        threading.Thread(target=one, args=(leader, to))
        for leader, to in [("ld_stp", "cv_lan"), ("ld_stp2", "cv_minh")] * 2
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("ok") >= 1
    assert set(outcomes) - {"ok"} <= {"dossier_changed", "already_assigned"}
    # no lost update: each recorded assignment saw the one before it (a later reader may
    # legitimately reassign), and the row's version counts them
    rows = history(ctx, code)
    assert len(rows) == outcomes.count("ok")
    assert [r.previous_assignee for r in rows] == [None, *(r.assignee for r in rows[:-1])]
    assert [r.kind for r in rows] == ["assign"] + ["reassign"] * (len(rows) - 1)
    current = dossier(ctx, code)
    assert current.assignee == rows[-1].assignee and current.version == before + len(rows)
