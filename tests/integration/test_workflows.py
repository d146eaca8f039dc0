"""The Prefect flows for real: drain-outbox and deadline-watch against a throwaway Prefect
server (``prefect_test_harness``), a real SMTP server (aiosmtpd), the stand-in agency (a real
HTTP server on loopback), the callback endpoint served by uvicorn, and a worker process killed
with SIGKILL in the middle of a drain."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from aiosmtpd.controller import Controller
from prefect.settings import PREFECT_API_URL
from prefect.testing.utilities import prefect_test_harness
from sqlalchemy import func, select, text

from api.app import create_app
from api.cli_workflows import make_fake_agency
from services.agencies import signed_headers
from services.clock import TZ, FixedClock
from services.context import Context
from services.deadlines import late_units
from services.directory import create_officer
from services.dossiers import Applicant, DossierIn, act, submit_dossier
from services.errors import TransitionRejected
from services.outbox import dead_letters
from services.portal_sync import reconcile
from services.settings import Settings
from services.slip import control_slip, render_text
from states.lifecycle import Actor
from storage.models import Outbox
from storage.models_workflows import DeadlineNotice
from tests.conftest import PG_URL
from workflows.deadlines import deadline_watch
from workflows.handoffs import build_runtime, configure, drain_outbox, quiet_prefect, reset_runtime

CENTRE = "000.00.01.H37"
JUSTICE = "000.00.02.H37"
POLICE = "000.00.20.H37"
COUNTER = Actor("motcua1", "counter", CENTRE)
SPECIALIST = Actor("tuphap1", "specialist", JUSTICE)
LEADER = Actor("giamdoc", "leader", JUSTICE)
SECRET = "police-shared-secret"
ROOT = Path(__file__).resolve().parents[2]


# --- servers -------------------------------------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def prefect_server() -> Iterator[str]:
    """One throwaway Prefect server for the module's flow runs (and the worker process)."""
    with prefect_test_harness(server_startup_timeout=120), quiet_prefect():
        yield str(PREFECT_API_URL.value())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        message["X-Rcpt"] = ", ".join(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 OK"

    def subjects(self) -> list[str]:
        return [str(m["Subject"]).strip() for m in self.messages]


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port, enable_SMTPUTF8=True)
    controller.start()
    yield box, port
    controller.stop()


@pytest.fixture
def agency(tmp_path: Path) -> Iterator[str]:
    """The stand-in agency in this process (answers through the callback with SECRET)."""
    server = make_fake_agency(secret=SECRET, answer_delay_ms=100, db=str(tmp_path / "a.db"))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def settings_for(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "outbox_backoff_s": 0.05,
        "outbox_backoff_max_s": 0.2,
        "outbox_http_timeout_s": 5,
        "agency_default_secret": SECRET,
    }
    values.update(overrides)
    return Settings(**values)


def drain() -> dict[str, int]:
    return drain_outbox(max_batches=50)


def mail_lltp(ref: str | None = None) -> DossierIn:
    return DossierIn(
        procedure_code="MOJ.lltp",
        receiving_unit=CENTRE,
        applicant=Applicant(name="Hoàng Văn Thụ", id_number="020099001234", email="thu@example.vn"),
        components=["request_form", "applicant_id"],
        external_ref=ref,
    )


def at(clock: FixedClock, when: str) -> None:
    clock.set(datetime.fromisoformat(when))


# --- deadline watch --------------------------------------------------------------------------
def test_deadline_notices_fire_once_into_the_mailbox(
    ctx: Context, clock: FixedClock, smtp: tuple[Mailbox, int], agency: str
) -> None:
    box, port = smtp
    create_officer(ctx, "giamdoc", "Giám đốc Sở Tư pháp", "leader", JUSTICE)
    configure(
        build_runtime(
            ctx,
            settings_for(smtp_host="127.0.0.1", smtp_port=port, agency_default_endpoint=agency),
        )
    )
    try:
        at(clock, "2025-03-03T09:00:00+07:00")  # Monday
        dossier = submit_dossier(ctx, COUNTER, mail_lltp())
        at(clock, "2025-03-03T10:00:00+07:00")
        dossier = act(ctx, COUNTER, dossier.code, "forward", dossier.version)
        assert dossier.step_due_at == datetime(2025, 3, 4, 16, 0, tzinfo=TZ)  # appraisal
        fired = deadline_watch()
        assert fired.get("step_due_soon", 0) == 0  # 12 working hours left of 12
        drain()

        def watch_twice_then_drain() -> list[dict[str, int]]:
            reports = [deadline_watch(), deadline_watch()]
            drain()
            return reports

        at(clock, "2025-03-04T09:00:00+07:00")  # 5 working hours left: due soon
        first, second = watch_twice_then_drain()
        assert first["step_due_soon"] == 1 and second.get("step_due_soon", 0) == 0
        at(clock, "2025-03-05T09:00:00+07:00")  # appraisal overdue at the Department
        first, second = watch_twice_then_drain()
        assert first["step_overdue"] == 1 and not second.get("step_overdue")
        at(clock, "2025-03-05T10:00:00+07:00")
        dossier = act(ctx, SPECIALIST, dossier.code, "forward", dossier.version)
        at(clock, "2025-03-14T10:00:00+07:00")  # 7 working hours to the due instant
        first, second = watch_twice_then_drain()
        assert first["apology_due"] == 1 and first["step_overdue"] == 1  # the police's step
        assert not second.get("apology_due")
        at(clock, "2025-03-18T09:00:00+07:00")  # past the due instant, no apology slip
        first, second = watch_twice_then_drain()
        assert first["dossier_overdue"] == 1 and not second.get("dossier_overdue")
        watch_twice_then_drain()  # a later sweep repeats nothing

        subjects = Counter(s.split(":")[0] for s in box.subjects())
        assert subjects["Sắp đến hạn"] == 1
        assert subjects["Quá hạn"] == 2  # appraisal (Justice) and verification (police)
        assert subjects["Cần lập Phiếu xin lỗi và hẹn lại ngày trả kết quả"] == 1
        assert subjects["Hồ sơ quá hạn"] == 1
        due_soon = next(
            m for m in box.messages if str(m["Subject"]).strip().startswith("Sắp đến hạn")
        )
        assert "giamdoc@motcua.langson.gov.vn" in due_soon["X-Rcpt"]
        assert f"{JUSTICE}@motcua.langson.gov.vn" in due_soon["X-Rcpt"]
        overdue = next(
            m for m in box.messages if str(m["Subject"]).strip().startswith("Hồ sơ quá hạn")
        )
        assert "giamsat@motcua.langson.gov.vn" in overdue["X-Rcpt"]
        body = overdue.get_content()
        assert "chưa có Phiếu xin lỗi" in body
        assert late_units(ctx, dossier.id) == [JUSTICE, POLICE]  # type: ignore[arg-type]
        with ctx.uow() as uow:
            flag = uow.session.exec(
                select(DeadlineNotice.flag).where(DeadlineNotice.threshold == "dossier_overdue")
            ).one()
        assert flag == ("no_apology",)

        # the overdue dossier cannot be returned before its apology slip; a late slip shows
        dossier = act(ctx, Actor("system.x", "system", POLICE), dossier.code, "forward", None)
        dossier = act(ctx, LEADER, dossier.code, "approve", None, decision_ref="27/LLTP")
        dossier = act(ctx, LEADER, dossier.code, "mark_result_ready", None)
        assert dossier.timeliness == "late"
        with pytest.raises(TransitionRejected) as refused:
            act(ctx, COUNTER, dossier.code, "return_result", None)
        assert refused.value.details["rule"] == "apology_required"
        dossier = act(
            ctx, LEADER, dossier.code, "extend", None,
            reason="Chờ kết quả xác minh của Công an tỉnh",
            new_appointment=datetime(2025, 3, 20, 16, 0, tzinfo=TZ),
        )  # fmt: skip
        assert dossier.apology_late is True
        dossier = act(ctx, COUNTER, dossier.code, "return_result", None)
        assert dossier.status == "returned"
        drain()
        citizen = [m for m in box.messages if m["X-Rcpt"] == "thu@example.vn"]
        code = dossier.code
        assert sorted(str(m["Subject"]).strip() for m in citizen) == [
            f"Hồ sơ {code} đã được tiếp nhận",
            f"Kết quả giải quyết hồ sơ {code} đã sẵn sàng",
            f"Thư xin lỗi và hẹn lại ngày trả kết quả hồ sơ {code}",
        ]
        apology = next(m for m in citizen if str(m["Subject"]).strip().startswith("Thư xin lỗi"))
        assert "20 tháng 03 năm 2025" in apology.get_content()
    finally:
        reset_runtime()


# --- inter-agency end to end -----------------------------------------------------------------
@pytest.fixture
def app_url(ctx: Context, agency: str) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = settings_for(
        agency_default_endpoint=f"{agency}/lltp",
        portal_endpoint=f"{agency}/portal",
        public_base_url=url,
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(ctx, settings), host="127.0.0.1", port=port, log_level="error")
    )
    thread = threading.Thread(target=server.run)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    configure(build_runtime(ctx, settings))
    yield url
    reset_runtime()
    server.should_exit = True
    thread.join()


def test_inter_agency_dossier_through_the_stand_in_agency(
    ctx: Context, clock: FixedClock, agency: str, app_url: str
) -> None:
    at(clock, "2025-03-03T09:00:00+07:00")
    dossier = submit_dossier(ctx, COUNTER, mail_lltp())
    at(clock, "2025-03-03T10:00:00+07:00")
    dossier = act(ctx, COUNTER, dossier.code, "forward", dossier.version)
    at(clock, "2025-03-04T15:00:00+07:00")
    dossier = act(ctx, SPECIALIST, dossier.code, "forward", dossier.version)
    assert dossier.status == "verification"
    at(clock, "2025-03-07T11:00:00+07:00")  # when the police's system answers
    report = drain()  # drain-outbox → the agency → its signed callback → forward
    assert report["dead"] == 0
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with ctx.uow() as uow:
            dossier = uow.get_dossier(dossier.code)
        if dossier.status == "approval":
            break
        time.sleep(0.1)
    assert dossier.status == "approval", "the agency's answer did not move the dossier on"

    stats = httpx.get(f"{agency}/stats").json()
    assert stats["answers_sent"] == 1
    received = httpx.get(f"{agency}/deliveries").json()["deliveries"]
    lltp = [d for d in received if d["path"] == "/lltp"]
    assert len(lltp) == 1
    assert lltp[0]["body"]["dossier"]["code"] == dossier.code
    assert lltp[0]["body"]["dossier"]["applicant"]["id_number"] == "020099001234"

    # the same answer again: accepted, applied once; a forged one: 401
    body = json.dumps(
        {"answer_id": f"answer-{lltp[0]['key']}", "dossier_code": dossier.code}
    ).encode()
    url = f"{app_url}/api/v1/callbacks/agency/{POLICE}"
    again = httpx.post(url, content=body, headers=signed_headers(SECRET, body))
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    forged = httpx.post(url, content=body, headers=signed_headers("wrong-secret", body))
    assert forged.status_code == 401
    stale = httpx.post(
        url, content=body, headers=signed_headers(SECRET, body, now=time.time() - 3600)
    )
    assert stale.status_code == 401

    at(clock, "2025-03-10T09:00:00+07:00")
    dossier = act(ctx, LEADER, dossier.code, "approve", dossier.version, decision_ref="9/LLTP")
    dossier = act(ctx, LEADER, dossier.code, "mark_result_ready", dossier.version)
    dossier = act(ctx, COUNTER, dossier.code, "return_result", dossier.version)
    drain()

    slip = control_slip(ctx, dossier.code)
    forwards = [(r.from_unit, r.to_unit, r.giver) for r in slip.rows if r.event == "forward"]
    assert forwards == [
        (CENTRE, JUSTICE, "motcua1"),
        (JUSTICE, POLICE, "tuphap1"),
        (POLICE, JUSTICE, f"system.{POLICE}"),
    ]
    by_step = {r.step_id: r.result for r in slip.rows if r.step_id}
    assert by_step == {
        "intake": "on_time",
        "appraisal": "on_time",
        "verification": "early",  # entered Tue 15:00, 6 days, answered Fri 11:00
        "approval": "early",
    }
    text_slip = render_text(slip)
    assert "Công an" in text_slip and "Sở Tư pháp" in text_slip
    assert "bước verification: Trước hạn" in text_slip

    deliveries = httpx.get(f"{agency}/deliveries").json()["deliveries"]
    portal = [d["body"] for d in deliveries if d["path"] == "/portal"]
    codes = [p["portal_status"] for p in portal if p["code"] == dossier.code]
    assert codes == ["2", "9", "10"]  # received, result ready, returned
    assert reconcile(ctx) == []
    assert httpx.get(f"{agency}/stats").json()["duplicates"] == 0


# --- a worker killed in the middle of 1,000 handoffs -----------------------------------------
def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(ROOT / ".venv/bin/motcua"), *args],
        env=env,
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def _wait_http(url: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


def test_sigkilled_worker_loses_and_duplicates_nothing(
    pg_ctx: Context, tmp_path: Path, prefect_server: str
) -> None:
    ctx = pg_ctx
    dossiers = []
    for i in range(20):
        dossiers.append(submit_dossier(ctx, COUNTER, mail_lltp(f"crash-{i}")))
    unreachable = "000.00.21.H37"
    with ctx.engine.begin() as conn:
        conn.execute(text("UPDATE outbox SET status = 'done'"))  # keep only the handoffs below
        now = ctx.clock.now()
        rows = [
            {
                "dossier_id": dossiers[i % 20].id,
                "kind": "inter_agency",
                "target": POLICE if i >= 5 else unreachable,
                "payload": {
                    "code": dossiers[i % 20].code,
                    "event": "forward",
                    "step": "verification",
                },
                "status": "pending",
                "attempts": 0,
                "created_at": now,
                "available_at": now,
            }
            for i in range(1000)
        ]
        conn.execute(Outbox.__table__.insert(), rows)  # type: ignore[attr-defined]

    agency_port = free_port()
    env = {
        **os.environ,
        "MOTCUA_DATABASE_URL": PG_URL,
        "MOTCUA_DATA_DIR": str(tmp_path / "data"),
        "MOTCUA_AGENCY_DEFAULT_ENDPOINT": f"http://127.0.0.1:{agency_port}/police",
        "MOTCUA_AGENCY_ENDPOINTS": json.dumps({unreachable: "http://127.0.0.1:9/closed"}),
        "MOTCUA_AGENCY_DEFAULT_SECRET": SECRET,
        "MOTCUA_OUTBOX_BACKOFF_S": "0.1",
        "MOTCUA_OUTBOX_BACKOFF_MAX_S": "0.5",
        "MOTCUA_OUTBOX_LEASE_S": "3",
        # the agency loses one answer in five after storing the delivery: with 6 attempts,
        # 995 × 0.2⁶ ≈ 6 % of runs had a delivered row end as a dead letter (seen 6 Dec);
        # with 12, 995 × 0.2¹² ≈ 4 in a million. The unreachable agency's 5 still go dead
        # within seconds (connection refused, backoff ≤ 0.5 s).
        "MOTCUA_OUTBOX_MAX_ATTEMPTS": "12",
        "MOTCUA_OUTBOX_HTTP_TIMEOUT_S": "2",
        "MOTCUA_OUTBOX_BATCH_SIZE": "50",
        "PREFECT_API_URL": prefect_server,
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    log = tmp_path / "processes.log"
    agency = _spawn(
        ["fake-agency", "--port", str(agency_port), "--fail-rate", "0.2",
         "--db", str(tmp_path / "agency.db")],
        env, log,
    )  # fmt: skip
    worker: subprocess.Popen[bytes] | None = None
    try:
        _wait_http(f"http://127.0.0.1:{agency_port}/stats")
        worker = _spawn(["worker", "--loop", "--no-deadlines", "--poll-s", "0.2"], env, log)

        def stats() -> dict[str, int]:
            return httpx.get(f"http://127.0.0.1:{agency_port}/stats", timeout=5).json()

        deadline = time.monotonic() + 120
        while stats()["unique"] < 300 and time.monotonic() < deadline:
            time.sleep(0.05)
        worker.send_signal(signal.SIGKILL)  # in the middle of the drain
        worker.wait()
        at_kill = stats()
        assert 300 <= at_kill["unique"] < 995, at_kill
        with ctx.engine.connect() as conn:
            claimed = conn.execute(
                select(func.count()).select_from(Outbox).where(Outbox.status == "claimed")
            ).scalar_one()
        worker = _spawn(["worker", "--loop", "--no-deadlines", "--poll-s", "0.2"], env, log)

        def unsettled() -> int:
            with ctx.engine.connect() as conn:
                return int(
                    conn.execute(
                        select(func.count())
                        .select_from(Outbox)
                        .where(
                            Outbox.kind == "inter_agency", Outbox.status.in_(["pending", "claimed"])
                        )  # type: ignore[attr-defined]
                    ).scalar_one()
                )

        deadline = time.monotonic() + 120
        while unsettled() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert unsettled() == 0, log.read_text()[-3000:]
    finally:
        for process in (worker, agency):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(10)

    with ctx.engine.connect() as conn:
        outcome = dict(
            conn.execute(
                select(Outbox.status, func.count())
                .where(Outbox.kind == "inter_agency")
                .group_by(Outbox.status)
            ).all()
        )
        keys = {
            f"motcua-outbox-{i}": (target, status)
            for i, target, status in conn.execute(
                select(Outbox.id, Outbox.target, Outbox.status).where(Outbox.kind == "inter_agency")
            ).all()
        }
    received = {d["key"]: d["copies"] for d in _deliveries(tmp_path / "agency.db")}
    police_keys = {k for k, (target, _) in keys.items() if target == POLICE}
    # every handoff to the police delivered, exactly once by the agency's own count
    assert set(received) == police_keys
    assert len(received) == 995
    assert all(keys[k][1] == "done" for k in police_keys)
    # the five to an unreachable agency: dead letters, listed, supervisors alerted
    assert outcome == {"done": 995, "dead": 5}
    dead = dead_letters(ctx)
    assert sorted(d.target for d in dead if d.kind == "inter_agency") == [unreachable] * 5
    listing = subprocess.run(
        [str(ROOT / ".venv/bin/motcua"), "outbox", "dead-letters", "--json"],
        env=env, cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert {r["target"] for r in json.loads(listing.stdout)} == {unreachable}
    with ctx.engine.connect() as conn:
        alerts = conn.execute(
            select(func.count()).select_from(Outbox).where(Outbox.target == "supervisor")
        ).scalar_one()
    assert alerts == 5
    copies = sum(received.values()) - len(received)
    print(
        f"\ncrash test: {at_kill['unique']} delivered before SIGKILL, {claimed} rows held by the "
        f"dead worker, {len(received)} unique after restart, {copies} duplicate copies deduped "
        f"by key, {sum(1 for d in dead if d.kind == 'inter_agency')} dead letters"
    )


def _deliveries(path: Path) -> list[dict[str, Any]]:
    import sqlite3

    with sqlite3.connect(path) as db:
        return [{"key": k, "copies": c} for k, c in db.execute("SELECT key, copies FROM delivery")]


# --- digitization: OCR of a scanned Vietnamese page ---------------------------------------------
def test_scanned_vietnamese_page_becomes_searchable_text(
    ctx: Context, clock: FixedClock, tmp_path: Path
) -> None:
    import io

    from PIL import Image, ImageDraw, ImageFont

    from services.documents import upload_document
    from storage.models_workflows import DocumentText
    from storage.objects import LocalStore
    from workflows.digitization import digitize_documents, search_dossiers

    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 44)
    page = Image.new("RGB", (1500, 520), "white")
    draw = ImageDraw.Draw(page)
    lines = [
        "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
        "Họ và tên: Nguyễn Thị Hương",
        "Nơi cư trú: phường Đông Kinh, tỉnh Lạng Sơn",
        "Số định danh: 020099001234",
    ]
    for index, line in enumerate(lines):
        draw.text((60, 50 + index * 110), line, fill="black", font=font)
    scan = io.BytesIO()
    page.save(scan, format="PNG")

    at(clock, "2025-03-03T09:00:00+07:00")
    dossier = submit_dossier(ctx, COUNTER, mail_lltp())
    other = submit_dossier(ctx, COUNTER, mail_lltp())
    store = LocalStore(tmp_path / "objects")
    size = scan.tell()
    scan.seek(0)
    upload_document(
        ctx, store, COUNTER, dossier.code, "applicant_id", scan, length=size, file_name="cccd.png"
    )
    configure(build_runtime(ctx, settings_for(), store=store))
    try:
        report = digitize_documents()
        assert report == {"processed": 1, "checksum_failed": 0, "errors": 0}
        assert digitize_documents()["processed"] == 0  # once per document
    finally:
        reset_runtime()
    with ctx.uow() as uow:
        row = uow.session.scalars(select(DocumentText)).one()
    assert row.checksum_ok and row.page_count == 1
    assert row.preview_key and store.exists(row.preview_key)
    assert "Nguyễn Thị Hương" in row.text, row.text
    assert "Lạng Sơn" in row.text, row.text
    assert search_dossiers(ctx, "Hương") == [dossier.code]
    assert search_dossiers(ctx, "đông kinh") == [dossier.code]
    assert search_dossiers(ctx, "Hải Phòng") == []
    assert other.code not in search_dossiers(ctx, "020099001234")


# --- the embedded default: background threads in the server process ------------------------------
def test_embedded_workers_drain_in_the_background(
    ctx: Context, clock: FixedClock, agency: str
) -> None:
    from workflows.deploy import start_embedded_workers

    at(clock, "2025-03-03T09:00:00+07:00")
    dossier = submit_dossier(ctx, COUNTER, mail_lltp())
    dossier = act(ctx, COUNTER, dossier.code, "forward", dossier.version)
    dossier = act(ctx, SPECIALIST, dossier.code, "forward", dossier.version)
    settings = settings_for(agency_default_endpoint=f"{agency}/lltp")
    workers = start_embedded_workers(
        ctx, settings, digitize=False, poll_s=0.1, watch_interval_s=0.5
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with ctx.engine.connect() as conn:
                left = conn.execute(
                    select(func.count()).select_from(Outbox).where(Outbox.status != "done")
                ).scalar_one()
            if not left:
                break
            time.sleep(0.1)
        assert left == 0
    finally:
        workers.stop()
        reset_runtime()
    assert not workers.alive
    lltp = [
        d for d in httpx.get(f"{agency}/deliveries").json()["deliveries"] if d["path"] == "/lltp"
    ]
    assert [d["body"]["dossier"]["code"] for d in lltp] == [dossier.code]
