"""A lifecycle event writes the dossier row once: one UPDATE, one new version (ETag) per event.

The assignee lookup and the event's sequence number used to flush the half-changed dossier first
(autoflush), so an event that changed step wrote the row twice and moved its version by two
(found by benchmarks.transitions)."""

from __future__ import annotations

from sqlmodel import col, select

from services.context import Context
from services.dossiers import act
from states.lifecycle import Actor
from storage.models import DossierEvent, Outbox
from tests.conftest import criminal_record, statements_sent

CENTRE = "000.00.01.H37"
JUSTICE = "000.00.02.H37"
COUNTER = Actor("motcua1", "counter", CENTRE)
SPECIALIST = Actor("tuphap1", "specialist", JUSTICE)


def test_each_event_updates_the_dossier_once_with_one_new_version(ctx: Context) -> None:
    dossier = criminal_record(ctx, COUNTER, CENTRE)
    assert dossier.version == 2  # inserted (1), then received: one UPDATE (2)
    with statements_sent(ctx) as sent:
        forwarded = act(ctx, COUNTER, dossier.code, "forward", dossier.version)
        assert forwarded.current_step != dossier.current_step  # a step change (assignee lookup)
        # PostgreSQL: inside the one statement of the transition (storage.transitions)
        assert sum(sql.upper().count("UPDATE DOSSIER SET") for sql, _ in sent) == 1
        assert forwarded.version == dossier.version + 1
        sent_back = act(ctx, SPECIALIST, dossier.code, "send_back", forwarded.version, reason="x")
        assert sum(sql.upper().count("UPDATE DOSSIER SET") for sql, _ in sent) == 2
        assert sent_back.version == forwarded.version + 1


def test_the_event_and_outbox_rows_hold_what_the_transition_decided(ctx: Context) -> None:
    """PostgreSQL writes them in one statement from JSON (storage.transitions): the types come
    back as the ORM would have written them, on both backends."""
    dossier = criminal_record(ctx, COUNTER, CENTRE)
    forwarded = act(ctx, COUNTER, dossier.code, "forward", dossier.version)
    with ctx.uow() as uow:
        events = uow.session.exec(
            select(DossierEvent)
            .where(DossierEvent.dossier_id == dossier.id)
            .order_by(col(DossierEvent.seq))
        ).all()
        outbox = uow.session.exec(
            select(Outbox).where(Outbox.dossier_id == dossier.id).order_by(col(Outbox.id))
        ).all()
    assert [(e.seq, e.event) for e in events] == [(1, "receive"), (2, "forward")]
    last = events[-1]
    assert last.at == ctx.clock.now() and last.actor_username == COUNTER.username
    assert (last.from_state, last.to_state) == (dossier.status, forwarded.status)
    assert last.step_id == dossier.status and last.step_due_at == dossier.step_due_at
    assert last.step_timeliness in ("early", "on_time", "late")
    assert last.data["step_due_at"] == forwarded.step_due_at.isoformat()  # type: ignore[union-attr]
    handoffs = [o for o in outbox if o.payload.get("event") == "forward"]
    assert handoffs and all(o.status == "pending" and o.attempts == 0 for o in handoffs)
    assert all(o.created_at == ctx.clock.now() == o.available_at for o in handoffs)
    assert handoffs[0].payload == {
        "code": dossier.code,
        "event": "forward",
        "status": forwarded.status,
        "step": forwarded.status,
    }
    assert handoffs[0].target == forwarded.current_unit
