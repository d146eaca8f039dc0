"""Fees (lệ phí) of a procedure and the payment status of a dossier.

The schedule is data: an optional ``fees:`` block of a procedure version in ``catalog/procedures``
(:class:`FeeSchedule`). :func:`quote` computes the amount for one request (exemptions, reduced
rates, per-copy and per-page charges); :func:`assess_fee` writes it on the dossier as a
``dossier_charge`` row, whose ``status`` (unpaid / paid / exempt) is the dossier's payment
status. The counter records a cash payment with its receipt number (:func:`record_cash_payment`);
online payment goes through :mod:`services.payments`.

Waiting for payment ([motcua]; DOMAIN.md is silent on the clock):
    ``payment: before_receipt`` — the counter checks the dossier, assesses the fee and sends the
    payment request while the dossier is still ``submitted``: it is not received, so the legal
    clock has not started (no paused time to account for). On payment the dossier is received and
    its count starts at the payment instant (the 15:00 rule applies as for any receipt).
    ``payment: before_return`` — the result cannot be returned while unpaid; the clock is not
    touched: the dossier's timeliness was fixed when the result reached the counter.
    The lifecycle machines are unchanged: :func:`services.dossiers.act` refuses ``receive`` /
    ``return_result`` while :func:`unpaid_charge_blocking` finds the fee unpaid, whichever path
    sends the event (API, pages, payment callback); :func:`payment_blocks` tells callers ahead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import bindparam
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from services.errors import DomainError, InvalidInput
from states.lifecycle import ADMIN, Actor
from storage.models import Dossier
from storage.models_feedback import DossierCharge, Payment

if TYPE_CHECKING:
    from services.context import Context

PaymentWait = Literal["none", "before_receipt", "before_return"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PerUnit(_Strict):
    """A price per copy or per page, from the ``from_unit``-th one (1-based) on."""

    amount: int = Field(ge=0)
    from_unit: int = Field(default=1, ge=1)


class ExemptGroup(_Strict):
    name: str
    basis: str = ""


class FeeSchedule(_Strict):
    """Biểu phí, lệ phí of a procedure version (đồng)."""

    base: int = Field(default=0, ge=0)  # per case (lần/trường hợp)
    reduced: dict[str, int] = Field(default_factory=dict)  # group → base for that group
    exempt_groups: dict[str, ExemptGroup] = Field(default_factory=dict)  # pay nothing
    # free when requested within N days of the event (e.g. birth registration on time)
    free_within_days: int | None = Field(default=None, ge=0)
    free_within_basis: str = ""
    extra_copy: PerUnit | None = None  # each copy from ``from_unit`` on costs ``amount`` more
    per_page: list[PerUnit] = Field(default_factory=list)  # tiers, price per page of a copy
    cap_per_copy: int | None = Field(default=None, ge=0)
    payment: PaymentWait = "none"
    basis: str = ""

    @model_validator(mode="after")
    def _check(self) -> FeeSchedule:
        froms = [tier.from_unit for tier in self.per_page]
        if froms and (froms[0] != 1 or froms != sorted(set(froms))):
            raise ValueError("per_page: tiers start at page 1 and increase")
        both = set(self.reduced) & set(self.exempt_groups)
        if both:
            raise ValueError(f"groups both reduced and exempt: {sorted(both)}")
        return self

    @property
    def charges_something(self) -> bool:
        return self.base > 0 or bool(self.per_page) or self.extra_copy is not None


class FeeInput(BaseModel):
    """What the counter tells about one request."""

    group: str | None = None  # an exempt or reduced-rate group, if the applicant belongs to one
    copies: int = Field(default=1, ge=1, le=1000)
    pages: int = Field(default=0, ge=0, le=100_000)  # pages of each copy
    event_date: date | None = None  # e.g. the date of birth, for "free when on time"


@dataclass(frozen=True)
class QuoteLine:
    label_vi: str
    label_en: str
    amount: int


@dataclass(frozen=True)
class Quote:
    amount: int
    lines: tuple[QuoteLine, ...]
    exemption: str | None = None


def quote(schedule: FeeSchedule, data: FeeInput, requested_on: date) -> Quote:
    """The amount for one request made on ``requested_on``."""
    if data.group is not None and data.group in schedule.exempt_groups:
        group = schedule.exempt_groups[data.group]
        return Quote(0, (), f"Miễn lệ phí: {group.name} ({group.basis})".strip())
    if schedule.free_within_days is not None:
        if data.event_date is None:
            raise InvalidInput(
                "Cần ngày phát sinh sự kiện (ví dụ ngày sinh) để tính lệ phí",
                "The date of the event (e.g. the date of birth) is needed to compute the fee",
            )
        if data.event_date > requested_on:
            raise InvalidInput(
                "Ngày phát sinh sự kiện sau ngày yêu cầu", "The event date is after the request"
            )
        elapsed = (requested_on - data.event_date).days
        if elapsed <= schedule.free_within_days:
            return Quote(
                0,
                (),
                f"Miễn lệ phí: đăng ký đúng hạn ({elapsed} ngày ≤ {schedule.free_within_days}; "
                f"{schedule.free_within_basis})",
            )
    if data.group is not None and data.group not in schedule.reduced:
        raise InvalidInput(
            f"Nhóm đối tượng {data.group} không có trong biểu phí của thủ tục",
            f"Group {data.group} is not in the procedure's fee schedule",
        )
    lines: list[QuoteLine] = []
    base = schedule.reduced.get(data.group, schedule.base) if data.group else schedule.base
    if base:
        lines.append(QuoteLine("Lệ phí", "Fee", base))
    if schedule.extra_copy is not None and data.copies >= schedule.extra_copy.from_unit:
        extra = data.copies - schedule.extra_copy.from_unit + 1
        lines.append(
            QuoteLine(
                f"Thêm {extra} bản từ bản thứ {schedule.extra_copy.from_unit}",
                f"{extra} extra copies from copy {schedule.extra_copy.from_unit}",
                extra * schedule.extra_copy.amount,
            )
        )
    if schedule.per_page:
        if data.pages < 1:
            raise InvalidInput("Cần số trang", "The number of pages is needed")
        per_copy = 0
        for page in range(1, data.pages + 1):
            tier = [t for t in schedule.per_page if t.from_unit <= page][-1]
            per_copy += tier.amount
        if schedule.cap_per_copy is not None:
            per_copy = min(per_copy, schedule.cap_per_copy)
        lines.append(
            QuoteLine(
                f"{data.pages} trang × {data.copies} bản",
                f"{data.pages} pages × {data.copies} copies",
                per_copy * data.copies,
            )
        )
    return Quote(sum(line.amount for line in lines), tuple(lines))


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


class PaymentRequired(DomainError):
    code = "payment_required"
    http_status: ClassVar[int] = 409


class NoFeeSchedule(DomainError):
    code = "no_fee_schedule"
    http_status: ClassVar[int] = 422


class ChargeNotFound(DomainError):
    code = "charge_not_found"
    http_status: ClassVar[int] = 404

    def __init__(self, code: str) -> None:
        super().__init__(
            f"Hồ sơ {code} chưa được tính lệ phí", f"No fee has been assessed on dossier {code}"
        )


# ---------------------------------------------------------------------------------------------
# Use cases
# ---------------------------------------------------------------------------------------------


def schedule_of(ctx: Context, dossier: Dossier) -> FeeSchedule:
    version = ctx.catalog.procedure(dossier.procedure_code).version(dossier.procedure_version)
    if version.fees is None:
        raise NoFeeSchedule(
            f"Thủ tục {dossier.procedure_code} chưa có biểu phí trong danh mục",
            f"Procedure {dossier.procedure_code} has no fee schedule in the catalog",
        )
    return version.fees


def _dossier(session: Session, code: str) -> Dossier:
    from services.errors import DossierNotFound

    dossier = session.exec(select(Dossier).where(Dossier.code == code)).first()
    if dossier is None:
        raise DossierNotFound(code)
    return dossier


def _counter_of(actor: Actor, dossier: Dossier) -> None:
    if actor.role == ADMIN:
        return
    if actor.role != "counter" or actor.unit_code != dossier.receiving_unit:
        raise InvalidInput(
            f"Chỉ cán bộ Một cửa của {dossier.receiving_unit} thu lệ phí hồ sơ này",
            f"Only a counter officer of {dossier.receiving_unit} collects this dossier's fee",
        )


def charge_of(session: Session, dossier_id: int) -> DossierCharge | None:
    return session.exec(_CHARGE_OF, params={"dossier": dossier_id}).first()


# built once: it runs before every receipt and return (``unpaid_charge_blocking``)
_CHARGE_OF = select(DossierCharge).where(DossierCharge.dossier_id == bindparam("dossier"))


def assess_fee(ctx: Context, actor: Actor, code: str, data: FeeInput) -> DossierCharge:
    """Compute the dossier's fee from the catalog and record it (again, while unpaid)."""
    now = ctx.clock.now()
    with ctx.uow() as uow:
        session = uow.session
        dossier = _dossier(session, code)
        _counter_of(actor, dossier)
        schedule = schedule_of(ctx, dossier)
        requested_on = (dossier.received_at or dossier.submitted_at).date()
        result = quote(schedule, data, requested_on)
        charge = charge_of(session, dossier.id)  # type: ignore[arg-type]
        if charge is not None and charge.status == "paid":
            raise InvalidInput(
                f"Hồ sơ {code} đã nộp lệ phí", f"The fee of dossier {code} is already paid"
            )
        if charge is None:
            charge = DossierCharge(
                dossier_id=dossier.id,  # type: ignore[arg-type]
                dossier_code=dossier.code,
                procedure_code=dossier.procedure_code,
                agency_code=dossier.competent_agency,
                amount=0,
                assessed_at=now,
                assessed_by=actor.username,
            )
        charge.amount = result.amount
        charge.lines = [
            {"label": line.label_vi, "label_en": line.label_en, "amount": line.amount}
            for line in result.lines
        ]
        charge.exemption = result.exemption
        charge.wait = schedule.payment if result.amount > 0 else "none"
        charge.status = "unpaid" if result.amount > 0 else "exempt"
        charge.assessed_at = now
        charge.assessed_by = actor.username
        charge.lines.append({"input": data.model_dump(mode="json")})
        session.add(charge)
        uow.commit()
    return charge


def get_charge(ctx: Context, code: str) -> tuple[DossierCharge, list[Payment]]:
    with ctx.uow() as uow:
        dossier = _dossier(uow.session, code)
        charge = charge_of(uow.session, dossier.id)  # type: ignore[arg-type]
        if charge is None:
            raise ChargeNotFound(code)
        payments = uow.session.exec(
            select(Payment).where(Payment.charge_id == charge.id).order_by(col(Payment.id))
        ).all()
        return charge, list(payments)


def record_cash_payment(ctx: Context, actor: Actor, code: str, receipt_number: str) -> Payment:
    """The counter takes the fee in cash and gives a receipt (biên lai) with its number."""
    receipt_number = receipt_number.strip()
    if not receipt_number:
        raise InvalidInput("Cần số biên lai", "A receipt number is required")
    now = ctx.clock.now()
    with ctx.uow() as uow:
        session = uow.session
        dossier = _dossier(session, code)
        _counter_of(actor, dossier)
        charge = charge_of(session, dossier.id)  # type: ignore[arg-type]
        if charge is None:
            raise ChargeNotFound(code)
        if charge.status != "unpaid":
            raise InvalidInput(
                f"Hồ sơ {code} không còn lệ phí phải nộp ({charge.status})",
                f"Dossier {code} has nothing left to pay ({charge.status})",
            )
        payment = Payment(
            order_ref=f"CASH-{receipt_number}"[:64],
            charge_id=charge.id,  # type: ignore[arg-type]
            dossier_code=dossier.code,
            amount=charge.amount,
            method="cash",
            status="paid",
            receipt_number=receipt_number,
            created_at=now,
            created_by=actor.username,
            paid_at=now,
        )
        mark_paid(charge, "cash", now)
        session.add(payment)
        session.add(charge)
        try:
            uow.commit()
        except IntegrityError:
            raise InvalidInput(
                f"Số biên lai {receipt_number} đã được dùng",
                f"Receipt number {receipt_number} is already used",
            ) from None
    _after_payment(ctx, code)
    return payment


def mark_paid(charge: DossierCharge, method: str, at: object) -> None:
    charge.status = "paid"
    charge.method = method
    charge.paid_at = at  # type: ignore[assignment]


PAYMENT_ACTOR_NAME = "thanh-toan"  # the system acting when a payment releases a waiting dossier


def _after_payment(ctx: Context, code: str) -> None:
    """A dossier waiting for payment before receipt is received now ([motcua])."""
    from services.dossiers import act

    with ctx.uow() as uow:
        dossier = _dossier(uow.session, code)
        charge = charge_of(uow.session, dossier.id)  # type: ignore[arg-type]
    if charge is None or charge.wait != "before_receipt" or dossier.status != "submitted":
        return
    act(ctx, Actor(PAYMENT_ACTOR_NAME, ADMIN, dossier.receiving_unit), code, "receive", None)


def unpaid_charge_blocking(session: Session, dossier: Dossier, event: str) -> DossierCharge | None:
    """The unpaid charge that makes ``event`` wait (inside the caller's transaction), or None."""
    if event not in ("receive", "return_result") or dossier.id is None:
        return None
    charge = charge_of(session, dossier.id)
    if charge is None or charge.status != "unpaid":
        return None
    wait = "before_receipt" if event == "receive" else "before_return"
    return charge if charge.wait == wait else None


def payment_required(code: str, event: str, charge: DossierCharge) -> PaymentRequired:
    what_vi = "tiếp nhận" if event == "receive" else "trả kết quả"
    what_en = "received" if event == "receive" else "returned"
    return PaymentRequired(
        f"Hồ sơ {code} chờ nộp lệ phí {charge.amount:,} đồng trước khi {what_vi}".replace(",", "."),
        f"Dossier {code} waits for the fee of {charge.amount:,} VND before it can be {what_en}",
    )


def payment_blocks(ctx: Context, code: str, event: str) -> DossierCharge | None:
    """The unpaid charge that makes ``event`` wait, or None."""
    if event not in ("receive", "return_result"):
        return None
    with ctx.uow() as uow:
        return unpaid_charge_blocking(uow.session, _dossier(uow.session, code), event)


def receive_when_paid(
    ctx: Context, actor: Actor, code: str, expected_version: int | None
) -> Dossier:
    """Receive a submitted dossier, unless it waits for its fee."""
    from services.dossiers import act

    return act(ctx, actor, code, "receive", expected_version)


def return_when_paid(
    ctx: Context, actor: Actor, code: str, expected_version: int | None
) -> Dossier:
    """Return the result, unless the dossier waits for its fee (the guard at return)."""
    from services.dossiers import act

    return act(ctx, actor, code, "return_result", expected_version)


__all__ = [
    "ChargeNotFound",
    "FeeInput",
    "FeeSchedule",
    "NoFeeSchedule",
    "PaymentRequired",
    "Quote",
    "assess_fee",
    "get_charge",
    "payment_blocks",
    "payment_required",
    "quote",
    "receive_when_paid",
    "record_cash_payment",
    "return_when_paid",
    "unpaid_charge_blocking",
]
