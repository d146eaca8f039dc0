# ruff: noqa: F811  (pytest fixtures imported from test_documents)
"""The documents API through the ASGI app: streamed raw-body upload, refusals as bilingual problem
details, authorization before download, presigned redirect (MinIO) or streamed bytes (local)."""

from __future__ import annotations

import hashlib
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from services.accounts import Identity, issue_token
from services.context import Context
from services.settings import Settings
from storage.objects import MinioStore, ObjectStore
from tests.integration.test_documents import (  # noqa: F401 - fixtures and samples
    CENTRE,
    ELF,
    all_objects,
    new_dossier,
    pdf_bytes,
    png_bytes,
    rows,
    s3_endpoint,
    session_bucket,
    store,
)

SECRET = "test-secret"


def bearer(username: str, role: str, unit: str) -> dict[str, str]:
    token = issue_token(
        Identity(username, username, role, unit), SECRET, datetime.now().astimezone()
    )
    return {"Authorization": f"Bearer {token}"}


DIGITIZER = bearer("soha1", "digitizer", CENTRE)
STRANGER = bearer("xa1", "digitizer", "000.00.05.H37")
ADMIN = bearer("quantri", "admin", "000.00.00.H37")


@pytest.fixture
def client(ctx: Context, store: ObjectStore, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(secret_key=SECRET, data_dir=tmp_path, document_max_file_mib=1)
    app = create_app(ctx, settings)
    app.state.object_store = store
    with TestClient(app, follow_redirects=False) as client:
        yield client


def url(code: str, component: str = "applicant_id", **query: str) -> str:
    q = "&".join(f"{k}={v}" for k, v in query.items())
    return f"/api/v1/dossiers/{code}/documents/{component}" + (f"?{q}" if q else "")


def chunks(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def test_streamed_upload_list_states_and_download(
    ctx: Context, store: ObjectStore, client: TestClient
) -> None:
    dossier = new_dossier(ctx)
    data = pdf_bytes(3)
    digest = hashlib.sha256(data).hexdigest()
    response = client.post(
        url(dossier.code, sha256=digest, file_name="cccd.pdf", doc_type_code="CCCD"),
        content=chunks(data, 1000),  # chunked transfer, no Content-Length
        headers=DIGITIZER,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["sha256"], body["size"], body["page_count"]) == (digest, len(data), 3)
    assert body["content_type"] == "application/pdf" and "object_key" not in body

    listed = client.get(f"/api/v1/dossiers/{dossier.code}/documents", headers=DIGITIZER).json()
    assert [d["id"] for d in listed] == [body["id"]]
    states = client.get(f"/api/v1/dossiers/{dossier.code}/digitization", headers=DIGITIZER)
    assert {c["component"]: c["status"] for c in states.json()["components"]} == {
        "request_form": "not_digitized",
        "applicant_id": "digitized",
    }

    content = f"/api/v1/documents/{body['id']}/content"
    assert client.get(content).status_code == 401
    assert client.get(content, headers=STRANGER).status_code == 403
    got = client.get(content, headers=DIGITIZER)
    if isinstance(store, MinioStore):
        assert got.status_code == 307
        with urllib.request.urlopen(got.headers["location"], timeout=10) as response:
            assert response.read() == data
    else:
        assert got.status_code == 200 and got.content == data
        assert got.headers["content-type"] == "application/pdf"


REFUSALS = [
    ("exe", 415, "document_type_refused"),
    ("checksum", 422, "checksum_mismatch"),
    ("oversize", 413, "document_too_large"),
    ("oversize-chunked", 413, "document_too_large"),
    ("dotdot", 422, "bad_file_name"),
    ("stranger", 403, "outside_your_agency"),
    ("anonymous", 401, "not_authenticated"),
]


def test_refusals_are_clear_and_store_nothing(
    ctx: Context, store: ObjectStore, client: TestClient
) -> None:
    dossier = new_dossier(ctx)
    data = pdf_bytes(1)
    for case, status, code in REFUSALS:
        query: dict[str, str] = {}
        headers = DIGITIZER
        content: bytes | Iterator[bytes] = data
        if case == "exe":
            content, query["file_name"] = ELF, "don-de-nghi.pdf"
        elif case == "checksum":
            query["sha256"] = hashlib.sha256(b"not these bytes").hexdigest()
        elif case == "oversize":
            content = b"%PDF-1.4\n" + b"0" * (2 * 1024 * 1024)  # limit is 1 MiB
        elif case == "oversize-chunked":
            content = chunks(b"%PDF-1.4\n" + b"0" * (2 * 1024 * 1024))
        elif case == "dotdot":
            query["file_name"] = "..%2F..%2Fetc%2Fpasswd.pdf"
        elif case == "stranger":
            headers = STRANGER
        elif case == "anonymous":
            headers = {}
        response = client.post(url(dossier.code, **query), content=content, headers=headers)
        assert response.status_code == status, (case, response.text)
        problem = response.json()
        assert problem["code"] == code, case
        assert problem["detail"] and problem["detail_en"], case
        assert problem["detail"] != problem["detail_en"], case
        assert all_objects(store) == [], case
        assert rows(ctx) == [], case


def test_admin_deletion_and_reuse_over_http(
    ctx: Context, store: ObjectStore, client: TestClient
) -> None:
    first = new_dossier(ctx)
    up = client.post(url(first.code, valid_to="2030-01-01"), content=png_bytes(), headers=DIGITIZER)
    assert up.status_code == 201, up.text
    second = new_dossier(ctx, then=None)
    offers = client.get(
        "/api/v1/reuse-offers",
        params={"id_number": first.applicant_id_number, "procedure_code": "MOJ.lltp",
                "exclude_dossier": second.code},
        headers=DIGITIZER,
    ).json()  # fmt: skip
    assert [o["document_id"] for o in offers] == [up.json()["id"]]
    linked = client.post(
        f"{url(second.code)}/reuse", json={"document_id": up.json()["id"]}, headers=DIGITIZER
    )
    assert linked.status_code == 201 and linked.json()["reused_from_id"] == up.json()["id"]

    doc_url = f"/api/v1/documents/{up.json()['id']}"
    refused = client.request("DELETE", doc_url, json={"reason": "tải nhầm"}, headers=DIGITIZER)
    assert refused.status_code == 403
    deleted = client.request(
        "DELETE", doc_url, json={"reason": "Tải nhầm hồ sơ"}, headers=ADMIN
    ).json()
    assert (deleted["deleted_by"], deleted["deletion_reason"]) == ("quantri", "Tải nhầm hồ sơ")
    assert len(all_objects(store)) == 1  # still referenced by the reuse link


def test_openapi_documents_the_upload(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    post = spec["paths"]["/api/v1/dossiers/{code}/documents/{component}"]["post"]
    assert "application/pdf" in post["requestBody"]["content"]
    assert "/api/v1/documents/{document_id}/content" in spec["paths"]


def test_digitization_page_offers_drop_zones_preview_and_history(
    ctx: Context, client: TestClient
) -> None:
    from api.auth import SESSION_COOKIE

    dossier = new_dossier(ctx)
    up = client.post(url(dossier.code), content=png_bytes(), headers=DIGITIZER)
    assert up.status_code == 201
    page = f"/dossiers/{dossier.code}/documents"
    assert client.get(page).status_code == 303  # sign in first
    client.cookies.set(SESSION_COOKIE, DIGITIZER["Authorization"].removeprefix("Bearer "))
    html = client.get(page)
    assert html.status_code == 200, html.text
    text = html.text
    assert 'class="dropzone" data-component="request_form"' in text
    assert 'data-component="applicant_id" data-rescan="1"' in text  # a rescan asks a reason
    assert f'src="/api/v1/documents/{up.json()["id"]}/content"' in text  # preview
    assert "Chưa số hóa" in text and "Đã số hóa" in text
    assert "/static/documents/upload.js" in text
    assert client.get("/static/documents/upload.js").status_code == 200
    client.cookies.set(SESSION_COOKIE, STRANGER["Authorization"].removeprefix("Bearer "))
    assert client.get(page).status_code == 403


def test_citizen_lookup_never_exposes_documents(ctx: Context, client: TestClient) -> None:
    dossier = new_dossier(ctx)  # applicant ID number ends in 1234
    up = client.post(url(dossier.code), content=png_bytes(), headers=DIGITIZER)
    assert up.status_code == 201
    found = client.get("/api/v1/lookup", params={"code": dossier.code, "digits": "1234"})
    assert found.status_code == 200, found.text
    text = found.text
    assert up.json()["sha256"] not in text and "/documents" not in text
    assert "document" not in text.lower()
    # and a citizen without a session cannot fetch the bytes
    assert client.get(f"/api/v1/documents/{up.json()['id']}/content").status_code == 401
