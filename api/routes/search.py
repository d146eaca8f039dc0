"""Dossier search for officers: the page (``/search``, the box in the header) and its JSON
(``/api/v1/search``). The service (``services.search``) scopes it to what the officer may see."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.auth import MaybeOfficerDep, OfficerDep
from api.deps import ContextDep
from api.templating import templates
from services.search import SearchHit, search_dossiers

router = APIRouter()
SOURCE_VI = {"code": "Mã hồ sơ", "name": "Tên người nộp", "text": "Nội dung giấy tờ số hóa"}


def _public(hit: SearchHit) -> dict[str, Any]:
    return {
        "code": hit.code,
        "applicant_name": hit.applicant_name,
        "procedure_code": hit.procedure_code,
        "status": hit.status,
        "competent_agency": hit.competent_agency,
        "matched": hit.source,
        "snippet": "".join(part for part, _ in hit.snippet),
        "highlights": [part for part, marked in hit.snippet if marked],
    }


@router.get("/api/v1/search", tags=["dossiers"])
def search_api(
    ctx: ContextDep,
    officer: OfficerDep,
    q: Annotated[str, Query(min_length=1, max_length=200)],
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[dict[str, Any]]:
    """Dossiers the officer may see whose code starts with ``q``, whose applicant's name has
    every word of ``q``, or whose digitized papers (OCR text) have them — diacritics or not."""
    return [_public(hit) for hit in search_dossiers(ctx, officer.actor, q, limit=limit)]


@router.get("/search", response_class=HTMLResponse, include_in_schema=False)
def search_page(
    request: Request,
    ctx: ContextDep,
    officer: MaybeOfficerDep,
    q: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    if officer is None:
        return RedirectResponse("/signin?next=/search", status_code=303)
    hits = search_dossiers(ctx, officer.actor, q) if q.strip() else []
    return templates.TemplateResponse(
        request,
        "api/search.html",
        {"officer": officer, "q": q, "search_q": q, "hits": hits, "sources": SOURCE_VI},
    )
