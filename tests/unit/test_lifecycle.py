"""The generated lifecycle machines: rules as guards, and invariants under random event streams."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statemachine.exceptions import TransitionNotAllowed

from services.catalog import default_catalog
from states.events import (
    APPROVED,
    AWAITING_SUPPLEMENT,
    EVENTS,
    FINAL_STATES,
    REJECTED,
    RETURNED,
    SUBMITTED,
    LifecycleRuleBroken,
)
from states.lifecycle import (
    Actor,
    DossierFacts,
    Step,
    allowed_event_ids,
    clock_running,
    machine_for,
)

STEPS = (
    Step("intake", "counter"),
    Step("appraisal", "specialist"),
    Step("verification", "specialist", inter_agency=True),
    Step("approval", "leader"),
)
UNITS = {"intake": "C", "appraisal": "D", "verification": "P", "approval": "D"}
COUNTER = Actor("c", "counter", "C")
SPECIALIST = Actor("s", "specialist", "D")
POLICE = Actor("p", "specialist", "P")
LEADER = Actor("l", "leader", "D")
ACTORS = [COUNTER, SPECIALIST, POLICE, LEADER, Actor("x", "specialist", "OTHER")]


def new_machine(steps: tuple[Step, ...] = STEPS, units: dict[str, str] = UNITS) -> Any:
    facts = DossierFacts(status=SUBMITTED, receiving_unit="C", step_units=units)
    return machine_for("test@1", steps, facts), facts


def test_happy_path_reaches_returned() -> None:
    machine, facts = new_machine()
    machine.send("receive", actor=COUNTER)
    machine.send("forward", actor=COUNTER)
    machine.send("forward", actor=SPECIALIST)
    machine.send("forward", actor=POLICE)
    machine.send("approve", actor=LEADER, decision_ref="123/QĐ")
    machine.send("mark_result_ready", actor=LEADER)
    machine.send("return_result", actor=COUNTER)
    assert facts.status == RETURNED


def test_specialist_of_another_unit_cannot_forward() -> None:
    machine, facts = new_machine()
    machine.send("receive", actor=COUNTER)
    machine.send("forward", actor=COUNTER)
    with pytest.raises(LifecycleRuleBroken) as caught:
        machine.send("forward", actor=Actor("x", "specialist", "OTHER"))
    assert caught.value.rule == "wrong_unit"
    assert facts.status == "appraisal"


def test_approval_needs_a_decision_reference() -> None:
    machine, facts = new_machine((Step("intake", "counter"), Step("approval", "leader")))
    machine.send("receive", actor=COUNTER)
    machine.send("forward", actor=COUNTER)
    with pytest.raises(LifecycleRuleBroken, match="decision"):
        machine.send("approve", actor=LEADER)
    assert facts.status == "approval"


def test_supplementation_returns_to_the_step_it_left() -> None:
    machine, facts = new_machine()
    machine.send("receive", actor=COUNTER)
    machine.send("forward", actor=COUNTER)
    machine.send("forward", actor=SPECIALIST)
    machine.send("request_supplement", actor=POLICE, reason="thiếu giấy tờ")
    assert (facts.status, facts.paused_from, facts.supplement_count) == (
        AWAITING_SUPPLEMENT,
        "verification",
        1,
    )
    # a machine rebuilt from the persisted fields resumes the same way
    rebuilt = machine_for("test@1", STEPS, facts)
    rebuilt.send("supplement", actor=COUNTER)
    assert facts.status == "verification" and facts.paused_from is None


def test_late_dossier_needs_the_apology_slip_before_return() -> None:
    machine, facts = new_machine((Step("intake", "counter"), Step("approval", "leader")))
    for event, who in (("receive", COUNTER), ("forward", COUNTER)):
        machine.send(event, actor=who)
    machine.send("approve", actor=LEADER, decision_ref="1")
    machine.send("mark_result_ready", actor=LEADER)
    facts.late = True
    with pytest.raises(LifecycleRuleBroken) as caught:
        machine.send("return_result", actor=COUNTER)
    assert caught.value.rule == "apology_required"
    machine.send("extend", actor=LEADER, reason="chậm xác minh", new_appointment="x")
    with pytest.raises(LifecycleRuleBroken):
        machine.send("extend", actor=LEADER, reason="again", new_appointment="y")
    machine.send("return_result", actor=COUNTER)
    assert facts.status == RETURNED


def test_unknown_event_and_final_state_raise() -> None:
    machine, _ = new_machine()
    with pytest.raises(TransitionNotAllowed):
        machine.send("approve", actor=LEADER, decision_ref="1")
    machine.send("refuse", actor=COUNTER, reason="ngoài thẩm quyền")
    with pytest.raises(TransitionNotAllowed):
        machine.send("receive", actor=COUNTER)


def test_the_cached_machine_takes_the_next_dossier_after_a_final_state() -> None:
    machine, first = new_machine()
    machine.send("refuse", actor=COUNTER, reason="ngoài thẩm quyền")
    assert first.status == "refused" and machine.is_terminated
    # the same thread's next dossier gets the same instance, running again
    second = DossierFacts(status=SUBMITTED, receiving_unit="C", step_units=UNITS)
    again = machine_for("test@1", STEPS, second)
    assert again is machine and not again.is_terminated
    again.send("receive", actor=COUNTER)
    assert (second.status, first.status) == ("intake", "refused")
    # a dossier already in a final state still refuses every event
    for final in sorted(FINAL_STATES):
        done = DossierFacts(status=final, receiving_unit="C", step_units=UNITS)
        with pytest.raises(TransitionNotAllowed):
            machine_for("test@1", STEPS, done).send("withdraw", actor=COUNTER, reason="x")
        assert done.status == final


@pytest.mark.parametrize("code", sorted(default_catalog().procedures))
def test_allowed_events_read_from_the_class_equal_the_instance(code: str) -> None:
    for version in default_catalog().procedure(code).versions:
        key = f"{code}@{version.version}"
        units = {s.id: "U" for s in version.process}
        for state in machine_for(key, version.process, DossierFacts(SUBMITTED, "U", units)).states:
            facts = DossierFacts(status=state.id, receiving_unit="U", step_units=units)
            machine = machine_for(key, version.process, facts)
            expected = sorted({e.id for e in machine.allowed_events})
            assert list(allowed_event_ids(key, version.process, state.id)) == expected


@pytest.mark.parametrize("code", sorted(default_catalog().procedures))
def test_every_catalog_procedure_builds_a_machine(code: str) -> None:
    for version in default_catalog().procedure(code).versions:
        units = {s.id: "U" for s in version.process}
        facts = DossierFacts(status=SUBMITTED, receiving_unit="U", step_units=units)
        machine = machine_for(f"{code}@{version.version}", version.process, facts)
        assert {s.id for s in machine.states} >= {s.id for s in version.process}


event_stream = st.lists(
    st.tuples(
        st.sampled_from(EVENTS),
        st.sampled_from(ACTORS),
        st.sampled_from([None, "lý do"]),
        st.booleans(),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(event_stream)
def test_random_event_streams_keep_the_invariants(stream: list[Any]) -> None:
    machine, facts = new_machine()
    step_ids = [s.id for s in STEPS]
    history = [facts.status]
    decided = False
    for event, actor, reason, late in stream:
        before = facts.status
        facts.late = late and before == "result_ready"
        try:
            machine.send(
                event,
                actor=actor,
                reason=reason,
                decision_ref="QĐ" if reason else None,
                new_appointment="later",
            )
        except (TransitionNotAllowed, LifecycleRuleBroken):
            assert facts.status == before, "a refused event changes nothing"
            continue
        # no event leaves a final state
        assert before not in FINAL_STATES
        if facts.status in (APPROVED, REJECTED):
            decided = True
        if facts.status == RETURNED:
            assert decided, "every path to returned passes through a decision"
            assert not facts.late or facts.apology_issued
        # the clock never runs while paused or before receipt
        assert not clock_running(AWAITING_SUPPLEMENT, step_ids)
        if facts.status == AWAITING_SUPPLEMENT:
            assert facts.paused_from in [SUBMITTED, *step_ids]
            assert not clock_running(facts.status, step_ids)
        if before == AWAITING_SUPPLEMENT and event == "supplement":
            assert facts.status == history[-2], "supplementation returns to the step it left"
        history.append(facts.status)
    assert facts.supplement_count <= sum(1 for s in history if s == AWAITING_SUPPLEMENT)
