"""Dossier lifecycle machines generated from a procedure's internal process.

A flat machine: the process steps themselves are states, plus the side states of
:mod:`states.events`. "Back to the step it left" after supplementation is a set of conditional
transitions on the persisted ``paused_from`` field, not an in-memory history state. Guards are
validators that raise :class:`LifecycleRuleBroken` with the reason. The machine never does I/O.
"""

from __future__ import annotations

import copy
import functools
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from statemachine import StateChart
from statemachine.io import create_machine_class_from_definition

from states.events import (
    APPROVED,
    AWAITING_SUPPLEMENT,
    FINAL_STATES,
    REFUSED,
    REJECTED,
    RESULT_READY,
    RETURNED,
    SUBMITTED,
    WITHDRAWN,
    LifecycleRuleBroken,
)

ADMIN = "admin"
SYSTEM = "system"  # another agency's system answering through the authenticated callback


class StepLike(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def inter_agency(self) -> bool: ...


@dataclass(frozen=True)
class Step:
    id: str
    role: str
    inter_agency: bool = False


@dataclass(frozen=True)
class Actor:
    """Who sends the event: an officer (or another agency's system) with role and unit."""

    username: str
    role: str
    unit_code: str


@dataclass
class DossierFacts:
    """What the guards need to know about one dossier; the service fills it from the row.

    ``status`` is the machine's state field; ``step_units`` maps each step to the unit that
    does it for this dossier (resolved from the receiving unit at receipt).
    """

    status: str
    receiving_unit: str
    step_units: Mapping[str, str]
    paused_from: str | None = None
    late: bool = False  # the result reached the counter after the due instant
    apology_issued: bool = False
    supplement_count: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _reject(rule: str, vi: str, en: str) -> LifecycleRuleBroken:
    return LifecycleRuleBroken(rule, vi, en)


def _require_text(value: str | None, what_vi: str, what_en: str) -> None:
    if not value or not value.strip():
        raise _reject("reason_required", f"Cần ghi rõ {what_vi}", f"A {what_en} is required")


def _check_actor(
    actor: Actor | None, roles: set[str], units: set[str], where: tuple[str, str]
) -> None:
    if actor is None:
        raise _reject("actor_required", "Thiếu người thực hiện", "No acting officer given")
    if actor.role == ADMIN:
        return
    if actor.role not in roles:
        raise _reject(
            "wrong_role",
            f"Vai trò {actor.role} không được thực hiện việc này tại {where[0]}",
            f"Role {actor.role} may not do this at {where[1]}",
        )
    if actor.unit_code not in units:
        raise _reject(
            "wrong_unit",
            f"Cán bộ đơn vị {actor.unit_code} không xử lý hồ sơ tại {where[0]}",
            f"An officer of {actor.unit_code} cannot act on this dossier at {where[1]}",
        )


def clock_running(state: str, step_ids: Sequence[str]) -> bool:
    """Whether the legal clock runs in ``state``: from receipt until the result is ready."""
    return state in step_ids or state in (APPROVED, REJECTED)


def build_definition(steps: Sequence[StepLike]) -> dict[str, Any]:
    """The python-statemachine definition (states with their transitions) for a process."""
    if not steps:
        raise ValueError("a process needs at least one step")
    ids = [s.id for s in steps]
    by_id = {s.id: s for s in steps}
    last = steps[-1]

    def at_step(model: DossierFacts, actor: Actor | None = None, **_: Any) -> None:
        step = by_id[model.status]
        roles = {step.role} | ({SYSTEM} if step.inter_agency else set())
        _check_actor(
            actor, roles, {model.step_units[step.id]}, (f"bước {step.id}", f"step {step.id}")
        )

    def at_counter(model: DossierFacts, actor: Actor | None = None, **_: Any) -> None:
        _check_actor(actor, {"counter"}, {model.receiving_unit}, ("Bộ phận Một cửa", "the counter"))

    def with_reason(reason: str | None = None, **_: Any) -> None:
        _require_text(reason, "lý do", "reason")

    def decision(
        model: DossierFacts, actor: Actor | None = None, decision_ref: str | None = None, **_: Any
    ) -> None:
        _check_actor(
            actor, {last.role}, {model.step_units[last.id]}, (f"bước {last.id}", f"step {last.id}")
        )
        _require_text(decision_ref, "số quyết định / văn bản kết quả", "decision reference")

    def result_to_counter(model: DossierFacts, actor: Actor | None = None, **_: Any) -> None:
        _check_actor(
            actor,
            {"counter", "specialist", "leader"},
            {model.receiving_unit, model.step_units[last.id]},
            ("chuyển kết quả", "the result handoff"),
        )

    def apology_before_late_return(model: DossierFacts, **_: Any) -> None:
        if model.late and not model.apology_issued:
            raise _reject(
                "apology_required",
                "Hồ sơ quá hạn: phải có Phiếu xin lỗi và hẹn lại ngày trả kết quả trước khi trả",
                "A late dossier cannot be returned without an apology slip (Form 04)",
            )

    def once_extended(
        model: DossierFacts,
        actor: Actor | None = None,
        reason: str | None = None,
        new_appointment: Any = None,
        **_: Any,
    ) -> None:
        _check_actor(
            actor,
            {"leader"},
            set(model.step_units.values()),
            ("cơ quan giải quyết", "the resolving agency"),
        )
        if model.apology_issued:
            raise _reject(
                "apology_once",
                "Chỉ được hẹn lại ngày trả kết quả một lần",
                "The appointment can be moved only once",
            )
        _require_text(reason, "lý do chậm trễ", "reason for the delay")
        if new_appointment is None:
            raise _reject(
                "appointment_required", "Cần ngày hẹn trả mới", "A new appointment is required"
            )

    def pause(model: DossierFacts, source: Any, **_: Any) -> None:
        model.paused_from = source.id
        if source.id != SUBMITTED:  # the counter's guidance before receipt is not counted
            model.supplement_count += 1

    def resume(model: DossierFacts, **_: Any) -> None:
        model.paused_from = None

    def note_apology(model: DossierFacts, **_: Any) -> None:
        model.apology_issued = True

    def paused_from_is(target: str) -> Callable[..., bool]:
        def cond(model: DossierFacts, **_: Any) -> bool:
            return model.paused_from == target

        cond.__name__ = f"paused_from_{target}"
        return cond

    in_progress = [*ids, APPROVED, REJECTED]
    states: dict[str, dict[str, Any]] = {}
    states[SUBMITTED] = {
        "initial": True,
        "on": {
            "receive": [{"target": ids[0], "validators": [at_counter]}],
            "refuse": [{"target": REFUSED, "validators": [at_counter, with_reason]}],
            "request_supplement": [
                {
                    "target": AWAITING_SUPPLEMENT,
                    "validators": [at_counter, with_reason],
                    "on": [pause],
                }
            ],
        },
    }
    for index, step in enumerate(steps):
        on: dict[str, list[dict[str, Any]]] = {
            "request_supplement": [
                {"target": AWAITING_SUPPLEMENT, "validators": [at_step, with_reason], "on": [pause]}
            ]
        }
        if step is last:
            on["approve"] = [{"target": APPROVED, "validators": [decision]}]
            on["reject"] = [{"target": REJECTED, "validators": [decision, with_reason]}]
        else:
            on["forward"] = [{"target": ids[index + 1], "validators": [at_step]}]
        if index > 0:
            on["send_back"] = [{"target": ids[index - 1], "validators": [at_step, with_reason]}]
        states[step.id] = {"on": on}
    for decided in (APPROVED, REJECTED):
        states[decided] = {
            "on": {
                "mark_result_ready": [{"target": RESULT_READY, "validators": [result_to_counter]}]
            }
        }
    states[RESULT_READY] = {
        "on": {
            "return_result": [
                {"target": RETURNED, "validators": [at_counter, apology_before_late_return]}
            ],
            "extend": [
                {
                    "target": RESULT_READY,
                    "internal": True,
                    "validators": [once_extended],
                    "on": [note_apology],
                }
            ],
        }
    }
    states[AWAITING_SUPPLEMENT] = {
        "on": {
            "supplement": [
                {
                    "target": target,
                    "cond": [paused_from_is(target)],
                    "validators": [at_counter],
                    "on": [resume],
                }
                for target in [SUBMITTED, *ids]
            ]
        }
    }
    for state_id in [*in_progress, AWAITING_SUPPLEMENT]:
        state_on = states[state_id].setdefault("on", {})
        state_on["withdraw"] = [{"target": WITHDRAWN, "validators": [at_counter, with_reason]}]
        state_on["extend"] = [
            {
                "target": state_id,
                "internal": True,
                "validators": [once_extended],
                "on": [note_apology],
            }
        ]
    for final in (RETURNED, REFUSED, WITHDRAWN):
        states[final] = {"final": True}
    return states


_MACHINE_FLAGS = {
    "allow_event_without_transition": False,
    "catch_errors_as_events": False,
    "enable_self_transition_entries": False,
    "atomic_configuration_update": True,
}


def build_machine_class(name: str, steps: Sequence[StepLike]) -> type[StateChart]:
    """A machine class for one process; a wrong event raises ``TransitionNotAllowed``."""
    definition = build_definition(steps)
    return create_machine_class_from_definition(
        name, states=copy.deepcopy(definition), **_MACHINE_FLAGS
    )


@functools.lru_cache(maxsize=1024)
def machine_class_for(key: str, steps: tuple[Step, ...]) -> type[StateChart]:
    """Cached per procedure version (``key`` such as ``"1.001612@2"``)."""
    safe = "".join(ch if ch.isalnum() else "_" for ch in key)
    return build_machine_class(f"Lifecycle_{safe}", steps)


class _FactsProxy:
    """The model a cached machine is bound to; points at the dossier being handled.

    Building a machine instance costs milliseconds (callback registration), a transition tens of
    microseconds: each thread keeps one instance per procedure version and re-points its model."""

    __slots__ = ("target",)

    def __init__(self, target: DossierFacts) -> None:
        object.__setattr__(self, "target", target)

    def __getattr__(self, name: str) -> Any:
        return getattr(object.__getattribute__(self, "target"), name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "target":
            object.__setattr__(self, name, value)
        else:
            setattr(object.__getattribute__(self, "target"), name, value)


_local = threading.local()


def _frozen(steps: Sequence[StepLike]) -> tuple[Step, ...]:
    """The steps as hashable values (a machine class's key). Remembered per sequence object
    (the catalog's, loaded once), so that a worklist's rows do not rebuild them each: the
    object is kept beside its value, so its ``id`` is not reused while remembered; the value
    is checked against the steps read again, so a sequence changed in place is seen."""
    known = _FROZEN.get(id(steps))
    if known is not None and known[0] is steps and len(known[1]) == len(steps):
        frozen = known[1]
        if all(
            (f.id, f.role, f.inter_agency) == (s.id, s.role, s.inter_agency)
            for f, s in zip(frozen, steps, strict=True)
        ):
            return frozen
    frozen = tuple(Step(s.id, s.role, s.inter_agency) for s in steps)
    if len(_FROZEN) >= 4096:
        _FROZEN.clear()
    _FROZEN[id(steps)] = (steps, frozen)
    return frozen


_FROZEN: dict[int, tuple[Sequence[StepLike], tuple[Step, ...]]] = {}


def _revive(machine: StateChart) -> None:
    """Let a cached instance that entered a final state take the next dossier.

    python-statemachine stops an instance for good once it enters a top-level final state (its
    engine's ``running`` turns False, and every later event is refused). Building a new one
    costs ~1 ms of callback registration, once per dossier per thread (a tenth of the API's
    CPU in benchmarks.transitions). The instance keeps nothing of the finished dossier: its
    state is read from the model (``status``), the queues are empty between events, and a
    terminal state has no invocations (``_handle_final_state`` cancelled them). So the engine
    is started again. Private API of python-statemachine 3.2, pinned in uv.lock; the tests in
    tests/unit/test_lifecycle.py (``…after_a_final_state``) fail if it changes."""
    engine = machine._engine
    engine.clear()
    engine.running = True


def machine_for(key: str, steps: Sequence[StepLike], facts: DossierFacts) -> StateChart:
    """A machine whose model is ``facts`` (its ``status`` is the state field)."""
    frozen = _frozen(steps)
    cache: dict[tuple[str, tuple[Step, ...]], tuple[StateChart, _FactsProxy]]
    cache = _local.__dict__.setdefault("machines", {})
    entry = cache.get((key, frozen))
    if entry is None:
        proxy = _FactsProxy(facts)
        machine = machine_class_for(key, frozen)(model=proxy, state_field="status")
        cache[(key, frozen)] = entry = (machine, proxy)
    machine, proxy = entry
    proxy.target = facts
    if machine.is_terminated:  # the last dossier it handled reached a final state
        _revive(machine)
    return machine


def allowed_event_ids(key: str, steps: Sequence[StepLike], status: str) -> tuple[str, ...]:
    """The events that have a transition out of ``status`` (guards not evaluated), sorted:
    read from the machine class, no instance built."""
    return _allowed_event_ids(key, _frozen(steps), status)


@functools.lru_cache(maxsize=8192)
def _allowed_event_ids(key: str, steps: tuple[Step, ...], status: str) -> tuple[str, ...]:
    state = machine_class_for(key, steps).states_map[status]
    return tuple(sorted({event.id for event in state.transitions.unique_events}))


def is_final(state: str) -> bool:
    return state in FINAL_STATES


__all__ = [
    "ADMIN",
    "APPROVED",
    "AWAITING_SUPPLEMENT",
    "REJECTED",
    "RESULT_READY",
    "RETURNED",
    "SUBMITTED",
    "SYSTEM",
    "Actor",
    "DossierFacts",
    "Step",
    "allowed_event_ids",
    "build_definition",
    "build_machine_class",
    "clock_running",
    "is_final",
    "machine_for",
]
