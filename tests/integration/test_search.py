"""Dossier search (``services.search``) on SQLite FTS5 and PostgreSQL full text: by a Vietnamese
word from the OCR text with or without diacritics, by applicant name and code, scoped to what
the officer may see; the page and the header box."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from itertools import count

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text, update

from api.app import create_app
from services.context import Context
from services.directory import create_officer, hash_password
from services.dossiers import Applicant, DossierIn, submit_dossier
from services.search import fold, pg_fold, search_dossiers
from services.settings import Settings
from states.lifecycle import Actor
from storage.models import Dossier
from storage.models_documents import Document
from storage.models_workflows import DocumentText

CENTRE = "000.00.01.H37"
JUSTICE = "000.00.02.H37"
WARD = "000.11.31.H37"  # phường Đông Kinh
PROVINCE = "000.00.00.H37"
COUNTER = Actor("quay_tt", "counter", CENTRE)
WARD_COUNTER = Actor("quay_dk", "counter", WARD)
JUSTICE_SPECIALIST = Actor("cv_stp", "specialist", JUSTICE)
SUPERVISOR = Actor("giamsat_t", "supervisor", PROVINCE)
PASSWORD = "mat-khau-thu"
_versions = count(1)


def lltp(name: str) -> DossierIn:
    return DossierIn(
        procedure_code="MOJ.lltp",
        receiving_unit=CENTRE,
        applicant=Applicant(name=name, id_number="020190001234"),
        components=["request_form", "applicant_id"],
    )


def birth(name: str) -> DossierIn:
    return DossierIn(
        procedure_code="1.001193",
        receiving_unit=WARD,
        applicant=Applicant(name=name),
        components=["birth_registration_form", "birth_certificate", "requester_id"],
    )


def add_text(ctx: Context, dossier: Dossier, body: str, *, deleted: bool = False) -> None:
    """A digitized paper and its OCR text, as the digitization flow writes them."""
    sha = hashlib.sha256(body.encode()).hexdigest()
    assert dossier.id is not None
    with ctx.uow() as uow:
        document = Document(
            dossier_id=dossier.id, component="applicant_id", version=next(_versions),
            object_key=f"{dossier.code}/applicant_id/{sha}", sha256=sha, size=len(body),
            content_type="image/png", uploaded_by="test", uploaded_at=ctx.clock.now(),
            deleted_at=ctx.clock.now() if deleted else None,
        )  # fmt: skip
        uow.session.add(document)
        uow.session.flush()
        assert document.id is not None
        uow.session.add(
            DocumentText(
                document_id=document.id, dossier_id=dossier.id, checksum_ok=True, page_count=1,
                text=body, text_folded=fold(body), processed_at=ctx.clock.now(),
            )
        )  # fmt: skip
        uow.commit()


@pytest.fixture
def dossiers(ctx: Context) -> dict[str, Dossier]:
    duc = submit_dossier(ctx, COUNTER, lltp("Hoàng Văn Đức"))
    mai = submit_dossier(ctx, COUNTER, lltp("Lê Thị Mai"))
    huong = submit_dossier(ctx, WARD_COUNTER, birth("Nguyễn Thị Hương"))
    add_text(
        ctx, duc,
        "GIẤY XÁC NHẬN THÔNG TIN VỀ CƯ TRÚ\nHọ và tên: Hoàng Văn Đức\n"
        "Nơi thường trú: phường Đông Kinh, tỉnh Lạng Sơn\nSố định danh: 020190001234",
    )  # fmt: skip
    # a poor scan: the OCR lost every diacritic
    add_text(ctx, mai, "Ho va ten: Le Thi Mai\nNoi cu tru: thi tran Dong Dang, tinh Lang Son")
    add_text(ctx, mai, "Hộ khẩu cũ ở thành phố Hải Phòng", deleted=True)  # deleted: not searched
    add_text(ctx, huong, "GIẤY CHỨNG SINH\nBệnh viện Đa khoa tỉnh Lạng Sơn\nCon: bé gái")
    return {"duc": duc, "mai": mai, "huong": huong}


def codes(ctx: Context, query: str, actor: Actor | None = None) -> list[str]:
    return [hit.code for hit in search_dossiers(ctx, actor, query)]


def test_a_vietnamese_word_from_the_ocr_text_finds_the_dossier(
    ctx: Context, dossiers: dict[str, Dossier]
) -> None:
    duc, mai, huong = dossiers["duc"].code, dossiers["mai"].code, dossiers["huong"].code
    assert codes(ctx, "Đông Kinh") == [duc]
    assert codes(ctx, "dong kinh") == [duc]  # typed without diacritics
    assert codes(ctx, "Đồng Đăng") == [mai]  # typed with them, the scan has none
    assert codes(ctx, "ĐỒNG ĐĂNG") == [mai]
    assert codes(ctx, "Đông Kinh Hải Phòng") == []  # every word must be there
    assert codes(ctx, "Hải Phòng") == []  # only in a deleted document
    assert codes(ctx, "chứng sinh") == [huong]
    assert codes(ctx, "Kinh Đông") == [duc]  # words in any order
    assert codes(ctx, "Kin") == []  # whole words
    # exact diacritics rank first, whichever way the query is typed
    assert codes(ctx, "Lạng Sơn")[0] in (duc, huong)
    assert set(codes(ctx, "Lạng Sơn")) == {duc, mai, huong}
    assert codes(ctx, "Lạng Sơn")[-1] == mai
    assert codes(ctx, "Lang Son")[0] == mai

    (hit,) = search_dossiers(ctx, None, "dong kinh")
    assert hit.source == "text"
    assert [part for part, marked in hit.snippet if marked] == ["Đông", "Kinh"]
    assert "phường Đông Kinh, tỉnh Lạng Sơn" in "".join(part for part, _ in hit.snippet)
    assert hit.exact == 1  # "kinh" as typed; "dong" only without its diacritics
    assert search_dossiers(ctx, None, "Đông Kinh")[0].exact == 2


def test_applicant_name_and_code_are_searched_too(
    ctx: Context, dossiers: dict[str, Dossier]
) -> None:
    duc, mai, huong = dossiers["duc"].code, dossiers["mai"].code, dossiers["huong"].code
    (hit,) = search_dossiers(ctx, None, "nguyen thi huong")
    assert (hit.code, hit.source) == (huong, "name")
    assert [p for p, marked in hit.snippet if marked] == ["Nguyễn", "Thị", "Hương"]
    assert codes(ctx, "hoàng văn đức") == [duc]
    assert codes(ctx, "Hoang Van Duc") == [duc]  # đ = d
    assert codes(ctx, duc) == [duc]
    assert codes(ctx, duc.lower()) == [duc]
    assert set(codes(ctx, duc[:-4])) == {duc, mai}  # the code's prefix: same unit, same day
    assert codes(ctx, "020190001234")[:1] in ([duc], [mai])  # the ID number in the OCR text
    # the index follows the rows: a corrected name, a removed text
    with ctx.uow() as uow:
        uow.session.execute(
            update(Dossier).where(Dossier.code == huong).values(applicant_name="Vi Thị Hoa")  # type: ignore[arg-type]
        )
        uow.session.execute(
            text("DELETE FROM document_text WHERE dossier_id = :id"), {"id": dossiers["duc"].id}
        )
        uow.commit()
    assert codes(ctx, "Nguyễn Thị Hương") == []
    assert codes(ctx, "vi thi hoa") == [huong]
    assert codes(ctx, "Đông Kinh") == []
    assert codes(ctx, "Hoàng Văn Đức") == [duc]  # still by name


def test_search_shows_only_what_the_officer_may_see(
    ctx: Context, dossiers: dict[str, Dossier]
) -> None:
    duc, mai, huong = dossiers["duc"].code, dossiers["mai"].code, dossiers["huong"].code
    assert set(codes(ctx, "Lạng Sơn", SUPERVISOR)) == {duc, mai, huong}
    assert set(codes(ctx, "Lạng Sơn", JUSTICE_SPECIALIST)) == {duc, mai}  # via Justice
    assert codes(ctx, "Lạng Sơn", WARD_COUNTER) == [huong]
    assert codes(ctx, "Nguyễn Thị Hương", JUSTICE_SPECIALIST) == []
    assert codes(ctx, huong, COUNTER) == []
    assert codes(ctx, huong, WARD_COUNTER) == [huong]


@pytest.fixture
def client(ctx: Context) -> Iterator[TestClient]:
    hashed = hash_password(PASSWORD)
    for actor in (JUSTICE_SPECIALIST, WARD_COUNTER):
        create_officer(
            ctx, actor.username, actor.username, actor.role, actor.unit_code, password_hash=hashed
        )
    app = create_app(ctx, Settings(secret_key="test-secret"))
    with TestClient(app, client=("127.0.0.1", 50003)) as test_client:
        yield test_client


def test_the_search_page_lists_matches_with_a_highlighted_snippet(
    client: TestClient, dossiers: dict[str, Dossier]
) -> None:
    duc, huong = dossiers["duc"].code, dossiers["huong"].code
    assert (
        client.get("/search?q=x", follow_redirects=False).headers["location"].startswith("/signin")
    )
    signed = client.post(
        "/signin", data={"username": JUSTICE_SPECIALIST.username, "password": PASSWORD},
        follow_redirects=False,
    )  # fmt: skip
    assert signed.status_code == 303
    worklist = client.get("/worklist")
    assert 'action="/search"' in worklist.text and 'accesskey="k"' in worklist.text
    page = client.get("/search", params={"q": "dong kinh"})
    assert page.status_code == 200
    assert f'href="/dossiers/{duc}"' in page.text
    assert "<mark>Đông</mark> <mark>Kinh</mark>" in page.text
    assert 'value="dong kinh"' in page.text  # the query stays in the boxes
    page = client.get("/search", params={"q": "Lạng Sơn"})
    assert duc in page.text and huong not in page.text  # the ward's dossier is not shown
    assert "Không tìm thấy" in client.get("/search", params={"q": "Hải Phòng"}).text
    escaped = client.get("/search", params={"q": '<script>"'})
    assert escaped.status_code == 200 and "<script>" not in escaped.text
    api = client.get("/api/v1/search", params={"q": "Đồng Đăng"}).json()
    assert [(a["code"], a["matched"]) for a in api] == [(dossiers["mai"].code, "text")]
    assert api[0]["highlights"] == ["Dong", "Dang"]


@pytest.mark.parametrize(
    "value",
    ["Nguyễn Thị Hương", "ĐẶNG VĂN ĐỨC", "Lê Thị Mỹ Hạnh", "Nông Quốc Tuấn", "Hà Thị Ước",
     "Nguyê\u0303n", "Ỷ Lan ỹ ỵ", "François Müller"],
)  # fmt: skip
def test_postgresql_folds_like_python(pg_ctx: Context, value: str) -> None:
    with pg_ctx.engine.connect() as conn:
        assert conn.execute(select(pg_fold(text(":v")).label("f")), {"v": value}).scalar() == fold(
            value
        )
