"""The Decision 766 feedback figures — feedback handled on time and satisfaction with feedback
handling — on the supervisor dashboard (page and JSON), the 766 score card, the report API and
``motcua report feedback``, each equal to a count over the ``feedback_item`` rows (SQLite and
PostgreSQL); and one feedback item's way from the public page through the officer pages into
those figures."""

from __future__ import annotations

import csv
import io
import random
import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import select
from typer.testing import CliRunner

from api import cli
from api.app import create_app
from services.clock import TZ, FixedClock
from services.context import Context
from services.directory import create_officer, hash_password
from services.feedback import FeedbackIn, act_on_feedback, rate_answer, submit_feedback
from services.settings import Settings, get_settings
from states.lifecycle import Actor
from storage.models_feedback import FeedbackItem
from storage.objects import LocalStore

JUSTICE = "000.00.02.H37"
HOME = "000.00.05.H37"
PROVINCE = "000.00.00.H37"
PASSWORD = "mat-khau-thu"
STAFF = {
    JUSTICE: (
        Actor("quay_stp", "counter", JUSTICE),
        Actor("ld_stp", "leader", JUSTICE),
        Actor("cv_stp", "specialist", JUSTICE),
    ),
    HOME: (
        Actor("quay_stc", "counter", HOME),
        Actor("ld_stc", "leader", HOME),
        Actor("cv_stc", "specialist", HOME),
    ),
}
SUPERVISOR = Actor("giamsat_t", "supervisor", PROVINCE)


def pct(part: int, whole: int) -> str:
    if whole == 0:
        return ""
    return str((Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.01"), ROUND_HALF_UP))


def recount(
    items: list[FeedbackItem], lo: date, hi: date, as_of: datetime, agency: str | None = None
) -> dict[str, dict[str, int]]:
    """The 766 definitions counted item by item, independently of the SQL: in scope = not
    rejected nor forwarded; reckoned on the approval day when approved by the due instant,
    else on the due day once the due instant has passed."""
    out: dict[str, dict[str, int]] = {}
    for item in items:
        if item.status in ("rejected", "forwarded") or (agency and item.agency_code != agency):
            continue
        in_time = item.handled_at is not None and item.handled_at <= item.due_at
        if in_time:
            assert item.handled_at is not None
            day = item.handled_at.astimezone(TZ).date()
        elif item.due_at < as_of:
            day = item.due_at.astimezone(TZ).date()
        else:
            continue
        if not lo <= day <= hi:
            continue
        c = out.setdefault(
            item.agency_code,
            {"all": 0, "early": 0, "on_time": 0, "late": 0, "dissatisfied": 0, "satisfied": 0},
        )
        c["all"] += 1
        if in_time:
            assert item.handled_at is not None
            same_day = item.handled_at.astimezone(TZ).date() == item.due_at.astimezone(TZ).date()
            c["on_time" if same_day else "early"] += 1
            if item.satisfaction == "dissatisfied":
                c["dissatisfied"] += 1
            else:
                c["satisfied"] += 1
        else:
            c["late"] += 1
    return out


def expected_lines(counts: dict[str, dict[str, int]]) -> list[list[str]]:
    """The report's lines (``REPORT_HEADER`` order, without the points) from a recount."""
    lines = []
    keys = sorted(counts)
    total = {k: sum(counts[a][k] for a in keys) for k in next(iter(counts.values()), {})}
    for key, c in [*((a, counts[a]) for a in keys), *([("TOTAL", total)] if keys else [])]:
        on_time = c["early"] + c["on_time"]
        lines.append(
            [
                key, str(c["all"]), str(c["early"]), str(c["on_time"]), str(c["late"]),
                str(c["dissatisfied"]), str(on_time), str(c["satisfied"]),
                pct(on_time, c["all"]), pct(c["satisfied"], c["all"]),
            ]
        )  # fmt: skip
    return lines


@pytest.fixture
def client(ctx: Context, tmp_path: Path) -> Iterator[TestClient]:
    hashed = hash_password(PASSWORD)
    for actor in [SUPERVISOR, *(a for team in STAFF.values() for a in team)]:
        create_officer(
            ctx, actor.username, actor.username, actor.role, actor.unit_code, password_hash=hashed
        )
    app = create_app(ctx, Settings(secret_key="test-secret"))
    app.state.object_store = LocalStore(tmp_path / "objects")
    with TestClient(app, client=("127.0.0.1", 50002)) as test_client:
        yield test_client


def sign_in(client: TestClient, username: str) -> None:
    client.cookies.clear()
    response = client.post(
        "/signin", data={"username": username, "password": PASSWORD}, follow_redirects=False
    )
    assert response.status_code == 303, response.text


def cli_report(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    monkeypatch.setenv("MOTCUA_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MOTCUA_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli.app, ["report", "feedback", *args])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    return result.stdout


def page_rows(html: str) -> dict[str, list[str]]:
    """The dashboard's server-rendered feedback table: agency → its cells."""
    section = html.split('id="feedback-card"')[1].split("</section>")[0]
    rows = {}
    for agency, cells in re.findall(r'<tr[^>]*data-agency="([^"]+)">(.*?)</tr>', section, re.S):
        rows[agency] = [
            re.sub(r"<[^>]+>", "", c).strip()
            for c in re.findall(r"<td[^>]*>(.*?)</td>", cells, re.S)
        ]
    return rows


def test_figures_everywhere_equal_a_count_over_the_rows(
    client: TestClient,
    ctx: Context,
    clock: FixedClock,
    engine: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = random.Random(7766)
    start = datetime(2025, 2, 3, 8, 0, tzinfo=TZ)
    for n in range(30):
        agency = rng.choice(sorted(STAFF))
        counter, leader, specialist = STAFF[agency]
        clock.set(start + timedelta(days=rng.randrange(0, 45), hours=rng.randrange(0, 9)))
        item = submit_feedback(
            ctx,
            FeedbackIn(author_name=f"Người {n}", subject=f"PAKN {n}", text="…", agency_code=agency),
        )
        fate = rng.choice(["handled"] * 4 + ["open", "rejected", "forwarded"])
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
            ctx, counter, item.code, "classify", category="regulation", competent_agency=agency
        )
        act_on_feedback(ctx, leader, item.code, "assign", assignee=specialist.username)
        act_on_feedback(ctx, specialist, item.code, "draft_answer", answer="Trả lời")
        if fate == "open":
            continue
        clock.advance(timedelta(days=rng.randrange(1, 30), hours=rng.randrange(0, 6)))
        act_on_feedback(ctx, leader, item.code, "approve_answer")
        if rng.random() < 0.75:
            rate_answer(ctx, item.code, satisfied=rng.random() < 0.6)
    # later than every due instant: the app's clock and the CLI's real clock reckon alike
    clock.set(datetime(2025, 6, 2, 9, 0, tzinfo=TZ))
    with ctx.uow() as uow:
        items = list(uow.session.exec(select(FeedbackItem)).all())
    periods = [(date(2025, 2, 1), date(2025, 2, 28)), (date(2025, 3, 1), date(2025, 3, 31)),
               (date(2025, 2, 1), date(2025, 5, 31))]  # fmt: skip
    whole = recount(items, *periods[2], clock.now())
    assert sum(c["all"] for c in whole.values()) >= 15  # the data exercise the definitions
    assert sum(c["late"] for c in whole.values()) > 0
    assert sum(c["dissatisfied"] for c in whole.values()) > 0
    assert len(whole) == 2

    sign_in(client, SUPERVISOR.username)
    for lo, hi in periods:
        counts = recount(items, lo, hi, clock.now())
        want = expected_lines(counts)
        span = {"from": lo.isoformat(), "to": hi.isoformat()}
        # the report API (JSON and CSV)
        api = client.get("/api/v1/reports/feedback", params=span).json()
        got = [
            [r["key"], *(str(r[k]) for k in ("all", "early", "on_time", "late", "dissatisfied",
             "handled_on_time", "satisfied")), r["on_time_rate"], r["satisfaction_rate"]]
            for r in [*api["rows"], api["total"]]
        ]  # fmt: skip
        assert got == (want or [["TOTAL", "0", "0", "0", "0", "0", "0", "0", "", ""]])
        text = client.get("/api/v1/reports/feedback", params={**span, "format": "csv"}).text
        api_csv = list(csv.reader(io.StringIO(text)))
        assert [line[:10] for line in api_csv[1:]] == want
        # the dashboard's JSON and its 766 score card
        summary = client.get("/api/v1/dashboard/summary", params=span).json()
        assert summary["feedback"] == {k: api[k] for k in ("rows", "total")}
        cards = {c["agency"]: c for c in summary["score_card"]}
        for agency, c in counts.items():
            by_name = {i["name"]: i for i in cards[agency]["indicators"]}
            on_time = by_name["Phản ánh, kiến nghị xử lý đúng hạn"]
            satisfied = by_name["Hài lòng với việc xử lý phản ánh"]
            assert (on_time["part"], on_time["whole"]) == (c["early"] + c["on_time"], c["all"])
            assert (satisfied["part"], satisfied["whole"]) == (c["satisfied"], c["all"])
            assert on_time["rate"] == pct(c["early"] + c["on_time"], c["all"])
        # the dashboard page, server-rendered
        page = client.get("/dashboard", params=span)
        assert page.status_code == 200
        cells = page_rows(page.text)
        for line in want:
            shown = cells[line[0]]
            assert shown[1:6] == line[1:6]
            assert shown[6:8] == [v or "—" for v in line[8:10]]
        assert set(cells) == {line[0] for line in want} or not want
        # motcua report feedback (CSV, in process against the same database)
        printed = list(csv.reader(io.StringIO(cli_report(
            engine, tmp_path, monkeypatch, "--from", span["from"], "--to", span["to"]
        ))))  # fmt: skip
        assert printed[0][:10] == [
            "agency_code", "all_in_scope", "early", "on_time", "late", "dissatisfied",
            "handled_on_time", "satisfied", "handled_on_time_pct", "satisfaction_pct",
        ]  # fmt: skip
        assert [line[:10] for line in printed[1:]] == want
        assert printed == api_csv

    # a leader sees their own agency only, whatever they ask for
    sign_in(client, STAFF[HOME][1].username)
    lo, hi = periods[2]
    span = {"from": lo.isoformat(), "to": hi.isoformat(), "agency": JUSTICE}
    mine = client.get("/api/v1/reports/feedback", params=span).json()
    assert [r["key"] for r in mine["rows"]] == [HOME]
    assert mine["total"]["all"] == whole[HOME]["all"]
    assert set(page_rows(client.get("/dashboard", params=span).text)) == {HOME, "TOTAL"}
    home_card = client.get("/api/v1/dashboard/summary", params=span).json()["score_card"]
    names = {i["name"] for c in home_card for i in c["indicators"]}
    assert "Phản ánh, kiến nghị xử lý đúng hạn" in names  # with the leader's agency filter too

    xlsx = tmp_path / "feedback.xlsx"
    cli_report(engine, tmp_path, monkeypatch, "--from", "2025-02-01", "--to", "2025-05-31",
               "--format", "xlsx", "--out", str(xlsx))  # fmt: skip
    from openpyxl import load_workbook

    sheet = load_workbook(xlsx).active
    assert sheet is not None
    values = list(sheet.iter_rows(values_only=True))
    want = expected_lines(whole)
    assert [str(v) for v in values[-1][:8]] == want[-1][:8]
    assert values[-1][8] == pytest.approx(float(want[-1][8]))


def officer_post(client: TestClient, code: str, event: str, **form: str) -> None:
    page = client.get(f"/can-bo/phan-anh/{code}")
    assert page.status_code == 200
    version = page.text.split('name="version" value="')[1].split('"')[0]
    response = client.post(
        f"/can-bo/phan-anh/{code}/{event}", data={"version": version, **form},
        follow_redirects=False,
    )  # fmt: skip
    assert response.status_code == 303, response.text


def test_feedback_from_the_public_page_to_the_report(
    client: TestClient,
    ctx: Context,
    clock: FixedClock,
    engine: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counter, leader, specialist = STAFF[JUSTICE]
    clock.set(datetime(2025, 3, 3, 8, 0, tzinfo=TZ))  # Monday; due 24/3 08:00
    codes = []
    for n, subject in enumerate(["Phí lý lịch tư pháp", "Thời hạn cấp phiếu", "Mẫu tờ khai"]):
        client.cookies.clear()
        sent = client.post(
            "/phan-anh",
            data={"author_name": f"Công dân {n}", "procedure_code": "MOJ.lltp",
                  "subject": subject, "text": "Đề nghị đơn giản hóa", "author_consent": "1"},
            follow_redirects=False,
        )  # fmt: skip
        assert sent.status_code == 303, sent.text
        codes.append(sent.headers["location"].split("/phan-anh/")[1].split("?")[0])
    complaint = {
        "author_name": "X",
        "subject": "Khiếu nại",
        "text": "…",
        "procedure_code": "MOJ.lltp",
    }
    sent = client.post("/phan-anh", data=complaint, follow_redirects=False)
    out_of_scope = sent.headers["location"].split("/phan-anh/")[1].split("?")[0]

    sign_in(client, counter.username)
    for code in codes:
        officer_post(client, code, "classify", category="regulation", competent_agency=JUSTICE)
    officer_post(client, out_of_scope, "reject", reason="Khiếu nại, không phải phản ánh")
    sign_in(client, leader.username)
    for code in codes:
        officer_post(client, code, "assign", assignee=specialist.username)
    sign_in(client, specialist.username)
    for code in codes:
        officer_post(client, code, "draft_answer", answer="Đã tiếp thu, kiến nghị sửa đổi")
    clock.set(datetime(2025, 3, 12, 10, 0, tzinfo=TZ))
    sign_in(client, leader.username)  # sessions last 10 hours of the (moved) clock
    officer_post(client, codes[0], "approve_answer")  # early
    officer_post(client, codes[1], "approve_answer")  # early
    clock.set(datetime(2025, 3, 26, 9, 0, tzinfo=TZ))
    sign_in(client, leader.username)
    officer_post(client, codes[2], "approve_answer")  # after the due instant: late
    client.cookies.clear()
    for code, answer in zip(codes, ["yes", "no", "yes"], strict=True):
        assert "Đã tiếp thu" in client.get(f"/phan-anh/{code}").text
        rated = client.post(f"/phan-anh/{code}/danh-gia", data={"satisfied": answer})
        assert rated.status_code == 200  # followed back to the page

    clock.set(datetime(2025, 4, 1, 9, 0, tzinfo=TZ))
    with ctx.uow() as uow:
        items = list(uow.session.exec(select(FeedbackItem)).all())
    counts = recount(items, date(2025, 3, 1), date(2025, 3, 31), clock.now())
    # 3 in scope; 2 early (one dissatisfied), 1 late → 2/3 on time, (3 − 2)/3 satisfied
    assert counts == {
        JUSTICE: {"all": 3, "early": 2, "on_time": 0, "late": 1, "dissatisfied": 1, "satisfied": 1}
    }
    want = expected_lines(counts)
    assert want[0][8:] == ["66.67", "33.33"]

    sign_in(client, SUPERVISOR.username)
    span = {"from": "2025-03-01", "to": "2025-03-31"}
    cells = page_rows(client.get("/dashboard", params=span).text)
    assert cells[JUSTICE][1:] == ["3", "2", "0", "1", "1", "66.67", "33.33"]
    assert cells["TOTAL"][1:] == ["3", "2", "0", "1", "1", "66.67", "33.33"]
    summary = client.get("/api/v1/dashboard/summary", params=span).json()
    (justice,) = [c for c in summary["score_card"] if c["agency"] == JUSTICE]
    by_name = {i["name"]: i for i in justice["indicators"]}
    assert by_name["Phản ánh, kiến nghị xử lý đúng hạn"]["points"] == "4.00"  # 6 × 66.67 %
    assert by_name["Hài lòng với việc xử lý phản ánh"]["points"] == "2.00"
    printed = cli_report(
        engine, tmp_path, monkeypatch, "--from", "2025-03-01", "--to", "2025-03-31"
    )
    lines = list(csv.reader(io.StringIO(printed)))
    assert [line[:10] for line in lines[1:]] == want
    assert lines[1][10:] == ["4.00", "2.00"]
