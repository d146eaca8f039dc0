"""Decision 766 digitization indicators counted from the rows (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlmodel import Session

from services.clock import TZ, FixedClock
from services.context import Context
from services.digitization_metrics import (
    COMPONENTS,
    digitization_report,
    rate,
    total,
)
from services.documents import DocumentMeta, link_reused
from storage.models import Dossier
from storage.objects import LocalStore
from tests.integration.test_documents import COUNTER, new_dossier, pdf_bytes, png_bytes, upload


def finish(ctx: Context, code: str, at: datetime) -> None:
    """Result handed to the counter at ``at`` (set on the row: the metrics read only rows)."""
    with Session(ctx.engine) as session:
        dossier = session.query(Dossier).filter(Dossier.code == code).one()
        dossier.decision, dossier.status, dossier.result_ready_at = "approved", "result_ready", at
        session.add(dossier)
        session.commit()


def test_receipt_result_and_reuse_rates_with_766_points(
    ctx: Context, clock: FixedClock, tmp_path: Path
) -> None:
    store = LocalStore(tmp_path / "objects")
    clock.set(datetime(2025, 3, 3, 9, 0, tzinfo=TZ))
    a = new_dossier(ctx)  # both components digitized on the day of receipt
    upload(ctx, store, a.code, pdf_bytes(1), "request_form")
    source = upload(ctx, store, a.code, png_bytes(1), meta=DocumentMeta(valid_to=date(2030, 1, 1)))
    b = new_dossier(ctx)  # one component on the day, the other only the next day
    upload(ctx, store, b.code, pdf_bytes(2), "request_form")
    c = new_dossier(ctx)  # one digitized, one reused from a's applicant (same ID number)
    upload(ctx, store, c.code, pdf_bytes(3), "request_form")
    link_reused(ctx, COUNTER, c.code, "applicant_id", source.id)  # type: ignore[arg-type]
    new_dossier(ctx, channel="online")  # online: not digitized again (exempt)
    new_dossier(
        ctx, then="refuse", reason="Không thuộc thẩm quyền"
    )  # refused at the counter: never received
    clock.set(datetime(2025, 3, 4, 10, 0, tzinfo=TZ))
    upload(ctx, store, b.code, png_bytes(9), "applicant_id")  # too late for "at receipt"

    finish(ctx, a.code, datetime(2025, 3, 10, 10, 0, tzinfo=TZ))
    clock.set(datetime(2025, 3, 10, 11, 0, tzinfo=TZ))
    upload(ctx, store, a.code, pdf_bytes(1), "result")  # electronic result
    finish(ctx, b.code, datetime(2025, 3, 11, 10, 0, tzinfo=TZ))  # paper result only

    with Session(ctx.engine) as session:
        [row] = digitization_report(ctx, session, date(2025, 3, 1), date(2025, 3, 31))
        march_2 = digitization_report(ctx, session, date(2025, 3, 2), date(2025, 3, 2))
        by_procedure = digitization_report(
            ctx, session, date(2025, 3, 1), date(2025, 3, 31), by="procedure"
        )
    assert row.key == "000.00.01.H37"
    assert (row.received, row.digitized_at_receipt, row.with_reuse) == (4, 3, 1)
    assert (row.finished, row.with_e_result) == (2, 1)
    assert (row.receipt_rate, row.result_rate, row.reuse_rate) == (
        Decimal("75.00"), Decimal("50.00"), Decimal("25.00"),
    )  # fmt: skip
    # below 80 %: points = rate × max / 80
    assert row.points == {
        "components": Decimal("3.75"),  # 4 × 75 / 80
        "e_result": Decimal("3.75"),  # 6 × 50 / 80
        "reuse": Decimal("0.63"),  # 2 × 25 / 80 = 0.625, half-up
    }
    assert march_2 == []
    assert [r.key for r in by_procedure] == ["MOJ.lltp"]
    assert total([row, row]).received == 8


def test_rates_are_exact_and_full_points_from_the_threshold() -> None:
    assert rate(2, 3) == Decimal("66.67")
    assert rate(1, 8) == Decimal("12.50")
    assert rate(0, 0) is None
    assert COMPONENTS.score(Decimal("80.00")) == Decimal(4)
    assert COMPONENTS.score(Decimal("99.99")) == Decimal(4)
    assert COMPONENTS.score(Decimal("40.00")) == Decimal("2.00")
    assert COMPONENTS.score(None) is None


def test_a_deleted_result_no_longer_counts(ctx: Context, clock: FixedClock, tmp_path: Path) -> None:
    from services.documents import delete_document
    from tests.integration.test_documents import ADMIN

    store = LocalStore(tmp_path / "objects")
    dossier = new_dossier(ctx)
    finish(ctx, dossier.code, clock.now() + timedelta(days=1))
    result = upload(ctx, store, dossier.code, pdf_bytes(1), "result")
    delete_document(ctx, store, ADMIN, result.id, "nhầm kết quả")  # type: ignore[arg-type]
    with Session(ctx.engine) as session:
        [row] = digitization_report(ctx, session, date(2025, 3, 1), date(2025, 3, 31))
    assert (row.finished, row.with_e_result) == (1, 0)
