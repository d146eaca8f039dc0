"""The feedback machine built from catalog/feedback_process.yaml: guards, and invariants under
random event streams (as tests/unit/test_lifecycle.py does for dossiers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statemachine.exceptions import TransitionNotAllowed

from services.errors import CatalogError
from services.feedback import PROCESS_FILE, default_process, load_process
from states.events import LifecycleRuleBroken
from states.feedback import IN_SCOPE, FeedbackFacts, machine_for
from states.lifecycle import Actor

AGENCY = "A"
COUNTER = Actor("quay", "counter", AGENCY)
SPECIALIST = Actor("cv", "specialist", AGENCY)
OTHER_SPECIALIST = Actor("cv2", "specialist", AGENCY)
LEADER = Actor("ld", "leader", AGENCY)
OUTSIDER = Actor("x", "leader", "B")
CITIZEN = Actor("dan", "citizen", "")
ACTORS = [COUNTER, SPECIALIST, OTHER_SPECIALIST, LEADER, OUTSIDER, CITIZEN]
EVENTS = sorted({t.event for t in default_process().transitions})
FINAL = {s.id for s in default_process().states if s.final}


def new(consent: bool = False) -> tuple[Any, FeedbackFacts]:
    process = default_process()
    facts = FeedbackFacts(status="received", agency_code=AGENCY, author_consent=consent)
    return machine_for(process.state_specs, process.transition_specs, facts), facts


def test_happy_path_to_published_and_closed() -> None:
    machine, facts = new(consent=True)
    machine.send("classify", actor=COUNTER, category="regulation", competent_agency=AGENCY)
    machine.send("assign", actor=LEADER, assignee="cv")
    machine.send("draft_answer", actor=SPECIALIST, answer="Trả lời")
    machine.send("send_back", actor=LEADER, reason="bổ sung căn cứ")
    assert facts.status == "assigned"
    machine.send("draft_answer", actor=SPECIALIST, answer="Trả lời có căn cứ")
    machine.send("approve_answer", actor=LEADER)
    machine.send("publish", actor=COUNTER)
    machine.send("close", actor=COUNTER)
    assert facts.status == "closed"


@pytest.mark.parametrize(
    ("event", "kwargs", "actor", "rule"),
    [
        ("classify", {"category": "weather"}, COUNTER, "category_required"),
        ("classify", {"category": "regulation"}, COUNTER, "competent_agency_required"),
        (
            "classify",
            {"category": "regulation", "competent_agency": AGENCY},
            OUTSIDER,
            "wrong_unit",
        ),
        ("classify", {"category": "regulation", "competent_agency": AGENCY}, CITIZEN, "wrong_role"),
        ("reject", {}, COUNTER, "reason_required"),
        ("forward", {"to_agency": AGENCY, "reason": "x"}, COUNTER, "same_agency"),
    ],
)
def test_guards_refuse_with_the_reason(
    event: str, kwargs: dict[str, Any], actor: Actor, rule: str
) -> None:
    machine, facts = new()
    with pytest.raises(LifecycleRuleBroken) as caught:
        machine.send(event, actor=actor, **kwargs)
    assert caught.value.rule == rule
    assert caught.value.message_vi and caught.value.message_en
    assert facts.status == "received"


def test_out_of_scope_must_be_rejected_and_other_agency_forwarded() -> None:
    machine, facts = new()
    machine.send("classify", actor=COUNTER, category="out_of_scope")
    with pytest.raises(LifecycleRuleBroken) as caught:
        machine.send("assign", actor=LEADER, assignee="cv")
    assert caught.value.rule == "out_of_scope"
    machine2, facts2 = new()
    machine2.send("classify", actor=COUNTER, category="regulation", competent_agency="B")
    with pytest.raises(LifecycleRuleBroken) as caught:
        machine2.send("assign", actor=LEADER, assignee="cv")
    assert caught.value.rule == "not_competent"
    machine2.send("forward", actor=COUNTER, to_agency="B", reason="thẩm quyền của B")
    assert facts2.status == "forwarded"
    machine.send("reject", actor=COUNTER, reason="không phải quy định hành chính")
    assert facts.status == "rejected"


def test_only_the_assignee_drafts_and_only_a_leader_approves() -> None:
    machine, _ = new()
    machine.send("classify", actor=COUNTER, category="officer_conduct", competent_agency=AGENCY)
    with pytest.raises(LifecycleRuleBroken):
        machine.send("assign", actor=SPECIALIST, assignee="cv")
    machine.send("assign", actor=LEADER, assignee="cv")
    with pytest.raises(LifecycleRuleBroken) as caught:
        machine.send("draft_answer", actor=OTHER_SPECIALIST, answer="x")
    assert caught.value.rule == "not_assignee"
    machine.send("draft_answer", actor=SPECIALIST, answer="x")
    with pytest.raises(LifecycleRuleBroken) as caught:
        machine.send("approve_answer", actor=SPECIALIST)
    assert caught.value.rule == "leader_required"


def test_publishing_needs_the_authors_consent_and_finals_are_final() -> None:
    machine, _ = new(consent=False)
    machine.send("classify", actor=COUNTER, category="regulation", competent_agency=AGENCY)
    machine.send("assign", actor=LEADER, assignee="cv")
    machine.send("draft_answer", actor=SPECIALIST, answer="x")
    machine.send("approve_answer", actor=LEADER)
    with pytest.raises(LifecycleRuleBroken) as caught:
        machine.send("publish", actor=LEADER)
    assert caught.value.rule == "no_consent"
    machine.send("close", actor=LEADER)
    with pytest.raises(TransitionNotAllowed):
        machine.send("classify", actor=COUNTER, category="regulation", competent_agency=AGENCY)


def test_the_process_file_is_validated(tmp_path: Path) -> None:
    text = PROCESS_FILE.read_text(encoding="utf-8")
    bad = tmp_path / "feedback_process.yaml"
    bad.write_text(text.replace("share: 9}", "share: 8}"), encoding="utf-8")
    with pytest.raises(CatalogError, match=r"limits\.handling is 15"):
        load_process(bad)
    bad.write_text(text.replace("guards: [leader_of_agency]}", "guards: [nobody]}"), "utf-8")
    with pytest.raises(CatalogError, match="unknown guard"):
        load_process(bad)
    assert default_process().limits.handling == 15
    assert default_process().limits.rejection == 2
    assert default_process().limits.information_request == 5


stream = st.lists(
    st.tuples(
        st.sampled_from(EVENTS),
        st.sampled_from(ACTORS),
        st.sampled_from([None, "lý do"]),
        st.sampled_from([None, "regulation", "officer_conduct", "out_of_scope", "weather"]),
        st.sampled_from([None, AGENCY, "B"]),
        st.sampled_from([None, "cv", "cv2"]),
    ),
    max_size=50,
)


@settings(max_examples=300, deadline=None)
@given(stream, st.booleans())
def test_random_event_streams_keep_the_invariants(events: list[Any], consent: bool) -> None:
    machine, facts = new(consent)
    approved_by_leader = False
    for event, actor, reason, category, agency, assignee in events:
        before = (facts.status, facts.category, facts.competent_agency, facts.assignee)
        try:
            machine.send(
                event,
                actor=actor,
                reason=reason,
                category=category,
                competent_agency=agency,
                to_agency=agency,
                assignee=assignee,
                answer=reason,
            )
        except (TransitionNotAllowed, LifecycleRuleBroken):
            after = (facts.status, facts.category, facts.competent_agency, facts.assignee)
            assert after == before, "a refused event changes nothing"
            continue
        assert before[0] not in FINAL, "no event leaves a final state"
        assert actor is not OUTSIDER and actor is not CITIZEN, "only the agency's officers act"
        if event == "approve_answer":
            assert actor.role == "leader"
            approved_by_leader = True
        if facts.status in ("assigned", "drafted", "handled", "published"):
            assert facts.category in IN_SCOPE and facts.competent_agency == AGENCY
            assert facts.assignee is not None
        if facts.status == "published":
            assert consent and approved_by_leader
        if facts.status == "drafted":
            assert actor.username == facts.assignee
        if facts.status == "closed":
            assert approved_by_leader
