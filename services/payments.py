"""Online payment through a payment gateway: request, redirect or QR, signed callback,
reconciliation (thanh toán trực tuyến).

The gateway is an outside system behind :class:`Gateway` (one HTTP implementation,
:class:`HttpGateway`; the stand-in server of ``motcua fake-gateway`` speaks the same protocol):

* ``POST {base}/orders`` (body signed) → ``{gateway_ref, payment_url, qr_payload}``;
* when the payer pays, the gateway POSTs a callback to our URL: a JSON body and the header
  ``X-Signature: <hex HMAC-SHA256 of the raw body with the shared secret>``;
* ``GET {base}/transactions?since=…&until=…`` lists its transactions (reconciliation).

Callbacks are verified (constant-time comparison; a forged signature is refused and changes
nothing), idempotent (each callback's ``event_id`` is stored once: a replay finds it and changes
nothing, even when two copies arrive at once) and replay-safe (a payment moves only from
``pending``; a paid payment never changes again; the amount must match).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import httpx
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from services.errors import DomainError, InvalidInput
from services.fees import (
    ChargeNotFound,
    _after_payment,
    _counter_of,
    _dossier,
    charge_of,
    mark_paid,
)
from states.lifecycle import Actor
from storage.models_feedback import DossierCharge, Payment, PaymentCallback

if TYPE_CHECKING:
    from services.context import Context

SIGNATURE_HEADER = "X-Signature"


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str | None) -> bool:
    return bool(signature) and hmac.compare_digest(sign(secret, body), signature or "")


def canonical(data: dict[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class GatewayOrder:
    gateway_ref: str
    payment_url: str
    qr_payload: str


@dataclass(frozen=True)
class GatewayTransaction:
    order_ref: str
    gateway_ref: str
    amount: int
    status: str  # pending / paid / cancelled
    paid_at: str | None = None


class Gateway(Protocol):
    name: str
    secret: str

    def create_order(
        self, order_ref: str, amount: int, description: str, callback_url: str, return_url: str
    ) -> GatewayOrder: ...

    def transactions(self, since: date, until: date) -> list[GatewayTransaction]: ...


class GatewayUnavailable(DomainError):
    """The configured gateway did not answer (a fault upstream of us: 502)."""

    code = "gateway_unavailable"
    http_status: ClassVar[int] = 502


class GatewayNotConfigured(DomainError):
    """No payment gateway is configured: online payment and reconciliation are off (409), a
    state of this installation rather than a server fault."""

    code = "payment_gateway_not_configured"
    http_status: ClassVar[int] = 409

    def __init__(self) -> None:
        super().__init__(
            "Chưa cấu hình cổng thanh toán trực tuyến (MOTCUA_PAYMENT_GATEWAY_URL): "
            "chưa thể thanh toán trực tuyến hay đối soát",
            "No online payment gateway is configured (MOTCUA_PAYMENT_GATEWAY_URL): "
            "online payment and reconciliation are unavailable",
        )


class ForgedCallback(DomainError):
    code = "callback_signature_invalid"
    http_status: ClassVar[int] = 401

    def __init__(self) -> None:
        super().__init__(
            "Chữ ký của thông báo thanh toán không hợp lệ: từ chối",
            "The payment callback's signature is invalid: refused",
        )


class HttpGateway:
    """A gateway spoken to over HTTP (the stand-in gateway, or a real one with an adapter)."""

    def __init__(self, base_url: str, secret: str, name: str = "fakepay", timeout: float = 10):
        self.base_url = base_url.rstrip("/")
        self.secret = secret
        self.name = name
        self.timeout = timeout

    def _post(self, path: str, data: dict[str, Any]) -> dict[str, Any]:
        body = canonical(data)
        try:
            response = httpx.post(
                self.base_url + path,
                content=body,
                headers={
                    "Content-Type": "application/json",
                    SIGNATURE_HEADER: sign(self.secret, body),
                },
                timeout=self.timeout,
            )
            response.raise_for_status()
            return dict(response.json())
        except (httpx.HTTPError, ValueError) as exc:
            raise GatewayUnavailable(
                f"Cổng thanh toán không phản hồi: {exc}", f"The payment gateway failed: {exc}"
            ) from None

    def create_order(
        self, order_ref: str, amount: int, description: str, callback_url: str, return_url: str
    ) -> GatewayOrder:
        answer = self._post(
            "/orders",
            {
                "order_ref": order_ref,
                "amount": amount,
                "description": description,
                "callback_url": callback_url,
                "return_url": return_url,
            },
        )
        return GatewayOrder(answer["gateway_ref"], answer["payment_url"], answer["qr_payload"])

    def transactions(self, since: date, until: date) -> list[GatewayTransaction]:
        try:
            response = httpx.get(
                self.base_url + "/transactions",
                params={"since": since.isoformat(), "until": until.isoformat()},
                timeout=self.timeout,
            )
            response.raise_for_status()
            rows = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise GatewayUnavailable(
                f"Cổng thanh toán không phản hồi: {exc}", f"The payment gateway failed: {exc}"
            ) from None
        return [
            GatewayTransaction(
                r["order_ref"], r["gateway_ref"], int(r["amount"]), r["status"], r.get("paid_at")
            )
            for r in rows
        ]


def request_online_payment(
    ctx: Context,
    actor: Actor,
    code: str,
    gateway: Gateway,
    *,
    callback_url: str,
    return_url: str,
) -> Payment:
    """Ask the gateway for a payment of the dossier's unpaid charge: the applicant gets the
    redirect URL or the QR payload. A pending request is reused, not duplicated."""
    now = ctx.clock.now()
    with ctx.uow() as uow:
        dossier = _dossier(uow.session, code)
        _counter_of(actor, dossier)
        charge = charge_of(uow.session, dossier.id)  # type: ignore[arg-type]
        if charge is None:
            raise ChargeNotFound(code)
        if charge.status != "unpaid":
            raise InvalidInput(
                f"Hồ sơ {code} không còn lệ phí phải nộp ({charge.status})",
                f"Dossier {code} has nothing left to pay ({charge.status})",
            )
        pending = uow.session.exec(
            select(Payment).where(
                Payment.charge_id == charge.id,
                Payment.method == "online",
                Payment.status == "pending",
                Payment.amount == charge.amount,
            )
        ).first()
        if pending is not None:
            return pending
        amount, charge_id = charge.amount, charge.id
        description = f"Le phi ho so {dossier.code} ({dossier.procedure_code})"
    order_ref = f"MC{now:%y%m%d}{secrets.token_hex(6).upper()}"
    order = gateway.create_order(order_ref, amount, description, callback_url, return_url)
    with ctx.uow() as uow:
        payment = Payment(
            order_ref=order_ref,
            charge_id=charge_id,  # type: ignore[arg-type]
            dossier_code=code,
            amount=amount,
            method="online",
            status="pending",
            gateway_ref=order.gateway_ref,
            payment_url=order.payment_url,
            qr_payload=order.qr_payload,
            created_at=now,
            created_by=actor.username,
        )
        uow.session.add(payment)
        uow.commit()
    return payment


@dataclass(frozen=True)
class CallbackResult:
    outcome: str  # applied / duplicate / ignored / mismatch / unknown_order
    order_ref: str | None
    dossier_code: str | None = None


def handle_callback(
    ctx: Context, gateway_name: str, secret: str, body: bytes, signature: str | None
) -> CallbackResult:
    """Verify and apply one gateway callback (see the module docstring)."""
    if not verify(secret, body, signature):
        raise ForgedCallback()
    try:
        data = json.loads(body)
        event_id = str(data["event_id"])
        order_ref = str(data["order_ref"])
        status = str(data["status"])
        amount = int(data["amount"])
    except (ValueError, KeyError, TypeError):
        raise InvalidInput(
            "Thông báo thanh toán sai định dạng", "The payment callback is malformed"
        ) from None
    now = ctx.clock.now()
    dossier_code: str | None = None
    with ctx.uow() as uow:
        session = uow.session
        seen = session.exec(
            select(PaymentCallback).where(
                PaymentCallback.gateway == gateway_name, PaymentCallback.event_id == event_id
            )
        ).first()
        if seen is not None:
            return CallbackResult("duplicate", order_ref, None)
        payment = session.exec(select(Payment).where(Payment.order_ref == order_ref)).first()
        if payment is None:
            outcome = "unknown_order"
        elif payment.status != "pending":
            outcome = "ignored"  # a paid (or failed) payment never changes again
        elif amount != payment.amount:
            outcome = "mismatch"
        elif status == "paid":
            outcome = "applied"
            payment.status = "paid"
            payment.paid_at = now
            payment.gateway_txn = str(data.get("txn_id") or "")[:64] or None
            charge = session.get(DossierCharge, payment.charge_id)
            assert charge is not None
            if charge.status == "unpaid" and charge.amount == payment.amount:
                mark_paid(charge, "online", now)
                session.add(charge)
            session.add(payment)
            dossier_code = payment.dossier_code
        elif status in ("cancelled", "failed"):
            outcome = "applied"
            payment.status = "failed"
            session.add(payment)
        else:
            outcome = "ignored"
        session.add(
            PaymentCallback(
                gateway=gateway_name,
                event_id=event_id[:128],
                order_ref=order_ref[:64],
                outcome=outcome,
                body=data,
                received_at=now,
            )
        )
        try:
            uow.commit()
        except IntegrityError:  # the same callback committed by a concurrent request
            return CallbackResult("duplicate", order_ref, None)
    if dossier_code is not None:
        _after_payment(ctx, dossier_code)
    return CallbackResult(outcome, order_ref, dossier_code)


@dataclass(frozen=True)
class ReconciliationRow:
    order_ref: str
    dossier_code: str | None
    amount_here: int | None
    amount_gateway: int | None
    status_here: str | None
    status_gateway: str | None
    verdict: str  # matched / missing_callback / paid_here_only / unknown_here / amount_mismatch


def reconcile(ctx: Context, gateway: Gateway, since: date, until: date) -> list[ReconciliationRow]:
    """Compare our online payments created in [since, until] with the gateway's transactions."""
    from services.metrics import period_bounds

    lo, hi = period_bounds(since, until)
    theirs = {t.order_ref: t for t in gateway.transactions(since, until)}
    with ctx.uow() as uow:
        ours = {
            p.order_ref: p
            for p in uow.session.exec(
                select(Payment).where(
                    Payment.method == "online",
                    col(Payment.created_at) >= lo,
                    col(Payment.created_at) < hi,
                )
            ).all()
        }
        # the gateway may list an order we created just outside the window
        missing = [ref for ref in theirs if ref not in ours]
        if missing:
            for p in uow.session.exec(
                select(Payment).where(col(Payment.order_ref).in_(missing))
            ).all():
                ours[p.order_ref] = p
    rows = []
    for ref in sorted(set(ours) | set(theirs)):
        mine, other = ours.get(ref), theirs.get(ref)
        if mine is None:
            verdict = "unknown_here"
        elif other is None:
            verdict = "paid_here_only" if mine.status == "paid" else "matched"
        elif other.amount != mine.amount:
            verdict = "amount_mismatch"
        elif other.status == "paid" and mine.status != "paid":
            verdict = "missing_callback"
        elif mine.status == "paid" and other.status != "paid":
            verdict = "paid_here_only"
        else:
            verdict = "matched"
        rows.append(
            ReconciliationRow(
                ref,
                mine.dossier_code if mine else None,
                mine.amount if mine else None,
                other.amount if other else None,
                mine.status if mine else None,
                other.status if other else None,
                verdict,
            )
        )
    return rows


def payment_of(ctx: Context, order_ref: str) -> Payment | None:
    with ctx.uow() as uow:
        return uow.session.exec(select(Payment).where(Payment.order_ref == order_ref)).first()


def callbacks_seen(ctx: Context, order_ref: str) -> list[PaymentCallback]:
    with ctx.uow() as uow:
        return list(
            uow.session.exec(
                select(PaymentCallback)
                .where(PaymentCallback.order_ref == order_ref)
                .order_by(col(PaymentCallback.id))
            ).all()
        )


def now_iso(at: datetime) -> str:
    return at.isoformat()


__all__ = [
    "SIGNATURE_HEADER",
    "CallbackResult",
    "ForgedCallback",
    "Gateway",
    "GatewayNotConfigured",
    "GatewayOrder",
    "GatewayTransaction",
    "GatewayUnavailable",
    "HttpGateway",
    "ReconciliationRow",
    "handle_callback",
    "reconcile",
    "request_online_payment",
    "sign",
    "verify",
]
