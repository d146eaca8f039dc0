"""The HTTP API end to end through the ASGI app, on SQLite and PostgreSQL."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from services.clock import FixedClock
from services.context import Context
from services.directory import create_officer, hash_password
from services.settings import Settings

CENTRE = "000.00.01.H37"
JUSTICE = "000.00.02.H37"
POLICE = "000.00.20.H37"
PROVINCE = "000.00.00.H37"
PASSWORD = "mat-khau-thu"

OFFICERS = [
    ("quay_tt", "Nguyễn Thị Quầy", "counter", CENTRE),
    ("cv_stp", "Trần Văn Thụ Lý", "specialist", JUSTICE),
    ("ld_stp", "Lê Lãnh Đạo", "leader", JUSTICE),
    ("cv_ca", "Phạm Công An", "specialist", POLICE),
    ("quantri_t", "Quản Trị", "admin", PROVINCE),
    ("giamsat_t", "Giám Sát", "supervisor", PROVINCE),
]


@functools.cache
def password_hash() -> str:
    return hash_password(PASSWORD)


@pytest.fixture
def client(ctx: Context) -> Iterator[TestClient]:
    for username, name, role, unit in OFFICERS:
        create_officer(ctx, username, name, role, unit, password_hash=password_hash())
    # an officer of an agency the dossier never passes through
    create_officer(
        ctx, "quay_xa", "Cán bộ xã", "counter", "000.00.05.H37", password_hash=password_hash()
    )
    app = create_app(ctx, Settings(secret_key="test-secret"))
    with TestClient(app, client=("127.0.0.1", 50000)) as client:
        yield client


def token(client: TestClient, username: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/token", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def new_dossier(client: TestClient, headers: dict[str, str], **extra: object) -> dict:
    body = {
        "procedure_code": "MOJ.lltp",
        "applicant": {
            "name": "Hoàng Văn Đức",
            "id_number": "020190001234",
            "phone": "0912345678",
            "address": "Phường Đông Kinh, Lạng Sơn",
        },
        "components": ["request_form", "applicant_id"],
        "request_summary": "Cấp Phiếu lý lịch tư pháp số 1",
        **extra,
    }
    response = client.post("/api/v1/dossiers", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def send(
    client: TestClient,
    headers: dict[str, str],
    dossier: dict,
    event: str,
    **body: object,
) -> dict:
    response = client.post(
        f"/api/v1/dossiers/{dossier['code']}/events/{event}",
        json=body,
        headers={**headers, "If-Match": f'"{dossier["version"]}"'},
    )
    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == f'"{response.json()["version"]}"'
    return response.json()


def test_inter_agency_lifecycle_over_http(client: TestClient, ctx: Context) -> None:
    clock = ctx.clock
    assert isinstance(clock, FixedClock)
    counter = token(client, "quay_tt")
    dossier = new_dossier(client, counter)
    assert dossier["status"] == "intake"
    assert dossier["code"].startswith(f"{CENTRE}-250303-")
    assert dossier["due_at"] is not None and dossier["progress"] == "not_yet_due"
    assert dossier["allowed_events"]

    clock.advance(timedelta(hours=2))
    dossier = send(client, counter, dossier, "forward")
    assert dossier["status"] == "appraisal" and dossier["current_unit"] == JUSTICE

    clock.advance(timedelta(hours=3))
    dossier = send(client, token(client, "cv_stp"), dossier, "forward")
    assert dossier["status"] == "verification" and dossier["current_unit"] == POLICE

    # the police's system answers the inter-agency step with a service token (role system)
    admin = token(client, "quantri_t")
    service = client.post("/api/v1/auth/service-token", json={"unit_code": POLICE}, headers=admin)
    assert service.status_code == 200, service.text
    assert service.json()["officer"]["role"] == "system"
    police_system = {"Authorization": f"Bearer {service.json()['access_token']}"}
    clock.advance(timedelta(days=4))
    dossier = send(client, police_system, dossier, "forward")
    assert dossier["status"] == "approval"

    leader = token(client, "ld_stp")
    clock.advance(timedelta(hours=5))
    dossier = send(client, leader, dossier, "approve", decision_ref="LLTP-123/2025")
    assert dossier["decision"] == "approved"
    dossier = send(client, leader, dossier, "mark_result_ready")
    assert dossier["timeliness"] in ("early", "on_time")
    clock.advance(timedelta(hours=1))
    with pytest.raises(AssertionError, match="expired"):  # 4 days later: the morning token
        send(client, counter, dossier, "return_result")
    counter = token(client, "quay_tt")
    dossier = send(client, counter, dossier, "return_result")
    assert dossier["status"] == "returned"

    slip = client.get(f"/api/v1/dossiers/{dossier['code']}/slip", headers=counter)
    assert slip.status_code == 200
    rows = slip.json()["rows"]
    assert [r["event"] for r in rows] == [
        "receive", "forward", "forward", "forward", "approve", "mark_result_ready",
        "return_result",
    ]  # fmt: skip
    handoffs = [(r["from_unit"], r["to_unit"]) for r in rows[1:4]]
    assert handoffs == [(CENTRE, JUSTICE), (JUSTICE, POLICE), (POLICE, JUSTICE)]
    # each step the dossier left has its own timeliness on the slip
    assert [r["step_id"] for r in rows[1:5]] == ["intake", "appraisal", "verification", "approval"]
    assert all(r["result"] in ("early", "on_time", "late") for r in rows[1:5])
    assert rows[3]["giver"] == f"system@{POLICE}"
    assert slip.json()["coordinating_agencies"] == [POLICE]


def test_same_idempotency_key_gives_one_dossier(client: TestClient, ctx: Context) -> None:
    counter = token(client, "quay_tt")
    headers = {**counter, "Idempotency-Key": "quay-click-1"}
    body = {
        "procedure_code": "MOJ.lltp",
        "applicant": {"name": "Vi Thị Lan", "id_number": "020300004321"},
        "components": ["request_form", "applicant_id"],
    }
    first = client.post("/api/v1/dossiers", json=body, headers=headers)
    second = client.post("/api/v1/dossiers", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json()["code"] == second.json()["code"]
    assert second.headers.get("Idempotent-Replayed") == "true"
    listed = client.get("/api/v1/dossiers", headers=counter).json()["items"]
    assert [d["code"] for d in listed] == [first.json()["code"]]
    # the same key for a different request is refused, and still no second dossier
    other = client.post(
        "/api/v1/dossiers", json={**body, "request_summary": "khác"}, headers=headers
    )
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    third = client.post(
        "/api/v1/dossiers", json=body, headers={**counter, "Idempotency-Key": "quay-click-2"}
    )
    assert third.json()["code"] != first.json()["code"]


def test_if_match_required_and_stale_is_412(client: TestClient) -> None:
    counter = token(client, "quay_tt")
    dossier = new_dossier(client, counter)
    url = f"/api/v1/dossiers/{dossier['code']}/events/forward"
    missing = client.post(url, json={}, headers=counter)
    assert missing.status_code == 428
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert missing.json()["code"] == "if_match_required"
    fresh = client.post(url, json={}, headers={**counter, "If-Match": f'"{dossier["version"]}"'})
    assert fresh.status_code == 200
    stale = client.post(
        f"/api/v1/dossiers/{dossier['code']}/events/request_supplement",
        json={"reason": "Thiếu bản chụp CCCD"},
        headers={**counter, "If-Match": f'"{dossier["version"]}"'},
    )
    assert stale.status_code == 412
    problem = stale.json()
    assert problem["code"] == "dossier_changed"
    assert problem["detail"].startswith("Hồ sơ") and "stale" in problem["detail_en"]
    assert problem["type"] and problem["title"] and problem["status"] == 412


def test_other_agency_cannot_read_or_act(client: TestClient) -> None:
    dossier = new_dossier(client, token(client, "quay_tt"))
    stranger = token(client, "quay_xa")
    read = client.get(f"/api/v1/dossiers/{dossier['code']}", headers=stranger)
    assert read.status_code == 403 and read.json()["code"] == "outside_your_agency"
    write = client.post(
        f"/api/v1/dossiers/{dossier['code']}/events/forward",
        json={},
        headers={**stranger, "If-Match": f'"{dossier["version"]}"'},
    )
    assert write.status_code == 403
    assert client.get("/api/v1/dossiers", headers=stranger).json()["items"] == []
    slip = client.get(f"/api/v1/dossiers/{dossier['code']}/slip", headers=stranger)
    assert slip.status_code == 403
    # the province supervisor sees it; the police (on the dossier's route) sees it too
    assert (
        client.get(
            f"/api/v1/dossiers/{dossier['code']}", headers=token(client, "giamsat_t")
        ).status_code
        == 200
    )
    assert (
        client.get(
            f"/api/v1/dossiers/{dossier['code']}", headers=token(client, "cv_ca")
        ).status_code
        == 200
    )


def test_wrong_role_is_409_with_the_reason(client: TestClient) -> None:
    dossier = new_dossier(client, token(client, "quay_tt"))
    response = client.post(
        f"/api/v1/dossiers/{dossier['code']}/events/approve",
        json={"decision_ref": "x"},
        headers={**token(client, "quay_tt"), "If-Match": f'"{dossier["version"]}"'},
    )
    assert response.status_code == 409
    assert response.json()["code"] == "transition_rejected"


def test_unknown_dossier_404_and_no_token_401(client: TestClient) -> None:
    counter = token(client, "quay_tt")
    missing = client.get("/api/v1/dossiers/000.00.01.H37-250303-9999", headers=counter)
    assert missing.status_code == 404 and missing.json()["code"] == "dossier_not_found"
    anonymous = client.get("/api/v1/dossiers")
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == "Bearer"
    forged = client.get("/api/v1/dossiers", headers={"Authorization": "Bearer abc.def.ghi"})
    assert forged.status_code == 401


def test_list_filters_and_cursor(client: TestClient, ctx: Context) -> None:
    counter = token(client, "quay_tt")
    codes = [new_dossier(client, counter)["code"] for _ in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/dossiers", params=params, headers=counter).json()
        seen += [d["code"] for d in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(codes))
    by_status = client.get(
        "/api/v1/dossiers", params={"status": "appraisal"}, headers=counter
    ).json()
    assert by_status["items"] == []
    assert (
        len(
            client.get("/api/v1/dossiers", params={"agency": POLICE}, headers=counter).json()[
                "items"
            ]
        )
        == 5
    )
    assert (
        client.get("/api/v1/dossiers", params={"late_only": True}, headers=counter).json()["items"]
        == []
    )
    assert isinstance(ctx.clock, FixedClock)
    ctx.clock.advance(timedelta(days=30))
    counter = token(client, "quay_tt")
    late = client.get("/api/v1/dossiers", params={"late_only": True}, headers=counter).json()
    assert len(late["items"]) == 5 and late["items"][0]["progress"] == "overdue"


def test_failed_sign_ins_are_rate_limited(client: TestClient) -> None:
    for _ in range(5):
        bad = client.post("/api/v1/auth/token", json={"username": "cv_stp", "password": "sai"})
        assert bad.status_code == 401
    blocked = client.post("/api/v1/auth/token", json={"username": "cv_stp", "password": PASSWORD})
    assert blocked.status_code == 429 and "Retry-After" in blocked.headers


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "database": None}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["database"] in ("sqlite", "postgresql")


def test_procedure_and_agencies(client: TestClient) -> None:
    headers = token(client, "quay_tt")
    procedure = client.get("/api/v1/procedures/MOJ.lltp", headers=headers).json()
    assert [s["agency"] for s in procedure["process"]][-2:] == [POLICE, JUSTICE]
    assert procedure["time_limit"] in ("10", "10.0", 10)
    assert client.get("/api/v1/procedures/none", headers=headers).status_code == 404
    assert any(a["code"] == POLICE for a in client.get("/api/v1/agencies", headers=headers).json())
