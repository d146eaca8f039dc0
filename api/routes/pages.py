"""Officer pages (server-rendered, Vietnamese, offline) and the public lookup page.

The session is the same signed token as the API's, in an HttpOnly, SameSite=Lax cookie (a
cross-site form cannot post with it). Pages only parse, call the services and render.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.auth import SESSION_COOKIE, MaybeOfficerDep, Officer
from api.deps import ContextDep, SettingsDep
from api.routes.auth import client_of
from api.routes.dossiers import load_visible, to_public
from api.templating import templates
from services.accounts import TOKEN_HOURS, issue_token, sign_in
from services.assignments import leader_units
from services.catalog import ProcedureVersion
from services.context import Context
from services.dossiers import Applicant, DossierIn, act, submit_dossier
from services.errors import CatalogError, DomainError
from services.lookup import lookup
from services.ratings import rate
from services.slip import control_slip
from services.worklist import DossierFilter, list_dossiers
from states.events import EVENTS, STATE_LABELS
from storage.models import TZ

router = APIRouter(include_in_schema=False)

FORM_LINKS = [
    ("receipt", "Mẫu 01 — Giấy tiếp nhận"),
    ("supplement_request", "Mẫu 02 — Yêu cầu bổ sung"),
    ("refusal", "Mẫu 03 — Từ chối"),
    ("apology", "Mẫu 04 — Xin lỗi, hẹn lại"),
    ("control_slip", "Mẫu 05 — Phiếu kiểm soát"),
]
# events an officer of each role may try from the pages (the machine's guards decide in the end)
ROLE_EVENTS: dict[str, set[str]] = {
    "counter": {"forward", "request_supplement", "supplement", "mark_result_ready",
                "return_result", "withdraw", "send_back"},
    "specialist": {"forward", "send_back", "request_supplement", "mark_result_ready"},
    "leader": {"forward", "send_back", "approve", "reject", "request_supplement",
               "mark_result_ready", "extend"},
    "admin": set(EVENTS),
}  # fmt: skip


def render(request: Request, name: str, officer: Officer | None, **context: Any) -> HTMLResponse:
    status = context.pop("status_code", 200)
    return templates.TemplateResponse(
        request, f"api/{name}.html", {"officer": officer, **context}, status_code=status
    )


def to_signin(request: Request) -> RedirectResponse:
    return RedirectResponse(f"/signin?next={request.url.path}", status_code=303)


def _safe_next(value: str | None) -> str:
    return value if value and value.startswith("/") and not value.startswith("//") else "/"


@router.get("/")
def home(officer: MaybeOfficerDep) -> RedirectResponse:
    if officer is None:
        return RedirectResponse("/signin", status_code=303)
    return RedirectResponse("/desk" if officer.role == "counter" else "/worklist", status_code=303)


@router.get("/signin", response_class=HTMLResponse)
def signin_page(
    request: Request, officer: MaybeOfficerDep, next: str | None = None
) -> HTMLResponse:
    return render(request, "signin", officer, next=_safe_next(next))


@router.post("/signin", response_model=None)
def signin(
    request: Request,
    ctx: ContextDep,
    settings: SettingsDep,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
    next: Annotated[str, Form(max_length=300)] = "/",
) -> Response:
    try:
        identity = sign_in(ctx, username, password, client_of(request))
    except DomainError as error:
        return render(
            request, "signin", None, error=error.message_vi, username=username,
            next=_safe_next(next), status_code=429 if error.code == "too_many_attempts" else 401,
        )  # fmt: skip
    response = RedirectResponse(
        _safe_next(next)
        if next != "/"
        else ("/desk" if identity.role == "counter" else "/worklist"),
        status_code=303,
    )
    response.set_cookie(
        SESSION_COOKIE,
        issue_token(identity, settings.secret_key, ctx.clock.now()),
        max_age=TOKEN_HOURS * 3600,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/signout")
def signout() -> RedirectResponse:
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


# --- citizen lookup ----------------------------------------------------------------------------


@router.get("/lookup", response_class=HTMLResponse)
def lookup_page(
    request: Request,
    ctx: ContextDep,
    officer: MaybeOfficerDep,
    code: Annotated[str | None, Query(max_length=48)] = None,
    digits: Annotated[str | None, Query(max_length=8)] = None,
) -> HTMLResponse:
    if not code or not digits:
        return render(request, "lookup", officer, code=code)
    try:
        result = lookup(ctx, code, digits, client_of(request))
    except DomainError as error:
        status = 429 if error.code == "too_many_attempts" else 404
        return render(
            request, "lookup", officer, code=code, error=error.message_vi, status_code=status
        )
    return render(request, "lookup", officer, code=code, digits=digits, result=result)


@router.post("/lookup/rating", response_class=HTMLResponse)
def rating_page(
    request: Request,
    ctx: ContextDep,
    officer: MaybeOfficerDep,
    code: Annotated[str, Form(max_length=48)],
    digits: Annotated[str, Form(max_length=8)],
    score: Annotated[str, Form(pattern="^(satisfied|acceptable|dissatisfied)$")],
    comment: Annotated[str, Form(max_length=2000)] = "",
) -> HTMLResponse:
    try:
        rate(ctx, code, digits, client_of(request), score, comment)  # type: ignore[arg-type]
    except DomainError as error:
        return render(request, "lookup", officer, code=code, error=error.message_vi)
    return render(request, "lookup", officer, code=code, notice="Cảm ơn ông/bà đã đánh giá.")


# --- counter desk ------------------------------------------------------------------------------


def _procedures_for(ctx: Context, unit_code: str) -> list[tuple[Any, ProcedureVersion]]:
    day = ctx.clock.now().date()
    result = []
    for procedure in sorted(ctx.catalog.procedures.values(), key=lambda p: p.code):
        try:
            version = procedure.version_at(day)
            for step in version.process:
                ctx.catalog.resolve_agency(step.agency, unit_code)
        except CatalogError:
            continue
        result.append((procedure, version))
    return result


def _desk(
    request: Request, ctx: ContextDep, officer: Officer, code: str | None, **extra: Any
) -> HTMLResponse:
    options = _procedures_for(ctx, officer.unit_code)
    chosen = next(((p, v) for p, v in options if p.code == code), None)
    return render(
        request,
        "desk",
        officer,
        unit_name=ctx.catalog.units[officer.unit_code].name
        if officer.unit_code in ctx.catalog.units
        else officer.unit_code,
        procedures=[
            {"code": p.code, "name": p.name, "time_limit": v.time_limit} for p, v in options
        ],
        procedure=chosen[0] if chosen else None,
        version=chosen[1] if chosen else None,
        checked=extra.pop(
            "checked", {c.id for c in chosen[1].components if c.required} if chosen else set()
        ),
        form=extra.pop("form", {}),
        idempotency_key=secrets.token_urlsafe(16),
        **extra,
    )


@router.get("/desk", response_model=None)
def desk(
    request: Request,
    ctx: ContextDep,
    officer: MaybeOfficerDep,
    procedure: Annotated[str | None, Query(max_length=32)] = None,
) -> Response:
    if officer is None:
        return to_signin(request)
    return _desk(request, ctx, officer, procedure)


@router.post("/desk", response_model=None)
def desk_submit(
    request: Request,
    ctx: ContextDep,
    officer: MaybeOfficerDep,
    procedure_code: Annotated[str, Form(max_length=32)],
    name: Annotated[str, Form(max_length=200)],
    action: Annotated[str, Form(pattern="^(receive|request_supplement|refuse)$")],
    components: Annotated[list[str] | None, Form()] = None,
    id_number: Annotated[str, Form(max_length=32)] = "",
    phone: Annotated[str, Form(max_length=32)] = "",
    email: Annotated[str, Form(max_length=128)] = "",
    address: Annotated[str, Form(max_length=500)] = "",
    request_summary: Annotated[str, Form(max_length=2000)] = "",
    reason: Annotated[str, Form(max_length=2000)] = "",
    idempotency_key: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    if officer is None:
        return to_signin(request)
    from services.idempotency import StoredResponse, run_once

    form = {"name": name, "id_number": id_number, "phone": phone, "email": email,
            "address": address, "request_summary": request_summary, "reason": reason}  # fmt: skip
    form_kind = {"receive": "receipt", "request_supplement": "supplement_request",
                 "refuse": "refusal"}[action]  # fmt: skip

    def receive() -> StoredResponse:
        dossier = submit_dossier(
            ctx,
            officer.actor,
            DossierIn(
                procedure_code=procedure_code,
                receiving_unit=officer.unit_code,
                applicant=Applicant(
                    name=name,
                    id_number=id_number or None,
                    phone=phone or None,
                    email=email or None,
                    address=address or None,
                ),
                components=components or [],
                request_summary=request_summary or None,
            ),
            then=action,  # type: ignore[arg-type]
            reason=reason or None,
        )
        location = f"/dossiers/{dossier.code}/forms/{form_kind}"
        return StoredResponse(303, None, {"Location": location})

    try:
        if idempotency_key:  # a double click on the desk's button gives the first form again
            key, target = f"desk:{idempotency_key}", f"PAGE /desk {procedure_code}"
            answer, _ = run_once(ctx, officer.username, key, target, "-", receive)
        else:
            answer = receive()
    except (DomainError, ValueError) as error:
        message = error.message_vi if isinstance(error, DomainError) else str(error)
        return _desk(
            request, ctx, officer, procedure_code, error=message, form=form,
            checked=set(components or []), status_code=422,
        )  # fmt: skip
    return RedirectResponse(answer.headers["Location"], status_code=303)


# --- worklist and dossier ------------------------------------------------------------------------


@router.get("/worklist", response_model=None)
def worklist(
    request: Request,
    ctx: ContextDep,
    officer: MaybeOfficerDep,
    status: Annotated[str | None, Query(max_length=48)] = None,
    late_only: bool = False,
    scope: Annotated[str | None, Query(pattern="^(unit|unassigned)$")] = None,
    assigned: Annotated[int | None, Query(ge=0, le=1000)] = None,
    to: Annotated[str | None, Query(max_length=64)] = None,
    delegated: Annotated[str | None, Query(max_length=64)] = None,
    revoked: Annotated[int | None, Query(ge=0)] = None,
) -> Response:
    if officer is None:
        return to_signin(request)
    notice = None
    if assigned is not None:
        notice = f"Đã phân công {assigned} hồ sơ cho {to or ''}."
    elif delegated:
        notice = f"Đã ủy quyền cho {delegated}."
    elif revoked is not None:
        notice = f"Đã thu hồi ủy quyền số {revoked}."
    return worklist_page(
        request, ctx, officer, status=status, late_only=late_only, scope=scope, notice=notice
    )


def worklist_page(
    request: Request,
    ctx: Context,
    officer: Officer,
    *,
    status: str | None = None,
    late_only: bool = False,
    scope: str | None = None,
    **extra: Any,
) -> HTMLResponse:
    """Dossiers at the officer's unit, due soonest first. A leader (or a deputy by a delegation
    in force) ticks dossiers and assigns them to a specialist; a specialist sees first what is
    assigned to them, then what nobody has yet (``scope=unit``: everything at the unit)."""
    from api.routes.assignments import worklist_panel

    province_wide = officer.role in ("supervisor", "admin")
    panel = worklist_panel(ctx, officer)
    specialist = officer.role == "specialist"
    if specialist and scope is None and not panel["can_assign"]:
        scope = "unassigned"

    def rows(**only: Any) -> list[Any]:
        found = list_dossiers(
            ctx,
            officer.actor,
            DossierFilter(
                status=status or None,
                late_only=late_only,
                current_unit=None if province_wide else officer.unit_code,
                open_only=not status,
                **only,
            ),
            limit=300,
            order="due",
        )
        return found

    items = rows(unassigned=scope == "unassigned")
    mine = rows(assignee=officer.username) if specialist else []
    statuses = sorted({d.status for d in items} | ({status} if status else set()))
    labels = [(s, STATE_LABELS.get(s, (s, s))[0]) for s in statuses]
    unit = ctx.catalog.units.get(officer.unit_code)
    return render(
        request, "worklist", officer, items=[to_public(ctx, d) for d in items],
        mine=[to_public(ctx, d) for d in mine], statuses=labels, status=status,
        late_only=late_only, scope=scope, unit_name=unit.name if unit else officer.unit_code,
        **panel, **extra,
    )  # fmt: skip


def _dossier_page(
    request: Request, ctx: Context, officer: Officer, code: str, **extra: Any
) -> HTMLResponse:
    dossier = load_visible(ctx, officer, code)
    public = to_public(ctx, dossier)
    mine = set(ROLE_EVENTS.get(officer.role, set()))
    if officer.role not in ("leader", "admin") and officer.unit_code in leader_units(
        ctx, officer.actor
    ):  # a deputy by a delegation in force: the leader's events too (services.assignments)
        mine |= ROLE_EVENTS["leader"]
    actions = [e for e in public.allowed_events if e in mine]
    slip = control_slip(ctx, code)
    return render(
        request, "dossier", officer, d=public, actions=actions, slip_rows=slip.timeline,
        unit_names=slip.unit_names, forms=FORM_LINKS, **extra,
    )  # fmt: skip


@router.get("/dossiers/{code}", response_model=None)
def dossier_page(
    code: str, request: Request, ctx: ContextDep, officer: MaybeOfficerDep
) -> Response:
    if officer is None:
        return to_signin(request)
    return _dossier_page(request, ctx, officer, code)


@router.post("/dossiers/{code}/events", response_model=None)
def dossier_event(
    code: str,
    request: Request,
    ctx: ContextDep,
    officer: MaybeOfficerDep,
    event: Annotated[str, Form(max_length=32)],
    version: Annotated[int, Form()],
    reason: Annotated[str, Form(max_length=2000)] = "",
    decision_ref: Annotated[str, Form(max_length=200)] = "",
    new_appointment: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    if officer is None:
        return to_signin(request)
    try:
        if event not in EVENTS:
            raise DomainError(f"Không có thao tác {event}", f"No event {event}")
        appointment = None
        if new_appointment:
            appointment = datetime.fromisoformat(new_appointment)
            if appointment.tzinfo is None:
                appointment = appointment.replace(tzinfo=TZ)
        load_visible(ctx, officer, code)
        act(
            ctx, officer.actor, code, event, version,
            reason=reason or None, decision_ref=decision_ref or None,
            new_appointment=appointment,
        )  # fmt: skip
    except (DomainError, ValueError) as error:
        message = error.message_vi if isinstance(error, DomainError) else str(error)
        page = _dossier_page(request, ctx, officer, code, error=message)
        page.status_code = 409
        return page
    return RedirectResponse(f"/dossiers/{code}", status_code=303)


@router.get("/docs", response_class=HTMLResponse)
def docs(request: Request, officer: MaybeOfficerDep) -> HTMLResponse:
    """The API documentation, rendered here from the OpenAPI document (no CDN)."""
    return render(request, "docs", officer, spec=request.app.openapi())
