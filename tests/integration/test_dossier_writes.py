"""A lifecycle event writes the dossier row once: one UPDATE, one new version (ETag) per event.

The assignee lookup and the event's sequence number used to flush the half-changed dossier first
(autoflush), so an event that changed step wrote the row twice and moved its version by two
(found by benchmarks.transitions)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from services.context import Context
from services.dossiers import Applicant, DossierIn, act, submit_dossier
from states.lifecycle import Actor

CENTRE = "000.00.01.H37"
JUSTICE = "000.00.02.H37"
COUNTER = Actor("motcua1", "counter", CENTRE)
SPECIALIST = Actor("tuphap1", "specialist", JUSTICE)


def test_each_event_updates_the_dossier_once_with_one_new_version(ctx: Context) -> None:
    updates: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE DOSSIER "):
            updates.append(statement)

    dossier = submit_dossier(
        ctx,
        COUNTER,
        DossierIn(
            procedure_code="MOJ.lltp",
            receiving_unit=CENTRE,
            applicant=Applicant(name="Hoàng Văn Thụ", id_number="020099001234"),
            components=["request_form", "applicant_id"],
        ),
    )
    assert dossier.version == 2  # inserted (1), then received: one UPDATE (2)
    event.listen(ctx.engine, "before_cursor_execute", seen)
    try:
        forwarded = act(ctx, COUNTER, dossier.code, "forward", dossier.version)
        assert forwarded.current_step != dossier.current_step  # a step change (assignee lookup)
        assert len(updates) == 1
        assert forwarded.version == dossier.version + 1
        sent_back = act(ctx, SPECIALIST, dossier.code, "send_back", forwarded.version, reason="x")
        assert len(updates) == 2 and sent_back.version == forwarded.version + 1
    finally:
        event.remove(ctx.engine, "before_cursor_execute", seen)
