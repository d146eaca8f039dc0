"""One conformance suite for every ObjectStore: a local folder, and MinIO through the minio SDK.

For MinIO the suite starts a real S3 server process on loopback (moto's server mode: MinIO's own
server is not installable here) and talks to it only through the ``minio`` SDK. Point it at a
real MinIO with ``MOTCUA_TEST_S3_ENDPOINT`` (host:port), ``MOTCUA_TEST_S3_ACCESS_KEY``,
``MOTCUA_TEST_S3_SECRET_KEY``, ``MOTCUA_TEST_S3_SECURE`` (1/0) and ``MOTCUA_TEST_S3_BUCKET``.
"""

from __future__ import annotations

import hashlib
import io
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage.objects import (
    LocalStore,
    MinioStore,
    ObjectExists,
    ObjectLocked,
    ObjectMissing,
    ObjectStore,
)


@dataclass(frozen=True)
class S3Endpoint:
    endpoint: str
    access_key: str
    secret_key: str
    secure: bool
    region: str
    is_moto: bool
    process: subprocess.Popen[bytes] | None = None

    def store(self, bucket: str, **options: object) -> MinioStore:
        store = MinioStore.connect(
            self.endpoint,
            self.access_key,
            self.secret_key,
            bucket,
            secure=self.secure,
            region=self.region,
            moto_quirks=self.is_moto,
            **options,  # type: ignore[arg-type]
        )
        store.ensure_bucket()
        return store


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_moto_server(port: int | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """A moto S3 server process on loopback; fails loudly if it does not come up."""
    port = port or free_port()
    server = Path(sys.executable).parent / "moto_server"
    process = subprocess.Popen(
        [str(server), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).close()
            return process, f"127.0.0.1:{port}"
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(0.1)
    process.kill()
    pytest.fail(f"moto S3 server did not start on port {port}")


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[S3Endpoint]:
    endpoint = os.environ.get("MOTCUA_TEST_S3_ENDPOINT")
    if endpoint:
        yield S3Endpoint(
            endpoint=endpoint,
            access_key=os.environ.get("MOTCUA_TEST_S3_ACCESS_KEY", "minioadmin"),
            secret_key=os.environ.get("MOTCUA_TEST_S3_SECRET_KEY", "minioadmin"),
            secure=os.environ.get("MOTCUA_TEST_S3_SECURE", "0") == "1",
            region=os.environ.get("MOTCUA_TEST_S3_REGION", "us-east-1"),
            is_moto=False,
        )
        return
    process, endpoint = start_moto_server()
    try:
        yield S3Endpoint(endpoint, "testing", "testing", False, "us-east-1", True, process)
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture(scope="session")
def session_bucket() -> str:
    """One bucket per session (tests use a random prefix)."""
    return os.environ.get("MOTCUA_TEST_S3_BUCKET", f"motcua-test-{uuid.uuid4().hex[:8]}")


@pytest.fixture(params=["local", "minio"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, s3_endpoint: S3Endpoint, session_bucket: str
) -> ObjectStore:
    if request.param == "local":
        return LocalStore(tmp_path / "objects")
    return s3_endpoint.store(session_bucket, part_size=5 * 1024 * 1024)


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


class Trickle(io.RawIOBase):
    """A stream of ``size`` pseudo-random bytes produced on demand (never whole in memory)."""

    def __init__(self, size: int, seed: int = 7, fail_at: int | None = None) -> None:
        self.size, self.pos, self.fail_at = size, 0, fail_at
        self.block = hashlib.sha256(str(seed).encode()).digest() * 2048  # 64 KiB
        self.sha = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self.size - self.pos if n < 0 else min(n, self.size - self.pos)
        if self.fail_at is not None and self.pos + n > self.fail_at:
            raise ConnectionResetError("client went away")
        out = bytearray()
        while len(out) < n:
            offset = (self.pos + len(out)) % len(self.block)
            out += self.block[offset : offset + n - len(out)]
        self.pos += n
        data = bytes(out)
        self.sha.update(data)
        return data


def read_all(store: ObjectStore, key: str) -> bytes:
    return b"".join(store.open(key))


def test_put_get_stat_roundtrip(store: ObjectStore, prefix: str) -> None:
    key = f"{prefix}/a/one.bin"
    result = store.put(
        key, io.BytesIO(b"%PDF-1.4 hello"), length=14, content_type="application/pdf"
    )
    assert result.size == 14
    assert read_all(store, key) == b"%PDF-1.4 hello"
    info = store.stat(key)
    assert (info.key, info.size, info.content_type) == (key, 14, "application/pdf")
    assert info.last_modified.tzinfo is not None
    assert abs(info.last_modified - datetime.now(UTC)) < timedelta(minutes=5)
    assert store.exists(key)


def test_unknown_length_goes_multipart_and_streams_back(store: ObjectStore, prefix: str) -> None:
    key = f"{prefix}/big.bin"
    source = Trickle(12 * 1024 * 1024 + 123)  # > 2 parts of 5 MiB
    result = store.put(key, source, length=-1)  # type: ignore[arg-type]
    assert result.size == source.size == store.stat(key).size
    sha = hashlib.sha256()
    chunks = 0
    for chunk in store.open(key):
        sha.update(chunk)
        chunks += 1
    assert sha.hexdigest() == source.sha.hexdigest()
    assert chunks > 1  # streamed, not one blob


def test_known_length_streams_and_a_short_or_failing_stream_stores_nothing(
    store: ObjectStore, prefix: str
) -> None:
    size = 9 * 1024 * 1024 + 7
    source = Trickle(size, seed=3)
    assert store.put(f"{prefix}/known", source, length=size).size == size  # type: ignore[arg-type]
    assert hashlib.sha256(read_all(store, f"{prefix}/known")).hexdigest() == source.sha.hexdigest()
    with pytest.raises(ConnectionResetError):
        store.put(f"{prefix}/cut", Trickle(size, fail_at=4 * 1024 * 1024), length=size)  # type: ignore[arg-type]
    with pytest.raises(OSError):
        store.put(f"{prefix}/short", io.BytesIO(b"only this"), length=100)
    assert [o.key for o in store.list(prefix)] == [f"{prefix}/known"]


def test_objects_are_never_overwritten(store: ObjectStore, prefix: str) -> None:
    key = f"{prefix}/k"
    store.put(key, io.BytesIO(b"first"), length=5)
    with pytest.raises(ObjectExists):
        store.put(key, io.BytesIO(b"second"), length=6)
    assert read_all(store, key) == b"first"


def test_a_failing_stream_stores_nothing(store: ObjectStore, prefix: str) -> None:
    key = f"{prefix}/broken"
    with pytest.raises(ConnectionResetError):
        store.put(key, Trickle(11 * 1024 * 1024, fail_at=7 * 1024 * 1024), length=-1)  # type: ignore[arg-type]
    assert not store.exists(key)
    assert list(store.list(prefix)) == []


def test_missing_objects(store: ObjectStore, prefix: str) -> None:
    key = f"{prefix}/nothing"
    assert not store.exists(key)
    with pytest.raises(ObjectMissing):
        store.stat(key)
    with pytest.raises(ObjectMissing):
        read_all(store, key)


def test_list_by_prefix_in_key_order(store: ObjectStore, prefix: str) -> None:
    for key in ("b/2", "a/1", "b/1", "c"):
        store.put(f"{prefix}/{key}", io.BytesIO(key.encode()), length=len(key))
    store.put(f"{prefix}x/other", io.BytesIO(b"x"), length=1)
    assert [o.key for o in store.list(f"{prefix}/b/")] == [f"{prefix}/b/1", f"{prefix}/b/2"]
    listed = list(store.list(f"{prefix}/"))
    assert [o.key for o in listed] == [f"{prefix}/{k}" for k in ("a/1", "b/1", "b/2", "c")]
    assert [o.size for o in listed] == [3, 3, 3, 1]


def test_copy_and_delete(store: ObjectStore, prefix: str) -> None:
    store.put(f"{prefix}/src", io.BytesIO(b"data"), length=4, content_type="image/png")
    store.copy(f"{prefix}/src", f"{prefix}/dst")
    assert read_all(store, f"{prefix}/dst") == b"data"
    with pytest.raises(ObjectExists):
        store.copy(f"{prefix}/src", f"{prefix}/dst")
    store.delete(f"{prefix}/src", purge=True)
    assert not store.exists(f"{prefix}/src")
    assert [o.key for o in store.list(prefix)] == [f"{prefix}/dst"]
    store.delete(f"{prefix}/never-was")  # deleting nothing is not an error


@pytest.mark.parametrize("key", ["../x", "/abs", "a/../b", "a//b", "a\\b", ""])
def test_path_like_keys_are_refused(store: ObjectStore, key: str) -> None:
    with pytest.raises(ValueError):
        store.put(key, io.BytesIO(b"x"), length=1)


def test_presigned_get_serves_the_bytes(store: ObjectStore, prefix: str) -> None:
    key = f"{prefix}/p.pdf"
    store.put(key, io.BytesIO(b"%PDF-1.7 x"), length=10)
    url = store.presigned_get(key, expires=timedelta(minutes=2), filename="p.pdf")
    if store.kind == "local":
        assert url is None  # local downloads are streamed by the API instead
        return
    assert url is not None
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b"%PDF-1.7 x"


def test_minio_bucket_is_versioned_and_delete_keeps_the_bytes(
    s3_endpoint: S3Endpoint, session_bucket: str, prefix: str
) -> None:
    store = s3_endpoint.store(session_bucket)
    assert store.client.get_bucket_versioning(session_bucket).status == "Enabled"
    key = f"{prefix}/kept"
    first = store.put(key, io.BytesIO(b"v1"), length=2)
    store.delete(key)  # a delete marker: gone from view, bytes kept as a noncurrent version
    assert not store.exists(key)
    assert [v.version_id for v in store.versions(key)] == [first.version_id]
    assert b"".join(store.open(key, version_id=first.version_id)) == b"v1"
    store.delete(key, purge=True)
    assert store.versions(key) == []


def test_minio_object_lock_retention(s3_endpoint: S3Endpoint, prefix: str) -> None:
    """Retention on an object-lock bucket: a locked version cannot be removed."""
    store = s3_endpoint.store(f"motcua-lock-{uuid.uuid4().hex[:8]}", object_lock=True)
    key = f"{prefix}/locked"
    put = store.put(key, io.BytesIO(b"keep me"), length=7)
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    assert store.protect(key, version_id=put.version_id, until=until)
    with pytest.raises(ObjectLocked):
        store.delete(key, version_id=put.version_id)
    assert b"".join(store.open(key, version_id=put.version_id)) == b"keep me"
