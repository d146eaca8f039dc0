"""Feedback end to end through the services and the app (each test on SQLite and PostgreSQL);
the Decision 766 feedback figures equal a count over the rows."""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import select
from typer.testing import CliRunner

from api import cli
from api.app import create_app
from services.clock import TZ, FixedClock, timeliness
from services.context import Context
from services.directory import create_officer, hash_password
from services.errors import TransitionRejected
from services.feedback import (
    FeedbackIn,
    RatingRejected,
    StaleFeedback,
    act_on_feedback,
    feedback_events,
    get_feedback,
    rate_answer,
    search_published,
    submit_feedback,
)
from services.indicators_feedback import feedback_indicators, rate
from services.settings import Settings, get_settings
from states.lifecycle import Actor
from storage.models_feedback import FeedbackItem
from storage.objects import LocalStore

JUSTICE = "000.00.02.H37"
HOME = "000.00.05.H37"
COUNTER = Actor("quay_stp", "counter", JUSTICE)
SPECIALIST = Actor("cv_stp", "specialist", JUSTICE)
LEADER = Actor("ld_stp", "leader", JUSTICE)
ROOT = Path(__file__).resolve().parents[2]


def at(clock: FixedClock, text: str) -> None:
    clock.set(datetime.fromisoformat(text))


def send_feedback(ctx: Context, consent: bool = True, subject: str = "Thủ tục") -> FeedbackItem:
    return submit_feedback(
        ctx,
        FeedbackIn(
            author_name="Nguyễn Văn An",
            author_contact="0912000111",
            procedure_code="MOJ.lltp",  # competent agency: the Department of Justice
            subject=subject,
            text="Đề nghị bỏ yêu cầu nộp bản chụp Căn cước công dân khi đã có CSDL dân cư",
            author_consent=consent,
        ),
    )


def handle(ctx: Context, clock: FixedClock, code: str, when: str) -> FeedbackItem:
    """Classify, assign, draft now; approve at ``when``."""
    act_on_feedback(ctx, COUNTER, code, "classify", category="regulation", competent_agency=JUSTICE)
    act_on_feedback(ctx, LEADER, code, "assign", assignee=SPECIALIST.username)
    act_on_feedback(ctx, SPECIALIST, code, "draft_answer", answer="Đã kiến nghị sửa đổi")
    at(clock, when)
    return act_on_feedback(ctx, LEADER, code, "approve_answer")


def test_feedback_end_to_end_with_step_deadlines(ctx: Context, clock: FixedClock) -> None:
    at(clock, "2025-03-03T08:00:00+07:00")  # Monday
    item = send_feedback(ctx)
    assert item.code.startswith("PAKN-250303-0001-") and len(item.code) == 21
    assert item.agency_code == JUSTICE and item.status == "received"
    assert item.due_at == datetime(2025, 3, 24, 8, 0, tzinfo=TZ)  # 15 working days
    assert item.step_due_at == datetime(2025, 3, 5, 8, 0, tzinfo=TZ)  # 2 days to classify

    at(clock, "2025-03-04T09:00:00+07:00")
    item = act_on_feedback(
        ctx, SPECIALIST, item.code, "request_information", reason="Thiếu địa chỉ"
    )
    at(clock, "2025-03-06T09:00:00+07:00")  # after the 2-day share: the step was late
    item = act_on_feedback(
        ctx, COUNTER, item.code, "classify", item.version, category="regulation",
        competent_agency=JUSTICE,
    )  # fmt: skip
    with pytest.raises(StaleFeedback):
        act_on_feedback(ctx, LEADER, item.code, "assign", item.version - 1, assignee="cv_stp")
    with pytest.raises(TransitionRejected) as caught:
        act_on_feedback(ctx, Actor("x", "leader", HOME), item.code, "assign", assignee="cv")
    assert caught.value.details["rule"] == "wrong_unit"
    act_on_feedback(ctx, LEADER, item.code, "assign", item.version, assignee="cv_stp")
    act_on_feedback(ctx, SPECIALIST, item.code, "draft_answer", answer="Đã kiến nghị Bộ Tư pháp")
    with pytest.raises(RatingRejected):
        rate_answer(ctx, item.code, satisfied=True)  # nothing approved yet
    at(clock, "2025-03-20T10:00:00+07:00")
    item = act_on_feedback(ctx, LEADER, item.code, "approve_answer")
    assert item.status == "handled" and item.timeliness == "early"
    assert search_published(ctx, "Căn cước") == []  # not published yet
    item = act_on_feedback(ctx, COUNTER, item.code, "publish")
    assert [i.code for i in search_published(ctx, "Căn cước")] == [item.code]
    assert search_published(ctx, "không có từ này") == []
    item = rate_answer(ctx, item.code.lower(), satisfied=False)
    assert item.satisfaction == "dissatisfied"
    with pytest.raises(RatingRejected):
        rate_answer(ctx, item.code, satisfied=True)  # once
    item = act_on_feedback(ctx, COUNTER, item.code, "close")
    assert item.status == "closed" and item.finished_at is not None

    events = feedback_events(ctx, item.code)
    assert [e.event for e in events] == [
        "receive", "request_information", "classify", "assign", "draft_answer",
        "approve_answer", "publish", "rate", "close",
    ]  # fmt: skip
    by_event = {e.event: e for e in events}
    # the 5-day limit of an information request, counted from receipt
    assert by_event["request_information"].step_due_at == datetime(2025, 3, 10, 8, 0, tzinfo=TZ)
    assert by_event["request_information"].step_timeliness == "early"
    assert by_event["classify"].step_timeliness == "late"  # 2-day share ran out on 5/3 08:00
    assert by_event["approve_answer"].data["timeliness"] == "early"


def test_rejection_is_held_to_two_working_days(ctx: Context, clock: FixedClock) -> None:
    at(clock, "2025-03-07T16:00:00+07:00")  # Friday after 15:00: the count starts on Monday
    item = send_feedback(ctx)
    assert item.due_at == datetime(2025, 3, 28, 17, 30, tzinfo=TZ)  # ends on 17:30
    at(clock, "2025-03-11T10:00:00+07:00")  # Tuesday: within 2 working days from Monday 07:30
    item = act_on_feedback(ctx, COUNTER, item.code, "reject", reason="Khiếu nại, không phải PAKN")
    assert item.status == "rejected" and item.rejection_reason
    assert feedback_events(ctx, item.code)[-1].step_timeliness == "on_time"
    other = send_feedback(ctx)
    item = act_on_feedback(
        ctx, COUNTER, other.code, "forward", to_agency=HOME, reason="Thuộc thẩm quyền Sở Tài chính"
    )
    assert item.status == "forwarded" and item.forwarded_to == HOME


def test_indicators_by_hand(ctx: Context, clock: FixedClock) -> None:
    at(clock, "2025-03-03T08:00:00+07:00")
    a, b, c, d, e = (send_feedback(ctx, subject=s) for s in "ABCDE")
    handle(ctx, clock, a.code, "2025-03-10T09:00:00+07:00")  # early
    at(clock, "2025-03-03T08:00:00+07:00")
    handle(ctx, clock, b.code, "2025-03-24T08:00:00+07:00")  # on the due instant: on time
    at(clock, "2025-03-03T08:00:00+07:00")
    handle(ctx, clock, c.code, "2025-03-25T09:00:00+07:00")  # late
    rate_answer(ctx, a.code, satisfied=True)
    rate_answer(ctx, b.code, satisfied=False)
    act_on_feedback(ctx, COUNTER, e.code, "reject", reason="ngoài phạm vi")  # not in scope
    # d is never handled: late once its due instant has passed
    as_of = datetime(2025, 4, 1, 8, 0, tzinfo=TZ)
    with ctx.uow() as uow:
        march = feedback_indicators(uow.session, date(2025, 3, 1), date(2025, 3, 31), as_of)
        early_march = feedback_indicators(uow.session, date(2025, 3, 1), date(2025, 3, 23), as_of)
        before_due = feedback_indicators(
            uow.session, date(2025, 3, 1), date(2025, 3, 31), datetime(2025, 3, 24, 8, tzinfo=TZ)
        )
    assert len(march) == 1
    row = march[0]
    assert (row.agency, row.all, row.early, row.on_time, row.late, row.dissatisfied) == (
        JUSTICE, 4, 1, 1, 2, 1,
    )  # fmt: skip
    assert row.on_time_rate == Decimal("50.00")  # (1 + 1) / 4
    assert row.satisfaction_rate == Decimal("25.00")  # (4 − (2 late + 1 dissatisfied)) / 4
    assert row.on_time_points == Decimal("3.00")
    assert [(r.all, r.early) for r in early_march] == [(1, 1)]
    # before the due instant has passed, c and d are not yet reckoned (b is, handled at 08:00)
    assert [(r.all, r.late) for r in before_due] == [(2, 0)]
    assert d.code  # d stays open


def expected_from_rows(
    items: list[FeedbackItem], lo: date, hi: date, as_of: datetime
) -> dict[str, tuple[int, int, int]]:
    """An independent recount of the 766 definitions over the rows: (all, on time, satisfied)."""
    out: dict[str, list[int]] = {}
    for item in items:
        if item.status in ("rejected", "forwarded"):
            continue
        handled_in_time = item.handled_at is not None and item.handled_at <= item.due_at
        if handled_in_time:
            assert item.handled_at is not None
            day = item.handled_at.astimezone(TZ).date()
        elif item.due_at < as_of:
            day = item.due_at.astimezone(TZ).date()
        else:
            continue
        if not lo <= day <= hi:
            continue
        counts = out.setdefault(item.agency_code, [0, 0, 0])
        counts[0] += 1
        counts[1] += handled_in_time
        counts[2] += handled_in_time and item.satisfaction != "dissatisfied"
    return {k: (v[0], v[1], v[2]) for k, v in out.items()}


def test_indicators_equal_a_count_over_the_rows(ctx: Context, clock: FixedClock) -> None:
    rng = random.Random(766)
    agencies = {JUSTICE: (COUNTER, LEADER, SPECIALIST)}
    home_counter = Actor("quay_stc", "counter", HOME)
    home_leader = Actor("ld_stc", "leader", HOME)
    home_specialist = Actor("cv_stc", "specialist", HOME)
    agencies[HOME] = (home_counter, home_leader, home_specialist)
    start = datetime(2025, 2, 3, 9, 0, tzinfo=TZ)
    for n in range(24):
        agency = rng.choice(sorted(agencies))
        counter, leader, specialist = agencies[agency]
        clock.set(start + timedelta(days=rng.randrange(0, 40), hours=rng.randrange(0, 8)))
        item = submit_feedback(
            ctx,
            FeedbackIn(author_name=f"Người {n}", subject=f"PAKN {n}", text="…", agency_code=agency),
        )
        fate = rng.choice(["handled", "handled", "handled", "open", "rejected", "forwarded"])
        if fate == "rejected":
            act_on_feedback(ctx, counter, item.code, "reject", reason="ngoài phạm vi")
            continue
        if fate == "forwarded":
            other = HOME if agency == JUSTICE else JUSTICE
            act_on_feedback(
                ctx, counter, item.code, "forward", to_agency=other, reason="thẩm quyền"
            )
            continue
        act_on_feedback(
            ctx, counter, item.code, "classify", category="officer_conduct", competent_agency=agency
        )
        act_on_feedback(ctx, leader, item.code, "assign", assignee=specialist.username)
        act_on_feedback(ctx, specialist, item.code, "draft_answer", answer="Trả lời")
        if fate == "open":
            continue
        clock.advance(timedelta(days=rng.randrange(1, 30), hours=rng.randrange(0, 5)))
        act_on_feedback(ctx, leader, item.code, "approve_answer")
        if rng.random() < 0.7:
            rate_answer(ctx, item.code, satisfied=rng.random() < 0.6)
    as_of = datetime(2025, 4, 15, 12, 0, tzinfo=TZ)
    with ctx.uow() as uow:
        items = list(uow.session.exec(select(FeedbackItem)).all())
        for lo, hi in [
            (date(2025, 2, 1), date(2025, 2, 28)),
            (date(2025, 3, 1), date(2025, 3, 31)),
            (date(2025, 2, 1), date(2025, 4, 30)),
        ]:
            rows = feedback_indicators(uow.session, lo, hi, as_of)
            expected = expected_from_rows(items, lo, hi, as_of)
            got = {
                r.agency: (r.all, r.handled_on_time, r.all - r.dissatisfied_or_late) for r in rows
            }
            assert got == expected
            for r in rows:
                assert r.early + r.on_time + r.late == r.all
                assert r.on_time_rate == rate(expected[r.agency][1], expected[r.agency][0])
                assert r.satisfaction_rate == rate(expected[r.agency][2], expected[r.agency][0])
    # the timeliness stored at approval agrees with the clock
    for item in items:
        if item.handled_at is not None:
            assert item.timeliness == timeliness(item.handled_at, item.due_at)
    whole = {
        k: v
        for k, v in expected_from_rows(items, date(2025, 2, 1), date(2025, 4, 30), as_of).items()
    }
    assert sum(v[0] for v in whole.values()) > 10  # the data set exercised the definition


# --- through the app: the public page, the officer pages, the report ----------------------------
PASSWORD = "mat-khau-thu"


def png_bytes() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def client(ctx: Context, tmp_path: Path) -> Iterator[TestClient]:
    hashed = hash_password(PASSWORD)
    for user in (COUNTER, SPECIALIST, LEADER):
        create_officer(
            ctx, user.username, user.username, user.role, user.unit_code, password_hash=hashed
        )
    app = create_app(ctx, Settings(secret_key="test-secret"))
    app.state.object_store = LocalStore(tmp_path / "objects")
    with TestClient(app, client=("127.0.0.1", 50001)) as client:
        yield client


def sign_in(client: TestClient, username: str) -> None:
    client.cookies.clear()
    response = client.post(
        "/signin", data={"username": username, "password": PASSWORD}, follow_redirects=False
    )
    assert response.status_code == 303, response.text


def officer_post(client: TestClient, code: str, event: str, **form: str) -> None:
    page = client.get(f"/can-bo/phan-anh/{code}")
    assert page.status_code == 200
    version = page.text.split('name="version" value="')[1].split('"')[0]
    response = client.post(
        f"/can-bo/phan-anh/{code}/{event}", data={"version": version, **form},
        follow_redirects=False,
    )  # fmt: skip
    assert response.status_code == 303, response.text


def test_public_page_and_officer_pages_end_to_end(
    client: TestClient,
    ctx: Context,
    clock: FixedClock,
    engine: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    at(clock, "2025-03-03T08:00:00+07:00")
    page = client.get("/phan-anh")
    assert page.status_code == 200 and 'name="author_name"' in page.text
    sent = client.post(
        "/phan-anh",
        data={
            "author_name": "Trần Thị Bình",
            "author_contact": "binh@example.vn",
            "procedure_code": "MOJ.lltp",
            "subject": "Phí cấp Phiếu lý lịch tư pháp",
            "text": "Đề nghị giảm phí cho người cao tuổi",
            "author_consent": "1",
        },
        files={"attachment": ("bien-lai.png", png_bytes(), "image/png")},
        follow_redirects=False,
    )
    assert sent.status_code == 303, sent.text
    code = sent.headers["location"].split("/phan-anh/")[1].split("?")[0]
    follow = client.get(f"/phan-anh/{code}")
    assert follow.status_code == 200 and "Đã tiếp nhận" in follow.text
    assert "Trần Thị Bình" not in follow.text and "binh@example.vn" not in follow.text
    assert client.get(f"/api/v1/feedback/{code}").json()["status"] == "received"
    assert client.get("/phan-anh/PAKN-250303-0001-ZZZZ").status_code in (200, 404)

    assert client.get("/can-bo/phan-anh", follow_redirects=False).status_code == 303  # sign in
    sign_in(client, COUNTER.username)
    listing = client.get("/can-bo/phan-anh")
    assert code in listing.text
    detail = client.get(f"/can-bo/phan-anh/{code}")
    assert "Trần Thị Bình" in detail.text  # the agency's officers see the author
    (attached,) = get_feedback(ctx, code).attachments
    assert attached["key"] == f"feedback/{code}/{attached['sha256']}"
    assert f"/tep/{attached['sha256']}" in detail.text
    assert client.get(f"/can-bo/phan-anh/{code}/tep/{attached['sha256']}").content == png_bytes()
    refused = client.post(
        "/phan-anh",
        data={"author_name": "X", "subject": "Y", "text": "Z"},
        files={"attachment": ("virus.exe", b"MZ\x90\x00 not a document", "image/png")},
    )
    assert refused.status_code == 422  # the type comes from the content, not the name
    with ctx.uow() as uow:
        assert len(uow.session.exec(select(FeedbackItem)).all()) == 1  # nothing recorded
    officer_post(client, code, "classify", category="regulation", competent_agency=JUSTICE)
    sign_in(client, LEADER.username)
    officer_post(client, code, "assign", assignee=SPECIALIST.username)
    sign_in(client, SPECIALIST.username)
    officer_post(client, code, "draft_answer", answer="Sẽ kiến nghị sửa Thông tư về phí")
    at(clock, "2025-03-12T10:00:00+07:00")
    sign_in(client, LEADER.username)
    wrong = client.post(f"/can-bo/phan-anh/{code}/publish", data={"version": "1"})
    assert wrong.status_code == 409  # stale, and not yet approved
    officer_post(client, code, "approve_answer")
    officer_post(client, code, "publish")
    client.cookies.clear()

    follow = client.get(f"/phan-anh/{code}")
    assert "Sẽ kiến nghị sửa Thông tư về phí" in follow.text
    rated = client.post(f"/phan-anh/{code}/danh-gia", data={"satisfied": "yes"})
    assert rated.status_code == 200 and "Hài lòng" in rated.text
    search = client.get("/phan-anh", params={"q": "Thông tư"})
    assert code in search.text
    api = client.get("/api/v1/feedback/published", params={"q": "người cao tuổi"}).json()
    assert [a["code"] for a in api] == [code]
    assert get_feedback(ctx, code).timeliness == "early"

    # the report prints what a count over the rows gives (the CLI, in process)
    monkeypatch.setenv("MOTCUA_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MOTCUA_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    try:
        report = CliRunner().invoke(
            cli.app,
            ["feedback", "report", "--from", "2025-03-01", "--to", "2025-03-31", "--format", "csv"],
        )
    finally:
        get_settings.cache_clear()
    assert report.exit_code == 0, report.output
    lines = report.stdout.splitlines()
    assert lines[0].startswith("agency,all_in_scope,early,on_time,late,dissatisfied")
    assert lines[1] == f"{JUSTICE},1,1,0,0,0,100.00,100.00,6.00,6.00"
    assert lines[2] == "TOTAL,1,1,0,0,0,100.00,100.00,6.00,6.00"
