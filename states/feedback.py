"""Feedback machines (phản ánh, kiến nghị) built from data, the way dossier lifecycles are.

The process (``catalog/feedback_process.yaml``, validated by ``services.feedback``) is given here
as plain data: states and transitions naming their guards. Guards are validators that raise
:class:`LifecycleRuleBroken` with the reason in Vietnamese and English; a wrong event raises
``TransitionNotAllowed``. The machine never does I/O. Imports nothing of ours outside ``states``.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from statemachine import StateChart
from statemachine.io import create_machine_class_from_definition

from states.events import LifecycleRuleBroken
from states.lifecycle import ADMIN, Actor

CATEGORIES: dict[str, tuple[str, str]] = {
    "regulation": ("Quy định hành chính", "Administrative regulation"),
    "officer_conduct": ("Hành vi của cán bộ, công chức", "Officer conduct"),
    "out_of_scope": ("Không thuộc phạm vi tiếp nhận", "Out of scope"),
}
IN_SCOPE = frozenset({"regulation", "officer_conduct"})
OFFICER_ROLES = frozenset({"counter", "specialist", "leader"})

EVENT_LABELS: dict[str, tuple[str, str]] = {
    "classify": ("Phân loại", "Classify"),
    "request_information": ("Đề nghị bổ sung thông tin", "Ask the author for information"),
    "assign": ("Giao xử lý", "Assign"),
    "draft_answer": ("Dự thảo trả lời", "Draft the answer"),
    "send_back": ("Trả lại dự thảo", "Send the draft back"),
    "approve_answer": ("Duyệt trả lời", "Approve the answer"),
    "publish": ("Công khai trả lời", "Publish the answer"),
    "close": ("Kết thúc", "Close"),
    "forward": ("Chuyển cơ quan có thẩm quyền", "Forward to the competent agency"),
    "reject": ("Từ chối (không thuộc phạm vi)", "Reject as out of scope"),
}


@dataclass
class FeedbackFacts:
    """What the guards need to know about one feedback item (the service fills it from the row);
    ``status`` is the machine's state field."""

    status: str
    agency_code: str
    category: str | None = None
    competent_agency: str | None = None
    assignee: str | None = None
    author_consent: bool = False


@dataclass(frozen=True)
class StateSpec:
    id: str
    initial: bool = False
    final: bool = False


@dataclass(frozen=True)
class TransitionSpec:
    event: str
    sources: tuple[str, ...]
    target: str | None  # None: internal (the state does not change)
    guards: tuple[str, ...]


def _reject(rule: str, vi: str, en: str) -> LifecycleRuleBroken:
    return LifecycleRuleBroken(rule, vi, en)


def _text_given(value: Any, rule: str, vi: str, en: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise _reject(rule, vi, en)


def _officer_of_agency(model: FeedbackFacts, actor: Actor | None = None, **_: Any) -> None:
    if actor is None:
        raise _reject("actor_required", "Thiếu người thực hiện", "No acting officer given")
    if actor.role == ADMIN:
        return
    if actor.role not in OFFICER_ROLES:
        raise _reject(
            "wrong_role",
            f"Vai trò {actor.role} không xử lý phản ánh, kiến nghị",
            f"Role {actor.role} does not handle feedback",
        )
    if actor.unit_code != model.agency_code:
        raise _reject(
            "wrong_unit",
            f"Phản ánh này do {model.agency_code} xử lý, không phải {actor.unit_code}",
            f"This feedback is handled by {model.agency_code}, not {actor.unit_code}",
        )


def _leader_of_agency(model: FeedbackFacts, actor: Actor | None = None, **kw: Any) -> None:
    _officer_of_agency(model, actor, **kw)
    assert actor is not None
    if actor.role not in ("leader", ADMIN):
        raise _reject(
            "leader_required",
            "Chỉ lãnh đạo cơ quan được thực hiện việc này",
            "Only a leader of the agency may do this",
        )


def _assignee(model: FeedbackFacts, actor: Actor | None = None, **kw: Any) -> None:
    _officer_of_agency(model, actor, **kw)
    assert actor is not None
    if actor.role != ADMIN and actor.username != model.assignee:
        raise _reject(
            "not_assignee",
            f"Phản ánh được giao cho {model.assignee}, không phải {actor.username}",
            f"The feedback is assigned to {model.assignee}, not {actor.username}",
        )


def _classification(
    model: FeedbackFacts,
    category: str | None = None,
    competent_agency: str | None = None,
    **_: Any,
) -> None:
    if category not in CATEGORIES:
        raise _reject(
            "category_required",
            "Cần phân loại: quy định hành chính, hành vi cán bộ hoặc không thuộc phạm vi",
            "A category is required: regulation, officer_conduct or out_of_scope",
        )
    if category in IN_SCOPE:
        _text_given(
            competent_agency,
            "competent_agency_required",
            "Cần ghi cơ quan có thẩm quyền xử lý",
            "The competent agency is required",
        )


def _in_scope(model: FeedbackFacts, **_: Any) -> None:
    if model.category not in IN_SCOPE:
        raise _reject(
            "out_of_scope",
            "Phản ánh không thuộc phạm vi: hãy từ chối có lý do",
            "The feedback is out of scope: reject it with a reason",
        )
    if model.competent_agency != model.agency_code:
        raise _reject(
            "not_competent",
            f"Cơ quan có thẩm quyền là {model.competent_agency}: hãy chuyển phản ánh",
            f"The competent agency is {model.competent_agency}: forward the feedback",
        )


def _assignee_given(assignee: str | None = None, **_: Any) -> None:
    _text_given(
        assignee, "assignee_required", "Cần chọn người xử lý", "An officer to assign is required"
    )


def _answer_text(answer: str | None = None, **_: Any) -> None:
    _text_given(
        answer, "answer_required", "Cần nội dung dự thảo trả lời", "The answer text is required"
    )


def _reason(reason: str | None = None, **_: Any) -> None:
    _text_given(reason, "reason_required", "Cần ghi rõ lý do", "A reason is required")


def _other_agency(model: FeedbackFacts, to_agency: str | None = None, **_: Any) -> None:
    _text_given(
        to_agency, "agency_required", "Cần cơ quan nhận chuyển", "The receiving agency is required"
    )
    if to_agency == model.agency_code:
        raise _reject(
            "same_agency",
            "Không thể chuyển phản ánh cho chính cơ quan đang xử lý",
            "Cannot forward the feedback to the agency already handling it",
        )


def _author_consent(model: FeedbackFacts, **_: Any) -> None:
    if not model.author_consent:
        raise _reject(
            "no_consent",
            "Người gửi không đồng ý công khai nội dung trả lời",
            "The author did not agree to publish the answer",
        )


GUARDS: Mapping[str, Callable[..., None]] = {
    "officer_of_agency": _officer_of_agency,
    "leader_of_agency": _leader_of_agency,
    "assignee": _assignee,
    "classification": _classification,
    "in_scope": _in_scope,
    "assignee_given": _assignee_given,
    "answer_text": _answer_text,
    "reason": _reason,
    "other_agency": _other_agency,
    "author_consent": _author_consent,
}


def _note_classification(
    model: FeedbackFacts,
    category: str | None = None,
    competent_agency: str | None = None,
    **_: Any,
) -> None:
    model.category = category
    model.competent_agency = competent_agency if category in IN_SCOPE else None


def _note_assignee(model: FeedbackFacts, assignee: str | None = None, **_: Any) -> None:
    model.assignee = assignee


ACTIONS: Mapping[str, Callable[..., None]] = {
    "classify": _note_classification,
    "assign": _note_assignee,
}


def build_definition(
    states: Sequence[StateSpec], transitions: Sequence[TransitionSpec]
) -> dict[str, Any]:
    """The python-statemachine definition of a feedback process."""
    ids = [s.id for s in states]
    if len(set(ids)) != len(ids):
        raise ValueError("feedback process: state ids must be unique")
    if sum(1 for s in states if s.initial) != 1:
        raise ValueError("feedback process: exactly one initial state")
    definition: dict[str, dict[str, Any]] = {}
    for spec in states:
        entry: dict[str, Any] = {}
        if spec.initial:
            entry["initial"] = True
        if spec.final:
            entry["final"] = True
        definition[spec.id] = entry
    finals = {s.id for s in states if s.final}
    for t in transitions:
        unknown = [g for g in t.guards if g not in GUARDS]
        if unknown:
            raise ValueError(f"feedback process: unknown guard(s) {unknown} on {t.event}")
        for source in t.sources:
            if source not in definition:
                raise ValueError(f"feedback process: unknown state {source!r} in {t.event}")
            if source in finals:
                raise ValueError(f"feedback process: {t.event} leaves the final state {source}")
            target = t.target or source
            if target not in definition:
                raise ValueError(f"feedback process: unknown state {target!r} in {t.event}")
            transition: dict[str, Any] = {
                "target": target,
                "validators": [GUARDS[g] for g in t.guards],
            }
            if t.target is None:
                transition["internal"] = True
            if t.event in ACTIONS:
                transition["on"] = [ACTIONS[t.event]]
            definition[source].setdefault("on", {}).setdefault(t.event, []).append(transition)
    return definition


_MACHINE_FLAGS = {
    "allow_event_without_transition": False,
    "catch_errors_as_events": False,
    "enable_self_transition_entries": False,
    "atomic_configuration_update": True,
}


def build_machine_class(
    name: str, states: Sequence[StateSpec], transitions: Sequence[TransitionSpec]
) -> type[StateChart]:
    definition = build_definition(states, transitions)
    return create_machine_class_from_definition(
        name, states=copy.deepcopy(definition), **_MACHINE_FLAGS
    )


@functools.lru_cache(maxsize=16)
def _cached_class(key: str) -> type[StateChart]:
    raw = json.loads(key)
    states = [StateSpec(**s) for s in raw["states"]]
    transitions = [
        TransitionSpec(t["event"], tuple(t["sources"]), t["target"], tuple(t["guards"]))
        for t in raw["transitions"]
    ]
    return build_machine_class("FeedbackProcess", states, transitions)


def machine_for(
    states: Sequence[StateSpec], transitions: Sequence[TransitionSpec], facts: FeedbackFacts
) -> StateChart:
    """A machine bound to ``facts`` (its ``status`` is the state field); the class is cached
    per process definition."""
    key = json.dumps(
        {
            "states": [{"id": s.id, "initial": s.initial, "final": s.final} for s in states],
            "transitions": [
                {
                    "event": t.event,
                    "sources": list(t.sources),
                    "target": t.target,
                    "guards": list(t.guards),
                }
                for t in transitions
            ],
        },
        sort_keys=True,
    )
    return _cached_class(key)(model=facts, state_field="status")


__all__ = [
    "CATEGORIES",
    "EVENT_LABELS",
    "GUARDS",
    "IN_SCOPE",
    "FeedbackFacts",
    "StateSpec",
    "TransitionSpec",
    "build_definition",
    "build_machine_class",
    "machine_for",
]
