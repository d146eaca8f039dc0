"""Several processes on loopback, as on several machines: two API processes (``motcua serve``),
two workers (``motcua worker --loop``) against one Prefect server (``prefect server start`` on
PostgreSQL), one PostgreSQL database, one S3 endpoint (moto's server) and the stand-in agency
(``motcua fake-agency``), each its own process with its own data folder.

An inter-agency dossier goes end to end, each request to the other API process than the one
before: sign in, receive, upload a scan (read back through the other process from the shared
S3 endpoint), forward, forward to the police's step (a handoff the workers deliver to the
stand-in agency, whose signed callback reaches the other API process), approve, result ready,
return; the slip lists every step. Meanwhile a burst of receptions fills the outbox: both
workers take part, and the stand-in receives each delivery exactly once (it counts by
idempotency key)."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, text

from services.catalog import default_catalog
from services.context import Context
from services.directory import create_officer, hash_password, sync_catalog
from storage.db import make_engine, migrate
from tests.conftest import PG_ADMIN_URL
from tests.integration.test_objects_conformance import start_moto_server

ROOT = Path(__file__).resolve().parents[2]
MOTCUA = [sys.executable, "-c", "from api.cli import main; main()"]
SECRET = "multiprocess-" + "k" * 40
AGENCY_SECRET = "police-shared-secret"
PASSWORD = "mat-khau-thu"
CENTRE = "000.00.01.H37"
JUSTICE = "000.00.02.H37"
POLICE = "000.00.20.H37"
OFFICERS = [
    ("quay_tt", "counter", CENTRE),
    ("soha_tt", "digitizer", CENTRE),
    ("cv_stp", "specialist", JUSTICE),
    ("ld_stp", "leader", JUSTICE),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def admin(statement: str) -> None:
    engine = make_engine(PG_ADMIN_URL, pool_size=1)
    try:
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text(statement))
    finally:
        engine.dispose()


def wait_http(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{url}: the process exited\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not come up\n{log.read_text()[-3000:]}")


def pdf_bytes(pages: int = 2) -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=595, height=842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@dataclass
class Cluster:
    apis: list[str]
    agency: str
    engine: Engine
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    workers_ready: threading.Event = field(default_factory=threading.Event)
    log: Path = Path()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    name = f"motcua_mp{os.getpid()}"
    prefect_db = f"motcua_mp_prefect{os.getpid()}"
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    url = f"{base}/{name}"
    for db in (name, prefect_db):
        admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        admin(f'CREATE DATABASE "{db}"')
    log = tmp_path / "processes.log"
    processes: list[subprocess.Popen[bytes]] = []
    engine = make_engine(url)
    prefect_port, agency_port = free_port(), free_port()
    api_ports = [free_port(), free_port()]
    prefect_api = f"http://127.0.0.1:{prefect_port}/api"
    agency = f"http://127.0.0.1:{agency_port}"
    apis = [f"http://127.0.0.1:{port}" for port in api_ports]
    found = Cluster(apis=apis, agency=agency, engine=engine, log=log)
    quiet = {"PREFECT_LOGGING_LEVEL": "WARNING", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}

    def spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=out)
        processes.append(process)
        return process

    starter: threading.Thread | None = None
    try:
        # the slowest to start first: the Prefect server, on its own PostgreSQL database
        prefect = spawn(
            [str(Path(sys.executable).parent / "prefect"), "server", "start",
             "--host", "127.0.0.1", "--port", str(prefect_port)],
            {**os.environ, **quiet, "PREFECT_HOME": str(tmp_path / "prefect-server"),
             "PREFECT_UI_ENABLED": "false",
             "PREFECT_API_DATABASE_CONNECTION_URL":
                 f"{base.replace('postgresql://', 'postgresql+asyncpg://')}/{prefect_db}"},
        )  # fmt: skip
        moto, s3 = start_moto_server()
        processes.append(moto)
        stand_in = spawn(
            [*MOTCUA, "fake-agency", "--port", str(agency_port), "--secret", AGENCY_SECRET,
             "--answer-delay-ms", "50", "--db", str(tmp_path / "agency.db")],
            dict(os.environ),
        )  # fmt: skip
        migrate(engine)
        ctx = Context(engine=engine, catalog=default_catalog())
        sync_catalog(ctx)
        password_hash = hash_password(PASSWORD)
        for username, role, unit in OFFICERS:
            create_officer(ctx, username, username, role, unit, password_hash=password_hash)

        def env_for(role: str) -> dict[str, str]:
            """What one machine of that role is given: its own data folder, the shared
            services."""
            return {
                **os.environ, **quiet,
                "MOTCUA_DATA_DIR": str(tmp_path / role),
                "MOTCUA_DATABASE_URL": url,
                "MOTCUA_SECRET_KEY": SECRET,
                "MOTCUA_OBJECT_STORE": "minio",
                "MOTCUA_MINIO_ENDPOINT": s3,
                "MOTCUA_MINIO_ACCESS_KEY": "testing",
                "MOTCUA_MINIO_SECRET_KEY": "testing",
                "MOTCUA_MINIO_BUCKET": "motcua-multiprocess",
                "MOTCUA_EMBEDDED_WORKERS": "false",
                "MOTCUA_PUBLIC_BASE_URL": apis[1],  # the agency calls back the second process
                "MOTCUA_AGENCY_DEFAULT_ENDPOINT": f"{agency}/lltp",
                "MOTCUA_AGENCY_DEFAULT_SECRET": AGENCY_SECRET,
                "MOTCUA_PORTAL_ENDPOINT": f"{agency}/portal",
                "MOTCUA_OUTBOX_BATCH_SIZE": "2",
                "MOTCUA_OUTBOX_BACKOFF_S": "0.2",
                "MOTCUA_OUTBOX_BACKOFF_MAX_S": "1",
                "PREFECT_API_URL": prefect_api,
                "PREFECT_HOME": str(tmp_path / f"prefect-{role}"),
                "MALLOC_ARENA_MAX": "2",
            }  # fmt: skip

        # the app as `motcua serve --workers N` runs it: uvicorn with the app factory
        api_processes = [
            spawn([sys.executable, "-m", "uvicorn", "--factory", "api.app:create_app",
                   "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                  env_for(f"api{i}"))
            for i, port in enumerate(api_ports)
        ]  # fmt: skip

        # the workers start with everything else: until the Prefect server answers, each sweep
        # fails and is tried again after the poll interval (as after a Prefect restart)
        for i in range(2):
            found.workers.append(
                spawn(
                    [*MOTCUA, "worker", "--loop", "--no-deadlines", "--poll-s", "0.2"],
                    env_for(f"worker{i}"),
                )
            )

        def prefect_up() -> None:
            try:
                wait_http(f"{prefect_api}/health", prefect, log, timeout=120)
            finally:
                found.workers_ready.set()

        starter = threading.Thread(target=prefect_up)
        starter.start()
        wait_http(f"{agency}/stats", stand_in, log)
        for api, process in zip(apis, api_processes, strict=True):
            wait_http(f"{api}/healthz", process, log)
        yield found
    finally:
        if starter is not None:
            starter.join()
        for process in reversed(processes):
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        engine.dispose()
        for db in (name, prefect_db):
            admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def test_two_apis_and_two_workers_share_one_database_and_one_s3(cluster: Cluster) -> None:
    started = time.monotonic()
    clients = [httpx.Client(base_url=url, timeout=30) for url in cluster.apis]
    turn = iter(range(10_000))

    def api() -> httpx.Client:
        """The other API process than the last request's."""
        return clients[next(turn) % 2]

    def sign_in(username: str) -> dict[str, str]:
        answer = api().post("/api/v1/auth/token", json={"username": username, "password": PASSWORD})
        assert answer.status_code == 200, answer.text
        return {"Authorization": f"Bearer {answer.json()['access_token']}"}

    def event(headers: dict[str, str], dossier: dict, name: str, **body: object) -> dict:
        answer = api().post(
            f"/api/v1/dossiers/{dossier['code']}/events/{name}",
            json=body,
            headers={**headers, "If-Match": f'"{dossier["version"]}"'},
        )
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def receive(headers: dict[str, str], name: str) -> dict:
        answer = api().post(
            "/api/v1/dossiers",
            json={
                "procedure_code": "MOJ.lltp",
                "applicant": {"name": name, "id_number": "020190001234"},
                "components": ["request_form", "applicant_id"],
            },
            headers=headers,
        )
        assert answer.status_code == 201, answer.text
        return dict(answer.json())

    counter = sign_in("quay_tt")
    # a burst of receptions: portal sync rows for the workers to share
    burst = [receive(counter, f"Người nộp {i}") for i in range(12)]
    dossier = receive(counter, "Hoàng Văn Đức")
    assert dossier["status"] == "intake"

    # the scan, uploaded through one process, read back through the other from the shared S3
    scan = pdf_bytes()
    digitizer = sign_in("soha_tt")
    uploaded = api().post(
        f"/api/v1/dossiers/{dossier['code']}/documents/applicant_id",
        params={"sha256": hashlib.sha256(scan).hexdigest(), "file_name": "cccd.pdf"},
        content=scan,
        headers={**digitizer, "Content-Type": "application/pdf"},
    )
    assert uploaded.status_code == 201, uploaded.text
    content = api().get(f"/api/v1/documents/{uploaded.json()['id']}/content", headers=digitizer)
    assert content.status_code == 307, content.text  # a presigned URL of the S3 endpoint
    assert httpx.get(content.headers["location"], timeout=10).content == scan

    dossier = event(counter, dossier, "forward")
    assert dossier["status"] == "appraisal"
    dossier = event(sign_in("cv_stp"), dossier, "forward")
    assert dossier["status"] == "verification" and dossier["current_unit"] == POLICE

    # a worker delivers the handoff; the stand-in answers through the signed callback
    assert cluster.workers_ready.wait(90), "the Prefect server did not come up"
    assert len(cluster.workers) == 2, cluster.log.read_text()[-3000:]
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        dossier = dict(api().get(f"/api/v1/dossiers/{dossier['code']}", headers=counter).json())
        if dossier["status"] == "approval":
            break
        time.sleep(0.2)
    assert dossier["status"] == "approval", cluster.log.read_text()[-3000:]

    leader = sign_in("ld_stp")
    dossier = event(leader, dossier, "approve", decision_ref="LLTP-7/2026")
    dossier = event(leader, dossier, "mark_result_ready")
    dossier = event(counter, dossier, "return_result")
    assert dossier["status"] == "returned"

    slip = api().get(f"/api/v1/dossiers/{dossier['code']}/slip", headers=counter)
    assert slip.status_code == 200, slip.text
    rows = slip.json()["rows"]
    assert [r["event"] for r in rows] == [
        "receive", "forward", "forward", "forward", "approve", "mark_result_ready",
        "return_result",
    ]  # fmt: skip
    assert [r["step_id"] for r in rows[1:5]] == ["intake", "appraisal", "verification", "approval"]
    assert rows[3]["giver"].startswith("system") and rows[3]["giver"].endswith(POLICE)

    # every outbox row settles; the stand-in got each of its deliveries exactly once
    def unsettled() -> int:
        with cluster.engine.connect() as conn:
            return int(
                conn.execute(
                    text("SELECT count(*) FROM outbox WHERE status <> 'done'")
                ).scalar_one()
            )

    deadline = time.monotonic() + 30
    while unsettled() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert unsettled() == 0, cluster.log.read_text()[-3000:]
    with cluster.engine.connect() as conn:
        delivered = conn.execute(
            text(
                "SELECT kind, count(*) FROM outbox "
                "WHERE kind IN ('inter_agency', 'portal_sync') GROUP BY kind"
            )
        ).all()
        claimed_by = [r[0] for r in conn.execute(text("SELECT claimed_by FROM outbox")).all()]
    kinds: dict[str, int] = {str(k): int(n) for k, n in delivered}
    assert kinds["inter_agency"] == 1 and kinds["portal_sync"] >= len(burst) + 2, kinds
    stats = httpx.get(f"{cluster.agency}/stats", timeout=5).json()
    assert stats["unique"] == sum(kinds.values()), (stats, kinds)
    assert stats["duplicates"] == 0 and stats["answers_sent"] == 1, stats
    # both workers took part (worker ids are <host>-<pid>-<random>)
    pids = {str(w.pid) for w in cluster.workers}
    took_part = {who.split("-")[-2] for who in claimed_by if who}
    assert took_part == pids, (took_part, pids)
    for client in clients:
        client.close()
    print(
        f"\nmultiprocess scenario: {time.monotonic() - started:.1f} s after the APIs were up; "
        f"{sum(kinds.values())} deliveries, 0 duplicates, workers {sorted(took_part)}"
    )
