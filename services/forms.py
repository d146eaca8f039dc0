"""Printable forms of the one-stop counter (Circular 01/2018 annex; renumbered by Circular
03/2025 — the number printed comes from the dossier's rule set).

One ``FormDocument`` per form feeds both renderings: HTML (a Jinja template in ``api``) and PDF
(reportlab, DejaVuSans for the Vietnamese diacritics, A5; the tracking book A4 landscape). Every
printed document carries a QR code top left with the lookup address of the dossier.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Literal
from urllib.parse import quote

import qrcode
from sqlmodel import col, select

from services.access import ensure_can_see
from services.context import Context
from services.errors import DomainError, InvalidInput
from services.slip import TIMELINESS_VI, control_slip, vietnamese_instant
from states.events import STATE_LABELS
from states.lifecycle import Actor
from storage.models import Dossier, DossierEvent

FormKind = Literal[
    "receipt", "supplement_request", "refusal", "apology", "control_slip", "tracking_book"
]
FORM_KINDS: tuple[FormKind, ...] = (
    "receipt", "supplement_request", "refusal", "apology", "control_slip",
)  # fmt: skip
FORM_TITLES: dict[str, str] = {
    "receipt": "GIẤY TIẾP NHẬN HỒ SƠ VÀ HẸN TRẢ KẾT QUẢ",
    "supplement_request": "PHIẾU YÊU CẦU BỔ SUNG, HOÀN THIỆN HỒ SƠ",
    "refusal": "PHIẾU TỪ CHỐI TIẾP NHẬN GIẢI QUYẾT HỒ SƠ",
    "apology": "PHIẾU XIN LỖI VÀ HẸN LẠI NGÀY TRẢ KẾT QUẢ",
    "control_slip": "PHIẾU KIỂM SOÁT QUÁ TRÌNH GIẢI QUYẾT HỒ SƠ",
    "tracking_book": "SỔ THEO DÕI HỒ SƠ",
}
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
NATIONAL = "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM"
MOTTO = "Độc lập - Tự do - Hạnh phúc"


class FormNotAvailable(DomainError):
    code = "form_not_available"
    http_status = 409


@dataclass
class FormDocument:
    kind: str
    number: str  # "01" … as the rule set numbers it
    title: str
    issuer: str
    code: str | None
    place_date: str
    paragraphs: list[tuple[str, str]] = field(default_factory=list)  # (label, value)
    table_head: list[str] = field(default_factory=list)
    table_rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    signatures: list[tuple[str, str]] = field(default_factory=list)  # (role, name)
    qr_url: str | None = None
    landscape: bool = False
    col_weights: list[float] = field(default_factory=list)


def lookup_url(base_url: str, code: str) -> str:
    return f"{base_url.rstrip('/')}/lookup?code={quote(code, safe='.-')}"


def _vn_date(day: date | datetime) -> str:
    return f"ngày {day:%d} tháng {day:%m} năm {day:%Y}"


def _hm(at: datetime | None) -> str:
    return vietnamese_instant(at) if at else "—"


def _events(ctx: Context, dossier: Dossier, event: str) -> list[DossierEvent]:
    with ctx.uow() as uow:
        return list(
            uow.session.exec(
                select(DossierEvent)
                .where(DossierEvent.dossier_id == dossier.id, DossierEvent.event == event)
                .order_by(col(DossierEvent.seq))
            ).all()
        )


def build_form(ctx: Context, actor: Actor, code: str, kind: str, base_url: str) -> FormDocument:
    """The form ``kind`` of dossier ``code`` as the officer may print it."""
    if kind not in FORM_KINDS:
        raise InvalidInput(f"Không có biểu mẫu {kind}", f"No form {kind}")
    slip = control_slip(ctx, code)
    dossier = slip.dossier
    ensure_can_see(ctx.catalog, actor, dossier)
    names = slip.unit_names
    version = ctx.catalog.procedure(dossier.procedure_code).version(dossier.procedure_version)
    procedure = ctx.catalog.procedure(dossier.procedure_code)
    rule_set = ctx.catalog.rule_set(dossier.rule_set)
    number = getattr(rule_set.forms, kind) or ""
    receiving = names.get(dossier.receiving_unit, dossier.receiving_unit)
    today = ctx.clock.now()
    doc = FormDocument(
        kind=kind,
        number=number,
        title=FORM_TITLES[kind],
        issuer=receiving,
        code=dossier.code,
        place_date=f"Lạng Sơn, {_vn_date(today)}",
        qr_url=lookup_url(base_url, dossier.code),
    )
    applicant = [
        ("Tên tổ chức, cá nhân", dossier.applicant_name),
        ("Địa chỉ", dossier.applicant_address or "—"),
        ("Số điện thoại", dossier.applicant_phone or "—"),
        ("Email", dossier.applicant_email or "—"),
    ]
    by_id = {c.id: c for c in version.components}
    if kind == "receipt":
        receive = _events(ctx, dossier, "receive")
        if not receive:
            raise FormNotAvailable("Hồ sơ chưa được tiếp nhận", "The dossier has not been received")
        officer = receive[0].actor_username
        sequence = dossier.code.rsplit("-", 1)[-1]
        doc.paragraphs = [
            ("Mã hồ sơ", dossier.code),
            (
                f"{receiving} tiếp nhận hồ sơ của",
                dossier.applicant_name,
            ),
            *applicant[1:],
            ("Nội dung yêu cầu giải quyết", dossier.request_summary or procedure.name),
            ("Thủ tục", f"{procedure.code} — {procedure.name}"),
        ]
        doc.table_head = ["STT", "Tên giấy tờ", "Bản chính", "Bản sao"]
        for i, item in enumerate(dossier.components, 1):
            comp = by_id.get(str(item.get("id")))
            doc.table_rows.append(
                [str(i), comp.name if comp else str(item.get("id")),
                 str(comp.originals if comp else ""), str(comp.copies if comp else "")]
            )  # fmt: skip
        doc.notes = [
            f"Số lượng hồ sơ: 01 (bộ). Thời gian giải quyết hồ sơ theo quy định: "
            f"{version.time_limit} ngày làm việc.",
            f"Thời gian nhận hồ sơ: {_hm(dossier.received_at)}.",
            f"Thời gian trả kết quả giải quyết hồ sơ: {_hm(dossier.due_at)}.",
            "Đăng ký nhận kết quả tại: "
            + ("Bộ phận Một cửa" if dossier.channel != "post" else "dịch vụ bưu chính công ích")
            + f" — {receiving}.",
            f"Vào Sổ theo dõi hồ sơ: quyển số {dossier.received_at or today:%Y}, "
            f"số thứ tự {int(sequence)}.",
            "Tra cứu tình trạng hồ sơ bằng mã QR hoặc tại trang tra cứu với mã hồ sơ và 4 số "
            "cuối CCCD / số điện thoại.",
        ]
        doc.signatures = [("NGƯỜI NỘP HỒ SƠ", dossier.applicant_name), ("NGƯỜI TIẾP NHẬN", officer)]
    elif kind == "supplement_request":
        asked = _events(ctx, dossier, "request_supplement")
        if not asked:
            raise FormNotAvailable(
                "Hồ sơ chưa có yêu cầu bổ sung", "No supplementation was requested"
            )
        last = asked[-1]
        doc.paragraphs = [
            ("Mã hồ sơ", dossier.code),
            ("Tên tổ chức, cá nhân", dossier.applicant_name),
            ("Thủ tục", f"{procedure.code} — {procedure.name}"),
            ("Ngày yêu cầu", _hm(last.at)),
        ]
        doc.table_head = ["STT", "Nội dung yêu cầu bổ sung, hoàn thiện", "Lý do"]
        for i, line in enumerate((last.reason or "").splitlines() or [""], 1):
            what, _, why = line.partition(":")
            doc.table_rows.append([str(i), what.strip(), why.strip() or what.strip()])
        doc.notes = [
            "Trong quá trình hoàn thiện hồ sơ, nếu có vướng mắc, ông/bà liên hệ "
            f"{receiving} để được hướng dẫn.",
            "Việc hướng dẫn bổ sung, hoàn thiện hồ sơ được thực hiện một lần, đầy đủ, bằng "
            "văn bản (Nghị định 61/2018/NĐ-CP).",
        ]
        doc.signatures = [("NGƯỜI HƯỚNG DẪN", last.actor_username)]
    elif kind == "refusal":
        refused = _events(ctx, dossier, "refuse")
        if not refused:
            raise FormNotAvailable("Hồ sơ không bị từ chối", "The dossier was not refused")
        doc.paragraphs = [
            ("Mã hồ sơ", dossier.code),
            ("Tên tổ chức, cá nhân", dossier.applicant_name),
            ("Thủ tục", f"{procedure.code} — {procedure.name}"),
            ("Lý do từ chối", refused[0].reason or ""),
            ("Ngày", _hm(refused[0].at)),
        ]
        doc.notes = [
            f"{receiving} không thể tiếp nhận giải quyết hồ sơ vì lý do nêu trên. "
            "Xin thông báo để ông/bà được biết và thực hiện."
        ]
        doc.signatures = [("NGƯỜI TIẾP NHẬN", refused[0].actor_username)]
    elif kind == "apology":
        extended = _events(ctx, dossier, "extend")
        if not extended:
            raise FormNotAvailable("Hồ sơ chưa có phiếu xin lỗi", "No apology was issued")
        event = extended[0]
        competent = names.get(dossier.competent_agency, dossier.competent_agency)
        doc.issuer = competent
        doc.paragraphs = [
            ("Mã hồ sơ", dossier.code),
            ("Kính gửi", dossier.applicant_name),
            ("Thủ tục", f"{procedure.code} — {procedure.name}"),
            ("Ngày hẹn trả kết quả ban đầu", _hm(dossier.due_at)),
            ("Lý do chậm trễ", dossier.apology_reason or event.reason or ""),
            ("Ngày hẹn trả kết quả mới", _hm(dossier.appointment_at)),
        ]
        doc.notes = [
            f"{competent} xin lỗi ông/bà vì sự chậm trễ này và hẹn trả kết quả vào thời gian "
            "nêu trên. Mong ông/bà thông cảm."
        ]
        doc.signatures = [(f"THỦ TRƯỞNG {competent.upper()}", event.actor_username)]
    else:  # control_slip
        competent = names.get(dossier.competent_agency, dossier.competent_agency)
        others = sorted({names.get(u, u) for u in dossier.step_units.values()} - {competent})
        doc.paragraphs = [
            ("Mã hồ sơ", dossier.code),
            ("Tên tổ chức, cá nhân", dossier.applicant_name),
            ("Cơ quan chủ trì giải quyết", competent),
            ("Cơ quan phối hợp giải quyết", ", ".join(others) or "—"),
        ]
        doc.table_head = [
            "Tên cơ quan", "Thời gian giao, nhận hồ sơ", "Bên giao", "Bên nhận", "Kết quả",
            "Ghi chú",
        ]  # fmt: skip
        for row in slip.timeline:  # transitions and assignments (phân công thụ lý)
            receiver = names.get(row.to_unit or "", row.to_unit or "—")
            doc.table_rows.append(
                [
                    names.get(row.to_unit or row.from_unit or "", row.to_unit or "—"),
                    f"{row.label}: {vietnamese_instant(row.at)}",
                    f"{names.get(row.from_unit or '', row.from_unit or '—')} ({row.giver})",
                    f"{receiver} ({row.receiver})" if row.receiver else receiver,
                    TIMELINESS_VI.get(row.result or "", ""),
                    row.note or "",
                ]
            )
        if dossier.timeliness:
            doc.notes = [f"Kết quả giải quyết: {TIMELINESS_VI[dossier.timeliness]}"]
    return doc


# --- PDF ---------------------------------------------------------------------------------------

_FONTS_READY = False


def _fonts() -> None:
    global _FONTS_READY
    if _FONTS_READY:
        return
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    pdfmetrics.registerFont(TTFont("DejaVuSans", str(FONT_DIR / "DejaVuSans.ttf")))
    pdfmetrics.registerFont(TTFont("DejaVuSans-Bold", str(FONT_DIR / "DejaVuSans-Bold.ttf")))
    _FONTS_READY = True


def qr_png(url: str) -> bytes:
    image = qrcode.make(url, box_size=8, border=2)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def render_pdf(doc: FormDocument) -> bytes:
    """The form as a PDF (A5 portrait; A4 landscape for wide tables)."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, A5, landscape
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.lib.utils import ImageReader
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    _fonts()
    wide = doc.landscape or len(doc.table_head) > 4
    pagesize = landscape(A4) if wide else A5
    buffer = io.BytesIO()
    base = ParagraphStyle("base", fontName="DejaVuSans", fontSize=8.5, leading=11)
    bold = ParagraphStyle("bold", parent=base, fontName="DejaVuSans-Bold")
    center = ParagraphStyle("center", parent=base, alignment=1)
    title = ParagraphStyle("title", parent=bold, fontSize=11, leading=14, alignment=1)
    qr_size = 22 * mm

    def esc(text: str) -> str:
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    story: list[object] = []
    header = Table(
        [
            [
                Paragraph(f"<b>{esc(doc.issuer.upper())}</b>", center),
                Paragraph(f"<b>{NATIONAL}</b><br/>{MOTTO}", center),
            ],
            [Paragraph(f"Số: {esc(doc.code or '')}", center), Paragraph(doc.place_date, center)],
        ],
        colWidths=[(pagesize[0] - 20 * mm) * 0.42, (pagesize[0] - 20 * mm) * 0.58],
    )
    story += [Spacer(1, qr_size - 6 * mm), header, Spacer(1, 4 * mm)]
    story.append(Paragraph(f"Mẫu số {doc.number}", ParagraphStyle("r", parent=base, alignment=2)))
    story.append(Paragraph(esc(doc.title), title))
    story.append(Spacer(1, 3 * mm))
    for label, value in doc.paragraphs:
        story.append(Paragraph(f"{esc(label)}: <b>{esc(value)}</b>", base))
    if doc.table_head:
        story.append(Spacer(1, 2 * mm))
        cell = ParagraphStyle(
            "cell", parent=base, fontSize=7 if wide else 8.5, leading=9 if wide else 11
        )
        data = [[Paragraph(f"<b>{esc(h)}</b>", cell) for h in doc.table_head]]
        data += [[Paragraph(esc(c), cell) for c in row] for row in doc.table_rows]
        width = pagesize[0] - 20 * mm
        if doc.col_weights:
            total = sum(doc.col_weights)
            widths = [w / total for w in doc.col_weights]
        elif len(doc.table_head) == 4:
            widths = [0.08, 0.62, 0.15, 0.15]
        elif len(doc.table_head) == 3:
            widths = [0.08, 0.5, 0.42]
        else:
            n = len(doc.table_head)
            widths = [1 / n] * n
        table = Table(data, colWidths=[w * width for w in widths], repeatRows=1)
        table.setStyle(
            TableStyle(
                [
                    ("GRID", (0, 0), (-1, -1), 0.4, colors.black),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ]
            )
        )
        story.append(table)
    if doc.notes:
        story.append(Spacer(1, 2 * mm))
        story += [Paragraph(esc(n), base) for n in doc.notes]
    if doc.signatures:
        story.append(Spacer(1, 4 * mm))
        cells = [
            Paragraph(f"<b>{esc(role)}</b><br/>(Ký và ghi rõ họ tên)<br/><br/><br/>{esc(name)}",
                      center)
            for role, name in doc.signatures
        ]  # fmt: skip
        story.append(Table([cells], colWidths=[(pagesize[0] - 20 * mm) / len(cells)] * len(cells)))

    def on_page(canvas: object, _doc: object) -> None:
        if doc.qr_url:
            canvas.drawImage(  # type: ignore[attr-defined]
                ImageReader(io.BytesIO(qr_png(doc.qr_url))),
                8 * mm,
                pagesize[1] - 8 * mm - qr_size,
                qr_size,
                qr_size,
            )

    pdf = SimpleDocTemplate(
        buffer,
        pagesize=pagesize,
        leftMargin=10 * mm,
        rightMargin=10 * mm,
        topMargin=8 * mm,
        bottomMargin=10 * mm,
        title=f"{doc.title} {doc.code or ''}",
        author="motcua",
    )
    pdf.build(story, onFirstPage=on_page, onLaterPages=on_page)
    return buffer.getvalue()


# --- Form 06: the tracking book ----------------------------------------------------------------


def tracking_book(
    ctx: Context, actor: Actor, unit_code: str, start: date, end: date
) -> FormDocument:
    """Sổ theo dõi hồ sơ: dossiers received by ``unit_code`` from ``start`` to ``end``."""
    from services.access import can_see
    from services.metrics import period_bounds

    unit = ctx.catalog.unit(unit_code)
    since, until = period_bounds(start, end)
    with ctx.uow() as uow:
        rows = list(
            uow.session.exec(
                select(Dossier)
                .where(
                    Dossier.receiving_unit == unit_code,
                    col(Dossier.received_at) >= since,
                    col(Dossier.received_at) < until,
                )
                .order_by(col(Dossier.received_at), col(Dossier.id))
            ).all()
        )
        names = {u.code: u.name for u in ctx.catalog.units.values()}
        transferred: dict[int, datetime] = {}
        for e in uow.session.exec(
            select(DossierEvent).where(
                col(DossierEvent.dossier_id).in_([d.id for d in rows] or [-1]),
                DossierEvent.event == "forward",
                DossierEvent.from_unit == unit_code,
            )
        ).all():
            transferred.setdefault(e.dossier_id, e.at)
    rows = [d for d in rows if can_see(ctx.catalog, actor, d)]
    rule_set = ctx.catalog.rule_set_at(end)
    doc = FormDocument(
        kind="tracking_book",
        number=rule_set.forms.tracking_book,
        title=f"SỔ THEO DÕI HỒ SƠ — từ {start:%d/%m/%Y} đến {end:%d/%m/%Y}",
        issuer=unit.name,
        code=None,
        place_date=f"Lạng Sơn, {_vn_date(ctx.clock.now())}",
        landscape=True,
    )
    doc.table_head = [
        "STT", "Mã hồ sơ", "Tên TTHC", "Số lượng hồ sơ", "Tên cá nhân, tổ chức",
        "Địa chỉ, số điện thoại", "Cơ quan chủ trì giải quyết", "Nhận hồ sơ", "Hẹn trả kết quả",
        "Chuyển hồ sơ đến cơ quan giải quyết", "Nhận kết quả từ cơ quan giải quyết",
        "Trả kết quả cho cá nhân, tổ chức (ngày; ký nhận)", "Ghi chú",
    ]  # fmt: skip
    doc.col_weights = [3, 17, 7, 5, 10, 12, 10, 7, 7, 7, 7, 8, 6]

    def short(at: datetime | None) -> str:
        return f"{at:%H:%M %d/%m/%Y}" if at else ""

    for i, d in enumerate(rows, 1):
        contact = ", ".join(x for x in (d.applicant_address, d.applicant_phone) if x)
        doc.table_rows.append(
            [
                str(i), d.code, d.procedure_code, "01", d.applicant_name, contact,
                names.get(d.competent_agency, d.competent_agency), short(d.received_at),
                short(d.appointment_at), short(transferred.get(d.id or -1)),
                short(d.result_ready_at), short(d.returned_at),
                TIMELINESS_VI.get(d.timeliness or "", "" if d.status == "returned" else
                                  STATE_LABELS.get(d.status, ("Đang giải quyết", ""))[0]),
            ]
        )  # fmt: skip
    return doc
