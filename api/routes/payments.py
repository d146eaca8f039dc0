"""Fees and payments over HTTP: assess the fee, cash at the counter, online payment request,
the gateway's signed callback, the payer's return page, reconciliation.

Gateway settings (environment, prefix ``MOTCUA_PAYMENT_``): ``GATEWAY_URL`` (unset by default:
online payment and reconciliation then answer 409 ``payment_gateway_not_configured``; the stand-in
gateway of ``motcua fake-gateway`` listens on http://127.0.0.1:8765), ``SECRET`` (the shared HMAC
key), ``GATEWAY_NAME``. A configured gateway that does not answer is 502 ``gateway_unavailable``.
Tests may put a :class:`PaymentSettings` on ``app.state.payment_settings``.
"""

from __future__ import annotations

import html
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from api.auth import Officer, OfficerDep, require_roles
from api.deps import ContextDep, SettingsDep
from api.schemas import Problem
from services.errors import DomainError
from services.fees import (
    FeeInput,
    assess_fee,
    get_charge,
    receive_when_paid,
    record_cash_payment,
    return_when_paid,
)
from services.payments import (
    SIGNATURE_HEADER,
    GatewayNotConfigured,
    HttpGateway,
    handle_callback,
    payment_of,
    reconcile,
    request_online_payment,
)
from storage.models_feedback import DossierCharge, Payment

router = APIRouter(tags=["fees"])


class PaymentSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MOTCUA_PAYMENT_", extra="ignore")

    gateway_url: str | None = None  # e.g. http://127.0.0.1:8765 for `motcua fake-gateway`
    secret: str = "motcua-dev-payment-secret"
    gateway_name: str = "fakepay"


def payment_settings(request: Request) -> PaymentSettings:
    found = getattr(request.app.state, "payment_settings", None)
    return found if isinstance(found, PaymentSettings) else PaymentSettings()


def gateway_for(request: Request) -> HttpGateway:
    s = payment_settings(request)
    if not s.gateway_url:
        raise GatewayNotConfigured()
    return HttpGateway(s.gateway_url, s.secret, s.gateway_name)


class PaymentView(BaseModel):
    order_ref: str
    dossier_code: str
    amount: int
    method: str
    status: str
    receipt_number: str | None
    payment_url: str | None
    qr_payload: str | None
    created_at: datetime
    paid_at: datetime | None

    @classmethod
    def of(cls, p: Payment) -> PaymentView:
        return cls(
            order_ref=p.order_ref,
            dossier_code=p.dossier_code,
            amount=p.amount,
            method=p.method,
            status=p.status,
            receipt_number=p.receipt_number,
            payment_url=p.payment_url,
            qr_payload=p.qr_payload,
            created_at=p.created_at,
            paid_at=p.paid_at,
        )


class ChargeView(BaseModel):
    dossier_code: str
    procedure_code: str
    amount: int
    lines: list[dict[str, Any]]
    exemption: str | None
    wait: str
    status: str
    method: str | None
    paid_at: datetime | None
    payments: list[PaymentView] = Field(default_factory=list)

    @classmethod
    def of(cls, c: DossierCharge, payments: list[Payment] | None = None) -> ChargeView:
        return cls(
            dossier_code=c.dossier_code,
            procedure_code=c.procedure_code,
            amount=c.amount,
            lines=c.lines,
            exemption=c.exemption,
            wait=c.wait,
            status=c.status,
            method=c.method,
            paid_at=c.paid_at,
            payments=[PaymentView.of(p) for p in payments or []],
        )


class CashIn(BaseModel):
    receipt_number: str = Field(min_length=1, max_length=60)


class VersionIn(BaseModel):
    expected_version: int | None = None


@router.post("/api/v1/dossiers/{code}/fee")
def api_assess(ctx: ContextDep, officer: OfficerDep, code: str, body: FeeInput) -> ChargeView:
    """Tính lệ phí theo biểu phí của thủ tục / assess the dossier's fee from the catalog."""
    charge = assess_fee(ctx, officer.actor, code, body)
    return ChargeView.of(charge)


@router.get("/api/v1/dossiers/{code}/fee")
def api_charge(ctx: ContextDep, officer: OfficerDep, code: str) -> ChargeView:
    charge, payments = get_charge(ctx, code)
    return ChargeView.of(charge, payments)


@router.post("/api/v1/dossiers/{code}/payments/cash", status_code=201)
def api_cash(ctx: ContextDep, officer: OfficerDep, code: str, body: CashIn) -> PaymentView:
    """Thu tiền mặt tại quầy, có số biên lai / cash at the counter with a receipt number."""
    return PaymentView.of(record_cash_payment(ctx, officer.actor, code, body.receipt_number))


_GATEWAY_PROBLEMS: dict[int | str, dict[str, Any]] = {
    409: {
        "model": Problem,
        "description": "payment_gateway_not_configured (or not allowed now) / "
        "chưa cấu hình cổng thanh toán",
    },
    502: {"model": Problem, "description": "gateway_unavailable / cổng thanh toán không phản hồi"},
}


@router.post(
    "/api/v1/dossiers/{code}/payments/online", status_code=201, responses=_GATEWAY_PROBLEMS
)
def api_online(
    ctx: ContextDep, officer: OfficerDep, settings: SettingsDep, code: str, request: Request
) -> PaymentView:
    """Gửi yêu cầu thanh toán cho người nộp / a payment request (redirect URL and QR payload)."""
    s = payment_settings(request)
    base = settings.public_base_url.rstrip("/")
    payment = request_online_payment(
        ctx,
        officer.actor,
        code,
        gateway_for(request),
        callback_url=f"{base}/api/v1/payments/callback/{s.gateway_name}",
        return_url=f"{base}/thanh-toan/ket-qua?code={code}",
    )
    return PaymentView.of(payment)


@router.post("/api/v1/dossiers/{code}/receive-when-paid")
def api_receive_when_paid(
    ctx: ContextDep, officer: OfficerDep, code: str, body: VersionIn
) -> dict[str, Any]:
    """Tiếp nhận hồ sơ chờ lệ phí / receive a dossier (409 while its fee is unpaid)."""
    dossier = receive_when_paid(ctx, officer.actor, code, body.expected_version)
    return {"code": dossier.code, "status": dossier.status, "version": dossier.version}


@router.post("/api/v1/dossiers/{code}/return-when-paid")
def api_return_when_paid(
    ctx: ContextDep, officer: OfficerDep, code: str, body: VersionIn
) -> dict[str, Any]:
    """Trả kết quả khi đã nộp lệ phí / return the result (409 while its fee is unpaid)."""
    dossier = return_when_paid(ctx, officer.actor, code, body.expected_version)
    return {"code": dossier.code, "status": dossier.status, "version": dossier.version}


@router.post("/api/v1/payments/callback/{gateway}")
async def api_callback(ctx: ContextDep, gateway: str, request: Request) -> dict[str, Any]:
    """Thông báo của cổng thanh toán (ký HMAC) / the gateway's signed callback.

    401 for a bad signature; a replay answers ``duplicate`` and changes nothing."""
    s = payment_settings(request)
    body = await request.body()
    if gateway != s.gateway_name:
        from api.errors import ResourceNotFound

        raise ResourceNotFound("Không có cổng thanh toán này", "No such payment gateway")
    result = handle_callback(ctx, gateway, s.secret, body, request.headers.get(SIGNATURE_HEADER))
    return {"outcome": result.outcome, "order_ref": result.order_ref}


@router.get("/api/v1/payments/reconciliation", responses=_GATEWAY_PROBLEMS)
def api_reconciliation(
    ctx: ContextDep,
    officer: Annotated[Officer, Depends(require_roles("supervisor", "counter", "leader"))],
    request: Request,
    start: Annotated[date, Query(alias="from")],
    end: Annotated[date, Query(alias="to")],
) -> list[dict[str, Any]]:
    """Đối soát với cổng thanh toán / reconciliation with the gateway's transactions."""
    return [row.__dict__ for row in reconcile(ctx, gateway_for(request), start, end)]


@router.get("/thanh-toan/ket-qua", response_class=HTMLResponse, include_in_schema=False)
def payer_return(ctx: ContextDep, code: Annotated[str, Query(max_length=64)] = "") -> HTMLResponse:
    """Where the gateway sends the payer back: the dossier's payment status, nothing personal."""
    try:
        charge, _ = get_charge(ctx, code)
        text = {
            "paid": "Đã nộp lệ phí. Cảm ơn bạn.",
            "unpaid": "Chưa ghi nhận thanh toán; nếu bạn vừa thanh toán, hãy tải lại sau ít phút.",
            "exempt": "Hồ sơ được miễn lệ phí.",
        }.get(charge.status, charge.status)
    except DomainError:
        text = "Không tìm thấy hồ sơ."
    return HTMLResponse(
        f'<!doctype html><html lang="vi"><head><meta charset="utf-8"><title>Thanh toán</title>'
        f'</head><body><h1>Hồ sơ {html.escape(code)}</h1><p id="status">{html.escape(text)}</p>'
        f"</body></html>"
    )


def payment_view(ctx: Any, order_ref: str) -> PaymentView | None:
    found = payment_of(ctx, order_ref)
    return PaymentView.of(found) if found else None
