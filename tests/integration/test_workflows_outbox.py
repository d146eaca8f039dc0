"""The outbox's claiming, retries, dead letters and portal reconciliation on SQLite and
PostgreSQL (plain service calls; the Prefect flows are in test_workflows.py)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from services.clock import FixedClock
from services.context import Context
from services.dossiers import Applicant, DossierIn, submit_dossier
from services.outbox import (
    Claimed,
    DeliveryError,
    Dispatcher,
    OutboxConfig,
    PermanentDeliveryError,
    claim_batch,
    dead_letters,
    drain,
    requeue_dead,
    settle,
)
from services.portal_sync import PORTAL_SYNC, reconcile
from states.lifecycle import Actor
from storage.models import Outbox

CENTRE = "000.00.01.H37"
COUNTER = Actor("motcua1", "counter", CENTRE)


def add_rows(ctx: Context, n: int, kind: str = "inter_agency") -> None:
    now = ctx.clock.now()
    with ctx.engine.begin() as conn:
        conn.execute(
            Outbox.__table__.insert(),  # type: ignore[attr-defined]
            [
                {"kind": kind, "target": "x", "payload": {"code": f"C{i}"}, "status": "pending",
                 "attempts": 0, "created_at": now, "available_at": now}
                for i in range(n)
            ],
        )  # fmt: skip


def statuses(ctx: Context) -> dict[str, int]:
    with ctx.engine.connect() as conn:
        return dict(
            conn.execute(select(Outbox.status, func.count()).group_by(Outbox.status)).all()  # type: ignore[arg-type]
        )


def test_concurrent_workers_claim_disjoint_batches(ctx: Context) -> None:
    add_rows(ctx, 300)
    config = OutboxConfig(batch_size=25)
    claimed: dict[str, list[int]] = {}
    start = threading.Barrier(4)

    def work(name: str) -> None:
        mine: list[int] = []
        start.wait()  # all claim from the same moment (a thread can start late on a loaded machine)
        while batch := claim_batch(ctx, name, config):
            assert len(batch) <= 25
            mine.extend(i.id for i in batch)
            time.sleep(0.01)  # a real worker delivers its batch before claiming the next one
        claimed[name] = mine

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [i for ids in claimed.values() for i in ids]
    assert len(everything) == 300 and len(set(everything)) == 300  # none twice, none left
    assert sum(1 for ids in claimed.values() if ids) >= 2  # the work was shared
    assert statuses(ctx) == {"claimed": 300}


def test_failures_back_off_then_dead_letter_with_an_alert(ctx: Context, clock: FixedClock) -> None:
    add_rows(ctx, 1)
    config = OutboxConfig(batch_size=10, max_attempts=4, backoff_s=10, backoff_max_s=1000)
    calls: list[int] = []

    def failing(item: Claimed) -> None:
        calls.append(item.attempts)
        raise DeliveryError("agency down")

    dispatcher = Dispatcher({"inter_agency": failing}, concurrency=1)
    delays = []
    for attempt in range(1, 5):
        before = clock.now()
        report = drain(ctx, "w", dispatcher, config, max_batches=1)
        assert report.claimed == 1
        with ctx.engine.connect() as conn:
            row = conn.execute(select(Outbox).where(Outbox.kind == "inter_agency")).one()
        if attempt < 4:
            assert row.status == "pending" and row.attempts == attempt
            delays.append((row.available_at - before).total_seconds())
            assert drain(ctx, "w", dispatcher, config).claimed == 0  # not due yet
            clock.set(row.available_at)
    assert calls == [1, 2, 3, 4]
    assert 9 <= delays[0] <= 11 and 18 <= delays[1] <= 22 and 36 <= delays[2] <= 44
    assert row.status == "dead" and row.last_error == "DeliveryError: agency down"
    dead = dead_letters(ctx)
    assert [(d.kind, d.code, d.attempts) for d in dead] == [("inter_agency", "C0", 4)]
    with ctx.engine.connect() as conn:
        alert = conn.execute(select(Outbox).where(Outbox.kind == "notify_internal")).one()
    assert alert.payload["template"] == "dead_letter" and alert.payload["code"] == "C0"
    # after the cause is fixed, a dead letter can be sent again
    assert requeue_dead(ctx, [d.id for d in dead]) == 1
    ok = Dispatcher({"inter_agency": lambda item: None, "notify_internal": lambda item: None})
    assert drain(ctx, "w", ok, config).delivered == 2
    assert statuses(ctx) == {"done": 2}


def test_permanent_errors_dead_letter_at_once(ctx: Context) -> None:
    add_rows(ctx, 2)

    def refuse(item: Claimed) -> None:
        raise PermanentDeliveryError("HTTP 400")

    dispatcher = Dispatcher({"inter_agency": refuse, "notify_internal": lambda item: None})
    report = drain(ctx, "w", dispatcher, OutboxConfig(max_attempts=9))
    assert report.dead == 2 and report.delivered == 2  # the two alerts to the supervisors
    assert {d.attempts for d in dead_letters(ctx)} == {1}


def test_a_dead_workers_rows_are_claimed_again_after_the_lease(
    ctx: Context, clock: FixedClock
) -> None:
    add_rows(ctx, 3)
    config = OutboxConfig(lease_s=60)
    held = claim_batch(ctx, "dead-worker", config)
    assert len(held) == 3
    assert claim_batch(ctx, "other", config) == []  # leased
    clock.advance(timedelta(seconds=61))
    again = claim_batch(ctx, "other", config)
    assert sorted(i.id for i in again) == sorted(i.id for i in held)
    assert {i.attempts for i in again} == {2}
    # the first worker wakes up: its settle changes nothing (fenced by claimed_by)
    from services.outbox import Outcome

    late = settle(ctx, "dead-worker", [Outcome(i) for i in held], config)
    assert late.delivered == 0 and late.lost_lease == 3
    mine = settle(ctx, "other", [Outcome(i) for i in again], config)
    assert mine.delivered == 3
    assert statuses(ctx) == {"done": 3}


def test_portal_sync_rows_and_reconciliation(ctx: Context) -> None:
    dossier = submit_dossier(
        ctx,
        COUNTER,
        DossierIn(
            procedure_code="MOJ.lltp",
            receiving_unit=CENTRE,
            applicant=Applicant(name="Nông Thị Hoa"),
            components=["request_form", "applicant_id"],
        ),
    )
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(Outbox).where(Outbox.kind == PORTAL_SYNC)).all()
    assert [(r.payload["status"], r.payload["portal_status"]) for r in rows] == [("intake", "2")]
    assert reconcile(ctx) == []

    def portal_down(item: Claimed) -> None:
        raise DeliveryError("portal: HTTP 503")

    dispatcher = Dispatcher({PORTAL_SYNC: portal_down}, concurrency=1)
    with ctx.engine.begin() as conn:  # only the portal row in play
        conn.execute(text("UPDATE outbox SET status = 'done' WHERE kind <> 'portal_sync'"))
    drain(ctx, "w", dispatcher, OutboxConfig(max_attempts=1))
    failed = reconcile(ctx)
    assert [(f.dossier_code, f.status, f.portal_status) for f in failed] == [
        (dossier.code, "dead", "2")
    ]


@pytest.mark.parametrize("kind", ["unknown_kind"])
def test_a_kind_without_deliverer_is_a_dead_letter(ctx: Context, kind: str) -> None:
    add_rows(ctx, 1, kind=kind)
    report = drain(ctx, "w", Dispatcher({}), OutboxConfig())
    assert report.dead == 2  # the row, then its alert (an alert is never alerted again)
    assert {d.kind for d in dead_letters(ctx)} == {kind, "notify_internal"}


def test_result_returned_by_post_is_a_handoff_to_the_post_office(ctx: Context) -> None:
    from services.dossiers import act
    from services.notifications import Notifier, NotifierConfig
    from storage.models_workflows import NotificationLog

    justice, police = "000.00.02.H37", "000.00.20.H37"
    dossier = submit_dossier(
        ctx,
        COUNTER,
        DossierIn(
            procedure_code="MOJ.lltp",
            receiving_unit=CENTRE,
            channel="post",
            applicant=Applicant(name="Lý Văn Sáu", address="Thôn Nà Sla, xã Hoàng Văn Thụ"),
            components=["request_form", "applicant_id"],
        ),
    )
    leader = Actor("giamdoc", "leader", justice)
    for actor in (COUNTER, Actor("tuphap1", "specialist", justice), Actor("s", "system", police)):
        act(ctx, actor, dossier.code, "forward", None)
    act(ctx, leader, dossier.code, "approve", None, decision_ref="1/LLTP")
    act(ctx, leader, dossier.code, "mark_result_ready", None)
    notifier = Notifier(ctx, NotifierConfig())
    dispatcher = Dispatcher({"notify_citizen": notifier.deliver_citizen})
    with ctx.engine.begin() as conn:
        conn.execute(text("UPDATE outbox SET status = 'done' WHERE kind <> 'notify_citizen'"))
    drain(ctx, "w", dispatcher, OutboxConfig())
    with ctx.uow() as uow:
        sent = uow.session.exec(select(NotificationLog.template, NotificationLog.recipient)).all()
    assert ("postal_handoff", "postal:buudien@motcua.langson.gov.vn") in sent
    assert sum(1 for t, _ in sent if t == "postal_handoff") == 1


def test_sms_gateway_gets_each_notice_once_even_when_redelivered(ctx: Context) -> None:
    import httpx

    from api.cli_workflows import make_fake_agency
    from services.notifications import Notifier, NotifierConfig

    gateway = make_fake_agency()
    thread = threading.Thread(target=gateway.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    url = f"http://127.0.0.1:{gateway.server_address[1]}"
    try:
        submit_dossier(
            ctx,
            COUNTER,
            DossierIn(
                procedure_code="MOJ.lltp",
                receiving_unit=CENTRE,
                applicant=Applicant(name="Vi Thị Mai", phone="0912000111"),
                components=["request_form", "applicant_id"],
            ),
        )
        notifier = Notifier(ctx, NotifierConfig(sms_gateway_url=f"{url}/sms"))
        items = [
            i
            for i in claim_batch(ctx, "w", OutboxConfig())
            if i.kind == "notify_citizen" and i.target == "received"
        ]
        assert len(items) == 1
        notifier.deliver_citizen(items[0])
        notifier.deliver_citizen(items[0])  # a crash before "done": delivered again
        stats = httpx.get(f"{url}/stats").json()
        assert (stats["unique"], stats["requests"]) == (1, 1)  # the log stopped the second
        sms = httpx.get(f"{url}/deliveries").json()["deliveries"][0]
        assert sms["key"] == items[0].key
        assert sms["body"]["to"] == "0912000111"
        assert (
            sms["body"]["text"].startswith("Hồ sơ ") and "đã được tiếp nhận" in sms["body"]["text"]
        )
    finally:
        gateway.shutdown()
        gateway.server_close()
        thread.join()
