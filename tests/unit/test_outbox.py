"""Pure parts of the workflows: backoff, callback signatures, the portal status table, the
Vietnamese templates."""

from __future__ import annotations

import time

from services.agencies import sign, signed_headers, system_actor, verify_signature
from services.notifications import TEMPLATES, render
from services.outbox import OutboxConfig, idempotency_key
from services.portal_sync import PORTAL_STATUS, portal_key
from states.events import EVENT_LABELS


def test_backoff_doubles_up_to_the_cap() -> None:
    config = OutboxConfig(backoff_s=2, backoff_max_s=30)
    delays = [config.backoff(n).total_seconds() for n in range(1, 7)]
    for got, want in zip(delays, [2, 4, 8, 16, 30, 30], strict=True):
        assert want * 0.9 <= got <= want * 1.1


def test_idempotency_key_is_the_outbox_id() -> None:
    assert idempotency_key(42) == "motcua-outbox-42"


def test_signature_accepts_the_right_secret_only() -> None:
    body = b'{"answer_id":"a1","dossier_code":"X"}'
    now = time.time()
    headers = signed_headers("s3cret", body, now=now)
    ts, sig = headers["X-Motcua-Timestamp"], headers["X-Motcua-Signature"]
    assert sig == sign("s3cret", ts, body) and sig.startswith("sha256=")
    assert verify_signature("s3cret", ts, body, sig, now=now)
    assert not verify_signature("other", ts, body, sig, now=now)
    assert not verify_signature("s3cret", ts, body + b" ", sig, now=now)  # tampered body
    assert not verify_signature("s3cret", ts, body, sig, now=now + 301)  # replayed later
    assert not verify_signature("s3cret", None, body, sig, now=now)
    assert not verify_signature("s3cret", "not-a-number", body, sig, now=now)


def test_system_actor_is_the_units_system() -> None:
    actor = system_actor("000.00.20.H37")
    assert (actor.username, actor.role, actor.unit_code) == (
        "system.000.00.20.H37",
        "system",
        "000.00.20.H37",
    )


def test_portal_table_covers_every_lifecycle_outcome() -> None:
    assert portal_key("receive", "intake") == "received"
    assert portal_key("forward", "appraisal") == "in_process"
    assert portal_key("request_supplement", "awaiting_supplement") == "awaiting_supplement"
    for state in ("refused", "withdrawn", "result_ready", "returned"):
        assert portal_key("x", state) == state
    codes = [code for code, _ in PORTAL_STATUS.values()]
    assert len(codes) == len(set(codes))  # one code per row
    assert "receive" in EVENT_LABELS


def test_templates_are_vietnamese_and_fill_in() -> None:
    subject, body = render("received", {"code": "H37-250303-0001", "applicant": "Hoàng Văn Thụ"})
    assert subject == "Hồ sơ H37-250303-0001 đã được tiếp nhận"
    assert "Kính gửi Ông/Bà Hoàng Văn Thụ" in body
    assert "—" in body  # a missing field shows as a dash, never a KeyError
    for needed in ("received", "supplement_requested", "result_ready", "apology", "handoff"):
        assert needed in TEMPLATES


def test_portal_rows_of_one_dossier_go_out_in_order() -> None:
    import random
    from datetime import datetime

    from services.clock import TZ
    from services.outbox import Claimed, Dispatcher

    seen: list[tuple[int | None, int]] = []

    def record(item: Claimed) -> None:
        time.sleep(random.uniform(0, 0.005))
        seen.append((item.dossier_id, item.id))

    at = datetime(2025, 3, 3, 9, 0, tzinfo=TZ)
    items = [Claimed(i, "portal_sync", "portal", {}, i % 3, 1, at) for i in range(1, 31)]
    outcomes = Dispatcher({"portal_sync": record}, concurrency=8).deliver(items)
    assert sorted(o.item.id for o in outcomes if o.error is None) == list(range(1, 31))
    for dossier in range(3):
        ids = [i for d, i in seen if d == dossier]
        assert ids == sorted(ids)
