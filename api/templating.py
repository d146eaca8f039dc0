"""Jinja2 templates of the pages (Vietnamese, offline: only /static assets)."""

from __future__ import annotations

import base64
from datetime import datetime
from pathlib import Path

from fastapi.templating import Jinja2Templates

from services.slip import TIMELINESS_VI
from states.events import EVENT_LABELS, STATE_LABELS

TEMPLATES_DIR = Path(__file__).resolve().parent / "pages" / "templates"
templates = Jinja2Templates(directory=str(TEMPLATES_DIR))

PROGRESS_VI = {
    **TIMELINESS_VI,
    "not_yet_due": "Trong hạn",
    "overdue": "Quá hạn",
    "paused": "Tạm dừng (chờ bổ sung)",
    "not_received": "Chưa tiếp nhận",
    "closed": "Đã kết thúc",
}
ROLE_VI = {
    "counter": "Cán bộ một cửa",
    "specialist": "Chuyên viên thụ lý",
    "leader": "Lãnh đạo",
    "supervisor": "Giám sát",
    "digitizer": "Số hóa",
    "admin": "Quản trị",
    "system": "Hệ thống liên thông",
}


def _when(at: datetime | None) -> str:
    return f"{at:%H:%M %d/%m/%Y}" if at else "—"


def _state(status: str) -> str:
    return STATE_LABELS.get(status, (status, status))[0]


def _event(event: str) -> str:
    return EVENT_LABELS.get(event, (event, event))[0]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


templates.env.filters["when"] = _when
templates.env.filters["state_vi"] = _state
templates.env.filters["event_vi"] = _event
templates.env.filters["b64"] = _b64
templates.env.globals["PROGRESS_VI"] = PROGRESS_VI
templates.env.globals["ROLE_VI"] = ROLE_VI
