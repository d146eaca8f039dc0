# ruff: noqa: F811  (pytest fixtures imported from test_documents)
"""Crashes during an upload: a process is killed (SIGKILL) in the middle of it.

Whatever the moment, there is never a row without its object; an object left without a row is
removed by the sweeper once its grace period is over."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from services.accounts import Identity, issue_token
from services.clock import TZ, FixedClock
from services.context import Context
from services.documents import sweep_orphans
from storage.objects import LocalStore, MinioStore, ObjectStore
from tests.integration.test_documents import (  # noqa: F401 - fixtures and helpers
    CENTRE,
    all_objects,
    new_dossier,
    png_bytes,
    rows,
    s3_endpoint,
    session_bucket,
    upload,
)
from tests.integration.test_objects_conformance import S3Endpoint, free_port

GRACE = timedelta(hours=1)


def database_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def assert_every_row_has_its_object(ctx: Context, store: ObjectStore) -> None:
    for row in rows(ctx):
        if row.deleted_at is None:
            assert store.exists(row.object_key), row.object_key


def test_server_killed_mid_upload_leaves_no_row_and_nothing_after_the_sweep(
    pg_ctx: Context, clock: FixedClock, s3_endpoint: S3Endpoint, tmp_path: Path
) -> None:
    ctx = pg_ctx  # PostgreSQL, the production database (subprocesses share it)
    clock.set(datetime.now(TZ))
    bucket = f"motcua-crash-{uuid.uuid4().hex[:8]}"
    store = s3_endpoint.store(bucket)
    dossier = new_dossier(ctx)
    kept = upload(ctx, store, dossier.code, png_bytes(), "request_form")
    secret = "crash-secret"
    port = free_port()
    env = {
        **os.environ,
        "MOTCUA_DATA_DIR": str(tmp_path),
        "MOTCUA_DATABASE_URL": database_url(ctx.engine),
        "MOTCUA_OBJECT_STORE": "minio",
        "MOTCUA_MINIO_ENDPOINT": s3_endpoint.endpoint,
        "MOTCUA_MINIO_ACCESS_KEY": s3_endpoint.access_key,
        "MOTCUA_MINIO_SECRET_KEY": s3_endpoint.secret_key,
        "MOTCUA_MINIO_BUCKET": bucket,
        "MOTCUA_SECRET_KEY": secret,
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "no API server"
                time.sleep(0.1)
        token = issue_token(
            Identity("soha1", "Số hóa", "digitizer", CENTRE), secret, datetime.now(TZ)
        )
        total = 40 * 1024 * 1024
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.putrequest("POST", f"/api/v1/dossiers/{dossier.code}/documents/applicant_id")
        conn.putheader("Authorization", f"Bearer {token}")
        conn.putheader("Content-Length", str(total))
        conn.endheaders()
        block = b"%PDF-1.7\n" + os.urandom(1024 * 1024 - 9)
        conn.send(block)
        for _ in range(24):  # 25 MiB of 40 sent: several 5 MiB parts are already on the server
            conn.send(os.urandom(1024 * 1024))
        time.sleep(1.0)
        server.send_signal(signal.SIGKILL)
        assert server.wait(10) == -signal.SIGKILL
        conn.close()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)

    assert [r.id for r in rows(ctx)] == [kept.id]  # no row for the interrupted upload
    assert_every_row_has_its_object(ctx, store)
    clock.advance(GRACE + timedelta(minutes=1))
    sweep_orphans(ctx, store, grace=GRACE)
    assert all_objects(store) == [kept.object_key]  # no object without a row


CRASH_SCRIPT = textwrap.dedent(
    """
    import io, os, signal, sys
    from pathlib import Path
    from services import documents
    from services.context import Context
    from states.lifecycle import Actor
    from storage.db import make_engine
    from storage.objects import LocalStore, MinioStore

    url, kind, where, code = sys.argv[1:5]
    if kind == "local":
        store = LocalStore(Path(where))
    else:
        endpoint, bucket = where.split("|")
        store = MinioStore.connect(endpoint, "testing", "testing", bucket, region="us-east-1",
                                   moto_quirks=True)

    def crash(*args, **kwargs):  # the object is stored and verified; the row is not written yet
        os.kill(os.getpid(), signal.SIGKILL)

    documents.count_pages = crash
    data = sys.stdin.buffer.read()
    documents.upload_document(
        Context(engine=make_engine(url)), store, Actor("soha1", "digitizer", "000.00.01.H37"),
        code, "applicant_id", io.BytesIO(data), length=len(data),
    )
    """
)


@pytest.mark.parametrize("kind", ["local", "minio"])
def test_killed_between_object_and_row_the_sweeper_removes_the_orphan(
    pg_ctx: Context, clock: FixedClock, s3_endpoint: S3Endpoint, tmp_path: Path, kind: str
) -> None:
    ctx = pg_ctx  # PostgreSQL, the production database (subprocesses share it)
    clock.set(datetime.now(TZ))
    if kind == "local":
        store: ObjectStore = LocalStore(tmp_path / "objects")
        where = str(tmp_path / "objects")
    else:
        if not s3_endpoint.is_moto:
            pytest.fail("this crash test drives the moto endpoint's default keys")
        bucket = f"motcua-crash-{uuid.uuid4().hex[:8]}"
        store = s3_endpoint.store(bucket)
        assert isinstance(store, MinioStore)
        where = f"{s3_endpoint.endpoint}|{bucket}"
    dossier = new_dossier(ctx)
    kept = upload(ctx, store, dossier.code, png_bytes(1), "request_form")
    crashed = subprocess.run(
        [sys.executable, "-c", CRASH_SCRIPT, database_url(ctx.engine), kind, where, dossier.code],
        input=png_bytes(2),
        capture_output=True,
        timeout=60,
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr.decode()[-2000:]

    # the crash left an object without a row — never a row without an object
    assert [r.id for r in rows(ctx)] == [kept.id]
    assert_every_row_has_its_object(ctx, store)
    orphans = sorted(set(all_objects(store)) - {kept.object_key})
    assert len(orphans) == 1 and orphans[0].startswith(f"{dossier.code}/applicant_id/")

    early = sweep_orphans(ctx, store, grace=GRACE)  # still inside the grace period: kept
    assert early.removed == [] and len(all_objects(store)) == 2
    clock.advance(GRACE + timedelta(minutes=1))
    swept = sweep_orphans(ctx, store, grace=GRACE)
    assert swept.removed == orphans
    assert all_objects(store) == [kept.object_key]
    assert_every_row_has_its_object(ctx, store)
    if isinstance(store, MinioStore):  # purged: no noncurrent version left behind either
        assert store.versions(orphans[0]) == []
