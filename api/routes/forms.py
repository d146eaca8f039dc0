"""Printable forms 01–05 and the tracking book (06), as HTML pages and PDF."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from api.auth import MaybeOfficerDep, OfficerDep
from api.deps import ContextDep, SettingsDep
from api.errors import ResourceNotFound
from api.schemas import problems
from api.templating import templates
from services.errors import InvalidInput
from services.forms import build_form, qr_png, render_pdf, tracking_book

router = APIRouter(tags=["forms"])

FormName = Literal["receipt", "supplement_request", "refusal", "apology", "control_slip"]
PDF = {"content": {"application/pdf": {}}, "description": "PDF"}


def _pdf(data: bytes, name: str) -> Response:
    return Response(
        data,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{name}.pdf"'},
    )


@router.get(
    "/api/v1/dossiers/{code}/forms/{form}.pdf",
    response_class=Response,
    responses={200: PDF, **problems(401, 403, 404, 409)},
)
def form_pdf(
    code: str, form: FormName, ctx: ContextDep, settings: SettingsDep, officer: OfficerDep
) -> Response:
    """Biểu mẫu PDF / a form as PDF: receipt (01, with the QR to the lookup page),
    supplement_request (02), refusal (03), apology (04), control_slip (05)."""
    doc = build_form(ctx, officer.actor, code, form, settings.public_base_url)
    return _pdf(render_pdf(doc), f"{form}-{code}")


@router.get(
    "/api/v1/tracking-book.pdf",
    response_class=Response,
    responses={200: PDF, **problems(401, 403, 422)},
)
def tracking_book_pdf(
    ctx: ContextDep,
    officer: OfficerDep,
    start: Annotated[date, Query(alias="from")],
    end: Annotated[date, Query(alias="to")],
    unit: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """Sổ theo dõi hồ sơ (Form 06) of a receiving unit for a period, as PDF (A4 landscape)."""
    if end < start or (end - start).days > 366:
        raise InvalidInput("Khoảng thời gian không hợp lệ", "Invalid period")
    if (unit or officer.unit_code) not in ctx.catalog.units:
        raise ResourceNotFound(f"Không có đơn vị {unit}", f"No unit {unit}")
    doc = tracking_book(ctx, officer.actor, unit or officer.unit_code, start, end)
    return _pdf(render_pdf(doc), f"so-theo-doi-{start}-{end}")


@router.get("/dossiers/{code}/forms/{form}", include_in_schema=False, response_model=None)
def form_page(
    code: str,
    form: str,
    request: Request,
    ctx: ContextDep,
    settings: SettingsDep,
    officer: MaybeOfficerDep,
) -> Response:
    if officer is None:
        return RedirectResponse(f"/signin?next={request.url.path}", status_code=303)
    pdf = form.endswith(".pdf")
    kind = form.removesuffix(".pdf")
    doc = build_form(ctx, officer.actor, code, kind, settings.public_base_url)
    if pdf:
        return _pdf(render_pdf(doc), f"{kind}-{code}")
    return templates.TemplateResponse(
        request,
        "api/form.html",
        {
            "officer": officer,
            "doc": doc,
            "qr_png": qr_png(doc.qr_url) if doc.qr_url and kind == "receipt" else None,
            "pdf_url": f"/dossiers/{code}/forms/{kind}.pdf",
        },
    )


@router.get("/tracking-book", include_in_schema=False, response_model=None)
def tracking_book_page(
    request: Request,
    ctx: ContextDep,
    officer: MaybeOfficerDep,
    start: Annotated[date | None, Query(alias="from")] = None,
    end: Annotated[date | None, Query(alias="to")] = None,
) -> Response:
    if officer is None:
        return RedirectResponse("/signin?next=/tracking-book", status_code=303)
    today = ctx.clock.now().date()
    doc = tracking_book(ctx, officer.actor, officer.unit_code, start or today.replace(day=1),
                        end or today)  # fmt: skip
    return templates.TemplateResponse(
        request, "api/form.html", {"officer": officer, "doc": doc, "qr_png": None, "pdf_url": None}
    )
