"""``digitize-documents``: the digitization pipeline after an upload.

For each stored document not yet processed: read the object again and verify its SHA-256,
count its pages, make a preview image (PNG, stored next to it under ``_previews/``), extract its
text with Tesseract (Vietnamese language data ``vie`` from Debian's ``tesseract-ocr-vie``) and
keep it (``document_text``) for the dossier search. One flow run per sweep, one task run per
batch of documents.

Search (``services.search``): ``text_folded`` is the text without case and diacritics
(``services.search.fold``), searched with PostgreSQL full-text search or SQLite FTS5.
Images (JPEG, PNG, multi-page TIFF) are OCRed page by page; a PDF through the images embedded in
its pages (a scan), which is what a scanner produces.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from services.context import Context
from services.documents import DocumentRefused, count_pages
from services.search import fold
from services.search import search_dossiers as search
from storage.models_documents import Document
from storage.models_workflows import DocumentText
from storage.objects import ObjectExists, ObjectStore
from workflows.handoffs import current_runtime

MAX_OCR_PAGES = 30
PREVIEW_WIDTH = 600


@dataclass(frozen=True)
class Digitized:
    document_id: int
    checksum_ok: bool
    page_count: int | None
    text: str
    error: str | None


def _images(content_type: str, data: Any) -> Iterator[Any]:
    from PIL import Image, ImageSequence

    if content_type == "application/pdf":
        from pypdf import PdfReader

        for page in PdfReader(data, strict=False).pages[:MAX_OCR_PAGES]:
            for picture in page.images[:1]:
                yield picture.image
        return
    with Image.open(data) as image:
        for index, frame in enumerate(ImageSequence.Iterator(image)):
            if index >= MAX_OCR_PAGES:
                break
            yield frame.convert("RGB")


def process_document(ctx: Context, store: ObjectStore, document_id: int) -> Digitized:
    """Verify, count, preview and OCR one document; the result row is written once."""
    import pytesseract

    with ctx.uow() as uow:
        document = uow.session.get(Document, document_id)
        if document is None:
            raise LookupError(document_id)
    digest = hashlib.sha256()
    error: str | None = None
    page_count: int | None = None
    texts: list[str] = []
    preview_key: str | None = None
    with tempfile.SpooledTemporaryFile(max_size=32 * 1024 * 1024) as buffer:
        for chunk in store.open(document.object_key):
            digest.update(chunk)
            buffer.write(chunk)
        checksum_ok = digest.hexdigest() == document.sha256
        if not checksum_ok:
            error = "checksum mismatch: the stored object is not the uploaded one"
        else:
            try:
                page_count = count_pages(
                    store, document.object_key, document.content_type, document.size
                )
            except DocumentRefused as refused:
                error = refused.message_en
            try:
                buffer.seek(0)
                for index, image in enumerate(_images(document.content_type, buffer)):
                    if index == 0:
                        preview_key = _store_preview(store, document, image)
                    texts.append(pytesseract.image_to_string(image, lang="vie").strip())
            except Exception as failure:  # an unreadable page: recorded, not retried forever
                error = f"{type(failure).__name__}: {failure}"[:500]
    content = "\n\n".join(t for t in texts if t)
    with ctx.uow() as uow:
        uow.session.add(
            DocumentText(
                document_id=document_id,
                dossier_id=document.dossier_id,
                checksum_ok=checksum_ok,
                page_count=page_count,
                preview_key=preview_key,
                text=content,
                text_folded=fold(content),
                error=error,
                processed_at=ctx.clock.now(),
            )
        )
        with contextlib.suppress(IntegrityError):  # processed by another worker meanwhile
            uow.commit()
    return Digitized(document_id, checksum_ok, page_count, content, error)


def _store_preview(store: ObjectStore, document: Document, image: Any) -> str:
    preview = image.copy()
    preview.thumbnail((PREVIEW_WIDTH, PREVIEW_WIDTH * 2))
    raw = io.BytesIO()
    preview.convert("RGB").save(raw, format="PNG")
    key = f"_previews/{document.sha256}.png"
    size = raw.tell()
    raw.seek(0)
    with contextlib.suppress(ObjectExists):  # the same content was previewed before
        store.put(key, raw, length=size, content_type="image/png")
    return key


def pending_documents(ctx: Context, limit: int) -> list[int]:
    documents = Document.__table__  # type: ignore[attr-defined]
    done = DocumentText.__table__  # type: ignore[attr-defined]
    with ctx.engine.connect() as conn:
        rows = conn.execute(
            select(documents.c.id)
            .where(
                documents.c.deleted_at.is_(None),
                ~documents.c.id.in_(select(done.c.document_id)),
            )
            .order_by(documents.c.id)
            .limit(limit)
        ).all()
    return [r.id for r in rows]


def search_dossiers(ctx: Context, query: str, *, limit: int = 50) -> list[str]:
    """Codes of dossiers whose code, applicant or digitized papers match every word of
    ``query`` (``services.search``, not scoped to an officer)."""
    return [hit.code for hit in search(ctx, None, query, limit=limit)]


def _store_for_runtime() -> ObjectStore:
    runtime = current_runtime()
    if runtime.store is not None:
        return runtime.store
    settings = runtime.settings
    if settings.object_store == "minio":
        from storage.objects import MinioStore

        return MinioStore.connect(
            settings.minio_endpoint,
            settings.minio_access_key,
            settings.minio_secret_key,
            settings.minio_bucket,
            secure=settings.minio_secure,
            region=settings.minio_region,
        )
    from storage.objects import LocalStore

    return LocalStore(settings.data_dir / "objects")


@task(name="digitize-batch", cache_policy=NO_CACHE, persist_result=False)
def digitize_batch(limit: int) -> dict[str, int]:
    runtime = current_runtime()
    store = _store_for_runtime()
    report = {"processed": 0, "checksum_failed": 0, "errors": 0}
    for document_id in pending_documents(runtime.ctx, limit):
        result = process_document(runtime.ctx, store, document_id)
        report["processed"] += 1
        report["checksum_failed"] += 0 if result.checksum_ok else 1
        report["errors"] += 1 if result.error else 0
    return report


@flow(name="digitize-documents", persist_result=False)
def digitize_documents(batch_size: int = 10, max_batches: int = 10) -> dict[str, int]:
    """Process the documents uploaded since the last sweep."""
    total = {"processed": 0, "checksum_failed": 0, "errors": 0}
    for _ in range(max_batches):
        report = digitize_batch(batch_size)
        for key, value in report.items():
            total[key] += value
        if report["processed"] < batch_size:
            break
    return total


def digitization_loop(stop: Any, *, interval_s: float = 30.0) -> None:
    """Run ``digitize-documents`` whenever uploads wait (a cheap check first)."""
    import logging

    from workflows.handoffs import quiet_prefect

    runtime = current_runtime()
    with quiet_prefect():
        while not stop.is_set():
            try:
                if pending_documents(runtime.ctx, 1):
                    digitize_documents()
            except Exception:
                logging.getLogger("motcua.workflows").exception("digitize-documents failed")
            stop.wait(interval_s)


__all__ = [
    "Digitized",
    "digitization_loop",
    "digitize_batch",
    "digitize_documents",
    "pending_documents",
    "process_document",
    "search_dossiers",
]
