"""Crash and fault tests: ``.venv/bin/python -m benchmarks.crash [--kills 20]``.

Every service is its own process on loopback: a private PostgreSQL cluster (``initdb`` into a
temporary folder, its own port: the machine's shared server is never touched), moto's S3 server
behind a TCP relay (the "S3 endpoint" that is stopped and started again; moto keeps objects in
memory only, so the relay is what goes away, not the objects), the stand-in agency
(``motcua fake-agency``: counts what it receives per idempotency key), the API
(``motcua serve``, flows not embedded) and one worker (``motcua worker --loop``: the outbox
drain loop, each sweep a Prefect flow run on Prefect's local mode).

1. Kills: a load client (threads) receives ``MOJ.lltp`` dossiers (an inter-agency procedure:
   the police's verification step is an outbox handoff to the stand-in) and moves each one to
   ``returned``, recording every acknowledged (2xx) answer. Meanwhile the API and the worker are
   each SIGKILLed ``--kills`` times at random moments and started again. Then: the outbox
   drains; every acknowledged transition is in the database (the event row at the acknowledged
   version, with that event and that state); no dossier is half-moved (its events chain from
   ``submitted`` to its state, its version counts them, each transition's outbox rows are
   there exactly once); every outbox row is done and reached its receiver under its one key.
2. PostgreSQL restarted under load (``pg_ctl -m immediate stop``, then start): answers during
   the outage are 503 ``database_unavailable`` with ``Retry-After`` and a problem+json body in
   Vietnamese and English; the API recovers; nothing acknowledged is lost.
3. The S3 endpoint stopped: uploads answer 503 ``object_store_unavailable`` (or a clean 4xx when
   the cut came mid-body), no document row without its object; started again: uploads work.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, text

ROOT = Path(__file__).resolve().parents[1]
MOTCUA = [sys.executable, "-c", "from api.cli import main; main()"]
PG_BIN = Path(os.environ.get("MOTCUA_PG_BIN", "/usr/lib/postgresql/15/bin"))
SECRET = "crash-test-" + "k" * 40
AGENCY_SECRET = "police-crash-secret"
CENTRE, JUSTICE, POLICE = "000.00.01.H37", "000.00.02.H37", "000.00.20.H37"
OFFICERS = {  # who plays which part of MOJ.lltp
    "counter": ("quay_cr", "counter", CENTRE),
    "specialist": ("cv_cr", "specialist", JUSTICE),
    "police": ("ca_cr", "specialist", POLICE),  # the police's specialist does verification
    "leader": ("ld_cr", "leader", JUSTICE),
    "digitizer": ("soha_cr", "digitizer", CENTRE),
}
# where a dossier in a state goes on in PATH (the ETag version is opaque: it grows with every
# write of the row, which may be more than one per transition)
NEXT_IN_PATH = {"intake": 0, "appraisal": 1, "verification": 2, "approval": 3, "approved": 4,
                "result_ready": 5, "returned": 6}  # fmt: skip
# receive, then: (event, who, body)
PATH: list[tuple[str, str, dict[str, Any]]] = [
    ("forward", "counter", {}),
    ("forward", "specialist", {}),  # → verification: an inter_agency outbox row
    ("forward", "police", {}),
    ("approve", "leader", {"decision_ref": "LLTP-CR/2026"}),
    ("mark_result_ready", "leader", {}),
    ("return_result", "counter", {}),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# --- processes ------------------------------------------------------------------------------
class PrivatePostgres:
    """A PostgreSQL cluster of our own in ``root`` (initdb), on its own port."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.log = root / "postgres.log"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/motcua"

    def _run(self, *args: str) -> None:
        command = [str(PG_BIN / args[0]), *args[1:]]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            self.root.chmod(0o755)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                  "--locale=C.UTF-8", "--no-sync")  # fmt: skip
        self.start()
        admin = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        run_sql(admin, "CREATE DATABASE motcua")

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   "-c max_connections=200")  # fmt: skip
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w",
                  "start")  # fmt: skip

    def crash(self) -> None:
        """Stop at once, as a crash does: no checkpoint, recovery from the WAL at start."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")


def run_sql(url: str, statement: str) -> None:
    from storage.db import make_engine

    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text(statement))
    finally:
        engine.dispose()


class Relay:
    """A TCP relay on its own port in front of an S3 endpoint: ``stop()`` closes the port and
    cuts every open connection (as an endpoint that goes down), ``start()`` opens it again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            sockets, self._open = list(self._open), set()
        for s in sockets:
            with contextlib.suppress(OSError):
                s.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
            with contextlib.suppress(OSError):
                s.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            with self._lock:
                self._open.discard(source)


@dataclass
class Proc:
    """A process started in its own session: SIGKILL goes to its whole group (the worker's
    Prefect local server is its child)."""

    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        with self.log.open("ab") as out:
            out.write(f"\n--- start {self.starts + 1} at {time.time():.3f}\n".encode())
            self.process = subprocess.Popen(
                self.args, cwd=ROOT, env=self.env, stdout=out, stderr=out, start_new_session=True
            )
        self.starts += 1

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL, the process and its children, no goodbye."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(15)
        # what outlived it in its group: Prefect's temporary server (local mode) was left
        # running after each test, ~200 MB and some CPU each, until the machine stopped
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:]


def wait_http(url: str, proc: Proc | None = None, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.process is not None and proc.process.poll() is not None:
            raise RuntimeError(f"{proc.name} exited\n{proc.tail()}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up\n{proc.tail() if proc else ''}")


@dataclass
class Rig:
    """Every process of the crash test; ``with rig(...) as r:``."""

    tmp: Path
    pg: PrivatePostgres
    engine: Engine
    relay: Relay
    s3_direct: str  # moto itself (to check objects while the relay is down)
    bucket: str
    agency_url: str
    api_url: str
    api: Proc
    worker: Proc
    others: list[Proc | subprocess.Popen[bytes]] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)

    def restart_api(self) -> float:
        """Start the API again; seconds until it answers."""
        started = time.monotonic()
        self.api.start()
        wait_http(f"{self.api_url}/healthz", self.api)
        return time.monotonic() - started

    def worker_busy(self, timeout: float) -> bool:
        """Whether the running worker has claimed an outbox row (it is delivering) in time."""
        pattern = f"%-{self.worker.pid}-%"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.worker.process is not None and self.worker.process.poll() is not None:
                raise RuntimeError(f"worker exited\n{self.worker.tail()}")
            with contextlib.suppress(Exception), self.engine.connect() as conn:
                if conn.execute(
                    text("SELECT 1 FROM outbox WHERE claimed_by LIKE :p LIMIT 1"), {"p": pattern}
                ).first():
                    return True
            time.sleep(0.1)
        return False

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


@contextlib.contextmanager
def rig(*, keep: bool = False, lease_s: float = 5.0, prefect: str = "server") -> Iterator[Rig]:
    """``prefect="server"``: the worker runs its flows against a ``prefect server start``
    process (started once, never killed), so a restarted worker is draining again within
    seconds; ``"local"``: each worker process starts Prefect's local server itself (its child,
    killed with it), which takes tens of seconds on a busy 2-core machine."""
    from services.accounts import Identity, issue_token
    from services.catalog import default_catalog
    from services.clock import TZ
    from services.context import Context
    from services.directory import create_officer, sync_catalog
    from storage.db import make_engine, migrate

    tmp = Path(tempfile.mkdtemp(prefix="motcua-crash-"))
    tmp.chmod(0o755)
    pg = PrivatePostgres(tmp / "pg")
    procs: list[Proc] = []
    moto: subprocess.Popen[bytes] | None = None
    relay: Relay | None = None
    engine: Engine | None = None
    try:
        pg.init()
        engine = make_engine(pg.url, pool_size=4)
        migrate(engine)
        ctx = Context(engine=engine, catalog=default_catalog())
        sync_catalog(ctx)
        for username, role, unit in OFFICERS.values():
            create_officer(ctx, username, username, role, unit, None)

        moto_port = free_port()
        moto = subprocess.Popen(
            [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1",
             "-p", str(moto_port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        relay = Relay(("127.0.0.1", moto_port))
        relay.start()
        agency_port, api_port = free_port(), free_port()
        agency_url = f"http://127.0.0.1:{agency_port}"
        api_url = f"http://127.0.0.1:{api_port}"
        quiet = {"PREFECT_LOGGING_LEVEL": "WARNING", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                 "MALLOC_ARENA_MAX": "2"}  # fmt: skip
        base_env = {
            k: v for k, v in os.environ.items() if not k.startswith(("MOTCUA_", "PREFECT_"))
        }
        bucket = "motcua-crash"

        def env_for(role: str) -> dict[str, str]:
            return {
                **base_env, **quiet,
                "MOTCUA_DATA_DIR": str(tmp / role),
                "MOTCUA_DATABASE_URL": pg.url,
                "MOTCUA_SECRET_KEY": SECRET,
                "MOTCUA_OBJECT_STORE": "minio",
                "MOTCUA_MINIO_ENDPOINT": relay.endpoint if relay else "",
                "MOTCUA_MINIO_ACCESS_KEY": "testing",
                "MOTCUA_MINIO_SECRET_KEY": "testing",
                "MOTCUA_MINIO_BUCKET": bucket,
                "MOTCUA_EMBEDDED_WORKERS": "false",
                "MOTCUA_PUBLIC_BASE_URL": api_url,
                "MOTCUA_AGENCY_DEFAULT_ENDPOINT": f"{agency_url}/lltp",
                "MOTCUA_AGENCY_DEFAULT_SECRET": AGENCY_SECRET,
                "MOTCUA_PORTAL_ENDPOINT": f"{agency_url}/portal",
                "MOTCUA_SMS_GATEWAY_URL": f"{agency_url}/sms",
                "MOTCUA_OUTBOX_BATCH_SIZE": "20",
                "MOTCUA_OUTBOX_BACKOFF_S": "0.2",
                "MOTCUA_OUTBOX_BACKOFF_MAX_S": "2",
                "MOTCUA_OUTBOX_MAX_ATTEMPTS": "12",
                "MOTCUA_OUTBOX_LEASE_S": str(lease_s),
                "MOTCUA_OUTBOX_HTTP_TIMEOUT_S": "5",
                "PREFECT_HOME": str(tmp / f"prefect-{role}"),
            }  # fmt: skip

        # the stand-in agency keeps what it received in a SQLite file: it is never killed, but
        # its counts must not depend on its memory either
        agency = Proc(
            "fake-agency",
            [*MOTCUA, "fake-agency", "--port", str(agency_port), "--db", str(tmp / "agency.db")],
            {**base_env}, tmp / "agency.log",
        )  # fmt: skip
        api = Proc(
            "api",
            [*MOTCUA, "serve", "--host", "127.0.0.1", "--port", str(api_port)],
            env_for("api"), tmp / "api.log",
        )  # fmt: skip
        worker = Proc(
            "worker",
            [*MOTCUA, "worker", "--loop", "--no-deadlines", "--poll-s", "0.2"],
            env_for("worker"), tmp / "worker.log",
        )  # fmt: skip
        procs.extend([agency, api])
        if prefect == "server":  # the slowest to start: first, waited for last
            prefect_port = free_port()
            prefect_api = f"http://127.0.0.1:{prefect_port}/api"
            server = Proc(
                "prefect-server",
                [str(Path(sys.executable).parent / "prefect"), "server", "start",
                 "--host", "127.0.0.1", "--port", str(prefect_port)],
                {**base_env, **quiet, "PREFECT_HOME": str(tmp / "prefect-server"),
                 "PREFECT_UI_ENABLED": "false"},
                tmp / "prefect-server.log",
            )  # fmt: skip
            procs.insert(0, server)
            worker.env["PREFECT_API_URL"] = prefect_api
        for proc in procs:
            proc.start()
        wait_http(f"{agency_url}/stats", agency)
        wait_http(f"{api_url}/healthz", api)
        if prefect == "server":
            wait_http(f"{prefect_api}/health", server)
        worker.start()
        procs.append(worker)
        now = datetime.now(TZ)
        tokens = {
            part: issue_token(Identity(u, u, role, unit), SECRET, now)
            for part, (u, role, unit) in OFFICERS.items()
        }
        yield Rig(
            tmp=tmp, pg=pg, engine=engine, relay=relay, s3_direct=f"127.0.0.1:{moto_port}",
            bucket=bucket, agency_url=agency_url, api_url=api_url, api=api, worker=worker,
            tokens=tokens,
        )  # fmt: skip
    finally:
        for proc in reversed(procs):
            proc.stop()
        if relay is not None:
            relay.stop()
        if moto is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(moto.pid, signal.SIGKILL)
            moto.wait(10)
        if engine is not None:
            engine.dispose()
        pg.stop()
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)


# --- the load client ------------------------------------------------------------------------
@dataclass(frozen=True)
class Ack:
    """An acknowledged (2xx) transition: the dossier, the event, the version and state the
    answer gave."""

    code: str
    event: str
    version: int
    status: str
    at: float = field(default_factory=time.monotonic, compare=False)


@dataclass
class Tally:
    acks: list[Ack] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)  # status code or "no answer"
    unavailable_bad: list[str] = field(default_factory=list)  # 503s not as the contract says
    applied_unacknowledged: int = 0  # found applied after an answer that never came
    anomalies: list[str] = field(default_factory=list)
    first_ok_after: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, what: str) -> None:
        with self.lock:
            self.answers[what] += 1

    def ack(self, ack: Ack) -> None:
        with self.lock:
            self.acks.append(ack)


def check_unavailable(response: httpx.Response, code: str) -> str | None:
    """What is wrong with a 503 (None: Retry-After, problem+json, Vietnamese and English)."""
    if "retry-after" not in response.headers:
        return "no Retry-After"
    if not response.headers.get("content-type", "").startswith("application/problem+json"):
        return f"content-type {response.headers.get('content-type')}"
    body = response.json()
    if body.get("code") != code or not body.get("detail") or not body.get("detail_en"):
        return f"body {body}"
    return None


class LoadClient:
    """Threads, each receiving a dossier and moving it to ``returned``, then the next one."""

    def __init__(self, rig: Rig, threads: int, *, unavailable_code: str = "database_unavailable"):
        self.rig = rig
        self.tally = Tally()
        self.stop = threading.Event()
        self.unavailable_code = unavailable_code
        self.threads = [
            threading.Thread(target=self._run, args=(i,), name=f"load-{i}", daemon=True)
            for i in range(threads)
        ]
        self.dossiers_done = 0

    def __enter__(self) -> LoadClient:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(120)

    def _request(
        self, client: httpx.Client, method: str, url: str, **kwargs: Any
    ) -> httpx.Response | None:
        try:
            response = client.request(method, url, **kwargs)
        except httpx.HTTPError:
            self.tally.count("no answer")
            time.sleep(0.2)
            return None
        self.tally.count(str(response.status_code))
        if response.status_code == 503:
            wrong = check_unavailable(response, self.unavailable_code)
            if wrong:
                with self.tally.lock:
                    self.tally.unavailable_bad.append(wrong)
            time.sleep(min(float(response.headers.get("retry-after", "1")), 0.5))
        elif response.status_code >= 500:
            with self.tally.lock:
                self.tally.anomalies.append(f"{method} {url}: {response.status_code}")
            time.sleep(0.1)
        return response

    def _run(self, index: int) -> None:
        with httpx.Client(base_url=self.rig.api_url, timeout=20) as client:
            n = 0
            while not self.stop.is_set():
                n += 1
                self._one_dossier(client, f"crash-{index}-{n}-{uuid.uuid4().hex[:8]}")

    def _current(self, client: httpx.Client, code: str) -> dict[str, Any] | None:
        while True:  # the API comes back: it is restarted after every kill
            response = self._request(
                client, "GET", f"/api/v1/dossiers/{code}", headers=self.rig.headers("counter")
            )
            if response is not None and response.status_code == 200:
                return dict(response.json())
            if response is not None and response.status_code < 500:
                with self.tally.lock:
                    self.tally.anomalies.append(f"GET {code}: {response.status_code}")
                return None

    def _one_dossier(self, client: httpx.Client, ref: str) -> None:
        rig = self.rig
        dossier: dict[str, Any] | None = None
        body = {
            "procedure_code": "MOJ.lltp",
            "applicant": {"name": "Hoàng Văn Thụ", "id_number": "020190001234",
                          "phone": "0912345678"},
            "components": ["request_form", "applicant_id"],
            "external_ref": ref,
        }  # fmt: skip
        while dossier is None:
            if self.stop.is_set():
                return
            response = self._request(
                client, "POST", "/api/v1/dossiers", json=body,
                headers={**rig.headers("counter"), "Idempotency-Key": uuid.uuid4().hex},
            )  # fmt: skip
            if response is None or response.status_code >= 500:
                continue
            if response.status_code == 201:
                dossier = dict(response.json())
                self.tally.ack(Ack(dossier["code"], "receive", dossier["version"],
                                   dossier["status"]))  # fmt: skip
            elif response.status_code == 409 and response.json().get("dossier"):
                # received before the answer was lost: the reference finds it
                with self.tally.lock:
                    self.tally.applied_unacknowledged += 1
                dossier = self._current(client, response.json()["dossier"])
                if dossier is None:
                    return
            else:
                with self.tally.lock:
                    self.tally.anomalies.append(f"receive: {response.status_code} {response.text}")
                return
        for event, who, payload in PATH[NEXT_IN_PATH[dossier["status"]] :]:
            done = False
            while not done:
                if self.stop.is_set():
                    return
                response = self._request(
                    client, "POST", f"/api/v1/dossiers/{dossier['code']}/events/{event}",
                    json=payload,
                    headers={**rig.headers(who), "If-Match": f'"{dossier["version"]}"',
                             "Idempotency-Key": uuid.uuid4().hex},
                )  # fmt: skip
                if response is None or response.status_code >= 500:
                    continue
                if response.status_code == 200:
                    dossier = dict(response.json())
                    self.tally.ack(Ack(dossier["code"], event, dossier["version"],
                                       dossier["status"]))  # fmt: skip
                    done = True
                elif response.status_code == 412:
                    # the answer was lost but the event may have been applied: only this
                    # thread moves this dossier, so a newer version is that event
                    current = self._current(client, dossier["code"])
                    if current is None:
                        return
                    if current["status"] != dossier["status"]:
                        with self.tally.lock:
                            self.tally.applied_unacknowledged += 1
                        dossier = current
                        done = True
                    else:
                        with self.tally.lock:
                            self.tally.anomalies.append(
                                f"{dossier['code']} {event}: 412 at {dossier['version']}, "
                                f"now {current['version']}"
                            )
                        return
                else:
                    with self.tally.lock:
                        self.tally.anomalies.append(
                            f"{dossier['code']} {event}: {response.status_code} {response.text}"
                        )
                    return
        with self.tally.lock:
            self.dossiers_done += 1


# --- what the database says -----------------------------------------------------------------
HTTP_KINDS = {"inter_agency": "/lltp", "portal_sync": "/portal", "notify_citizen": "/sms"}
STEP_STATES = {"intake", "appraisal", "verification", "approval"}
NOTICE_EVENTS = {"receive": "received", "mark_result_ready": "result_ready"}


def unsettled(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM outbox WHERE status IN ('pending', 'claimed')")
            ).scalar_one()
        )


def wait_drained(engine: Engine, timeout: float) -> float:
    """Seconds until no outbox row is pending or claimed (raises after ``timeout``)."""
    started = time.monotonic()
    while unsettled(engine):
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"outbox not drained after {timeout:.0f} s")
        time.sleep(0.2)
    return time.monotonic() - started


@dataclass
class Verdict:
    dossiers: int = 0
    transitions: int = 0
    acknowledged: int = 0
    found: int = 0
    missing: list[str] = field(default_factory=list)
    half_moved: list[str] = field(default_factory=list)
    outbox_rows: int = 0
    outbox_status: dict[str, int] = field(default_factory=dict)
    dead_letters: int = 0
    sent_rows: int = 0  # rows delivered over HTTP to the stand-in
    keys_received: int = 0
    keys_missing: int = 0
    keys_unknown: int = 0
    copies_resent: int = 0  # a copy received again under a key already delivered
    duplicate_deliveries: int = 0  # a transition's side effect delivered under two keys
    inbox_missing: int = 0

    @property
    def ok(self) -> bool:
        return (
            self.found == self.acknowledged
            and not self.missing
            and not self.half_moved
            and self.dead_letters == 0
            and self.outbox_status.get("pending", 0) + self.outbox_status.get("claimed", 0) == 0
            and self.keys_missing == 0
            and self.keys_unknown == 0
            and self.duplicate_deliveries == 0
            and self.inbox_missing == 0
        )


def verify(rig: Rig, acks: list[Ack]) -> Verdict:
    """Compare what the client was told with what the database and the stand-in hold."""
    from services.outbox import idempotency_key

    v = Verdict(acknowledged=len(acks))
    with rig.engine.connect() as conn:
        dossiers = {
            r.id: r for r in conn.execute(text("SELECT id, code, status, version FROM dossier"))
        }
        events: dict[int, list[Any]] = defaultdict(list)
        for r in conn.execute(
            text("SELECT dossier_id, seq, event, from_state, to_state FROM dossier_event "
                 "ORDER BY dossier_id, seq")
        ):  # fmt: skip
            events[r.dossier_id].append(r)
        outbox = conn.execute(
            text("SELECT id, dossier_id, kind, target, payload, status FROM outbox")
        ).all()
        inbox = Counter(
            r.outbox_id
            for r in conn.execute(
                text("SELECT outbox_id FROM notification_log WHERE channel = 'inbox'")
            )
        )
    v.dossiers = len(dossiers)
    v.transitions = sum(len(e) for e in events.values())
    by_code = {d.code: d.id for d in dossiers.values()}

    # 1. every acknowledged transition: its event row (that event into that state; each state
    # of the path is entered once), the acknowledged versions growing along the events
    acked: dict[int, list[tuple[int, Ack]]] = defaultdict(list)
    for ack in acks:
        dossier_id = by_code.get(ack.code, -1)
        seq = next(
            (e.seq for e in events.get(dossier_id, [])
             if (e.event, e.to_state) == (ack.event, ack.status)),
            None,
        )  # fmt: skip
        if seq is None:
            v.missing.append(f"{ack.code} {ack.event} v{ack.version} → {ack.status}")
        else:
            v.found += 1
            acked[dossier_id].append((seq, ack))

    # 2. no dossier half-moved: events chain from submitted to the state, version counts them,
    # each transition's outbox rows are there, once
    rows_of: dict[int, list[Any]] = defaultdict(list)
    for row in outbox:
        if row.dossier_id is not None:
            rows_of[row.dossier_id].append(row)
    for dossier in dossiers.values():
        chain = events.get(dossier.id, [])
        problems: list[str] = []
        state = "submitted"
        for i, e in enumerate(chain, start=1):
            if e.seq != i or e.from_state != state:
                problems.append(f"event {e.seq} {e.event} from {e.from_state}, expected {state}")
            state = e.to_state
        if state != dossier.status:
            problems.append(f"status {dossier.status}, events end at {state}")
        seen = sorted(acked.get(dossier.id, []), key=lambda x: x[0])
        versions = [a.version for _, a in seen]
        if versions != sorted(set(versions)):
            problems.append(f"acknowledged versions {versions} do not grow along the events")
        if seen and dossier.version < versions[-1]:
            problems.append(f"version {dossier.version} behind the acknowledged {versions[-1]}")
        if seen and seen[-1][0] == len(chain) and dossier.version != versions[-1]:
            problems.append(f"version {dossier.version} after the last event, acknowledged "
                            f"{versions[-1]}")  # fmt: skip
        done = {(e.event, e.to_state) for e in chain}
        groups = Counter(
            (r.kind, r.target, (r.payload or {}).get("event"), (r.payload or {}).get("status"))
            for r in rows_of[dossier.id]
        )
        for (kind, target, event, status), n in groups.items():
            if (event, status) not in done:
                problems.append(f"outbox {kind} {target} for {event}→{status}: no such event")
            if n > 1:
                problems.append(f"outbox {kind} {target} for {event}→{status}: {n} rows")
                v.duplicate_deliveries += n - 1
        for e in chain:
            if e.to_state in STEP_STATES and e.event in ("receive", "forward"):
                kind = "inter_agency" if e.to_state == "verification" else "handoff"
                if not any(k == kind and (ev, st) == (e.event, e.to_state)
                           for k, _, ev, st in groups):  # fmt: skip
                    problems.append(f"no {kind} row for {e.event}→{e.to_state}")
            notice = NOTICE_EVENTS.get(e.event)
            if notice and not any(k == "notify_citizen" and t == notice and ev == e.event
                                  for k, t, ev, _ in groups):  # fmt: skip
                problems.append(f"no {notice} notice for {e.event}")
        if problems:
            v.half_moved.append(f"{dossier.code}: {'; '.join(problems)}")

    # 3. every row settled and delivered, once per key
    v.outbox_rows = len(outbox)
    v.outbox_status = dict(Counter(r.status for r in outbox))
    v.dead_letters = v.outbox_status.get("dead", 0)
    deliveries = httpx.get(f"{rig.agency_url}/deliveries", timeout=30).json()["deliveries"]
    received = {d["key"]: d for d in deliveries}
    expected = {
        idempotency_key(r.id): HTTP_KINDS[r.kind]
        for r in outbox
        if r.kind in HTTP_KINDS and r.status == "done"
    }
    v.sent_rows = len(expected)
    v.keys_received = len(received)
    v.keys_missing = sum(
        1 for k, path in expected.items() if k not in received or received[k]["path"] != path
    )
    v.keys_unknown = sum(1 for k in received if k not in expected)
    v.copies_resent = sum(d["copies"] - 1 for d in deliveries)
    v.inbox_missing = sum(
        1
        for r in outbox
        if r.kind in ("handoff", "notify_citizen") and r.status == "done" and inbox[r.id] != 1
    )
    return v


# --- 1. kills under load --------------------------------------------------------------------
@dataclass
class KillReport:
    api_kills: int = 0
    worker_kills: int = 0
    worker_kills_while_delivering: int = 0
    api_restart_s: list[float] = field(default_factory=list)
    worker_ready_s: list[float] = field(default_factory=list)  # start → first claim
    seconds: float = 0.0
    drain_s: float = 0.0


def run_kills(
    r: Rig, *, kills: int, threads: int, seed: int, api_pause: tuple[float, float] = (0.3, 2.5)
) -> tuple[KillReport, LoadClient, Verdict]:
    """Load while the API and the worker are each SIGKILLed ``kills`` times."""
    rng = random.Random(seed)
    report = KillReport()
    errors: list[BaseException] = []
    started = time.monotonic()

    def kill_api() -> None:
        try:
            for _ in range(kills):
                time.sleep(rng.uniform(*api_pause))
                r.api.kill()
                report.api_kills += 1
                report.api_restart_s.append(r.restart_api())
        except BaseException as error:  # reported by the caller
            errors.append(error)

    def kill_worker() -> None:
        try:
            for _ in range(kills):
                t = time.monotonic()
                busy = r.worker_busy(timeout=120)  # it has started and claims rows
                if busy:
                    report.worker_ready_s.append(time.monotonic() - t)
                time.sleep(rng.uniform(0.0, 1.0))
                r.worker.kill()
                report.worker_kills += 1
                if not busy:  # a restarted worker must come back: not in 120 s is a failure
                    raise RuntimeError(f"the worker never claimed a row\n{r.worker.tail()}")
                report.worker_kills_while_delivering += busy
                r.worker.start()
        except BaseException as error:
            errors.append(error)

    with LoadClient(r, threads) as load:
        killers = [threading.Thread(target=kill_api), threading.Thread(target=kill_worker)]
        for killer in killers:
            killer.start()
        for killer in killers:
            killer.join()
        time.sleep(1.0)  # a little load on the last restarted processes
    report.seconds = time.monotonic() - started
    if errors:
        raise errors[0]
    report.drain_s = wait_drained(r.engine, timeout=240)
    return report, load, verify(r, load.tally.acks)


# --- 2. PostgreSQL restarted under load -------------------------------------------------------
@dataclass
class RestartReport:
    outage_s: float = 0.0
    answers_during: Counter[str] = field(default_factory=Counter)
    bad_503: list[str] = field(default_factory=list)
    other_5xx: int = 0
    recovered_after_s: float | None = None
    acknowledged: int = 0


def run_postgres_restart(
    r: Rig, *, threads: int, outage_s: float = 3.0, before_s: float = 2.0, after_s: float = 4.0
) -> tuple[RestartReport, LoadClient]:
    report = RestartReport()
    with LoadClient(r, threads) as load:
        time.sleep(before_s)
        before = Counter(load.tally.answers)
        t0 = time.monotonic()
        r.pg.crash()
        time.sleep(outage_s)
        r.pg.start()
        up = time.monotonic()
        report.outage_s = up - t0
        with load.tally.lock:
            report.answers_during = load.tally.answers - before
        deadline = up + 60
        while time.monotonic() < deadline:
            with load.tally.lock:
                after = [a.at for a in load.tally.acks if a.at > up]
            if after:
                report.recovered_after_s = min(after) - up
                break
            time.sleep(0.05)
        time.sleep(after_s)
    report.bad_503 = load.tally.unavailable_bad
    report.other_5xx = (
        sum(n for c, n in load.tally.answers.items() if c.startswith("5"))
        - (load.tally.answers["503"])
    )
    report.acknowledged = len(load.tally.acks)
    return report, load


# --- 3. the S3 endpoint stopped ---------------------------------------------------------------
def pdf_bytes(salt: str, pages: int = 1) -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=595, height=842)
    writer.add_metadata({"/Title": salt})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@dataclass
class S3Report:
    before: list[int] = field(default_factory=list)
    during: list[int] = field(default_factory=list)
    during_s: list[float] = field(default_factory=list)
    bad_503: list[str] = field(default_factory=list)
    cut_mid_body: int | str = ""
    after: list[int] = field(default_factory=list)
    recovered_after_s: float | None = None
    rows: int = 0
    rows_without_object: int = 0
    uploads_acknowledged: int = 0

    @property
    def ok(self) -> bool:
        return (
            all(s == 201 for s in self.before)
            and bool(self.during)
            and all(s == 503 for s in self.during)
            and not self.bad_503
            and self.cut_mid_body in (503, 422)
            and bool(self.after)
            and all(s == 201 for s in self.after)
            and self.rows == self.uploads_acknowledged
            and self.rows_without_object == 0
        )


def run_s3_stop(r: Rig, *, uploads: int = 2) -> S3Report:
    from minio import Minio

    report = S3Report()
    with httpx.Client(base_url=r.api_url, timeout=120) as client:

        def new_dossier() -> str:
            for _ in range(50):
                response = client.post(
                    "/api/v1/dossiers",
                    json={"procedure_code": "MOJ.lltp", "applicant": {"name": "Lục Văn Sáng"},
                          "components": ["request_form", "applicant_id"]},
                    headers=r.headers("counter"),
                )  # fmt: skip
                if response.status_code == 201:
                    return str(response.json()["code"])
                time.sleep(0.2)
            raise RuntimeError(f"no dossier: {response.status_code} {response.text}")

        def upload(code: str, content: Any, sha: str | None = None) -> httpx.Response:
            params = {"file_name": "cccd.pdf", **({"sha256": sha} if sha else {})}
            return client.post(
                f"/api/v1/dossiers/{code}/documents/applicant_id", params=params,
                content=content,
                headers={**r.headers("digitizer"), "Content-Type": "application/pdf"},
            )  # fmt: skip

        def upload_one() -> httpx.Response:
            data = pdf_bytes(uuid.uuid4().hex)
            return upload(new_dossier(), data, hashlib.sha256(data).hexdigest())

        for _ in range(uploads):
            report.before.append(upload_one().status_code)
        codes = [new_dossier() for _ in range(uploads)]

        r.relay.stop()
        for code in codes:
            data = pdf_bytes(uuid.uuid4().hex)
            t = time.monotonic()
            response = upload(code, data, hashlib.sha256(data).hexdigest())
            report.during_s.append(time.monotonic() - t)
            report.during.append(response.status_code)
            if response.status_code == 503:
                wrong = check_unavailable(response, "object_store_unavailable")
                if wrong:
                    report.bad_503.append(wrong)

        # the endpoint goes away in the middle of a body: 12 MiB streamed, cut after ~6 MiB
        r.relay.start()
        code = new_dossier()
        cut = threading.Event()

        def body() -> Iterator[bytes]:
            yield pdf_bytes("cut")
            for i in range(12):
                if i == 6:
                    cut.set()
                yield os.urandom(1024 * 1024)
                time.sleep(0.1)

        def cutter() -> None:
            cut.wait(60)
            time.sleep(0.3)
            r.relay.stop()

        threading.Thread(target=cutter, daemon=True).start()
        try:
            report.cut_mid_body = upload(code, body()).status_code
        except httpx.HTTPError as error:
            report.cut_mid_body = f"no answer: {type(error).__name__}"

        r.relay.start()
        t = time.monotonic()
        for _ in range(uploads):
            report.after.append(upload_one().status_code)
            if report.recovered_after_s is None and report.after[-1] == 201:
                report.recovered_after_s = time.monotonic() - t

    report.uploads_acknowledged = sum(
        1 for s in (*report.before, *report.during, *report.after) if s == 201
    ) + (report.cut_mid_body == 201)
    s3 = Minio(r.s3_direct, access_key="testing", secret_key="testing", secure=False,
               region="us-east-1")  # fmt: skip
    with r.engine.connect() as conn:
        keys = [k for (k,) in conn.execute(text("SELECT object_key FROM document"))]
    report.rows = len(keys)
    for key in keys:
        try:
            s3.stat_object(r.bucket, key)
        except Exception:
            report.rows_without_object += 1
    return report


# --- the command --------------------------------------------------------------------------------
def print_kills(report: KillReport, load: LoadClient, v: Verdict) -> None:
    t = load.tally
    print(f"\n1. kills under load ({report.seconds:.0f} s, {len(load.threads)} client threads)")
    print(f"   kills performed: API {report.api_kills}, worker {report.worker_kills} "
          f"({report.worker_kills_while_delivering} after it had claimed rows)")  # fmt: skip
    restarts = sorted(report.api_restart_s)
    if restarts:
        print(f"   API restart → answering: median {restarts[len(restarts) // 2]:.1f} s, "
              f"max {restarts[-1]:.1f} s")  # fmt: skip
    ready = sorted(report.worker_ready_s)
    if ready:
        print(f"   worker (re)start → first claim: median {ready[len(ready) // 2]:.1f} s, "
              f"max {ready[-1]:.1f} s")  # fmt: skip
    print(f"   answers: {dict(sorted(t.answers.items()))}")
    print(f"   dossiers in the database: {v.dossiers} ({load.dossiers_done} taken to the end "
          f"by the client); transitions in the database: {v.transitions}")  # fmt: skip
    print(f"   acknowledged transitions: {v.acknowledged}")
    print(f"   found in the database:    {v.found}   (must be equal)")
    print(f"   applied but never acknowledged (answer lost in a kill): "
          f"{t.applied_unacknowledged}")  # fmt: skip
    print(f"   half-moved dossiers: {len(v.half_moved)}   client anomalies: {len(t.anomalies)}")
    print(f"   outbox: {v.outbox_rows} rows {v.outbox_status}, drained {report.drain_s:.1f} s "
          f"after the load")  # fmt: skip
    print(f"   dead letters: {v.dead_letters}")
    print(f"   to the stand-in: {v.sent_rows} rows, {v.keys_received} keys received, "
          f"missing {v.keys_missing}, unknown {v.keys_unknown}")  # fmt: skip
    print(f"   duplicate deliveries: {v.duplicate_deliveries}   (must be 0)")
    print(f"   copies sent again after a kill, recognised by their key: {v.copies_resent}")
    for line in (v.missing + v.half_moved + t.anomalies)[:10]:
        print("   !", line)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--kills", type=int, default=20, help="SIGKILLs of the API and of the worker each"
    )
    parser.add_argument("--threads", type=int, default=4, help="load client threads")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    parser.add_argument(
        "--prefect", choices=["server", "local"], default="server",
        help="the worker's Prefect API: one `prefect server start` process, or its own local one",
    )  # fmt: skip
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    print(f"motcua crash test: --kills {args.kills}, seed {seed}; load average {load_average()}")
    ok = True
    print(f"Prefect: {args.prefect}")
    with rig(keep=args.keep, prefect=args.prefect) as r:
        print(f"processes up (temporary folder {r.tmp})", flush=True)
        report, load, verdict = run_kills(r, kills=args.kills, threads=args.threads, seed=seed)
        print_kills(report, load, verdict)
        ok &= verdict.ok and not load.tally.anomalies and not load.tally.unavailable_bad

        restart, load2 = run_postgres_restart(r, threads=args.threads)
        wait_drained(r.engine, timeout=120)
        v2 = verify(r, load.tally.acks + load2.tally.acks)
        print(
            f"\n2. PostgreSQL restarted under load (immediate stop, {restart.outage_s:.1f} s down)"
        )
        print(f"   answers during the outage: {dict(sorted(restart.answers_during.items()))}")
        print(f"   503 not as the contract (Retry-After, problem+json, vi + en): "
              f"{len(restart.bad_503)}; "
              f"other 5xx: {restart.other_5xx}")  # fmt: skip
        rec = restart.recovered_after_s
        print(f"   first acknowledged transition {rec:.2f} s after the restart" if rec is not None
              else "   NOT recovered")  # fmt: skip
        print(f"   acknowledged (both parts): {v2.acknowledged}, found in the database: "
              f"{v2.found}; half-moved {len(v2.half_moved)}; dead letters {v2.dead_letters}; "
              f"duplicate deliveries {v2.duplicate_deliveries}")  # fmt: skip
        ok &= (
            v2.ok and rec is not None and not restart.bad_503 and restart.other_5xx == 0
            and restart.answers_during["503"] > 0 and not load2.tally.anomalies
        )  # fmt: skip

        s3 = run_s3_stop(r)
        print("\n3. S3 endpoint stopped")
        print(f"   uploads before: {s3.before}; while stopped: {s3.during} "
              f"({', '.join(f'{s:.1f} s' for s in s3.during_s)}); "
              f"503 not as the contract: {len(s3.bad_503)}")  # fmt: skip
        print(f"   endpoint cut in the middle of a 12 MiB body: {s3.cut_mid_body}")
        print(f"   after the restart: {s3.after}"
              + (f" (first 201 after {s3.recovered_after_s:.1f} s)" if s3.recovered_after_s
                 is not None else ""))  # fmt: skip
        print(f"   document rows {s3.rows} = uploads acknowledged {s3.uploads_acknowledged}; "
              f"rows without their object: {s3.rows_without_object}")  # fmt: skip
        ok &= s3.ok
    print(f"\nload average {load_average()}")
    print("result:", "all checks passed" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
