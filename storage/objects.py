"""Object store: one protocol, two implementations.

``MinioStore`` talks to MinIO (or any S3 endpoint) through the ``minio`` SDK; ``LocalStore`` keeps
objects in a folder (the embedded default). Bytes are streamed, never held whole in memory:
``put`` reads from a file-like object (multipart for large or unknown lengths), ``open`` yields
chunks. Objects are never overwritten: ``put`` on an existing key raises ``ObjectExists``.

Nothing here reads settings: ``api/deps.py`` builds the store from them.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, Protocol, runtime_checkable

CHUNK = 1024 * 1024
DEFAULT_PART_SIZE = 8 * 1024 * 1024  # S3 minimum is 5 MiB; bounds the memory of a put
SINGLE_PUT_MAX = 5 * 1024**3  # S3's largest single PUT
STREAM_CHUNK = 256 * 1024  # reads of a streamed PUT: the memory an upload holds in flight


class Readable(Protocol):
    """Anything with ``read(size)`` returning bytes (a file, a request body pipe)."""

    def read(self, size: int = -1, /) -> bytes: ...


class ObjectMissing(KeyError):
    """No object under that key."""


class ObjectExists(Exception):
    """An object already exists under that key: objects are never overwritten."""


class ObjectLocked(Exception):
    """The endpoint refused to delete a version under retention (object lock)."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    last_modified: datetime  # aware, UTC
    etag: str = ""
    content_type: str = "application/octet-stream"
    version_id: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PutResult:
    key: str
    size: int
    etag: str = ""
    version_id: str | None = None


@runtime_checkable
class ObjectStore(Protocol):
    """What the services need from an object store."""

    kind: str

    def put(
        self,
        key: str,
        data: Readable,
        *,
        length: int = -1,
        content_type: str = "application/octet-stream",
        metadata: Mapping[str, str] | None = None,
    ) -> PutResult:
        """Store ``data`` under a new ``key`` (``length=-1``: unknown, multipart).

        If ``data.read`` raises, nothing is stored and the exception propagates."""
        ...

    def open(self, key: str, *, version_id: str | None = None) -> Iterator[bytes]:
        """The object's bytes as a stream of chunks (a generator: close it if not exhausted)."""
        ...

    def stat(self, key: str) -> ObjectInfo: ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Current objects whose key starts with ``prefix``, in key order."""
        ...

    def copy(self, source: str, key: str) -> PutResult:
        """Server-side copy to a new key (never overwrites)."""
        ...

    def delete(self, key: str, *, version_id: str | None = None, purge: bool = False) -> None:
        """Remove ``key``. On a versioned bucket a plain delete leaves a delete marker (the
        bytes stay as a noncurrent version); ``version_id`` removes that version; ``purge``
        removes every version (used for objects that never had a database row)."""
        ...

    def presigned_get(
        self, key: str, *, expires: timedelta, filename: str | None = None
    ) -> str | None:
        """A short-lived download URL, or ``None`` when the store cannot make one."""
        ...

    def protect(self, key: str, *, version_id: str | None, until: datetime | None) -> bool:
        """Retention (object lock) on a stored version where the endpoint supports it."""
        ...


def check_key(key: str) -> str:
    """Keys are made by the server, but a store still refuses anything path-like."""
    parts = key.split("/")
    if (
        not key
        or key.startswith("/")
        or "\\" in key
        or "\x00" in key
        or any(p in ("", ".", "..") for p in parts)
    ):
        raise ValueError(f"invalid object key {key!r}")
    return key


# ---------------------------------------------------------------------------------------- local


class LocalStore:
    """Objects as files under ``root`` (``<data dir>/objects``); sidecar metadata in ``.meta``.

    Writes go to ``.tmp`` and are linked into place with ``os.link``, which fails if the target
    exists: a put is atomic and never overwrites. No versions: ``delete`` removes the file."""

    kind = "local"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        (self.root / ".tmp").mkdir(parents=True, exist_ok=True)
        (self.root / ".meta").mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _meta_path(self, key: str) -> Path:
        return self.root / ".meta" / (check_key(key) + ".json")

    def put(
        self,
        key: str,
        data: Readable,
        *,
        length: int = -1,
        content_type: str = "application/octet-stream",
        metadata: Mapping[str, str] | None = None,
    ) -> PutResult:
        target = self._path(key)
        if target.exists():
            raise ObjectExists(key)
        tmp = self.root / ".tmp" / uuid.uuid4().hex
        size = 0
        try:
            with open(tmp, "wb") as out:
                while True:
                    chunk = data.read(CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            if length >= 0 and size != length:
                raise OSError(f"stream gave {size} bytes, {length} announced")
            meta = self._meta_path(key)
            meta.parent.mkdir(parents=True, exist_ok=True)
            meta.write_text(
                json.dumps({"content_type": content_type, "metadata": dict(metadata or {})})
            )
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(tmp, target)
            except FileExistsError:
                raise ObjectExists(key) from None
        finally:
            tmp.unlink(missing_ok=True)
        return PutResult(key=key, size=size, etag="")

    def open(self, key: str, *, version_id: str | None = None) -> Iterator[bytes]:
        path = self._path(key)
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed by the generator
        except FileNotFoundError:
            raise ObjectMissing(key) from None
        return _file_chunks(handle)

    def stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        try:
            st = path.stat()
        except FileNotFoundError:
            raise ObjectMissing(key) from None
        meta: dict[str, Any] = {}
        with contextlib.suppress(FileNotFoundError, ValueError):
            meta = json.loads(self._meta_path(key).read_text())
        return ObjectInfo(
            key=key,
            size=st.st_size,
            last_modified=datetime.fromtimestamp(st.st_mtime, UTC),
            content_type=meta.get("content_type", "application/octet-stream"),
            metadata=meta.get("metadata", {}),
        )

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        found: list[str] = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            rel = os.path.relpath(dirpath, self.root)
            if rel == ".":
                dirnames[:] = [d for d in dirnames if d not in (".tmp", ".meta")]
                rel = ""
            for name in filenames:
                key = f"{rel}/{name}" if rel else name
                if key.startswith(prefix):
                    found.append(key.replace(os.sep, "/"))
        for key in sorted(found):
            with contextlib.suppress(ObjectMissing):
                yield self.stat(key)

    def copy(self, source: str, key: str) -> PutResult:
        info = self.stat(source)
        chunks = self.open(source)
        try:
            return self.put(
                key,
                _IterReader(chunks),
                length=info.size,
                content_type=info.content_type,
                metadata=info.metadata,
            )
        finally:
            chunks.close()  # type: ignore[attr-defined]

    def delete(self, key: str, *, version_id: str | None = None, purge: bool = False) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        self._meta_path(key).unlink(missing_ok=True)
        # tidy empty folders up to the root
        parent = path.parent
        while parent != self.root:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def presigned_get(
        self, key: str, *, expires: timedelta, filename: str | None = None
    ) -> str | None:
        return None

    def protect(self, key: str, *, version_id: str | None, until: datetime | None) -> bool:
        return False


def _file_chunks(handle: BinaryIO) -> Iterator[bytes]:
    with handle:
        while True:
            chunk = handle.read(CHUNK)
            if not chunk:
                return
            yield chunk


class _IterReader:
    """A file-like ``read`` over an iterator of chunks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            try:
                self._buffer += next(self._chunks)
            except StopIteration:
                break
        if size < 0:
            out, self._buffer = self._buffer, b""
        else:
            out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out


# ---------------------------------------------------------------------------------------- minio


class MinioStore:
    """MinIO or any S3 endpoint through the ``minio`` SDK.

    ``ensure_bucket`` creates the bucket with versioning on (and object lock when asked, which
    S3 only allows at creation) and a lifecycle rule that aborts multipart uploads left behind
    by a crash. ``moto_quirks`` turns on workarounds needed only by moto's server (the test
    endpoint): they are marked ``moto-only`` below and off for MinIO."""

    kind = "minio"

    def __init__(
        self,
        client: Any,
        bucket: str,
        *,
        part_size: int = DEFAULT_PART_SIZE,
        parallel_uploads: int = 2,
        object_lock: bool = False,
        moto_quirks: bool = False,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.part_size = part_size
        self.parallel_uploads = parallel_uploads
        self.object_lock = object_lock
        self.moto_quirks = moto_quirks

    @classmethod
    def connect(
        cls,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        *,
        secure: bool = False,
        region: str | None = None,
        **options: Any,
    ) -> MinioStore:
        from minio import Minio

        client = Minio(
            endpoint, access_key=access_key, secret_key=secret_key, secure=secure, region=region
        )
        return cls(client, bucket, **options)

    def ensure_bucket(self) -> None:
        from minio.commonconfig import ENABLED, Filter
        from minio.error import S3Error
        from minio.lifecycleconfig import AbortIncompleteMultipartUpload, LifecycleConfig, Rule
        from minio.versioningconfig import VersioningConfig

        if not self.client.bucket_exists(self.bucket):
            with contextlib.suppress(S3Error):  # created meanwhile by another process
                self.client.make_bucket(self.bucket, object_lock=self.object_lock)
        self.client.set_bucket_versioning(self.bucket, VersioningConfig(ENABLED))
        rule = Rule(
            ENABLED,
            rule_filter=Filter(prefix=""),
            rule_id="abort-incomplete-uploads",
            abort_incomplete_multipart_upload=AbortIncompleteMultipartUpload(1),
        )
        with contextlib.suppress(S3Error):  # not every endpoint keeps lifecycle rules
            self.client.set_bucket_lifecycle(self.bucket, LifecycleConfig([rule]))

    def _metadata(self, metadata: Mapping[str, str] | None) -> dict[str, str]:
        out = {k: v for k, v in (metadata or {}).items()}
        if self.object_lock and self.moto_quirks:
            # moto-only: moto refuses uploads to an object-lock bucket without a checksum header
            out["x-amz-sdk-checksum-algorithm"] = "CRC32"
        return out

    def put(
        self,
        key: str,
        data: Readable,
        *,
        length: int = -1,
        content_type: str = "application/octet-stream",
        metadata: Mapping[str, str] | None = None,
    ) -> PutResult:
        check_key(key)
        if self.exists(key):
            raise ObjectExists(key)
        if 0 <= length <= SINGLE_PUT_MAX and not self.object_lock:
            return self._put_streaming(key, data, length, content_type)
        from minio.helpers import genheaders

        meta: dict[str, Any] | None = self._metadata(metadata) or None
        headers = genheaders(meta, None, None, None, False)
        headers["Content-Type"] = content_type
        buffers = [bytearray(self.part_size) for _ in range(min(2, max(1, self.parallel_uploads)))]
        first = memoryview(buffers[0])
        size = _fill(data, first)
        if size < self.part_size:  # the whole object fits in one part: a single PUT
            if length >= 0 and size != length:
                raise OSError(f"stream gave {size} bytes, {length} announced")
            result = self.client._put_object(self.bucket, key, first[:size], headers)
            return PutResult(key, size, result.etag or "", result.version_id)
        return self._put_multipart(key, data, length, headers, buffers, size)

    def _put_streaming(self, key: str, data: Readable, length: int, content_type: str) -> PutResult:
        """A known length goes as one streamed PUT (up to 5 GiB): the SDK signs a short-lived
        presigned PUT URL (unsigned payload) and the bytes flow through in 1 MiB reads, so the
        memory does not grow with the object. A failing stream ends the request half-way; S3
        keeps nothing of an incomplete PUT."""
        import http.client
        import ssl
        from urllib.parse import urlsplit

        url = urlsplit(self.client.presigned_put_object(self.bucket, key, timedelta(hours=12)))
        if url.scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                url.hostname or "", url.port, timeout=300, context=ssl.create_default_context()
            )
        else:
            conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=300)
        try:
            conn.putrequest("PUT", f"{url.path}?{url.query}", skip_accept_encoding=True)
            conn.putheader("Content-Length", str(length))
            conn.putheader("Content-Type", content_type)
            conn.endheaders()
            sent = 0
            while sent < length:
                chunk = data.read(min(STREAM_CHUNK, length - sent))
                if not chunk:
                    raise OSError(f"stream gave {sent} bytes, {length} announced")
                conn.send(chunk)
                sent += len(chunk)
            if data.read(1):
                raise OSError(f"stream gave more than the {length} bytes announced")
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                raise OSError(f"S3 PUT {key}: {response.status} {body[:300]!r}")
            etag = (response.getheader("ETag") or "").strip('"')
            return PutResult(key, sent, etag, response.getheader("x-amz-version-id"))
        finally:
            conn.close()

    def _put_multipart(
        self,
        key: str,
        data: Readable,
        length: int,
        headers: dict[str, Any],
        buffers: builtins.list[bytearray],
        filled: int,
    ) -> PutResult:
        """Multipart upload from reused part buffers: memory stays at one or two parts however
        large the object (``minio.Minio.put_object`` allocates fresh bytes for every part).

        Uses the SDK's own multipart calls (``_create_multipart_upload``, ``_upload_part``,
        ``_complete_multipart_upload``, ``_abort_multipart_upload``), the ones ``put_object``
        is built on. With two buffers, one part uploads while the next is read."""
        from concurrent.futures import Future, ThreadPoolExecutor

        from minio.datatypes import Part

        client = self.client
        upload_id = client._create_multipart_upload(self.bucket, key, headers)
        parts: builtins.list[Part] = []
        total = 0
        pending: Future[str] | None = None
        pool = ThreadPoolExecutor(1) if len(buffers) > 1 else None
        try:
            number = 0
            while filled:
                number += 1
                view = memoryview(buffers[(number - 1) % len(buffers)])[:filled]
                total += filled
                if pool is None:
                    etag = client._upload_part(self.bucket, key, view, None, upload_id, number)
                    parts.append(Part(number, etag))
                else:
                    if pending is not None:
                        parts.append(Part(number - 1, pending.result()))
                    pending = pool.submit(
                        client._upload_part, self.bucket, key, view, None, upload_id, number
                    )
                filled = _fill(data, memoryview(buffers[number % len(buffers)]))
            if pending is not None:
                parts.append(Part(number, pending.result()))
            if length >= 0 and total != length:
                raise OSError(f"stream gave {total} bytes, {length} announced")
            result = client._complete_multipart_upload(self.bucket, key, upload_id, parts)
        except BaseException:
            if pending is not None:
                with contextlib.suppress(Exception):
                    pending.result()
            with contextlib.suppress(Exception):
                client._abort_multipart_upload(self.bucket, key, upload_id)
            raise
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
        return PutResult(key, total, result.etag or "", result.version_id)

    def open(self, key: str, *, version_id: str | None = None) -> Iterator[bytes]:
        from minio.error import S3Error

        try:
            response = self.client.get_object(self.bucket, check_key(key), version_id=version_id)
        except S3Error as error:
            if _missing(error, self.moto_quirks):
                raise ObjectMissing(key) from None
            raise
        return _response_chunks(response)

    def stat(self, key: str) -> ObjectInfo:
        from minio.error import S3Error

        try:
            obj = self.client.stat_object(self.bucket, check_key(key))
        except S3Error as error:
            if _missing(error, self.moto_quirks):
                raise ObjectMissing(key) from None
            raise
        if obj.is_delete_marker:
            raise ObjectMissing(key)
        meta = {
            k.lower().removeprefix("x-amz-meta-"): v
            for k, v in (obj.metadata or {}).items()
            if k.lower().startswith("x-amz-meta-")
        }
        return ObjectInfo(
            key=key,
            size=int(obj.size or 0),
            last_modified=_aware(obj.last_modified),
            etag=obj.etag or "",
            content_type=obj.content_type or "application/octet-stream",
            version_id=obj.version_id,
            metadata=meta,
        )

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except ObjectMissing:
            return False
        return True

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        for obj in self.client.list_objects(self.bucket, prefix=prefix or None, recursive=True):
            if obj.is_dir or obj.is_delete_marker or obj.object_name is None:
                continue
            yield ObjectInfo(
                key=obj.object_name,
                size=int(obj.size or 0),
                last_modified=_aware(obj.last_modified),
                etag=obj.etag or "",
                version_id=obj.version_id,
            )

    def copy(self, source: str, key: str) -> PutResult:
        from minio.commonconfig import ComposeSource, CopySource

        check_key(key)
        if self.exists(key):
            raise ObjectExists(key)
        info = self.stat(source)
        if info.size <= 5 * 1024**3:
            result = self.client.copy_object(self.bucket, key, CopySource(self.bucket, source))
        else:  # single copy is limited to 5 GiB; compose does a multipart copy
            result = self.client.compose_object(
                self.bucket, key, [ComposeSource(self.bucket, source)]
            )
        return PutResult(
            key=key, size=info.size, etag=result.etag or "", version_id=result.version_id
        )

    def delete(self, key: str, *, version_id: str | None = None, purge: bool = False) -> None:
        from minio.error import S3Error

        check_key(key)
        try:
            if purge:
                versions = [
                    o.version_id
                    for o in self.client.list_objects(
                        self.bucket, prefix=key, recursive=True, include_version=True
                    )
                    if o.object_name == key
                ]
                for vid in versions or [None]:
                    self.client.remove_object(self.bucket, key, version_id=vid)
            else:
                self.client.remove_object(self.bucket, key, version_id=version_id)
        except S3Error as error:
            if error.code in ("AccessDenied", "InvalidRequest") and self.object_lock:
                raise ObjectLocked(key) from error
            if not _missing(error, self.moto_quirks):
                raise

    def versions(self, key: str) -> builtins.list[ObjectInfo]:
        """Every version of ``key`` (newest first), delete markers left out."""
        out = []
        for o in self.client.list_objects(
            self.bucket, prefix=key, recursive=True, include_version=True
        ):
            if o.object_name == key and not o.is_delete_marker:
                out.append(
                    ObjectInfo(
                        key=key,
                        size=int(o.size or 0),
                        last_modified=_aware(o.last_modified),
                        etag=o.etag or "",
                        version_id=o.version_id,
                    )
                )
        return out

    def presigned_get(
        self, key: str, *, expires: timedelta, filename: str | None = None
    ) -> str | None:
        headers = None
        if filename:
            headers = {"response-content-disposition": f'attachment; filename="{filename}"'}
        url: str = self.client.presigned_get_object(
            self.bucket, check_key(key), expires=expires, response_headers=headers
        )
        return url

    def protect(self, key: str, *, version_id: str | None, until: datetime | None) -> bool:
        """Compliance retention until ``until`` on an object-lock bucket; else nothing."""
        if not self.object_lock or until is None:
            return False
        from minio.retention import COMPLIANCE, Retention

        self.client.set_object_retention(
            self.bucket, check_key(key), Retention(COMPLIANCE, until), version_id=version_id
        )
        return True


def _fill(data: Readable, view: memoryview) -> int:
    """Fill ``view`` from ``data`` (reads of at most 1 MiB); the number of bytes read."""
    filled = 0
    size = len(view)
    while filled < size:
        chunk = data.read(min(CHUNK, size - filled))
        if not chunk:
            break
        view[filled : filled + len(chunk)] = chunk
        filled += len(chunk)
    return filled


def _missing(error: Any, moto_quirks: bool = False) -> bool:
    if error.code in ("NoSuchKey", "NoSuchVersion", "NoSuchObject", "ResourceNotFound"):
        return True
    status = getattr(getattr(error, "response", None), "status", None)
    # moto-only: some calls on a missing object answer 500 instead of 404
    return status == 404 or (moto_quirks and status == 500)


def _aware(value: datetime | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _response_chunks(response: Any) -> Iterator[bytes]:
    try:
        yield from response.stream(CHUNK)
    finally:
        response.close()
        response.release_conn()


__all__ = [
    "DEFAULT_PART_SIZE",
    "LocalStore",
    "MinioStore",
    "ObjectExists",
    "ObjectInfo",
    "ObjectLocked",
    "ObjectMissing",
    "ObjectStore",
    "PutResult",
    "check_key",
]
