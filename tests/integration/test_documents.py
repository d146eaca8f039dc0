"""Documents on the real databases (SQLite and PostgreSQL) and both object stores (a local folder
and a moto S3 server process driven through the ``minio`` SDK)."""

from __future__ import annotations

import hashlib
import io
import urllib.request
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image
from pypdf import PdfWriter
from sqlmodel import Session, select

from services.catalog import Catalog
from services.clock import TZ, FixedClock
from services.context import Context
from services.documents import (
    BadFileName,
    ChecksumMismatch,
    DigitizationIncomplete,
    DocumentActionNotAllowed,
    DocumentMeta,
    DocumentRefused,
    DocumentTooLarge,
    UnsupportedDocumentType,
    UploadLimits,
    component_states,
    delete_document,
    download_document,
    ensure_receipt_allowed,
    exempt_component,
    link_reused,
    list_documents,
    open_bytes,
    receipt_check,
    reuse_offers,
    sweep_orphans,
    upload_document,
)
from services.dossiers import Applicant, DossierIn, act, submit_dossier
from services.errors import InvalidInput, OutsideYourAgency
from states.lifecycle import Actor
from storage.models import Dossier
from storage.models_documents import Document
from storage.objects import LocalStore, MinioStore, ObjectStore
from tests.integration.test_objects_conformance import (  # noqa: F401 - fixtures
    S3Endpoint,
    s3_endpoint,
    session_bucket,
)

CENTRE = "000.00.01.H37"
JUSTICE = "000.00.02.H37"
OTHER_AGENCY = "000.00.03.H37"
COUNTER = Actor("motcua1", "counter", CENTRE)
DIGITIZER = Actor("soha1", "digitizer", CENTRE)
ADMIN = Actor("quantri", "admin", "000.00.00.H37")
STRANGER = Actor("nguoingoai", "digitizer", OTHER_AGENCY)
ID_NUMBER = "020099001234"


# ------------------------------------------------------------------------------------- samples


def pdf_bytes(pages: int = 2) -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=595, height=842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def png_bytes(seed: int = 0) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (seed % 256, 10, 20)).save(out, "PNG")
    return out.getvalue()


def tiff_bytes(frames: int = 3) -> bytes:
    out = io.BytesIO()
    images = [Image.new("L", (20, 20), i * 40) for i in range(frames)]
    images[0].save(out, "TIFF", save_all=True, append_images=images[1:])
    return out.getvalue()


ELF = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + b"\x02\x00\x3e\x00" + b"\x00" * 400
WINDOWS_EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00" + b"\x00" * 400


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------------- fixtures


@pytest.fixture(params=["local", "minio"])
def store(request: pytest.FixtureRequest, tmp_path: Path, s3_endpoint: S3Endpoint) -> ObjectStore:  # noqa: F811
    """A fresh store per test (a new bucket on the S3 server), so "nothing stored" is checkable."""
    if request.param == "local":
        return LocalStore(tmp_path / "objects")
    return s3_endpoint.store(f"motcua-doc-{uuid.uuid4().hex[:10]}", part_size=5 * 1024 * 1024)


def new_dossier(
    ctx: Context, *, id_number: str | None = ID_NUMBER, then: str | None = "receive",
    channel: str = "counter", reason: str | None = None,
) -> Dossier:  # fmt: skip
    return submit_dossier(
        ctx,
        COUNTER,
        DossierIn(
            procedure_code="MOJ.lltp",
            receiving_unit=CENTRE,
            channel=channel,  # type: ignore[arg-type]
            applicant=Applicant(name="Hoàng Văn Thụ", id_number=id_number),
            components=["request_form", "applicant_id"],
        ),
        then=then,  # type: ignore[arg-type]
        reason=reason,
    )


def all_objects(store: ObjectStore) -> list[str]:
    return [o.key for o in store.list("")]


def rows(ctx: Context) -> list[Document]:
    with Session(ctx.engine) as session:
        return list(session.exec(select(Document)).all())


def upload(
    ctx: Context, store: ObjectStore, code: str, data: bytes, component: str = "applicant_id",
    *, actor: Actor = DIGITIZER, checksum: bool = True, **options: object,
) -> Document:  # fmt: skip
    return upload_document(
        ctx,
        store,
        actor,
        code,
        component,
        io.BytesIO(data),
        length=options.pop("length", len(data)),  # type: ignore[arg-type]
        sha256=sha(data) if checksum else None,
        **options,  # type: ignore[arg-type]
    )


# ------------------------------------------------------------------------------------- upload


@pytest.mark.parametrize("checksum", [True, False], ids=["client-sha", "no-sha"])
def test_upload_stores_under_the_content_key_then_writes_the_row(
    ctx: Context, store: ObjectStore, checksum: bool
) -> None:
    dossier = new_dossier(ctx)
    data = pdf_bytes(2)
    meta = DocumentMeta(
        doc_type_code="CCCD", name="Căn cước công dân", summary="Bản chụp CCCD",
        valid_to=date(2035, 1, 1),
    )  # fmt: skip
    doc = upload(
        ctx, store, dossier.code, data, checksum=checksum, file_name="cccd scan.pdf", meta=meta
    )
    key = f"{dossier.code}/applicant_id/{sha(data)}"
    assert (doc.object_key, doc.sha256, doc.size) == (key, sha(data), len(data))
    assert (doc.content_type, doc.page_count, doc.version) == ("application/pdf", 2, 1)
    assert doc.original_name == "cccd scan.pdf"  # kept as information, never in the key
    assert doc.holder_id_number == ID_NUMBER  # from the dossier when not given
    assert doc.uploaded_by == DIGITIZER.username
    assert all_objects(store) == [key]  # no staging object left behind
    assert b"".join(store.open(key)) == data
    assert [d.id for d in rows(ctx)] == [doc.id]


def test_type_comes_from_the_content_not_the_name(ctx: Context, store: ObjectStore) -> None:
    dossier = new_dossier(ctx)
    doc = upload(ctx, store, dossier.code, png_bytes(), file_name="looks-like.pdf")
    assert (doc.content_type, doc.page_count) == ("image/png", 1)
    tif = upload(ctx, store, dossier.code, tiff_bytes(3), "request_form")
    assert (tif.content_type, tif.page_count) == ("image/tiff", 3)


REFUSALS = {
    "executable renamed .pdf": (
        dict(data=ELF, file_name="don.pdf"),
        UnsupportedDocumentType,
        "document_type_refused",
    ),
    "windows exe": (dict(data=WINDOWS_EXE), UnsupportedDocumentType, "document_type_refused"),
    "checksum mismatch": (dict(bad_sha=True), ChecksumMismatch, "checksum_mismatch"),
    "oversize announced": (dict(limit=100), DocumentTooLarge, "document_too_large"),
    "oversize streamed": (dict(limit=100, unknown_length=True), DocumentTooLarge, None),
    "../ in the file name": (dict(file_name="../../etc/x.pdf"), BadFileName, "bad_file_name"),
    "a path as file name": (dict(file_name="C:\\scan\\a.pdf"), BadFileName, None),
    "another agency's dossier": (dict(actor=STRANGER), OutsideYourAgency, "outside_your_agency"),
    "corrupted pdf": (dict(data=b"%PDF-1.7\n" + b"\x00garbage" * 400), DocumentRefused, None),
    "unknown component": (dict(component="nope"), InvalidInput, None),
}


def test_refused_uploads_store_nothing(ctx: Context, store: ObjectStore) -> None:
    """Each refusal: a typed error with a stable code, Vietnamese and English messages, and
    neither an object nor a row left behind."""
    dossier = new_dossier(ctx)
    for case, (spec, error, code) in REFUSALS.items():
        data: bytes = spec.get("data", pdf_bytes(1))  # type: ignore[assignment]
        with pytest.raises(error) as raised:
            upload_document(
                ctx,
                store,
                spec.get("actor", DIGITIZER),  # type: ignore[arg-type]
                dossier.code,
                spec.get("component", "applicant_id"),  # type: ignore[arg-type]
                io.BytesIO(data),
                length=None if spec.get("unknown_length") else len(data),
                sha256=sha(b"other bytes") if spec.get("bad_sha") else sha(data),
                file_name=spec.get("file_name"),  # type: ignore[arg-type]
                limits=UploadLimits(spec.get("limit", 10**9), 10**10),  # type: ignore[arg-type]
            )
        if code:
            assert raised.value.code == code, case
        assert raised.value.message_vi and raised.value.message_en, case
        assert raised.value.message_vi != raised.value.message_en, case
        assert all_objects(store) == [], case
        assert rows(ctx) == [], case


def test_dossier_size_limit_counts_current_documents(ctx: Context, store: ObjectStore) -> None:
    dossier = new_dossier(ctx)
    first = png_bytes(1)
    limits = UploadLimits(max_file_bytes=10**6, max_dossier_bytes=len(first) + 100)
    upload(ctx, store, dossier.code, first, limits=limits)
    with pytest.raises(DocumentTooLarge) as raised:
        upload(ctx, store, dossier.code, pdf_bytes(1), "request_form", limits=limits)
    assert raised.value.details["limit"] == "dossier"
    assert len(all_objects(store)) == 1 and len(rows(ctx)) == 1


def test_rescan_is_a_new_version_with_who_and_why(ctx: Context, store: ObjectStore) -> None:
    dossier = new_dossier(ctx)
    first = upload(ctx, store, dossier.code, png_bytes(1))
    with pytest.raises(InvalidInput):
        upload(ctx, store, dossier.code, png_bytes(2))  # no reason given
    second = upload(ctx, store, dossier.code, png_bytes(2), reason="Bản quét mờ, quét lại")
    assert (second.version, second.reason) == (2, "Bản quét mờ, quét lại")
    assert second.object_key != first.object_key
    # the first scan is kept, never overwritten
    assert b"".join(store.open(first.object_key)) == png_bytes(1)
    docs = list_documents(ctx, DIGITIZER, dossier.code)
    assert [(d.component, d.version) for d in docs] == [("applicant_id", 1), ("applicant_id", 2)]
    same = upload(ctx, store, dossier.code, png_bytes(2), reason="gửi lại cùng tệp")
    assert (same.version, same.object_key) == (3, second.object_key)
    assert len(all_objects(store)) == 2


def test_download_presigned_or_streamed_after_authorization(
    ctx: Context, store: ObjectStore
) -> None:
    dossier = new_dossier(ctx)
    data = pdf_bytes(1)
    doc = upload(ctx, store, dossier.code, data)
    assert doc.id is not None
    with pytest.raises(OutsideYourAgency):
        download_document(ctx, store, STRANGER, doc.id)
    with pytest.raises(OutsideYourAgency):
        list_documents(ctx, STRANGER, dossier.code)
    got = download_document(ctx, store, DIGITIZER, doc.id, expires=timedelta(minutes=1))
    if isinstance(store, MinioStore):
        assert got.url is not None and "X-Amz-Expires=60" in got.url
        with urllib.request.urlopen(got.url, timeout=10) as response:
            assert response.read() == data
    else:
        assert got.url is None
        assert b"".join(open_bytes(store, got.document)) == data


def test_only_an_admin_deletes_with_a_recorded_reason(ctx: Context, store: ObjectStore) -> None:
    dossier = new_dossier(ctx)
    doc = upload(ctx, store, dossier.code, png_bytes())
    assert doc.id is not None
    with pytest.raises(DocumentActionNotAllowed):
        delete_document(ctx, store, DIGITIZER, doc.id, "không cần nữa")
    with pytest.raises(InvalidInput):
        delete_document(ctx, store, ADMIN, doc.id, "")
    deleted = delete_document(ctx, store, ADMIN, doc.id, "Tải nhầm hồ sơ của người khác")
    assert (deleted.deleted_by, deleted.deletion_reason) == (
        "quantri", "Tải nhầm hồ sơ của người khác"
    )  # fmt: skip
    assert deleted.deleted_at == ctx.clock.now()
    assert not store.exists(doc.object_key)
    [row] = rows(ctx)
    assert row.deleted_at is not None  # the row stays: the deletion is recorded
    if isinstance(store, MinioStore):  # versioned bucket: the bytes remain as a noncurrent version
        assert len(store.versions(doc.object_key)) == 1
    states = {s.component: s.status for s in component_states(ctx, DIGITIZER, dossier.code)}
    assert states["applicant_id"] == "not_digitized"


def test_sweeper_removes_only_old_objects_without_a_row(
    ctx: Context, store: ObjectStore, clock: FixedClock
) -> None:
    clock.set(datetime.now(TZ))
    dossier = new_dossier(ctx)
    kept = upload(ctx, store, dossier.code, png_bytes())
    orphan = f"{dossier.code}/request_form/{'0' * 64}"
    store.put(orphan, io.BytesIO(b"left by a crash"), length=15)
    store.put("_incoming/abandoned", io.BytesIO(b"half"), length=4)
    early = sweep_orphans(ctx, store, grace=timedelta(hours=1))
    assert early.removed == [] and early.kept_recent == 3
    clock.advance(timedelta(hours=1, minutes=5))
    swept = sweep_orphans(ctx, store, grace=timedelta(hours=1))
    assert sorted(swept.removed) == sorted([orphan, "_incoming/abandoned"])
    assert all_objects(store) == [kept.object_key]


# ------------------------------------------------------------------------------------- reuse


def test_reuse_links_a_valid_paper_of_the_same_applicant(ctx: Context, store: ObjectStore) -> None:
    first = new_dossier(ctx)
    data = pdf_bytes(1)
    source = upload(
        ctx, store, first.code, data,
        meta=DocumentMeta(doc_type_code="CCCD", name="CCCD", valid_to=date(2030, 1, 1)),
    )  # fmt: skip
    expired = upload(
        ctx, store, first.code, png_bytes(5), "request_form",
        meta=DocumentMeta(valid_to=date(2024, 12, 31)),
    )  # fmt: skip
    new_dossier(ctx, id_number="999999999999")  # someone else
    second = new_dossier(ctx, then=None)
    offers = reuse_offers(ctx, ID_NUMBER, "MOJ.lltp", exclude_dossier_code=second.code)
    assert [(o.component, o.document_id) for o in offers] == [("applicant_id", source.id)]
    assert expired.id not in {o.document_id for o in offers}
    assert reuse_offers(ctx, "999999999999", "MOJ.lltp") == []

    assert source.id is not None
    link = link_reused(ctx, COUNTER, second.code, "applicant_id", source.id)
    assert link.reused_from_id == source.id
    assert link.object_key == source.object_key  # linked by reference: no copy
    assert len(all_objects(store)) == 2
    states = {s.component: s.status for s in component_states(ctx, COUNTER, second.code)}
    assert states == {"request_form": "not_digitized", "applicant_id": "reused"}
    # reused from a reuse points at the original
    third = new_dossier(ctx, then=None)
    again = link_reused(ctx, COUNTER, third.code, "applicant_id", link.id)  # type: ignore[arg-type]
    assert again.reused_from_id == source.id
    other = new_dossier(ctx, id_number="888888888888", then=None)
    with pytest.raises(DocumentActionNotAllowed):
        link_reused(ctx, COUNTER, other.code, "applicant_id", source.id)
    # deleting the reusing row keeps the object the original still needs
    delete_document(ctx, store, ADMIN, again.id, "liên kết nhầm hồ sơ")  # type: ignore[arg-type]
    assert store.exists(source.object_key)


# ------------------------------------------------------------------------------------- states


def blocking_catalog(catalog: Catalog, mode: str) -> Catalog:
    procedures = []
    for p in catalog.procedures.values():
        if p.code == "MOJ.lltp":
            versions = [v.model_copy(update={"require_digitized": mode}) for v in p.versions]
            p = p.model_copy(update={"versions": versions})
        procedures.append(p)
    return Catalog(procedures, catalog.units.values(), catalog.rule_sets)


def test_receipt_blocked_or_warned_until_components_are_digitized(
    ctx: Context, store: ObjectStore
) -> None:
    block = Context(ctx.engine, blocking_catalog(ctx.catalog, "block"), ctx.calendar, ctx.clock)
    dossier = new_dossier(block, then=None)
    with pytest.raises(DigitizationIncomplete) as raised:
        ensure_receipt_allowed(block, dossier.code)
    assert raised.value.details["missing"] == ["request_form", "applicant_id"]
    upload(block, store, dossier.code, pdf_bytes(1), "request_form")
    exempt_component(block, COUNTER, dossier.code, "applicant_id", "shared_data", "CSDL dân cư")
    assert ensure_receipt_allowed(block, dossier.code).missing == []
    received = act(block, COUNTER, dossier.code, "receive", None)
    assert received.status == "intake"

    warn = Context(ctx.engine, blocking_catalog(ctx.catalog, "warn"), ctx.calendar, ctx.clock)
    other = new_dossier(warn, then=None)
    check = ensure_receipt_allowed(warn, other.code)
    assert check.allowed and check.warning is not None
    assert "request_form" in check.warning[0] and "Not digitized" in check.warning[1]
    assert receipt_check(ctx, other.code).mode == "off"


def test_component_states_and_result(ctx: Context, store: ObjectStore) -> None:
    online = new_dossier(ctx, channel="online")
    states = component_states(ctx, COUNTER, online.code)
    assert {(s.component, s.status, s.exemption) for s in states} == {
        ("request_form", "exempt", "online"),
        ("applicant_id", "exempt", "online"),
    }
    with pytest.raises(InvalidInput):
        exempt_component(ctx, COUNTER, online.code, "applicant_id", "because")
