"""Feedback (phản ánh, kiến nghị): the public page and API, and the officers' pages and API.

Anyone can send feedback and follow it by its code; the public view never shows the author's
name or contact. Published answers (the author agreed) are searchable. Officers of the agency
holding an item classify, assign, answer, approve, publish, forward or reject it; the machine's
guards decide. Pages only parse, call the services and render.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from api.auth import MaybeOfficerDep, Officer, OfficerDep
from api.deps import ContextDep
from api.routes.documents import StoreDep
from api.templating import templates
from services.accounts import Forbidden
from services.errors import DomainError
from services.feedback import (
    MAX_ATTACHMENT_BYTES,
    FeedbackEventName,
    FeedbackIn,
    act_on_feedback,
    agency_worklist,
    allowed_feedback_events,
    attach_file,
    category_label,
    feedback_events,
    get_feedback,
    rate_answer,
    search_published,
    state_label,
    submit_feedback,
)
from states.feedback import CATEGORIES, EVENT_LABELS
from storage.models_feedback import FeedbackItem

router = APIRouter()


# ---------------------------------------------------------------------------------------------
# Schemas
# ---------------------------------------------------------------------------------------------


class FeedbackPublic(BaseModel):
    """What anyone holding the code sees (no personal data)."""

    code: str
    subject: str
    text: str
    procedure_code: str | None
    status: str
    status_vi: str
    agency_code: str
    category: str | None
    received_at: datetime
    due_at: datetime
    handled_at: datetime | None
    timeliness: str | None
    answer: str | None
    published_at: datetime | None
    satisfaction: str | None
    can_rate: bool

    @classmethod
    def of(cls, item: FeedbackItem) -> FeedbackPublic:
        handled = item.handled_at is not None
        return cls(
            code=item.code,
            subject=item.subject,
            text=item.text,
            procedure_code=item.procedure_code,
            status=item.status,
            status_vi=state_label(item.status)[0],
            agency_code=item.agency_code,
            category=item.category,
            received_at=item.received_at,
            due_at=item.due_at,
            handled_at=item.handled_at,
            timeliness=item.timeliness,
            answer=item.answer if handled else None,
            published_at=item.published_at,
            satisfaction=item.satisfaction,
            can_rate=handled and item.satisfaction is None,
        )


class FeedbackOfficerView(FeedbackPublic):
    author_name: str
    author_contact: str | None
    author_consent: bool
    channel: str
    competent_agency: str | None
    assignee: str | None
    draft: str | None
    step_due_at: datetime | None
    forwarded_to: str | None
    rejection_reason: str | None
    version: int
    allowed_events: list[str]

    @classmethod
    def of_item(cls, item: FeedbackItem) -> FeedbackOfficerView:
        public = FeedbackPublic.of(item).model_dump()
        return cls(
            **public,
            author_name=item.author_name,
            author_contact=item.author_contact,
            author_consent=item.author_consent,
            channel=item.channel,
            competent_agency=item.competent_agency,
            assignee=item.assignee,
            draft=item.answer,
            step_due_at=item.step_due_at,
            forwarded_to=item.forwarded_to,
            rejection_reason=item.rejection_reason,
            version=item.version,
            allowed_events=allowed_feedback_events(item),
        )


class PublishedAnswer(BaseModel):
    code: str
    subject: str
    text: str
    procedure_code: str | None
    agency_code: str
    answer: str | None
    published_at: datetime | None


class RatingIn(BaseModel):
    satisfied: bool


class FeedbackEventIn(BaseModel):
    reason: str | None = Field(default=None, max_length=4000)
    category: str | None = None
    competent_agency: str | None = None
    assignee: str | None = Field(default=None, max_length=64)
    answer: str | None = Field(default=None, max_length=20_000)
    to_agency: str | None = None


# ---------------------------------------------------------------------------------------------
# API
# ---------------------------------------------------------------------------------------------


@router.post("/api/v1/feedback", status_code=201, tags=["feedback"])
def api_submit(ctx: ContextDep, body: FeedbackIn) -> FeedbackPublic:
    """Gửi phản ánh, kiến nghị (anyone; the channel is the public page)."""
    data = body.model_copy(update={"channel": "web", "external_ref": None})
    return FeedbackPublic.of(submit_feedback(ctx, data))


@router.post("/api/v1/feedback/intake", status_code=201, tags=["feedback"])
def api_intake(ctx: ContextDep, officer: OfficerDep, body: FeedbackIn) -> FeedbackOfficerView:
    """Tiếp nhận tại quầy hoặc từ Cổng DVC quốc gia (officer; ``external_ref`` makes a resend
    by the portal idempotent)."""
    return FeedbackOfficerView.of_item(submit_feedback(ctx, body, actor=officer.actor))


@router.get("/api/v1/feedback/published", tags=["feedback"])
def api_published(
    ctx: ContextDep, q: Annotated[str, Query(max_length=200)] = ""
) -> list[PublishedAnswer]:
    """Tra cứu trả lời đã công khai / published answers."""
    return [
        PublishedAnswer(
            code=i.code,
            subject=i.subject,
            text=i.text,
            procedure_code=i.procedure_code,
            agency_code=i.agency_code,
            answer=i.answer,
            published_at=i.published_at,
        )
        for i in search_published(ctx, q)
    ]


@router.get("/api/v1/feedback", tags=["feedback"])
def api_worklist(
    ctx: ContextDep, officer: OfficerDep, all: bool = False
) -> list[FeedbackOfficerView]:
    """Phản ánh của cơ quan / the officer's agency's feedback (open ones unless all=true)."""
    items = agency_worklist(ctx, officer.unit_code, open_only=not all)
    return [FeedbackOfficerView.of_item(i) for i in items]


@router.get("/api/v1/feedback/{code}", tags=["feedback"])
def api_follow(ctx: ContextDep, code: str) -> FeedbackPublic:
    """Theo dõi phản ánh theo mã / follow an item by its code."""
    return FeedbackPublic.of(get_feedback(ctx, code))


@router.post("/api/v1/feedback/{code}/rating", tags=["feedback"])
def api_rate(ctx: ContextDep, code: str, body: RatingIn) -> FeedbackPublic:
    """Đánh giá hài lòng / the author rates the answer."""
    return FeedbackPublic.of(rate_answer(ctx, code, body.satisfied))


@router.get("/api/v1/feedback/{code}/officer", tags=["feedback"])
def api_officer_view(ctx: ContextDep, officer: OfficerDep, code: str) -> FeedbackOfficerView:
    return FeedbackOfficerView.of_item(_visible(officer, get_feedback(ctx, code)))


@router.post("/api/v1/feedback/{code}/events/{event}", tags=["feedback"])
def api_event(
    ctx: ContextDep,
    officer: OfficerDep,
    code: str,
    event: FeedbackEventName,
    body: FeedbackEventIn,
    request: Request,
) -> FeedbackOfficerView:
    """Xử lý phản ánh / send an event (If-Match: "<version>" optional)."""
    expected = request.headers.get("If-Match")
    version = int(expected.strip('"W/ ')) if expected and expected.strip('"W/ ').isdigit() else None
    item = act_on_feedback(
        ctx, officer.actor, code, event, version, **body.model_dump(exclude_none=True)
    )
    return FeedbackOfficerView.of_item(item)


# ---------------------------------------------------------------------------------------------
# Pages
# ---------------------------------------------------------------------------------------------


def _visible(officer: Officer, item: FeedbackItem) -> FeedbackItem:
    """Officers see the author's data of their own agency's items only."""
    if officer.role in ("admin", "supervisor") or officer.unit_code == item.agency_code:
        return item
    raise Forbidden(
        f"Phản ánh {item.code} không thuộc cơ quan của bạn",
        f"Feedback {item.code} is outside your agency",
    )


def _render(request: Request, name: str, officer: Officer | None, **context: Any) -> HTMLResponse:
    status = context.pop("status_code", 200)
    return templates.TemplateResponse(
        request,
        f"feedback/{name}.html",
        {
            "officer": officer,
            "CATEGORIES": CATEGORIES,
            "FEEDBACK_EVENTS": EVENT_LABELS,
            "state_label": state_label,
            "category_label": category_label,
            **context,
        },
        status_code=status,
    )


@router.get("/phan-anh", response_class=HTMLResponse, include_in_schema=False)
def public_page(
    request: Request,
    ctx: ContextDep,
    officer: MaybeOfficerDep,
    q: Annotated[str, Query(max_length=200)] = "",
) -> HTMLResponse:
    procedures = sorted(ctx.catalog.procedures.values(), key=lambda p: p.code)
    return _render(
        request,
        "public",
        officer,
        q=q,
        published=search_published(ctx, q),
        procedures=procedures,
    )


def check_attachment(name: str | None, content: bytes) -> None:
    """Refuse a bad attachment before the feedback is recorded."""
    from services.documents import check_file_name, detect_type
    from services.errors import InvalidInput

    check_file_name(name)
    if len(content) > MAX_ATTACHMENT_BYTES:
        raise InvalidInput("Tệp đính kèm vượt quá 10 MiB", "The attachment is larger than 10 MiB")
    detect_type(content[:8192])


@router.post("/phan-anh", response_model=None, include_in_schema=False)
def public_submit(
    request: Request,
    ctx: ContextDep,
    officer: MaybeOfficerDep,
    store: StoreDep,
    author_name: Annotated[str, Form(max_length=200)],
    subject: Annotated[str, Form(max_length=300)],
    text: Annotated[str, Form(max_length=20_000)],
    author_contact: Annotated[str, Form(max_length=200)] = "",
    procedure_code: Annotated[str, Form(max_length=32)] = "",
    author_consent: Annotated[str, Form(max_length=8)] = "",
    attachment: Annotated[UploadFile | None, File()] = None,
) -> Response:
    try:
        content = b""
        if attachment is not None and attachment.filename:
            content = attachment.file.read(MAX_ATTACHMENT_BYTES + 1)
            check_attachment(attachment.filename, content)
        data = FeedbackIn(
            author_name=author_name,
            author_contact=author_contact or None,
            procedure_code=procedure_code or None,
            subject=subject,
            text=text,
            author_consent=bool(author_consent),
        )
        item = submit_feedback(ctx, data)
        if content:
            attach_file(ctx, store, item.code, attachment.filename if attachment else None, content)
    except (DomainError, ValueError) as error:
        message = error.message_vi if isinstance(error, DomainError) else "Dữ liệu chưa hợp lệ"
        procedures = sorted(ctx.catalog.procedures.values(), key=lambda p: p.code)
        return _render(
            request, "public", officer, error=message, q="", published=[],
            procedures=procedures, status_code=422,
        )  # fmt: skip
    return RedirectResponse(f"/phan-anh/{item.code}?moi=1", status_code=303)


@router.get("/phan-anh/tra-cuu", include_in_schema=False)
def public_find(code: Annotated[str, Query(max_length=64)] = "") -> RedirectResponse:
    safe = "".join(ch for ch in code.strip().upper() if ch.isalnum() or ch == "-")
    return RedirectResponse(f"/phan-anh/{safe}" if safe else "/phan-anh", status_code=303)


@router.get("/phan-anh/{code}", response_class=HTMLResponse, include_in_schema=False)
def public_follow(
    request: Request, ctx: ContextDep, officer: MaybeOfficerDep, code: str, moi: int = 0
) -> HTMLResponse:
    try:
        item = FeedbackPublic.of(get_feedback(ctx, code))
    except DomainError as error:
        return _render(request, "follow", officer, item=None, error=error.message_vi,
                       status_code=404)  # fmt: skip
    return _render(request, "follow", officer, item=item, new=bool(moi))


@router.post("/phan-anh/{code}/danh-gia", response_model=None, include_in_schema=False)
def public_rate(
    request: Request,
    ctx: ContextDep,
    officer: MaybeOfficerDep,
    code: str,
    satisfied: Annotated[str, Form(max_length=8)],
) -> Response:
    try:
        rate_answer(ctx, code, satisfied == "yes")
    except DomainError as error:
        item = FeedbackPublic.of(get_feedback(ctx, code))
        return _render(request, "follow", officer, item=item, error=error.message_vi,
                       status_code=409)  # fmt: skip
    return RedirectResponse(f"/phan-anh/{code}", status_code=303)


def _to_signin(request: Request) -> RedirectResponse:
    return RedirectResponse(f"/signin?next={request.url.path}", status_code=303)


@router.get("/can-bo/phan-anh", response_model=None, include_in_schema=False)
def officer_list(
    request: Request, ctx: ContextDep, officer: MaybeOfficerDep, all: int = 0
) -> Response:
    if officer is None:
        return _to_signin(request)
    items = agency_worklist(ctx, officer.unit_code, open_only=not all)
    return _render(request, "officer_list", officer, items=items, show_all=bool(all))


@router.get("/can-bo/phan-anh/{code}", response_model=None, include_in_schema=False)
def officer_detail(
    request: Request, ctx: ContextDep, officer: MaybeOfficerDep, code: str, notice: str = ""
) -> Response:
    if officer is None:
        return _to_signin(request)
    item = _visible(officer, get_feedback(ctx, code))
    return _render(
        request,
        "officer_detail",
        officer,
        item=FeedbackOfficerView.of_item(item),
        attachments=item.attachments,
        events=feedback_events(ctx, code),
        notice=notice,
    )


@router.get("/can-bo/phan-anh/{code}/tep/{sha256}", include_in_schema=False)
def officer_attachment(
    ctx: ContextDep, officer: OfficerDep, store: StoreDep, code: str, sha256: str
) -> StreamingResponse:
    """Tệp đính kèm của phản ánh (officers of the agency only)."""
    item = _visible(officer, get_feedback(ctx, code))
    for attached in item.attachments:
        if attached.get("sha256") == sha256:
            return StreamingResponse(
                store.open(attached["key"]), media_type=attached["content_type"]
            )
    from api.errors import ResourceNotFound

    raise ResourceNotFound("Không có tệp này", "No such attachment")


@router.post("/can-bo/phan-anh/{code}/{event}", response_model=None, include_in_schema=False)
def officer_event(
    request: Request,
    ctx: ContextDep,
    officer: MaybeOfficerDep,
    code: str,
    event: FeedbackEventName,
    version: Annotated[int, Form()],
    reason: Annotated[str, Form(max_length=4000)] = "",
    category: Annotated[str, Form(max_length=32)] = "",
    competent_agency: Annotated[str, Form(max_length=64)] = "",
    assignee: Annotated[str, Form(max_length=64)] = "",
    answer: Annotated[str, Form(max_length=20_000)] = "",
    to_agency: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    if officer is None:
        return _to_signin(request)
    try:
        act_on_feedback(
            ctx,
            officer.actor,
            code,
            event,
            version,
            reason=reason or None,
            category=category or None,
            competent_agency=competent_agency or None,
            assignee=assignee or None,
            answer=answer or None,
            to_agency=to_agency or None,
        )
    except DomainError as error:
        item = get_feedback(ctx, code)
        return _render(
            request, "officer_detail", officer, item=FeedbackOfficerView.of_item(item),
            events=feedback_events(ctx, code), error=error.message_vi, status_code=409,
        )  # fmt: skip
    label = EVENT_LABELS.get(event, (event, event))[0]
    return RedirectResponse(f"/can-bo/phan-anh/{code}?notice={label}", status_code=303)
