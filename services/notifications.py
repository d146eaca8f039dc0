"""Notifications: to the citizen (receipt, supplementation request, result ready, apology slip),
to the receiving unit on every handoff, and to officers (deadline notices, dead-letter alerts).

Channels: e-mail over SMTP (``smtplib``) and an SMS/Zalo gateway, which is an HTTP endpoint
taking ``POST {"to", "text", "key"}`` with the ``Idempotency-Key`` header. Every message sent is
written to the notification log, keyed by (outbox id, channel, recipient): a re-delivery of the
same outbox row skips what was already sent. Mailboxes of units and officers are
``<unit code>@<mail domain>`` and ``<username>@<mail domain>`` (settings ``MOTCUA_MAIL_DOMAIN``).
"""

from __future__ import annotations

import contextlib
import email.policy
import smtplib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

import httpx
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from services.context import Context
from services.outbox import Claimed, DeliveryError, PermanentDeliveryError
from services.slip import vietnamese_instant
from storage.models import Dossier, Unit
from storage.models_workflows import NotificationLog

# (subject, body) in Vietnamese; fields from ``_fields`` and the outbox payload
TEMPLATES: dict[str, tuple[str, str]] = {
    "received": (
        "Hồ sơ {code} đã được tiếp nhận",
        "Kính gửi Ông/Bà {applicant},\n\n"
        "Hồ sơ {code} (thủ tục {procedure}) đã được tiếp nhận lúc {received_at}.\n"
        "Ngày hẹn trả kết quả: {appointment_at}.\n"
        "Tra cứu tình trạng hồ sơ bằng mã {code}.\n\n"
        "Bộ phận Một cửa — {receiving_unit_name}",
    ),
    "supplement_requested": (
        "Yêu cầu bổ sung, hoàn thiện hồ sơ {code}",
        "Kính gửi Ông/Bà {applicant},\n\n"
        "Hồ sơ {code} (thủ tục {procedure}) cần được bổ sung, hoàn thiện.\n"
        "Nội dung: {reason}\n"
        "Việc hướng dẫn bổ sung chỉ thực hiện một lần (Phiếu yêu cầu bổ sung, hoàn thiện hồ sơ).\n"
        "Thời gian chờ bổ sung không tính vào thời hạn giải quyết.\n\n"
        "Bộ phận Một cửa — {receiving_unit_name}",
    ),
    "result_ready": (
        "Kết quả giải quyết hồ sơ {code} đã sẵn sàng",
        "Kính gửi Ông/Bà {applicant},\n\n"
        "Hồ sơ {code} (thủ tục {procedure}) đã có kết quả. Mời Ông/Bà đến nhận kết quả tại "
        "Bộ phận Một cửa {receiving_unit_name} (hoặc theo hình thức đã đăng ký).\n\n"
        "Bộ phận Một cửa — {receiving_unit_name}",
    ),
    "apology": (
        "Thư xin lỗi và hẹn lại ngày trả kết quả hồ sơ {code}",
        "Kính gửi Ông/Bà {applicant},\n\n"
        "Hồ sơ {code} (thủ tục {procedure}) hẹn trả ngày {original_appointment} chưa giải quyết "
        "kịp.\nLý do: {reason}\n"
        "Cơ quan giải quyết thành thật xin lỗi Ông/Bà và hẹn lại ngày trả kết quả: "
        "{appointment_at}.\n\n"
        "{competent_agency_name}",
    ),
    "postal_handoff": (
        "Chuyển trả kết quả qua dịch vụ bưu chính công ích: hồ sơ {code}",
        "Kính gửi Bưu điện,\n\n"
        "Đề nghị nhận kết quả giải quyết hồ sơ {code} (thủ tục {procedure}) tại Bộ phận Một cửa "
        "{receiving_unit_name} và chuyển phát đến:\n{applicant} — {applicant_address}\n"
        "Điện thoại: {applicant_phone}\n\nBộ phận Một cửa — {receiving_unit_name}",
    ),
    "handoff": (
        "Hồ sơ {code} được chuyển đến đơn vị",
        "Kính gửi {target_name},\n\n"
        "Hồ sơ {code} (thủ tục {procedure}) được chuyển đến đơn vị để thực hiện bước "
        "«{step}».\nHạn của bước: {step_due_at}. Hạn trả kết quả: {due_at}.\n\nmotcua",
    ),
    "step_due_soon": (
        "Sắp đến hạn: hồ sơ {code}, bước «{step}»",
        "Hồ sơ {code} (thủ tục {procedure}) tại {unit_name}: bước «{step}» đến hạn lúc "
        "{step_due_at} (còn {left}).\nĐề nghị khẩn trương xử lý.\n\nmotcua",
    ),
    "step_overdue": (
        "Quá hạn: hồ sơ {code}, bước «{step}» tại {unit_name}",
        "Hồ sơ {code} (thủ tục {procedure}): bước «{step}» tại {unit_name} đã quá hạn từ "
        "{step_due_at}. Đơn vị làm chậm: {unit_name}.\n\nmotcua",
    ),
    "apology_due": (
        "Cần lập Phiếu xin lỗi và hẹn lại ngày trả kết quả: hồ sơ {code}",
        "Hồ sơ {code} (thủ tục {procedure}) đến hạn trả kết quả lúc {due_at} và chưa ở bước "
        "cuối. Theo quy định, chậm nhất 01 ngày làm việc trước hạn, cơ quan giải quyết phải gửi "
        "Phiếu xin lỗi và hẹn lại ngày trả kết quả (Mẫu 04) cho người nộp.\n\nmotcua",
    ),
    "dossier_overdue": (
        "Hồ sơ quá hạn: {code}",
        "Hồ sơ {code} (thủ tục {procedure}) đã quá hạn trả kết quả từ {due_at}; đang ở "
        "{unit_name}.\n{apology_note}\n\nmotcua",
    ),
    "dead_letter": (
        "Cảnh báo: không gửi được {outbox_kind} của hồ sơ {code}",
        "Bản tin #{outbox_id} ({outbox_kind} → {outbox_target}) của hồ sơ {code} không gửi được "
        "sau {attempts} lần thử và đã chuyển vào danh sách lỗi (dead letters).\n"
        "Lỗi cuối: {error}\nXem: motcua outbox dead-letters\n\nmotcua",
    ),
}


_OWN_FIELDS = {"step", "unit", "to", "step_due_at", "due_at"}  # computed, not copied


class _Fields(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "—"


def render(template: str, fields: dict[str, Any]) -> tuple[str, str]:
    subject, body = TEMPLATES[template]
    values = _Fields(fields)
    return subject.format_map(values), body.format_map(values)


def _instant(value: datetime | None) -> str:
    return vietnamese_instant(value) if value else "—"


@dataclass(frozen=True)
class NotifierConfig:
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    mail_from: str = "motcua@langson.gov.vn"
    mail_domain: str = "motcua.langson.gov.vn"
    sms_gateway_url: str | None = None
    postal_email: str = "buudien@motcua.langson.gov.vn"
    timeout_s: float = 10.0

    @classmethod
    def from_settings(cls, settings: Any) -> NotifierConfig:
        return cls(
            smtp_host=settings.smtp_host,
            smtp_port=settings.smtp_port,
            smtp_user=settings.smtp_user,
            smtp_password=settings.smtp_password,
            smtp_starttls=settings.smtp_starttls,
            mail_from=settings.mail_from,
            mail_domain=settings.mail_domain,
            sms_gateway_url=settings.sms_gateway_url,
            postal_email=settings.postal_email,
            timeout_s=settings.outbox_http_timeout_s,
        )

    def unit_mailbox(self, unit_code: str) -> str:
        return f"{unit_code}@{self.mail_domain}"

    def officer_mailbox(self, username: str) -> str:
        return f"{username}@{self.mail_domain}"


class Notifier:
    """Delivers the notification kinds of the outbox."""

    def __init__(self, ctx: Context, config: NotifierConfig) -> None:
        self.ctx = ctx
        self.config = config
        self.http = httpx.Client(timeout=config.timeout_s)

    # --- what the outbox calls -------------------------------------------------------------
    def deliver_citizen(self, item: Claimed) -> None:
        template = item.target or ""
        if template not in TEMPLATES:
            raise PermanentDeliveryError(f"no template {template!r}")
        fields, dossier = self._fields(item)
        subject, body = render(template, fields)
        if dossier.applicant_email:
            self._email(item, [dossier.applicant_email], template, subject, body)
        if dossier.applicant_phone and self.config.sms_gateway_url:
            self._sms(item, dossier.applicant_phone, template, subject)
        self._inbox(item, f"citizen:{dossier.code}", template, subject)
        if template == "result_ready" and dossier.channel == "post":
            # return by public postal service: a handoff to the post office
            subject, body = render("postal_handoff", fields)
            self._email(item, [self.config.postal_email], "postal_handoff", subject, body)
            self._inbox(item, f"postal:{self.config.postal_email}", "postal_handoff", subject)

    def deliver_handoff(self, item: Claimed) -> None:
        """Internal notice to the receiving unit (also the return by post's handoff)."""
        fields, _ = self._fields(item)
        subject, body = render("handoff", fields)
        unit = item.target or ""
        self._email(item, [self.config.unit_mailbox(unit)], "handoff", subject, body)
        self._inbox(item, f"unit:{unit}", "handoff", subject)

    def deliver_internal(self, item: Claimed) -> None:
        """Deadline notices and alerts: payload ``template`` and ``to`` (mailboxes)."""
        template = str(item.payload.get("template", ""))
        if template not in TEMPLATES:
            raise PermanentDeliveryError(f"no template {template!r}")
        fields: dict[str, Any] = {}
        if item.dossier_id is not None:
            fields, _ = self._fields(item)
        fields.update(
            {k: v for k, v in item.payload.items() if v is not None and k not in _OWN_FIELDS}
        )
        subject, body = render(template, fields)
        recipients = [str(r) for r in item.payload.get("to", [])]
        self._email(item, recipients, template, subject, body)
        for recipient in recipients:
            self._inbox(item, recipient, template, subject)

    # --- helpers ---------------------------------------------------------------------------
    def _fields(self, item: Claimed) -> tuple[dict[str, Any], Dossier]:
        with self.ctx.uow() as uow:
            dossier = uow.session.get(Dossier, item.dossier_id) if item.dossier_id else None
            if dossier is None:
                raise PermanentDeliveryError(f"dossier {item.dossier_id} not found")
            names = {u.code: u.name for u in uow.session.exec(select(Unit)).all()}
        procedure = self.ctx.catalog.procedure(dossier.procedure_code)
        steps = {s.id: s.name for s in procedure.version(dossier.procedure_version).process}
        step_id = str(item.payload.get("step") or dossier.current_step or "")
        unit = str(item.payload.get("unit") or dossier.current_unit or "")
        fields = {
            "code": dossier.code,
            "applicant": dossier.applicant_name,
            "procedure": f"{procedure.code} — {procedure.name}",
            "received_at": _instant(dossier.received_at),
            "appointment_at": _instant(dossier.appointment_at),
            "original_appointment": _instant(dossier.due_at),
            "due_at": _instant(dossier.due_at),
            "step_due_at": _instant(dossier.step_due_at),
            "reason": dossier.apology_reason or item.payload.get("reason") or "—",
            "receiving_unit_name": names.get(dossier.receiving_unit, dossier.receiving_unit),
            "competent_agency_name": names.get(dossier.competent_agency, dossier.competent_agency),
            "target_name": names.get(item.target or "", item.target or ""),
            "step": steps.get(step_id, step_id),
            "unit_name": names.get(unit, unit),
            "applicant_address": dossier.applicant_address or "—",
            "applicant_phone": dossier.applicant_phone or "—",
        }
        if item.kind == "notify_citizen" and item.target == "supplement_requested":
            fields["reason"] = item.payload.get("reason") or self._last_reason(dossier)
        for key in ("step_due_at", "due_at"):
            raw = item.payload.get(key)
            if isinstance(raw, str):
                fields[key] = _instant(datetime.fromisoformat(raw))
        return fields, dossier

    def _last_reason(self, dossier: Dossier) -> str:
        from storage.models import DossierEvent

        with self.ctx.uow() as uow:
            event = uow.session.exec(
                select(DossierEvent)
                .where(
                    DossierEvent.dossier_id == dossier.id,
                    DossierEvent.event == "request_supplement",
                )
                .order_by(DossierEvent.seq.desc())  # type: ignore[attr-defined]
            ).first()
        return (event.reason if event else None) or "—"

    def _already_sent(self, item: Claimed, channel: str) -> set[str]:
        with self.ctx.uow() as uow:
            return set(
                uow.session.exec(
                    select(NotificationLog.recipient).where(
                        NotificationLog.outbox_id == item.id, NotificationLog.channel == channel
                    )
                ).all()
            )

    def _log(
        self, item: Claimed, channel: str, recipient: str, template: str, subject: str
    ) -> None:
        with self.ctx.uow() as uow:
            uow.session.add(
                NotificationLog(
                    outbox_id=item.id,
                    dossier_id=item.dossier_id,
                    channel=channel,
                    recipient=recipient[:200],
                    template=template,
                    subject=subject,
                    sent_at=self.ctx.clock.now(),
                )
            )
            with contextlib.suppress(IntegrityError):  # logged by a twin delivery
                uow.commit()

    def _inbox(self, item: Claimed, recipient: str, template: str, subject: str) -> None:
        if recipient not in self._already_sent(item, "inbox"):
            self._log(item, "inbox", recipient, template, subject)

    def _email(
        self, item: Claimed, recipients: Iterable[str], template: str, subject: str, body: str
    ) -> None:
        if not self.config.smtp_host:
            return  # e-mail off: the inbox entry is the notice
        sent = self._already_sent(item, "email")
        todo = [r for r in dict.fromkeys(recipients) if r and r not in sent]
        if not todo:
            return
        message = EmailMessage(policy=email.policy.SMTPUTF8)
        message["From"] = self.config.mail_from
        message["To"] = ", ".join(todo)
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=True)
        message["Message-ID"] = f"<{item.key}.{template}@{self.config.mail_domain}>"
        message["X-Motcua-Idempotency-Key"] = item.key
        message.set_content(body)
        try:
            with smtplib.SMTP(
                self.config.smtp_host, self.config.smtp_port, timeout=self.config.timeout_s
            ) as smtp:
                smtp.ehlo()
                if self.config.smtp_starttls:
                    smtp.starttls()
                    smtp.ehlo()
                if self.config.smtp_user:
                    smtp.login(self.config.smtp_user, self.config.smtp_password or "")
                if smtp.has_extn("smtputf8"):  # UTF-8 headers as they are
                    smtp.send_message(message, mail_options=["SMTPUTF8"])
                else:  # RFC 2047 encoded words
                    message.policy = email.policy.default
                    smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as error:
            raise DeliveryError(f"SMTP: {type(error).__name__}: {error}") from None
        for recipient in todo:
            self._log(item, "email", recipient, template, subject)

    def _sms(self, item: Claimed, phone: str, template: str, text: str) -> None:
        assert self.config.sms_gateway_url
        if phone in self._already_sent(item, "sms"):
            return
        try:
            response = self.http.post(
                self.config.sms_gateway_url,
                json={"to": phone, "text": text, "key": item.key},
                headers={"Idempotency-Key": item.key},
            )
        except httpx.HTTPError as error:
            raise DeliveryError(f"SMS gateway: {type(error).__name__}: {error}") from None
        if response.status_code >= 400:
            raise DeliveryError(f"SMS gateway: HTTP {response.status_code}")
        self._log(item, "sms", phone, template, text)

    def close(self) -> None:
        self.http.close()


__all__ = ["TEMPLATES", "Notifier", "NotifierConfig", "render"]
