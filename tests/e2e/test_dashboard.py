"""The supervisor dashboard in headless Chromium against a real server (``motcua serve``): the
hand-made history of catalog/examples/import-example.jsonl is imported, the dashboard renders
(table by agency, trend against 99%, 766 score card, lists) and a drill-down lists exactly the
late dossiers counted. Screenshots land in ``artifacts/dashboard/`` (git-ignored)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, sync_playwright

from api.deps import open_context
from services.directory import create_officer, hash_password, sync_catalog
from services.importer import import_file
from services.settings import Settings
from tests.e2e.server import motcua_server

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "dashboard"
EXAMPLE = ROOT / "catalog" / "examples" / "import-example.jsonl"
PASSWORD = "mat-khau-giam-sat"
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    data = tmp_path_factory.mktemp("dashboard-data")
    env = {**os.environ, "MOTCUA_DATA_DIR": str(data), "MOTCUA_SECRET_KEY": "dash-" + "k" * 40}
    env.pop("MOTCUA_DATABASE_URL", None)
    ctx = open_context(Settings(data_dir=data, secret_key=env["MOTCUA_SECRET_KEY"]))
    sync_catalog(ctx)
    hashed = hash_password(PASSWORD)
    create_officer(
        ctx, "giamsat", "Giám Sát Viên", "supervisor", "000.00.00.H37", password_hash=hashed
    )
    create_officer(ctx, "quay", "Cán Bộ Quầy", "counter", "000.00.01.H37", password_hash=hashed)
    codes = import_file(ctx, EXAMPLE).codes
    ctx.engine.dispose()
    with motcua_server(env) as base:
        yield base, codes


def _sign_in(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/signin")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: "/signin" not in url, timeout=15000)


def _drill_codes(page: Page) -> list[str]:
    page.wait_for_selector("#drilldown-card:not([hidden])")
    return page.eval_on_selector_all(
        "#drilldown tbody tr[data-code]", "rs => rs.map(r => r.dataset.code)"
    )


def test_dashboard_renders_and_drills_down_to_the_late_dossiers(
    served: tuple[str, dict[str, str]],
) -> None:
    base, codes = served
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1366, "height": 900}, locale="vi-VN")
        external: list[str] = []
        page.on(
            "request",
            lambda r: external.append(r.url) if not r.url.startswith(base) else None,
        )
        try:
            _sign_in(page, base, "giamsat")
            page.goto(f"{base}/dashboard?from=2025-01-01&to=2025-03-31")
            page.wait_for_selector("body[data-loaded='1']", timeout=20000)
            assert page.inner_text("h1") == "Bảng điều hành: giải quyết hồ sơ đúng hạn"
            # the table by agency: Justice (MOJ.lltp) and the district one-stop (1.001612)
            justice = page.locator("#by-agency tbody tr[data-agency='000.00.02.H37'] td")
            district = page.locator("#by-agency tbody tr[data-agency='000.01.31.H37'] td")
            assert justice.all_inner_texts()[1:] == [
                "3",
                "3",
                "1",
                "1",
                "1",
                "1",
                "0",
                "0",
                "66.67",
            ]
            assert district.all_inner_texts()[1:] == [
                "4",
                "2",
                "0",
                "1",
                "1",
                "1",
                "1",
                "1",
                "50.00",
            ]
            total = page.locator("#by-agency tfoot tr td").all_inner_texts()
            assert total[1:] == ["7", "5", "1", "2", "2", "2", "1", "1", "60.00"]
            # the trend draws a point per month with a finished dossier, and the 99% line
            assert page.locator("#trend svg line.target").count() == 1
            assert page.locator("#trend svg circle.dot").count() == 3  # January, February, March
            assert "Toàn tỉnh" in page.inner_text("#scorecard")
            assert "Tiến độ giải quyết" in page.inner_text("#scorecard")
            late_list = page.eval_on_selector_all(
                "#late tbody tr[data-code]", "rs => rs.map(r => r.dataset.code)"
            )
            assert sorted(late_list) == sorted([codes["LLTP-2025-0103"], codes["HKD-2025-0305"]])
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

            # drill-down: the late number of the district lists exactly its late dossier
            district.nth(5).locator("a.cell").click()
            assert _drill_codes(page) == [codes["HKD-2025-0305"]]
            assert "giải quyết quá hạn — 000.01.31.H37: 1" in page.inner_text("#drilldown-title")
            # …and the total's late number lists exactly the two late dossiers counted
            page.locator("#by-agency tfoot tr td").nth(5).locator("a.cell").click()
            page.wait_for_function(
                "document.querySelector('#drilldown-title').textContent.endsWith(': 2')"
            )
            assert sorted(_drill_codes(page)) == sorted(
                [codes["LLTP-2025-0103"], codes["HKD-2025-0305"]]
            )
            # overdue at the end of March: the district's one, not the paused LLTP dossier
            district.nth(7).locator("a.cell").click()
            page.wait_for_function(
                "document.querySelector('#drilldown-title').textContent.includes('đang quá hạn')"
            )
            assert _drill_codes(page) == [codes["HKD-2025-0326"]]
            page.screenshot(path=str(ARTIFACTS / "dashboard-drilldown.png"), full_page=True)

            # filters refresh without reloading the page
            page.evaluate("window.__stay = 1")
            page.select_option("#procedure", "MOJ.lltp")
            page.click("#apply")
            page.wait_for_function(
                "!document.querySelector(\"#by-agency tbody tr[data-agency='000.01.31.H37']\")"
            )
            assert page.evaluate("window.__stay") == 1
            assert "procedure=MOJ.lltp" in page.url
            assert external == []  # offline: no request leaves the server
        finally:
            browser.close()


def test_a_counter_officer_cannot_open_the_dashboard(served: tuple[str, dict[str, str]]) -> None:
    base, _ = served
    with httpx.Client(base_url=base) as client:
        token = client.post("/api/v1/auth/token", json={"username": "quay", "password": PASSWORD})
        assert token.status_code == 200, token.text
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        answer = client.get("/api/v1/dashboard/summary", headers=headers)
        assert answer.status_code == 403
