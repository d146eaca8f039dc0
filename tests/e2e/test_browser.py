"""End to end in headless Chromium against a real server: the counter receives a dossier and
prints the receipt, the Justice specialist, the police and the leader move it to a result, and
the counter returns it. Screenshots (and the printed receipt) land in ``artifacts/e2e/``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from api.deps import open_context
from services.directory import create_officer, hash_password, sync_catalog
from services.settings import Settings
from tests.e2e.server import motcua_server

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "e2e"
PASSWORD = "mat-khau-e2e"
CHROMIUM = "/usr/bin/chromium"
OFFICERS = [
    ("quay", "Nguyễn Thị Quầy", "counter", "000.00.01.H37"),
    ("chuyenvien", "Trần Văn Thụ Lý", "specialist", "000.00.02.H37"),
    ("congan", "Phạm Công An", "specialist", "000.00.20.H37"),
    ("lanhdao", "Lê Lãnh Đạo", "leader", "000.00.02.H37"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("e2e-data")
    env = {**os.environ, "MOTCUA_DATA_DIR": str(data), "MOTCUA_SECRET_KEY": "e2e-" + "k" * 40}
    env.pop("MOTCUA_DATABASE_URL", None)
    settings = Settings(data_dir=data, secret_key=env["MOTCUA_SECRET_KEY"])
    ctx = open_context(settings)
    sync_catalog(ctx)
    hashed = hash_password(PASSWORD)
    for username, name, role, unit in OFFICERS:
        create_officer(ctx, username, name, role, unit, password_hash=hashed)
    ctx.engine.dispose()
    with motcua_server(env) as base:
        yield base


def sign_in(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/signin")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.keyboard.press("Enter")  # keyboard only
    page.wait_for_url(lambda url: "/signin" not in url, timeout=15000)


def sign_out(page: Page) -> None:
    page.click("text=Đăng xuất")
    page.wait_for_url("**/signin")


def act(page: Page, base: str, code: str, event: str, shot: str, **fields: str) -> None:
    page.goto(f"{base}/dossiers/{code}")
    for name, value in fields.items():
        page.fill(f"#{name}", value)
    page.click(f"button[name=event][value={event}]")
    page.wait_for_url(f"**/dossiers/{code}")
    assert page.locator(".error").count() == 0, page.locator(".error").inner_text()
    page.screenshot(path=str(ARTIFACTS / f"{shot}.png"), full_page=True)


def test_counter_to_return_in_chromium(server: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"],
        )  # fmt: skip
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 768}, locale="vi-VN")
            outside: list[str] = []
            page.on(
                "request",
                lambda r: None if r.url.startswith(server) or r.url.startswith("data:")
                else outside.append(r.url),
            )  # fmt: skip

            sign_in(page, server, "quay")
            page.goto(f"{server}/desk")
            page.select_option("#procedure", "MOJ.lltp")
            page.wait_for_selector("#name")
            page.fill("#name", "Hoàng Văn Đức")
            page.fill("#id_number", "020190001234")
            page.fill("#phone", "0912345678")
            page.fill("#address", "Phường Đông Kinh, tỉnh Lạng Sơn")
            page.screenshot(path=str(ARTIFACTS / "01-desk.png"), full_page=True)
            page.click("button[name=action][value=receive]")
            page.wait_for_url("**/forms/receipt")
            assert "GIẤY TIẾP NHẬN HỒ SƠ VÀ HẸN TRẢ KẾT QUẢ" in page.content()
            code = page.url.split("/dossiers/")[1].split("/")[0]
            page.screenshot(path=str(ARTIFACTS / "02-receipt.png"), full_page=True)
            page.emulate_media(media="print")
            page.pdf(path=str(ARTIFACTS / "02-receipt-printed.pdf"), format="A5")
            page.emulate_media(media="screen")

            act(page, server, code, "forward", "03-forwarded-to-justice")
            sign_out(page)

            sign_in(page, server, "chuyenvien")
            page.goto(f"{server}/worklist")
            assert code in page.content()
            page.screenshot(path=str(ARTIFACTS / "04-specialist-worklist.png"), full_page=True)
            act(page, server, code, "forward", "05-forwarded-to-police")
            sign_out(page)

            sign_in(page, server, "congan")
            act(page, server, code, "forward", "06-police-verified")
            sign_out(page)

            sign_in(page, server, "lanhdao")
            act(page, server, code, "approve", "07-approved", decision_ref="LLTP-0001/2026")
            act(page, server, code, "mark_result_ready", "08-result-ready")
            sign_out(page)

            sign_in(page, server, "quay")
            act(page, server, code, "return_result", "09-returned")
            assert "Đã trả kết quả" in page.locator("#status").inner_text()
            slip_rows = page.locator("table tbody tr").count()
            assert slip_rows == 7
            assert outside == [], f"requests left the server: {outside}"
        finally:
            browser.close()
