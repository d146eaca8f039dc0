"""Bad input gets a 4xx problem, never a 5xx, and changes nothing it should not: oversized
bodies and uploads (413), malformed JSON (422), wrong content types (415/422), huge headers
(431/400, against real uvicorn processes), NUL characters (400), and SQL-injection and
path-traversal strings in every string field of the main POST bodies and in every path and
query parameter of the OpenAPI document, with a row-by-row fingerprint of the whole database
before and after each request — on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, inspect

from api.app import create_app
from services.accounts import Identity, issue_token
from services.context import Context
from services.directory import create_officer, hash_password
from services.dossiers import Applicant, DossierIn, submit_dossier
from services.feedback import FeedbackIn, submit_feedback
from services.settings import Settings
from states.lifecycle import Actor

ROOT = Path(__file__).resolve().parents[2]
SECRET = "bad-input-" + "s" * 40
CENTRE = "000.00.01.H37"
POLICE = "000.00.20.H37"
PROVINCE = "000.00.00.H37"
PASSWORD = "mat-khau-thu"

PAYLOADS = [
    "' OR 1=1 --",
    "'; DROP TABLE dossier; --",
    "../../etc/passwd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
]
# one more for the main POST bodies: double quotes (identifiers on SQLite and PostgreSQL)
BODY_PAYLOADS = [*PAYLOADS, '"; DELETE FROM "user"; --']
# tables any request may touch: the sign-in and lookup rate limiter, and the daily metrics
# snapshots a dashboard read computes (a cache of the dossier rows)
RATE_TABLES = {"rate_hit", "metrics_day", "metrics_daily"}
FTS_SHADOW = re.compile(r"_(data|idx|docsize|config|content)$")


def pdf_bytes() -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@functools.cache
def password_hash() -> str:
    return hash_password(PASSWORD)


def bearer(username: str, role: str, unit: str) -> dict[str, str]:
    token = issue_token(
        Identity(username, username, role, unit), SECRET, datetime.now().astimezone()
    )
    return {"Authorization": f"Bearer {token}"}


COUNTER = bearer("quay_tt", "counter", CENTRE)
ADMIN = bearer("quantri_t", "admin", PROVINCE)


# ------------------------------------------------------------------ the database fingerprint


class Fingerprint:
    """Every row of every table, hashed: ``{table: Counter-like {row hash: n}}``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # SQLite full-text shadow tables hold index pages, not data (the index table stays)
        self.tables = sorted(
            t for t in inspect(engine).get_table_names() if not FTS_SHADOW.search(t)
        )

    def take(self) -> dict[str, dict[Any, int]]:
        rows: dict[str, dict[Any, int]] = {t: {} for t in self.tables}
        raw = self.engine.raw_connection()  # the driver's cursor: no ORM cost per row
        try:
            cursor = raw.cursor()
            if self.engine.dialect.name == "postgresql":
                cursor.execute(
                    " UNION ALL ".join(
                        f"SELECT '{t}', md5(x::text) FROM \"{t}\" x" for t in self.tables
                    )
                )
                found = cursor.fetchall()
            else:
                found = []
                for t in self.tables:
                    cursor.execute(f'SELECT * FROM "{t}"')
                    found += [(t, hash(r)) for r in cursor.fetchall()]
            raw.rollback()
        finally:
            raw.close()
        for table, digest in found:
            rows[table][digest] = rows[table].get(digest, 0) + 1
        return rows

    @staticmethod
    def diff(
        before: dict[str, dict[Any, int]], after: dict[str, dict[Any, int]]
    ) -> dict[str, tuple[int, int]]:
        """Per changed table: (rows gone, rows new); an updated row counts once in each."""
        shape: dict[str, tuple[int, int]] = {}
        for table in before.keys() | after.keys():
            old, new = before.get(table), after.get(table)
            if old is None or new is None:
                shape[table] = (-1, -1)  # a table appeared or disappeared
                continue
            gone = sum(max(0, n - new.get(h, 0)) for h, n in old.items())
            added = sum(max(0, n - old.get(h, 0)) for h, n in new.items())
            if gone or added:
                shape[table] = (gone, added)
        return shape


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


# ------------------------------------------------------------------------------- fixtures


@pytest.fixture
def world(ctx: Context, tmp_path: Path) -> Iterator[dict[str, Any]]:
    for username, role, unit in [
        ("quay_tt", "counter", CENTRE),
        ("quantri_t", "admin", PROVINCE),
    ]:
        create_officer(ctx, username, username, role, unit, password_hash=password_hash())
    settings = Settings(
        secret_key=SECRET,
        data_dir=tmp_path / "data",
        object_store="local",
        document_max_file_mib=1,
        request_max_body_kib=64,
        request_max_form_mib=1,
    )
    app = create_app(ctx, settings)
    feedback = submit_feedback(
        ctx, FeedbackIn(author_name="Lý Thị Hoa", subject="Hỏi", text="Thời hạn?")
    )
    with TestClient(app, client=("127.0.0.1", 50000), raise_server_exceptions=False) as client:
        yield {
            "client": client,
            "ctx": ctx,
            "dossier": new_dossier(ctx),
            "feedback": feedback.code,
            "data_dir": settings.data_dir,
            "spec": app.openapi(),
        }


def new_dossier(ctx: Context) -> str:
    dossier = submit_dossier(
        ctx,
        Actor("quay_tt", "counter", CENTRE),
        DossierIn(
            procedure_code="MOJ.lltp",
            receiving_unit=CENTRE,
            applicant=Applicant(name="Hoàng Văn Đức", id_number="020190001234"),
            components=["request_form", "applicant_id"],
        ),
    )
    return dossier.code


def problem_of(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == response.status_code and body["code"] and body["detail_en"]
    return body


# ----------------------------------------------------------------------- sizes and types


def test_oversized_bodies_answer_413_and_store_nothing(world: dict[str, Any]) -> None:
    client: TestClient = world["client"]
    fingerprint = Fingerprint(world["ctx"].engine)
    before = fingerprint.take()
    big = {"author_name": "A", "subject": "S", "text": "x" * 100_000}  # limit 64 KiB here
    # with a Content-Length: refused before the body is read
    answer = client.post("/api/v1/feedback", json=big)
    assert answer.status_code == 413 and problem_of(answer)["code"] == "body_too_large"
    # chunked, no Content-Length: counted while read
    chunks = (b'{"text": "' + b"x" * 70_000, b'", "subject": "S", "author_name": "A"}')
    answer = client.post(
        "/api/v1/dossiers", content=iter(chunks), headers={**COUNTER, "Content-Type": "text/plain"}
    )
    assert answer.status_code == 413 and problem_of(answer)["code"] == "body_too_large"
    answer = client.post(
        "/api/v1/dossiers",
        content=iter(chunks),
        headers={**COUNTER, "Content-Type": "application/json"},
    )
    assert answer.status_code == 413
    # the public feedback form with a too large attachment (multipart limit 1 MiB here)
    answer = client.post(
        "/phan-anh",
        data={"author_name": "A", "subject": "S", "text": "T"},
        files={"attachment": ("a.pdf", b"%PDF-1.7\n" + b"0" * 1_200_000, "application/pdf")},
    )
    assert answer.status_code == 413 and problem_of(answer)["code"] == "body_too_large"
    # a scan larger than document_max_file_mib (1 MiB here), streamed: the upload's own limit
    code = world["dossier"]
    data = pdf_bytes() + b"%" * (1024 * 1024 + 10)
    answer = client.post(
        f"/api/v1/dossiers/{code}/documents/applicant_id",
        content=iter([data[i : i + 65536] for i in range(0, len(data), 65536)]),
        headers={**COUNTER, "Content-Type": "application/pdf"},
    )
    assert answer.status_code == 413 and problem_of(answer)["code"] == "document_too_large"
    assert Fingerprint.diff(before, fingerprint.take()) == {}
    assert files_under(world["data_dir"]) <= {"secret_key"}


def test_malformed_json_and_wrong_content_types_answer_4xx(world: dict[str, Any]) -> None:
    client: TestClient = world["client"]
    fingerprint = Fingerprint(world["ctx"].engine)
    before = fingerprint.take()
    for body in ['{"author_name": "A",', "{'single': 'quotes'}", "[1, 2", "\xff\xfe", "nul"]:
        answer = client.post(
            "/api/v1/feedback", content=body, headers={"Content-Type": "application/json"}
        )
        assert answer.status_code == 422, (body, answer.text)
        assert problem_of(answer)["code"] == "validation_failed"
    valid = json.dumps({"author_name": "A", "subject": "S", "text": "T"})
    for content_type in ["text/plain", "application/xml", "multipart/form-data; boundary=x"]:
        answer = client.post(
            "/api/v1/feedback", content=valid, headers={"Content-Type": content_type}
        )
        assert answer.status_code in (415, 422), (content_type, answer.text)
        problem_of(answer)
    answer = client.post(
        "/api/v1/auth/token",
        data={"username": "quay_tt", "password": PASSWORD},  # a form where JSON is expected
    )
    assert answer.status_code == 422
    # an upload whose bytes are not one of the accepted file types
    code = world["dossier"]
    for content_type, content in [("text/plain", b"hello"), ("application/pdf", b"<html></html>")]:
        answer = client.post(
            f"/api/v1/dossiers/{code}/documents/applicant_id",
            content=content,
            headers={**COUNTER, "Content-Type": content_type},
        )
        assert answer.status_code == 415, answer.text
        problem_of(answer)
    # a JSON NUL escape, a NUL in the query string: refused before any database sees them
    answer = client.post(
        "/api/v1/feedback",
        content='{"author_name": "A\\u0000", "subject": "S", "text": "T"}',
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 400 and problem_of(answer)["code"] == "nul_character"
    answer = client.get("/api/v1/feedback/published?q=a%00b")
    assert answer.status_code == 400 and problem_of(answer)["code"] == "nul_character"
    # an escaped backslash before u0000 is ordinary text, not a NUL
    answer = client.post(
        "/api/v1/feedback",
        content='{"author_name": "A\\\\u0000", "subject": "S", "text": "T"}',
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 201 and answer.json()["subject"] == "S"
    shape = Fingerprint.diff(before, fingerprint.take())
    assert set(shape) == {"feedback_item", "feedback_event", "dossier_sequence"}, shape
    assert shape["feedback_item"] == (0, 1)


def test_missing_payment_gateway_is_a_409_problem(world: dict[str, Any]) -> None:
    answer = world["client"].get(
        "/api/v1/payments/reconciliation?from=2025-03-01&to=2025-03-31", headers=ADMIN
    )
    assert answer.status_code == 409
    assert problem_of(answer)["code"] == "payment_gateway_not_configured"


def test_the_same_portal_feedback_twice_is_one_item(world: dict[str, Any]) -> None:
    client: TestClient = world["client"]
    body = {"author_name": "A", "subject": "S", "text": "T", "channel": "portal",
            "external_ref": "DVCQG-123"}  # fmt: skip
    first = client.post("/api/v1/feedback/intake", json=body, headers=ADMIN)
    again = client.post("/api/v1/feedback/intake", json=body, headers=ADMIN)
    assert (first.status_code, again.status_code) == (201, 201)
    assert first.json()["code"] == again.json()["code"]


def test_out_of_range_document_ids_are_4xx(world: dict[str, Any]) -> None:
    client: TestClient = world["client"]
    for document_id in ["0", "-1", str(2**31), str(2**63), str(10**30), "1e3"]:
        for method, path in [("GET", "/content"), ("DELETE", "")]:
            answer = client.request(
                method, f"/api/v1/documents/{document_id}{path}", headers=ADMIN,
                json={"reason": "Bản quét mờ"},
            )  # fmt: skip
            assert 400 <= answer.status_code < 500, (method, document_id, answer.text)
            problem_of(answer)


# ------------------------------------------------------------- injection and traversal


def string_leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, str):
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from string_leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from string_leaves(item, (*path, index))


def replaced(value: Any, path: tuple[Any, ...], new: str) -> Any:
    out = copy.deepcopy(value)
    target = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new
    return out


# the main POST bodies, valid as they are; the event routes get a fresh dossier each time
DOSSIER_BODY = {
    "procedure_code": "MOJ.lltp",
    "applicant": {"name": "Hoàng Văn Đức", "id_number": "020190001234", "phone": "0912345678",
                  "email": "duc@example.vn", "address": "Phường Đông Kinh, Lạng Sơn"},
    "components": ["request_form", "applicant_id"],
    "request_summary": "Cấp Phiếu lý lịch tư pháp số 1",
    "receiving_unit": CENTRE,
    "external_ref": "HS-DVC-0001",
}  # fmt: skip
FEEDBACK_BODY = {"author_name": "Lý Thị Hoa", "author_contact": "0912000111",
                 "procedure_code": "MOJ.lltp", "subject": "Hỏi thời hạn", "text": "Bao lâu?",
                 "agency_code": CENTRE}  # fmt: skip
BODIES: list[tuple[str, str, dict[str, Any], dict[str, str]]] = [
    ("POST", "/api/v1/auth/token", {"username": "quay_tt", "password": PASSWORD}, {}),
    ("POST", "/api/v1/auth/service-token", {"unit_code": POLICE}, ADMIN),
    ("POST", "/api/v1/dossiers", DOSSIER_BODY, COUNTER),
    ("POST", "/api/v1/dossiers/{dossier}/events/request_supplement",
     {"reason": "Thiếu giấy tờ", "decision_ref": "QĐ-01"}, {**COUNTER, "If-Match": '"1"'}),
    ("POST", "/api/v1/dossiers/{dossier}/fee", {"group": "none"}, COUNTER),
    ("POST", "/api/v1/dossiers/{dossier}/payments/cash", {"receipt_number": "BL-0001"}, COUNTER),
    ("POST", "/api/v1/dossiers/{dossier}/documents/applicant_id/exemption",
     {"reason": "shown_only", "note": "Đã xem bản chính"}, COUNTER),
    ("POST", "/api/v1/feedback", FEEDBACK_BODY, {}),
    ("POST", "/api/v1/feedback/intake",
     {**FEEDBACK_BODY, "channel": "counter", "external_ref": "PAKN-QG-1"}, ADMIN),
    ("POST", "/api/v1/feedback/{feedback}/events/classify",
     {"category": "regulation", "reason": "Rõ", "competent_agency": CENTRE}, ADMIN),
]  # fmt: skip


def baseline_value(name: str, schema: dict[str, Any], path: str, world: dict[str, Any]) -> str:
    if name == "code":
        return str(world["feedback"] if path.startswith("/api/v1/feedback") else world["dossier"])
    known = {"event": "forward", "form": "01", "component": "applicant_id", "document_id": "1",
             "unit_code": POLICE, "gateway": "fakepay", "from": "2025-03-01",
             "to": "2025-03-31", "digits": "1234"}  # fmt: skip
    if name in known:
        return known[name]
    if "enum" in schema:
        return str(schema["enum"][0])
    kind = schema.get("type") or next(
        (s.get("type") for s in schema.get("anyOf", []) if s.get("type") != "null"), "string"
    )
    return {"integer": "1", "boolean": "false", "number": "1"}.get(str(kind), "x")


def parameter_requests(
    world: dict[str, Any],
) -> Iterator[tuple[str, str, str, str, dict[str, str]]]:
    """(method, label, url, field, headers) for every path and query parameter of the API,
    each replaced by each payload, the others at a valid value."""
    spec: dict[str, Any] = world["spec"]
    for template, operations in spec["paths"].items():
        for method, operation in operations.items():
            params = [p for p in operation.get("parameters", []) if p["in"] in ("path", "query")]
            for target in params:
                for payload in PAYLOADS:
                    path = template
                    query: dict[str, str] = {}
                    for p in params:
                        value = (
                            payload
                            if p is target
                            else baseline_value(p["name"], p.get("schema", {}), template, world)
                        )
                        if p["in"] == "path":
                            path = path.replace("{" + p["name"] + "}", quote(value, safe=""))
                        elif p is target or p.get("required"):
                            query[p["name"]] = value
                    url = path + ("?" + urlencode(query) if query else "")
                    headers = COUNTER if "/dossiers" in template else ADMIN
                    yield (
                        method.upper(),
                        f"{method.upper()} {template}",
                        url,
                        target["name"],
                        headers,
                    )


def test_injection_and_traversal_in_every_field_change_nothing(world: dict[str, Any]) -> None:
    client: TestClient = world["client"]
    ctx: Context = world["ctx"]
    fingerprint = Fingerprint(ctx.engine)
    sent = 0

    state = fingerprint.take()

    def fill(template: str) -> str:
        """The URL, with a fresh dossier where the route changes one (its state moves on)."""
        nonlocal state
        if "{dossier}" in template:
            template = template.replace("{dossier}", new_dossier(ctx))
            state = fingerprint.take()
        return template.replace("{feedback}", world["feedback"])

    def changes(before: dict[str, Any]) -> dict[str, tuple[int, int]]:
        nonlocal state
        state = fingerprint.take()
        return {t: s for t, s in Fingerprint.diff(before, state).items() if t not in RATE_TABLES}

    # 1. string fields of the main POST bodies: a valid request first, to learn what it changes
    for method, template, body, headers in BODIES:
        url = fill(template)
        valid = client.request(method, url, json=body, headers=headers)
        assert valid.status_code < 500, valid.text
        expected = changes(state)
        for leaf in string_leaves(body):
            for payload in BODY_PAYLOADS:
                url = fill(template)
                before = state
                sent_body = replaced(body, leaf, payload)
                if "external_ref" in body and leaf != ("external_ref",):
                    sent_body["external_ref"] += f"-{sent}"  # a new one each time
                answer = client.request(method, url, json=sent_body, headers=headers)
                sent += 1
                where = f"{method} {template} {leaf}={payload!r}"
                assert answer.status_code < 500, f"{where}: {answer.text}"
                assert "root:" not in answer.text and "[fonts]" not in answer.text
                shape = changes(before)
                if answer.status_code >= 400:
                    problem_of(answer)
                    assert shape == {}, (where, shape)
                else:
                    assert shape == expected, (where, shape, expected)
                    if leaf[-1] in answer.json():
                        assert answer.json()[leaf[-1]] == payload  # stored as text, verbatim

    # 2. every path and query parameter of the OpenAPI document; reads change nothing, so
    # the fingerprint is taken around all the requests of one GET operation
    pdf = pdf_bytes()
    reading: tuple[str, dict[str, Any]] | None = None  # the GET operation under way

    def end_of_read() -> None:
        if reading is not None:
            label, before = reading
            shape = changes(before)
            assert shape == {}, (label, shape)

    for method, label, url, field, headers in parameter_requests(world):
        upload = "/documents/{component}" in label and method == "POST"
        if reading is None or reading[0] != label:
            end_of_read()
            reading = (label, state) if method == "GET" else None
        before = state
        if upload:
            answer = client.request(method, url, headers=headers, content=pdf)
        elif method == "GET":
            answer = client.request(method, url, headers=headers)
        else:
            answer = client.request(method, url, headers=headers, json={})
        sent += 1
        assert answer.status_code < 500, f"{label} {field}: {answer.text}"
        assert "root:" not in answer.text and "[fonts]" not in answer.text
        if answer.status_code >= 400:
            problem_of(answer)
        if method == "GET":
            continue
        shape = changes(before)
        if answer.status_code < 300 and upload:
            # a stored scan whose metadata holds the payload as text
            assert set(shape) <= {"document", "document_text", "outbox", "dossier"}, shape
        else:
            assert shape == {}, (label, field, answer.status_code, shape)
    end_of_read()
    assert sent > 400
    # nothing was written outside the object store's folder
    assert all(not name.startswith("..") for name in files_under(world["data_dir"]))


# ------------------------------------------------------------- headers on a real server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The app under uvicorn as ``motcua serve --workers`` runs it (app factory, httptools
    parser) and under uvicorn's h11 parser."""
    data = tmp_path_factory.mktemp("serve")
    env = {**os.environ, "MOTCUA_DATA_DIR": str(data), "MOTCUA_SECRET_KEY": SECRET,
           "MOTCUA_EMBEDDED_WORKERS": "false"}  # fmt: skip
    started: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
    for name in ("httptools", "h11"):
        port = _free_port()
        command = [sys.executable, "-m", "uvicorn", "--factory", "api.app:create_app",
                   "--http", name, "--port", str(port), "--log-level", "warning"]  # fmt: skip
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        started[name] = (process, f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 60
        for name, (process, url) in started.items():
            while True:
                assert process.poll() is None, f"{name} exited"
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, f"{name} did not start"
                time.sleep(0.1)
        yield {name: url for name, (_, url) in started.items()}
    finally:
        for process, _ in started.values():
            process.terminate()
        for process, _ in started.values():
            process.wait(10)


def status_for(url: str, headers: dict[str, str]) -> int | None:
    """The status the server answers, over a raw socket; None when it closed or reset the
    connection before a status line could be read (h11 answers 400 and closes after 16 KiB,
    while the client may still be sending: the reset can discard that answer)."""
    host, port = url.removeprefix("http://").split(":")
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = f"GET /api/v1/procedures HTTP/1.1\r\nHost: {host}\r\n{head}\r\n".encode()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        with contextlib.suppress(OSError):  # the server may close while we still send
            sock.sendall(request)
        try:
            first = sock.recv(64)
        except OSError:
            return None
    if not first:
        return None
    assert first.startswith(b"HTTP/1.1 "), first
    return int(first.split()[1])


@pytest.mark.parametrize("server", ["httptools", "h11"])
@pytest.mark.parametrize("size", [40 * 1024, 1024 * 1024])
def test_huge_headers_answer_431_or_400(servers: dict[str, str], server: str, size: int) -> None:
    url = servers[server]
    one_big = status_for(url, {"X-Filler": "a" * size})
    many = status_for(url, {f"X-H{i}": "b" * 100 for i in range(size // 100)})
    for status in (one_big, many):
        if status is None:  # a reset without a status line: only when far past every limit
            assert size >= 1024 * 1024
        else:
            assert status in (400, 431), status
    # 40 KiB: past our limit (32 KiB) and h11's, below nothing else: a status was read
    if size == 40 * 1024:
        assert one_big is not None and many is not None
    # the server is still there and answers a normal request
    assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
