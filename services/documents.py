"""Digitized documents (số hóa): upload, verify, keep, reuse, and the per-component state.

Upload, in this order (nothing stored when refused, no row without its object):
1. the file name, the checksum format, the component and the officer's right to the dossier are
   checked, and the announced length against the size limits — before any byte is read;
2. the first bytes decide the type from the content (PDF, JPEG, PNG, TIFF; anything else is
   refused whatever its name or declared type);
3. the bytes are streamed to the store (multipart), SHA-256 and size computed on the way, the
   limits enforced while streaming; with a client checksum the object goes straight to its final
   key ``<dossier code>/<component>/<sha256>``, otherwise to ``_incoming/<uuid>`` and is then
   copied server-side to its final key;
4. the stored object is checked (checksum, size; a PDF or TIFF must open) — on failure it is
   removed and the upload refused;
5. only then the row is written, one transaction. A crash before that leaves an object without a
   row, which ``sweep_orphans`` removes after a grace period.

Objects are never overwritten (the key is the content hash); a rescan is a new version with who
and why; only an admin deletes, with a reason, recorded on the row.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import ClassVar, Literal

import filetype
from pydantic import BaseModel, Field
from sqlalchemy import func
from sqlmodel import Session, col, select

from services.access import ensure_can_see
from services.catalog import ProcedureVersion
from services.context import Context
from services.errors import DomainError, DossierNotFound, InvalidInput
from states.lifecycle import Actor
from storage.models import Dossier
from storage.models_documents import RESULT, DigitizationExemption, Document
from storage.objects import ObjectExists, ObjectMissing, ObjectStore, Readable

ALLOWED_TYPES: dict[str, str] = {
    "application/pdf": "pdf",
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/tiff": "tif",
}
UPLOAD_ROLES = frozenset({"counter", "digitizer", "specialist", "leader", "admin"})
EXEMPTION_REASONS = ("shared_data", "shown_only", "online", "confidential")
INCOMING = "_incoming/"
HEAD_BYTES = 8192
PAGE_COUNT_MAX_BYTES = 256 * 1024 * 1024  # larger files get their page count from the pipeline
MIB = 1024 * 1024
MAX_ID = 2**31 - 1  # row ids are 32-bit integers on every backend
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_BAD_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")

DigitizationStatus = Literal["digitized", "not_digitized", "reused", "exempt"]


# ---------------------------------------------------------------------------------------- errors


class DocumentRefused(DomainError):
    code = "document_refused"
    http_status: ClassVar[int] = 422


class UnsupportedDocumentType(DocumentRefused):
    code = "document_type_refused"
    http_status: ClassVar[int] = 415

    def __init__(self, detected: str | None) -> None:
        what = detected or "không rõ / unknown"
        super().__init__(
            f"Loại tệp không được chấp nhận ({what}); chỉ nhận PDF, JPEG, PNG, TIFF",
            f"File type refused ({what}); only PDF, JPEG, PNG and TIFF are accepted",
            detected=detected,
        )


class ChecksumMismatch(DocumentRefused):
    code = "checksum_mismatch"

    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(
            "Mã kiểm tra SHA-256 không khớp: tệp bị hỏng trên đường truyền, không lưu",
            "SHA-256 checksum mismatch: the file was corrupted in transit and was not stored",
            expected=expected,
            actual=actual,
        )


class DocumentTooLarge(DocumentRefused):
    code = "document_too_large"
    http_status: ClassVar[int] = 413

    def __init__(self, limit: int, what: Literal["file", "dossier"]) -> None:
        mib = limit / MIB
        if what == "file":
            vi, en = f"Tệp vượt quá {mib:.0f} MiB", f"The file exceeds {mib:.0f} MiB"
        else:
            vi = f"Tổng dung lượng tài liệu của hồ sơ sẽ vượt giới hạn (còn {mib:.1f} MiB)"
            en = f"The dossier's documents would exceed their limit ({mib:.1f} MiB left)"
        super().__init__(vi, en, limit_bytes=limit, limit=what)


class BadFileName(DocumentRefused):
    code = "bad_file_name"

    def __init__(self, name: str) -> None:
        super().__init__(
            f"Tên tệp không hợp lệ: {name!r} (không được chứa đường dẫn như '../')",
            f"Invalid file name: {name!r} (no paths such as '../')",
            file_name=name,
        )


class DocumentNotFound(DomainError):
    code = "document_not_found"
    http_status: ClassVar[int] = 404

    def __init__(self, document_id: int) -> None:
        super().__init__(
            f"Không tìm thấy tài liệu {document_id}",
            f"Document {document_id} not found",
            document=document_id,
        )


class DocumentActionNotAllowed(DomainError):
    code = "document_action_not_allowed"
    http_status: ClassVar[int] = 403


class DigitizationIncomplete(DomainError):
    """Receipt blocked: required components are not digitized (procedure set to "block")."""

    code = "digitization_incomplete"
    http_status: ClassVar[int] = 409

    def __init__(self, code: str, missing: list[str]) -> None:
        super().__init__(
            f"Hồ sơ {code}: chưa số hóa thành phần {', '.join(missing)}; chưa thể tiếp nhận",
            f"Dossier {code}: components not digitized: {', '.join(missing)}; cannot receive",
            dossier=code,
            missing=missing,
        )


# ---------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class UploadLimits:
    max_file_bytes: int = 2048 * MIB
    max_dossier_bytes: int = 4096 * MIB

    @classmethod
    def from_mib(cls, file_mib: int, dossier_mib: int) -> UploadLimits:
        return cls(file_mib * MIB, dossier_mib * MIB)


class DocumentMeta(BaseModel):
    """Minimum metadata of a digitized paper (DOMAIN.md §5)."""

    doc_type_code: str | None = Field(default=None, max_length=64)
    holder_id_number: str | None = Field(default=None, max_length=32)
    name: str | None = Field(default=None, max_length=500)
    summary: str | None = Field(default=None, max_length=2000)
    valid_from: date | None = None
    valid_to: date | None = None
    scope: str | None = Field(default=None, max_length=200)


def check_file_name(name: str | None) -> str | None:
    """The client's file name is kept as information only; path-like names are refused."""
    if name is None or name == "":
        return None
    if (
        len(name) > 255
        or _BAD_NAME.search(name)
        or ".." in name
        or name.strip() in ("", ".")
        or name.startswith("~")
    ):
        raise BadFileName(name)
    return name


def detect_type(head: bytes) -> str:
    """MIME type from the content; raises ``UnsupportedDocumentType`` for anything not allowed."""
    kind = filetype.guess(head)
    mime = kind.mime if kind is not None else None
    if mime not in ALLOWED_TYPES:
        raise UnsupportedDocumentType(mime)
    return mime


def object_key(dossier_code: str, component: str, sha256: str) -> str:
    return f"{dossier_code}/{component}/{sha256}"


# ---------------------------------------------------------------------------------------- upload


class _VerifyingReader:
    """Reads ``head`` then ``rest``, hashing and counting, and stops past ``limit`` bytes."""

    def __init__(self, head: bytes, rest: Readable, limit: int, limit_what: str) -> None:
        self._head = head
        self._rest = rest
        self.limit = limit
        self.limit_what = limit_what
        self.sha = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1, /) -> bytes:
        if self._head:
            if size < 0 or size >= len(self._head):
                data, self._head = self._head, b""
                if size > len(data):
                    data += _read_up_to(self._rest, size - len(data))
            else:
                data, self._head = self._head[:size], self._head[size:]
        else:
            data = self._rest.read(size)
        if data:
            self.size += len(data)
            if self.size > self.limit:
                raise DocumentTooLarge(
                    self.limit, "file" if self.limit_what == "file" else "dossier"
                )
            self.sha.update(data)
        return data


def _read_up_to(stream: Readable, size: int) -> bytes:
    parts: list[bytes] = []
    got = 0
    while got < size:
        data = stream.read(size - got)
        if not data:
            break
        parts.append(data)
        got += len(data)
    return b"".join(parts)


def _load_dossier(session: Session, code: str) -> Dossier:
    dossier = session.exec(select(Dossier).where(Dossier.code == code)).first()
    if dossier is None:
        raise DossierNotFound(code)
    return dossier


def _version_of(ctx: Context, dossier: Dossier) -> ProcedureVersion:
    return ctx.catalog.procedure(dossier.procedure_code).version(dossier.procedure_version)


def _check_component(ctx: Context, dossier: Dossier, component: str) -> None:
    known = {c.id for c in _version_of(ctx, dossier).components}
    if component != RESULT and component not in known:
        raise InvalidInput(
            f"Thành phần {component!r} không có trong danh mục thủ tục {dossier.procedure_code}",
            f"Component {component!r} is not in procedure {dossier.procedure_code}'s list",
            component=component,
        )


def _current(session: Session, dossier_id: int) -> dict[str, Document]:
    """The newest non-deleted version of each component of a dossier."""
    rows = session.exec(
        select(Document)
        .where(Document.dossier_id == dossier_id, col(Document.deleted_at).is_(None))
        .order_by(col(Document.version))
    ).all()
    return {row.component: row for row in rows}


def _stored_bytes(session: Session, dossier_id: int) -> int:
    """Bytes of the dossier's current own documents (reuse links cost nothing)."""
    return sum(d.size for d in _current(session, dossier_id).values() if d.reused_from_id is None)


def upload_document(
    ctx: Context,
    store: ObjectStore,
    actor: Actor,
    dossier_code: str,
    component: str,
    data: Readable,
    *,
    length: int | None = None,
    sha256: str | None = None,
    file_name: str | None = None,
    meta: DocumentMeta | None = None,
    reason: str | None = None,
    limits: UploadLimits | None = None,
    retention: timedelta | None = None,
) -> Document:
    """Store one scan of ``component`` (or the result) of a dossier; see the module docstring."""
    limits = limits or UploadLimits()
    file_name = check_file_name(file_name)
    if sha256 is not None:
        sha256 = sha256.strip().lower()
        if not _SHA256.match(sha256):
            raise InvalidInput(
                "Mã SHA-256 phải gồm 64 ký tự thập lục phân",
                "The SHA-256 checksum must be 64 hexadecimal characters",
            )
    if actor.role not in UPLOAD_ROLES:
        raise DocumentActionNotAllowed(
            f"Vai trò {actor.role} không được tải tài liệu lên",
            f"Role {actor.role} may not upload documents",
        )
    with ctx.uow() as uow:
        dossier = _load_dossier(uow.session, dossier_code)
        ensure_can_see(ctx.catalog, actor, dossier)
        _check_component(ctx, dossier, component)
        assert dossier.id is not None
        current = _current(uow.session, dossier.id)
        used = _stored_bytes(uow.session, dossier.id)
    if component in current and not (reason and reason.strip()):
        raise InvalidInput(
            "Thành phần này đã được số hóa: quét lại cần nêu lý do",
            "This component is already digitized: a rescan needs a reason",
            component=component,
        )
    dossier_left = limits.max_dossier_bytes - used
    limit, limit_what = (
        (limits.max_file_bytes, "file")
        if limits.max_file_bytes <= dossier_left
        else (max(dossier_left, 0), "dossier")
    )
    if length is not None and length > limit:
        raise DocumentTooLarge(limit, "file" if limit_what == "file" else "dossier")

    head = _read_up_to(data, HEAD_BYTES)
    if not head:
        raise DocumentRefused("Tệp rỗng", "The file is empty")
    content_type = detect_type(head)
    reader = _VerifyingReader(head, data, limit, limit_what)

    final = object_key(dossier.code, component, sha256) if sha256 else None
    direct = final is not None and not store.exists(final)
    stored_key = final if direct and final else f"{INCOMING}{uuid.uuid4().hex}"
    try:
        put = store.put(
            stored_key,
            reader,
            length=-1 if length is None else length,
            content_type=content_type,
            metadata={"dossier": dossier.code, "component": component},
        )
    except DomainError:
        raise
    except ObjectExists:  # the same bytes arrived meanwhile under the final key
        raise DocumentRefused(
            "Tệp giống hệt đang được tải lên cùng lúc; hãy thử lại",
            "The same file is being uploaded at the same time; try again",
        ) from None
    except OSError as error:
        raise DocumentRefused(
            f"Tải lên không trọn vẹn ({error}); không lưu",
            f"Incomplete upload ({error}); nothing stored",
        ) from None

    digest = reader.sha.hexdigest()

    def discard() -> None:
        store.delete(stored_key, version_id=put.version_id, purge=put.version_id is None)

    if sha256 is not None and digest != sha256:
        discard()
        raise ChecksumMismatch(sha256, digest)
    try:
        info = store.stat(stored_key)
    except ObjectMissing:
        info = None
    if info is None or info.size != reader.size:
        discard()
        raise DocumentRefused(
            "Đối tượng lưu trữ không khớp kích thước đã nhận; không lưu",
            "The stored object does not match the received size; nothing stored",
        )
    final = object_key(dossier.code, component, digest)
    created = stored_key == final
    if not created:
        if store.exists(final):
            discard()
        else:
            copied = store.copy(stored_key, final)
            discard()
            created = True
            put = copied
    try:
        pages = count_pages(store, final, content_type, reader.size)
    except DocumentRefused:
        if created:
            store.delete(final, version_id=put.version_id, purge=put.version_id is None)
        raise
    if created and retention is not None:
        store.protect(final, version_id=put.version_id, until=ctx.clock.now() + retention)

    meta = meta or DocumentMeta()
    now = ctx.clock.now()
    with ctx.uow() as uow:
        last = uow.session.exec(
            select(func.max(Document.version)).where(
                Document.dossier_id == dossier.id, Document.component == component
            )
        ).one()
        document = Document(
            dossier_id=dossier.id,
            component=component,
            version=(last or 0) + 1,
            object_key=final,
            sha256=digest,
            size=reader.size,
            content_type=content_type,
            page_count=pages,
            original_name=file_name,
            uploaded_by=actor.username,
            uploaded_at=now,
            reason=reason,
            **meta.model_dump(),
        )
        if document.holder_id_number is None and component != RESULT:
            document.holder_id_number = dossier.applicant_id_number
        uow.session.add(document)
        uow.commit()
    return document


def count_pages(store: ObjectStore, key: str, content_type: str, size: int) -> int | None:
    """Pages of a stored scan; a PDF or TIFF that does not open is refused as corrupted.

    Files above ``PAGE_COUNT_MAX_BYTES`` are left to the digitization pipeline (``None``)."""
    if content_type in ("image/jpeg", "image/png"):
        return 1
    if size > PAGE_COUNT_MAX_BYTES:
        return None
    with tempfile.SpooledTemporaryFile(max_size=8 * MIB) as buffer:
        chunks = store.open(key)
        try:
            for chunk in chunks:
                buffer.write(chunk)
        finally:
            with contextlib.suppress(Exception):
                chunks.close()  # type: ignore[attr-defined]
        buffer.seek(0)
        try:
            if content_type == "application/pdf":
                from pypdf import PdfReader

                return len(PdfReader(buffer, strict=False).pages)
            from PIL import Image

            with Image.open(buffer) as image:
                return int(getattr(image, "n_frames", 1))
        except Exception:
            raise DocumentRefused(
                "Tệp bị hỏng, không mở được; không lưu",
                "The file is corrupted and cannot be opened; nothing stored",
            ) from None


# ---------------------------------------------------------------------------------------- reads


def _visible_document(ctx: Context, session: Session, actor: Actor, document_id: int) -> Document:
    if not 0 < document_id <= MAX_ID:
        raise DocumentNotFound(document_id)
    document = session.get(Document, document_id)
    if document is None:
        raise DocumentNotFound(document_id)
    dossier = session.get(Dossier, document.dossier_id)
    assert dossier is not None
    ensure_can_see(ctx.catalog, actor, dossier)
    return document


def list_documents(ctx: Context, actor: Actor, dossier_code: str) -> list[Document]:
    """Every version of every document of a dossier (deleted ones flagged), oldest first."""
    with ctx.uow() as uow:
        dossier = _load_dossier(uow.session, dossier_code)
        ensure_can_see(ctx.catalog, actor, dossier)
        return list(
            uow.session.exec(
                select(Document)
                .where(Document.dossier_id == dossier.id)
                .order_by(col(Document.component), col(Document.version))
            ).all()
        )


@dataclass(frozen=True)
class Download:
    document: Document
    url: str | None  # a short-lived presigned URL, or None: stream it


def download_document(
    ctx: Context,
    store: ObjectStore,
    actor: Actor,
    document_id: int,
    *,
    expires: timedelta = timedelta(minutes=5),
) -> Download:
    """Authorization first, then a presigned URL (MinIO) or ``None`` (stream ``open_bytes``)."""
    with ctx.uow() as uow:
        document = _visible_document(ctx, uow.session, actor, document_id)
    if document.deleted_at is not None:
        raise DocumentNotFound(document_id)
    ext = ALLOWED_TYPES.get(document.content_type, "bin")
    filename = f"{document.component}-v{document.version}.{ext}"
    return Download(
        document, store.presigned_get(document.object_key, expires=expires, filename=filename)
    )


def open_bytes(store: ObjectStore, document: Document) -> Iterator[bytes]:
    return store.open(document.object_key)


# ---------------------------------------------------------------------------------------- delete


def delete_document(
    ctx: Context, store: ObjectStore, actor: Actor, document_id: int, reason: str
) -> Document:
    """Admin only, with a reason, recorded on the row. The object is removed only when no other
    row (another version, a reuse link) still refers to it; on a versioned bucket the bytes stay
    as a noncurrent version (and retention, where set, still holds)."""
    if actor.role != "admin":
        raise DocumentActionNotAllowed(
            "Chỉ quản trị viên được xóa tài liệu", "Only an admin may delete a document"
        )
    if not reason or len(reason.strip()) < 5:
        raise InvalidInput("Xóa tài liệu cần nêu lý do", "Deleting a document needs a reason")
    with ctx.uow() as uow:
        document = _visible_document(ctx, uow.session, actor, document_id)
        if document.deleted_at is not None:
            raise DocumentNotFound(document_id)
        document.deleted_at = ctx.clock.now()
        document.deleted_by = actor.username
        document.deletion_reason = reason.strip()
        uow.session.add(document)
        others = uow.session.exec(
            select(func.count())
            .select_from(Document)
            .where(
                Document.object_key == document.object_key,
                Document.id != document.id,
                col(Document.deleted_at).is_(None),
            )
        ).one()
        uow.commit()
    if not others:
        store.delete(document.object_key)
    return document


# ---------------------------------------------------------------------------------------- sweep


@dataclass
class SweepResult:
    removed: list[str] = field(default_factory=list)
    kept_recent: int = 0
    failed: list[str] = field(default_factory=list)


def sweep_orphans(
    ctx: Context,
    store: ObjectStore,
    *,
    grace: timedelta = timedelta(hours=6),
    prefix: str = "",
    batch: int = 500,
) -> SweepResult:
    """Remove objects that no document row refers to and that are older than ``grace``
    (an upload in progress has its object before its row: the grace period covers it)."""
    result = SweepResult()
    cutoff = ctx.clock.now() - grace
    pending: list[str] = []

    def flush() -> None:
        with ctx.uow() as uow:
            known = set(
                uow.session.exec(
                    select(Document.object_key).where(col(Document.object_key).in_(pending))
                ).all()
            )
        for key in pending:
            if key in known:
                continue
            try:
                store.delete(key, purge=True)
                result.removed.append(key)
            except Exception:  # e.g. a version under retention: report, go on
                result.failed.append(key)
        pending.clear()

    for info in store.list(prefix):
        if info.last_modified > cutoff:
            result.kept_recent += 1
            continue
        pending.append(info.key)
        if len(pending) >= batch:
            flush()
    if pending:
        flush()
    return result


# ---------------------------------------------------------------------------------------- reuse


@dataclass(frozen=True)
class ReuseOffer:
    component: str  # the component of the new procedure it can stand for
    document_id: int
    dossier_code: str
    source_component: str
    doc_type_code: str | None
    name: str | None
    valid_to: date | None


def reuse_offers(
    ctx: Context,
    applicant_id_number: str,
    procedure_code: str,
    *,
    on: date | None = None,
    exclude_dossier_code: str | None = None,
) -> list[ReuseOffer]:
    """Kho dữ liệu điện tử: the applicant's digitized papers still valid ``on`` that match a
    component of ``procedure_code`` (same component id, or a document type code equal to it)."""
    on = on or ctx.clock.now().date()
    version = ctx.catalog.procedure(procedure_code).version_at(on)
    wanted = {c.id for c in version.components if not c.shown_only}
    offers: dict[tuple[str, int], ReuseOffer] = {}
    with ctx.uow() as uow:
        rows = uow.session.exec(
            select(Document, Dossier)
            .join(Dossier, col(Dossier.id) == col(Document.dossier_id))
            .where(
                col(Document.deleted_at).is_(None),
                (col(Document.holder_id_number) == applicant_id_number)
                | (
                    col(Document.holder_id_number).is_(None)
                    & (col(Dossier.applicant_id_number) == applicant_id_number)
                ),
            )
            .order_by(col(Document.version))
        ).all()
    latest: dict[tuple[int, str], tuple[Document, Dossier]] = {}
    for document, dossier in rows:
        latest[(document.dossier_id, document.component)] = (document, dossier)
    for document, dossier in latest.values():
        if dossier.code == exclude_dossier_code:
            continue
        if document.valid_to is not None and document.valid_to < on:
            continue
        if document.valid_from is not None and document.valid_from > on:
            continue
        for component in wanted & {document.component, document.doc_type_code or ""}:
            origin = document.reused_from_id or document.id
            assert origin is not None
            offers[(component, origin)] = ReuseOffer(
                component=component,
                document_id=origin,
                dossier_code=dossier.code,
                source_component=document.component,
                doc_type_code=document.doc_type_code,
                name=document.name,
                valid_to=document.valid_to,
            )
    return sorted(offers.values(), key=lambda o: (o.component, o.document_id))


def link_reused(
    ctx: Context, actor: Actor, dossier_code: str, component: str, source_document_id: int
) -> Document:
    """Link an already digitized paper of the same applicant to this dossier's component: a new
    row pointing at the source row and its object (no bytes copied), recorded with who and when."""
    if actor.role not in UPLOAD_ROLES:
        raise DocumentActionNotAllowed(
            f"Vai trò {actor.role} không được sử dụng lại tài liệu",
            f"Role {actor.role} may not reuse documents",
        )
    now = ctx.clock.now()
    with ctx.uow() as uow:
        dossier = _load_dossier(uow.session, dossier_code)
        ensure_can_see(ctx.catalog, actor, dossier)
        _check_component(ctx, dossier, component)
        source = (
            uow.session.get(Document, source_document_id)
            if 0 < source_document_id <= MAX_ID
            else None
        )
        if source is None or source.deleted_at is not None:
            raise DocumentNotFound(source_document_id)
        source_dossier = uow.session.get(Dossier, source.dossier_id)
        assert source_dossier is not None
        holder = source.holder_id_number or source_dossier.applicant_id_number
        if not dossier.applicant_id_number or holder != dossier.applicant_id_number:
            raise DocumentActionNotAllowed(
                "Chỉ sử dụng lại giấy tờ của chính người nộp hồ sơ",
                "Only the applicant's own papers can be reused",
            )
        if source.valid_to is not None and source.valid_to < now.date():
            raise InvalidInput(
                f"Giấy tờ đã hết hiệu lực từ {source.valid_to}",
                f"The paper expired on {source.valid_to}",
            )
        last = uow.session.exec(
            select(func.max(Document.version)).where(
                Document.dossier_id == dossier.id, Document.component == component
            )
        ).one()
        link = Document(
            dossier_id=dossier.id,  # type: ignore[arg-type]
            component=component,
            version=(last or 0) + 1,
            object_key=source.object_key,
            sha256=source.sha256,
            size=source.size,
            content_type=source.content_type,
            page_count=source.page_count,
            uploaded_by=actor.username,
            uploaded_at=now,
            reason=f"reuse of document {source.reused_from_id or source.id}",
            reused_from_id=source.reused_from_id or source.id,
            doc_type_code=source.doc_type_code,
            holder_id_number=holder,
            name=source.name,
            summary=source.summary,
            valid_from=source.valid_from,
            valid_to=source.valid_to,
            scope=source.scope,
        )
        uow.session.add(link)
        uow.commit()
    return link


# ---------------------------------------------------------------------------------------- states


@dataclass(frozen=True)
class ComponentState:
    component: str
    name: str
    required: bool
    status: DigitizationStatus
    document_id: int | None = None
    version: int | None = None
    exemption: str | None = None


def exempt_component(
    ctx: Context,
    actor: Actor,
    dossier_code: str,
    component: str,
    reason: str,
    note: str | None = None,
) -> DigitizationExemption:
    """Record that a component is not digitized again, with a DOMAIN.md §5 reason."""
    if reason not in EXEMPTION_REASONS:
        raise InvalidInput(
            f"Lý do miễn số hóa phải là một trong {', '.join(EXEMPTION_REASONS)}",
            f"The exemption reason must be one of {', '.join(EXEMPTION_REASONS)}",
        )
    if actor.role not in UPLOAD_ROLES:
        raise DocumentActionNotAllowed(
            f"Vai trò {actor.role} không được ghi miễn số hóa",
            f"Role {actor.role} may not record exemptions",
        )
    with ctx.uow() as uow:
        dossier = _load_dossier(uow.session, dossier_code)
        ensure_can_see(ctx.catalog, actor, dossier)
        _check_component(ctx, dossier, component)
        row = DigitizationExemption(
            dossier_id=dossier.id,  # type: ignore[arg-type]
            component=component,
            reason=reason,
            note=note,
            recorded_by=actor.username,
            recorded_at=ctx.clock.now(),
        )
        uow.session.add(row)
        uow.commit()
    return row


def states_of(
    ctx: Context,
    dossier: Dossier,
    documents: list[Document],
    exemptions: list[DigitizationExemption],
    *,
    as_of: datetime | None = None,
) -> list[ComponentState]:
    """Per-component digitization state of one dossier, from its rows (no I/O).

    Listed: the required components and the optional ones that were submitted, and the result
    once a decision is taken. Order of precedence: a current document (reused if it is a link,
    else digitized) → a recorded exemption → a paper only shown → an online dossier → not
    digitized. ``as_of`` ignores rows written after that instant (metrics)."""
    version = _version_of(ctx, dossier)
    submitted = {c.get("id") for c in dossier.components or []}
    current: dict[str, Document] = {}
    for d in sorted(documents, key=lambda d: d.version):
        if as_of is not None and d.uploaded_at > as_of:
            continue
        if d.deleted_at is not None and (as_of is None or d.deleted_at <= as_of):
            continue
        current[d.component] = d
    exempt = {e.component: e.reason for e in exemptions if as_of is None or e.recorded_at <= as_of}
    wanted: list[tuple[str, str, bool, bool]] = [
        (c.id, c.name, c.required, c.shown_only)
        for c in version.components
        if c.required or c.id in submitted
    ]
    if dossier.decision is not None:
        wanted.append((RESULT, "Kết quả giải quyết", True, False))
    out: list[ComponentState] = []
    for cid, name, required, shown_only in wanted:
        doc = current.get(cid)
        if doc is not None:
            status: DigitizationStatus = "reused" if doc.reused_from_id else "digitized"
            out.append(ComponentState(cid, name, required, status, doc.id, doc.version))
        elif cid in exempt:
            out.append(ComponentState(cid, name, required, "exempt", exemption=exempt[cid]))
        elif shown_only:
            out.append(ComponentState(cid, name, required, "exempt", exemption="shown_only"))
        elif dossier.channel == "online" and cid != RESULT:
            out.append(ComponentState(cid, name, required, "exempt", exemption="online"))
        else:
            out.append(ComponentState(cid, name, required, "not_digitized"))
    return out


def component_states(ctx: Context, actor: Actor, dossier_code: str) -> list[ComponentState]:
    with ctx.uow() as uow:
        dossier = _load_dossier(uow.session, dossier_code)
        ensure_can_see(ctx.catalog, actor, dossier)
        return _states(ctx, uow.session, dossier)


def _states(ctx: Context, session: Session, dossier: Dossier) -> list[ComponentState]:
    documents = list(session.exec(select(Document).where(Document.dossier_id == dossier.id)).all())
    exemptions = list(
        session.exec(
            select(DigitizationExemption).where(DigitizationExemption.dossier_id == dossier.id)
        ).all()
    )
    return states_of(ctx, dossier, documents, exemptions)


@dataclass(frozen=True)
class ReceiptCheck:
    """What reception needs before ``receive``: the procedure's mode and what is missing."""

    dossier_code: str
    mode: Literal["off", "warn", "block"]
    missing: list[str]
    procedure_code: str = ""

    @property
    def allowed(self) -> bool:
        return self.mode != "block" or not self.missing

    @property
    def warning(self) -> tuple[str, str] | None:
        if self.mode == "warn" and self.missing:
            names = ", ".join(self.missing)
            return (f"Chưa số hóa: {names}", f"Not digitized yet: {names}")
        return None


def receipt_check(ctx: Context, dossier_code: str) -> ReceiptCheck:
    """Required components not yet digitized (nor reused, nor exempt), with the procedure's
    ``require_digitized`` mode ("off" / "warn" / "block")."""
    with ctx.uow() as uow:
        dossier = _load_dossier(uow.session, dossier_code)
        mode = _version_of(ctx, dossier).require_digitized
        states = _states(ctx, uow.session, dossier)
    missing = [
        s.component
        for s in states
        if s.required and s.component != RESULT and s.status == "not_digitized"
    ]
    return ReceiptCheck(dossier_code, mode, missing, dossier.procedure_code)


def ensure_receipt_allowed(ctx: Context, dossier_code: str) -> ReceiptCheck:
    """For reception: raises ``DigitizationIncomplete`` when the procedure blocks; otherwise
    returns the check (its ``warning`` is set when the procedure warns)."""
    check = receipt_check(ctx, dossier_code)
    if not check.allowed:
        raise DigitizationIncomplete(dossier_code, check.missing)
    return check


__all__ = [
    "ALLOWED_TYPES",
    "BadFileName",
    "ChecksumMismatch",
    "ComponentState",
    "DigitizationIncomplete",
    "DocumentActionNotAllowed",
    "DocumentMeta",
    "DocumentNotFound",
    "DocumentRefused",
    "DocumentTooLarge",
    "Download",
    "ReceiptCheck",
    "ReuseOffer",
    "SweepResult",
    "UnsupportedDocumentType",
    "UploadLimits",
    "component_states",
    "count_pages",
    "delete_document",
    "download_document",
    "ensure_receipt_allowed",
    "exempt_component",
    "link_reused",
    "list_documents",
    "object_key",
    "receipt_check",
    "reuse_offers",
    "states_of",
    "sweep_orphans",
    "upload_document",
]
