"""Fees and online payment (each test on SQLite and PostgreSQL): the stand-in gateway is a real
HTTP server on loopback and motcua's callback endpoint is served by uvicorn, so a payment goes
payer → gateway → signed callback → motcua → the dossier moves on. Replayed and forged callbacks
change nothing; the on-time birth registration charges nothing, a late one the fee."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import date, datetime

import httpx
import pytest
import uvicorn
from sqlmodel import select

from api.app import create_app
from api.cli_feedback import FakeGatewayServer
from api.routes.payments import PaymentSettings
from services.clock import TZ, FixedClock
from services.context import Context
from services.dossiers import Applicant, DossierIn, act, submit_dossier
from services.errors import InvalidInput
from services.fees import (
    FeeInput,
    PaymentRequired,
    assess_fee,
    get_charge,
    payment_blocks,
    receive_when_paid,
    record_cash_payment,
    return_when_paid,
)
from services.indicators_feedback import online_payment_share
from services.payments import (
    SIGNATURE_HEADER,
    ForgedCallback,
    HttpGateway,
    callbacks_seen,
    canonical,
    handle_callback,
    payment_of,
    reconcile,
    request_online_payment,
    sign,
)
from services.settings import Settings
from states.lifecycle import Actor
from storage.models import Dossier, DossierEvent
from storage.models_feedback import PaymentCallback

SECRET = "test-payment-secret"
CENTRE = "000.00.01.H37"
JUSTICE = "000.00.02.H37"
WARD = "000.10.31.H37"
COUNTER = Actor("quay_tt", "counter", CENTRE)
WARD_COUNTER = Actor("quay_phuong", "counter", WARD)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def gateway() -> Iterator[FakeGatewayServer]:
    server = FakeGatewayServer("127.0.0.1", 0, SECRET).start()
    yield server
    server.stop()


@pytest.fixture
def app_url(ctx: Context) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = create_app(ctx, Settings(secret_key="test-secret", public_base_url=url))
    app.state.payment_settings = PaymentSettings(secret=SECRET, gateway_name="fakepay")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield url
    server.should_exit = True
    thread.join(timeout=10)


def at(clock: FixedClock, text: str) -> None:
    clock.set(datetime.fromisoformat(text))


def lltp(name: str = "Hoàng Văn Thụ") -> DossierIn:
    return DossierIn(
        procedure_code="MOJ.lltp",
        receiving_unit=CENTRE,
        channel="online",
        applicant=Applicant(name=name, id_number="020099001234"),
        components=["request_form", "applicant_id"],
    )


def snapshot(ctx: Context, code: str) -> tuple[str, int, int, str]:
    with ctx.uow() as uow:
        d = uow.session.exec(select(Dossier).where(Dossier.code == code)).one()
        events = uow.session.exec(select(DossierEvent).where(DossierEvent.dossier_id == d.id)).all()
        state = (d.status, d.version, len(events))
    charge, _ = get_charge(ctx, code)
    return (*state, charge.status)


def test_online_payment_moves_the_dossier_on_and_replays_change_nothing(
    ctx: Context, clock: FixedClock, gateway: FakeGatewayServer, app_url: str
) -> None:
    at(clock, "2025-03-03T09:00:00+07:00")
    dossier = submit_dossier(ctx, COUNTER, lltp(), then=None)  # checked, not yet received
    assert dossier.status == "submitted" and dossier.received_at is None
    charge = assess_fee(ctx, COUNTER, dossier.code, FeeInput(copies=3))
    assert (charge.amount, charge.wait, charge.status) == (205_000, "before_receipt", "unpaid")
    with pytest.raises(PaymentRequired):
        receive_when_paid(ctx, COUNTER, dossier.code, dossier.version)
    assert snapshot(ctx, dossier.code)[0] == "submitted"

    payment = request_online_payment(
        ctx, COUNTER, dossier.code, HttpGateway(gateway.url, SECRET),
        callback_url=f"{app_url}/api/v1/payments/callback/fakepay",
        return_url=f"{app_url}/thanh-toan/ket-qua?code={dossier.code}",
    )  # fmt: skip
    assert payment.status == "pending" and payment.amount == 205_000
    assert payment.qr_payload and "205000" in payment.qr_payload
    again = request_online_payment(
        ctx, COUNTER, dossier.code, HttpGateway(gateway.url, SECRET),
        callback_url="x", return_url="y",
    )  # fmt: skip
    assert again.order_ref == payment.order_ref  # a pending request is reused

    # the payer opens the gateway's page and pays; the gateway calls motcua back, signed
    assert payment.payment_url
    page = httpx.get(payment.payment_url)
    assert page.status_code == 200 and "205.000 đồng" in page.text
    at(clock, "2025-03-03T10:00:00+07:00")
    paid = httpx.post(payment.payment_url, data={"action": "pay"}, follow_redirects=False)
    assert paid.status_code == 303
    assert httpx.get(paid.headers["location"]).text.count("Đã nộp lệ phí") == 1

    found = payment_of(ctx, payment.order_ref)
    assert found is not None and found.status == "paid" and found.gateway_txn
    status, version, events, charge_status = snapshot(ctx, dossier.code)
    assert (status, charge_status) == ("intake", "paid")  # received on payment
    with ctx.uow() as uow:
        received = uow.session.exec(select(Dossier).where(Dossier.code == dossier.code)).one()
    assert received.received_at == datetime(2025, 3, 3, 10, 0, tzinfo=TZ)  # the clock starts now
    assert received.due_at == datetime(2025, 3, 17, 10, 0, tzinfo=TZ)  # 10 working days

    # the same callback again (a replay) changes nothing
    delivered = gateway.gateway.orders[found.gateway_ref or ""].callbacks[0]
    assert delivered["status"] == 200 and json.loads(delivered["answer"])["outcome"] == "applied"
    callback_url = f"{app_url}/api/v1/payments/callback/fakepay"
    replay = httpx.post(
        callback_url,
        content=delivered["body"].encode(),
        headers={SIGNATURE_HEADER: delivered["signature"], "Content-Type": "application/json"},
    )
    assert replay.status_code == 200 and replay.json()["outcome"] == "duplicate"
    assert snapshot(ctx, dossier.code) == (status, version, events, charge_status)
    # a new, validly signed event for an order already paid changes nothing either
    body = json.loads(delivered["body"]) | {"event_id": "EV-SECOND", "amount": 1}
    raw = canonical(body)
    second = httpx.post(callback_url, content=raw, headers={SIGNATURE_HEADER: sign(SECRET, raw)})
    assert second.json()["outcome"] == "ignored"
    assert snapshot(ctx, dossier.code) == (status, version, events, charge_status)
    assert [c.outcome for c in callbacks_seen(ctx, payment.order_ref)] == ["applied", "ignored"]

    # a forged callback (wrong key) for another, unpaid dossier is refused and changes nothing
    other = submit_dossier(ctx, COUNTER, lltp("Lê Thị Hoa"), then=None)
    assess_fee(ctx, COUNTER, other.code, FeeInput(group="student"))
    pending = request_online_payment(
        ctx, COUNTER, other.code, HttpGateway(gateway.url, SECRET),
        callback_url=f"http://127.0.0.1:{free_port()}/nobody-listens", return_url="",
    )  # fmt: skip
    before = snapshot(ctx, other.code)
    forged_body = canonical(
        {"event_id": "EV-FORGED", "order_ref": pending.order_ref, "amount": pending.amount,
         "status": "paid", "txn_id": "X"}
    )  # fmt: skip
    for signature in (sign("wrong-key", forged_body), "", "00" * 32):
        forged = httpx.post(
            callback_url, content=forged_body, headers={SIGNATURE_HEADER: signature}
        )
        assert forged.status_code == 401 and forged.json()["code"] == "callback_signature_invalid"
    tampered = json.loads(delivered["body"]) | {"order_ref": pending.order_ref}
    forged = httpx.post(  # a real signature over another body
        callback_url,
        content=canonical(tampered),
        headers={SIGNATURE_HEADER: delivered["signature"]},
    )
    assert forged.status_code == 401
    with pytest.raises(ForgedCallback):
        handle_callback(ctx, "fakepay", SECRET, forged_body, None)
    assert snapshot(ctx, other.code) == before
    assert payment_of(ctx, pending.order_ref).status == "pending"  # type: ignore[union-attr]
    with ctx.uow() as uow:
        assert (
            uow.session.exec(
                select(PaymentCallback).where(PaymentCallback.order_ref == pending.order_ref)
            ).all()
            == []
        )

    # the payer pays the second order but its callback never arrives: reconciliation sees it
    delivery = gateway.gateway.settle(pending.gateway_ref or "", "pay")
    assert delivery["status"] is None  # nobody listened
    rows = {r.order_ref: r for r in reconcile(ctx, HttpGateway(gateway.url, SECRET),
                                                  date(2025, 3, 3), date(2025, 3, 3))}  # fmt: skip
    assert rows[payment.order_ref].verdict == "matched"
    assert rows[pending.order_ref].verdict == "missing_callback"
    assert rows[pending.order_ref].amount_here == 100_000

    # the online-payment share (Decision 766): paid online / received dossiers with a fee
    third = submit_dossier(ctx, COUNTER, lltp("Vi Văn Ba"))  # received, fee not yet paid
    assert third.status == "intake"
    with ctx.uow() as uow:
        share = online_payment_share(uow.session, ctx.catalog, date(2025, 3, 1), date(2025, 3, 31))
    assert [(r.agency, r.with_fee, r.paid_online) for r in share] == [(JUSTICE, 2, 1)]
    assert str(share[0].share) == "50.00"


def certified_copy(ctx: Context) -> Dossier:
    dossier = submit_dossier(
        ctx,
        WARD_COUNTER,
        DossierIn(
            procedure_code="2.000815",
            receiving_unit=WARD,
            applicant=Applicant(name="Nông Thị Mai"),
            components=["original_document", "copy_to_certify"],
        ),
    )
    dossier = act(ctx, WARD_COUNTER, dossier.code, "forward", dossier.version)
    dossier = act(ctx, WARD_COUNTER, dossier.code, "approve", dossier.version, decision_ref="CT-1")
    return act(ctx, WARD_COUNTER, dossier.code, "mark_result_ready", dossier.version)


def test_cash_at_the_counter_before_return(ctx: Context, clock: FixedClock) -> None:
    at(clock, "2025-03-03T09:00:00+07:00")
    dossier = certified_copy(ctx)
    assert dossier.status == "result_ready"
    with pytest.raises(InvalidInput):  # only the receiving counter collects the fee
        assess_fee(ctx, COUNTER, dossier.code, FeeInput(pages=2, copies=3))
    charge = assess_fee(ctx, WARD_COUNTER, dossier.code, FeeInput(pages=2, copies=3))
    assert (charge.amount, charge.wait) == (12_000, "before_return")
    assert payment_blocks(ctx, dossier.code, "return_result") is not None
    with pytest.raises(PaymentRequired) as caught:
        return_when_paid(ctx, WARD_COUNTER, dossier.code, dossier.version)
    assert "12.000" in caught.value.message_vi
    payment = record_cash_payment(ctx, WARD_COUNTER, dossier.code, "BL-2025-0001")
    assert (payment.method, payment.status, payment.receipt_number) == (
        "cash",
        "paid",
        "BL-2025-0001",
    )
    with pytest.raises(InvalidInput):  # nothing left to pay
        record_cash_payment(ctx, WARD_COUNTER, dossier.code, "BL-2025-0002")
    other = certified_copy(ctx)
    assess_fee(ctx, WARD_COUNTER, other.code, FeeInput(pages=1))
    with pytest.raises(InvalidInput, match="BL-2025-0001"):  # a receipt number is used once
        record_cash_payment(ctx, WARD_COUNTER, other.code, "BL-2025-0001")
    returned = return_when_paid(ctx, WARD_COUNTER, dossier.code, dossier.version)
    assert returned.status == "returned"


def test_birth_registration_on_time_is_free_and_late_charges_the_fee(
    ctx: Context, clock: FixedClock
) -> None:
    at(clock, "2025-03-03T09:00:00+07:00")

    def birth(name: str) -> Dossier:
        return submit_dossier(
            ctx,
            WARD_COUNTER,
            DossierIn(
                procedure_code="1.001193",
                receiving_unit=WARD,
                applicant=Applicant(name=name),
                components=["birth_registration_form", "birth_certificate"],
            ),
        )

    on_time = birth("Hoàng Minh Khang")
    charge = assess_fee(ctx, WARD_COUNTER, on_time.code, FeeInput(event_date=date(2025, 1, 2)))
    assert (charge.amount, charge.status, charge.wait) == (0, "exempt", "none")
    assert charge.exemption and "60" in charge.exemption
    assert payment_blocks(ctx, on_time.code, "return_result") is None

    late = birth("Hoàng Minh An")
    charge = assess_fee(ctx, WARD_COUNTER, late.code, FeeInput(event_date=date(2024, 12, 31)))
    assert (charge.amount, charge.status, charge.wait) == (8_000, "unpaid", "before_return")
    assert payment_blocks(ctx, late.code, "return_result") is not None
    poor = birth("Hoàng Minh Châu")
    charge = assess_fee(
        ctx, WARD_COUNTER, poor.code, FeeInput(event_date=date(2024, 1, 1), group="poor_household")
    )
    assert (charge.amount, charge.status) == (0, "exempt")


def test_fee_payment_and_feedback_over_the_http_api(ctx: Context, clock: FixedClock) -> None:
    from fastapi.testclient import TestClient

    from services.directory import create_officer, hash_password

    at(clock, "2025-03-03T09:00:00+07:00")
    hashed = hash_password("mk")
    create_officer(ctx, "quay_phuong", "Quầy phường", "counter", WARD, password_hash=hashed)
    create_officer(ctx, "ld_stp", "Lãnh đạo", "leader", JUSTICE, password_hash=hashed)
    app = create_app(ctx, Settings(secret_key="test-secret"))
    with TestClient(app, client=("127.0.0.1", 50002)) as client:

        def bearer(username: str) -> dict[str, str]:
            answer = client.post(
                "/api/v1/auth/token", json={"username": username, "password": "mk"}
            )
            assert answer.status_code == 200, answer.text
            return {"Authorization": f"Bearer {answer.json()['access_token']}"}

        counter = bearer("quay_phuong")
        dossier = certified_copy(ctx)
        fee = client.post(
            f"/api/v1/dossiers/{dossier.code}/fee", json={"pages": 3}, headers=counter
        )
        assert fee.status_code == 200 and fee.json()["amount"] == 5_000
        blocked = client.post(
            f"/api/v1/dossiers/{dossier.code}/return-when-paid", json={}, headers=counter
        )
        assert blocked.status_code == 409 and blocked.json()["code"] == "payment_required"
        etag = client.get(f"/api/v1/dossiers/{dossier.code}", headers=counter).headers["ETag"]
        bypass = client.post(  # the plain event route has the same guard
            f"/api/v1/dossiers/{dossier.code}/events/return_result",
            json={},
            headers={**counter, "If-Match": etag},
        )
        assert bypass.status_code == 409 and bypass.json()["code"] == "payment_required"
        cash = client.post(
            f"/api/v1/dossiers/{dossier.code}/payments/cash",
            json={"receipt_number": "BL-9"},
            headers=counter,
        )
        assert cash.status_code == 201 and cash.json()["status"] == "paid"
        done = client.post(
            f"/api/v1/dossiers/{dossier.code}/return-when-paid", json={}, headers=counter
        )
        assert done.status_code == 200 and done.json()["status"] == "returned"
        assert client.get(f"/api/v1/dossiers/{dossier.code}/fee").status_code == 401

        sent = client.post(
            "/api/v1/feedback",
            json={"author_name": "An", "subject": "Phí", "text": "…", "agency_code": JUSTICE,
                  "channel": "portal", "external_ref": "spoofed"},
        )  # fmt: skip
        assert sent.status_code == 201
        code = sent.json()["code"]
        assert "author_name" not in sent.json()
        leader = bearer("ld_stp")
        event = client.post(
            f"/api/v1/feedback/{code}/events/classify",
            json={"category": "out_of_scope"},
            headers=leader,
        )
        assert event.status_code == 200 and event.json()["allowed_events"]
        refused = client.post(
            f"/api/v1/feedback/{code}/events/assign", json={"assignee": "x"}, headers=leader
        )
        assert refused.status_code == 409 and refused.json()["rule"] == "out_of_scope"
        other = client.get(f"/api/v1/feedback/{code}/officer", headers=counter)
        assert other.status_code == 403  # another agency's officer
        assert (
            client.get(f"/api/v1/feedback/{code}/officer", headers=leader).json()["channel"]
            == "web"
        )
