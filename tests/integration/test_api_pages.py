"""Pages, printable forms (PDF with diacritics and a decodable QR) and the citizen lookup."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
import zxingcpp
from fastapi.testclient import TestClient
from PIL import Image
from pypdf import PdfReader

from api.app import create_app
from services.clock import FixedClock
from services.context import Context
from services.settings import Settings
from tests.integration.test_api import OFFICERS, PASSWORD, new_dossier, password_hash, send, token

BASE = "https://motcua.langson.example"


@pytest.fixture
def client(ctx: Context) -> Iterator[TestClient]:
    from services.directory import create_officer

    for username, name, role, unit in OFFICERS:
        create_officer(ctx, username, name, role, unit, password_hash=password_hash())
    app = create_app(ctx, Settings(secret_key="test-secret", public_base_url=BASE))
    with TestClient(app, client=("127.0.0.1", 50001)) as client:
        yield client


def sign_in_page(client: TestClient, username: str) -> None:
    client.cookies.clear()
    response = client.post(
        "/signin", data={"username": username, "password": PASSWORD}, follow_redirects=False
    )
    assert response.status_code == 303, response.text
    assert "motcua_session" in response.cookies


def test_pages_need_a_session_and_sign_in_works(client: TestClient) -> None:
    assert client.get("/worklist", follow_redirects=False).headers["location"].startswith("/signin")
    bad = client.post("/signin", data={"username": "quay_tt", "password": "sai"})
    assert bad.status_code == 401 and "không đúng" in bad.text
    sign_in_page(client, "quay_tt")
    desk = client.get("/desk", params={"procedure": "MOJ.lltp"})
    assert desk.status_code == 200 and "Tờ khai yêu cầu cấp Phiếu lý lịch tư pháp" in desk.text
    assert "http://" not in desk.text.replace(BASE, "") and "https://" not in desk.text


def test_desk_receives_and_prints_the_receipt_once(client: TestClient) -> None:
    sign_in_page(client, "quay_tt")
    form = {
        "procedure_code": "MOJ.lltp", "name": "Hoàng Thị Ánh", "id_number": "020190005678",
        "phone": "0987000111", "address": "Xã Hữu Lũng", "components": ["request_form",
        "applicant_id"], "action": "receive", "idempotency_key": "k-desk-1",
    }  # fmt: skip
    first = client.post("/desk", data=form, follow_redirects=False)
    assert first.status_code == 303, first.text
    again = client.post("/desk", data=form, follow_redirects=False)  # the double click
    assert again.headers["location"] == first.headers["location"]
    receipt = client.get(first.headers["location"])
    assert receipt.status_code == 200
    assert "GIẤY TIẾP NHẬN HỒ SƠ VÀ HẸN TRẢ KẾT QUẢ" in receipt.text
    assert "Hoàng Thị Ánh" in receipt.text and "Mẫu số 01" in receipt.text
    code = first.headers["location"].split("/")[2]
    assert f'data-url="{BASE}/lookup?code={code}"' in receipt.text
    worklist = client.get("/worklist")
    assert code in worklist.text


def test_receipt_pdf_has_diacritics_and_a_qr_to_the_lookup(client: TestClient) -> None:
    counter = token(client, "quay_tt")
    dossier = new_dossier(client, counter)
    response = client.get(f"/api/v1/dossiers/{dossier['code']}/forms/receipt.pdf", headers=counter)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    reader = PdfReader(io.BytesIO(response.content))
    text = reader.pages[0].extract_text()
    for phrase in (
        "GIẤY TIẾP NHẬN HỒ SƠ VÀ HẸN TRẢ KẾT QUẢ",
        "Hoàng Văn Đức",
        "Phường Đông Kinh",
        "Bản chụp Căn cước công dân",
        "CỘNG HÒA XÃ HỘI CHỦ NGHĨA",
    ):
        assert phrase in text, phrase  # fmt: skip
    fonts = {
        str(f.get_object()["/BaseFont"])
        for f in reader.pages[0]["/Resources"]["/Font"].values()  # type: ignore[index]
    }
    assert any("DejaVuSans" in f for f in fonts)
    images = reader.pages[0].images
    assert images, "the receipt carries a QR image"
    picture = Image.open(io.BytesIO(images[0].data)).convert("L")
    decoded = zxingcpp.read_barcodes(picture)
    assert [b.text for b in decoded] == [f"{BASE}/lookup?code={dossier['code']}"]


def test_forms_02_to_05_render(client: TestClient, ctx: Context) -> None:
    counter = token(client, "quay_tt")
    refused = client.post(
        "/api/v1/dossiers",
        json={"procedure_code": "MOJ.lltp", "applicant": {"name": "Lương Văn Nam"},
              "action": "refuse", "reason": "Không thuộc thẩm quyền giải quyết"},
        headers=counter,
    ).json()  # fmt: skip
    pdf = client.get(f"/api/v1/dossiers/{refused['code']}/forms/refusal.pdf", headers=counter)
    assert (
        "Không thuộc thẩm quyền giải quyết"
        in PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text()
    )
    asked = client.post(
        "/api/v1/dossiers",
        json={"procedure_code": "MOJ.lltp", "applicant": {"name": "Nông Thị Hà"},
              "action": "request_supplement",
              "reason": "Bản chụp CCCD: ảnh mờ, không đọc được số"},
        headers=counter,
    ).json()  # fmt: skip
    html = client.get(f"/dossiers/{asked['code']}/forms/supplement_request", headers=counter)
    assert "Đăng nhập cán bộ" in html.text  # pages use the cookie, not the bearer token
    sign_in_page(client, "quay_tt")
    html = client.get(f"/dossiers/{asked['code']}/forms/supplement_request")
    assert "ảnh mờ, không đọc được số" in html.text and "một lần" in html.text
    assert client.get(f"/dossiers/{asked['code']}/forms/receipt").status_code == 409
    dossier = new_dossier(client, counter)
    leader = token(client, "ld_stp")
    assert isinstance(ctx.clock, FixedClock)
    appointment = (ctx.clock.now() + timedelta(days=30)).isoformat()
    send(client, leader, dossier, "extend", reason="Chờ kết quả xác minh của Công an tỉnh",
         new_appointment=appointment)  # fmt: skip
    apology = client.get(f"/api/v1/dossiers/{dossier['code']}/forms/apology.pdf", headers=leader)
    text = PdfReader(io.BytesIO(apology.content)).pages[0].extract_text()
    assert "Chờ kết quả xác minh của Công an tỉnh" in text and "xin lỗi" in text
    slip = client.get(f"/api/v1/dossiers/{dossier['code']}/forms/control_slip.pdf", headers=leader)
    assert (
        "PHIẾU KIỂM SOÁT QUÁ TRÌNH GIẢI QUYẾT HỒ SƠ"
        in PdfReader(io.BytesIO(slip.content)).pages[0].extract_text()
    )
    book = client.get(
        "/api/v1/tracking-book.pdf",
        params={"from": "2025-03-01", "to": "2025-03-31"},
        headers=counter,
    )
    book_text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(book.content)).pages)
    assert "SỔ THEO DÕI HỒ SƠ" in book_text and dossier["code"] in book_text


def test_lookup_reveals_nothing_with_wrong_digits(client: TestClient) -> None:
    dossier = new_dossier(client, token(client, "quay_tt"))
    code = dossier["code"]
    right = client.get("/api/v1/lookup", params={"code": code, "digits": "1234"})  # ID ends 1234
    assert right.status_code == 200
    assert set(right.json()) == {
        "code", "status", "status_label", "appointment_at", "step_in_progress", "can_rate"
    }  # fmt: skip
    assert right.json()["step_in_progress"].startswith("Tiếp nhận")
    by_phone = client.get("/api/v1/lookup", params={"code": code, "digits": "5678"})
    assert by_phone.status_code == 200
    wrong = client.get("/api/v1/lookup", params={"code": code, "digits": "0000"})
    unknown = client.get("/api/v1/lookup", params={"code": code + "9", "digits": "1234"})
    assert wrong.status_code == unknown.status_code == 404
    strip = {"instance"}
    assert {k: v for k, v in wrong.json().items() if k not in strip} == {
        k: v for k, v in unknown.json().items() if k not in strip
    }
    assert "Hoàng" not in wrong.text and "Hoàng" not in right.text
    page = client.get("/lookup", params={"code": code, "digits": "0000"})
    assert page.status_code == 404 and "Hoàng" not in page.text


def test_lookup_is_rate_limited(client: TestClient) -> None:
    code = new_dossier(client, token(client, "quay_tt"))["code"]
    statuses = [
        client.get("/api/v1/lookup", params={"code": code, "digits": f"{i:04d}"}).status_code
        for i in range(12)
    ]
    assert statuses[:10] == [404] * 10 and statuses[10:] == [429, 429]
    # even the right digits are refused now: brute force gains nothing
    assert client.get("/api/v1/lookup", params={"code": code, "digits": "1234"}).status_code == 429


def test_rating_after_return_once(client: TestClient, ctx: Context) -> None:
    counter = token(client, "quay_tt")
    dossier = new_dossier(client, counter)
    for who, event, extra in [
        ("quay_tt", "forward", {}), ("cv_stp", "forward", {}), ("cv_ca", "forward", {}),
        ("ld_stp", "approve", {"decision_ref": "QĐ-1"}), ("ld_stp", "mark_result_ready", {}),
        ("quay_tt", "return_result", {}),
    ]:  # fmt: skip
        dossier = send(client, token(client, who), dossier, event, **extra)
    code = dossier["code"]
    page = client.get("/lookup", params={"code": code, "digits": "1234"})
    assert "Đánh giá sự hài lòng" in page.text
    data = {"code": code, "digits": "1234", "score": "satisfied", "comment": "Nhanh, chu đáo"}
    assert "Cảm ơn" in client.post("/lookup/rating", data=data).text
    assert "đã được đánh giá" in client.post("/lookup/rating", data=data).text


def test_docs_page_is_offline(client: TestClient) -> None:
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/api/v1/dossiers/{code}/events/{event}" in docs.text
    assert not re.search(r"(src|href)=\"https?://", docs.text)
    spec = client.get("/openapi.json").json()
    responses = spec["paths"]["/api/v1/dossiers/{code}/events/{event}"]["post"]["responses"]
    assert {"200", "401", "403", "404", "409", "412", "422", "428"} <= set(responses)
    assert date.today()  # keep imports honest
