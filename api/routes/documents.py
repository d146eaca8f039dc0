"""Documents (số hóa): streamed upload per component, list, states, download, reuse, deletion.

The upload reads the raw request body (``request.stream()``), never a whole file in memory: the
body is passed in blocks of 1 MiB through a small bounded pipe to the upload use case, which runs
in a worker thread and streams to the object store (multipart)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
from datetime import date, datetime, timedelta
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse
from pydantic import BaseModel, Field

from api.auth import MaybeOfficerDep, OfficerDep
from api.deps import ContextDep, SettingsDep
from services.documents import (
    ALLOWED_TYPES,
    ComponentState,
    DocumentMeta,
    UploadLimits,
    component_states,
    delete_document,
    download_document,
    exempt_component,
    link_reused,
    list_documents,
    open_bytes,
    receipt_check,
    reuse_offers,
    upload_document,
)
from services.errors import InvalidInput
from services.settings import Settings
from storage.models_documents import Document
from storage.objects import LocalStore, MinioStore, ObjectStore

router = APIRouter(prefix="/api/v1", tags=["documents"])

BLOCK = 256 * 1024
PIPE_BLOCKS = 4  # at most 1 MiB of request body waiting for the store


# ------------------------------------------------------------------------------ store factory


@functools.cache
def _store(
    kind: str,
    data_dir: str,
    endpoint: str,
    access_key: str,
    secret_key: str,
    bucket: str,
    secure: bool,
    region: str,
    object_lock: bool,
    part_size_mib: int,
    parallel_uploads: int,
) -> ObjectStore:
    if kind == "local":
        from pathlib import Path as FsPath

        return LocalStore(FsPath(data_dir) / "objects")
    if kind != "minio":
        raise ValueError(f"MOTCUA_OBJECT_STORE must be 'local' or 'minio', not {kind!r}")
    store = MinioStore.connect(
        endpoint, access_key, secret_key, bucket, secure=secure, region=region,
        object_lock=object_lock, part_size=part_size_mib * 1024 * 1024,
        parallel_uploads=parallel_uploads,
    )  # fmt: skip
    store.ensure_bucket()
    return store


UPLOAD_THREADS = 16


@functools.cache
def _upload_threads() -> anyio.CapacityLimiter:
    """Threads of their own for streamed uploads (each holds one while its body arrives), so
    that slow scans never take the few threads of the short handlers (``request_threads``).
    Built on first use, inside the process's event loop."""
    return anyio.CapacityLimiter(UPLOAD_THREADS)


def object_store_for(settings: Settings) -> ObjectStore:
    """The object store the settings describe (one per process)."""
    return _store(
        settings.object_store,
        str(settings.data_dir.resolve()),
        settings.minio_endpoint,
        settings.minio_access_key,
        settings.minio_secret_key,
        settings.minio_bucket,
        settings.minio_secure,
        settings.minio_region,
        settings.minio_object_lock,
        settings.minio_part_size_mib,
        settings.minio_parallel_uploads,
    )


def get_store(request: Request, settings: SettingsDep) -> ObjectStore:
    store: ObjectStore | None = getattr(request.app.state, "object_store", None)
    return store or object_store_for(settings)


StoreDep = Annotated[ObjectStore, Depends(get_store)]
DocumentId = Annotated[int, Path(ge=1, le=2**31 - 1, description="Document row id")]


# ------------------------------------------------------------------------------ schemas


class DocumentPublic(BaseModel):
    id: int
    dossier_id: int
    component: str
    version: int
    sha256: str
    size: int
    content_type: str
    page_count: int | None
    original_name: str | None
    uploaded_by: str
    uploaded_at: datetime
    reason: str | None
    reused_from_id: int | None
    doc_type_code: str | None
    holder_id_number: str | None
    name: str | None
    summary: str | None
    valid_from: date | None
    valid_to: date | None
    scope: str | None
    deleted_at: datetime | None
    deleted_by: str | None
    deletion_reason: str | None
    download_url: str

    @classmethod
    def of(cls, document: Document) -> DocumentPublic:
        data = document.model_dump(exclude={"object_key"})
        return cls(**data, download_url=f"/api/v1/documents/{document.id}/content")


class ComponentStatePublic(BaseModel):
    component: str
    name: str
    required: bool
    status: str
    document_id: int | None
    version: int | None
    exemption: str | None

    @classmethod
    def of(cls, state: ComponentState) -> ComponentStatePublic:
        return cls(**state.__dict__)


class DigitizationPublic(BaseModel):
    dossier_code: str
    require_digitized: str
    missing: list[str]
    receipt_allowed: bool
    warning: str | None
    warning_en: str | None
    components: list[ComponentStatePublic]


class ReuseIn(BaseModel):
    document_id: int = Field(ge=1, le=2**31 - 1)


class ExemptionIn(BaseModel):
    reason: str = Field(description="shared_data / shown_only / online / confidential")
    note: str | None = Field(default=None, max_length=500)


class DeletionIn(BaseModel):
    reason: str = Field(min_length=5, max_length=1000)


class ReuseOfferPublic(BaseModel):
    component: str
    document_id: int
    dossier_code: str
    source_component: str
    doc_type_code: str | None
    name: str | None
    valid_to: date | None


# ------------------------------------------------------------------------------ body pipe


class BodyPipe:
    """A bounded hand-over from the event loop (request body) to the upload thread."""

    def __init__(self, blocks: int = PIPE_BLOCKS) -> None:
        self._queue: queue.Queue[bytes | BaseException | None] = queue.Queue(blocks)
        self._buffer = b""
        self._pos = 0
        self._eof = False
        self.closed = False

    # thread side ------------------------------------------------------------
    def read(self, size: int = -1, /) -> bytes:
        parts: list[bytes] = []
        got = 0
        while size < 0 or got < size:
            available = len(self._buffer) - self._pos
            if available <= 0:
                if self._eof:
                    break
                item = self._queue.get()
                if item is None:
                    self._eof = True
                elif isinstance(item, BaseException):
                    self._eof = True
                    raise item
                else:
                    self._buffer, self._pos = item, 0
                continue
            take = available if size < 0 else min(size - got, available)
            if self._pos == 0 and take == available:
                parts.append(self._buffer)
            else:
                parts.append(self._buffer[self._pos : self._pos + take])
            self._pos += take
            got += take
        return b"".join(parts)

    def close(self) -> None:
        """The reader is done (or failed): drop what is queued, stop the writer."""
        self.closed = True
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()

    # event-loop side --------------------------------------------------------
    async def put(self, item: bytes | BaseException | None) -> bool:
        if self.closed:
            return False
        try:
            self._queue.put_nowait(item)
            return True
        except queue.Full:
            return await anyio.to_thread.run_sync(self._blocking_put, item)

    def _blocking_put(self, item: bytes | BaseException | None) -> bool:
        while not self.closed:
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False


async def feed(request: Request, pipe: BodyPipe) -> None:
    block = bytearray()
    try:
        async for chunk in request.stream():
            if pipe.closed:
                return
            block += chunk
            if len(block) >= BLOCK:
                if not await pipe.put(bytes(block)):
                    return
                block.clear()
        if block:
            await pipe.put(bytes(block))
        await pipe.put(None)
    except Exception as error:  # the client went away: the upload must fail, storing nothing
        await pipe.put(ConnectionResetError(f"request body interrupted: {error!r}"))


# ------------------------------------------------------------------------------ routes


@router.post(
    "/dossiers/{code}/documents/{component}",
    status_code=201,
    response_model=DocumentPublic,
    summary="Tải lên bản số hóa của một thành phần / upload a scan of a component (raw body)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The file itself (PDF, JPEG, PNG or TIFF), streamed as the body; "
            "the type is read from the content. `component` is a component id of the "
            "procedure, or `result`.",
            "content": {
                m: {"schema": {"type": "string", "format": "binary"}} for m in ALLOWED_TYPES
            }
            | {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def upload(
    request: Request,
    code: str,
    component: str,
    officer: OfficerDep,
    ctx: ContextDep,
    settings: SettingsDep,
    store: StoreDep,
    file_name: Annotated[str | None, Query(max_length=255)] = None,
    sha256: Annotated[str | None, Query(description="SHA-256 (hex) computed by the client")] = None,
    x_content_sha256: Annotated[str | None, Header()] = None,
    reason: Annotated[str | None, Query(description="Why a rescan (needed for version 2+)")] = None,
    # the limits of DocumentMeta, checked here so that a long value is a 422, not a 500
    doc_type_code: Annotated[str | None, Query(max_length=64)] = None,
    holder_id_number: Annotated[str | None, Query(max_length=32)] = None,
    name: Annotated[str | None, Query(max_length=500)] = None,
    summary: Annotated[str | None, Query(max_length=2000)] = None,
    valid_from: date | None = None,
    valid_to: date | None = None,
    scope: Annotated[str | None, Query(max_length=200)] = None,
) -> DocumentPublic:
    length_header = request.headers.get("content-length")
    length = int(length_header) if length_header and length_header.isdigit() else None
    meta = DocumentMeta(
        doc_type_code=doc_type_code, holder_id_number=holder_id_number, name=name,
        summary=summary, valid_from=valid_from, valid_to=valid_to, scope=scope,
    )  # fmt: skip
    limits = UploadLimits.from_mib(
        settings.document_max_file_mib, settings.document_max_dossier_mib
    )
    retention = (
        timedelta(days=settings.document_retention_days)
        if settings.document_retention_days > 0
        else None
    )
    pipe = BodyPipe()

    def run() -> Document:
        try:
            return upload_document(
                ctx, store, officer.actor, code, component, pipe,
                length=length, sha256=sha256 or x_content_sha256, file_name=file_name,
                meta=meta, reason=reason, limits=limits, retention=retention,
            )  # fmt: skip
        finally:
            pipe.close()

    task = asyncio.ensure_future(anyio.to_thread.run_sync(run, limiter=_upload_threads()))
    await feed(request, pipe)
    document = await task
    return DocumentPublic.of(document)


@router.get("/dossiers/{code}/documents", response_model=list[DocumentPublic])
def documents_of(code: str, officer: OfficerDep, ctx: ContextDep) -> list[DocumentPublic]:
    """Every version of every document of the dossier (deleted ones with who and why)."""
    return [DocumentPublic.of(d) for d in list_documents(ctx, officer.actor, code)]


@router.get("/dossiers/{code}/digitization", response_model=DigitizationPublic)
def digitization_of(code: str, officer: OfficerDep, ctx: ContextDep) -> DigitizationPublic:
    """Per-component state (digitized / not_digitized / reused / exempt) and the receipt check."""
    states = component_states(ctx, officer.actor, code)
    check = receipt_check(ctx, code)
    warning = check.warning
    return DigitizationPublic(
        dossier_code=code,
        require_digitized=check.mode,
        missing=check.missing,
        receipt_allowed=check.allowed,
        warning=warning[0] if warning else None,
        warning_en=warning[1] if warning else None,
        components=[ComponentStatePublic.of(s) for s in states],
    )


@router.get(
    "/documents/{document_id}/content",
    responses={307: {"description": "Redirect to a short-lived presigned URL (MinIO)"}},
)
def document_content(
    document_id: DocumentId, officer: OfficerDep, ctx: ContextDep, store: StoreDep
) -> Response:
    """Authorization first; then a presigned URL (MinIO) or the bytes streamed (local)."""
    got = download_document(ctx, store, officer.actor, document_id)
    if got.url is not None:
        return RedirectResponse(got.url, status_code=307, headers={"Cache-Control": "no-store"})
    document = got.document
    ext = ALLOWED_TYPES.get(document.content_type, "bin")
    return StreamingResponse(
        open_bytes(store, document),
        media_type=document.content_type,
        headers={
            "Content-Length": str(document.size),
            "Content-Disposition": (
                f'inline; filename="{document.component}-v{document.version}.{ext}"'
            ),
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.delete("/documents/{document_id}", response_model=DocumentPublic)
def remove_document(
    document_id: DocumentId, body: DeletionIn, officer: OfficerDep, ctx: ContextDep, store: StoreDep
) -> DocumentPublic:
    """Admin only, with a reason; the deletion is recorded on the row."""
    return DocumentPublic.of(delete_document(ctx, store, officer.actor, document_id, body.reason))


@router.get("/reuse-offers", response_model=list[ReuseOfferPublic])
def offers(
    officer: OfficerDep,
    ctx: ContextDep,
    id_number: Annotated[str, Query(min_length=1, max_length=32)],
    procedure_code: str,
    exclude_dossier: str | None = None,
) -> list[ReuseOfferPublic]:
    """Kho dữ liệu điện tử: the applicant's digitized papers still valid for this procedure."""
    if officer.role not in ("counter", "digitizer", "specialist", "leader", "admin"):
        raise InvalidInput("Không có quyền tra cứu", "Not allowed to look this up")
    found = reuse_offers(ctx, id_number, procedure_code, exclude_dossier_code=exclude_dossier)
    return [ReuseOfferPublic(**o.__dict__) for o in found]


@router.post(
    "/dossiers/{code}/documents/{component}/reuse", status_code=201, response_model=DocumentPublic
)
def reuse(
    code: str, component: str, body: ReuseIn, officer: OfficerDep, ctx: ContextDep
) -> DocumentPublic:
    """Link an already digitized paper of the same applicant (by reference, not copied)."""
    return DocumentPublic.of(link_reused(ctx, officer.actor, code, component, body.document_id))


@router.post("/dossiers/{code}/documents/{component}/exemption", status_code=201)
def exemption(
    code: str, component: str, body: ExemptionIn, officer: OfficerDep, ctx: ContextDep
) -> dict[str, Any]:
    """Record that a component is not digitized again (DOMAIN.md §5 reasons)."""
    row = exempt_component(ctx, officer.actor, code, component, body.reason, body.note)
    return {"dossier": code, "component": row.component, "reason": row.reason}


# ------------------------------------------------------------------------------ page

pages_router = APIRouter(include_in_schema=False)

STATUS_VI = {
    "digitized": "Đã số hóa",
    "not_digitized": "Chưa số hóa",
    "reused": "Tái sử dụng",
    "exempt": "Miễn số hóa",
}


@pages_router.get("/dossiers/{code}/documents", response_class=HTMLResponse)
def documents_page(
    request: Request, code: str, officer: MaybeOfficerDep, ctx: ContextDep
) -> Response:
    """Số hóa: per-component upload with drag and drop and a progress bar, preview, rescan."""
    if officer is None:
        return RedirectResponse(f"/signin?next={request.url.path}", status_code=303)
    from api.templating import templates

    states = component_states(ctx, officer.actor, code)
    documents = list_documents(ctx, officer.actor, code)
    check = receipt_check(ctx, code)
    current = {}
    for document in documents:
        if document.deleted_at is None:
            current[document.component] = document
    return templates.TemplateResponse(
        request,
        "documents/dossier.html",
        {
            "officer": officer,
            "code": code,
            "procedure_code": check.procedure_code,
            "mode": check.mode,
            "missing": check.missing,
            "states": states,
            "current": current,
            "documents": documents,
            "STATUS_VI": STATUS_VI,
        },
    )
