"""Lifecycle vocabulary: events, side states, labels. Imports nothing of ours."""

from __future__ import annotations

from typing import Literal

Event = Literal[
    "receive",
    "request_supplement",
    "supplement",
    "forward",
    "send_back",
    "approve",
    "reject",
    "mark_result_ready",
    "return_result",
    "refuse",
    "withdraw",
    "extend",
]
EVENTS: tuple[Event, ...] = (
    "receive",
    "request_supplement",
    "supplement",
    "forward",
    "send_back",
    "approve",
    "reject",
    "mark_result_ready",
    "return_result",
    "refuse",
    "withdraw",
    "extend",
)

SUBMITTED = "submitted"
AWAITING_SUPPLEMENT = "awaiting_supplement"
APPROVED = "approved"
REJECTED = "rejected"
RESULT_READY = "result_ready"
RETURNED = "returned"
REFUSED = "refused"
WITHDRAWN = "withdrawn"

SIDE_STATES = (SUBMITTED, AWAITING_SUPPLEMENT, APPROVED, REJECTED, RESULT_READY)
FINAL_STATES = frozenset({RETURNED, REFUSED, WITHDRAWN})

EVENT_LABELS: dict[str, tuple[str, str]] = {
    "receive": ("Tiếp nhận hồ sơ", "Receive"),
    "request_supplement": ("Yêu cầu bổ sung, hoàn thiện hồ sơ", "Request supplementation"),
    "supplement": ("Nhận hồ sơ bổ sung", "Supplement received"),
    "forward": ("Chuyển xử lý", "Forward"),
    "send_back": ("Trả lại bước trước", "Send back"),
    "approve": ("Phê duyệt", "Approve"),
    "reject": ("Từ chối giải quyết (có lý do)", "Reject with reason"),
    "mark_result_ready": ("Chuyển kết quả về Bộ phận Một cửa", "Result handed to the counter"),
    "return_result": ("Trả kết quả", "Return the result"),
    "refuse": ("Từ chối tiếp nhận", "Refuse at the counter"),
    "withdraw": ("Rút hồ sơ", "Withdraw"),
    "extend": ("Xin lỗi và hẹn lại ngày trả kết quả", "Apology and new appointment"),
}

STATE_LABELS: dict[str, tuple[str, str]] = {
    SUBMITTED: ("Chờ tiếp nhận", "Submitted"),
    AWAITING_SUPPLEMENT: ("Chờ bổ sung hồ sơ", "Awaiting supplementation"),
    APPROVED: ("Đã phê duyệt", "Approved"),
    REJECTED: ("Từ chối giải quyết", "Rejected"),
    RESULT_READY: ("Có kết quả, chờ trả", "Result ready"),
    RETURNED: ("Đã trả kết quả", "Returned"),
    REFUSED: ("Từ chối tiếp nhận", "Refused at the counter"),
    WITHDRAWN: ("Đã rút hồ sơ", "Withdrawn"),
}


class LifecycleRuleBroken(Exception):
    """A guard refused an event; carries the reason in Vietnamese and English."""

    def __init__(self, rule: str, message_vi: str, message_en: str) -> None:
        super().__init__(f"{message_vi} / {message_en}")
        self.rule = rule
        self.message_vi = message_vi
        self.message_en = message_en
